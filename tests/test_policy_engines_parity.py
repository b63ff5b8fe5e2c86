"""regorus and regopy give the same answers: on the policy inputs of real plans judged on the
seeded τ² data (the offline datasets, the templates' plans of their requests, the
benchmark's ten-step plan, the policy table of tests/test_policy.py, which fires every rule,
each also as an LLM plan) and on approval checks (reviewer, supervisor, self-approval), and on
every ``test_*`` rule of the retail policy's unit tests. Also: regorus's failures are policy
errors (fail closed), each thread has its own engine, and the setting's refused values."""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from test_policy import CASES, LLM_CASES

from evals.bench_verify import ten_step_plan
from graph.errors import ConfigError
from graph.planners.explicit import parse_plan_document
from graph.services import Services
from graph.settings import Settings
from guards.errors import PlanInvalid
from guards.judgement import StepReview
from guards.plan import Plan, PlanRequest
from guards.policy import (
    ENTRYPOINTS,
    Engine,
    Policy,
    PolicyBundle,
    PolicyError,
    RegoEngine,
    RegorusEngine,
    load_policy,
    to_verdict,
)
from guards.policy.decision import parse_decision, rego_set
from guards.policy.regorus import RegorusModules
from guards.policy.testing import discover
from tools.retail import DOMAIN, load_shipped

PACKAGE = "planbound.retail"
DATASETS = Path(__file__).resolve().parent.parent / "evals" / "datasets"
ACTORS = ("ann", "bo")
BIG_CANCEL = [  # a pending order of 3439.37, over the $1,000 threshold: a supervisor's
    {"name": "find_user_id_by_email", "arguments": {"email": "fatima.anderson1447@example.com"}},
    {
        "name": "cancel_pending_order",
        "arguments": {"order_id": "#W4514908", "reason": "no longer needed"},
    },
]
REVIEWERS: list[tuple[str, list[str]]] = [
    ("bo", ["reviewer"]),
    ("bo", ["supervisor"]),
    ("bo", ["admin"]),
    ("bo", []),
    ("bo", ["requester"]),
    ("ann", ["reviewer"]),  # the requester approving their own step
    ("ann", ["supervisor"]),
]


Question = tuple[str, dict[str, Any], Any]
"""A rule, the input document it was asked about, and regopy's answer."""


@dataclass
class Recorder:
    """An engine that answers with regopy and keeps every distinct question and answer."""

    inner: Engine
    asked: dict[str, Question] = field(default_factory=dict)

    @property
    def package(self) -> str:
        return self.inner.package

    def query(self, rule: str, document: Mapping[str, Any]) -> Any:
        answer = self.inner.query(rule, document)
        key = json.dumps([rule, document], sort_keys=True)
        self.asked.setdefault(key, (rule, json.loads(json.dumps(document)), answer))
        return answer


def dataset_plans() -> Iterator[Plan]:
    for name in ("explicit", "violations", "adversarial"):
        for line in (DATASETS / f"{name}.jsonl").read_text(encoding="utf-8").splitlines():
            document = json.loads(line)["inputs"].get("explicit_plan")
            if document is None:
                continue
            try:
                yield parse_plan_document(document)
            except PlanInvalid:
                continue  # refused before the policy is asked


@pytest.fixture(scope="module")
def questions(tmp_path_factory: pytest.TempPathFactory) -> list[Question]:
    """Every policy question real plans and approvals ask, recorded from the verifier."""
    home = tmp_path_factory.mktemp("parity")
    services = Services(Settings.load(home=home))
    try:
        services.seed(load_shipped())
        stores, verifier, policy = services.stores, services.verifier, services.policy
        assert isinstance(policy.engine, RegoEngine)
        recorder = Recorder(policy.engine)
        policy.engine = recorder
        plans = [ten_step_plan(), parse_plan_document(BIG_CANCEL), *dataset_plans()]
        plans += [
            parse_plan_document({"goal": case[0], "steps": case[1]})
            for case in (*CASES, *LLM_CASES)
        ]
        for row in (DATASETS / "templates.jsonl").read_text(encoding="utf-8").splitlines():
            planned = services.templates.plan(
                PlanRequest(text=json.loads(row)["inputs"]["request"])
            )
            if isinstance(planned, Plan):
                plans.append(planned)
        plans += [p.model_copy(update={"source": "llm"}) for p in list(plans)]
        for plan in plans:
            for actor in ACTORS:
                decision, _ = verifier.decide(plan, stores.domain, stores.lock, actor)
                verdict = to_verdict(decision, plan, "c", "p", "f")
                for review in verdict.reviews:
                    for risk in ("high", "medium"):
                        for reviewer, roles in REVIEWERS:
                            policy.approval_denied(review, risk, reviewer, roles, actor)
        return list(recorder.asked.values())
    finally:
        services.stores.close()


