"""The graph's nodes. Each takes ``(state, runtime)`` and returns only what it changes."""

from __future__ import annotations

import sqlite3
import uuid
from typing import Any

from langgraph.config import get_config
from langgraph.runtime import Runtime
from langgraph.types import Overwrite, interrupt

from checkpoints.ledger import Ledger
from graph import services
from graph.context import Context
from graph.engine import (
    StepCall,
    ToolFailed,
    compensate_step,
    ledger_output,
    run_step,
)
from graph.faults import pause_point
from graph.state import InputState, Pins, State, StepResult
from guards.contracts import Budget, check_plan
from guards.errors import DecisionInvalid, InputRejected, PlanInvalid, ReferenceUnresolved
from guards.facts import facts_hash, resolve_facts
from guards.judgement import Approval, Decision, Verdict, approval_digest
from guards.plan import (
    CannotPlan,
    Plan,
    PlanRequest,
    Step,
    ancestors,
    dependencies,
    resolve_refs,
)
from guards.policy import PolicyDecision, Violation, to_verdict
from guards.review import (
    apply_edits,
    authorize,
    identity_from_config,
    parse_answer,
)

MAX_REQUEST_CHARS = 4000


def _ctx(runtime: Runtime[Context]) -> Context:
    return runtime.context if runtime.context is not None else Context()


def screen_input(state: InputState) -> None:
    """Check a run's input; raise :class:`InputRejected` naming the field and the reason."""
    request = state.get("request")
    explicit = state.get("explicit_plan")
    if (request is None) == (explicit is None):
        raise InputRejected("give exactly one of 'request' (words) or 'explicit_plan' (a plan)")
    if request is not None:
        if not isinstance(request, str) or not request.strip():
            raise InputRejected("'request' must be a non-empty string")
        if len(request) > MAX_REQUEST_CHARS:
            raise InputRejected(
                f"'request' has {len(request)} characters; the limit is {MAX_REQUEST_CHARS}"
            )
    actor = state.get("actor")
    if actor is not None and not isinstance(actor, str):
        raise InputRejected("'actor' must be a string")


def intake(state: State, runtime: Runtime[Context]) -> dict[str, Any]:
    """Screen the input, give the run a decision id and pin catalog, policy and planner."""
    pause_point("node:intake")
    screen_input(state)
    ctx = _ctx(runtime)
    catalog = services.catalog()
    planner = services.planner_for(ctx, state.get("explicit_plan"))
    identity = identity_from_config(get_config())
    return {
        # Behind the server the requester is the authenticated user, whatever the input says.
        "actor": identity.id if identity is not None else state.get("actor") or "anonymous",
        "decision_id": uuid.uuid4().hex,
        "pins": Pins(
            catalog=catalog.name,
            catalog_version=catalog.version,
            policy_version=services.policy().version,
            planner=planner.name,
            planner_version=planner.version,
        ),
        "plan": None,
        "plan_attempts": 0,
        "feedback": Overwrite([]),
        "verdict": None,
        "decisions": Overwrite([]),
        "approvals": [],
        "results": Overwrite({}),
        "compensation": Overwrite([]),
        "status": "planning",
        "error": None,
    }


def plan(state: State, runtime: Runtime[Context]) -> dict[str, Any]:
    """Ask the planner for a plan; never runs a tool."""
    pause_point("node:plan")
    ctx = _ctx(runtime)
    planner = services.planner_for(ctx, state.get("explicit_plan"))
    request = PlanRequest(
        text=state.get("request") or "",
        feedback=state.get("feedback") or [],
        previous=state.get("plan"),
    )
    attempts = state.get("plan_attempts", 0) + 1
    try:
        outcome = planner.plan(request)
    except PlanInvalid as exc:
        return {"plan_attempts": attempts, "status": "refused", "error": str(exc)}
    if isinstance(outcome, CannotPlan):
        return {"plan_attempts": attempts, "status": "cannot_plan", "error": outcome.reason}
    return {"plan": outcome, "plan_attempts": attempts, "status": "planning", "error": None}


