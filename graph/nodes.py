"""The graph's nodes, bound to the run's services. Each returns only what it changes.

``intake → plan → verify → approve → execute → compensate | finalize``: each node is a thin
step that calls one planner, the verifier, the review module or the step runner.
"""

from __future__ import annotations

import uuid
from typing import Any

from langgraph.config import get_config
from langgraph.runtime import Runtime
from langgraph.types import Overwrite, interrupt

from checkpoints.audit import AuditLog
from checkpoints.db import Domain
from graph import events
from graph.compensation import undo_writes
from graph.context import Context
from graph.execution import (
    execute_step,
    ledgered_steps,
    next_ready,
    read_ahead,
    record_reads,
)
from graph.faults import pause_point
from graph.planners.explicit import parse_plan_document
from graph.planners.llm import LLMPlanner
from graph.provenance import journal_verdict, verdict_body
from graph.review import grant, granted_steps, judge_answer, review_request, still_authorised
from graph.services import Services
from graph.state import Pins, Route, State, Usage
from guards.errors import DecisionInvalid, PlanInvalid
from guards.feedback import budget_findings, planner_findings
from guards.judgement import Decision, Verdict
from guards.plan import CannotPlan, Plan, PlanRequest
from guards.review import DECLINING, apply_edits, identity_from_config
from guards.screening import screen_input
from guards.verifier import Judgement

PLAN_REQUEST = "plan_request"
"""The ``type`` of the interrupt that asks a person for a plan (the human fallback)."""


def _replay(runtime: Runtime[Context]) -> str:
    return runtime.context.replay if runtime.context is not None else "off"


def _declined(decision: Decision) -> str:
    """Say which step a reject or a respond stopped, who gave it and their message."""
    if decision.type == "respond":
        return f"{decision.step_id} not run: {decision.reviewer} responded: {decision.message}"
    note = f": {decision.message}" if decision.message else ""
    return f"{decision.step_id} rejected by {decision.reviewer}{note}"


def _plan(state: State) -> Plan:
    current = state.get("plan")
    if current is None:
        raise RuntimeError("no plan in state")
    return current


_RUN_RESETS: dict[str, Any] = {
    "request": None,
    "explicit_plan": None,
    "human_fallback": None,
    "plan": None,
    "feedback": Overwrite([]),
    "verdict": None,
    "decisions": Overwrite([]),
    "approvals": [],
    "results": Overwrite({}),
    "compensation": Overwrite([]),
    "error": None,
}
"""The per-run channels ``intake`` empties when a new run starts on a thread."""


