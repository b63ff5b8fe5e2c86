"""Commands on runs: start, answer, continue, inspect, replay and roll back a thread."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from graph.cli import render
from graph.cli.answers import ApproveFlags, PendingReview, review_answer
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
    reviewing_caller,
)
from graph.errors import RunError
from guards.review import Identity


def show(outcome: dict[str, Any], as_json: bool) -> None:
    """Print a run's outcome: as its JSON object, or as tables."""
    if as_json:
        emit(outcome)
    else:
        render.outcome(outcome)


def run_cmd(
    request: Annotated[str | None, typer.Argument(help="The request, in words.")] = None,
    plan_file: Annotated[
        Path | None, typer.Option("--plan", help="A plan as JSON (steps or τ² actions).")
    ] = None,
    thread: Annotated[str | None, typer.Option("--thread", help="Thread id to use.")] = None,
    actor: Annotated[
        str | None, typer.Option("--actor", help="Who is asking (with a token: its holder).")
    ] = None,
    token_file: TokenFileOpt = None,
    home: HomeOpt = None,
    planner: PlannerOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Plan, verify and run a request; stops when a step needs approval."""

    def go() -> dict[str, Any]:
        if (request is None) == (plan_file is None):
            raise UsageError("give a REQUEST or --plan FILE (exactly one)")
        document = None
        if plan_file is not None:
            if not plan_file.is_file():
                raise UsageError(f"--plan {plan_file}: no such file")
            try:
                document = json.loads(plan_file.read_text())
            except json.JSONDecodeError as exc:
                raise UsageError(f"--plan {plan_file}: not JSON ({exc})") from exc
        runner = home_runner(home, planner)
        holder = caller(runner.services.settings, token_file)
        return runner.start(
            request=request,
            explicit_plan=document,
            thread_id=thread,
            actor=actor,
            identity=holder.reviewer() if holder is not None else None,
        )

    show(guarded(as_json, go, thread_id=thread), as_json)


def approve_cmd(
    ctx: typer.Context,
    thread: Annotated[str, typer.Argument(help="Thread awaiting approval.")],
    reviewer: Annotated[str, typer.Option("--reviewer", help="Your name (recorded).")] = "",
    role: Annotated[
        str, typer.Option("--role", help="Your role: reviewer, supervisor or admin.")
    ] = "reviewer",
    all_steps: Annotated[bool, typer.Option("--all", help="Answer every pending step.")] = False,
    step: Annotated[str | None, typer.Option("--step", help="Answer one step.")] = None,
    yes: Annotated[bool, typer.Option("--approve", help="Approve.")] = False,
    edit: Annotated[
        str | None,
        typer.Option("--edit", help='New arguments as JSON, e.g. \'{"reason": "..."}\'.'),
    ] = None,
    reject: Annotated[str | None, typer.Option("--reject", help="Reject, with a reason.")] = None,
    respond: Annotated[
        str | None,
        typer.Option("--respond", help="Respond in the step's place: it is not run, the run ends."),
    ] = None,
    payload: Annotated[
        str | None,
        typer.Option("--payload", help="A raw human-in-the-loop answer as JSON (advanced)."),
    ] = None,
    token_file: TokenFileOpt = None,
    home: HomeOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Answer a pending review: approve, edit, reject or respond.

    The answer names the review shown as pending (its decision and plan), so an answer to a
    review that changed meanwhile is refused. With a token table configured the reviewer
    and roles are the token's.
    """
    runner = guarded(as_json, lambda: home_runner(home), thread_id=thread)

    def who() -> Identity | None:
        holder = reviewing_caller(runner.services.settings, token_file)
        named = [f"--{n}" for n in ("reviewer", "role") if _given(ctx, n)]
        if holder is not None and named:
            raise UsageError(
                f"{' and '.join(named)} cannot be given with a token: the reviewer and "
                f"roles are the token's ({holder.identity})"
            )
        return holder.reviewer() if holder is not None else None

    identity = guarded(as_json, who, thread_id=thread)
    flags = ApproveFlags(
        reviewer=identity.id if identity is not None else reviewer,
        role=role,
        all_steps=all_steps,
        step=step,
        approve=yes,
        edit=edit,
        reject=reject,
        respond=respond,
        payload=payload,
    )

    def pending() -> PendingReview:
        review = PendingReview.of(runner.outcome(thread))
        if not review.tools:
            raise RunError(f"thread {thread} is not awaiting approval")
        return review

    body = guarded(as_json, lambda: review_answer(flags, pending), thread_id=thread)
    outcome = guarded(as_json, lambda: runner.resume(thread, body, identity), thread_id=thread)
    show(outcome, as_json)


def _given(ctx: typer.Context, name: str) -> bool:
    """Whether option ``name`` was set by the caller (not left at its default)."""
    source = ctx.get_parameter_source(name)
    return source is not None and source.name != "DEFAULT"


def resume_cmd(
    thread: Annotated[str, typer.Argument(help="Thread that stopped mid-way.")],
    home: HomeOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Continue a run that stopped mid-way (crash, lost connection) from its last checkpoint."""
    runner = guarded(as_json, lambda: home_runner(home), thread_id=thread)
    show(guarded(as_json, lambda: runner.proceed(thread), thread_id=thread), as_json)


def status_cmd(
    thread: Annotated[str, typer.Argument(help="Thread id.")],
    home: HomeOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Show where a thread stands."""
    runner = home_runner(home)
    show(guarded(as_json, lambda: runner.outcome(thread), thread_id=thread), as_json)


def history_cmd(
    thread: Annotated[str, typer.Argument(help="Thread id.")],
    limit: Annotated[int, typer.Option("--limit", min=1, help="Most checkpoints shown.")] = 50,
    home: HomeOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """List a thread's checkpoints, newest first."""
    runner = home_runner(home)

    def rows() -> list[dict[str, Any]]:
        found = []
        for row in runner.history(thread):
            found.append(row)
            if len(found) >= limit:
                break
        return found

    found = guarded(as_json, rows, thread_id=thread)
    if as_json:
        emit({"thread_id": thread, "checkpoints": found})
    else:
        render.history(thread, found)


def replay_cmd(
    thread: Annotated[str, typer.Argument(help="Thread id.")],
    checkpoint: Annotated[str, typer.Option("--checkpoint", help="Checkpoint id to re-run from.")],
    live: Annotated[
        bool,
        typer.Option("--live", help="Allow writes that never ran (after a new approval)."),
    ] = False,
    home: HomeOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Re-run a thread from a checkpoint; safe mode serves recorded outcomes, calls no writes."""
    runner = guarded(as_json, lambda: home_runner(home), thread_id=thread)
    outcome = guarded(
        as_json, lambda: runner.replay(thread, checkpoint, live=live), thread_id=thread
    )
    show(outcome, as_json)


def rollback_cmd(
    thread: Annotated[str, typer.Argument(help="Thread id.")],
    to: Annotated[str, typer.Option("--to", help="Checkpoint id to roll back to.")],
    home: HomeOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Undo the writes applied after a checkpoint (newest first), then fork back to it."""
    runner = guarded(as_json, lambda: home_runner(home), thread_id=thread)
    report = guarded(as_json, lambda: runner.rollback(thread, to), thread_id=thread)
    if as_json:
        emit(report)
    else:
        render.rollback(thread, to, report)
    if report["status"] != "rolled_back":
        raise typer.Exit(1)
