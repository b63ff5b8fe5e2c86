"""`planbound report`: figures from what a home stores, drift, and the HTML in a real browser."""

from __future__ import annotations

import json
import shutil
import struct
import subprocess
import time
import zlib
from collections.abc import Iterator
from pathlib import Path

import pytest
from answering import answer_for
from typer.testing import CliRunner

from checkpoints.factory import Stores
from graph import report as reports
from graph.cli import app
from graph.report import drift
from graph.report.collect import Decision, decisions, tool_stats
from graph.report.html import TITLES, render
from graph.runner import Runner
from graph.services import Services, open_stores
from graph.settings import Settings
from tools.retail import load_shipped, seed

EMAIL = "fatima.anderson1447@example.com"
ORDER = "#W2974929"
CANCEL = f"Please cancel order {ORDER}, it was ordered by mistake. My email is {EMAIL}"
ISABELLA = "isabella.lopez3271@example.com"
ISABELLA_ORDER = "#W4923227"  # pending, credit_card_8554680, two other methods
READS = [
    f"Show my profile. My email is {EMAIL}",
    f"What is the status of order {ORDER}? My email is {EMAIL}",
    "Show me product 1968349452",
    "List all product types",
    "What's the weather like today?",
]


@pytest.fixture
def home(tmp_path: Path) -> Iterator[Stores]:
    s = open_stores(tmp_path / "home")
    with s.lock:
        seed(s.domain, load_shipped())
    yield s
    s.close()


def compensated_plan() -> dict[str, object]:
    return {
        "goal": "move, then change the payment twice",
        "steps": [
            {"id": "who", "tool": "find_user_id_by_email", "args": {"email": ISABELLA}},
            {
                "id": "move",
                "tool": "modify_user_address",
                "args": {
                    "user_id": "$who",
                    "address1": "1 Main St",
                    "address2": "",
                    "city": "Austin",
                    "state": "TX",
                    "country": "USA",
                    "zip": "78701",
                },
            },
            {
                "id": "pay1",
                "tool": "modify_pending_order_payment",
                "depends_on": ["move"],
                "args": {"order_id": ISABELLA_ORDER, "payment_method_id": "paypal_1621947"},
            },
            {
                "id": "pay2",
                "tool": "modify_pending_order_payment",
                "depends_on": ["pay1"],
                "args": {"order_id": ISABELLA_ORDER, "payment_method_id": "credit_card_8897086"},
            },
        ],
    }


def fill(runner: Runner) -> dict[str, str]:
    """A few decisions of each kind; return the thread of the one a reviewer made wait."""
    for text in READS:
        runner.start(request=text)
    first = runner.start(request=CANCEL)
    time.sleep(0.3)  # the reviewer takes a while
    runner.resume(first["thread_id"], answer_for(first, {"type": "approve"}, reviewer="ann"))
    comp = runner.start(explicit_plan=compensated_plan())
    ids = {step["step_id"] for step in comp["pending"]}
    answer = answer_for(
        comp, *[{"type": "approve"} for _ in ids], reviewer="ann", role="supervisor"
    )
    done = runner.resume(comp["thread_id"], answer)
    assert done["status"] == "rolled_back", done
    denied = runner.start(
        request=f"Please cancel order #W2611340, it was no longer needed. My email is {EMAIL}"
    )
    assert denied["status"] == "refused"
    return {"waited": first["decision_id"]}