def test_the_recorded_questions_cover_every_kind_of_answer(questions: list[Question]) -> None:
    decisions = [parse_decision(a) for r, _, a in questions if r == "decision"]
    denied = [rego_set(a, r) for r, _, a in questions if r == "approval_denied"]
    rules = {v.rule for d in decisions for v in d.deny} | {
        a.rule for d in decisions for a in d.needs_approval
    }
    assert len(decisions) >= 300
    assert sum(bool(d.deny) for d in decisions) >= 50
    assert sum(not d.deny and not d.needs_approval for d in decisions) >= 10
    text = dict(PolicyBundle.load(DOMAIN.policy_dir).modules)["retail.rego"]
    written = set(re.findall(r'violation\(s, "([\w.]+)"', text))
    written |= set(re.findall(r'"rule": "([\w.]+)"', text))
    assert len(written) >= 25 and written <= rules  # every rule of the policy fired
    assert sum(not d for d in denied) >= 10 and sum(bool(d) for d in denied) >= 10
    reasons = " ".join(str(r) for d in denied for r in d)
    assert "operator.no_self_approval" in reasons  # a requester approving their own step
    assert "needs one of the roles admin, supervisor" in reasons  # a supervisor's step


def test_regorus_answers_as_regopy_does(questions: list[Question]) -> None:
    regorus = RegorusEngine(PolicyBundle.load(DOMAIN.policy_dir), package=PACKAGE)
    for rule, document, expected in questions:
        got = regorus.query(rule, document)
        assert got == expected, (rule, document)
        if rule == "decision":
            assert parse_decision(got) == parse_decision(expected)


def test_a_policy_on_regorus_decides_as_on_regopy(questions: list[Question]) -> None:
    on_regorus = load_policy(DOMAIN.policy_dir, package=PACKAGE, engine="regorus")
    assert isinstance(on_regorus.engine, RegorusEngine)
    assert on_regorus.version == PolicyBundle.load(DOMAIN.policy_dir).version
    for rule, document, answer in questions:
        if rule == "decision":
            assert on_regorus.decide(document) == parse_decision(answer)


def test_every_unit_test_of_the_policy_holds_on_regorus() -> None:
    bundle = PolicyBundle.load(DOMAIN.policy_dir)
    tests = discover(bundle)  # found by regopy's compiler, as `planbound policy test` does
    assert len(tests) >= 20
    modules = RegorusModules((*bundle.modules, *bundle.tests))
    for rule in tests:
        assert modules.evaluate(f"data.{rule.package}.{rule.name}", {}) == (True, True), rule.name


def test_a_failing_unit_test_fails_on_regorus_too() -> None:
    bundle = PolicyBundle.load(DOMAIN.policy_dir)
    failing = (
        "package planbound.retail_test\n\nimport rego.v1\n\n"
        "test_wrong if {\n\tdata.planbound.retail.decision.deny == {1}\n}\n"
    )
    modules = RegorusModules((*bundle.modules, ("wrong_test.rego", failing)))
    assert modules.evaluate("data.planbound.retail_test.test_wrong", {}) == (False, None)


def test_each_thread_has_its_own_engine(questions: list[Question]) -> None:
    regorus = RegorusEngine(PolicyBundle.load(DOMAIN.policy_dir), package=PACKAGE)
    sample = questions[::7][:40]
    regorus.query(*sample[0][:2])  # this thread's engine made first; the others make theirs
    with ThreadPoolExecutor(max_workers=4) as pool:
        answers = list(pool.map(lambda q: regorus.query(q[0], q[1]), sample))
    assert answers == [q[2] for q in sample]


def test_regorus_answers_are_memoised() -> None:
    policy = load_policy(DOMAIN.policy_dir, package=PACKAGE, engine="regorus")
    document: dict[str, Any] = {
        "plan": {"id": "p", "source": "template", "steps": []},
        "catalog": {},
        "facts": {},
        "actor": {"id": "ann"},
        "config": {"amount_threshold": 1000.0, "max_write_steps": 6},
    }
    first = policy.decide(document)
    assert len(policy._memo) == 1
    assert policy.decide(document) == first and len(policy._memo) == 1


# Failures: policy errors, fail closed -----------------------------------------------------------


def _policy(tmp_path: Path, text: str) -> Policy:
    (tmp_path / "p.rego").write_text(text, encoding="utf-8")
    return load_policy(tmp_path, package=PACKAGE, engine="regorus")


