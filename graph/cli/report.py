"""``planbound report``: latency, human wait, outcome rates, tools, cost and drift of a home."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from graph import report as reports
from graph.cli.common import HomeOpt, JsonOpt, emit, guarded, home_stores, out
from graph.report.html import render


def report_cmd(
    since: Annotated[
        str, typer.Option("--since", help="Window: a duration like 7d, 12h, 30m, or 'all'.")
    ] = "7d",
    by: Annotated[
        str, typer.Option("--by", help="Group by planner, template, catalog, policy or prompt.")
    ] = "planner",
    drift: Annotated[
        str,
        typer.Option(
            "--drift",
            help="Drift between the window and the one before it ('window'), or between the "
            "two latest versions of planner, template, catalog, policy or prompt.",
        ),
    ] = "window",
    html_file: Annotated[
        Path | None, typer.Option("--html", help="Write the report as one HTML file with plots.")
    ] = None,
    results: Annotated[
        Path, typer.Option("--results", help="Evaluation results to include (planbound eval).")
    ] = Path("evals/results"),
    home: HomeOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Report latency percentiles, human wait, outcome rates, tool errors, cost and drift."""

    def build() -> dict[str, Any]:
        stores = home_stores(home)
        try:
            return reports.build(stores, since=since, by=by, between=drift, results_dir=results)
        finally:
            stores.close()

    document = guarded(as_json, build)
    if html_file is not None:
        guarded(as_json, lambda: html_file.write_text(render(document)))
    if as_json:
        emit({**document, "html": str(html_file) if html_file else None})
        return
    _print(document)
    if html_file is not None:
        out.print(f"report written to {html_file}", highlight=False)


def _ms(stats: dict[str, Any], q: str) -> str:
    return f"{stats[q] * 1000:.1f}" if q in stats else ""


def _print(doc: dict[str, Any]) -> None:
    w, r = doc["window"], doc["rates"]
    out.print(
        f"[bold]{w['decisions']} decisions[/] (window {w['since']}); approve {r['approve']:.0%},"
        f" edit {r['edit']:.0%}, reject {r['reject']:.0%}, respond {r['respond']:.0%} of"
        f" {r['review_decisions']} reviewer decisions; deny {r['deny']:.0%}, refuse"
        f" {r['refuse']:.0%}, cannot plan {r['cannot_plan']:.0%}",
        highlight=False,
    )
    lat = Table("node", "n", "p50 ms", "p95 ms", "p99 ms", title="latency")
    for node, stats in [
        *doc["latency"]["nodes"].items(),
        ("end to end", doc["latency"]["end_to_end"]),
    ]:
        lat.add_row(
            node, str(stats.get("n", 0)), _ms(stats, "p50"), _ms(stats, "p95"), _ms(stats, "p99")
        )
    wait = doc["latency"]["human_wait"]
    lat.add_row(
        "human wait", str(wait.get("n", 0)), _ms(wait, "p50"), _ms(wait, "p95"), _ms(wait, "p99")
    )
    out.print(lat)
    tools = Table("tool", "calls", "errors", "retries", "compensated", title="tools")
    for tool, t in doc["tools"].items():
        tools.add_row(
            tool,
            str(t["calls"]),
            f"{t['error_ratio']:.1%}",
            f"{t['retry_ratio']:.1%}",
            str(t["compensated"]),
        )
    out.print(tools)
    u = doc["usage"]
    cost = "n/a" if u["cost_per_decision"] is None else f"${u['cost_per_decision']:.5f}"
    out.print(f"tokens per decision {u['tokens_per_decision']:g}, cost per decision {cost}")
    d = doc["drift"]
    table = Table(
        "signal",
        "statistic",
        "value",
        "p",
        "flag",
        title=f"drift: {d['baseline']['label']} ({d['baseline']['decisions']}) -> "
        f"{d['current']['label']} ({d['current']['decisions']})",
    )
    for s in d["signals"]:
        table.add_row(
            s["name"],
            s["statistic"],
            f"{s['value']:.4g}",
            "" if s["p_value"] is None else f"{s['p_value']:.3g}",
            "[red]drift[/]" if s["flagged"] else "",
        )
    if d["signals"]:
        out.print(table)
    else:
        out.print("drift: no baseline decisions to compare with")
