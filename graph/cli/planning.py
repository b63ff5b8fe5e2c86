"""Commands about planning: preview a request's plan, and answer a request for a plan.

``planbound plan "..."`` shows the route, the plan and the verdict without executing
anything; ``planbound give-plan THREAD --plan FILE`` answers the human fallback (a run whose
planner's re-plans are used up asks a person for the plan when PLANBOUND_HUMAN_FALLBACK is
on).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape

from graph.cli import render
from graph.cli.common import (
    HomeOpt,
    JsonOpt,
    PlannerOpt,
    TokenFileOpt,
    UsageError,
    caller,
    emit,
    guarded,
    home_runner,
    out,
    reviewing_caller,
)


def plan_cmd(
    request: Annotated[str, typer.Argument(help="The request, in words.")],
    actor: Annotated[str | None, typer.Option("--actor", help="Who is asking.")] = None,
    token_file: TokenFileOpt = None,
    home: HomeOpt = None,
    planner: PlannerOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Show the route, plan and verdict for a request, without executing anything."""

    def go() -> dict[str, Any]:
        runner = home_runner(home, planner=planner)
        holder = caller(runner.services.settings, token_file)
        if holder is not None:
            if actor is not None and actor != holder.identity:
                raise UsageError(f"--actor {actor!r} is not the token's holder {holder.identity!r}")
            return runner.preview(request, holder.identity)
        return runner.preview(request, actor)

    report = guarded(as_json, go)
    if as_json:
        emit(report)
        return
    render.outcome({**report, "thread_id": "(preview: nothing was run or kept)", "pending": []})
    verdict = report.get("verdict")
    if verdict:
        out.print(f"verdict [bold]{escape(verdict['outcome'])}[/]", highlight=False)
        for review in verdict.get("reviews", []):
            out.print(
                f"  {escape(review['step_id'])} needs {escape(', '.join(review['roles']))}: "
                f"{escape(review['reason'])}",
                highlight=False,
            )
        for reason in verdict.get("reasons", []):
            out.print(f"  {escape(reason)}", highlight=False)


def give_plan_cmd(
    thread: Annotated[str, typer.Argument(help="Thread awaiting a plan.")],
    plan_file: Annotated[
        Path | None, typer.Option("--plan", help="The plan as JSON (steps or τ² actions).")
    ] = None,
    reject: Annotated[str | None, typer.Option("--reject", help="End the run, with why.")] = None,
    token_file: TokenFileOpt = None,
    home: HomeOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Answer a run that asks a person for its plan (its re-plans are used up)."""

    def go() -> dict[str, Any]:
        if (plan_file is None) == (reject is None):
            raise UsageError("give --plan FILE or --reject REASON (exactly one)")
        answer: dict[str, Any]
        if plan_file is not None:
            if not plan_file.is_file():
                raise UsageError(f"--plan {plan_file}: no such file")
            try:
                answer = {"plan": json.loads(plan_file.read_text())}
            except json.JSONDecodeError as exc:
                raise UsageError(f"--plan {plan_file}: not JSON ({exc})") from exc
        else:
            answer = {"reject": reject}
        runner = home_runner(home)
        holder = reviewing_caller(runner.services.settings, token_file)
        return runner.give_plan(thread, answer, holder.reviewer() if holder is not None else None)

    outcome = guarded(as_json, go, thread_id=thread)
    if as_json:
        emit(outcome)
    else:
        render.outcome(outcome)
