"""Everything ``planbound`` prints as rich text: outcomes, history, rollbacks, policy reports.

Every value that comes from a user or from stored data (thread ids, requests, reasons,
errors, plan arguments, reviewer names) is escaped, so it prints literally and never as
rich markup.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from rich.markup import escape
from rich.table import Table

from graph.cli.common import out
from guards.policy import PolicyBundle, RegoTest

STATUS_COLOURS = {"completed": "green", "awaiting_approval": "yellow", "rolled_back": "magenta"}
"""Colour of a run status; any other status is red."""

LEDGER_SHORT = {"succeeded": "ok", "compensated": "undone", "failed": "failed"}
"""How the history table abbreviates a ledger status."""

RESULT_WIDTH = 100
"""Longest output or error shown in the results table (longer text is cut with ``...``)."""


def _text(value: Any) -> str:
    """Return ``value`` as text that rich prints literally."""
    return escape(str(value))


def _table(title: str, columns: Iterable[str]) -> Table:
    """Return a table with the given (already escaped) title and columns."""
    table = Table(title=title)
    for column in columns:
        table.add_column(column)
    return table


def outcome(report: Mapping[str, Any]) -> None:
    """Print where a run stands: its status, plan, pending reviews, results and errors."""
    colour = STATUS_COLOURS.get(str(report["status"]), "red")
    out.print(
        f"thread [bold]{_text(report['thread_id'])}[/]  "
        f"status [bold {colour}]{_text(report['status'])}[/]",
        highlight=False,
    )
    route = report.get("route")
    if route:
        out.print(
            f"planned by [bold]{_text(route.get('planner') or 'nobody')}[/]: "
            f"{_text(route.get('reason', ''))}",
            highlight=False,
        )
    usage = report.get("usage")
    if usage and usage.get("calls"):
        out.print(
            f"model calls {_text(usage['calls'])}, tokens {_text(usage['total_tokens'])}, "
            f"cost {_text(usage['cost'])}",
            highlight=False,
        )
    plan = report.get("plan")
    if plan:
        table = _table(
            f"plan {_text(plan['id'])} ({_text(plan['source'])})", ("step", "tool", "args", "after")
        )
        for s in plan["steps"]:
            table.add_row(
                _text(s["id"]),
                _text(s["tool"]),
                _text(json.dumps(s["args"])),
                _text(", ".join(s["depends_on"])),
            )
        out.print(table)
    if report.get("pending"):
        table = _table("awaiting approval", ("step", "tool", "args", "why"))
        for p in report["pending"]:
            table.add_row(
                _text(p["step_id"]),
                _text(p["tool"]),
                _text(json.dumps(p["args"])),
                _text(p["reason"]),
            )
        out.print(table)
        for p in report["pending"]:
            lines = preview_lines(p)
            if lines:
                out.print(f"{_text(p['step_id'])}, on the data as it is now:", highlight=False)
                for line in lines:
                    out.print(f"  {_text(line)}", highlight=False, soft_wrap=True)
        out.print(
            f"answer with: planbound approve {_text(report['thread_id'])} "
            "--all --approve --reviewer NAME"
        )
    if report.get("results"):
        table = _table("results", ("step", "tool", "ok", "output / error"))
        for r in report["results"]:
            text = json.dumps(r.get("output")) if r["ok"] else str(r.get("error"))
            if len(text) >= RESULT_WIDTH:
                text = text[: RESULT_WIDTH - 3] + "..."
            table.add_row(
                _text(r["step_id"]), _text(r["tool"]), "yes" if r["ok"] else "no", _text(text)
            )
        out.print(table)
    asking = report.get("plan_request")
    if asking:
        for finding in asking.get("findings") or []:
            out.print(f"finding: {_text(finding)}", highlight=False)
        if asking.get("error"):
            out.print(f"[red]last plan given was invalid:[/] {_text(asking['error'])}")
        out.print(
            f"answer with: planbound give-plan {_text(report['thread_id'])} --plan FILE "
            '(or --reject "why")'
        )
    for line in report.get("compensation") or []:
        out.print(f"compensation: {_text(line)}")
    if report.get("review_error"):
        out.print(f"[red]last answer was invalid:[/] {_text(report['review_error'])}")
    if report.get("error"):
        out.print(f"[red]{_text(report['error'])}[/]", highlight=False)
    if report.get("hint"):
        out.print(f"[yellow]{_text(report['hint'])}[/]", highlight=False)


def preview_lines(pending: Mapping[str, Any]) -> list[str]:
    """A pending step's references as read now and its changes, before → after."""
    lines = []
    for ref in pending.get("refs") or []:
        value = json.dumps(ref["value"]) if ref.get("read_now") else "(cannot be read now)"
        lines.append(f"{ref['arg']} = {json.dumps(ref['ref'])} = {value}  (read now)")
    for change in pending.get("changes") or []:
        for name, diff in change["fields"].items():
            before, after = diff["before"], diff["after"]
            where = f"{change['table']} {change['key']} {name}"
            if (
                isinstance(before, list)
                and isinstance(after, list)
                and after[: len(before)] == before
            ):
                lines.append(f"{where}: adds {_cut(json.dumps(after[len(before) :]))}")
            else:
                lines.append(f"{where}: {_cut(json.dumps(before))} → {_cut(json.dumps(after))}")
    if pending.get("note"):
        lines.append(str(pending["note"]))
    return lines


