"""Who the CLI trusts: with a token table, the token's identity and roles; without, the operator.

With ``PLANBOUND_AUTH_FILE`` set, ``planbound run`` records the token's holder as the actor
and ``planbound approve`` answers as the token's holder with its roles, so the supervisor and
no-self-approval rules hold on the command line as they do behind the server. Without a
table the reviewer and role are taken as given, and the command says so on standard error.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, NamedTuple

import pytest
import yaml
from answering import naming
from typer.testing import CliRunner

from checkpoints.audit import AuditLog
from checkpoints.ledger import Approvals
from graph.cli import app
from graph.cli.common import LOCAL_MODE
from graph.errors import ConfigError
from graph.identity import digest
from graph.services import open_stores
from graph.settings import Settings
from tools.retail import RetailDB

FATIMA = "fatima.anderson1447@example.com"
SMALL = "#W2974929"  # pending, 182.03
BIG = "#W4514908"  # pending, 3,439.37: over the supervisor threshold
TOKENS = {
    "rita": "rita-reviewer-token-0001",
    "sam": "sam-supervisor-token-0002",
    "rob": "rob-requester-reviewer-03",
    "alice": "alice-requester-token-004",
}
ROLES = {
    "rita": ["reviewer"],
    "sam": ["supervisor"],
    "rob": ["requester", "reviewer"],
    "alice": ["requester"],
}
UNKNOWN = "not-a-token-in-the-table-99"


class Result(NamedTuple):
    code: int
    out: dict[str, Any]
    err: str


@pytest.fixture(autouse=True)
def no_ambient_identity(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("PLANBOUND_AUTH_FILE", "PLANBOUND_AUTH_TOKENS", "PLANBOUND_TOKEN", "TOKEN"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def home(tmp_path: Path) -> Path:
    home = tmp_path / "home"
    assert cli(home, "seed").code == 0
    return home


@pytest.fixture
def table(tmp_path: Path) -> Path:
    """A token table: rita and rob by digest, sam and alice by the token itself."""
    path = tmp_path / "tokens.yaml"
    entries = [
        {"identity": name, "roles": ROLES[name]}
        | ({"token_sha256": digest(tok)} if name in ("rita", "rob") else {"token": tok})
        for name, tok in TOKENS.items()
    ]
    path.write_text(yaml.safe_dump({"tokens": entries}))
    return path


def cli(home: Path, *args: str, env: dict[str, str] | None = None) -> Result:
    """Run a command with --json: exit code, its one JSON object, standard error."""
    result = CliRunner().invoke(app, [*args, "--home", str(home), "--json"], env=env)
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    lines = [line for line in result.stdout.splitlines() if line.strip()]
    assert len(lines) == 1, result.stdout  # exactly one JSON object, notices go elsewhere
    return Result(result.exit_code, json.loads(lines[0]), result.stderr)


def as_(table: Path, who: str | None) -> dict[str, str]:
    """The environment of a caller holding ``who``'s token (none when ``who`` is None)."""
    env = {"PLANBOUND_AUTH_FILE": str(table)}
    if who is not None:
        env["PLANBOUND_TOKEN"] = TOKENS.get(who, who)
    return env


def plan_file(tmp_path: Path, order: str) -> Path:
    path = tmp_path / f"cancel-{order.strip('#')}.json"
    path.write_text(
        json.dumps(
            [
                {"id": "who", "name": "find_user_id_by_email", "arguments": {"email": FATIMA}},
                {
                    "id": "w",
                    "name": "cancel_pending_order",
                    "arguments": {"order_id": order, "reason": "no longer needed"},
                },
            ]
        )
    )
    return path


def started(home: Path, tmp_path: Path, order: str, env: dict[str, str], *extra: str) -> str:
    run = cli(home, "run", "--plan", str(plan_file(tmp_path, order)), *extra, env=env)
    assert run.code == 0 and run.out["status"] == "awaiting_approval", run
    assert [p["step_id"] for p in run.out["pending"]] == ["w"]
    return str(run.out["thread_id"])


def order_status(home: Path, order: str) -> str:
    stores = open_stores(home)
    try:
        with stores.lock:
            found = RetailDB(stores.domain).get_order(order)
    finally:
        stores.close()
    assert found is not None
    return str(found["status"])


def thread_state(home: Path, thread: str) -> tuple[str, int]:
    """A thread's status and how many checkpoints it has (to show it did not move)."""
    status = cli(home, "status", thread)
    history = cli(home, "history", thread, "--limit", "1000")
    assert status.code == 0 and history.code == 0
    return status.out["status"], len(history.out["checkpoints"])


def approvals_of(home: Path, decision_id: str) -> list[tuple[str, str, list[str]]]:
    stores = open_stores(home)
    try:
        with stores.lock:
            rows = Approvals(stores.domain).rows(decision_id)
    finally:
        stores.close()
    return [(r.step_id, r.reviewer, list(r.roles)) for r in rows]


