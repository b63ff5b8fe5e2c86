"""History, safe and live replay, rollback with conflicts, and pruning, on SQLite and PostgreSQL."""

from __future__ import annotations

from typing import Any

import pytest
from answering import naming

from checkpoints.factory import Stores
from checkpoints.ledger import Approvals, Ledger
from checkpoints.retention import prune
from graph import engine
from graph.runner import Runner
from tools.retail import RetailDB, export, load_shipped
from tools.retail import tools as T

EMAIL = "fatima.anderson1447@example.com"
ORDER = "#W2974929"
ADDRESS = {
    "address1": "1 Elm St",
    "address2": "",
    "city": "Austin",
    "state": "TX",
    "country": "USA",
    "zip": "78701",
}


def plan() -> dict[str, Any]:
    return {
        "steps": [
            {"id": "who", "tool": "find_user_id_by_email", "args": {"email": EMAIL}},
            {
                "id": "move",
                "tool": "modify_user_address",
                "args": {"user_id": "$who", **ADDRESS},
            },
            {
                "id": "cancel",
                "tool": "cancel_pending_order",
                "depends_on": ["move"],
                "args": {"order_id": ORDER, "reason": "no longer needed"},
            },
        ]
    }


APPROVE_ALL = {"decisions": [{"type": "approve"}, {"type": "approve"}], "reviewer": "rev"}


@pytest.fixture
def runner(stores: Stores) -> Runner:
    return Runner(stores)


def completed(runner: Runner) -> dict[str, Any]:
    first = runner.start(explicit_plan=plan())
    done = runner.resume(first["thread_id"], naming(first, APPROVE_ALL))
    assert done["status"] == "completed", done
    return done


def checkpoint_where(runner: Runner, thread: str, **match: Any) -> str:
    for row in runner.history(thread):
        if all(row[k] == v for k, v in match.items()):
            return str(row["checkpoint_id"])
    raise AssertionError(f"no checkpoint with {match}")


def test_history_shows_the_ledger_entries_each_checkpoint_covers(runner: Runner) -> None:
    done = completed(runner)
    rows = list(runner.history(done["thread_id"]))
    assert rows[0]["ledger"] == {"who": "succeeded", "move": "succeeded", "cancel": "succeeded"}
    # The read and the first write run in one super-step; the second write in its own.
    assert any(r["ledger"] == {"who": "succeeded", "move": "succeeded"} for r in rows)
    assert rows[-1]["ledger"] == {}


def test_safe_replay_serves_recorded_outcomes_and_calls_no_tool(
    runner: Runner, stores: Stores, monkeypatch: pytest.MonkeyPatch
) -> None:
    done = completed(runner)
    after = export(stores.domain)
    cp = checkpoint_where(runner, done["thread_id"], next=["execute"], steps_done=[])
    monkeypatch.setattr(engine, "_call_with_timeout", _refuse)
    again = runner.replay(done["thread_id"], cp)
    assert again["status"] == "completed", again
    assert [r["output"] for r in again["results"]] == [r["output"] for r in done["results"]]
    assert export(stores.domain) == after
    rows = Ledger(stores.domain).rows(done["decision_id"])
    assert [(r.step_id, r.attempts) for r in rows] == [("who", 1), ("move", 1), ("cancel", 1)]


def _refuse(*args: Any, **kwargs: Any) -> Any:
    raise AssertionError("a tool was called")