def test_the_report_reads_latency_wait_rates_tools_and_compensations_from_the_home(
    home: Stores,
) -> None:
    runner = Runner(home)
    marks = fill(runner)
    found = decisions(home)
    assert len(found) == 8
    by_id = {d.decision_id: d for d in found}
    waited = by_id[marks["waited"]]
    # The reviewer's 0.3 s is human wait, not latency.
    assert waited.human_wait_s >= 0.3
    assert waited.seconds < waited.ended - waited.started - 0.29
    assert set(waited.node_seconds) >= {"intake", "plan", "verify", "approve", "execute"}
    assert len(waited.node_seconds["execute"]) == 1  # the two reads, then the write, in one step
    assert waited.reviews == ["approve"] and waited.route == "review"

    doc = reports.build(home, since="all")
    assert doc["window"]["decisions"] == 8
    rates = doc["rates"]
    assert rates["cannot_plan"] == round(1 / 8, 4)
    assert rates["refuse"] == round(1 / 8, 4) and rates["deny"] == round(1 / 8, 4)
    assert rates["approve"] == 1.0 and rates["review_decisions"] == 4
    assert rates["statuses"]["completed"] == round(5 / 8, 4)
    assert doc["latency"]["human_wait"]["n"] == 2
    assert doc["latency"]["human_wait"]["p99"] >= 0.3
    for node in ("intake", "plan", "verify", "approve", "execute", "finalize"):
        stats = doc["latency"]["nodes"][node]
        assert stats["n"] >= 1 and 0 <= stats["p50"] <= stats["p95"] <= stats["p99"]
    tools = doc["tools"]
    assert tools["modify_pending_order_payment"]["error_ratio"] == 0.5
    assert tools["modify_pending_order_payment"]["compensated"] == 1
    assert tools["modify_user_address"]["compensated"] == 1
    assert doc["compensations"] == 2
    assert doc["usage"]["tokens_per_decision"] == 0 and doc["usage"]["cost_per_decision"] is None
    groups = {row["group"].split("@")[0]: row for row in doc["groups"]["rows"]}
    assert groups["template"]["decisions"] == 7 and groups["explicit"]["decisions"] == 1
    assert tool_stats(found) == tools

    # Only the window's decisions count; the earlier window is the drift baseline.
    later = reports.build(home, since="1h", now=time.time() + 3 * 3600)
    assert later["window"]["decisions"] == 0


def test_psi_and_chi_square_are_the_standard_statistics() -> None:
    from collections import Counter

    same = Counter({"a": 50, "b": 50})
    assert drift.psi(same, same) == 0
    assert drift.psi(Counter({"a": 90, "b": 10}), Counter({"a": 10, "b": 90})) > 1
    assert drift.chi2_sf(3.841, 1) == pytest.approx(0.05, abs=1e-3)
    assert drift.chi2_sf(9.210, 2) == pytest.approx(0.01, abs=1e-3)
    assert drift.chi2_sf(30.0, 10) == pytest.approx(0.000857, rel=1e-2)
    stat, p = drift.chi_square(Counter({"y": 30, "n": 70}), Counter({"y": 60, "n": 40}))
    assert stat == pytest.approx(18.18, abs=0.01) and p < 0.001


def records(intents: list[str], deny: int = 0) -> list[Decision]:
    out = []
    for n, intent in enumerate(intents):
        out.append(
            Decision(
                decision_id=str(n),
                thread_id=str(n),
                started=float(n),
                ended=n + 0.1,
                status="refused" if n < deny else "completed",
                route="refused" if n < deny else "direct",
                planner="template",
                template=f"{intent}@1",
                plan_length=2,
                deny_rules=["scope.order_owner"] if n < deny else [],
                reviews=["approve"],
            )
        )
    return out


def test_drift_flags_a_shifted_mix_and_a_changed_denial_rate_only() -> None:
    base = records(["cancel_order"] * 30 + ["order_details"] * 30)
    same = records(["cancel_order"] * 31 + ["order_details"] * 29)
    shifted = records(["cancel_order"] * 5 + ["order_details"] * 55, deny=25)
    quiet = {s.name: s for s in drift.compare(base, same)}
    assert not any(s.flagged for s in quiet.values()), quiet
    loud = {s.name: s for s in drift.compare(base, shifted)}
    assert loud["intent mix"].flagged and loud["intent mix"].value > drift.PSI_FLAG
    assert loud["denial rate: scope.order_owner"].flagged
    assert loud["route mix"].flagged
    assert not loud["approval rate"].flagged
    assert not loud["plan length"].flagged


