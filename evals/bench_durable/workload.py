"""What every measurement runs: the ten-step read-only plan, the targets and the run sizes."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from langchain_core.runnables import RunnableConfig

from graph.runner import Runner
from graph.state import InputState

USER_ID = "fatima_anderson_2157"
PLAN: list[dict[str, Any]] = [
    {"name": "find_user_id_by_email", "arguments": {"email": "fatima.anderson1447@example.com"}},
    {"name": "get_user_details", "arguments": {"user_id": USER_ID}},
    {"name": "get_order_details", "arguments": {"order_id": "#W2974929"}},
    {"name": "get_order_details", "arguments": {"order_id": "#W4111294"}},
    {"name": "get_order_details", "arguments": {"order_id": "#W4514908"}},
    {"name": "get_item_details", "arguments": {"item_id": "3877188862"}},
    {"name": "get_product_details", "arguments": {"product_id": "1968349452"}},
    {"name": "get_item_details", "arguments": {"item_id": "2757705742"}},
    {"name": "list_all_product_types", "arguments": {}},
    {"name": "calculate", "arguments": {"expression": "182.03 * 2"}},
]
"""The τ² action list every decision runs: ten read-only tool calls."""

TRANSITIONS = len(PLAN)
"""Transitions per decision: one per tool call (one super-step each, in both graphs)."""

ACTOR = "bench"
"""The requester of every bench decision."""

TARGET_VS_RAW = 1.25
"""Issue 4: a planbound transition costs at most this many raw LangGraph transitions."""
TARGET_VS_FLOOR = 3.0
"""Issue 4: a planbound transition costs at most this many durable 1 KB commits."""
TARGET_DECISIONS_S = 40.0
"""Issue 4: planbound decisions per second at :data:`TARGET_AT` workers."""
TARGET_AT = 50
"""The concurrency :data:`TARGET_DECISIONS_S` is stated for."""


@dataclass(frozen=True)
class Settings:
    """How much of each phase to run.

    Attributes:
        rounds: Latency rounds (one planbound decision, one raw run, floor inserts each).
        floor_per_round: 1 KB INSERT commits timed per round.
        concurrency: Worker threads for the throughput phase.
        per_worker: Timed decisions per worker thread, by concurrency.
        shared_modes: Whether to also measure the one-shared-``Stores`` and raw layouts.
        bytes_runs: Decisions (and raw runs) whose writes are measured.
        profile_runs: Decisions averaged for the time breakdown.
        warmup: Untimed rounds before the latency rounds; with 0 the throughput workers
            are not warmed up either (a smoke run).
    """

    rounds: int
    floor_per_round: int
    concurrency: tuple[int, ...]
    per_worker: dict[int, int]
    shared_modes: bool
    bytes_runs: int
    profile_runs: int
    warmup: int = 2


FULL = Settings(
    rounds=30,
    floor_per_round=10,
    concurrency=(1, 10, 50),
    per_worker={1: 30, 10: 8, 50: 4},
    shared_modes=True,
    bytes_runs=20,
    profile_runs=5,
)
"""The default run (several minutes)."""

QUICK = Settings(
    rounds=3,
    floor_per_round=10,
    concurrency=(1, 10, 50),
    per_worker={1: 3, 10: 1, 50: 1},
    shared_modes=False,
    bytes_runs=3,
    profile_runs=1,
    warmup=0,
)
"""``--quick``: a smoke run (under a minute)."""


def run_decision(runner: Runner) -> dict[str, Any]:
    """Run one planbound decision of :data:`PLAN` and return its outcome.

    Raises:
        RuntimeError: the decision did not complete.
    """
    outcome = runner.start(explicit_plan=PLAN, actor=ACTOR)
    if outcome["status"] != "completed":
        raise RuntimeError(f"the bench decision ended {outcome['status']}: {outcome['error']}")
    return outcome


def invoke_only(runner: Runner) -> None:
    """Run one decision through ``graph.invoke`` alone (no Runner checks, no outcome read).

    Raises:
        RuntimeError: the decision did not complete.
    """
    config: RunnableConfig = {"configurable": {"thread_id": uuid.uuid4().hex}}
    payload: InputState = {"explicit_plan": PLAN, "actor": ACTOR}
    final = runner.graph.invoke(payload, config, context=runner.context, durability="sync")
    if final.get("status") != "completed":
        raise RuntimeError(f"the bench decision ended {final.get('status')}")
