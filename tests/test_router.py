"""The planner router: templates first, the LLM planner within its risk tier, else no planner."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from graph.errors import ConfigError
from graph.planners.router import Router, load_taxonomy
from graph.services import Services
from graph.settings import Settings
from guards.plan import Plan, Step
from tools.retail import DOMAIN

TAXONOMY = load_taxonomy(DOMAIN.risk_tiers)  # type: ignore[arg-type]
CANCEL = "Cancel order #W2974929, no longer needed. My email is fatima.anderson1447@example.com"
UNCOVERED = "I am Yusuf Rossi, zip 19122: swap my keyboard for the clicky one"


def router(mode: str = "auto", llm: bool = True) -> Router:
    services = Services(Settings.load(home="/nonexistent"))
    return Router(mode, services.templates, TAXONOMY, llm_available=llm)  # type: ignore[arg-type]


def test_an_explicit_plan_is_served_as_given() -> None:
    route = router().route(None, explicit=True)
    assert route.planner == "explicit"


def test_a_template_that_plans_the_request_takes_it() -> None:
    route = router().route(CANCEL, explicit=False)
    assert route.planner == "template"
    assert route.reason == "template cancel_order@1 plans the request"


def test_an_uncovered_request_goes_to_the_llm_within_its_tier() -> None:
    route = router().route(UNCOVERED, explicit=False)
    assert route.planner == "llm" and route.tier == "write"
    assert route.reason.startswith("no template plans it (")
    assert route.taxonomy_version == TAXONOMY.version_label
    read = router().route("I am Yusuf Rossi, zip 19122: which of my orders shipped?", False)
    assert read.planner == "llm" and read.tier == "read"


def test_without_a_model_the_templates_answer_as_before() -> None:
    route = router(llm=False).route(UNCOVERED, explicit=False)
    assert route.planner == "template" and "no model is configured" in route.reason


@pytest.mark.parametrize(
    "text",
    [
        "cancel all my pending orders",
        "Return ALL of my   delivered items",
        "please close my account",
        "every order I have should be cancelled",
    ],
)
def test_a_restricted_request_gets_no_planner(text: str) -> None:
    for mode in ("auto", "llm"):
        route = router(mode).route(text, explicit=False)
        assert route.planner is None and route.tier == "restricted", (mode, route)
        assert "the LLM planner may not plan it" in route.reason


def test_modes_template_and_llm() -> None:
    assert router("template").route(UNCOVERED, False).planner == "template"
    llm = router("llm").route(CANCEL, False)  # templates are skipped
    assert llm.planner == "llm" and llm.reason.startswith("PLANBOUND_PLANNER=llm")


def test_phrases_match_whole_words() -> None:
    assert TAXONOMY.tier_of("show my order") == "read"
    assert TAXONOMY.tier_of("I want to change it") == "write"
    assert TAXONOMY.tier_of("the exchanger is broken") == "read"  # not "exchange"
    assert TAXONOMY.tier_of("cancel ALL\nMY orders") == "restricted"


def plan(*tools: str) -> Plan:
    return Plan(
        source="llm",
        goal="g",
        steps=[Step(id=f"s{i + 1}", tool=t) for i, t in enumerate(tools)],
    )


def test_an_llm_plan_may_not_go_beyond_the_requests_tier() -> None:
    r = router()
    assert r.tool_findings(plan("get_order_details", "cancel_pending_order"), "write") == []
    assert r.tool_findings(plan("get_order_details", "cancel_pending_order"), "read") == [
        "tier.tool: step s2: cancel_pending_order is a write-tier tool, but the request is "
        "in the read tier: plan only what it asks for"
    ]
    assert r.tool_findings(plan("launch_rockets"), "write") == [
        "tier.tool: step s1: tool 'launch_rockets' has no risk tier; the LLM planner may not use it"
    ]


def test_a_tool_in_a_forbidden_tier_is_refused(tmp_path: Path) -> None:
    text = (
        "version: '1'\ndefault: read\n"
        "tiers:\n  read: {rank: 1, llm: allowed, description: reads}\n"
        "  money: {rank: 2, llm: forbidden, description: moves money}\n"
        "tools: {get_order_details: read, cancel_pending_order: money}\n"
    )
    path = tmp_path / "tiers.yaml"
    path.write_text(text)
    taxonomy = load_taxonomy(path)
    r = Router("auto", None, taxonomy, llm_available=True)
    assert r.tool_findings(plan("cancel_pending_order"), "read") == [
        "tier.tool: step s1: cancel_pending_order is in the money tier, which the LLM "
        "planner may not use"
    ]
    path.write_text(text + "# a comment\n")
    assert load_taxonomy(path).version_label == taxonomy.version_label  # comments aside
    path.write_text(text.replace("moves money", "moves funds"))
    assert load_taxonomy(path).version_label != taxonomy.version_label


@pytest.mark.parametrize(
    "text,problem",
    [
        ("[1, 2]", "must be a mapping"),
        ("version: '1'\ntiers: {}\ndefault: read\n", "tiers: Dictionary should have at least 1"),
        (
            "version: '1'\ndefault: nope\ntiers:\n  read: {rank: 1, llm: allowed, description: r}"
            "\ntools: {x: gold}\n",
            "default: unknown tier 'nope'; tools.x: unknown tier 'gold'",
        ),
        (
            "version: '1'\ndefault: read\n"
            "tiers:\n  read: {rank: 1, llm: sometimes, description: r}",
            "tiers.read.llm: Input should be 'allowed' or 'forbidden'",
        ),
        ("version: [", "not valid YAML"),
    ],
)
def test_a_malformed_taxonomy_is_refused_naming_the_field(
    tmp_path: Path, text: str, problem: str
) -> None:
    path = tmp_path / "tiers.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as exc:
        load_taxonomy(path)
    assert problem in str(exc.value) and str(path) in str(exc.value)


def test_the_shipped_taxonomy_covers_every_tool_and_policy_rule() -> None:
    catalog = DOMAIN.build_catalog()
    assert set(TAXONOMY.tools) == set(catalog.names())
    for name in catalog.names():
        effect = catalog.entries[name].spec.effect
        assert TAXONOMY.tools[name] == ("read" if effect == "read" else "write"), name
    rego = (Path(str(DOMAIN.policy_dir)) / "retail.rego").read_text()
    denied = set(re.findall(r'deny contains violation\(s, "([a-z_.]+)"', rego))
    assert denied and denied <= set(TAXONOMY.rules), denied - set(TAXONOMY.rules)


def test_the_served_graph_routes_as_the_operator_configured(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("PLANBOUND_PLANNER", "template")
    monkeypatch.setenv("PLANBOUND_MODEL", "m")
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:9/v1")
    services = Services()
    route: Any = services.router.route(UNCOVERED, explicit=False)
    assert route.planner == "template"
    monkeypatch.setenv("PLANBOUND_PLANNER", "auto")
    assert Services().router.route(UNCOVERED, explicit=False).planner == "llm"