def test_drift_between_two_template_versions_on_a_real_home(home: Stores, tmp_path: Path) -> None:
    """A template edit that loses the word "profile": those requests cannot be planned."""
    for text in READS[:4] * 5:
        Runner(home).start(request=text)
    source = Services(Settings.load(home=home.home)).domain.templates
    assert source is not None
    text = source.read_text()  # type: ignore[union-attr]
    edited = tmp_path / "templates.yaml"
    assert "[profile, account details," in text
    edited.write_text(text.replace("[profile, account details,", "[account details,", 1))
    later = Runner(home, Settings.load(home=home.home, templates=edited))
    for text in READS[:4] * 5:
        later.start(request=text)
    doc = reports.build(home, since="all", between="planner", by="planner")
    d = doc["drift"]
    assert d["baseline"]["decisions"] == 20 and d["current"]["decisions"] == 20
    assert d["baseline"]["label"] != d["current"]["label"]
    signals = {s["name"]: s for s in d["signals"]}
    assert signals["intent mix"]["flagged"]
    assert signals["intent mix"]["current"]["(cannot_plan)"] == 0.25
    assert signals["route mix"]["flagged"]
    assert len(doc["groups"]["rows"]) == 2


def test_the_cli_names_a_bad_option(tmp_path: Path) -> None:
    cli = CliRunner()
    for args, words in [
        (["--since", "7x"], "--since '7x'"),
        (["--by", "colour"], "--by 'colour'"),
        (["--drift", "moon"], "--drift 'moon'"),
    ]:
        result = cli.invoke(app, ["report", *args, "--home", str(tmp_path / "h"), "--json"])
        assert result.exit_code == 2, result.output
        assert words in json.loads(result.output)["error"]


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def png_pixels(data: bytes) -> tuple[int, int, bytes]:
    """Width, height and the decompressed scanlines of a PNG."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat, width, height = 8, b"", 0, 0
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos : pos + 8])
        chunk = data[pos + 8 : pos + 8 + length]
        if kind == b"IHDR":
            width, height = struct.unpack(">II", chunk[:8])
        elif kind == b"IDAT":
            idat += chunk
        pos += 12 + length
    return width, height, zlib.decompress(idat)


@pytest.mark.skipif(
    CHROMIUM is None, reason="Debian's chromium is not installed (.ci/run installs it)"
)
def test_the_html_report_renders_its_plots_in_headless_chromium(
    home: Stores, tmp_path: Path
) -> None:
    fill(Runner(home))
    page = tmp_path / "report.html"
    result = CliRunner().invoke(
        app,
        ["report", "--since", "all", "--home", str(home.home), "--html", str(page), "--json"],
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["html"] == str(page)
    source = page.read_text()
    # Self-contained: no script or style is fetched from anywhere.
    assert "<script src" not in source and "<link" not in source
    browser = [
        str(CHROMIUM),
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--hide-scrollbars",
        "--virtual-time-budget=15000",
    ]
    dom = subprocess.run(
        [*browser, "--dump-dom", page.as_uri()], capture_output=True, text=True, timeout=120
    ).stdout
    # Plotly drew each figure: an SVG per plot, with its title as SVG text.
    assert dom.count('class="main-svg"') >= 2 * 6
    for key in ("latency", "e2e", "outcomes", "reviews", "tools"):
        assert f'data-unformatted="{TITLES[key]}"' in dom, key
    shot = tmp_path / "report.png"
    subprocess.run(
        [*browser, "--window-size=1280,2400", f"--screenshot={shot}", page.as_uri()],
        capture_output=True,
        timeout=120,
        check=True,
    )
    width, height, raw = png_pixels(shot.read_bytes())
    assert (width, height) == (1280, 2400)
    # Not blank: a plotted page has many colours, a blank one a handful.
    assert len(set(raw)) > 64
    rows = [
        raw[i * (len(raw) // height) + 1 : (i + 1) * (len(raw) // height)] for i in range(height)
    ]
    assert sum(1 for r in rows if len(set(r)) > 4) > height // 4


def test_render_embeds_the_plotting_library_and_the_data(home: Stores) -> None:
    Runner(home).start(request=READS[0])
    page = render(reports.build(home, since="all"))
    assert page.startswith("<!DOCTYPE html>")
    assert "Plotly.newPlot" in page or "Plotly" in page
    assert 'id="report-data"' in page or "id='report-data'" in page
    for key in ("latency", "outcomes", "tools"):
        assert TITLES[key] in page
