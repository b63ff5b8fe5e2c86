"""The engine's retry, timeout and exactly-once behaviour on a real SQLite database."""

from __future__ import annotations

import time
from typing import Annotated, Any

from langchain_core.tools import InjectedToolArg, tool

from checkpoints.factory import Stores
from checkpoints.ledger import Ledger
from graph.engine import StepCall, run_step
from guards.errors import ReferenceUnresolved
from guards.plan import resolve_refs
from tools.catalog import CatalogEntry, ToolError, ToolSpec

calls: dict[str, int] = {}


@tool
def slow(seconds: float, db: Annotated[Any, InjectedToolArg] = None) -> str:
    """Sleep.

    Args:
        seconds: How long.
        db: Injected store.
    """
    calls["slow"] = calls.get("slow", 0) + 1
    time.sleep(seconds)
    return "done"


@tool
def flaky(fail_times: int, db: Annotated[Any, InjectedToolArg] = None) -> str:
    """Fail with a transient database error a few times, then succeed.

    Args:
        fail_times: Failures before success.
        db: Injected store.
    """
    calls["flaky"] = calls.get("flaky", 0) + 1
    if calls["flaky"] <= fail_times:
        raise db.conn.transient[0]("database is locked")  # the backend's own lock error
    return "ok"


@tool
def refuse(db: Annotated[Any, InjectedToolArg] = None) -> str:
    """Refuse like a business rule.

    Args:
        db: Injected store.
    """
    calls["refuse"] = calls.get("refuse", 0) + 1
    raise ToolError("Non-pending order cannot be cancelled")


def entry(t: Any, **spec: Any) -> CatalogEntry:
    return CatalogEntry(t, ToolSpec(t.name, "1.0.0", "low", "read", **spec))


def test_timeout_is_retried_then_reported(stores: Stores) -> None:
    calls.clear()
    e = entry(slow, timeout_s=0.05, retries=1)
    result = run_step(
        StepCall("d1", "s1", e, {"seconds": 0.2}), stores.domain, stores.lock, backoff_s=0
    )
    assert not result.ok
    assert result.error == "timed out after 0.05s"
    assert result.attempts == 2 and calls["slow"] == 2
    row = Ledger(stores.domain).get("d1", "s1")
    assert row is not None and row.status == "failed" and row.attempts == 2


def test_transient_errors_are_retried_up_to_the_spec(stores: Stores) -> None:
    calls.clear()
    ok = run_step(
        StepCall("d2", "s1", entry(flaky, retries=2), {"fail_times": 2}),
        stores.domain,
        stores.lock,
        backoff_s=0,
    )
    assert ok.ok and ok.output == "ok" and ok.attempts == 3
    calls.clear()
    bad = run_step(
        StepCall("d3", "s1", entry(flaky, retries=1), {"fail_times": 5}),
        stores.domain,
        stores.lock,
        backoff_s=0,
    )
    assert not bad.ok and bad.attempts == 2 and "database is locked" in (bad.error or "")


def test_business_refusals_are_not_retried(stores: Stores) -> None:
    calls.clear()
    res = run_step(
        StepCall("d4", "s1", entry(refuse, retries=3), {}), stores.domain, stores.lock, backoff_s=0
    )
    assert not res.ok and res.error == "Non-pending order cannot be cancelled"
    assert res.attempts == 1 and calls["refuse"] == 1
    # The outcome is recorded: asking again returns it without calling the tool.
    again = run_step(StepCall("d4", "s1", entry(refuse, retries=3), {}), stores.domain, stores.lock)
    assert again.error == res.error and calls["refuse"] == 1


def test_resolve_refs_walks_dicts_and_lists() -> None:
    outputs = {"s1": {"items": [{"item_id": "1"}, {"item_id": "2"}]}, "s2": "u_1"}
    args = {"a": "$s1.items.1.item_id", "b": ["$s2", "$$literal"], "c": 3}
    assert resolve_refs(args, outputs, "s3") == {"a": "2", "b": ["u_1", "$literal"], "c": 3}
    try:
        resolve_refs({"a": "$s1.items.7"}, outputs, "s3")
    except ReferenceUnresolved as exc:
        assert exc.reason == "'$s1.items.7': the output has no 's1.items.7'"
    else:
        raise AssertionError("missing path must fail")
