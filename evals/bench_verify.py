"""Verify latency for a 10-step plan: contracts, facts, policy; p50/p95 over many runs.

Run: ``python -m evals.bench_verify [--runs N] [--postgres] [--engine regopy|regorus]``. It
seeds a throw-away domain database (SQLite, or with ``--postgres`` a PostgreSQL database
created on ``PLANBOUND_TEST_PG`` and dropped after), judges the same compliant 10-step plan
``N`` times on an in-process policy engine (``--engine``, default regopy, the default of
``PLANBOUND_POLICY_ENGINE``; ``OPA_URL`` is ignored) and prints one table and a ``VERIFY
key=value ...`` line for scripts. The contract check alone is the baseline each phase is
compared with. The policy's memo (answers by input document) is emptied before each timed
policy and verify run, so they evaluate the policy; the policy is also shown split into
building and parsing its input and evaluating the rule. The last row is a verify whose
policy answer is memoised (a write re-judged on facts that did not change).

Wall time is what a caller waits; CPU time is this thread's own work, which moves less
when other processes share the cores (a database round trip is wall time, not CPU).
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from typing import Any, get_args

from rich.console import Console
from rich.table import Table

from evals.bench_durable.setup import ADMIN_URI, bench_database
from graph.planners.explicit import parse_plan_document
from graph.services import Services
from graph.settings import Settings
from guards.plan import Plan, ancestors
from guards.policy import EngineName, RegoEngine, RegorusEngine
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


def _time(fn: Callable[[], Any], runs: int) -> tuple[list[float], list[float]]:
    """Run ``fn`` ``runs`` times after a warm-up; return wall and CPU milliseconds per run."""
    for _ in range(5):
        fn()
    wall, cpu = [], []
    for _ in range(runs):
        start, start_cpu = time.perf_counter(), time.thread_time()
        fn()
        cpu.append((time.thread_time() - start_cpu) * 1000)
        wall.append((time.perf_counter() - start) * 1000)
    return wall, cpu


def _pct(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


@contextmanager
def _services(postgres: bool, engine: EngineName | None = None) -> Iterator[Services]:
    """Services on a seeded throw-away domain database (SQLite, or PostgreSQL).

    Args:
        postgres: The domain on PostgreSQL (``PLANBOUND_TEST_PG``) instead of SQLite.
        engine: The in-process policy engine (the setting's when None); never OPA.
    """
    with ExitStack() as stack:
        home = stack.enter_context(tempfile.TemporaryDirectory())
        uri = stack.enter_context(bench_database(None, ADMIN_URI)) if postgres else None
        chosen = {"policy_engine": engine} if engine is not None else {}
        services = Services(Settings.load(home=home, database_uri=uri, opa_url="", **chosen))
        stack.callback(services.stores.close)
        services.seed(load_shipped())
        yield services


def main(argv: list[str] | None = None) -> None:
    """Run the benchmark and print the table and the summary line."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=200, help="timed runs per phase")
    parser.add_argument(
        "--postgres", action="store_true", help="the domain on PostgreSQL (PLANBOUND_TEST_PG)"
    )
    parser.add_argument(
        "--engine",
        choices=get_args(EngineName),
        default=Settings.model_fields["policy_engine"].default,
        help="the in-process policy engine (default: %(default)s)",
    )
    args = parser.parse_args(argv)
    if args.runs < 1:
        parser.error("--runs must be at least 1")

    with _services(args.postgres, args.engine) as services:
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

        phases: dict[str, Callable[[], Any]] = {
            "contracts (baseline)": lambda: verifier.contracts(plan),
            "facts (read-only lookups)": lambda: verifier.facts(plan, stores.domain, stores.lock),
            "policy input (built, as JSON)": lambda: json.dumps(
                policy.input_for(plan, catalog, facts, ancestors(plan), "bench")
            ),
            f"policy ({args.engine})": cold(lambda: policy.decide(document)),
        }
        engine = policy.engine
        term = json.dumps(document)
        if isinstance(engine, RegoEngine):
            interpreter = engine.modules.interpreter()
            phases["  of which the engine parses the input"] = lambda: interpreter.set_input_term(
                term
            )
        elif isinstance(engine, RegorusEngine):
            evaluator = engine.modules.engine()
            phases["  of which the engine parses the input"] = lambda: evaluator.set_input_json(
                term
            )
        phases["verify total"] = cold(
            lambda: verifier.verify(plan, stores.domain, stores.lock, "bench")
        )
        phases["verify, policy answer memoised"] = lambda: verifier.verify(
            plan, stores.domain, stores.lock, "bench"
        )
        results = {name: _time(fn, args.runs) for name, fn in phases.items()}

    base = statistics.median(results["contracts (baseline)"][0])
    where = "PostgreSQL" if args.postgres else "SQLite"
    table = Table(
        title=f"verify latency, 10-step plan, {args.runs} runs, {where}, {args.engine} (ms)"
    )
    for column in ("phase", "p50", "p95", "mean", "CPU p50", "p50 / baseline"):
        table.add_column(column, justify="right" if column != "phase" else "left")
    for name, (wall, cpu) in results.items():
        p50 = statistics.median(wall)
        table.add_row(
            name,
            f"{p50:.2f}",
            f"{_pct(wall, 0.95):.2f}",
            f"{statistics.fmean(wall):.2f}",
            f"{statistics.median(cpu):.2f}",
            f"{p50 / base:.1f}x",
        )
    console = Console()
    console.print(table)
    keys = {
        "verify_p50_ms": "verify total",
        "facts_p50_ms": "facts (read-only lookups)",
        "policy_p50_ms": f"policy ({args.engine})",
        "contracts_p50_ms": "contracts (baseline)",
    }
    summary = " ".join(
        f"{key}={statistics.median(results[name][0]):.2f}" for key, name in keys.items()
    )
    verify_cpu = statistics.median(results["verify total"][1])
    line = (
        f"VERIFY db={where.lower()} engine={args.engine} {summary} "
        f"verify_cpu_p50_ms={verify_cpu:.2f}"
    )
    console.print(line, markup=False, highlight=False, soft_wrap=True)


if __name__ == "__main__":
    main()