def journalled(home: Path, decision_id: str) -> list[tuple[str, str, list[str]]]:
    """The review answers journalled for a decision: (outcome, reviewer, roles)."""
    stores = open_stores(home)
    try:
        with stores.lock:
            entries = AuditLog(stores.domain).entries(decision_id)
    finally:
        stores.close()
    return [
        (e.body["outcome"], e.body["reviewer"], e.body["roles"])
        for e in entries
        if e.kind == "answer"
    ]


def test_a_reviewer_token_cannot_approve_a_high_value_order_a_supervisor_token_can(
    home: Path, tmp_path: Path, table: Path
) -> None:
    thread = started(home, tmp_path, BIG, as_(table, "alice"))
    before = thread_state(home, thread)

    refused = cli(home, "approve", thread, "--all", "--approve", env=as_(table, "rita"))
    assert refused.code == 2 and "supervisor" in refused.out["error"], refused
    assert "rita may not approve step w" in refused.out["error"]

    # Naming a role does not lend it: the role is the token's.
    claimed = cli(
        home,
        "approve",
        thread,
        "--all",
        "--approve",
        "--role",
        "supervisor",
        env=as_(table, "rita"),
    )
    assert claimed.code == 2, claimed
    assert "--role cannot be given with a token" in claimed.out["error"]
    # Nor does a raw answer naming another reviewer and role: both are the token's.
    shown = cli(home, "status", thread, env=as_(table, "rita")).out
    payload = {"decisions": [{"type": "approve"}], "reviewer": "sam", "role": "supervisor"}
    payload = naming(shown, payload)
    raw = cli(home, "approve", thread, "--payload", json.dumps(payload), env=as_(table, "rita"))
    assert raw.code == 2 and "rita may not approve step w" in raw.out["error"], raw
    assert thread_state(home, thread) == before
    assert order_status(home, BIG) == "pending"

    done = cli(home, "approve", thread, "--all", "--approve", env=as_(table, "sam"))
    assert done.code == 0 and done.out["status"] == "completed", done
    assert LOCAL_MODE not in done.err
    assert order_status(home, BIG) == "cancelled"
    decision = done.out["decision_id"]
    assert approvals_of(home, decision) == [("w", "sam", ["supervisor"])]
    assert journalled(home, decision) == [
        ("refused", "rita", ["reviewer"]),
        ("refused", "rita", ["reviewer"]),
        ("accepted", "sam", ["supervisor"]),
    ]


def test_the_requester_cannot_approve_their_own_high_risk_step(
    home: Path, tmp_path: Path, table: Path
) -> None:
    # --actor naming someone else is refused; naming the token's holder is the same run.
    other = cli(
        home, "run", "--plan", str(plan_file(tmp_path, SMALL)), "--actor", "rita",
        env=as_(table, "rob"),
    )  # fmt: skip
    assert other.code == 2 and "is not the authenticated caller 'rob'" in other.out["error"]

    thread = started(home, tmp_path, SMALL, as_(table, "rob"), "--actor", "rob")
    before = thread_state(home, thread)
    own = cli(home, "approve", thread, "--all", "--approve", env=as_(table, "rob"))
    assert own.code == 2 and "no_self_approval" in own.out["error"], own
    assert "rob asked for this run" in own.out["error"]
    assert thread_state(home, thread) == before
    assert order_status(home, SMALL) == "pending"

    done = cli(home, "approve", thread, "--all", "--approve", env=as_(table, "rita"))
    assert done.code == 0 and done.out["status"] == "completed", done
    assert approvals_of(home, done.out["decision_id"]) == [("w", "rita", ["reviewer"])]


def test_the_actor_of_a_run_is_the_token_holder(home: Path, tmp_path: Path, table: Path) -> None:
    # alice starts the run without naming herself; as its requester she may not approve it
    # (she has no reviewing role), and rob, who did not ask, may.
    thread = started(home, tmp_path, SMALL, as_(table, "alice"))
    requester = cli(home, "approve", thread, "--all", "--reject", "no", env=as_(table, "alice"))
    assert requester.code == 2, requester
    assert "alice may not answer a review" in requester.out["error"]
    assert "requester" in requester.out["error"]
    done = cli(home, "approve", thread, "--all", "--approve", env=as_(table, "rob"))
    assert done.code == 0 and done.out["status"] == "completed", done


def test_reviewer_with_a_token_is_refused(home: Path, tmp_path: Path, table: Path) -> None:
    thread = started(home, tmp_path, SMALL, as_(table, "alice"))
    before = thread_state(home, thread)
    named = cli(
        home, "approve", thread, "--all", "--approve", "--reviewer", "sue", env=as_(table, "rita")
    )
    assert named.code == 2, named
    assert "--reviewer cannot be given with a token" in named.out["error"]
    assert "the reviewer and roles are the token's (rita)" in named.out["error"]
    both = cli(
        home, "approve", thread, "--all", "--approve", "--reviewer", "sue", "--role", "admin",
        env=as_(table, "rita"),
    )  # fmt: skip
    assert both.code == 2 and "--reviewer and --role cannot be given" in both.out["error"]
    assert thread_state(home, thread) == before