def _cut(text: str) -> str:
    return text if len(text) <= RESULT_WIDTH else text[: RESULT_WIDTH - 3] + "..."


def history(thread: str, rows: Sequence[Mapping[str, Any]]) -> None:
    """Print a thread's checkpoints as a table, in the order given."""
    table = Table(title=f"thread {_text(thread)}")
    for col in ("step", "source", "next", "status", "ledger", "checkpoint"):
        table.add_column(col, overflow="fold", no_wrap=col == "checkpoint")
    for r in rows:
        ledger = " ".join(f"{sid}:{LEDGER_SHORT.get(st, st)}" for sid, st in r["ledger"].items())
        table.add_row(
            _text(r["step"]),
            _text(r["source"]),
            _text(", ".join(r["next"]) or "-"),
            _text(r["status"]) + (" (interrupted)" if r["interrupted"] else ""),
            _text(ledger or "-"),
            _text(r["checkpoint_id"]),
        )
    out.print(table)


def rollback(thread: str, to: str, report: Mapping[str, Any]) -> None:
    """Print what a rollback undid, could not undo or found in conflict."""
    colour = "green" if report["status"] == "rolled_back" else "red"
    out.print(
        f"thread {_text(thread)}: [bold {colour}]{_text(report['status'])}[/]", highlight=False
    )
    for key in ("undone", "irreversible", "conflicts"):
        for line in report[key]:
            out.print(f"{key}: {_text(line)}", highlight=False)
    if report["forked_checkpoint"]:
        out.print(f"thread now at {_text(report['forked_checkpoint'])} (copy of {_text(to)})")


def explain(report: Mapping[str, Any]) -> None:
    """Print, for every step of a plan, each policy rule that fired and why."""
    colour = {"allow": "green", "needs_approval": "yellow"}.get(report["outcome"], "red")
    out.print(
        f"plan {_text(report['plan_id'])}: [bold {colour}]{_text(report['outcome'])}[/]  "
        f"(policy {_text(report['policy_version'])}, catalog {_text(report['catalog_version'])}, "
        f"facts {_text(report['facts_hash'])})",
        highlight=False,
    )
    for finding in report["contracts"]:
        out.print(f"[red]contract:[/] {_text(finding)}", highlight=False)
    table = Table(show_lines=True)
    for column in ("step", "tool", "outcome", "rule", "why"):
        table.add_column(column, overflow="fold")
    for step in report["steps"]:
        fired = [("deny", d) for d in step["deny"]] + [
            ("approve", a) for a in step["needs_approval"]
        ]
        if not fired:
            table.add_row(_text(step["step"]), _text(step["tool"]), "allow", "-", "no rule fired")
        for kind, rule in fired:
            why = rule["reason"]
            if kind == "approve":
                why += f" (approver roles: {', '.join(rule['roles'])})"
            table.add_row(
                _text(step["step"]),
                _text(step["tool"]),
                _text(step["outcome"]),
                _text(rule["rule"]),
                _text(why),
            )
    out.print(table)


def policy_tests(bundle: PolicyBundle, results: Sequence[RegoTest]) -> None:
    """Print the outcome of each Rego unit test, then the counts."""
    table = Table(title=f"Rego tests ({_text(bundle.source)}, {_text(bundle.version)})")
    for column in ("module", "test", "result"):
        table.add_column(column)
    for r in results:
        mark = "[green]pass[/]" if r.passed else f"[red]FAIL[/] {_text(r.error or '')}"
        table.add_row(_text(r.module), _text(r.name), mark)
    out.print(table)
    failed = sum(not r.passed for r in results)
    out.print(f"{len(results) - failed} passed, {failed} failed")
