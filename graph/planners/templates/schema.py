"""The template document: pydantic models of the YAML that declares intents.

A document names its extractors (what each reads and how to ask for it), how identify
steps are written per identity form, shared phrase lists, and the intents: trigger
phrases, slots and step templates. These models check the shape only; what needs the
extractors (known names, fields, identity forms) is checked by
:mod:`graph.planners.templates.validate`.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from guards.plan import STEP_ID


def _flatten(value: Any) -> Any:
    """Flatten nested lists of phrases (lets a YAML list hold ``"@name"`` and sub-lists)."""
    if not isinstance(value, list):
        return value
    out: list[Any] = []
    for item in value:
        if isinstance(item, list):
            out.extend(_flatten(item))
        else:
            out.append(item)
    return out


def _clean_phrases(phrases: list[str]) -> list[str]:
    """Lower-case phrases and collapse their whitespace; refuse empty ones."""
    out = []
    for p in phrases:
        text = " ".join(p.lower().split())
        if not text:
            raise ValueError("a phrase must not be empty")
        out.append(text)
    return out


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Triggers(_Model):
    """Phrases that select an intent (see the document's ``matching.description``)."""

    require_any: list[list[str]] = Field(
        min_length=1, description="Groups; each needs at least one matching phrase."
    )
    prefer: list[str] = Field(default_factory=list, description="Phrases that add coverage.")
    reject_if: list[str] = Field(default_factory=list, description="Phrases that veto.")

    @field_validator("require_any", mode="before")
    @classmethod
    def _flatten_groups(cls, value: Any) -> Any:
        if isinstance(value, list):
            return [_flatten(g) for g in value]
        return value

    @field_validator("prefer", "reject_if", mode="before")
    @classmethod
    def _flatten_list(cls, value: Any) -> Any:
        return _flatten(value)

    @field_validator("require_any")
    @classmethod
    def _clean_groups(cls, value: list[list[str]]) -> list[list[str]]:
        for group in value:
            if not group:
                raise ValueError("a require_any group must not be empty")
        return [_clean_phrases(g) for g in value]

    @field_validator("prefer", "reject_if")
    @classmethod
    def _clean_list(cls, value: list[str]) -> list[str]:
        return _clean_phrases(value)


class SlotSpec(_Model):
    """Which extractor fills a slot, and whether the plan needs it."""

    extractor: str = Field(min_length=1)
    required: bool = True
    needs: str | None = Field(
        default=None, description="What to ask for; defaults to the extractor's ``needs``."
    )
    absent: bool = Field(
        default=False,
        description=(
            "The intent is for requests that do not give this slot (an order found from "
            "the items named, when no order id is given); no step uses it."
        ),
    )
    scope: Literal["clause", "message"] = Field(
        default="clause",
        description=(
            "Where the slot is read: its clause only, or (``message``) its clause and, "
            "when the clause does not say, the whole message (who you are, the order)."
        ),
    )


class ToolStepTemplate(_Model):
    """A step calling one tool with placeholders and references in its arguments."""

    id: str = Field(pattern=STEP_ID)
    tool: str = Field(min_length=1)
    args: dict[str, Any] = Field(default_factory=dict)
    depends_on: list[str] = Field(default_factory=list)
    description: str = ""
    foreach: str | None = Field(
        default=None,
        description=(
            "A list slot: the step is written once per element (ids ``<id>_1``, ``<id>_2`` "
            "...), with ``{each.field}`` placeholders for the element."
        ),
    )
    each_of: dict[str, Any] | None = Field(
        default=None,
        description=(
            "A selection over earlier steps' outputs (``$select``, ``query``, ``take: all``): "
            "the step is written with it as its ``foreach``, and the verifier repeats it "
            "once per element the data gives; ``$each`` / ``$each.field`` in the arguments "
            "name the element (:mod:`guards.fanout`)."
        ),
    )


class IdentifyStepTemplate(_Model):
    """A step that finds the user id by the form the identity slot was given in."""

    id: str = Field(pattern=STEP_ID)
    identify: str = Field(
        min_length=1, description="Name of a slot filled by an identity extractor."
    )
    depends_on: list[str] = Field(default_factory=list)
    description: str = ""


StepTemplate = ToolStepTemplate | IdentifyStepTemplate


class Intent(_Model):
    """One thing a user can ask for, and the plan that does it."""

    id: str = Field(pattern=r"^[a-z][a-z0-9_]{0,63}$")
    version: int = Field(ge=1)
    description: str = Field(min_length=1, description="Short, what the user can ask for.")
    label: str = Field(min_length=1, description="Names the request in reasons.")
    triggers: Triggers
    slots: dict[str, SlotSpec] = Field(default_factory=dict)
    steps: list[StepTemplate] = Field(min_length=1)
    group: str | None = Field(
        default=None,
        description=(
            "Intents of one group read the same words in different ways (an item change "
            "of a delivered or of a pending order); the request's cues decide between them."
        ),
    )
    cues: list[str] = Field(
        default_factory=list, description="Phrases that are evidence for this intent."
    )
    decided_by: str = Field(default="", description="What would show it is this intent.")
    applies_to: list[str] = Field(
        default_factory=list,
        description=(
            "The states of the records this reading acts on for which it is the one that "
            "applies (an item change of a 'delivered' or of a 'pending' order). Between "
            "readings of one group that all say, the domain's evidence (the states it "
            "reads for the slot values) decides before the cues."
        ),
    )
    claims: list[str] = Field(
        default_factory=list,
        description=(
            "Phrases by which a customer states the records' state ('received', 'still "
            "pending'); a clause that claims another reading's state than the evidence "
            "shows is asked about, never decided."
        ),
    )
    once_per: str | None = Field(
        default=None,
        description="A slot; one plan holds this intent at most once per value of it.",
    )
    hands_off: bool = Field(
        default=False,
        description=(
            "The intent hands the request (or the part the tools cannot serve) to a human: "
            "it is planned with the writes of the message, after all of them."
        ),
    )

    @field_validator("cues", "claims")
    @classmethod
    def _clean_cues(cls, value: list[str]) -> list[str]:
        return _clean_phrases(value)


class ExtractorDoc(_Model):
    """What an extractor reads, and how to ask for it."""

    needs: str = Field(min_length=1)
    description: str = ""


class IdentityForm(_Model):
    """The step that finds the user id when identity is given in one form."""

    tool: str = Field(min_length=1)
    args: dict[str, Any] = Field(default_factory=dict)
    description: str = ""


class Identity(_Model):
    """How identify steps are written, per identity form."""

    description: str = ""
    forms: dict[str, IdentityForm]


class Matching(_Model):
    """Matching rule documentation and phrases blanked before matching."""

    description: str = ""
    ignore: list[str] = Field(default_factory=list)

    @field_validator("ignore")
    @classmethod
    def _clean(cls, value: list[str]) -> list[str]:
        return _clean_phrases(value)


class Clauses(_Model):
    """How a message is cut into clauses, and which clauses hold a condition."""

    description: str = ""
    split_before: list[str] = Field(
        default_factory=list, description="Phrases that start a new clause."
    )
    conditions: list[str] = Field(
        default_factory=list, description="Phrases that make a clause conditional."
    )
    fallbacks: list[str] = Field(
        default_factory=list,
        description=(
            "Conditional openings that only say what to do when the first choice does "
            "not exist ('if there is no ...'): such a clause is left out and the first "
            "choice planned; its selection fails before any write when nothing matches."
        ),
    )

    questions: list[str] = Field(
        default_factory=list,
        description=(
            "Phrases that make a clause a question that must not act ('do not process "
            "anything'): the clause is left out, whatever intent its words match."
        ),
    )

    negations: list[str] = Field(
        default_factory=list,
        description="Words that negate a verb of `negated` a few words after them.",
    )
    negated: list[str] = Field(
        default_factory=list, description="The verbs a negation makes a refusal ('cancel')."
    )
    retractions: list[str] = Field(
        default_factory=list,
        description="Phrases that take a request back ('never mind'): nothing is planned.",
    )

    @field_validator(
        "split_before",
        "conditions",
        "fallbacks",
        "questions",
        "negations",
        "negated",
        "retractions",
    )
    @classmethod
    def _clean(cls, value: list[str]) -> list[str]:
        return _clean_phrases(value)


class TemplateDocument(_Model):
    """A template document."""

    version: str = Field(min_length=1, description="The document's own version label.")
    description: str = ""
    matching: Matching = Field(default_factory=Matching)
    clauses: Clauses = Field(default_factory=Clauses)
    phrases: dict[str, list[str]] = Field(default_factory=dict)
    selections: dict[str, Any] = Field(
        default_factory=dict,
        description=(
            "Named JMESPath queries (and shared selection params) the steps use, as YAML "
            "anchors; only the steps that name them count."
        ),
    )
    extractors: dict[str, ExtractorDoc]
    identity: Identity
    intents: list[Intent] = Field(min_length=1)

    @field_validator("phrases", mode="before")
    @classmethod
    def _flatten_phrases(cls, value: Any) -> Any:
        if isinstance(value, dict):
            return {k: _flatten(v) for k, v in value.items()}
        return value

    @field_validator("phrases")
    @classmethod
    def _clean(cls, value: dict[str, list[str]]) -> dict[str, list[str]]:
        return {k: _clean_phrases(v) for k, v in value.items()}