def verify(state: State, runtime: Runtime[Context]) -> dict[str, Any]:
    """Check the plan's contracts, then ask the policy about it with facts read from the domain.

    Contracts (unknown tool, bad arguments, references, cycles, budget) come first; a plan
    that passes them is judged by the Rego policy on the facts its steps reference. A deny
    ends the run (or goes back to a planner that can re-plan); otherwise the verdict lists
    the steps that need a human and which roles may approve them.
    """
    pause_point("node:verify")
    ctx = _ctx(runtime)
    current = _plan(state)
    pins = state["pins"]
    catalog = services.catalog()
    policy = services.policy()
    base = {
        "plan_id": current.id,
        "catalog_version": pins.catalog_version,
        "policy_version": pins.policy_version,
    }
    reasons: list[str] = []
    if catalog.version != pins.catalog_version:
        reasons.append(
            f"the tool catalog changed since the run started ({pins.catalog_version} -> "
            f"{catalog.version}); start a new run"
        )
    elif policy.version != pins.policy_version:
        reasons.append(
            f"the policy changed since the run started ({pins.policy_version} -> "
            f"{policy.version}); start a new run"
        )
    else:
        reasons = [str(f) for f in check_plan(current, catalog, Budget(max_steps=ctx.max_steps))]
    if reasons:
        return _refuse(state, ctx, Verdict(outcome="deny", reasons=reasons, **base))
    decision, digest = _judge(state, ctx, current)
    verdict = to_verdict(decision, current, pins.catalog_version, pins.policy_version, digest)
    if verdict.outcome == "deny":
        return _refuse(state, ctx, verdict)
    return {"verdict": verdict, "status": "verified"}


def _judge(
    state: State,
    ctx: Context,
    current: Plan,
    known_outputs: dict[str, Any] | None = None,
) -> tuple[PolicyDecision, str]:
    """Resolve the facts of ``current`` and evaluate the policy on them (fails closed)."""
    catalog = services.catalog()
    policy = services.policy()
    stores = services.stores(ctx)
    try:
        facts = resolve_facts(current, catalog, stores.domain, stores.lock, known_outputs)
    except sqlite3.Error as exc:
        failure = Violation("plan", "facts.readable", f"the facts could not be read: {exc}")
        return PolicyDecision(deny=(failure,)), ""
    document = policy.input_for(current, catalog, facts, ancestors(current), state.get("actor"))
    return policy.decide(document), facts_hash(facts)


def _refuse(state: State, ctx: Context, verdict: Verdict) -> dict[str, Any]:
    planner = services.planner_for(ctx, state.get("explicit_plan"))
    fixable = planner.can_replan and state.get("plan_attempts", 0) <= ctx.max_replans
    verdict = verdict.model_copy(update={"fixable": fixable})
    update: dict[str, Any] = {"verdict": verdict}
    if fixable:
        update["feedback"] = list(verdict.reasons)
    else:
        update["status"] = "refused"
        update["error"] = "; ".join(verdict.reasons)
    return update


def approve(state: State, runtime: Runtime[Context]) -> dict[str, Any]:
    """Ask a human about every step that needs review and has no valid approval.

    Nothing but formatting happens before ``interrupt()``; the answer is validated and, if
    malformed, the same request is asked again with the problem stated, so the thread stays
    resumable.
    """
    pause_point("node:approve")
    current = _plan(state)
    verdict = state["verdict"]
    pins = state["pins"]
    if verdict is None:
        raise RuntimeError("approve reached without a verdict")
    granted = {
        a.step_id
        for a in state.get("approvals") or []
        if a.digest == _digest(current.step(a.step_id), current, pins)
    }
    if _ctx(runtime).replay == "safe":
        # A safe replay re-serves what the ledger holds and never asks for new writes.
        done = _ledgered_steps(state, services.stores(_ctx(runtime)))
        missing = [r.step_id for r in verdict.reviews if r.step_id not in granted | done]
        if missing:
            return {
                "status": "stopped",
                "error": f"safe replay: {', '.join(missing)} never ran; replay with --live to "
                "apply them after a new approval",
            }
        return {"status": "approved"}
    pending = [r for r in verdict.reviews if r.step_id not in granted]
    if not pending:
        return {"status": "approved"}
    identity = identity_from_config(get_config())

    answered: dict[str, Decision] = {}
    problem: str | None = None
    while True:
        remaining = [r for r in pending if r.step_id not in answered]
        answer = interrupt(review_request(current, remaining, state["decision_id"], pins, problem))
        try:
            decisions = parse_answer(answer, remaining, current, identity)
            authorize(
                decisions,
                remaining,
                current,
                services.catalog(),
                services.policy(),
                state.get("actor"),
            )
        except DecisionInvalid as exc:
            problem = str(exc)
            continue
        problem = None
        answered.update({d.step_id: d for d in decisions})
        if any(d.type == "reject" for d in decisions) or len(answered) == len(pending):
            break

    given = list(answered.values())
    rejected = [d for d in given if d.type == "reject"]
    if rejected:
        notes = "; ".join(
            f"{d.step_id} rejected by {d.reviewer}" + (f": {d.message}" if d.message else "")
            for d in rejected
        )
        return {"decisions": given, "status": "rejected", "error": notes}

    new_plan = apply_edits(current, given)
    approvals = [
        Approval(
            step_id=d.step_id,
            digest=_digest(new_plan.step(d.step_id), new_plan, pins),
            reviewer=d.reviewer,
            roles=d.roles,
        )
        for d in given
    ]
    kept = [
        Approval(
            step_id=a.step_id,
            digest=_digest(new_plan.step(a.step_id), new_plan, pins),
            reviewer=a.reviewer,
            roles=a.roles,
        )
        for a in state.get("approvals") or []
        if a.step_id in granted and a.step_id not in answered
    ]
    update: dict[str, Any] = {"decisions": given, "approvals": [*kept, *approvals]}
    if new_plan is not current:
        update |= {"plan": new_plan, "verdict": None, "status": "verified"}
    else:
        update["status"] = "approved"
    return update


