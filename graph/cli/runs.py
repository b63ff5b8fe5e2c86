"""Commands on runs: start, answer, continue, inspect, replay and roll back a thread."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any, TextIO

import typer

from checkpoints.factory import thread_lock
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
from graph.review import preview
from graph.runner import Runner
from guards.errors import DecisionInvalid
from guards.limits import MAX_PLAN_BYTES, MAX_REQUEST_CHARS
from guards.plan import Plan
from guards.review import Identity


def with_preview(runner: Runner, outcome: dict[str, Any]) -> dict[str, Any]:
    """Add to each pending step what it would do now (see :func:`graph.review.preview`)."""
    if not outcome.get("pending"):
        return outcome
    plan = runner.graph.get_state({"configurable": {"thread_id": outcome["thread_id"]}}).values
    current = plan.get("plan")
    if not isinstance(current, Plan):
        return outcome
    verdict = plan.get("verdict")
    bound = {r.step_id: r.resolved_args for r in verdict.reviews} if verdict is not None else {}
    try:
        shown = preview(runner.services, current, [p["step_id"] for p in outcome["pending"]], bound)
    except Exception as exc:  # a preview is a help, never a reason to fail the command
        note = f"not previewed: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}"
        shown = {
            p["step_id"]: {"refs": [], "changes": None, "note": note} for p in outcome["pending"]
        }
    pending = [{**p, **shown.get(p["step_id"], {})} for p in outcome["pending"]]
    return {**outcome, "pending": pending}


def show(outcome: dict[str, Any], as_json: bool) -> None:
    """Print a run's outcome: as its JSON object, or as tables."""
    hint = order_hint(outcome)
    if hint is not None:
        outcome = {**outcome, "hint": hint}
    if as_json:
        emit(outcome)
    else:
        render.outcome(outcome)


IDENTITY_RULE = "[identity.required]"


def order_hint(outcome: dict[str, Any]) -> str | None:
    """Say how to fix a steps plan refused because a step does not *depend on* its lookup.

    In a ``{"steps": ...}`` plan the order is a graph: a step comes after another only
    through ``depends_on`` or a ``$ref``. A lookup listed first but not depended on does not
    establish who the user is for the steps that follow.
    """
    plan = outcome.get("plan") or {}
    reasons = (outcome.get("verdict") or {}).get("reasons") or []
    steps = {str(s["id"]): s for s in plan.get("steps") or []}
    lookups = [sid for sid, s in steps.items() if str(s["tool"]).startswith("find_user_id")]
    if not lookups or plan.get("source") != "explicit":
        return None
    blocked = [
        r.split(":", 1)[0]
        for r in reasons
        if IDENTITY_RULE in str(r) and r.split(":", 1)[0] in steps
    ]
    if not blocked:
        return None
    return (
        f"{', '.join(blocked)} {'does' if len(blocked) == 1 else 'do'} not depend on the "
        f'identity step {lookups[0]}: in a {{"steps": ...}} plan, steps are ordered only '
        f'by "depends_on" and $refs, not by their place in the list. Add "depends_on": '
        f'["{lookups[0]}"] to {", ".join(blocked)} (or depend on a step that does), or give '
        'the plan as a τ² action list ([{"name": ..., "arguments": ...}, ...]), which runs '
        "in order (see examples/)"
    )


