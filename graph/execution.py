"""Running the plan: which step is next, and everything that happens around one tool call.

Before a write runs: its approval must match the exact call, and its rules are judged again on
fresh facts (the world may have changed while the run waited); the values its references and
selections resolve to must be those the reviewer approved. Then the engine runs it exactly
once. Steps already in the ledger (a resumed or replayed run) serve their recorded outcome.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from checkpoints.db import Domain
from checkpoints.factory import Stores
from checkpoints.ledger import Ledger, ReadRecord
from graph import events
from graph.context import ReplayMode
from graph.engine import ReadTimedOut, StepCall, ledger_output, run_step, succeeded, timed_read
from graph.errors import StepNotRun
from graph.review import digest, still_authorised
from graph.services import Services
from graph.state import State, StepResult
from guards.errors import ReferenceUnresolved
from guards.facts import DomainChanged, Read, read_plan
from guards.fanout import repeat_problem
from guards.judgement import bound_args, bound_problems
from guards.plan import Plan, Step, content_hash, dependencies, resolve_refs
from guards.policy import to_verdict


def next_ready(plan: Plan, results: dict[str, StepResult]) -> Step | None:
    """Return the first step, in plan order, not yet run whose dependencies all succeeded."""
    for step in plan.steps:
        if step.id in results:
            continue
        if all(d in results and results[d].ok for d in dependencies(step)):
            return step
    return None


def record_reads(
    services: Services,
    decision_id: str,
    plan: Plan,
    reads: dict[str, Read],
    journal: Callable[[Domain], object] | None = None,
) -> dict[str, StepResult]:
    """Record the reads verify ran in its snapshot as executed steps, in one transaction.

    Each becomes a ``succeeded`` ledger row with its outcome in the journal, as if the
    engine had run it; the returned results go into the run's state, so execution does not
    call those tools again. A step the ledger already holds keeps its row: a succeeded read
    of the same call is served from it (a verify run again after a crash), anything else
    is left to execution, which serves the recorded outcome. ``journal`` runs first in the
    same transaction (the verdict's entry).
    """
    if not reads and journal is None:
        return {}
    ordered = [s for s in plan.steps if s.id in reads]
    records = [
        ReadRecord(
            step_id=s.id,
            tool=reads[s.id].tool,
            args=reads[s.id].args,
            output=reads[s.id].output,
            output_hash=content_hash(reads[s.id].output, 64),
        )
        for s in ordered
    ]
    stores = services.stores
    with stores.lock, stores.domain.transaction(write=True):
        if journal is not None:
            journal(stores.domain)
        ledger = Ledger(stores.domain)
        done = ledger.record_reads(decision_id, records)
        held = {r.step_id: r for r in ledger.rows(decision_id)} if len(done) < len(records) else {}
    limit = services.settings.inline_limit
    results: dict[str, StepResult] = {}
    for s in ordered:
        read = reads[s.id]
        if s.id in done:
            results[s.id] = succeeded(decision_id, s.id, read.tool, read.output, 1, limit)
            events.step_finished(read.tool, True, read.seconds)
        elif (row := held.get(s.id)) is not None and (
            row.status == "succeeded" and row.tool == read.tool and row.args == read.args
        ):
            results[s.id] = succeeded(decision_id, s.id, row.tool, row.output, row.attempts, limit)
    return results


def read_ahead(state: State, services: Services) -> dict[str, StepResult]:
    """Run every read that can run now in one snapshot, and record them in one transaction.

    A read can run now when every step it depends on succeeded or is read in the same
    pass (see :func:`guards.facts.read_plan`); each tool keeps its catalog timeout. The
    results are recorded as :func:`record_reads` does. When the pass fails (a timeout, a
    database error), nothing is recorded and an empty dict is returned: the steps then run
    one by one through the engine, with its retries.

    A read the ledger already holds as succeeded (this step ran before a crash) is served
    from its row, never read again: a read that comes before a write in the plan never
    shows that write's effect.
    """
    plan = state["plan"]
    if plan is None:
        raise RuntimeError("execute ran without a plan")
    decision_id = state["decision_id"]
    stores = services.stores
    results = state.get("results") or {}
    known = {sid: output_of(r, decision_id, stores) for sid, r in results.items() if r.ok}
    limit = services.settings.inline_limit
    with stores.lock:
        rows = Ledger(stores.domain).rows(decision_id)
    served: dict[str, StepResult] = {}
    for row in rows:
        entry = services.catalog.get(row.tool)
        reads = entry is not None and entry.spec.effect == "read"
        if reads and row.status == "succeeded" and row.step_id not in results:
            served[row.step_id] = succeeded(
                decision_id, row.step_id, row.tool, row.output, row.attempts, limit
            )
            known[row.step_id] = row.output
    failed: tuple[type[BaseException], ...] = (ReadTimedOut, DomainChanged, *stores.domain.errors)
    try:
        reading = read_plan(
            plan,
            services.catalog,
            services.domain,
            stores.domain,
            stores.lock,
            known,
            collect=False,
            invoke=timed_read(stores.domain),
        )
    except failed:
        return {}
    fresh = {sid: read for sid, read in reading.reads.items() if sid not in known}
    return {**served, **record_reads(services, decision_id, plan, fresh)}


def ledgered_steps(stores: Stores, decision_id: str) -> set[str]:
    """Return the ids of a decision's steps that have an outcome in the ledger."""
    with stores.lock:
        rows = Ledger(stores.domain).rows(decision_id)
    return {r.step_id for r in rows if r.status != "started"}


def in_ledger(stores: Stores, decision_id: str, step_id: str) -> bool:
    """Whether the ledger already holds this step's outcome (a resumed run)."""
    with stores.lock:
        row = Ledger(stores.domain).get(decision_id, step_id)
    return row is not None and row.status != "started"


def output_of(result: StepResult, decision_id: str, stores: Stores) -> Any:
    """A step's output: inline in state, or from the ledger when it was too large."""
    if result.output_ref is not None:
        return ledger_output(stores.domain, stores.lock, decision_id, result.step_id)
    return result.output


def execute_step(
    state: State, step: Step, services: Services, replay: ReplayMode
) -> dict[str, Any]:
    """Run ``step`` and return the state update (its result, or why the run stops)."""
    plan = state["plan"]
    if plan is None:
        raise RuntimeError("execute ran without a plan")
    pins = state["pins"]
    decision_id = state["decision_id"]
    results = state.get("results") or {}
    stores = services.stores
    entry = services.catalog.get(step.tool)
    update: dict[str, Any] = {"status": "executing"}
    try:
        if entry is None:
            raise StepNotRun(step.id, f"unknown tool {step.tool!r}")
        approval = None
        writes = entry.spec.effect == "write"
        done = writes and in_ledger(stores, decision_id, step.id)
        if writes:
            approvals = state.get("approvals") or []
            approval = next(
                (
                    a
                    for a in approvals
                    if a.step_id == step.id and a.digest == digest(step, plan, pins, a.bound)
                ),
                None,
            )
            if replay == "safe" and not done:
                reason = (
                    f"safe replay: {step.id} ({step.tool}) never ran; replay with --live to "
                    "apply it after a new approval"
                )
                events.run_reached("stopped")
                return {"status": "stopped", "error": reason}
            if approval is None and not (replay == "safe" and done):
                raise StepNotRun(step.id, "no approval matches this exact call; not run")
        if writes and not done:
            known = {sid: output_of(r, decision_id, stores) for sid, r in results.items() if r.ok}
            decision, _ = services.verifier.decide(
                plan, stores.domain, stores.lock, state.get("actor"), known
            )
            problems = [str(v) for v in decision.denials_for(step.id)]
            if not problems and approval is not None:
                # Defence in depth: the approval must meet the step's requirements as they
                # stand now, whatever path led here.
                verdict = to_verdict(decision, plan, pins.catalog_version, pins.policy_version, "")
                review = next((r for r in verdict.reviews if r.step_id == step.id), None)
                if review is not None:
                    problems = still_authorised(
                        approval, review, plan, services, state.get("actor")
                    )
            if problems:
                reason = "refused at execution: " + "; ".join(problems)
                refusal = StepResult(
                    step_id=step.id, tool=step.tool, ok=False, error=reason, attempts=0
                )
                return {"results": {step.id: refusal}, "status": "refused", "error": reason}
        outputs = {
            sid: output_of(r, decision_id, stores)
            for sid, r in results.items()
            if r.ok and sid in dependencies(step)
        }
        repeated = repeat_problem(step, outputs)
        if repeated is not None:
            raise StepNotRun(step.id, repeated)
        args = resolve_refs(step.args, outputs, step.id)
        if approval is not None and not done:
            # The approval is for the values the reviewer was shown, not for the rule that
            # picks them: data that changed since makes this a call nobody approved.
            moved = bound_problems(step.id, approval.bound, bound_args(step, args) or {})
            if moved:
                raise StepNotRun(step.id, "; ".join(moved))
        result = run_step(
            StepCall(
                decision_id=decision_id, step_id=step.id, entry=entry, args=args, approval=approval
            ),
            stores.domain,
            stores.lock,
            open_store=services.domain.open_store,
            inline_limit=services.settings.inline_limit,
        )
    except (StepNotRun, ReferenceUnresolved) as exc:
        result = StepResult(step_id=step.id, tool=step.tool, ok=False, error=exc.reason, attempts=0)
    update["results"] = {step.id: result}
    return update