class Nodes:
    """The seven nodes over one :class:`~graph.services.Services`."""

    def __init__(self, services: Services) -> None:
        self.services = services

    def intake(self, state: State, runtime: Runtime[Context]) -> dict[str, Any]:
        """Screen the input, give the run a decision id and pin catalog, policy and planner."""
        pause_point("node:intake")
        screen_input(state)
        services = self.services
        route = services.router.route(
            state.get("request"), explicit=state.get("explicit_plan") is not None
        )
        planner = (
            services.planner_for(state.get("explicit_plan"), route)
            if route.planner is not None
            else None
        )
        identity = identity_from_config(get_config())
        # What an earlier run on the thread left is cleared; a channel that holds nothing
        # (a new thread) is not written, so it costs no checkpoint write.
        resets = {k: v for k, v in _RUN_RESETS.items() if state.get(k) not in (None, [], {})}
        return {
            **resets,
            # This run's input moves to the run's own fields, so the next run on the thread
            # may send the other kind of input.
            "asked": state.get("request"),
            "asked_plan": state.get("explicit_plan"),
            # Behind the server the requester is the authenticated user, whatever the input says.
            "actor": identity.id if identity is not None else state.get("actor") or "anonymous",
            "decision_id": uuid.uuid4().hex,
            "pins": Pins(
                catalog=services.catalog.name,
                catalog_version=services.catalog.version,
                policy_version=services.policy.version,
                planner=planner.name if planner is not None else "none",
                planner_version=planner.version if planner is not None else "",
            ),
            "route": route,
            "usage": Usage(),
            "plan_attempts": 0,
            "status": "planning",
        }

    @events.recorded
    def plan(self, state: State, runtime: Runtime[Context]) -> dict[str, Any]:
        """Ask the planner for a plan; never runs a tool."""
        pause_point("node:plan")
        route = state.get("route")
        attempts = state.get("plan_attempts", 0) + 1
        if route is not None and route.planner is None:
            return {"plan_attempts": attempts, "status": "cannot_plan", "error": route.reason}
        if state.get("human_fallback") == "asked":
            return self._ask_for_plan(state)
        planner = self.services.planner_for(state.get("asked_plan"), route)
        request = PlanRequest(
            text=state.get("asked") or "",
            feedback=state.get("feedback") or [],
            previous=state.get("plan"),
        )
        if isinstance(planner, LLMPlanner):
            pinned = state["pins"].planner_version
            if planner.version != pinned:
                # The prompts, catalog rendering or model changed under a running decision.
                return {
                    "plan_attempts": attempts,
                    "status": "refused",
                    "error": f"the LLM planner changed since the run started ({pinned} -> "
                    f"{planner.version}); start a new run",
                }
            return self._plan_with_llm(planner, request, state)
        try:
            outcome = planner.plan(request)
        except PlanInvalid as exc:
            return {"plan_attempts": attempts, "status": "refused", "error": str(exc)}
        if isinstance(outcome, CannotPlan):
            return {"plan_attempts": attempts, "status": "cannot_plan", "error": outcome.reason}
        return {"plan": outcome, "plan_attempts": attempts, "status": "planning", "error": None}

    def _plan_with_llm(
        self, planner: LLMPlanner, request: PlanRequest, state: State
    ) -> dict[str, Any]:
        """Ask the model for a plan, handing an unusable reply back as findings.

        At most ``max_replans`` times; every call's tokens count against the run's budget.
        """
        settings = self.services.settings
        route = state.get("route")
        usage = state.get("usage") or Usage()
        attempts = state.get("plan_attempts", 0)
        while True:
            attempts += 1
            attempt = planner.attempt(request)
            usage = usage + attempt.usage
            update: dict[str, Any] = {"plan_attempts": attempts, "usage": usage}
            over = budget_findings(
                usage.total_tokens,
                settings.max_tokens,
                usage.cost,
                settings.max_cost,
                self.services.prices.currency,
            )
            if over:
                return update | {"status": "refused", "error": "; ".join(over)}
            outcome = attempt.outcome
            if isinstance(outcome, CannotPlan):
                return update | {"status": "cannot_plan", "error": outcome.reason}
            findings = list(attempt.findings)
            if isinstance(outcome, Plan):
                findings = self.services.router.tool_findings(
                    outcome, route.tier if route is not None else None
                )
                if not findings:
                    return update | {"plan": outcome, "status": "planning", "error": None}
            if attempts > settings.max_replans:
                if settings.human_fallback:
                    # The plan node runs again and asks a person (an interrupt re-runs its
                    # node on resume: the model must not be asked again then).
                    return update | {
                        "human_fallback": "asked",
                        "feedback": Overwrite(findings),
                        "status": "planning",
                    }
                return update | {
                    "status": "refused",
                    "error": f"the LLM planner gave no usable plan in {attempts} attempts: "
                    + "; ".join(findings),
                }
            previous = outcome if isinstance(outcome, Plan) else request.previous
            request = PlanRequest(text=request.text, feedback=findings, previous=previous)

    def _ask_for_plan(self, state: State) -> dict[str, Any]:
        """The human fallback: ask a person to write or repair the plan (an interrupt).

        The answer is a plan document (``{"plan": {...}}``, or ``{"reject": "why"}`` to end
        the run); it becomes a plan with ``source="edit"`` that is verified like any other.
        A malformed document is asked for again with the problem stated.
        """
        previous = state.get("plan")
        problem: str | None = None
        while True:
            answer = interrupt(
                {
                    "type": PLAN_REQUEST,
                    "decision_id": state["decision_id"],
                    "request": state.get("asked") or "",
                    "findings": list(state.get("feedback") or []),
                    "previous": previous.model_dump(mode="json") if previous else None,
                    "description": "The planner's re-plans are used up: write or repair the "
                    'plan as {"plan": {"steps": [...]}} (verified like any other), or '
                    'answer {"reject": "why"} to end the run.',
                    "error": problem,
                }
            )
            if isinstance(answer, dict) and isinstance(answer.get("reject"), str):
                return {
                    "human_fallback": "used",
                    "status": "rejected",
                    "error": f"no plan: {answer['reject']}",
                }
            document = answer.get("plan") if isinstance(answer, dict) else None
            if document is None:
                problem = 'the answer must be {"plan": {...}} or {"reject": "why"}'
                continue
            try:
                written = parse_plan_document(document, goal=state.get("asked") or "")
            except PlanInvalid as exc:
                problem = str(exc)
                continue
            plan = Plan(source="edit", goal=written.goal, steps=written.steps)
            return {"human_fallback": "used", "plan": plan, "status": "planning", "error": None}

    @events.recorded
    def verify(self, state: State, runtime: Runtime[Context]) -> dict[str, Any]:
        """Judge the plan (contracts, then the policy on facts read from the domain).

        A deny ends the run (or goes back to a planner that can re-plan); otherwise the
        verdict lists the steps that need a human and which roles may approve them.
        """
        pause_point("node:verify")
        services = self.services
        current = _plan(state)
        pins = state["pins"]
        changed = [
            f"the {what} changed since the run started ({pinned} -> {now}); start a new run"
            for what, pinned, now in (
                ("tool catalog", pins.catalog_version, services.catalog.version),
                ("policy", pins.policy_version, services.policy.version),
            )
            if pinned != now
        ]
        if changed:
            verdict = Verdict(
                outcome="deny",
                reasons=changed[:1],
                plan_id=current.id,
                catalog_version=pins.catalog_version,
                policy_version=pins.policy_version,
            )
            journal_verdict(services, state["decision_id"], current, verdict)
            return self._refuse(state, verdict, final=True)  # no re-plan can fix it
        stores = services.stores
        decision_id = state["decision_id"]
        judgement = services.verifier.verify(
            current, stores.domain, stores.lock, state.get("actor")
        )
        update: dict[str, Any] = {"verdict": judgement.verdict, "status": "verified"}
        if judgement.plan is not None and judgement.plan.id != current.id:
            # Its foreach steps written out, one per element: the calls judged and run.
            current = judgement.plan
            update["plan"] = current
        if judgement.verdict.outcome == "allow" and _replay(runtime) == "off":
            # Read once: the reads verify ran in its snapshot are this run's results (and
            # ledger rows, committed with the verdict's journal entry); execution runs only
            # what is left, and a plan with nothing left is complete. A plan that waits for
            # a reviewer runs nothing before the answer, and a replay serves the ledger.
            configurable = get_config().get("configurable") or {}
            thread = configurable.get("thread_id")
            body = verdict_body(current, judgement.verdict, judgement)

            def journal(conn: Domain) -> object:
                thread_id = str(thread) if thread is not None else None
                return AuditLog(conn).append(decision_id, "steps", "verdict", body, thread_id)

            results = record_reads(services, decision_id, current, judgement.reads, journal)
            update["results"] = Overwrite(results)
            if all(s.id in results for s in current.steps):
                update |= {"status": "completed", "error": None}
            return update
        journal_verdict(services, decision_id, current, judgement.verdict, judgement)
        if judgement.verdict.outcome == "deny":
            events.plan_denied(judgement)
            refused = self._refuse(state, judgement.verdict, judgement)
            if state.get("results"):
                refused["results"] = Overwrite({})  # reads recorded for an earlier plan
            return refused
        return update

    def _refuse(
        self,
        state: State,
        verdict: Verdict,
        judgement: Judgement | None = None,
        *,
        final: bool = False,
    ) -> dict[str, Any]:
        services = self.services
        route: Route | None = state.get("route")
        planner = services.planner_for(state.get("asked_plan"), route)
        settings = services.settings
        fallback = state.get("human_fallback")
        replans_left = state.get("plan_attempts", 0) <= settings.max_replans
        replannable = planner.can_replan and not final
        to_human = replannable and not replans_left and settings.human_fallback and not fallback
        fixable = replannable and fallback is None and (replans_left or to_human)
        verdict = verdict.model_copy(update={"fixable": fixable})
        update: dict[str, Any] = {"verdict": verdict}
        if fixable and isinstance(planner, LLMPlanner):
            # The model is told rule ids, step ids and field paths, never what a rule read.
            rules = services.taxonomy.rules if services.taxonomy is not None else {}
            findings = (
                planner_findings(judgement, rules) if judgement is not None else verdict.reasons
            )
            update["feedback"] = Overwrite(findings)
            if to_human:
                update["human_fallback"] = "asked"
        elif fixable:
            update["feedback"] = list(verdict.reasons)
        else:
            update["status"] = "refused"
            update["error"] = "; ".join(verdict.reasons)
        return update

    @events.recorded
    def approve(self, state: State, runtime: Runtime[Context]) -> dict[str, Any]:
        """Ask a human about every step that needs review and has no valid approval.

        Nothing but formatting happens before ``interrupt()``; the answer is validated and,
        if malformed or naming another review (decision or plan), the same request is asked
        again with the problem stated, so the thread stays resumable. A reject or a respond
        ends the run as ``rejected``, its message kept in the decision.
        """
        pause_point("node:approve")
        services = self.services
        current = _plan(state)
        verdict = state["verdict"]
        pins = state["pins"]
        if verdict is None:
            raise RuntimeError("approve reached without a verdict")
        granted = self._granted(state, current, verdict)
        if _replay(runtime) == "safe":
            # A safe replay re-serves what the ledger holds and never asks for new writes.
            done = ledgered_steps(services.stores, state["decision_id"])
            missing = [r.step_id for r in verdict.reviews if r.step_id not in granted | done]
            if missing:
                return {
                    "status": "stopped",
                    "error": f"safe replay: {', '.join(missing)} never ran; replay with --live "
                    "to apply them after a new approval",
                }
            return {"status": "approved"}
        pending = [r for r in verdict.reviews if r.step_id not in granted]
        if not pending:
            return {"status": "approved"}
        identity = identity_from_config(get_config())

        answered: dict[str, Decision] = {}
        shown: dict[str, dict[str, Any] | None] = {}
        problem: str | None = None
        while True:
            remaining = [r for r in pending if r.step_id not in answered]
            value = review_request(
                current, remaining, state["decision_id"], pins, services.catalog, problem
            )
            answer = interrupt(value)
            try:
                decisions, _, bound = judge_answer(
                    answer,
                    remaining,
                    current,
                    services,
                    state.get("actor"),
                    identity,
                    decision_id=state["decision_id"],
                )
            except DecisionInvalid as exc:
                problem = str(exc)
                continue
            problem = None
            answered.update({d.step_id: d for d in decisions})
            shown.update({d.step_id: bound.get(d.step_id) for d in decisions})
            if any(d.type in DECLINING for d in decisions) or len(answered) == len(pending):
                break

        given = list(answered.values())
        rejected = [d for d in given if d.type in DECLINING]
        if rejected:
            notes = "; ".join(_declined(d) for d in rejected)
            return {"decisions": given, "status": "rejected", "error": notes}

        new_plan = apply_edits(current, given)
        kept = [
            a
            for a in state.get("approvals") or []
            if a.step_id in granted and a.step_id not in answered
        ]
        approvals = grant([*kept, *given], new_plan, pins, shown)
        update: dict[str, Any] = {"decisions": given, "approvals": approvals}
        if new_plan is not current:
            update |= {"plan": new_plan, "verdict": None, "status": "verified"}
        else:
            update["status"] = "approved"
        return update

    def _granted(self, state: State, current: Plan, verdict: Verdict) -> set[str]:
        """Steps whose approval matches the exact call and still meets its requirements.

        After an edit the plan is verified again; an approval given under the old
        requirements counts only if its reviewer also meets the new ones (a supervisor for an
        order over the threshold, no self-approval of a high-risk step): else the step is
        asked for again.
        """
        pins, actor = state["pins"], state.get("actor")
        reviews = {r.step_id: r for r in verdict.reviews}
        approvals = state.get("approvals") or []
        matching = granted_steps(approvals, current, pins)
        return {
            a.step_id
            for a in approvals
            if a.step_id in matching
            and (
                a.step_id not in reviews
                or not still_authorised(a, reviews[a.step_id], current, self.services, actor)
            )
        }

    def execute(self, state: State, runtime: Runtime[Context]) -> dict[str, Any]:
        """Run the next ready step, or every read that can run now and the write after them.

        Reads run together (one snapshot, one ledger transaction, see
        :func:`graph.execution.read_ahead`). A write ends the super-step, so its checkpoint
        follows it; the reads that made it ready may come first in the same super-step, as
        their outcomes are already in the ledger (a re-run serves them from there).
        """
        pause_point("node:execute")
        current = _plan(state)
        results = dict(state.get("results") or {})
        step = next_ready(current, results)
        if step is None:
            raise RuntimeError("execute reached with no ready step")
        replay = _replay(runtime)
        ran: dict[str, Any] = {}
        if replay == "off" and self._reads(step.tool):
            # Every read that can run now, in one snapshot and one ledger transaction.
            batch = read_ahead(state, self.services)
            if step.id in batch:
                ran.update(batch)
                results.update(batch)
                step = next_ready(current, results)
                if step is None or self._reads(step.tool):
                    return {"status": "executing", "results": ran}
        while step is not None:
            now: State = {**state, "results": results}
            update = execute_step(now, step, self.services, replay)  # type: ignore[arg-type]
            result = (update.get("results") or {}).get(step.id)
            if result is None or set(update) - {"results", "status"} or not result.ok:
                return {**update, "results": {**ran, **update.get("results", {})}}
            ran[step.id] = results[step.id] = result
            if not self._reads(step.tool):
                break
            step = next_ready(current, results)
            if step is not None and not self._reads(step.tool):
                break
        return {"status": "executing", "results": ran}

    def _reads(self, tool: str) -> bool:
        entry = self.services.catalog.get(tool)
        return entry is not None and entry.spec.effect == "read"

    @events.recorded
    def compensate(self, state: State, runtime: Runtime[Context]) -> dict[str, Any]:
        """Undo completed write steps in reverse order; report what could not be undone."""
        pause_point("node:compensate")
        services = self.services
        current = _plan(state)
        results = state.get("results") or {}
        failed = [r for r in results.values() if not r.ok]
        writes = [
            (step.id, step.tool)
            for step in current.steps
            if (result := results.get(step.id)) is not None
            and result.ok
            and (entry := services.catalog.get(step.tool)) is not None
            and entry.spec.effect == "write"
        ]
        report = undo_writes(services, state["decision_id"], writes, stop_at_conflict=False)
        events.compensated(report)
        updated = {
            sid: results[sid].model_copy(update={"compensated": True}) for sid in report.undone
        }
        cause = "; ".join(f"{r.step_id} ({r.tool}) failed: {r.error}" for r in failed)
        if state.get("status") == "refused":
            # A step was refused at execution; the run stays refused after undoing earlier writes.
            note = "" if report.complete else "; compensation incomplete"
            return {
                "results": updated,
                "compensation": report.notes,
                "status": "refused",
                "error": (state.get("error") or cause) + note,
            }
        if not report.complete:
            status, error = "failed", f"{cause}; compensation incomplete"
        elif updated:
            status, error = "rolled_back", cause
        else:
            status, error = "failed", cause  # no write had happened: nothing to undo
        return {"results": updated, "compensation": report.notes, "status": status, "error": error}

    @events.recorded
    def finalize(self, state: State, runtime: Runtime[Context]) -> dict[str, Any]:
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
