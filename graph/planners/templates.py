"""Template planner: versioned YAML plan templates filled by strict slot extractors.

A template document (``tools/retail/templates.yaml`` by default) declares intents. Each
intent has trigger phrases, slots (each filled by one extractor defined here) and steps
whose arguments hold ``{slot}`` / ``{slot.field}`` placeholders and ``$step.path``
references. The document's own ``description`` and ``matching.description`` state the
accepted formats and the matching rule; in short:

* the request is matched to exactly one intent; no match, or several matches that no
  single intent explains better, is a :class:`~guards.plan.CannotPlan`;
* every slot is filled by a strict regular expression; a required slot that is missing,
  malformed or ambiguous (two different values) is a :class:`~guards.plan.CannotPlan`
  whose reason names what is needed and what was found.

The planner never guesses and never runs a tool.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from graph.planners.base import PlannerError
from guards.plan import REF, STEP_ID, CannotPlan, Plan, PlanRequest, Step, content_hash

SHIPPED = "templates.yaml"
"""File name of the shipped template document inside the ``tools.retail`` package."""

SlotValue = str | list[str] | dict[str, Any]

# ------------------------------------------------------------------------ template schema


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


class ToolStepTemplate(_Model):
    """A step calling one tool with placeholders and references in its arguments."""

    id: str = Field(pattern=STEP_ID)
    tool: str = Field(min_length=1)
    args: dict[str, Any] = Field(default_factory=dict)
    depends_on: list[str] = Field(default_factory=list)
    description: str = ""


class IdentifyStepTemplate(_Model):
    """A step that finds the user id by the form the identity slot was given in."""

    id: str = Field(pattern=STEP_ID)
    identify: str = Field(min_length=1, description="Name of a slot filled by 'identity'.")
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


class TemplateDocument(_Model):
    """A template document."""

    version: str = Field(min_length=1, description="The document's own version label.")
    description: str = ""
    matching: Matching = Field(default_factory=Matching)
    phrases: dict[str, list[str]] = Field(default_factory=dict)
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


# ------------------------------------------------------------------------ extractors


@dataclass(frozen=True)
class Problem:
    """A slot was given but cannot be used: malformed or ambiguous."""

    detail: str


@dataclass(frozen=True)
class Text:
    """The request: ``raw`` as written, ``masked`` with emails and address bodies blanked."""

    raw: str
    masked: str

    @classmethod
    def of(cls, raw: str) -> Text:
        """Prepare ``raw`` for the extractors."""
        spans = [m.span() for m in _EMAIL.finditer(raw)]
        spans += [_address_span(m, raw) for m in _ADDRESS_KEY.finditer(raw)]
        chars = list(raw)
        for start, end in spans:
            chars[start:end] = " " * (end - start)
        return cls(raw=raw, masked="".join(chars))


Extracted = SlotValue | Problem | None
"""A value, a :class:`Problem`, or ``None`` when the request does not mention the slot."""


@dataclass(frozen=True)
class Extractor:
    """A strict slot extractor.

    Attributes:
        read: Reads the slot from the request.
        absent: Said when a required slot is not in the request.
        fields: Fields of a structured value (``{slot.field}``); empty for plain values.
        forms: For ``identity``: each form and its fields; placeholders may not name them.
    """

    read: Callable[[Text], Extracted]
    absent: str
    fields: tuple[str, ...] = ()
    forms: Mapping[str, tuple[str, ...]] | None = None


_EMAIL = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}")
_ORDER_TOKEN = re.compile(r"(?<![\w#])(?:#[A-Za-z]?\d+|[Ww]\d+)(?!\w)")
_ORDER_ID = re.compile(r"#?W(\d{7})")
_NUMBER = re.compile(r"(?<![\w#])\d{8,12}(?!\w)")
_PRODUCT = re.compile(r"\bproduct(?:\s+id)?\s*[:#]?\s*(\d+)(?!\w)", re.IGNORECASE)
_PAIR = re.compile(
    r"(?<![\w#])(\d{10})\s*(?:to|for|with|into|->|=>|→)\s*"
    r"(?:(?:a|the)\s+)?(?:new\s+)?(?:item\s+)?(?:id\s+)?(\d{10})(?!\w)",
    re.IGNORECASE,
)
_NAME = re.compile(
    r"(?:\b(?:i\s+am|i'm|my\s+name\s+is|this\s+is)\s+|\bname\s*:\s*)"
    r"(?-i:([A-Z][A-Za-z'-]*)\s+([A-Z][A-Za-z'-]*))"
    r"(?=\s*(?:[,.;:!?)]|$)|\s+(?:and|with|from|zip|my|in|at)\b)",
    re.IGNORECASE,
)
_ZIP = re.compile(r"\bzip(?:\s*code)?\s*(?:is\s+|:\s*|=\s*)?(\d+)(?!\w)", re.IGNORECASE)
_PAYMENT = re.compile(r"(?<![\w])(?:credit_card|paypal|gift_card)_\d+(?!\w)")
_REASONS = {
    "no longer needed": re.compile(r"\bno\s+longer\s+needed\b", re.IGNORECASE),
    "ordered by mistake": re.compile(r"\bordered\s+by\s+mistake\b", re.IGNORECASE),
}
_ADDRESS_KEY = re.compile(r"(?<!email )(?<!e-mail )\baddress\s*:", re.IGNORECASE)
_ADDRESS = re.compile(r"\s*([^,;\n]*),([^,;\n]*),([^,;\n]*),([^,;\n]*),([^,;\n]*),\s*(\d{5})(?!\d)")
_ADDRESS_STOP = re.compile(r"(?:\d{5}(?!\d)|(?=[;\n])|(?=\.\s))()")
ADDRESS_FIELDS = ("address1", "address2", "city", "state", "country", "zip")


def _address_span(key: re.Match[str], raw: str) -> tuple[int, int]:
    """Return the span of an address body after ``address:``.

    A well-formed body ends at its zip; a malformed one at the first 5-digit number, ``;``,
    line end or sentence end, whichever comes first.
    """
    start = key.end()
    m = _ADDRESS.match(raw, start)
    if m is not None:
        return start, m.end()
    stop = _ADDRESS_STOP.search(raw, start)
    return start, stop.end(1) if stop else len(raw)


def _distinct(values: Sequence[str]) -> list[str]:
    return list(dict.fromkeys(values))


def _one(what: str, values: Sequence[str]) -> Extracted:
    found = _distinct(values)
    if not found:
        return None
    if len(found) > 1:
        return Problem(f"several {what}s were given ({', '.join(found)}); give exactly one")
    return found[0]


def _order_id(text: Text) -> Extracted:
    ids: list[str] = []
    bad: list[str] = []
    for token in _distinct([m.group() for m in _ORDER_TOKEN.finditer(text.masked)]):
        m = _ORDER_ID.fullmatch(token)
        if m is None:
            bad.append(repr(token))
        else:
            ids.append("#W" + m.group(1))
    if bad:
        return Problem(
            f"{', '.join(bad)} is not an order id: order ids are '#W' followed by exactly 7 digits"
        )
    return _one("order id", ids)


def _product_numbers(text: Text) -> list[tuple[int, str]]:
    return [(m.start(1), m.group(1)) for m in _PRODUCT.finditer(text.masked)]


def _item_numbers(text: Text) -> list[str] | Problem:
    """Return every 10-digit number that is not a product id, in order."""
    product_at = {pos for pos, _ in _product_numbers(text)}
    numbers = [(m.start(), m.group()) for m in _NUMBER.finditer(text.masked)]
    bad = [n for pos, n in numbers if len(n) != 10 and pos not in product_at]
    if bad:
        return Problem(f"{', '.join(bad)} is not an item id: item ids have exactly 10 digits")
    return [n for pos, n in numbers if pos not in product_at]


def _item_ids(text: Text) -> Extracted:
    numbers = _item_numbers(text)
    if isinstance(numbers, Problem):
        return numbers
    return numbers or None


def _item_id(text: Text) -> Extracted:
    numbers = _item_numbers(text)
    if isinstance(numbers, Problem):
        return numbers
    return _one("item id", numbers)


def _item_pairs(text: Text) -> Extracted:
    numbers = _item_numbers(text)
    if isinstance(numbers, Problem):
        return numbers
    pairs = [(m.group(1), m.group(2)) for m in _PAIR.finditer(text.masked)]
    paired = [n for pair in pairs for n in pair]
    unpaired = _distinct([n for n in numbers if n not in paired])
    if unpaired:
        return Problem(
            f"item {', '.join(unpaired)} has no partner: write each change as "
            "'item 1234567890 to 0987654321'"
        )
    if not pairs:
        return None
    return {"old": [old for old, _ in pairs], "new": [new for _, new in pairs]}


def _product_id(text: Text) -> Extracted:
    found = [n for _, n in _product_numbers(text)]
    bad = [n for n in found if len(n) != 10]
    if bad:
        return Problem(f"{', '.join(bad)} is not a product id: product ids have exactly 10 digits")
    return _one("product id", found)


def _email(text: Text) -> Extracted:
    emails = [m.group() for m in _EMAIL.finditer(text.raw)]
    found: dict[str, str] = {}
    for e in emails:
        found.setdefault(e.lower(), e)
    return _one("email", list(found.values()))


def _identity(text: Text) -> Extracted:
    email = _email(text)
    if email is not None:
        return email if isinstance(email, Problem) else {"form": "email", "email": email}
    names = _distinct([f"{m.group(1)} {m.group(2)}" for m in _NAME.finditer(text.masked)])
    zips = _distinct([m.group(1) for m in _ZIP.finditer(text.masked)])
    if not names and not zips:
        return None
    if len(names) > 1 or len(zips) > 1:
        return Problem(
            f"several names or zips were given ({', '.join(names + zips)}); give exactly one"
        )
    if not zips:
        return Problem(f"found the name {names[0]} but no zip, e.g. 'zip 19122'")
    if not names:
        return Problem(f"found zip {zips[0]} but no first and last name, e.g. 'I am Yusuf Rossi'")
    if not re.fullmatch(r"\d{5}", zips[0]):
        return Problem(f"{zips[0]!r} is not a zip: a zip has exactly 5 digits")
    first, last = names[0].split(" ")
    return {"form": "name_zip", "first_name": first, "last_name": last, "zip": zips[0]}


def _payment_method_id(text: Text) -> Extracted:
    return _one("payment method", [m.group() for m in _PAYMENT.finditer(text.masked)])


def _cancel_reason(text: Text) -> Extracted:
    found = [reason for reason, rx in _REASONS.items() if rx.search(text.masked)]
    if len(found) > 1:
        return Problem("both allowed reasons were given; give exactly one")
    return found[0] if found else None


def _address(text: Text) -> Extracted:
    keys = list(_ADDRESS_KEY.finditer(text.raw))
    if not keys:
        return None
    if len(keys) > 1:
        return Problem("several addresses were given; give exactly one")
    start, end = _address_span(keys[0], text.raw)
    m = _ADDRESS.match(text.raw, start)
    if m is not None:
        values = [g.strip() for g in m.groups()]
        empty = [f for f, v in zip(ADDRESS_FIELDS, values, strict=True) if not v]
        if not empty:
            return dict(zip(ADDRESS_FIELDS, values, strict=True))
        return Problem(f"the new address has an empty {', '.join(empty)}")
    parts = [p.strip() for p in text.raw[start:end].split(",")]
    if len(parts) < len(ADDRESS_FIELDS):
        return Problem(
            f"the new address has {len(parts)} of the 6 fields "
            f"({', '.join(ADDRESS_FIELDS)}); all six are required"
        )
    return Problem(
        "the new address must be 'address: address1, address2, city, state, country, zip' "
        "with a 5-digit zip as the sixth field"
    )


EXTRACTORS: dict[str, Extractor] = {
    "identity": Extractor(
        _identity,
        "no email and no name with zip was found",
        forms={"email": ("email",), "name_zip": ("first_name", "last_name", "zip")},
    ),
    "order_id": Extractor(_order_id, "no order id was found"),
    "item_ids": Extractor(_item_ids, "no item id was found"),
    "item_pairs": Extractor(_item_pairs, "no item pairs were found", fields=("old", "new")),
    "item_id": Extractor(_item_id, "no item id was found"),
    "product_id": Extractor(_product_id, "no product id was found"),
    "payment_method_id": Extractor(_payment_method_id, "no payment method id was found"),
    "cancel_reason": Extractor(_cancel_reason, "none of the allowed reasons was found"),
    "address": Extractor(_address, "no 'address:' was found", fields=ADDRESS_FIELDS),
}
"""Every extractor a template may name."""

# ------------------------------------------------------------------------ placeholders

_PLACEHOLDER = re.compile(r"\{([a-z_][a-z0-9_]*)(?:\.([a-z0-9_]+))?\}")


def _walk_strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, list):
        for v in value:
            yield from _walk_strings(v)
    elif isinstance(value, dict):
        for v in value.values():
            yield from _walk_strings(v)


def _lookup(values: Mapping[str, Any], name: str, field: str | None) -> Any:
    value = values.get(name)
    if value is None or field is None:
        return value
    return value[field]


def _fill(value: Any, values: Mapping[str, Any]) -> Any:
    """Replace whole-string placeholders in ``value`` by slot values (types kept)."""
    if isinstance(value, str):
        m = _PLACEHOLDER.fullmatch(value)
        return _lookup(values, m.group(1), m.group(2)) if m else value
    if isinstance(value, list):
        return [_fill(v, values) for v in value]
    if isinstance(value, dict):
        return {k: _fill(v, values) for k, v in value.items()}
    return value


def _describe(template: str, values: Mapping[str, Any]) -> str:
    """Interpolate placeholders inside a description."""

    def sub(m: re.Match[str]) -> str:
        value = _lookup(values, m.group(1), m.group(2))
        if isinstance(value, list):
            return ", ".join(str(v) for v in value)
        return "" if value is None else str(value)

    return _PLACEHOLDER.sub(sub, template)


# ------------------------------------------------------------------------ validation


def _check_value(
    value: Any, where: str, known: Callable[[str, str | None], str | None]
) -> list[str]:
    """Check the placeholders and references of one argument value."""
    problems: list[str] = []
    if value is None:
        return [f"{where} is null (quote placeholders: '{{slot}}')"]
    if isinstance(value, dict):
        for k, v in value.items():
            problems += _check_value(v, f"{where}.{k}", known)
        return problems
    if isinstance(value, list):
        for i, v in enumerate(value):
            problems += _check_value(v, f"{where}.{i}", known)
        return problems
    if isinstance(value, str) and value.startswith("{"):
        m = _PLACEHOLDER.fullmatch(value)
        if m is None:
            return [f"{where}: {value!r} is not a placeholder ('{{slot}}' or '{{slot.field}}')"]
        problem = known(m.group(1), m.group(2))
        if problem:
            problems.append(f"{where}: {problem}")
    return problems


def _check_text(text: str, where: str, known: Callable[[str, str | None], str | None]) -> list[str]:
    out = []
    for m in _PLACEHOLDER.finditer(text):
        problem = known(m.group(1), m.group(2))
        if problem:
            out.append(f"{where}: {problem}")
    return out


def _slot_checker(
    intent: Intent, used: set[str], optional_ok: bool
) -> Callable[[str, str | None], str | None]:
    def known(name: str, field: str | None) -> str | None:
        spec = intent.slots.get(name)
        if spec is None:
            declared = ", ".join(intent.slots) or "none"
            return f"unknown slot {name!r} (slots: {declared})"
        used.add(name)
        ext = EXTRACTORS.get(spec.extractor)
        if ext is None:
            return None  # reported on the slot
        if ext.forms is not None:
            return f"slot {name!r} is an identity; use a step with 'identify: {name}'"
        if field is None and ext.fields:
            return f"slot {name!r} needs a field ({', '.join(ext.fields)})"
        if field is not None and field not in ext.fields:
            return f"slot {name!r} has no field {field!r} ({', '.join(ext.fields) or 'none'})"
        if not spec.required and not optional_ok:
            return f"optional slot {name!r} may only be a whole argument"
        return None

    return known


def _check_intent(intent: Intent, doc: TemplateDocument) -> list[str]:
    where = f"intent {intent.id!r}"
    problems: list[str] = []
    for name, spec in intent.slots.items():
        if spec.extractor not in EXTRACTORS:
            problems.append(
                f"{where}: slot {name!r} uses unknown extractor {spec.extractor!r} "
                f"(extractors: {', '.join(EXTRACTORS)})"
            )
        elif spec.extractor not in doc.extractors:
            problems.append(
                f"{where}: slot {name!r} uses extractor {spec.extractor!r}, "
                "which the document's 'extractors' does not describe"
            )
    for label, phrases in (
        *((f"require_any[{i}]", g) for i, g in enumerate(intent.triggers.require_any)),
        ("prefer", intent.triggers.prefer),
        ("reject_if", intent.triggers.reject_if),
    ):
        for p in phrases:
            if p.startswith("@") and p[1:] not in doc.phrases:
                problems.append(f"{where}: triggers.{label} names unknown phrase list {p!r}")

    used: set[str] = set()
    seen: list[str] = []
    for step in intent.steps:
        sw = f"{where}, step {step.id!r}"
        if step.id in seen:
            problems.append(f"{sw}: the step id is used more than once")
        for dep in step.depends_on:
            if dep not in seen:
                problems.append(f"{sw}: depends_on {dep!r} is not an earlier step")
        problems += _check_text(
            step.description, f"{sw} description", _slot_checker(intent, set(), True)
        )
        if isinstance(step, IdentifyStepTemplate):
            slot = intent.slots.get(step.identify)
            used.add(step.identify)
            if slot is None:
                problems.append(f"{sw}: identify names unknown slot {step.identify!r}")
            elif slot.extractor != "identity":
                problems.append(f"{sw}: identify slot {step.identify!r} is not an identity slot")
            elif not slot.required:
                problems.append(f"{sw}: identify slot {step.identify!r} must be required")
        else:
            for arg, value in step.args.items():
                aw = f"{sw} args.{arg}"
                whole = isinstance(value, str) and _PLACEHOLDER.fullmatch(value) is not None
                problems += _check_value(value, aw, _slot_checker(intent, used, whole))
                for s in _walk_strings(value):
                    if s.startswith("$") and not s.startswith("$$"):
                        m = REF.match(s)
                        if m is None:
                            problems.append(f"{aw}: {s!r} is not a valid reference")
                        elif m.group("step") not in seen:
                            problems.append(f"{aw}: {s!r} does not refer to an earlier step")
        seen.append(step.id)
    for name in intent.slots:
        if name not in used:
            problems.append(f"{where}: slot {name!r} is never used by a step")
    return problems


def _check_document(doc: TemplateDocument) -> list[str]:
    problems: list[str] = []
    for name in doc.extractors:
        if name not in EXTRACTORS:
            problems.append(
                f"extractors: unknown extractor {name!r} (known: {', '.join(EXTRACTORS)})"
            )
    forms = EXTRACTORS["identity"].forms or {}
    if set(doc.identity.forms) != set(forms):
        problems.append(
            f"identity.forms must be exactly {sorted(forms)}, got {sorted(doc.identity.forms)}"
        )
    for form, spec in doc.identity.forms.items():
        fields = forms.get(form, ())

        def known(name: str, field: str | None, fields: tuple[str, ...] = fields) -> str | None:
            if field is not None or name not in fields:
                return f"unknown identity field {name!r} (fields: {', '.join(fields)})"
            return None

        for arg, value in spec.args.items():
            problems += _check_value(value, f"identity.forms.{form}.args.{arg}", known)
        problems += _check_text(spec.description, f"identity.forms.{form}.description", known)
    ids: set[str] = set()
    for intent in doc.intents:
        if intent.id in ids:
            problems.append(f"intent {intent.id!r} is defined more than once")
        ids.add(intent.id)
        problems += _check_intent(intent, doc)
    return problems


# ------------------------------------------------------------------------ matching


def _phrase_pattern(phrase: str) -> re.Pattern[str]:
    body = r"\s+".join(re.escape(w) for w in phrase.split(" "))
    return re.compile(rf"(?<!\w){body}(?!\w)")


@dataclass(frozen=True)
class _CompiledIntent:
    intent: Intent
    require_any: tuple[tuple[re.Pattern[str], ...], ...]
    prefer: tuple[re.Pattern[str], ...]
    reject_if: tuple[re.Pattern[str], ...]


def _spans(patterns: Sequence[re.Pattern[str]], text: str) -> set[int]:
    covered: set[int] = set()
    for rx in patterns:
        for m in rx.finditer(text):
            covered.update(range(m.start(), m.end()))
    return covered


# ------------------------------------------------------------------------ the planner


class TemplatePlanner:
    """Plans requests from YAML templates; it cannot re-plan from feedback."""

    name = "template"

    def __init__(self, document: TemplateDocument, raw: Any, source: str) -> None:
        self.document = document
        self.source = source
        self._version = f"{document.version}+{content_hash(raw, 12)}"

        def expand(phrases: Sequence[str]) -> list[str]:
            out: list[str] = []
            for p in phrases:
                out.extend(document.phrases[p[1:]] if p.startswith("@") else [p])
            return out

        self._intents = [
            _CompiledIntent(
                intent=i,
                require_any=tuple(
                    tuple(_phrase_pattern(p) for p in expand(g)) for g in i.triggers.require_any
                ),
                prefer=tuple(_phrase_pattern(p) for p in expand(i.triggers.prefer)),
                reject_if=tuple(_phrase_pattern(p) for p in expand(i.triggers.reject_if)),
            )
            for i in document.intents
        ]
        self._ignore = [_phrase_pattern(p) for p in document.matching.ignore]

    @classmethod
    def load(cls, path: Path | None = None) -> TemplatePlanner:
        """Load a template document; ``None`` loads the shipped ``tools/retail/templates.yaml``.

        Raises:
            PlannerError: naming the file and the problem (missing file, YAML error, schema
                error, unknown slot, extractor, phrase list or step).
        """
        if path is None:
            where = f"tools/retail/{SHIPPED}"
            try:
                text = resources.files("tools.retail").joinpath(SHIPPED).read_text("utf-8")
            except OSError as exc:
                raise PlannerError(f"{where}: cannot read the shipped templates: {exc}") from exc
        else:
            where = str(path)
            try:
                text = path.read_text(encoding="utf-8")
            except FileNotFoundError as exc:
                raise PlannerError(f"{where}: no such template file") from exc
            except (OSError, UnicodeDecodeError) as exc:
                raise PlannerError(f"{where}: cannot read the template file: {exc}") from exc
        return cls.from_text(text, source=where)

    @classmethod
    def from_text(cls, text: str, source: str = "<templates>") -> TemplatePlanner:
        """Build a planner from the text of a template document.

        Raises:
            PlannerError: naming ``source`` and every problem found.
        """
        try:
            raw = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise PlannerError(f"{source}: not valid YAML: {exc}") from exc
        if not isinstance(raw, dict):
            raise PlannerError(
                f"{source}: a template document must be a mapping with 'version' and 'intents'"
            )
        try:
            document = TemplateDocument.model_validate(raw)
        except ValidationError as exc:
            problems = [
                f"{'.'.join(str(p) for p in err['loc']) or 'document'}: {err['msg']}"
                for err in exc.errors()
            ]
            raise PlannerError(
                f"{source}: invalid template document: {'; '.join(problems)}"
            ) from exc
        problems = _check_document(document)
        if problems:
            raise PlannerError(f"{source}: invalid template document: {'; '.join(problems)}")
        return cls(document, raw, source)

    @property
    def version(self) -> str:
        """The document's ``version`` plus a hash of its whole content."""
        return self._version

    @property
    def can_replan(self) -> bool:
        """Templates are fixed: feedback cannot change the next answer."""
        return False

    def match(self, text: str) -> Intent | CannotPlan:
        """Return the one intent ``text`` asks for, or why there is not exactly one."""
        normal = Text.of(text).masked.lower()
        for rx in self._ignore:
            normal = rx.sub(lambda m: " " * len(m.group()), normal)
        coverage: list[tuple[Intent, frozenset[int]]] = []
        for c in self._intents:
            if any(rx.search(normal) for rx in c.reject_if):
                continue
            groups = [_spans(g, normal) for g in c.require_any]
            if not all(groups):
                continue
            covered = set().union(*groups) | _spans(c.prefer, normal)
            coverage.append((c.intent, frozenset(covered)))
        left = [
            (intent, cov)
            for intent, cov in coverage
            if not any(cov < other for _, other in coverage)
        ]
        if len(left) == 1:
            return left[0][0]
        if not left:
            offers = "; ".join(i.description for i in self.document.intents)
            return CannotPlan(reason=f"I could not tell what you want to do. I can: {offers}.")
        left.sort(key=lambda pair: -len(pair[1]))
        names = "; ".join(f"{i.description} ({i.id})" for i, _ in left)
        return CannotPlan(
            reason=(
                f"the request matches more than one thing I can do: {names}. "
                "Ask for one thing at a time, and name it clearly."
            ),
            candidates=[i.id for i, _ in left],
        )

    def plan(self, request: PlanRequest) -> Plan | CannotPlan:
        """Return the filled template for ``request``, or a :class:`CannotPlan`."""
        chosen = self.match(request.text)
        if isinstance(chosen, CannotPlan):
            return chosen
        intent = chosen
        text = Text.of(request.text)
        values: dict[str, Any] = {}
        needs: list[str] = []
        details: list[str] = []
        for name, spec in intent.slots.items():
            ext = EXTRACTORS[spec.extractor]
            found = ext.read(text)
            if isinstance(found, Problem) or (found is None and spec.required):
                needs.append(spec.needs or self.document.extractors[spec.extractor].needs)
                details.append(found.detail if isinstance(found, Problem) else ext.absent)
            elif found is not None:
                values[name] = found
        if needs:
            asks = [f"{need} ({detail})" for need, detail in zip(needs, details, strict=True)]
            if len(asks) > 1:
                asks[-1] = "and " + asks[-1]
            return CannotPlan(
                reason=f"{intent.label} needs {'; '.join(asks)}.", candidates=[intent.id]
            )
        steps = [self._step(t, intent, values) for t in intent.steps]
        return Plan(
            source="template",
            goal=request.text,
            template=f"{intent.id}@{intent.version}",
            steps=steps,
        )

    def _step(self, template: StepTemplate, intent: Intent, values: Mapping[str, Any]) -> Step:
        order = [s.id for s in intent.steps]
        deps = set(template.depends_on)
        if isinstance(template, IdentifyStepTemplate):
            identity: dict[str, Any] = values[template.identify]
            form = self.document.identity.forms[identity["form"]]
            tool, args = form.tool, _fill(form.args, identity)
            description = template.description or _describe(form.description, identity)
        else:
            tool = template.tool
            args = {}
            for key, value in template.args.items():
                m = _PLACEHOLDER.fullmatch(value) if isinstance(value, str) else None
                if m and m.group(1) not in values:
                    continue  # an optional slot the request did not fill
                args[key] = _fill(value, values)
            description = _describe(template.description, values)
            for s in _walk_strings(template.args):
                ref = REF.match(s)
                if ref:
                    deps.add(ref.group("step"))
        return Step(
            id=template.id,
            tool=tool,
            args=args,
            depends_on=sorted(deps, key=order.index),
            description=description,
        )
