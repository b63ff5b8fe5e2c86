"""Policy as code: Rego policies evaluated in-process (regopy) or by an OPA server.

A policy bundle is the set of ``.rego`` files in a directory (the shipped one is
``tools/retail/policies``); its content hash is the policy version, pinned by every run and
recorded with every verdict. The verifier asks the bundle's ``decision`` rule for a plan and
its facts, and the ``approval_denied`` rule whether a reviewer may approve a step.

Evaluation fails closed: an engine error, a broken policy file or an unreachable OPA server
yields a ``deny`` whose reason is the error.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import threading
import urllib.error
import urllib.request
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Protocol

from guards.errors import GuardError
from guards.judgement import StepReview, Verdict
from guards.plan import Plan
from tools.catalog import Catalog

PACKAGE = "planbound.retail"
"""The Rego package that holds the decision rules."""

ENTRYPOINTS = ("decision", "approval_denied")
"""The rules planbound evaluates: a plan's decision, and a reviewer's authority."""


class PolicyError(GuardError):
    """A policy could not be loaded or evaluated."""


# Bundles ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PolicyBundle:
    """The Rego modules of one policy directory, with their unit tests kept apart.

    Attributes:
        source: Where the bundle was read from (for messages).
        modules: ``(file name, text)`` of every policy module, sorted by name.
        tests: ``(file name, text)`` of every ``*_test.rego`` file, sorted by name.
    """

    source: str
    modules: tuple[tuple[str, str], ...]
    tests: tuple[tuple[str, str], ...] = ()

    @property
    def version(self) -> str:
        """Content hash of the policy modules (tests excluded): the pinned policy version."""
        digest = hashlib.sha256()
        for name, text in self.modules:
            digest.update(name.encode() + b"\0" + text.encode() + b"\0")
        return "rego-" + digest.hexdigest()[:16]

    @classmethod
    def load(cls, path: str | os.PathLike[str] | None = None) -> PolicyBundle:
        """Read a bundle from a directory, or the shipped retail policy when ``path`` is None.

        Raises:
            PolicyError: the directory does not exist or holds no policy module.
        """
        if path is None:
            root: Any = resources.files("tools.retail").joinpath("policies")
            source = "tools/retail/policies (shipped)"
        else:
            root = Path(path)
            source = str(path)
            if not root.is_dir():
                raise PolicyError(f"policy directory {source} does not exist")
        modules: list[tuple[str, str]] = []
        tests: list[tuple[str, str]] = []
        for entry in sorted(root.iterdir(), key=lambda e: e.name):
            if not entry.name.endswith(".rego"):
                continue
            text = entry.read_text(encoding="utf-8")
            (tests if entry.name.endswith("_test.rego") else modules).append((entry.name, text))
        if not modules:
            raise PolicyError(f"policy directory {source} holds no .rego policy module")
        return cls(source=source, modules=tuple(modules), tests=tuple(tests))


# Engines ------------------------------------------------------------------------------------


class Engine(Protocol):
    """Evaluates one rule of the policy package against an input document."""

    def query(self, rule: str, document: Mapping[str, Any]) -> Any:
        """Return the value of ``data.<package>.<rule>`` for ``document``.

        Raises:
            PolicyError: on any failure, including an undefined rule.
        """
        ...


def _rego_error(exc: Exception) -> str:
    text = str(exc)
    messages = re.findall(r"\(errormsg \d+:([^)]*)\)", text)
    where = re.findall(r"\(error \d+:([^|\s]+)\|", text)
    if messages:
        place = f" in {where[0]}" if where else ""
        return f"{messages[0].strip()}{place}"
    return text.splitlines()[0] if text else type(exc).__name__


class RegoEngine:
    """In-process evaluation with regopy (rego-cpp); no server needed."""

    def __init__(self, bundle: PolicyBundle, extra_modules: Iterable[tuple[str, str]] = ()):
        """Prepare an engine for ``bundle`` (plus test modules when running unit tests)."""
        self.bundle = bundle
        self._modules = (*bundle.modules, *extra_modules)
        self._local = threading.local()

    def _interpreter(self) -> Any:
        interp = getattr(self._local, "interp", None)
        if interp is None:
            from regopy import Interpreter

            interp = Interpreter()
            for name, text in self._modules:
                try:
                    interp.add_module(name, text)
                except Exception as exc:
                    problem = _rego_error(exc)
                    raise PolicyError(f"policy {name} does not compile: {problem}") from None
            self._local.interp = interp
        return interp

    def _compiled(self) -> tuple[Any, Any]:
        """The interpreter and the bundle compiled once for the entry points (per thread)."""
        bundle = getattr(self._local, "bundle", None)
        interp = self._interpreter()
        if bundle is None:
            base = PACKAGE.replace(".", "/")
            try:
                bundle = interp.build(None, [f"{base}/{rule}" for rule in ENTRYPOINTS])
            except Exception as exc:
                raise PolicyError(f"the policy does not build: {_rego_error(exc)}") from None
            self._local.bundle = bundle
        return interp, bundle

    def query(self, rule: str, document: Mapping[str, Any]) -> Any:
        """Evaluate ``data.planbound.retail.<rule>`` in-process (compiled once per thread)."""
        if rule not in ENTRYPOINTS:
            raise PolicyError(f"{rule!r} is not a policy entry point ({', '.join(ENTRYPOINTS)})")
        interp, bundle = self._compiled()
        try:
            interp.set_input_term(json.dumps(document))
            output = interp.query_bundle_entrypoint(bundle, f"{PACKAGE.replace('.', '/')}/{rule}")
        except Exception as exc:  # the engine's own failures, reported, never raised through
            raise PolicyError(
                f"the Rego engine failed on data.{PACKAGE}.{rule}: {type(exc).__name__}"
            ) from None
        # An output that is not ok must not be printed or inspected (rego-cpp aborts).
        if not output.ok():
            raise PolicyError(f"the Rego engine could not evaluate data.{PACKAGE}.{rule}")
        if len(output) == 0 or not output[0].expressions:
            raise PolicyError(f"data.{PACKAGE}.{rule} is undefined for this input")
        return output[0].expressions[0]

    def query_path(self, path: str) -> tuple[bool, Any]:
        """Evaluate any ``data`` path with an empty input; return ``(ok, value)``."""
        interp = self._interpreter()
        interp.set_input_term("{}")
        output = interp.query(path)
        if not output.ok():
            return False, "the Rego engine reported an error"
        if len(output) == 0 or not output[0].expressions:
            return True, None
        return True, output[0].expressions[0]


class OpaEngine:
    """Evaluation by an OPA server over its REST data API (``POST /v1/data/<path>``)."""

    def __init__(self, url: str, timeout_s: float = 5.0) -> None:
        """Point at an OPA server, e.g. ``http://127.0.0.1:8181``."""
        self.url = url.rstrip("/")
        self.timeout_s = timeout_s

    def query(self, rule: str, document: Mapping[str, Any]) -> Any:
        """Evaluate ``data.planbound.retail.<rule>`` on the server."""
        endpoint = f"{self.url}/v1/data/{PACKAGE.replace('.', '/')}/{rule}"
        body = json.dumps({"input": document}).encode()
        request = urllib.request.Request(
            endpoint, data=body, headers={"Content-Type": "application/json"}, method="POST"
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_s) as response:
                answer = json.loads(response.read())
        except urllib.error.HTTPError as exc:
            raise PolicyError(f"OPA at {endpoint} answered HTTP {exc.code}") from None
        except (urllib.error.URLError, TimeoutError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise PolicyError(f"OPA at {endpoint} is unreachable: {reason}") from None
        except ValueError:
            raise PolicyError(f"OPA at {endpoint} answered something that is not JSON") from None
        if not isinstance(answer, dict) or "result" not in answer:
            raise PolicyError(f"OPA at {endpoint}: data.{PACKAGE}.{rule} is undefined")
        return answer["result"]


# Decisions ----------------------------------------------------------------------------------


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


@dataclass(frozen=True)
class PolicyConfig:
    """Operator settings passed to the policy as ``input.config``.

    Attributes:
        amount_threshold: Order value above which a supervisor must approve
            (``PLANBOUND_APPROVAL_THRESHOLD``).
        max_write_steps: Most write steps one plan may hold (``PLANBOUND_MAX_WRITE_STEPS``).
    """

    amount_threshold: float = 1000.0
    max_write_steps: int = 3

    @classmethod
    def from_env(cls) -> PolicyConfig:
        """Read the settings from the environment, with the defaults above."""
        try:
            return cls(
                amount_threshold=float(os.environ.get("PLANBOUND_APPROVAL_THRESHOLD") or 1000),
                max_write_steps=int(os.environ.get("PLANBOUND_MAX_WRITE_STEPS") or 3),
            )
        except ValueError as exc:
            raise PolicyError(f"bad policy setting in the environment: {exc}") from None


def _as_list(value: Any) -> list[Any]:
    if isinstance(value, list):
        return value
    if isinstance(value, dict):  # an empty set may come back as {}
        return list(value.values())
    return []


@dataclass
class Policy:
    """A loaded policy bundle with the engine that evaluates it."""

    bundle: PolicyBundle
    engine: Engine
    config: PolicyConfig = field(default_factory=PolicyConfig)

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
        """Build the policy input document for ``plan``."""
        return {
            "plan": {
                "id": plan.id,
                "source": plan.source,
                "steps": [
                    {
                        "id": s.id,
                        "tool": s.tool,
                        "args": s.args,
                        "ancestors": list(ancestors.get(s.id, [])),
                    }
                    for s in plan.steps
                ],
            },
            "catalog": {
                name: {
                    "effect": entry.spec.effect,
                    "risk": entry.spec.risk,
                    "compensator": entry.spec.compensator,
                    "version": entry.spec.version,
                }
                for name, entry in catalog.entries.items()
            },
            "facts": dict(facts),
            "actor": {"id": actor or "anonymous"},
            "config": {
                "amount_threshold": self.config.amount_threshold,
                "max_write_steps": self.config.max_write_steps,
            },
        }

    def decide(self, document: Mapping[str, Any]) -> PolicyDecision:
        """Evaluate the decision; any failure is a ``deny`` naming the error (fail closed)."""
        try:
            raw = self.engine.query("decision", document)
            if not isinstance(raw, dict):
                raise PolicyError(f"data.{PACKAGE}.decision is not an object")
            deny = tuple(
                sorted(
                    (Violation(str(d["step"]), str(d["rule"]), str(d["reason"]))
                     for d in _as_list(raw.get("deny"))),
                    key=lambda v: (v.step, v.rule, v.reason),
                )
            )  # fmt: skip
            asks = tuple(
                sorted(
                    (
                        Requirement(
                            str(d["step"]),
                            str(d["rule"]),
                            str(d["reason"]),
                            tuple(sorted(str(r) for r in _as_list(d.get("roles")))),
                        )
                        for d in _as_list(raw.get("needs_approval"))
                    ),
                    key=lambda r: (r.step, r.rule),
                )
            )
        except PolicyError as exc:
            return PolicyDecision(deny=(Violation("plan", "policy.error", str(exc)),))
        except Exception as exc:  # fail closed on anything else, naming it
            return PolicyDecision(
                deny=(Violation("plan", "policy.error", f"malformed policy decision: {exc!r}"),)
            )
        return PolicyDecision(deny=deny, needs_approval=asks)

    def approval_denied(
        self,
        review: StepReview,
        risk: str,
        reviewer: str,
        roles: list[str],
        actor: str | None,
    ) -> list[str]:
        """Return why ``reviewer`` (with ``roles``) may not approve a step; empty if they may."""
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
            raw = self.engine.query("approval_denied", document)
        except Exception as exc:
            return [f"the approval could not be checked: {exc}"]
        return sorted(str(r) for r in _as_list(raw))


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


def load_policy(
    path: str | os.PathLike[str] | None = None,
    opa_url: str | None = None,
    config: PolicyConfig | None = None,
) -> Policy:
    """Load the policy: ``path`` or ``PLANBOUND_POLICY_DIR`` or the shipped bundle.

    The engine is an OPA server when ``opa_url`` or ``OPA_URL`` is set, regopy otherwise.
    """
    bundle = PolicyBundle.load(path or os.environ.get("PLANBOUND_POLICY_DIR") or None)
    url = opa_url or os.environ.get("OPA_URL") or None
    engine: Engine = OpaEngine(url) if url else RegoEngine(bundle)
    return Policy(bundle=bundle, engine=engine, config=config or PolicyConfig.from_env())


# Unit tests of the policy -------------------------------------------------------------------


@dataclass(frozen=True)
class RegoTest:
    """The outcome of one ``test_*`` rule."""

    module: str
    name: str
    passed: bool
    error: str | None = None


_PACKAGE_RE = re.compile(r"^package\s+([\w.]+)", re.MULTILINE)
_TEST_RE = re.compile(r"^(test_\w+)\s+if\b", re.MULTILINE)


def run_tests(bundle: PolicyBundle) -> list[RegoTest]:
    """Run every ``test_*`` rule of the bundle's ``*_test.rego`` files, in-process.

    Raises:
        PolicyError: a module or test file does not compile.
    """
    engine = RegoEngine(bundle, extra_modules=bundle.tests)
    outcomes: list[RegoTest] = []
    for name, text in bundle.tests:
        package = _PACKAGE_RE.search(text)
        if package is None:
            raise PolicyError(f"{name} has no package declaration")
        for test in dict.fromkeys(_TEST_RE.findall(text)):
            ok, value = engine.query_path(f"data.{package.group(1)}.{test}")
            if not ok:
                outcomes.append(RegoTest(name, test, False, str(value)))
            else:
                outcomes.append(RegoTest(name, test, value is True, None if value else "false"))
    return outcomes
