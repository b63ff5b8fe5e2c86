"""``planbound eval``: run the offline evaluations, compare two experiments, apply the gate.

The command is contributed to the ``planbound`` CLI through the ``planbound.commands`` entry
point (the product never imports the evaluations); ``planbound-eval`` runs it on its own.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn
from rich.table import Table

from evals import results as experiments
from evals import runner
from evals.evaluators import FIGURES
from evals.gate import GATE_FILE, check, load_gate
from graph.cli.common import JsonOpt, emit, err, guarded, out

EXIT_GATE = 1
"""Exit code of a run below the gate."""


def eval_cmd(
    dataset: Annotated[
        str, typer.Option("--dataset", "-d", help="A dataset name (evals/datasets) or 'all'.")
    ] = "all",
    planner: Annotated[
        str, typer.Option("--planner", help="template, llm (when installed) or auto.")
    ] = "template",
    experiment: Annotated[
        str | None, typer.Option("--experiment", "-e", help="Name of the experiment.")
    ] = None,
    upload: Annotated[
        bool,
        typer.Option(
            "--upload", help="Upload datasets, runs and scores to LangSmith (needs a key)."
        ),
    ] = False,
    gate: Annotated[
        bool, typer.Option("--gate", help="Exit 1 when a metric is below evals/gate.yaml.")
    ] = False,
    gate_file: Annotated[
        Path, typer.Option("--gate-file", help="Thresholds to gate on.")
    ] = GATE_FILE,
    compare: Annotated[
        tuple[str, str] | None,
        typer.Option("--compare", help="Compare two experiments (names or files): BASE HEAD."),
    ] = None,
    results: Annotated[
        Path, typer.Option("--results", help="Directory of experiment files.")
    ] = experiments.RESULTS_DIR,
    home: Annotated[
        Path | None,
        typer.Option("--home", help="Keep the decisions in this home (default: a temporary one)."),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Run offline evaluations through the real graph and score them (or compare two runs)."""
    if compare is not None:
        _compare(compare, results, gate, gate_file, as_json)
        return
    thresholds = guarded(as_json, lambda: load_gate(gate_file)) if gate else None
    progress = Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err,
        transient=True,
        disable=as_json or not err.is_terminal,
    )
    with progress:
        task = progress.add_task(f"eval {dataset}", total=None)

        def advance(done: int, total: int) -> None:
            progress.update(task, completed=done, total=total)

        exp = guarded(
            as_json,
            lambda: runner.run(
                dataset=dataset,
                planner=planner,
                experiment=experiment,
                upload=upload,
                home=home,
                results_dir=results,
                progress=advance,
            ),
        )
    breaches = [str(b) for b in check(exp, thresholds)] if thresholds is not None else []
    if as_json:
        emit(
            {
                "experiment": exp.name,
                "file": str(exp.path),
                "summary": exp.summary,
                "failures": _failures(exp.rows),
                "gate": None
                if thresholds is None
                else {"passed": not breaches, "breaches": breaches},
            }
        )
    else:
        _print_experiment(exp)
        if thresholds is not None:
            _print_gate(breaches, thresholds.version)
    if breaches:
        sys.exit(EXIT_GATE)


def _failures(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        {
            "dataset": r["dataset"],
            "example_id": r["example_id"],
            "failed": sorted(k for k, v in r["scores"].items() if k not in FIGURES and v < 1),
            "comments": r["comments"],
        }
        for r in rows
        if any(k not in FIGURES and v < 1 for k, v in r["scores"].items())
    ]


def _print_experiment(exp: experiments.Experiment) -> None:
    s = exp.summary
    sizes = ", ".join(f"{n} {k}" for k, n in s["datasets"].items())
    out.print(
        f"[bold]{exp.name}[/]: {s['examples']} examples ({sizes}), planner {s['planner']}"
        + (f", home {s['home']}" if s.get("home") else ""),
        highlight=False,
    )
    table = Table("metric", "score", "n", "p50", "p95", title="scores")
    for key, stats in exp.metrics.items():
        figure = key in FIGURES
        table.add_row(
            key,
            f"{stats['mean']:.4g}" if figure else f"{stats['mean']:.1%}",
            str(int(stats["n"])),
            f"{stats['p50']:.4g}" if figure else "",
            f"{stats['p95']:.4g}" if figure else "",
        )
    out.print(table)
    failures = _failures(exp.rows)
    if failures:
        bad = Table("dataset", "example", "failed", "why", title=f"{len(failures)} failing")
        for f in failures[:40]:
            why = "; ".join(f"{k}: {v}" for k, v in f["comments"].items())
            bad.add_row(f["dataset"], f["example_id"], ", ".join(f["failed"]), why)
        out.print(bad)
    out.print(f"results: {exp.path}", highlight=False)


def _print_gate(breaches: list[str], version: int) -> None:
    if breaches:
        out.print(f"[bold red]gate v{version} failed[/]:", highlight=False)
        for b in breaches:
            out.print(f"  {b}", highlight=False)
    else:
        out.print(f"[bold green]gate v{version} passed[/]", highlight=False)


def _compare(
    names: tuple[str, str], results: Path, gate: bool, gate_file: Path, as_json: bool
) -> None:
    base = guarded(as_json, lambda: experiments.read_results(names[0], results))
    head = guarded(as_json, lambda: experiments.read_results(names[1], results))
    cmp = experiments.compare(base, head)
    breaches: list[str] = []
    if gate:
        thresholds = guarded(as_json, lambda: load_gate(gate_file))
        breaches = [str(b) for b in check(head, thresholds)]
    if as_json:
        emit(
            {
                "base": base.name,
                "head": head.name,
                "metrics": {
                    k: {"base": a, "head": b, "delta": None if a is None or b is None else b - a}
                    for k, (a, b) in cmp.deltas.items()
                },
                "regressed": cmp.regressed,
                "fixed": cmp.fixed,
                "gate": {"passed": not breaches, "breaches": breaches} if gate else None,
            }
        )
    else:
        table = Table("metric", base.name, head.name, "delta", title="comparison")
        for key, (a, b) in cmp.deltas.items():
            delta = "" if a is None or b is None else f"{b - a:+.4g}"
            style = "red" if delta.startswith("-") and key not in FIGURES else ""
            table.add_row(
                key,
                "" if a is None else f"{a:.4g}",
                "" if b is None else f"{b:.4g}",
                f"[{style}]{delta}[/]" if style else delta,
            )
        out.print(table)
        if cmp.regressed:
            reg = Table("dataset", "example", "metric", "base", "head", "why", title="regressed")
            for r in cmp.regressed:
                reg.add_row(
                    r["dataset"],
                    r["example_id"],
                    r["metric"],
                    f"{r['base']:g}",
                    f"{r['head']:g}",
                    r["comment"] or "",
                )
            out.print(reg)
        else:
            out.print("no example regressed")
        if gate:
            _print_gate(breaches, load_gate(gate_file).version)
    if breaches:
        sys.exit(EXIT_GATE)


def register(app: typer.Typer) -> None:
    """Add ``eval`` to the ``planbound`` command line (the ``planbound.commands`` entry point)."""
    app.command("eval")(eval_cmd)


standalone = typer.Typer(add_completion=False, pretty_exceptions_enable=False)
standalone.command()(eval_cmd)


def main() -> None:
    """Entry point of the ``planbound-eval`` console script."""
    try:
        standalone()
    finally:
        from graph.tracing import flush_all

        flush_all()


if __name__ == "__main__":
    main()