def run_cmd(
    request: Annotated[
        str | None,
        typer.Argument(help="The request, in words; `-` reads it from standard input."),
    ] = None,
    request_file: Annotated[
        Path | None,
        typer.Option("--request-file", help="Read the request, in words, from a file."),
    ] = None,
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
        given = [request is not None, request_file is not None, plan_file is not None]
        if sum(given) != 1:
            raise UsageError(
                "give exactly one of: a REQUEST (`-` reads it from standard input), "
                "--request-file FILE, --plan FILE"
            )
        words = request
        if request == "-":
            words = _read_limited(sys.stdin, "the request on standard input", MAX_REQUEST_CHARS)
        elif request_file is not None:
            words = _read_file(request_file, "--request-file", MAX_REQUEST_CHARS)
        document = None
        if plan_file is not None:
            text = _read_file(plan_file, "--plan", PLAN_FILE_CHARS)
            try:
                document = json.loads(text)
            except json.JSONDecodeError as exc:
                raise UsageError(f"--plan {plan_file}: not JSON ({exc})") from exc
            except RecursionError:
                raise UsageError(f"--plan {plan_file}: nested too deeply") from None
        runner = home_runner(home, planner=planner)
        holder = caller(runner.services.settings, token_file)
        if document is None:
            _ = runner.services.templates  # a bad template file: refused before a thread exists
        started = runner.start(
            request=words,
            explicit_plan=document,
            thread_id=thread,
            actor=actor,
            identity=holder.reviewer() if holder is not None else None,
        )
        return with_preview(runner, started)

    show(guarded(as_json, go, thread_id=thread), as_json)


PLAN_FILE_CHARS = 4 * MAX_PLAN_BYTES
"""Longest plan file read: the plan limit is on compact JSON, a file may be indented."""


def _read_file(path: Path, option: str, limit: int) -> str:
    """Read a text file given to ``option``, refusing one past ``limit`` characters."""
    if path.is_dir():
        raise UsageError(f"{option} {path}: is a directory, not a file")
    if not path.is_file():
        raise UsageError(f"{option} {path}: no such file")
    try:
        with path.open(encoding="utf-8") as handle:
            return _read_limited(handle, f"{option} {path}", limit)
    except UnicodeDecodeError:
        raise UsageError(f"{option} {path}: not UTF-8 text") from None
    except OSError as exc:
        raise UsageError(f"{option} {path}: cannot read it ({exc.strerror})") from None


def _read_limited(handle: TextIO, what: str, limit: int) -> str:
    text = handle.read(limit + 1)
    if len(text) > limit:
        raise UsageError(f"{what} is longer than {limit} characters (the limit)")
    if not text.strip():
        raise UsageError(f"{what} is empty")
    return text.strip() if limit == MAX_REQUEST_CHARS else text


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
        typer.Option(
            "--edit",
            help='Arguments to change, as JSON, e.g. \'{"reason": "..."}\': merged over the'
            " step's arguments (the others stay); '{\"args\": {...}}' replaces them all.",
        ),
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

    def answer() -> dict[str, Any]:
        try:
            return with_preview(runner, runner.resume(thread, body, identity))
        except DecisionInvalid as exc:
            raise UsageError(
                f"{exc}; nothing was run and the review is still pending: answer it again "
                f"(`planbound status {thread}` shows it)"
            ) from None

    outcome = guarded(as_json, answer, thread_id=thread)
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

    def go() -> dict[str, Any]:
        with thread_lock(runner.stores, thread):
            return runner.proceed(thread)

    show(guarded(as_json, go, thread_id=thread), as_json)


def status_cmd(
    thread: Annotated[str, typer.Argument(help="Thread id.")],
    changes: Annotated[
        bool,
        typer.Option(
            "--changes",
            help="Also show what each pending write would change now (tried on the current "
            "data and rolled back: needs a writable home and the write lock for a moment).",
        ),
    ] = False,
    home: HomeOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Show where a thread stands (reads only: no write lock, a read-only home will do)."""
    runner = guarded(as_json, lambda: home_runner(home, readonly=not changes), thread_id=thread)

    def go() -> dict[str, Any]:
        result = with_preview(runner, runner.outcome(thread))
        waiting = runner.graph.get_state({"configurable": {"thread_id": thread}}).next
        if waiting and not result["pending"]:
            result["hint"] = (
                f"the run stopped mid-way (next: {', '.join(waiting)}), or another process "
                f"is running it now: `planbound resume {thread}` continues it"
            )
        return result

    show(guarded(as_json, go, thread_id=thread), as_json)


def history_cmd(
    thread: Annotated[str, typer.Argument(help="Thread id.")],
    limit: Annotated[int, typer.Option("--limit", min=1, help="Most checkpoints shown.")] = 50,
    home: HomeOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """List a thread's checkpoints, newest first."""
    runner = guarded(as_json, lambda: home_runner(home, readonly=True), thread_id=thread)

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

    def go() -> dict[str, Any]:
        with thread_lock(runner.stores, thread):
            return runner.replay(thread, checkpoint, live=live)

    outcome = guarded(as_json, go, thread_id=thread)
    show(outcome, as_json)


def rollback_cmd(
    thread: Annotated[str, typer.Argument(help="Thread id.")],
    to: Annotated[str, typer.Option("--to", help="Checkpoint id to roll back to.")],
    home: HomeOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Undo the writes applied after a checkpoint (newest first), then fork back to it."""
    runner = guarded(as_json, lambda: home_runner(home), thread_id=thread)

    def go() -> dict[str, Any]:
        with thread_lock(runner.stores, thread):
            return runner.rollback(thread, to)

    report = guarded(as_json, go, thread_id=thread)
    if as_json:
        emit(report)
    else:
        render.rollback(thread, to, report)
    if report["status"] != "rolled_back":
        raise typer.Exit(1)
