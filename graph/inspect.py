"""What a thread looks like from outside: its outcome, its history, and plan explanations.

Every function here only reads (checkpoints, the ledger, the domain in a rolled-back
snapshot); none moves a thread.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from langgraph.types import Interrupt, StateSnapshot

from checkpoints.ledger import Ledger
from graph.planners.explicit import parse_plan_document
from graph.review import pending_request
from graph.services import Services
from guards.facts import facts_hash
from guards.policy import to_verdict


def outcome(thread_id: str, snapshot: StateSnapshot) -> dict[str, Any]:
    """Return the one-object summary of a thread's latest state."""
    return outcome_of(thread_id, snapshot.values, snapshot.interrupts)


def outcome_of(
    thread_id: str, values: Mapping[str, Any], interrupts: Sequence[Interrupt]
) -> dict[str, Any]:
    """The summary of :func:`outcome` from a thread's values and pending interrupts.

    ``values`` needs only the graph's output keys (``graph.state.OutputState``), so what an
    invocation returns (``invoke(..., version="v2")``) serves as well as a state snapshot.
    """
    request = pending_request(interrupts)
    plan = values.get("plan")
    verdict = values.get("verdict")
    pending = []
    if request is not None:
        reasons = {r.step_id: r.reason for r in (verdict.reviews if verdict else [])}
        pending = [
            {
                "step_id": a["step_id"],
                "tool": a["name"],
                # A review asked before ``args`` (LangChain's name) spelt it ``arguments``.
                "args": a["args"] if "args" in a else a.get("arguments", {}),
                "reason": reasons.get(a["step_id"], a.get("description", "")),
            }
            for a in request["action_requests"]
        ]
    status = "awaiting_approval" if request is not None else values.get("status")
    plan_request = next(
        (
            i.value
            for i in interrupts
            if isinstance(i.value, dict) and i.value.get("type") == "plan_request"
        ),
        None,
    )
    if plan_request is not None:
        status = "awaiting_plan"
    results = values.get("results") or {}
    route = values.get("route")
    usage = values.get("usage")
    return {
        "thread_id": thread_id,
        "decision_id": values.get("decision_id"),
        "status": status,
        "plan": plan.model_dump(mode="json") if plan is not None else None,
        "verdict": verdict.model_dump(mode="json") if verdict is not None else None,
        "pending": pending,
        "results": [
            {
                "step_id": r.step_id,
                "tool": r.tool,
                "ok": r.ok,
                **({"output": r.output} if r.ok else {"error": r.error}),
                **({"output_ref": r.output_ref} if r.output_ref else {}),
                "attempts": r.attempts,
                "compensated": r.compensated,
            }
            for r in results.values()
        ],
        "compensation": values.get("compensation") or [],
        "review_error": request.get("error") if request is not None else None,
        "error": values.get("error"),
        "route": route.model_dump(mode="json") if route is not None else None,
        "usage": usage.model_dump(mode="json") if usage is not None else None,
        **({"plan_request": plan_request} if plan_request is not None else {}),
    }


def history(services: Services, snapshots: Iterator[StateSnapshot]) -> Iterator[dict[str, Any]]:
    """Yield a thread's checkpoints, newest first, with the ledger entries each covers."""
    stores = services.stores
    ledgers: dict[str, dict[str, str]] = {}
    for snap in snapshots:
        meta = snap.metadata or {}
        decision_id = snap.values.get("decision_id")
        if decision_id and decision_id not in ledgers:
            with stores.lock:
                rows = Ledger(stores.domain).rows(decision_id)
            ledgers[decision_id] = {r.step_id: r.status for r in rows}
        done = sorted((snap.values.get("results") or {}).keys())
        statuses = ledgers.get(decision_id or "", {})
        yield {
            "checkpoint_id": snap.config["configurable"].get("checkpoint_id"),
            "step": meta.get("step"),
            "source": meta.get("source"),
            "created_at": snap.created_at,
            "next": list(snap.next),
            "status": snap.values.get("status"),
            "steps_done": done,
            "ledger": {sid: statuses.get(sid, "missing") for sid in done},
            "interrupted": bool(snap.interrupts),
        }


def explain(services: Services, document: Any, actor: str | None = None) -> dict[str, Any]:
    """Judge a plan document without running anything; say which rule fired and why.

    Raises:
        PlanInvalid: the document is not a plan.
    """
    plan = parse_plan_document(document)
    stores = services.stores
    verifier = services.verifier
    findings = [str(f) for f in verifier.contracts(plan)]
    decision, facts = verifier.decide(plan, stores.domain, stores.lock, actor)
    digest = facts_hash(facts) if facts is not None else ""
    verdict = to_verdict(decision, plan, verifier.catalog.version, verifier.policy.version, digest)
    steps = []
    for step in plan.steps:
        deny = [{"rule": v.rule, "reason": v.reason} for v in decision.denials_for(step.id)]
        asks = [
            {"rule": r.rule, "reason": r.reason, "roles": list(r.roles)}
            for r in decision.needs_approval
            if r.step == step.id
        ]
        steps.append(
            {
                "step": step.id,
                "tool": step.tool,
                "args": step.args,
                "resolved_args": (facts or {}).get("steps", {}).get(step.id, {}).get("args"),
                "outcome": "deny" if deny else "needs_approval" if asks else "allow",
                "deny": deny,
                "needs_approval": asks,
            }
        )
    return {
        "plan_id": plan.id,
        "outcome": "deny" if findings else verdict.outcome,
        "contracts": findings,
        "policy_version": verifier.policy.version,
        "catalog_version": verifier.catalog.version,
        "facts_hash": digest,
        "steps": steps,
    }
