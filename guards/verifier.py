"""The one verifier: contracts, then facts read from the domain, then the policy.

The verify node, ``planbound policy explain``, the execution-time re-check of a write step
and the verify benchmark all call this module, so a plan is judged the same way everywhere.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from guards.contracts import Budget, Finding, check_plan
from guards.facts import Read, Reading, Snapshots, facts_hash, read_plan, resolve_facts
from guards.judgement import Verdict, bound_args
from guards.plan import Plan, ancestors
from guards.policy import Policy, PolicyDecision, Violation, to_verdict
from tools.catalog import Catalog
from tools.domain import DomainPlugin


@dataclass(frozen=True)
class Judgement:
    """What verifying one plan found.

    Attributes:
        verdict: The verdict recorded in state.
        findings: Contract violations (a deny before the policy was asked).
        decision: The policy's decision (empty when the contracts failed).
        facts: The facts the policy decided on (``None`` when it was not asked).
        reads: The read steps run to read the facts, in the same snapshot, that execution
            may use instead of running them again (see :class:`guards.facts.Reading`).
        plan: The plan judged: the one given, with its foreach steps expanded into one
            step per element (:mod:`guards.fanout`); ``None`` when it was not read.
    """

    verdict: Verdict
    findings: list[Finding] = field(default_factory=list)
    decision: PolicyDecision = field(default_factory=PolicyDecision)
    facts: dict[str, Any] | None = None
    reads: dict[str, Read] = field(default_factory=dict)
    plan: Plan | None = None


def bind_reviews(verdict: Verdict, plan: Plan, facts: Mapping[str, Any]) -> Verdict:
    """Give each review the values its step's references resolved to in ``facts``.

    The reviewer is shown those values and the approval binds to them; execution refuses
    the step when its arguments resolve to anything else (see
    :func:`guards.judgement.bound_problems`).
    """
    if not verdict.reviews:
        return verdict
    steps = facts.get("steps") or {}
    reviews = [
        r.model_copy(
            update={
                "resolved_args": bound_args(
                    plan.step(r.step_id), (steps.get(r.step_id) or {}).get("args")
                )
            }
        )
        for r in verdict.reviews
    ]
    return verdict.model_copy(update={"reviews": reviews})


@dataclass(frozen=True)
class Verifier:
    """Judges plans against one pinned catalog and policy, on one domain."""

    catalog: Catalog
    policy: Policy
    domain: DomainPlugin
    budget: Budget

    def contracts(self, plan: Plan) -> list[Finding]:
        """Return the plan's contract violations (catalog, arguments, references, budgets)."""
        return check_plan(plan, self.catalog, self.budget)

    def facts(
        self,
        plan: Plan,
        conn: Snapshots,
        lock: threading.RLock,
        known_outputs: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Read the facts the plan's steps reference (read-only, one snapshot)."""
        return resolve_facts(plan, self.catalog, self.domain, conn, lock, known_outputs)

    def decide(
        self,
        plan: Plan,
        conn: Snapshots,
        lock: threading.RLock,
        actor: str | None,
        known_outputs: Mapping[str, Any] | None = None,
    ) -> tuple[PolicyDecision, dict[str, Any] | None]:
        """Read the facts and ask the policy; a failed read is a deny (fail closed)."""
        decision, reading = self._decide(plan, conn, lock, actor, known_outputs)
        return decision, reading.facts if reading is not None else None

    def _decide(
        self,
        plan: Plan,
        conn: Snapshots,
        lock: threading.RLock,
        actor: str | None,
        known_outputs: Mapping[str, Any] | None = None,
    ) -> tuple[PolicyDecision, Reading | None]:
        try:
            reading = read_plan(plan, self.catalog, self.domain, conn, lock, known_outputs)
        except conn.errors as exc:
            failure = Violation("plan", "facts.readable", f"the facts could not be read: {exc}")
            return PolicyDecision(deny=(failure,)), None
        if reading.problems:
            return PolicyDecision(
                deny=tuple(Violation("plan", "plan.foreach", p) for p in reading.problems)
            ), reading
        judged = reading.plan or plan
        findings = self.contracts(judged) if judged is not plan else []
        if findings:  # the budgets, judged on the calls the foreach steps stand for
            return PolicyDecision(
                deny=tuple(
                    Violation(f.step_id or "plan", "plan.contracts", str(f)) for f in findings
                )
            ), reading
        document = self.policy.input_for(
            judged, self.catalog, reading.facts, ancestors(judged), actor
        )
        return self.policy.decide(document), reading

    def verify(
        self, plan: Plan, conn: Snapshots, lock: threading.RLock, actor: str | None
    ) -> Judgement:
        """Judge ``plan``: contracts first, then the policy on facts read from the domain."""
        base = {
            "plan_id": plan.id,
            "catalog_version": self.catalog.version,
            "policy_version": self.policy.version,
        }
        findings = self.contracts(plan)
        if findings:
            verdict = Verdict(outcome="deny", reasons=[str(f) for f in findings], **base)
            return Judgement(verdict=verdict, findings=findings)
        decision, reading = self._decide(plan, conn, lock, actor)
        if reading is None:
            verdict = to_verdict(decision, plan, self.catalog.version, self.policy.version, "")
            return Judgement(verdict=verdict, decision=decision)
        judged = reading.plan or plan
        digest = facts_hash(reading.facts)
        verdict = bind_reviews(
            to_verdict(decision, judged, self.catalog.version, self.policy.version, digest),
            judged,
            reading.facts,
        )
        return Judgement(
            verdict=verdict,
            decision=decision,
            facts=reading.facts,
            reads=reading.reads,
            plan=judged,
        )
