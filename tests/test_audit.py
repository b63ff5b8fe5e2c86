"""``planbound audit``: a decision's story in time order; tampering is detected and named."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from answering import naming
from typer.testing import CliRunner

from checkpoints.audit import AuditLog
from checkpoints.factory import Stores
from graph.cli import app
from graph.runner import RunError, Runner
from graph.services import open_stores
from guards.errors import DecisionInvalid
from tools.retail import load_shipped, seed

ORDER = "#W2974929"
EMAIL = "fatima.anderson1447@example.com"
CANCEL = [
    {"name": "find_user_id_by_email", "arguments": {"email": EMAIL}},
    {"name": "get_order_details", "arguments": {"order_id": ORDER}},
    {
        "name": "cancel_pending_order",
        "arguments": {"order_id": ORDER, "reason": "no longer needed"},
    },
]
APPROVE = {"decisions": [{"type": "approve"}], "role": "reviewer"}


@pytest.fixture(params=["sqlite", "postgres"])
def world(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[Stores, Path]]:
    """Seeded stores and their data directory; the CLI is pointed at the same database."""
    home = tmp_path / "home"
    for name in ("PLANBOUND_DATABASE_URI", "DATABASE_URI", "PLANBOUND_PAUSE_AT"):
        monkeypatch.delenv(name, raising=False)
    uri = request.getfixturevalue("pg_uri") if request.param == "postgres" else None
    if uri is not None:
        monkeypatch.setenv("PLANBOUND_DATABASE_URI", uri)
    stores = open_stores(home, uri=uri)
    with stores.lock:
        seed(stores.domain, load_shipped())
    yield stores, home
    stores.close()


def audit_json(home: Path, decision_id: str) -> tuple[int, dict[str, Any]]:
    result = CliRunner().invoke(app, ["audit", decision_id, "--home", str(home), "--json"])
    lines = [line for line in result.stdout.splitlines() if line.strip()]
    assert len(lines) == 1, result.stdout  # exactly one JSON object
    return result.exit_code, json.loads(lines[0])


def audit_text(home: Path, decision_id: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, ["audit", decision_id, "--home", str(home)])
    return result.exit_code, result.stdout


def entries(stores: Stores, decision_id: str) -> list[Any]:
    with stores.lock:
        return AuditLog(stores.domain).entries(decision_id)


def completed(runner: Runner) -> dict[str, Any]:
    first = runner.start(explicit_plan=CANCEL)
    done = runner.resume(first["thread_id"], naming(first, {**APPROVE, "reviewer": "ann"}))
    assert done["status"] == "completed", done
    return done


def test_the_story_of_a_decision_with_a_refused_a_losing_and_an_accepted_answer(
    world: tuple[Stores, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    stores, home = world
    runner = Runner(stores)
    first = runner.start(explicit_plan=CANCEL)
    thread, decision = first["thread_id"], first["decision_id"]
    with pytest.raises(DecisionInvalid, match="may not approve step s3"):
        runner.resume(thread, naming(first, {**APPROVE, "reviewer": "ann", "role": "intern"}))

    # Ann's answer wins and she is slow to apply it; Bob answers the same review meanwhile.
    monkeypatch.setenv("PLANBOUND_PAUSE_AT", "node:approve")
    monkeypatch.setenv("PLANBOUND_PAUSE_S", "1")
    ends: dict[str, Any] = {}
    winner = threading.Thread(
        target=lambda: ends.update(
            ann=runner.resume(thread, naming(first, {**APPROVE, "reviewer": "ann"}))
        )
    )
    winner.start()
    deadline = time.monotonic() + 10
    while len(entries(stores, decision)) < 3 and time.monotonic() < deadline:
        time.sleep(0.02)  # refused answer, verdict, then ann's accepted answer
    with pytest.raises(RunError, match=f"review of thread {thread} was already decided by ann"):
        runner.resume(thread, naming(first, {**APPROVE, "reviewer": "bob", "role": "supervisor"}))
    winner.join()
    monkeypatch.delenv("PLANBOUND_PAUSE_AT")
    assert ends["ann"]["status"] == "completed", ends

    code, report = audit_json(home, decision)
    assert code == 0, report
    assert report["chain"] == "intact" and report["breaks"] == []
    assert report["decision_id"] == decision and report["threads"] == [thread]
    events = report["events"]
    assert [e["at"] for e in events] == sorted(e["at"] for e in events)
    answers = [e["body"] for e in events if e["kind"] == "answer"]
    assert [(a["reviewer"], a["roles"], a["outcome"]) for a in answers] == [
        ("ann", ["intern"], "refused"),
        ("ann", ["reviewer"], "accepted"),
        ("bob", ["supervisor"], "lost"),
    ]
    assert "may not approve step s3" in answers[0]["detail"]
    assert answers[1]["detail"] == ""
    assert answers[2]["detail"] == f"the review of thread {thread} was already decided by ann"
    assert len({a["checkpoint_id"] for a in answers}) == 1  # all three answered one review

    (verdict,) = [e["body"] for e in events if e["kind"] == "verdict"]
    assert verdict["plan_id"] == first["plan"]["id"] and verdict["plan_source"] == "explicit"
    assert verdict["outcome"] == "needs_approval" and verdict["deny"] == []
    assert [(a["step_id"], a["rules"]) for a in verdict["approval"]] == [
        ("s3", ["writes.need_approval"])
    ]
    assert verdict["policy_version"] == first["verdict"]["policy_version"]
    assert verdict["facts_hash"] == first["verdict"]["facts_hash"]
    assert [s["tool"] for s in verdict["plan"]["steps"]] == [a["name"] for a in CANCEL]

    (used,) = [e["body"] for e in events if e["kind"] == "approval used"]
    assert (used["step_id"], used["reviewer"], used["roles"]) == ("s3", "ann", ["reviewer"])
    outcomes = [(e["step_id"], e["body"]["status"]) for e in events if e["kind"] == "outcome"]
    assert outcomes == [("s1", "succeeded"), ("s2", "succeeded"), ("s3", "succeeded")]
    assert [e["kind"] for e in events if e["source"] != "checkpoint"] == [
        "verdict",
        *["answer"] * 3,
        "outcome",
        "outcome",
        "approval used",  # consumed in the transaction that runs s3
        "outcome",
    ]
    assert [(r["step_id"], r["status"]) for r in report["ledger"]] == outcomes
    assert [(a["step_id"], a["reviewer"]) for a in report["approvals"]] == [("s3", "ann")]
    checkpoints = [e for e in events if e["kind"] == "checkpoint"]
    assert {e["thread_id"] for e in checkpoints} == {thread}
    assert checkpoints[-1]["status"] == "completed"
    assert any(e["next"] == ["approve"] for e in checkpoints)

    code, text = audit_text(home, decision)
    assert code == 0
    assert "chain: intact" in text
    for words in ("refused", "accepted", "lost", "approval by ann", "writes.need_approval"):
        assert words in text


def test_an_undo_is_part_of_the_story_and_the_ledger_still_matches(
    world: tuple[Stores, Path],
) -> None:
    stores, home = world
    runner = Runner(stores)
    done = completed(runner)
    thread = done["thread_id"]
    before = next(r for r in runner.history(thread) if r["next"] == ["execute"])
    report = runner.rollback(thread, before["checkpoint_id"])
    assert report["status"] == "rolled_back", report

    code, story = audit_json(home, done["decision_id"])
    assert code == 0, story["breaks"]
    assert [e["step_id"] for e in story["events"] if e["kind"] == "undo"] == ["s3"]
    assert {r["step_id"]: r["status"] for r in story["ledger"]} == {
        "s1": "succeeded",
        "s2": "succeeded",
        "s3": "compensated",
    }


TAMPERING = {
    "an edited answer": (
        "UPDATE audit_log SET body = ? WHERE decision_id = ? AND stream = 'reviews' AND n = 1",
        "reviews row 1: its content was changed",
    ),
    "a removed journal row": (
        "DELETE FROM audit_log WHERE decision_id = ? AND stream = 'steps' AND n = 4",
        "steps: row 4 is missing (found 5)",
    ),
    "a rewritten outcome": (
        "UPDATE ledger SET status = 'failed' WHERE decision_id = ? AND step_id = 's3'",
        "ledger row s3: status failed, but steps row 5 recorded succeeded",
    ),
}


@pytest.mark.parametrize("tampering", list(TAMPERING))
def test_tampering_is_detected_and_named(world: tuple[Stores, Path], tampering: str) -> None:
    stores, home = world
    done = completed(Runner(stores))
    decision = done["decision_id"]
    steps = [(e.n, e.kind) for e in entries(stores, decision) if e.stream == "steps"]
    assert steps == [
        (1, "verdict"),
        (2, "outcome"),
        (3, "outcome"),
        (4, "approval used"),
        (5, "outcome"),
    ]
    assert audit_json(home, decision)[0] == 0

    sql, problem = TAMPERING[tampering]
    forged = json.dumps({"reviewer": "mallory", "outcome": "accepted", "roles": ["admin"]})
    params = (forged, decision) if sql.count("?") == 2 else (decision,)
    with stores.lock:
        assert stores.domain.execute(sql, params).rowcount == 1

    code, report = audit_json(home, decision)
    assert code == 3
    assert report["chain"] == "broken"
    assert problem in report["breaks"], report["breaks"]
    code, text = audit_text(home, decision)
    assert code == 3
    assert "chain: broken" in text and problem in " ".join(text.split())


def test_an_unknown_decision_is_exit_code_2(world: tuple[Stores, Path]) -> None:
    _, home = world
    code, report = audit_json(home, "no-such-decision")
    assert code == 2
    assert report["error"] == "no decision 'no-such-decision' in the audit journal or the ledger"
