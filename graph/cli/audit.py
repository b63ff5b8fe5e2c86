"""``planbound audit``: a decision's whole story, and whether its record still holds."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from graph.audit import AuditReport, audit
from graph.cli.common import HomeOpt, JsonOpt, emit, guarded, home_runner, out

BROKEN = 3
"""Exit code when a chain is broken or the ledger disagrees with the journal."""

SOURCES = {"reviews": "reviews", "steps": "steps", "checkpoint": "checkpoint"}
"""How the story table names where an event comes from (a journal stream, a checkpoint)."""


def audit_cmd(
    decision: Annotated[str, typer.Argument(help="Decision id (see `planbound status`).")],
    home: HomeOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Tell a decision's story in time order and verify its audit journal.

    Lists the plans and verdicts with the rules that fired, every answer (accepted, refused
    or lost), every approval used, each step outcome and undo, the ledger rows and the
    thread's checkpoints. Checks both hash chains and each ledger row against its latest
    journal entry. Exit code 0 when the record is intact, 3 when something does not hold
    (each break is named), 2 for an unknown decision.
    """
    runner = guarded(as_json, lambda: home_runner(home, readonly=True), decision_id=decision)
    report = guarded(
        as_json,
        lambda: audit(runner.services, runner.graph, decision),
        decision_id=decision,
    )
    if as_json:
        emit(report.to_json())
    else:
        show(report)
    if not report.intact:
        raise typer.Exit(BROKEN)


def show(report: AuditReport) -> None:
    """Print the story, the plans judged, the ledger and the verdict on the record."""
    threads = ", ".join(report.threads) or "none"
    out.print(
        f"decision [bold]{escape(report.decision_id)}[/]  thread(s) {escape(threads)}",
        highlight=False,
    )
    story = Table(title="story (UTC)")
    for column in ("time", "entry", "what", "detail"):
        story.add_column(column)
    for e in report.events:
        number = "" if e.get("n") is None else f" {e['n']}"
        story.add_row(
            escape(e["time"][11:23]),
            escape(SOURCES.get(e["source"], e["source"]) + number),
            escape(e["kind"]),
            escape(e["summary"]),
        )
    out.print(story)
    shown: set[str] = set()
    for e in report.events:
        plan = e["body"].get("plan") if e["kind"] == "verdict" else None
        if not isinstance(plan, dict) or plan.get("id") in shown:
            continue
        shown.add(str(plan.get("id")))
        table = Table(
            title=f"plan {escape(str(plan.get('id')))} ({escape(str(plan.get('source')))})"
        )
        for column in ("step", "tool", "args"):
            table.add_column(column)
        for step in plan.get("steps", []):
            table.add_row(
                escape(str(step.get("id"))),
                escape(str(step.get("tool"))),
                escape(json.dumps(step.get("args"))),
            )
        out.print(table)
    if report.ledger:
        ledger = Table(title="ledger")
        for column in ("step", "tool", "status", "attempts", "output hash", "error", "finished"):
            ledger.add_column(column)
        for r in report.ledger:
            ledger.add_row(
                escape(r["step_id"]),
                escape(r["tool"]),
                escape(r["status"]),
                str(r["attempts"]),
                escape(str(r["output_hash"] or "")[:12]),
                escape(str(r["error"] or "")),
                escape(str(r["finished_at"] or "")[11:23]),
            )
        out.print(ledger)
    if report.intact:
        out.print("chain: [bold green]intact[/]")
        return
    out.print(f"chain: [bold red]broken[/] ({len(report.breaks)} problem(s))")
    for problem in report.breaks:
        out.print(f"  - {escape(problem)}", highlight=False)
