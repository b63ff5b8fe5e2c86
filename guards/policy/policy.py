"""A loaded policy: the input it reads, the decision it gives, and who may approve.

Evaluation fails closed: a :class:`~guards.errors.PolicyError` (a broken policy file, an
engine error, an unreachable OPA server, a malformed answer) becomes a ``deny`` naming the
error. Any other exception is a programming error and propagates.
"""

from __future__ import annotations

import json
import math
import threading
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from guards.errors import PolicyError
from guards.judgement import StepReview
from guards.plan import Plan
from guards.policy.bundle import BundlePath, PolicyBundle
from guards.policy.decision import PolicyDecision, Violation, parse_decision, rego_set
from guards.policy.engines import Engine, EngineName, InProcessEngine, OpaEngine, RegoEngine
from guards.policy.regorus import RegorusEngine
from tools.catalog import Catalog


@dataclass(frozen=True)
class PolicyConfig:
    """Operator settings passed to the policy as ``input.config``.

    Attributes:
        amount_threshold: Order value above which a supervisor must approve; a finite
            number, at least 0.
        max_write_steps: Most write steps one plan may hold; at least 1.

    Raises:
        PolicyError: a field is out of range (the message names it). A threshold that is
            not a finite number would make every comparison false and switch the
            supervisor rule off, so it is refused.
    """

    amount_threshold: float = 1000.0
    max_write_steps: int = 3

    def __post_init__(self) -> None:
        threshold = self.amount_threshold
        if (
            isinstance(threshold, bool)
            or not isinstance(threshold, int | float)
            or not math.isfinite(threshold)
            or threshold < 0
        ):
            raise PolicyError(f"amount_threshold must be a finite number >= 0, got {threshold!r}")
        steps = self.max_write_steps
        if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
            raise PolicyError(f"max_write_steps must be an integer >= 1, got {steps!r}")


MEMO_SIZE = 256
"""Answers a policy keeps, by rule and input document (a decision asks the same several times)."""


@dataclass
class Policy:
    """A loaded policy bundle with the engine that evaluates it.

    A policy's answer depends only on its modules and the input document, so answers are
    memoised by (rule, document) when they are evaluated in-process: within one decision the
    same questions come back (the write re-judged on fresh facts that did not change, a
    reviewer's authority checked when the answer arrives and again before the write), and
    are answered once. Both in-process engines (regopy, regorus) are memoised. Failures are
    not kept: a policy error is asked again next time. An OPA server is always asked (its
    policy is deployed apart from this process).
    """

    bundle: PolicyBundle
    engine: Engine
    config: PolicyConfig = field(default_factory=PolicyConfig)
    _memo: OrderedDict[tuple[str, str], Any] = field(
        default_factory=OrderedDict, init=False, repr=False, compare=False
    )
    _memo_lock: threading.Lock = field(
        default_factory=threading.Lock, init=False, repr=False, compare=False
    )

    def _query(self, rule: str, document: Mapping[str, Any]) -> Any:
        """The engine's answer for ``rule`` on ``document``, memoised (see the class).

        Raises:
            PolicyError: the engine failed (nothing is memoised).
        """
        if not isinstance(self.engine, InProcessEngine):
            return self.engine.query(rule, document)
        key = (rule, json.dumps(document, sort_keys=True, default=str))
        with self._memo_lock:
            if key in self._memo:
                self._memo.move_to_end(key)
                return self._memo[key]
        value = self.engine.query(rule, document)
        with self._memo_lock:
            self._memo[key] = value
            while len(self._memo) > MEMO_SIZE:
                self._memo.popitem(last=False)
        return value

    def forget(self) -> None:
        """Drop every memoised answer (a benchmark measuring cold evaluations)."""
        with self._memo_lock:
            self._memo.clear()

    @property
    def version(self) -> str:
        """The pinned policy version (the bundle's content hash)."""
        return self.bundle.version

    def input_for(
        self,
        plan: Plan,
        catalog: Catalog,
        facts: Mapping[str, Any],
        ancestors: Mapping[str, list[str]],
        actor: str | None,
    ) -> dict[str, Any]:
        """Build the policy input document for ``plan``.

        The engine parses the input on every decision, at a cost that grows with its
        members, so it holds what rules read and nothing twice: a step's arguments appear
        once, resolved, under ``facts.steps`` (not also as planned, with their references),
        and a step's fact leaves out what is null or empty (``output`` of a step that is not
        an identity lookup, ``error``, ``unresolved``), which a rule reads as undefined
        either way.
        """
        return {
            "plan": {
                "id": plan.id,
                "source": plan.source,
                "steps": [
                    {"id": s.id, "tool": s.tool, "ancestors": list(ancestors.get(s.id, []))}
                    for s in plan.steps
                ],
            },
            # The entries of the tools the plan names: the rules look tools up by a step's
            # tool, and the input stays small.
            "catalog": {
                name: {
                    "effect": entry.spec.effect,
                    "risk": entry.spec.risk,
                    "compensator": entry.spec.compensator,
                }
                for name in sorted({s.tool for s in plan.steps})
                if (entry := catalog.entries.get(name)) is not None
            },
            "facts": _compact_facts(facts),
            "actor": {"id": actor or "anonymous"},
            "config": {
                "amount_threshold": self.config.amount_threshold,
                "max_write_steps": self.config.max_write_steps,
            },
        }

    def decide(self, document: Mapping[str, Any]) -> PolicyDecision:
        """Evaluate the decision; a policy failure is a ``deny`` naming it (fail closed)."""
        try:
            return parse_decision(self._query("decision", document))
        except PolicyError as exc:
            return PolicyDecision(deny=(Violation("plan", "policy.error", str(exc)),))

    def approval_denied(
        self,
        review: StepReview,
        risk: str,
        reviewer: str,
        roles: list[str],
        actor: str | None,
    ) -> list[str]:
        """Return why ``reviewer`` (with ``roles``) may not approve a step; empty if they may.

        A policy failure is a refusal naming it (fail closed).
        """
        document = {
            "approval": {
                "step": review.step_id,
                "risk": risk,
                "reviewer": {"id": reviewer, "roles": sorted(roles)},
                "requirements": review.requirements,
            },
            "actor": {"id": actor or "anonymous"},
        }
        try:
            reasons = rego_set(self._query("approval_denied", document), "approval_denied")
        except PolicyError as exc:
            return [f"the approval could not be checked: {exc}"]
        return sorted(str(r) for r in reasons)


