"""Verify latency for a 10-step plan: contracts, facts, policy; p50/p95 over many runs.

Run: ``python -m evals.bench_verify [--runs N]``. It seeds a throw-away domain database,
judges the same compliant 10-step plan ``N`` times and prints one table. The contract check
alone is the baseline each phase is compared with. The policy's memo (answers by input
document) is emptied before each timed policy and verify run, so they evaluate the policy;
the last row shows a verify whose policy answer is memoised (a write re-judged on facts that
did not change).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from typing import Any

from rich.console import Console
from rich.table import Table

from graph.planners.explicit import parse_plan_document
from graph.services import Services
from graph.settings import Settings
from guards.plan import Plan, ancestors
from tools.retail import load_shipped

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


def ten_step_plan() -> Plan:
    """A compliant plan of 10 steps: identity, seven reads, two writes."""
    steps: list[dict[str, Any]] = [
        {"id": "who", "tool": "find_user_id_by_email", "args": {"email": EMAIL}},
        {"id": "user", "tool": "get_user_details", "args": {"user_id": "$who"}},
        {"id": "order", "tool": "get_order_details", "args": {"order_id": ORDER}},
        {
            "id": "item",
            "tool": "get_item_details",
            "args": {"item_id": "$order.items.0.item_id"},
        },
        {
            "id": "product",
            "tool": "get_product_details",
            "args": {"product_id": "$order.items.0.product_id"},
        },
        {"id": "types", "tool": "list_all_product_types", "args": {}},
        {"id": "sum", "tool": "calculate", "args": {"expression": "182.03 * 2"}},
        {"id": "again", "tool": "get_order_details", "args": {"order_id": "$order.order_id"}},
        {
            "id": "move",
            "tool": "modify_pending_order_address",
            "args": {"order_id": "$order.order_id", **ADDRESS},
        },
        {
            "id": "home",
            "tool": "modify_user_address",
            "args": {"user_id": "$who", **ADDRESS},
            "depends_on": ["move"],
        },
    ]
    for prev, step in zip(steps, steps[1:], strict=False):
        step.setdefault("depends_on", [prev["id"]])
    return parse_plan_document({"goal": "bench", "steps": steps})


def _time(fn: Callable[[], Any], runs: int) -> list[float]:
    for _ in range(5):
        fn()
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - start) * 1000)
    return samples


def _pct(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main(argv: list[str] | None = None) -> None:
    """Run the benchmark and print the table."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=200, help="timed runs per phase")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory() as home:
        services = Services(Settings.load(home=home, database_uri=None))
        services.seed(load_shipped())
        stores = services.stores
        verifier, policy, catalog = services.verifier, services.policy, services.catalog
        plan = ten_step_plan()
        verdict = verifier.verify(plan, stores.domain, stores.lock, "bench").verdict
        if verdict.outcome != "needs_approval":
            raise SystemExit(f"the bench plan should need approval, got {verdict.reasons}")
        facts = verifier.facts(plan, stores.domain, stores.lock)
        document = policy.input_for(plan, catalog, facts, ancestors(plan), "bench")

        def cold(fn: Callable[[], Any]) -> Callable[[], Any]:
            # Each run evaluates the policy: nothing memoised from the run before.
            def run() -> Any:
                policy.forget()
                return fn()

            return run

        phases = {
            "contracts (baseline)": lambda: verifier.contracts(plan),
            "facts (read-only lookups)": lambda: verifier.facts(plan, stores.domain, stores.lock),
            "policy (regopy)": cold(lambda: policy.decide(document)),
            "verify total": cold(
                lambda: verifier.verify(plan, stores.domain, stores.lock, "bench")
            ),
            "verify, policy answer memoised": lambda: verifier.verify(
                plan, stores.domain, stores.lock, "bench"
            ),
        }
        results = {name: _time(fn, args.runs) for name, fn in phases.items()}
        stores.close()

    base = statistics.median(results["contracts (baseline)"])
    table = Table(title=f"verify latency, 10-step plan, {args.runs} runs (ms)")
    for column in ("phase", "p50", "p95", "mean", "p50 / baseline"):
        table.add_column(column, justify="right" if column != "phase" else "left")
    for name, samples in results.items():
        p50 = statistics.median(samples)
        table.add_row(
            name,
            f"{p50:.2f}",
            f"{_pct(samples, 0.95):.2f}",
            f"{statistics.fmean(samples):.2f}",
            f"{p50 / base:.1f}x",
        )
    Console().print(table)


if __name__ == "__main__":
    main()
