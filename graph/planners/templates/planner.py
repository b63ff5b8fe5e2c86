"""The template planner: fills the intents a request asks for with strict slot values.

The planner is domain-free: the caller gives it a template document, the domain's slot
extractors (:class:`~tools.domain.SlotExtractor`) and the domain's mask. A required slot
that is missing, malformed or ambiguous is a :class:`~guards.plan.CannotPlan` whose reason
names what is needed and what was found. The planner never guesses and never runs a tool.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from graph.planners.base import PlannerError
from graph.planners.templates.clauses import Clauses, phrase_pattern
from graph.planners.templates.compose import Part, compose, write_intent
from graph.planners.templates.match import IntentMatcher
from graph.planners.templates.schema import Intent, TemplateDocument, ToolStepTemplate
from graph.planners.templates.validate import check_document
from guards.plan import CannotPlan, Plan, PlanRequest, canonical_json, content_hash
from tools.domain import RequestText, SlotExtractor, SlotProblem

Evidence = Callable[[Mapping[str, Any]], frozenset[str] | None]
"""The states of the records one reading's slot values name (``None``: no record named).

The domain reads them (:data:`tools.domain.Evidence`, bound to a store by the services);
the planner only chooses with them between readings of the same words."""


def _needs(cannot: CannotPlan) -> int:
    """How many things a filled intent's refusal asks for (its "; "-separated needs)."""
    return len(re.findall(r"\(([^()]|\([^()]*\))*\)", cannot.reason)) or 1


def _ids(chosen: Part | CannotPlan) -> list[str]:
    return list(chosen.candidates) if isinstance(chosen, CannotPlan) else [chosen.intent.id]


def _phrase(text: str) -> re.Pattern[str]:
    return phrase_pattern(text)


def _short(text: str, limit: int = 160) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


