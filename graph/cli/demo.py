"""The ``planbound demo`` command: one governed cancellation, end to end."""

from __future__ import annotations

from typing import Any

from rich.markup import escape

from checkpoints.factory import Stores
from graph.cli import render
from graph.cli.common import (
    HomeOpt,
    JsonOpt,
    emit,
    fail,
    guarded,
    home_services,
    out,
    say_local_mode,
)
from graph.runner import Runner
from tools.retail import RetailDB, load_shipped

DEMO_ORDER = "#W2974929"
DEMO_REQUEST = (
    "Hi, I'm fatima.anderson1447@example.com. Please cancel my order #W2974929, "
    "reason: no longer needed."
)
DEMO_REVIEWER = "demo-reviewer"


def demo_cmd(
    home: HomeOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Seed the shipped data, plan a cancellation, approve it and show the change."""
    services = guarded(as_json, lambda: home_services(home))
    if services.settings.has_token_table:
        fail(
            "the demo approves its own review as a local operator; it does not run with a "
            "token table configured (PLANBOUND_AUTH_FILE or PLANBOUND_AUTH_TOKENS)",
            as_json,
        )
    say_local_mode()
    services.seed(load_shipped())
    stores = services.stores
    runner = Runner(services=services)
    before = _order(stores, DEMO_ORDER)
    first = runner.start(request=DEMO_REQUEST, actor="demo")
    final = first
    if first["status"] == "awaiting_approval":
        final = runner.resume(
            first["thread_id"],
            {
                "decisions": [{"type": "approve"}] * len(first["pending"]),
                "decision_id": first["decision_id"],
                "plan_id": first["plan"]["id"],
                "reviewer": DEMO_REVIEWER,
            },
        )
    after = _order(stores, DEMO_ORDER)
    if as_json:
        emit({**final, "before": before, "after": after})
        return
    out.rule("planbound demo")
    out.print(f"request: {escape(repr(DEMO_REQUEST))}")
    render.outcome(first)
    if final is not first:
        out.print(f"[bold]approved[/] by {escape(DEMO_REVIEWER)}")
        render.outcome(final)
    out.print(
        f"order {escape(DEMO_ORDER)} status: "
        f"{escape(str(before.get('status')))} -> {escape(str(after.get('status')))}"
    )


def _order(stores: Stores, order_id: str) -> dict[str, Any]:
    """Return an order as the domain holds it (empty if there is none)."""
    with stores.lock:
        return RetailDB(stores.domain).get_order(order_id) or {}