def test_safe_replay_stops_before_a_write_that_never_ran(
    runner: Runner, stores: Stores, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = runner.start(explicit_plan=plan())
    cp = checkpoint_where(runner, first["thread_id"], next=["approve"])
    monkeypatch.setattr(engine, "_call_with_timeout", _refuse)
    out = runner.replay(first["thread_id"], cp)
    assert out["status"] == "stopped"
    assert "move, cancel never ran" in out["error"] and "--live" in out["error"]
    assert export(stores.domain) == load_shipped()


def test_live_replay_asks_for_approval_again_then_runs(runner: Runner, stores: Stores) -> None:
    first = runner.start(explicit_plan=plan())
    cp = checkpoint_where(runner, first["thread_id"], next=["approve"])
    again = runner.replay(first["thread_id"], cp, live=True)
    assert again["status"] == "awaiting_approval"
    assert [p["step_id"] for p in again["pending"]] == ["move", "cancel"]
    done = runner.resume(first["thread_id"], naming(again, APPROVE_ALL))
    assert done["status"] == "completed"
    assert export(stores.domain)["orders"][ORDER]["status"] == "cancelled"
    assert [a.step_id for a in Approvals(stores.domain).rows(done["decision_id"])] == [
        "move",
        "cancel",
    ]


def test_rollback_undoes_writes_newest_first_and_forks_back(runner: Runner, stores: Stores) -> None:
    done = completed(runner)
    thread = done["thread_id"]
    cp = checkpoint_where(runner, thread, next=["execute"], steps_done=[])
    report = runner.rollback(thread, cp)
    assert report["status"] == "rolled_back", report
    assert report["undone"] == [
        "cancel: undid cancel_pending_order (1 record(s) restored)",
        "move: undid modify_user_address (1 record(s) restored)",
    ]
    assert report["conflicts"] == [] and report["irreversible"] == []
    assert export(stores.domain) == load_shipped()
    statuses = {r.step_id: r.status for r in Ledger(stores.domain).rows(done["decision_id"])}
    assert statuses == {"who": "succeeded", "move": "compensated", "cancel": "compensated"}
    head = next(iter(runner.history(thread)))
    assert head["checkpoint_id"] == report["forked_checkpoint"]
    assert head["next"] == ["execute"] and head["source"] == "fork"
    # Continuing the forked thread never re-applies a rolled-back step under the same key.
    resumed = runner.proceed(thread)
    assert resumed["status"] in ("failed", "rolled_back")
    assert export(stores.domain) == load_shipped()


def test_rollback_reports_a_conflict_and_overwrites_nothing(runner: Runner, stores: Stores) -> None:
    done = completed(runner)
    thread = done["thread_id"]
    # Someone changes the same user after the run.
    with stores.lock, stores.domain.transaction(write=True):
        T.modify_user_address.invoke(
            {"user_id": "fatima_anderson_2157", **ADDRESS, "city": "Dallas", "db": RetailDB(
                stores.domain)}
        )  # fmt: skip
    world = export(stores.domain)
    head_before = next(iter(runner.history(thread)))["checkpoint_id"]
    cp = checkpoint_where(runner, thread, next=["execute"], steps_done=[])
    report = runner.rollback(thread, cp)
    assert report["status"] == "conflict"
    assert report["undone"] == ["cancel: undid cancel_pending_order (1 record(s) restored)"]
    assert report["conflicts"] == [
        "move: users fatima_anderson_2157 changed since modify_user_address ran; left as is"
    ]
    assert export(stores.domain)["users"] == world["users"]  # the later change survives
    assert next(iter(runner.history(thread)))["checkpoint_id"] == head_before  # not moved


def test_prune_deletes_finished_threads_and_keeps_the_audit_trail(
    runner: Runner, stores: Stores
) -> None:
    done = completed(runner)
    waiting = runner.start(explicit_plan={"steps": plan()["steps"][:2]})
    assert waiting["status"] == "awaiting_approval"
    before = len(list(runner.history(done["thread_id"])))
    dry = prune(stores, runner.graph, older_than_days=0, dry_run=True)
    assert dry.threads_pruned >= 1 and dry.checkpoints_deleted >= before - 1
    assert len(list(runner.history(done["thread_id"]))) == before

    kept = prune(stores, runner.graph, older_than_days=0, keep_latest=True)
    assert kept.threads_pruned >= 1
    assert [r["status"] for r in runner.history(done["thread_id"])] == ["completed"]
    assert runner.outcome(done["thread_id"])["status"] == "completed"

    prune(stores, runner.graph, older_than_days=0)
    assert (
        runner.graph.get_state({"configurable": {"thread_id": done["thread_id"]}}).created_at
        is None
    )
    assert runner.outcome(waiting["thread_id"])["status"] == "awaiting_approval"  # untouched
    assert len(Ledger(stores.domain).rows(done["decision_id"])) == 3  # the ledger survives
    assert len(Approvals(stores.domain).rows(done["decision_id"])) == 2

    recent = prune(stores, runner.graph, older_than_days=30)
    assert recent.threads_pruned == 0
