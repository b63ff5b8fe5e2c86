"""``python -m evals.tau2 [--tasks 0,44] [--limit N] [--json]``: run the evaluation."""

from __future__ import annotations

import argparse
import json
import sys

from evals.tau2.run import evaluate, load_cases, table


def main(argv: list[str] | None = None) -> int:
    """Run the cases asked for and print progress, the table and the figures."""
    parser = argparse.ArgumentParser(prog="python -m evals.tau2", description=__doc__)
    parser.add_argument("--tasks", help="comma-separated task ids (default: all)")
    parser.add_argument("--limit", type=int, help="run at most this many requests")
    parser.add_argument("--json", action="store_true", help="print one JSON object at the end")
    args = parser.parse_args(argv)
    cases = load_cases()
    if args.tasks:
        wanted = {t.strip() for t in args.tasks.split(",")}
        unknown = wanted - {c.task_id for c in cases}
        if unknown:
            parser.error(f"no such task in the dataset: {', '.join(sorted(unknown))}")
        cases = [c for c in cases if c.task_id in wanted]
    if args.limit is not None:
        if args.limit < 1:
            parser.error("--limit must be at least 1")
        cases = cases[: args.limit]

    def progress(line: str) -> None:
        sys.stderr.write(line + "\n")

    report = evaluate(cases, progress=progress)
    if args.json:
        exact, tasks = report.tasks_exact()
        uexact, utasks = report.tasks_exact(unconditional_only=True)
        sys.stdout.write(
            json.dumps(
                {
                    "runs": len(report.results),
                    "exact": report.count("exact"),
                    "abstained": report.count("abstained"),
                    "wrong": report.count("wrong"),
                    "tasks_exact": exact,
                    "tasks": tasks,
                    "unconditional_tasks_exact": uexact,
                    "unconditional_tasks": utasks,
                    "results": [
                        {
                            "id": r.case.id,
                            "outcome": r.outcome,
                            "status": r.status,
                            "reason": r.reason,
                            "template": r.template,
                        }
                        for r in report.results
                    ],
                }
            )
            + "\n"
        )
    else:
        for line in table(report):
            sys.stdout.write(line + "\n")
    return 1 if report.count("wrong") else 0


if __name__ == "__main__":
    raise SystemExit(main())