def test_a_module_that_does_not_compile_is_a_policy_error(tmp_path: Path) -> None:
    policy = _policy(tmp_path, "package planbound.retail\n\ndecision := {\n")
    with pytest.raises(PolicyError, match=r"policy p\.rego does not compile: .* in p\.rego:") as e:
        policy.engine.query("decision", {})
    assert "backtrace" not in str(e.value).lower()
    assert policy.decide({}).deny[0].rule == "policy.error"
    denied = policy.approval_denied(_review(), "high", "bo", ["reviewer"], "ann")
    assert denied[0].startswith("the approval could not be checked: policy p.rego does not")


def _review() -> StepReview:
    return StepReview(step_id="s", reason="r", rules=["writes.need_approval"], roles=["reviewer"])


def test_an_undefined_rule_is_a_policy_error(tmp_path: Path) -> None:
    policy = _policy(
        tmp_path, "package planbound.retail\n\nimport rego.v1\n\ndecision := 1 if false\n"
    )
    with pytest.raises(PolicyError, match=r"data\.planbound\.retail\.decision is undefined"):
        policy.engine.query("decision", {})
    with pytest.raises(PolicyError, match=r"approval_denied is undefined"):
        policy.engine.query("approval_denied", {})
    with pytest.raises(PolicyError, match="is not a policy entry point"):
        policy.engine.query("deny", {})
    assert policy.decide({}).deny[0].rule == "policy.error"
    wrong = load_policy(DOMAIN.policy_dir, package="acme.shop", engine="regorus")
    with pytest.raises(PolicyError, match=r"data\.acme\.shop\.decision is undefined"):
        wrong.engine.query("decision", {})


def test_an_evaluation_error_is_a_policy_error(tmp_path: Path) -> None:
    policy = _policy(
        tmp_path, "package planbound.retail\n\nimport rego.v1\n\ndecision := 1 / input.n\n"
    )
    with pytest.raises(PolicyError, match=r"regorus engine failed on .*decision: divide by zero"):
        policy.engine.query("decision", {"n": 0})
    malformed = policy.decide({"n": 1})
    assert [v.rule for v in malformed.deny] == ["policy.error"]
    assert "not an object" in malformed.deny[0].reason
    assert set(ENTRYPOINTS) == {"decision", "approval_denied"}


def test_regorus_not_installed_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "regorus", None)
    with pytest.raises(PolicyError, match=r"not installed: pip install 'planbound\[regorus\]'"):
        load_policy(DOMAIN.policy_dir, package=PACKAGE, engine="regorus")
    with pytest.raises(
        ConfigError, match=r"PLANBOUND_POLICY_ENGINE=regorus but .*planbound\[regorus\]"
    ):
        Settings.load(policy_engine="regorus")
    assert Settings.load().policy_engine == "regopy"


# The setting --------------------------------------------------------------------------------


@pytest.mark.parametrize("value", ["opa", "Regorus", "rego-cpp", "regopy "])
def test_an_unknown_engine_is_refused(value: str) -> None:
    with pytest.raises(
        ConfigError, match=r"PLANBOUND_POLICY_ENGINE: Input should be 'regopy' or 'regorus'"
    ):
        Settings.load(policy_engine=value)
    with pytest.raises(PolicyError, match="unknown policy engine"):
        load_policy(DOMAIN.policy_dir, package=PACKAGE, engine=value)  # type: ignore[arg-type]


def test_regorus_with_an_opa_url_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(
        ConfigError, match="OPA_URL and PLANBOUND_POLICY_ENGINE=regorus are both set"
    ):
        Settings.load(policy_engine="regorus", opa_url="http://127.0.0.1:8181")
    monkeypatch.setenv("PLANBOUND_POLICY_ENGINE", "regorus")
    monkeypatch.setenv("OPA_URL", "http://127.0.0.1:8181")
    with pytest.raises(ConfigError, match="both set"):
        Settings.load()
    with pytest.raises(PolicyError, match="not both"):
        load_policy(
            DOMAIN.policy_dir, package=PACKAGE, engine="regorus", opa_url="http://127.0.0.1:8181"
        )


def test_the_setting_chooses_the_engine(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("OPA_URL", raising=False)
    monkeypatch.setenv("PLANBOUND_POLICY_ENGINE", "regorus")
    assert isinstance(Services(Settings.load(home=tmp_path)).policy.engine, RegorusEngine)
    monkeypatch.setenv("PLANBOUND_POLICY_ENGINE", "")
    assert isinstance(Services(Settings.load(home=tmp_path)).policy.engine, RegoEngine)
    monkeypatch.delenv("PLANBOUND_POLICY_ENGINE")
    assert Settings.load().policy_engine == "regopy"
