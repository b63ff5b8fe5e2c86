"""What a policy says about a plan, read from the engine's answer and mapped to a Verdict."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from guards.errors import PolicyError
from guards.judgement import StepReview, Verdict
from guards.plan import Plan


@dataclass(frozen=True)
class Violation:
    """A ``deny`` from the policy."""

    step: str
    rule: str
    reason: str

    def __str__(self) -> str:
        return f"{self.step}: {self.reason} [{self.rule}]"


@dataclass(frozen=True)
class Requirement:
    """A ``needs_approval`` from the policy: who may approve a step and why."""

    step: str
    rule: str
    reason: str
    roles: tuple[str, ...]


@dataclass(frozen=True)
class PolicyDecision:
    """What the policy said about one plan."""

    deny: tuple[Violation, ...] = ()
    needs_approval: tuple[Requirement, ...] = ()

    def denials_for(self, step_id: str) -> list[Violation]:
        """Return the denials that name ``step_id`` (or the plan as a whole)."""
        return [v for v in self.deny if v.step in (step_id, "plan")]


def rego_set(value: Any, what: str) -> list[Any]:
    """Return the members of a Rego set as the engines encode it (a JSON array).

    Raises:
        PolicyError: ``value`` is not a set (an empty set may also come back as ``{}``).
    """
    if isinstance(value, list):
        return value
    if value == {}:
        return []
    raise PolicyError(f"malformed policy decision: {what} is not a set: {value!r}")


def _fields(entry: Any, what: str, names: tuple[str, ...]) -> list[str]:
    if not isinstance(entry, dict):
        raise PolicyError(f"malformed policy decision: a {what} entry is not an object")
    missing = [n for n in names if not isinstance(entry.get(n), str)]
    if missing:
        raise PolicyError(
            f"malformed policy decision: a {what} entry lacks {', '.join(missing)}: {entry!r}"
        )
    return [entry[n] for n in names]


def parse_decision(raw: Any) -> PolicyDecision:
    """Read the value of the ``decision`` rule (``{"deny": set, "needs_approval": set}``).

    Raises:
        PolicyError: the value does not have that shape; nothing is guessed.
    """
    if not isinstance(raw, dict):
        raise PolicyError("malformed policy decision: the decision is not an object")
    for key in ("deny", "needs_approval"):
        if key not in raw:
            raise PolicyError(f"malformed policy decision: the decision has no {key!r}")
    deny = sorted(
        (
            Violation(*_fields(d, "deny", ("step", "rule", "reason")))
            for d in rego_set(raw["deny"], "deny")
        ),
        key=lambda v: (v.step, v.rule, v.reason),
    )
    asks: list[Requirement] = []
    for d in rego_set(raw["needs_approval"], "needs_approval"):
        step, rule, reason = _fields(d, "needs_approval", ("step", "rule", "reason"))
        roles = rego_set(d.get("roles"), "needs_approval roles")
        if not all(isinstance(r, str) for r in roles):
            raise PolicyError(f"malformed policy decision: roles of {rule} are not strings")
        asks.append(Requirement(step, rule, reason, tuple(sorted(roles))))
    asks.sort(key=lambda r: (r.step, r.rule))
    return PolicyDecision(deny=tuple(deny), needs_approval=tuple(asks))


def to_verdict(
    decision: PolicyDecision,
    plan: Plan,
    catalog_version: str,
    policy_version: str,
    facts_hash: str,
) -> Verdict:
    """Map a policy decision to the graph's :class:`~guards.judgement.Verdict`."""
    base = {
        "plan_id": plan.id,
        "catalog_version": catalog_version,
        "policy_version": policy_version,
        "facts_hash": facts_hash,
    }
    if decision.deny:
        return Verdict(outcome="deny", reasons=[str(v) for v in decision.deny], **base)
    reviews: list[StepReview] = []
    for step in plan.steps:
        asks = [r for r in decision.needs_approval if r.step == step.id]
        if not asks:
            continue
        role_sets = [set(r.roles) for r in asks]
        common = set.intersection(*role_sets)
        reviews.append(
            StepReview(
                step_id=step.id,
                reason="; ".join(f"{r.reason} [{r.rule}]" for r in asks),
                rules=[r.rule for r in asks],
                roles=sorted(common or set.union(*role_sets)),
                requirements=[
                    {"rule": r.rule, "roles": list(r.roles), "reason": r.reason} for r in asks
                ],
            )
        )
    outcome = "needs_approval" if reviews else "allow"
    return Verdict(outcome=outcome, reviews=reviews, **base)