def test_a_missing_or_unknown_token_exits_2_and_leaves_the_thread(
    home: Path, tmp_path: Path, table: Path
) -> None:
    plan = str(plan_file(tmp_path, SMALL))
    nobody = cli(home, "run", "--plan", plan, "--thread", "t-none", env=as_(table, None))
    assert nobody.code == 2 and "set PLANBOUND_TOKEN" in nobody.out["error"], nobody
    stranger = cli(home, "run", "--plan", plan, "--thread", "t-none", env=as_(table, UNKNOWN))
    assert stranger.code == 2 and "unknown token" in stranger.out["error"], stranger
    assert UNKNOWN not in json.dumps(stranger.out) + stranger.err
    assert cli(home, "status", "t-none").code == 2  # no thread was created

    thread = started(home, tmp_path, SMALL, as_(table, "alice"))
    before = thread_state(home, thread)
    missing = cli(home, "approve", thread, "--all", "--approve", env=as_(table, None))
    assert missing.code == 2 and "set PLANBOUND_TOKEN" in missing.out["error"], missing
    unknown = cli(home, "approve", thread, "--all", "--approve", env=as_(table, UNKNOWN))
    assert unknown.code == 2 and "unknown token" in unknown.out["error"], unknown
    assert UNKNOWN not in json.dumps(unknown.out) + unknown.err
    malformed = cli(home, "approve", thread, "--all", "--approve", env=as_(table, "two words"))
    assert malformed.code == 2 and "PLANBOUND_TOKEN" in malformed.out["error"], malformed
    assert "two words" not in json.dumps(malformed.out) + malformed.err
    assert thread_state(home, thread) == before
    assert journalled(home, cli(home, "status", thread).out["decision_id"]) == []

    # A token read from a file works like PLANBOUND_TOKEN (and wins over it).
    absent = cli(
        home, "approve", thread, "--all", "--approve", "--token-file", str(tmp_path / "none"),
        env=as_(table, None),
    )  # fmt: skip
    assert absent.code == 2 and "--token-file" in absent.out["error"], absent
    token_file = tmp_path / "rita.token"
    token_file.write_text(TOKENS["rita"] + "\n")
    done = cli(
        home, "approve", thread, "--all", "--approve", "--token-file", str(token_file),
        env=as_(table, UNKNOWN),
    )  # fmt: skip
    assert done.code == 0 and done.out["status"] == "completed", done
    assert approvals_of(home, done.out["decision_id"]) == [("w", "rita", ["reviewer"])]


def test_without_a_table_the_operator_is_trusted_and_told_so(home: Path, tmp_path: Path) -> None:
    thread = started(home, tmp_path, BIG, {}, "--actor", "rob")
    assert LOCAL_MODE not in cli(home, "status", thread).err  # only commands that answer

    # Self-declared, as before: a named supervisor approves the high-value order.
    done = cli(
        home, "approve", thread, "--all", "--approve", "--reviewer", "sue", "--role", "supervisor"
    )
    assert done.code == 0 and done.out["status"] == "completed", done
    assert done.err.count(LOCAL_MODE) == 1
    assert "local mode" not in json.dumps(done.out)
    assert approvals_of(home, done.out["decision_id"]) == [("w", "sue", ["supervisor"])]
    assert order_status(home, BIG) == "cancelled"

    # A token where no table can check it is a mistake, not silently ignored.
    again = started(home, tmp_path, SMALL, {})
    stray = cli(
        home, "approve", again, "--all", "--approve", "--reviewer", "sue",
        env={"PLANBOUND_TOKEN": TOKENS["sam"]},
    )  # fmt: skip
    assert stray.code == 2 and "no token table is configured" in stray.out["error"], stray
    assert TOKENS["sam"] not in json.dumps(stray.out) + stray.err
    assert cli(home, "status", again).out["status"] == "awaiting_approval"


def test_the_token_setting_is_validated_and_never_shown(monkeypatch: pytest.MonkeyPatch) -> None:
    secret = "a secret with spaces"
    monkeypatch.setenv("PLANBOUND_TOKEN", secret)
    with pytest.raises(ConfigError, match="PLANBOUND_TOKEN") as caught:
        Settings.load()
    assert secret not in str(caught.value)
    monkeypatch.setenv("PLANBOUND_TOKEN", f"  {TOKENS['sam']}\n")
    settings = Settings.load()
    assert settings.token is not None and settings.token.get_secret_value() == TOKENS["sam"]
    assert TOKENS["sam"] not in repr(settings)
    # Only the documented names are read: a variable named like the field is not.
    monkeypatch.delenv("PLANBOUND_TOKEN")
    monkeypatch.setenv("TOKEN", TOKENS["sam"])
    assert Settings.load().token is None
    assert not Settings.load().has_token_table