def review_request(
    current: Plan, pending: list[Any], decision_id: str, pins: Pins, problem: str | None
) -> dict[str, Any]:
    """Format the interrupt value in LangChain's human-in-the-loop schema."""
    catalog = services.catalog()
    requests, configs = [], []
    for review in pending:
        step = current.step(review.step_id)
        entry = catalog.get(step.tool)
        requests.append(
            {
                "name": step.tool,
                "arguments": step.args,
                "description": f"Step {step.id}: {review.reason}."
                + (f" {step.description}" if step.description else ""),
                "step_id": step.id,
            }
        )
        config: dict[str, Any] = {
            "action_name": step.tool,
            "allowed_decisions": ["approve", "edit", "reject"],
        }
        if entry is not None:
            config["arguments_schema"] = catalog.args_schema(step.tool).model_json_schema()
        configs.append(config)
    value: dict[str, Any] = {
        "action_requests": requests,
        "review_configs": configs,
        "decision_id": decision_id,
        "plan_id": current.id,
        "catalog_version": pins.catalog_version,
        "policy_version": pins.policy_version,
    }
    if problem:
        value["error"] = problem
    return value


def execute(state: State, runtime: Runtime[Context]) -> dict[str, Any]:
    """Run the next ready step (one step per super-step, so each is its own checkpoint)."""
    pause_point("node:execute")
    ctx = _ctx(runtime)
    current = _plan(state)
    pins = state["pins"]
    results = state.get("results") or {}
    step = next_ready(current, results)
    if step is None:
        raise RuntimeError("execute reached with no ready step")
    stores = services.stores(ctx)
    catalog = services.catalog()
    entry = catalog.get(step.tool)
    update: dict[str, Any] = {"status": "executing"}
    try:
        if entry is None:
            raise ToolFailed(step.id, f"unknown tool {step.tool!r}")
        approval = None
        if entry.spec.effect == "write":
            digest = _digest(step, current, pins)
            approval = next(
                (
                    a
                    for a in state.get("approvals") or []
                    if a.step_id == step.id and a.digest == digest
                ),
                None,
            )
            in_ledger = step.id in _ledgered(state, stores, step)
            if ctx.replay == "safe" and not in_ledger:
                reason = (
                    f"safe replay: {step.id} ({step.tool}) never ran; replay with --live to "
                    "apply it after a new approval"
                )
                return {"status": "stopped", "error": reason}
            if approval is None and not (ctx.replay == "safe" and in_ledger):
                raise ToolFailed(step.id, "no approval matches this exact call; not run")
        outputs = {
            sid: _output(r, state["decision_id"], stores)
            for sid, r in results.items()
            if r.ok and sid in dependencies(step)
        }
        if entry.spec.effect == "write" and step.id not in _ledgered(state, stores, step):
            # The world may have changed while the run waited: re-read and re-judge the step.
            known = {
                sid: _output(r, state["decision_id"], stores) for sid, r in results.items() if r.ok
            }
            decision, _ = _judge(state, ctx, current, known)
            denials = decision.denials_for(step.id)
            if denials:
                reason = "refused at execution: " + "; ".join(str(v) for v in denials)
                refusal = StepResult(
                    step_id=step.id, tool=step.tool, ok=False, error=reason, attempts=0
                )
                return {"results": {step.id: refusal}, "status": "refused", "error": reason}
        args = resolve_refs(step.args, outputs, step.id)
        result = run_step(
            StepCall(
                decision_id=state["decision_id"],
                step_id=step.id,
                entry=entry,
                args=args,
                approval=approval,
            ),
            stores.domain,
            stores.lock,
            inline_limit=ctx.inline_limit,
        )
    except (ToolFailed, ReferenceUnresolved) as exc:
        result = StepResult(step_id=step.id, tool=step.tool, ok=False, error=exc.reason, attempts=0)
    update["results"] = {step.id: result}
    return update


