"""What every measurement runs: the two workloads, the targets and the run sizes.

* **read**: a read-only ten-step plan (find the user, nine lookups); no approval.
* **write**: find the user, read the order, change its shipping address (a write that needs
  a reviewer): run → interrupt → resume with an approval → the write. Each concurrent worker
  writes its own pending order, so workers never contend for a record.
"""

from __future__ import annotations

import functools
import uuid
from dataclasses import dataclass
from typing import Any

from langchain_core.runnables import RunnableConfig

from graph.runner import Runner
from graph.state import InputState
from tools.retail import load_shipped

USER_ID = "fatima_anderson_2157"
READ_PLAN: list[dict[str, Any]] = [
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
"""The τ² action list of the read workload: ten read-only tool calls."""

PLAN = READ_PLAN
"""The read workload's plan (the name the profile and the older phases use)."""

TOOL_CALLS = len(READ_PLAN)
"""Tool calls per read decision."""

ADDRESSES = (
    {"address1": "1 Elm St", "address2": "", "city": "Austin", "state": "TX"},
    {"address1": "2 Oak Ave", "address2": "Apt 4", "city": "Dallas", "state": "TX"},
)
"""The write workload alternates between two addresses, so every write changes the order."""

ACTOR = "bench"
"""The requester of every bench decision."""
REVIEWER = "bench-reviewer"
"""Who approves the write workload's step (not the requester: no self-approval)."""
APPROVE: dict[str, Any] = {
    "decisions": [{"type": "approve"}],
    "reviewer": REVIEWER,
    "role": "reviewer",
}
"""The reviewer's answer (the decision and plan ids are added per run)."""

TARGET_READ_RATIO = 1.0
"""A read decision costs at most this many raw LangGraph runs of the same tool calls."""
TARGET_WRITE_RATIO = 2.0
"""A write decision with approval costs at most this many raw runs with interrupt + resume."""
TARGET_READ_DPS = 40.0
"""Read decisions per second at :data:`TARGET_AT` concurrent callers, on 2 cores."""
TARGET_WRITE_DPS = 20.0
"""Write decisions (with approval) per second at :data:`TARGET_AT` concurrent callers."""
TARGET_AT = 50
"""The concurrency the decisions/s targets are stated for."""
TARGET_VERIFY_P50_MS = 5.0
"""Verify of a ten-step plan, median."""


@dataclass(frozen=True)
class WriteTarget:
    """One user and one of their pending orders (worth less than the approval threshold)."""

    email: str
    user_id: str
    order_id: str


@functools.cache
def write_targets() -> tuple[WriteTarget, ...]:
    """Pending orders under 1000 of distinct users, in the shipped data's order."""
    data = load_shipped()
    users, seen, out = data["users"], set(), []
    for order in data["orders"].values():
        uid = order["user_id"]
        total = sum(float(i["price"]) for i in order["items"])
        if order["status"] != "pending" or uid in seen or total > 1000:
            continue
        seen.add(uid)
        out.append(WriteTarget(users[uid]["email"], uid, order["order_id"]))
    return tuple(out)


def write_plan(target: WriteTarget, turn: int) -> list[dict[str, Any]]:
    """The write workload's plan for ``target``; ``turn`` picks the address."""
    address = {**ADDRESSES[turn % len(ADDRESSES)], "country": "USA", "zip": "78701"}
    return [
        {"name": "find_user_id_by_email", "arguments": {"email": target.email}},
        {"name": "get_order_details", "arguments": {"order_id": target.order_id}},
        {
            "name": "modify_pending_order_address",
            "arguments": {"order_id": target.order_id, **address},
        },
    ]


@dataclass(frozen=True)
class Settings:
    """How much of each phase to run.

    Attributes:
        rounds: Latency rounds (each: one decision and one raw run of both workloads).
        floor_per_round: 1 KB INSERT commits timed per round.
        concurrency: Concurrent callers for the throughput phase.
        per_worker: Timed decisions per caller, by concurrency.
        processes: Worker processes of the multi-process layout.
        bytes_runs: Decisions (and raw runs) per workload whose writes are measured.
        profile_runs: Read decisions averaged for the time breakdown.
        verify_runs: Timed verifications of the ten-step plan.
        scaling: Worker process counts for the scaling phase (empty: skipped).
        warmup: Untimed rounds before the latency rounds; with 0 the throughput workers
            are not warmed up either (a smoke run).
    """

    rounds: int
    floor_per_round: int
    concurrency: tuple[int, ...]
    per_worker: dict[int, int]
    processes: int
    bytes_runs: int
    profile_runs: int
    verify_runs: int
    scaling: tuple[int, ...] = ()
    warmup: int = 2


FULL = Settings(
    rounds=20,
    floor_per_round=10,
    concurrency=(1, 50),
    per_worker={1: 20, 10: 6, 50: 3},
    processes=2,
    bytes_runs=10,
    profile_runs=5,
    verify_runs=200,
    scaling=(1, 2, 4),
)
"""The default run (a few minutes)."""

QUICK = Settings(
    rounds=2,
    floor_per_round=5,
    concurrency=(1, 4),
    per_worker={1: 2, 4: 1},
    processes=2,
    bytes_runs=2,
    profile_runs=1,
    verify_runs=10,
    warmup=0,
)
"""``--quick``: a smoke run (under a minute)."""


def run_read(runner: Runner, thread_id: str | None = None) -> dict[str, Any]:
    """Run one read decision and return its outcome.

    Raises:
        RuntimeError: the decision did not complete.
    """
    outcome = runner.start(explicit_plan=READ_PLAN, actor=ACTOR, thread_id=thread_id)
    if outcome["status"] != "completed":
        raise RuntimeError(f"the read decision ended {outcome['status']}: {outcome['error']}")
    return outcome


run_decision = run_read
"""The read workload under its older name."""


def run_write(runner: Runner, target: WriteTarget, turn: int) -> dict[str, Any]:
    """Run one write decision: start, stop for review, approve, resume, write.

    Raises:
        RuntimeError: it did not stop for review, or did not complete after the approval.
    """
    first = runner.start(explicit_plan=write_plan(target, turn), actor=ACTOR)
    if first["status"] != "awaiting_approval":
        raise RuntimeError(f"the write decision ended {first['status']}: {first['error']}")
    answer = {**APPROVE, "decision_id": first["decision_id"], "plan_id": first["plan"]["id"]}
    done = runner.resume(first["thread_id"], answer)
    if done["status"] != "completed":
        raise RuntimeError(f"the approved write ended {done['status']}: {done['error']}")
    return done


def invoke_only(runner: Runner) -> None:
    """Run one read decision through ``graph.invoke`` alone (no Runner checks, no outcome read).

    Raises:
        RuntimeError: the decision did not complete.
    """
    config: RunnableConfig = {"configurable": {"thread_id": uuid.uuid4().hex}}
    payload: InputState = {"explicit_plan": READ_PLAN, "actor": ACTOR}
    final = runner.graph.invoke(payload, config, context=runner.context, durability="sync")
    if final.get("status") != "completed":
        raise RuntimeError(f"the bench decision ended {final.get('status')}")
