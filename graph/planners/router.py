"""The planner router: who plans a request, decided by the domain's risk taxonomy.

The taxonomy is a versioned YAML file of the domain (``tools/retail/risk_tiers.yaml``
documents the format and the rules). :meth:`Router.route` is called at intake and its
:class:`~graph.state.Route` (planner, reason, tier, taxonomy version) is recorded in state
and in the outcome:

* an explicit plan is served as given;
* ``auto``: a template that plans the request takes it (the engine-controlled path); else
  the LLM planner, when a model is configured and the request's tier allows it; else no
  planner (cannot_plan with the reason). Without a model the template planner answers,
  exactly as without an LLM planner at all;
* ``template``: only templates; ``llm``: only the LLM planner (within the tier).

:meth:`Router.tool_findings` checks an LLM plan's tools against their tiers.
"""

from __future__ import annotations

import re
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from graph.errors import ConfigError
from graph.planners.templates import TemplatePlanner
from graph.state import Route
from guards.plan import CannotPlan, Plan, PlanRequest, content_hash

Mode = Literal["auto", "template", "llm"]


class Tier(BaseModel):
    """One risk tier."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    rank: int = Field(ge=0, description="Higher is riskier.")
    llm: Literal["allowed", "forbidden"] = Field(description="May the LLM planner plan it.")
    description: str = Field(min_length=1)


class RiskTaxonomy(BaseModel):
    """A domain's risk tiers: of requests (by phrase) and of tools."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    version: str = Field(min_length=1)
    tiers: dict[str, Tier] = Field(min_length=1)
    default: str = Field(description="The tier of a request that names no tier's phrase.")
    phrases: dict[str, list[str]] = Field(default_factory=dict)
    tools: dict[str, str] = Field(default_factory=dict)
    rules: dict[str, str] = Field(
        default_factory=dict, description="Each policy rule in words, for the LLM planner."
    )
    digest: str = Field(default="", description="Content hash of the document (computed).")

    @model_validator(mode="after")
    def _known_tiers(self) -> RiskTaxonomy:
        named = [("default", self.default)]
        named += [(f"phrases.{t}", t) for t in self.phrases]
        named += [(f"tools.{tool}", t) for tool, t in self.tools.items()]
        unknown = [
            f"{where}: unknown tier {tier!r}" for where, tier in named if tier not in self.tiers
        ]
        if unknown:
            raise ValueError("; ".join(unknown))
        return self

    @property
    def version_label(self) -> str:
        """``version+digest``, recorded with each route."""
        return f"{self.version}+{self.digest}"

    def tier_of(self, text: str) -> str:
        """The highest-ranked tier one of whose phrases ``text`` contains, else the default."""
        lowered = text.lower()
        found = [
            tier
            for tier, phrases in self.phrases.items()
            if any(_contains(lowered, p) for p in phrases)
        ]
        return max(found, key=lambda t: self.tiers[t].rank) if found else self.default


def _contains(text: str, phrase: str) -> bool:
    words = r"\s+".join(re.escape(w) for w in phrase.lower().split())
    return re.search(rf"(?<![a-z0-9]){words}(?![a-z0-9])", text) is not None


def load_taxonomy(source: Path | Traversable) -> RiskTaxonomy:
    """Load a risk-tier file.

    Raises:
        ConfigError: the file cannot be read or is malformed (naming the field).
    """
    try:
        raw = yaml.safe_load(source.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"risk tiers {source}: cannot read them ({exc})") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"risk tiers {source}: not valid YAML ({exc})") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"risk tiers {source}: must be a mapping with version and tiers")
    try:
        taxonomy = RiskTaxonomy.model_validate(raw)
    except ValidationError as exc:
        problems = [
            f"{'.'.join(str(p) for p in e['loc']) or 'document'}: {e['msg']}" for e in exc.errors()
        ]
        raise ConfigError(f"risk tiers {source}: {'; '.join(problems)}") from None
    return taxonomy.model_copy(update={"digest": content_hash(raw, 12)})


