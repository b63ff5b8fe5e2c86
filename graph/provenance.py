"""What the flow itself writes to the audit journal: each verdict, with the rules that fired.

Answers are journalled by :mod:`graph.review`, step outcomes, approvals used and undos by the
ledger; the verify node adds one ``verdict`` entry per judgement to the decision's ``steps``
stream, so ``planbound audit`` can tell which plan was judged, how, and under which rules.
"""

from __future__ import annotations

from typing import Any

from langgraph.config import get_config

from checkpoints.audit import AuditLog, Entry
from graph.services import Services
from guards.judgement import Verdict
from guards.plan import Plan
from guards.verifier import Judgement


def verdict_body(
    plan: Plan, verdict: Verdict, judgement: Judgement | None = None
) -> dict[str, Any]:
    """The journal body of one verdict: the plan judged, the outcome and every rule that fired.

    Args:
        plan: The plan that was judged (kept whole, so the journal tells the story even after
            its checkpoints are pruned).
        verdict: The verdict recorded in state.
        judgement: What the verifier found (contract findings, policy denials); ``None`` for
            a verdict given without asking it (the catalog or policy changed mid-run).
    """
    decision = judgement.decision if judgement is not None else None
    return {
        "plan_id": plan.id,
        "plan_source": plan.source,
        "template": plan.template,
        "plan": plan.model_dump(mode="json"),
        "outcome": verdict.outcome,
        "reasons": list(verdict.reasons),
        "contracts": [str(f) for f in judgement.findings] if judgement is not None else [],
        "deny": [
            {"step_id": v.step, "rule": v.rule, "reason": v.reason}
            for v in (decision.deny if decision is not None else ())
        ],
        "approval": [
            {
                "step_id": r.step_id,
                "rules": list(r.rules),
                "roles": list(r.roles),
                "reason": r.reason,
            }
            for r in verdict.reviews
        ],
        "catalog_version": verdict.catalog_version,
        "policy_version": verdict.policy_version,
        "facts_hash": verdict.facts_hash,
    }


def journal_verdict(
    services: Services,
    decision_id: str,
    plan: Plan,
    verdict: Verdict,
    judgement: Judgement | None = None,
) -> Entry:
    """Append a verdict to the decision's ``steps`` stream, with the run's thread id.

    Called from inside a node (the thread id comes from the run's config), in a transaction
    of its own.
    """
    configurable = get_config().get("configurable") or {}
    thread_id = configurable.get("thread_id")
    stores = services.stores
    body = verdict_body(plan, verdict, judgement)
    with stores.lock:
        return AuditLog(stores.domain).append_now(
            decision_id,
            "steps",
            "verdict",
            body,
            str(thread_id) if thread_id is not None else None,
        )