def _compact_facts(facts: Mapping[str, Any]) -> dict[str, Any]:
    """The facts as the policy reads them: each step's record without null or empty fields."""
    compact = dict(facts)
    steps = facts.get("steps")
    if isinstance(steps, Mapping):
        compact["steps"] = {
            step_id: (
                {k: v for k, v in record.items() if v is not None and v != []}
                if isinstance(record, Mapping)
                else record
            )
            for step_id, record in steps.items()
        }
    return compact


def load_policy(
    path: BundlePath,
    *,
    package: str,
    opa_url: str | None = None,
    engine: EngineName = "regopy",
    config: PolicyConfig | None = None,
) -> Policy:
    """Load a policy bundle and the engine that evaluates it.

    Args:
        path: The domain's policy folder (or an operator's).
        package: The Rego package holding ``decision`` and ``approval_denied``.
        opa_url: An OPA server (``http(s)://``) to evaluate on; in-process when None.
            The bundle is still read locally: its hash is the pinned policy version.
        engine: The in-process engine: ``regopy`` (the default) or ``regorus`` (opt-in,
            the ``regorus`` extra). ``regorus`` with an OPA URL is refused: one of the two
            would be ignored.
        config: Operator settings passed as ``input.config`` (defaults when None).

    Raises:
        PolicyError: the folder, the package name, the URL or the engine is refused, or
            regorus is asked for and not installed.
    """
    if engine not in ("regopy", "regorus"):
        raise PolicyError(f"unknown policy engine {engine!r}: regopy or regorus")
    if opa_url and engine == "regorus":
        raise PolicyError(
            "the regorus engine evaluates in-process: give it or an OPA URL, not both"
        )
    bundle = PolicyBundle.load(path)
    evaluator: Engine
    if opa_url:
        evaluator = OpaEngine(opa_url, package=package)
    elif engine == "regorus":
        evaluator = RegorusEngine(bundle, package=package)
    else:
        evaluator = RegoEngine(bundle, package=package)
    return Policy(bundle=bundle, engine=evaluator, config=config or PolicyConfig())