class Router:
    """Chooses the planner of each run.

    Args:
        mode: ``auto``, ``template`` or ``llm`` (the operator's ``PLANBOUND_PLANNER``).
        templates: The template planner, if the domain has templates.
        taxonomy: The domain's risk tiers; without them the LLM planner is never chosen.
        llm_available: Whether a model is configured.
    """

    def __init__(
        self,
        mode: Mode,
        templates: TemplatePlanner | None,
        taxonomy: RiskTaxonomy | None,
        llm_available: bool,
    ) -> None:
        self.mode = mode
        self.templates = templates
        self.taxonomy = taxonomy
        self.llm_available = llm_available

    def route(self, text: str | None, explicit: bool) -> Route:
        """Choose the planner for a request (``explicit``: a plan document was given)."""
        version = self.taxonomy.version_label if self.taxonomy is not None else None
        if explicit:
            return Route(planner="explicit", reason="an explicit plan was given")
        request = text or ""
        if self.mode == "template" or (self.mode == "auto" and not self.llm_available):
            why = (
                "PLANBOUND_PLANNER=template"
                if self.mode == "template"
                else "no model is configured (PLANBOUND_MODEL)"
            )
            return Route(planner="template", reason=f"{why}: the templates plan it")
        template_reason = ""
        if self.mode == "auto" and self.templates is not None:
            found = self.templates.plan(PlanRequest(text=request))
            if isinstance(found, Plan):
                return Route(
                    planner="template",
                    reason=f"template {found.template} plans the request",
                    taxonomy_version=version,
                )
            template_reason = _reason(found)
        if self.taxonomy is None:
            return Route(
                planner="template" if self.templates is not None else None,
                reason="the domain has no risk tiers, so the LLM planner is not used"
                + (f"; {template_reason}" if template_reason else ""),
            )
        tier = self.taxonomy.tier_of(request)
        spec = self.taxonomy.tiers[tier]
        if spec.llm == "forbidden":
            return Route(
                planner=None,
                reason=f"the request is in the {tier} risk tier ({spec.description}): "
                "the LLM planner may not plan it"
                + (f"; no template plans it: {template_reason}" if template_reason else ""),
                tier=tier,
                taxonomy_version=version,
            )
        lead = (
            f"no template plans it ({template_reason})"
            if template_reason
            else f"PLANBOUND_PLANNER={self.mode}"
        )
        return Route(
            planner="llm",
            reason=f"{lead}; the {tier} risk tier allows the LLM planner",
            tier=tier,
            taxonomy_version=version,
        )

    def tool_findings(self, plan: Plan, tier: str | None) -> list[str]:
        """Problems with an LLM plan's tools under the taxonomy (rule ``tier.tool``)."""
        taxonomy = self.taxonomy
        if taxonomy is None:
            return ["tier.tool: the domain has no risk tiers for LLM plans"]
        ceiling = taxonomy.tiers[tier].rank if tier in taxonomy.tiers else None
        findings = []
        for step in plan.steps:
            tool_tier = taxonomy.tools.get(step.tool)
            if tool_tier is None:
                findings.append(
                    f"tier.tool: step {step.id}: tool {step.tool!r} has no risk tier; "
                    "the LLM planner may not use it"
                )
                continue
            spec = taxonomy.tiers[tool_tier]
            if spec.llm == "forbidden":
                findings.append(
                    f"tier.tool: step {step.id}: {step.tool} is in the {tool_tier} tier, "
                    "which the LLM planner may not use"
                )
            elif ceiling is not None and spec.rank > ceiling:
                findings.append(
                    f"tier.tool: step {step.id}: {step.tool} is a {tool_tier}-tier tool, but "
                    f"the request is in the {tier} tier: plan only what it asks for"
                )
        return findings


def _reason(found: CannotPlan) -> str:
    return found.reason.rstrip(".")
