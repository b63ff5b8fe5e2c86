"""The command line, in process, on a fresh data directory."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from checkpoints.db import MIGRATIONS
from graph.cli import app
from graph.cli.answers import ApproveFlags, PendingReview, review_answer
from graph.cli.common import UsageError
from tools.retail import MIGRATIONS as RETAIL_MIGRATIONS
from tools.retail import load_shipped, tau2_hash

ORDER = "#W2974929"
EMAIL = "fatima.anderson1447@example.com"


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return tmp_path / "home"


def cli(home: Path, *args: str) -> tuple[int, Any]:
    result = CliRunner().invoke(app, [*args, "--home", str(home), "--json"])
    lines = [line for line in result.stdout.splitlines() if line.strip()]
    assert len(lines) == 1, result.stdout  # exactly one JSON object
    return result.exit_code, json.loads(lines[0])


def text(home: Path, *args: str) -> tuple[int, str, str]:
    """Run a command without --json: exit code, standard output, standard error."""
    result = CliRunner().invoke(app, [*args, "--home", str(home)])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result.exit_code, result.stdout, result.stderr


def plan_file(tmp_path: Path) -> Path:
    plan = tmp_path / "plan.json"
    plan.write_text(
        json.dumps(
            [
                {"name": "find_user_id_by_email", "arguments": {"email": EMAIL}},
                {"name": "get_order_details", "arguments": {"order_id": ORDER}},
                {
                    "name": "cancel_pending_order",
                    "arguments": {"order_id": ORDER, "reason": "ordered by mistake"},
                },
            ]
        )
    )
    return plan


def test_seed_run_approve_export(home: Path, tmp_path: Path) -> None:
    code, seeded = cli(home, "seed")
    assert code == 0 and seeded["orders"] == 1000
    assert seeded["tau2_hash"] == tau2_hash(load_shipped())

    code, run = cli(home, "run", "--plan", str(plan_file(tmp_path)))
    assert code == 0
    assert set(run) >= {
        "thread_id",
        "decision_id",
        "status",
        "plan",
        "verdict",
        "pending",
        "results",
        "error",
    }
    assert run["status"] == "awaiting_approval"
    assert run["pending"][0]["step_id"] == "s3"
    thread = run["thread_id"]

    code, status = cli(home, "status", thread)
    assert code == 0 and status["status"] == "awaiting_approval"

    code, bad = cli(home, "approve", thread, "--all", "--approve")
    assert code == 2 and "--reviewer NAME is required" in bad["error"]
    code, bad = cli(home, "approve", thread, "--step", "s9", "--approve", "--reviewer", "ann")
    assert code == 2 and "'s9' is not awaiting review" in bad["error"]
    code, bad = cli(home, "approve", thread, "--payload", '{"decisions": [{"type": "maybe"}]}')
    assert code == 2 and "type must be one of" in bad["error"]
    assert cli(home, "status", thread)[1]["status"] == "awaiting_approval"

    code, done = cli(home, "approve", thread, "--all", "--approve", "--reviewer", "ann")
    assert code == 0 and done["status"] == "completed", done

    out = tmp_path / "state.json"
    code, exported = cli(home, "export", "--out", str(out))
    assert code == 0
    state = json.loads(out.read_text())
    assert state["orders"][ORDER]["status"] == "cancelled"
    assert state["orders"][ORDER]["cancel_reason"] == "ordered by mistake"
    assert exported["tau2_hash"] == tau2_hash(state) != seeded["tau2_hash"]

    code, hist = cli(home, "history", thread)
    assert code == 0 and len(hist["checkpoints"]) >= 8


def test_input_errors_exit_non_zero(home: Path, tmp_path: Path) -> None:
    code, out = cli(home, "run", "cancel something")
    assert code == 2 and "planbound seed" in out["error"]  # not seeded yet
    cli(home, "seed")
    code, out = cli(home, "run")
    assert code == 2 and "exactly one" in out["error"]
    code, out = cli(home, "run", "--plan", str(tmp_path / "missing.json"))
    assert code == 2 and "no such file" in out["error"]
    bad = tmp_path / "bad.json"
    bad.write_text('[{"tool": "get_order_details", "args": "x"}]')
    code, out = cli(home, "run", "--plan", str(bad))
    assert code == 2 and "steps[0].args" in out["error"]
    code, out = cli(home, "status", "no-such-thread")
    assert code == 2 and "no thread 'no-such-thread'" in out["error"]
    code, out = cli(home, "seed", "--from", str(bad))
    assert code == 2 and "missing" in out["error"]


def test_db_init_reports_the_applied_schema_versions(home: Path) -> None:
    code, report = cli(home, "db", "init")
    assert code == 0 and report["backend"] == "sqlite"
    assert report["schema_versions"] == {
        "planbound": [version for version, _, _ in MIGRATIONS],
        "retail": [version for version, _, _ in RETAIL_MIGRATIONS],
    }
    code, out, _ = text(home, "db", "init")
    versions = [version for version, _, _ in MIGRATIONS]
    retail = [version for version, _, _ in RETAIL_MIGRATIONS]
    assert (
        code == 0 and f"sqlite ready; schema versions planbound {versions}; retail {retail}" in out
    )


def test_user_text_is_printed_literally_not_as_markup(home: Path, tmp_path: Path) -> None:
    thread, reason, reviewer = "[/x]", "[/bold] oops", "[red]eve[/]"
    assert cli(home, "seed")[0] == 0

    code, out, _ = text(home, "run", "--plan", str(plan_file(tmp_path)), "--thread", thread)
    assert code == 0
    assert "thread [/x]  status awaiting_approval" in out
    assert "planbound approve [/x] --all --approve" in out
    assert "[writes.need_approval]" in out  # a rule name in a reason is text, not a style

    code, out, _ = text(
        home, "approve", thread, "--all", "--reject", reason, "--reviewer", reviewer
    )
    assert code == 0
    assert "thread [/x]  status rejected" in out
    assert "s3 rejected by [red]eve[/]: [/bold] oops" in out

    code, out, _ = text(home, "status", thread)
    assert code == 0
    assert "s3 rejected by [red]eve[/]: [/bold] oops" in out

    code, _, err = text(home, "approve", thread, "--all", "--approve", "--reviewer", reviewer)
    assert code == 2 and "error: thread [/x] is not awaiting approval" in err
    code, _, err = text(home, "status", "[/nope]")
    assert code == 2 and "no thread '[/nope]'" in err
    code, out, _ = text(home, "history", thread)
    assert code == 0 and "thread [/x]" in out


def test_approve_flags_become_one_decision_per_step() -> None:
    asked: list[str] = []
    review = PendingReview(
        decision_id="d1",
        plan_id="p1",
        tools={"s2": "modify_user_address", "s3": "cancel_pending_order"},
    )
    named = {"decision_id": "d1", "plan_id": "p1"}

    def pending() -> PendingReview:
        asked.append("pending")
        return review

    everything = review_answer(ApproveFlags(reviewer="ann", all_steps=True, approve=True), pending)
    assert everything == {
        "decisions": [{"type": "approve", "step_id": "s2"}, {"type": "approve", "step_id": "s3"}],
        **named,
        "reviewer": "ann",
        "role": "reviewer",
    }
    assert asked == ["pending"]

    rejected = review_answer(
        ApproveFlags(reviewer="bob", role="admin", step="s3", reject="no"), pending
    )
    assert rejected == {
        "decisions": [{"type": "reject", "message": "no", "step_id": "s3"}],
        **named,
        "reviewer": "bob",
        "role": "admin",
    }
    responded = review_answer(ApproveFlags(reviewer="bob", all_steps=True, respond="ok"), pending)
    assert responded["decisions"] == [
        {"type": "respond", "message": "ok", "step_id": "s2"},
        {"type": "respond", "message": "ok", "step_id": "s3"},
    ]
    edited = review_answer(ApproveFlags(reviewer="ann", step="s3", edit='{"reason": "x"}'), pending)
    assert edited["decisions"] == [
        {
            "type": "edit",
            "edited_action": {"name": "cancel_pending_order", "args": {"reason": "x"}},
            "step_id": "s3",
        }
    ]
    assert edited["decision_id"] == "d1" and edited["plan_id"] == "p1"
    whole = review_answer(
        ApproveFlags(reviewer="ann", step="s3", edit='{"name": "t", "args": {"reason": "x"}}'),
        pending,
    )
    assert whole["decisions"][0]["edited_action"] == {"name": "t", "args": {"reason": "x"}}
    older = review_answer(
        ApproveFlags(reviewer="ann", step="s3", edit='{"arguments": {"reason": "x"}}'), pending
    )
    assert older["decisions"][0]["edited_action"] == {
        "name": "cancel_pending_order",
        "args": {"reason": "x"},
    }
    assert len(asked) == 6
    raw = review_answer(ApproveFlags(payload='{"decisions": []}'), pending)
    assert raw == {"decisions": []}
    assert len(asked) == 6  # a raw payload is passed on as it is: it names its review itself


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (ApproveFlags(payload="{}", approve=True), "--payload cannot be combined"),
        (ApproveFlags(payload="{nope"), "--payload is not JSON"),
        (ApproveFlags(reviewer=" ", all_steps=True, approve=True), "--reviewer NAME is required"),
        (ApproveFlags(reviewer="ann", approve=True), "give --all or --step ID"),
        (ApproveFlags(reviewer="ann", all_steps=True, step="s1"), "give --all or --step ID"),
        (ApproveFlags(reviewer="ann", step="s1"), "give exactly one of"),
        (ApproveFlags(reviewer="ann", step="s1", approve=True, reject="no"), "give exactly one"),
        (ApproveFlags(reviewer="ann", step="s1", respond="x", reject="no"), "give exactly one"),
        (ApproveFlags(payload="{}", respond="x"), "--payload cannot be combined"),
        (ApproveFlags(reviewer="ann", all_steps=True, edit="{}"), "--edit applies to one step"),
        (ApproveFlags(reviewer="ann", step="s1", edit="{nope"), "--edit is not JSON"),
        (ApproveFlags(reviewer="ann", step="s1", edit="[1]"), "--edit must be a JSON object"),
    ],
)
def test_inconsistent_approve_flags_are_refused_before_anything_is_asked(
    flags: ApproveFlags, message: str
) -> None:
    def pending() -> PendingReview:
        raise AssertionError("pending steps looked up for invalid options")

    with pytest.raises(UsageError, match=re.escape(message)):
        review_answer(flags, pending)


def test_approve_names_the_review_shown_and_a_raw_payload_must_name_it(
    home: Path, tmp_path: Path
) -> None:
    assert cli(home, "seed")[0] == 0
    code, run = cli(home, "run", "--plan", str(plan_file(tmp_path)))
    assert code == 0 and run["status"] == "awaiting_approval"
    thread = run["thread_id"]
    bare = json.dumps({"decisions": [{"type": "approve"}], "reviewer": "ann"})
    code, out = cli(home, "approve", thread, "--payload", bare)
    assert code == 2 and "does not say which review it answers" in out["error"]
    stale = {"decisions": [{"type": "approve"}], "reviewer": "ann"}
    stale |= {"decision_id": run["decision_id"], "plan_id": "p-old"}
    code, out = cli(home, "approve", thread, "--payload", json.dumps(stale))
    assert code == 2
    assert f"the review changed: you answered plan p-old, plan {run['plan']['id']}" in out["error"]
    assert cli(home, "status", thread)[1]["status"] == "awaiting_approval"

    code, done = cli(
        home, "approve", thread, "--step", "s3", "--respond", "done by phone", "--reviewer", "ann"
    )
    assert code == 0 and done["status"] == "rejected", done
    assert done["error"] == "s3 not run: ann responded: done by phone"
    assert done["results"] == []