class TemplatePlanner:
    """Plans requests from YAML templates; it cannot re-plan from feedback."""

    name = "template"

    def __init__(
        self,
        document: TemplateDocument,
        raw: Any,
        source: str,
        *,
        extractors: Mapping[str, SlotExtractor],
        mask: Callable[[str], str],
        write_tools: frozenset[str] = frozenset(),
        evidence: Evidence | None = None,
    ) -> None:
        """Use a validated ``document`` (``raw`` is its YAML data, hashed into the version)."""
        self.document = document
        self.source = source
        self._version = f"{document.version}+{content_hash(raw, 12)}"
        self._extractors = extractors
        self._mask = mask
        self._matcher = IntentMatcher(document, mask)
        self._clauses = Clauses(document.clauses, document.phrases)
        self._write_tools = frozenset(write_tools)
        self._evidence = evidence

    @classmethod
    def load(
        cls,
        source: Path | Traversable,
        *,
        extractors: Mapping[str, SlotExtractor],
        mask: Callable[[str], str],
        write_tools: frozenset[str] = frozenset(),
        evidence: Evidence | None = None,
    ) -> TemplatePlanner:
        """Load a template document from a file or a package resource.

        Args:
            source: The document, e.g. a domain's
                ``resources.files("tools.retail").joinpath("templates.yaml")``.
            extractors: The slot extractors the document's slots may name.
            mask: Blanks the parts of a request that intent matching must not read.
            write_tools: The tools that change data: a message's clauses that ask for
                writes are planned; its questions are answered by their lookups.
            evidence: Reads the states of the records a reading's slot values name (see
                :data:`Evidence`); ``None``: the words alone decide between readings.

        Raises:
            PlannerError: naming the file and the problem (missing file, YAML error, schema
                error, unknown slot, extractor, phrase list or step).
        """
        where = str(source)
        try:
            text = source.read_text(encoding="utf-8")
        except FileNotFoundError as exc:
            raise PlannerError(f"{where}: no such template file") from exc
        except (OSError, UnicodeDecodeError) as exc:
            raise PlannerError(f"{where}: cannot read the template file: {exc}") from exc
        return cls.from_text(
            text,
            where,
            extractors=extractors,
            mask=mask,
            write_tools=write_tools,
            evidence=evidence,
        )

    @classmethod
    def from_text(
        cls,
        text: str,
        source: str = "<templates>",
        *,
        extractors: Mapping[str, SlotExtractor],
        mask: Callable[[str], str],
        write_tools: frozenset[str] = frozenset(),
        evidence: Evidence | None = None,
    ) -> TemplatePlanner:
        """Build a planner from the text of a template document.

        Args:
            text: The YAML document.
            source: Names the document in errors and in :attr:`source`.
            extractors: The slot extractors the document's slots may name.
            mask: Blanks the parts of a request that intent matching must not read.
            write_tools: The tools that change data (see :meth:`load`).
            evidence: Reads the states of the records a reading names (see :meth:`load`).

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
        problems = check_document(document, extractors)
        if problems:
            raise PlannerError(f"{source}: invalid template document: {'; '.join(problems)}")
        return cls(
            document,
            raw,
            source,
            extractors=extractors,
            mask=mask,
            write_tools=write_tools,
            evidence=evidence,
        )

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
        return self._matcher.match(text)

    def plan(self, request: PlanRequest) -> Plan | CannotPlan:
        """Return the plan for ``request``, or a :class:`CannotPlan` naming what is missing.

        The message is cut into clauses (``clauses`` in the document); each clause asks for
        one intent, or for none (who you are, a question, a thank-you). A clause that holds a
        condition the plan cannot decide makes the whole request a :class:`CannotPlan`
        naming it; a fallback for a first choice that does not exist is left out. All
        intents asked for are planned together, or none is.
        """
        clauses = self._clauses.split(request.text)
        whole = RequestText(raw=request.text, masked=self._mask(request.text))
        parts: list[Part] = []
        refusals: list[CannotPlan] = []
        for clause in clauses:
            condition = self._clauses.condition(clause)
            if condition in ("fallback", "question"):
                continue
            if condition == "negated":
                return CannotPlan(
                    reason=(
                        f"the request says not to do something, or takes it back: "
                        f"'{_short(clause)}'. I do not read a negated request as the thing it "
                        "negates: say plainly what to do."
                    )
                )
            chosen = self._choose(clause, whole)
            if condition is None and isinstance(chosen, CannotPlan) and not chosen.candidates:
                continue  # no intent: who you are, a greeting, a remark
            if condition is not None:
                # Even a clause that asks for nothing may make another part conditional
                # ("if you can only do one of them ..."): no part is planned.
                return CannotPlan(
                    reason=(
                        f"the request holds a condition one plan cannot decide: "
                        f"'{_short(clause)}'. I never run a branch you did not choose: ask "
                        "again without the condition, or say which branch you want."
                    ),
                    candidates=_ids(chosen),
                )
            if isinstance(chosen, CannotPlan):
                refusals.append(chosen)
            else:
                parts.append(chosen)
        writes = [p for p in parts if self._writes(p.intent)]
        blocking = [r for r in refusals if any(self._acts(c) for c in r.candidates)]
        if blocking:
            return blocking[0]
        if not writes and refusals:
            return refusals[0]
        if not parts:
            whole_match = self.match(request.text) if len(clauses) <= 1 else None
            return whole_match if isinstance(whole_match, CannotPlan) else self._nothing()
        if writes:
            # The lookups a write plan makes show what a question asks; a hand-off to a human
            # is kept, after the writes.
            parts = [p for p in parts if self._writes(p.intent) or p.intent.hands_off]
        parts = [p for p in parts if not p.intent.hands_off] + [
            p for p in parts if p.intent.hands_off
        ]  # the lookups a write plan makes show what a question asks
        once = self._once(parts)
        if once is not None:
            return once
        if len(parts) == 1:
            part = parts[0]
            return Plan(
                source="template",
                goal=request.text,
                template=f"{part.intent.id}@{part.intent.version}",
                steps=write_intent(self.document, part.intent, part.values),
            )
        steps = compose(
            [
                write_intent(self.document, p.intent, p.values, prefix=f"p{n}")
                for n, p in enumerate(parts, 1)
            ],
            self._write_tools,
            last=[n for n, p in enumerate(parts) if p.intent.hands_off],
        )
        return Plan(
            source="template",
            goal=request.text,
            template="+".join(f"{p.intent.id}@{p.intent.version}" for p in parts),
            steps=steps,
        )

    def _nothing(self) -> CannotPlan:
        offers = "; ".join(i.description for i in self.document.intents)
        return CannotPlan(reason=f"I could not tell what you want to do. I can: {offers}.")

    def _acts(self, intent_id: str) -> bool:
        """Whether an intent writes or hands off: its refusal stops the whole request."""
        return any(
            self._writes(i) or i.hands_off for i in self.document.intents if i.id == intent_id
        )

    def _writes(self, intent: Intent) -> bool:
        return any(
            isinstance(t, ToolStepTemplate) and t.tool in self._write_tools for t in intent.steps
        )

    def _once(self, parts: list[Part]) -> CannotPlan | None:
        seen: dict[tuple[str, str], Part] = {}
        for part in parts:
            slot = part.intent.once_per
            if slot is None or slot not in part.values:
                continue
            key = (part.intent.group or part.intent.id, canonical_json(part.values[slot]))
            if key in seen:
                return CannotPlan(
                    reason=(
                        f"{part.intent.label} asks twice for {slot} "
                        f"{part.values[slot]}, which can be changed only once: ask for "
                        "all its changes in one sentence"
                    ),
                    candidates=[part.intent.id],
                )
            seen[key] = part
        return None

    def _fill(
        self, intent: Intent, clause: RequestText, whole: RequestText
    ) -> Part | CannotPlan | None:
        """Fill ``intent``'s slots; ``None`` when it does not apply (an absent slot given)."""
        values: dict[str, Any] = {}
        needs: list[str] = []
        details: list[str] = []
        for name, spec in intent.slots.items():
            ext = self._extractors[spec.extractor]
            found = ext.read(clause)
            if found is None and spec.scope == "message":
                found = ext.read(whole)
            if spec.absent:
                if found is not None:
                    return None  # an intent for requests without this slot
                continue
            if isinstance(found, SlotProblem) or (found is None and spec.required):
                needs.append(spec.needs or self.document.extractors[spec.extractor].needs)
                details.append(found.detail if isinstance(found, SlotProblem) else ext.absent)
            elif found is not None:
                values[name] = found
        if needs:
            asks = [f"{need} ({detail})" for need, detail in zip(needs, details, strict=True)]
            if len(asks) > 1:
                asks[-1] = "and " + asks[-1]
            return CannotPlan(
                reason=f"{intent.label} needs {'; '.join(asks)}.", candidates=[intent.id]
            )
        return Part(intent, values, clause.raw)

    def _choose(self, clause: str, whole: RequestText) -> Part | CannotPlan:
        """The one intent a clause asks for, filled.

        When the words match several intents, the readings the clause can fill are kept;
        between intents of one group (the same words read two ways), the cues decide, and
        when they do not, the answer names both and what would decide.
        """
        text = RequestText(raw=clause, masked=self._mask(clause))
        matched = self._matcher.candidates(clause)
        tried = [(i, self._fill(i, text, whole)) for i in matched]
        applying = [(i, f) for i, f in tried if f is not None]
        if not applying:
            acting = [i for i in matched if self._writes(i) or i.hands_off]
            if acting:
                # The clause asks for a change that does not apply to this message (a slot it
                # must not have is given elsewhere): skipping it would leave it undone
                # without a word, so the whole request is asked about instead.
                return self._inapplicable(clause, acting)
            return self._nothing()  # no intent applies: "I could not tell ..."
        candidates = [i for i, _ in applying]
        filled = [f for _, f in applying if f is not None]
        if len(candidates) == 1:
            return filled[0]
        pool = [f for f in filled if isinstance(f, Part)]
        grouped = len({i.group for i in candidates}) == 1 and candidates[0].group is not None
        if not pool:
            if not grouped:
                return self._several(candidates)
            # Readings of the same words, none of which can be filled: say what the
            # best-evidenced reading, or else the one missing least, still needs.
            cued = self._cued(candidates, clause, whole.raw) or candidates
            asks = [
                f
                for i, f in zip(candidates, filled, strict=True)
                if i in cued and isinstance(f, CannotPlan)
            ]
            return min(asks, key=_needs)
        if len({i.group or i.id for i in candidates}) > 1:
            # Different things in one clause ("cancel ... and return ..."): planning only the
            # one that can be filled would leave the other undone without a word.
            return self._several(candidates)
        if len(pool) == 1:
            return pool[0]
        evidenced = self._evidenced(pool, clause)
        if evidenced is not None:
            return evidenced
        cued = self._cued([p.intent for p in pool], clause, whole.raw)
        if len(cued) == 1:
            return next(p for p in pool if p.intent is cued[0])
        return self._conflict(cued or [p.intent for p in pool])

    def _inapplicable(self, clause: str, intents: list[Intent]) -> CannotPlan:
        reads = "; ".join(
            f"{i.description} ({i.id}), which applies only when the message names no "
            + " and no ".join(n.replace("_", " ") for n, spec in i.slots.items() if spec.absent)
            for i in intents
        )
        return CannotPlan(
            reason=(
                f"'{_short(clause)}' reads as {reads}: ask for it in a message of its own, "
                "or name what it should change."
            ),
            candidates=[i.id for i in intents],
        )

    def _several(self, intents: list[Intent]) -> CannotPlan:
        names = "; ".join(f"{i.description} ({i.id})" for i in intents)
        return CannotPlan(
            reason=(
                f"the request matches more than one thing I can do: {names}. "
                "Ask for one thing at a time, and name it clearly."
            ),
            candidates=[i.id for i in intents],
        )

    def _evidenced(self, pool: list[Part], clause: str) -> Part | CannotPlan | None:
        """The one reading the data supports, or ``None`` when the data does not decide.

        Each reading of one group says for which states of its records it applies
        (``applies_to``); the domain's evidence reads the states its slot values name. A
        reading applies when every state read is one of its own: the order named, or every
        order of the customer that holds the product named. When the clause claims the
        state of another reading ("I received it") the claim and the data disagree, and
        the customer is asked instead.
        """
        if self._evidence is None or not all(p.intent.applies_to for p in pool):
            return None
        fitting = []
        for part in pool:
            states = self._evidence(part.values)
            if states and states <= set(part.intent.applies_to):
                fitting.append(part)
        if len(fitting) != 1:
            return None
        chosen = fitting[0]
        normal = self._mask(clause).lower()

        def claimed(intent: Intent) -> bool:
            return any(_phrase(c).search(normal) for c in intent.claims)

        others = [p.intent for p in pool if p is not chosen and claimed(p.intent)]
        if others and not claimed(chosen.intent):
            names = " or ".join(f"{i.description} ({i.id})" for i in [chosen.intent, *others])
            decide = "; ".join(
                f"{i.decided_by} for {i.id}" for i in [chosen.intent, *others] if i.decided_by
            )
            return CannotPlan(
                reason=(
                    f"the request could be {names}: what it says of the order and the order's "
                    f"state do not agree. Say {decide}."
                ),
                candidates=[chosen.intent.id, *(i.id for i in others)],
            )
        return chosen

    def _cued(self, intents: list[Intent], clause: str, message: str) -> list[Intent]:
        """The intents with the strongest evidence: cues in the clause, else in the message."""
        for text in (clause, message):
            normal = self._mask(text).lower()
            scores = [(sum(1 for c in i.cues if _phrase(c).search(normal)), i) for i in intents]
            cued = [(n, i) for n, i in scores if n]
            if len(cued) == 1:
                return [cued[0][1]]
            if len(cued) > 1:
                return [i for _, i in cued]
        return []

    def _conflict(self, intents: list[Intent]) -> CannotPlan:
        names = " or ".join(f"{i.description} ({i.id})" for i in intents)
        decide = "; ".join(f"{i.decided_by} for {i.id}" for i in intents if i.decided_by)
        return CannotPlan(
            reason=(
                f"the request could be {names}, and its words do not decide which. Say {decide}."
            ),
            candidates=[i.id for i in intents],
        )