def compensate(state: State, runtime: Runtime[Context]) -> dict[str, Any]:
    """Undo completed write steps in reverse order; report what could not be undone."""
    pause_point("node:compensate")
    ctx = _ctx(runtime)
    current = _plan(state)
    stores = services.stores(ctx)
    catalog = services.catalog()
    results = state.get("results") or {}
    failed = [r for r in results.values() if not r.ok]
    notes: list[str] = []
    updated: dict[str, StepResult] = {}
    all_done = True
    for step in reversed(current.steps):
        result = results.get(step.id)
        entry = catalog.get(step.tool)
        if result is None or not result.ok or entry is None or entry.spec.effect != "write":
            continue
        if entry.spec.compensator is None:
            notes.append(f"{step.id}: {step.tool} is irreversible; its effect remains")
            all_done = False
            continue
        done, note = compensate_step(stores.domain, stores.lock, state["decision_id"], step.id)
        notes.append(note)
        all_done &= done
        if done:
            updated[step.id] = result.model_copy(update={"compensated": True})
    cause = "; ".join(f"{r.step_id} ({r.tool}) failed: {r.error}" for r in failed)
    if state.get("status") == "refused":
        # A step was refused at execution; the run stays refused after undoing earlier writes.
        note = "" if all_done else "; compensation incomplete"
        return {
            "results": updated,
            "compensation": notes,
            "status": "refused",
            "error": (state.get("error") or cause) + note,
        }
    if not all_done:
        status, error = "failed", f"{cause}; compensation incomplete"
    elif updated:
        status, error = "rolled_back", cause
    else:
        status, error = "failed", cause  # no write had happened: nothing to undo
    return {"results": updated, "compensation": notes, "status": status, "error": error}


def finalize(state: State, runtime: Runtime[Context]) -> dict[str, Any]:
    """Close the run: completed when every step succeeded, failed otherwise."""
    pause_point("node:finalize")
    results = state.get("results") or {}
    failed = [r for r in results.values() if not r.ok]
    if failed:
        return {
            "status": "failed",
            "error": "; ".join(f"{r.step_id} ({r.tool}) failed: {r.error}" for r in failed),
        }
    return {"status": "completed", "error": None}


def next_ready(current: Plan, results: dict[str, StepResult]) -> Step | None:
    """Return the first step, in plan order, not yet run whose dependencies all succeeded."""
    for step in current.steps:
        if step.id in results:
            continue
        if all(d in results and results[d].ok for d in dependencies(step)):
            return step
    return None


def _plan(state: State) -> Plan:
    current = state.get("plan")
    if current is None:
        raise RuntimeError("no plan in state")
    return current


def _digest(step: Step, current: Plan, pins: Pins) -> str:
    return approval_digest(step, current.id, pins.catalog_version, pins.policy_version)


def _ledgered_steps(state: State, stores: Any) -> set[str]:
    """Return the ids of this decision's steps that have an outcome in the ledger."""
    with stores.lock:
        rows = Ledger(stores.domain).rows(state["decision_id"])
    return {r.step_id for r in rows if r.status != "started"}


def _ledgered(state: State, stores: Any, step: Step) -> set[str]:
    """Return ``{step.id}`` if the ledger already holds this step's outcome (a resumed run)."""
    with stores.lock:
        row = Ledger(stores.domain).get(state["decision_id"], step.id)
    return {step.id} if row is not None and row.status != "started" else set()


def _output(result: StepResult, decision_id: str, stores: Any) -> Any:
    if result.output_ref is not None:
        return ledger_output(stores.domain, stores.lock, decision_id, result.step_id)
    return result.output
