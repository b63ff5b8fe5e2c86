"""The template planner: fills the one intent a request asks for with strict slot values.

The planner is domain-free: the caller gives it a template document, the domain's slot
extractors (:class:`~tools.domain.SlotExtractor`) and the domain's mask. A required slot
that is missing, malformed or ambiguous is a :class:`~guards.plan.CannotPlan` whose reason
names what is needed and what was found. The planner never guesses and never runs a tool.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from graph.planners.base import PlannerError
from graph.planners.templates.match import IntentMatcher
from graph.planners.templates.placeholders import describe, fill, whole
from graph.planners.templates.schema import (
    IdentifyStepTemplate,
    Intent,
    StepTemplate,
    TemplateDocument,
)
from graph.planners.templates.validate import check_document
from guards.plan import CannotPlan, Plan, PlanRequest, Step, content_hash, iter_refs
from tools.domain import RequestText, SlotExtractor, SlotProblem


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
    ) -> None:
        """Use a validated ``document`` (``raw`` is its YAML data, hashed into the version)."""
        self.document = document
        self.source = source
        self._version = f"{document.version}+{content_hash(raw, 12)}"
        self._extractors = extractors
        self._mask = mask
        self._matcher = IntentMatcher(document, mask)

    @classmethod
    def load(
        cls,
        source: Path | Traversable,
        *,
        extractors: Mapping[str, SlotExtractor],
        mask: Callable[[str], str],
    ) -> TemplatePlanner:
        """Load a template document from a file or a package resource.

        Args:
            source: The document, e.g. a domain's
                ``resources.files("tools.retail").joinpath("templates.yaml")``.
            extractors: The slot extractors the document's slots may name.
            mask: Blanks the parts of a request that intent matching must not read.

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
        return cls.from_text(text, where, extractors=extractors, mask=mask)

    @classmethod
    def from_text(
        cls,
        text: str,
        source: str = "<templates>",
        *,
        extractors: Mapping[str, SlotExtractor],
        mask: Callable[[str], str],
    ) -> TemplatePlanner:
        """Build a planner from the text of a template document.

        Args:
            text: The YAML document.
            source: Names the document in errors and in :attr:`source`.
            extractors: The slot extractors the document's slots may name.
            mask: Blanks the parts of a request that intent matching must not read.

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
        return cls(document, raw, source, extractors=extractors, mask=mask)

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
        """Return the filled template for ``request``, or a :class:`CannotPlan`."""
        chosen = self.match(request.text)
        if isinstance(chosen, CannotPlan):
            return chosen
        intent = chosen
        text = RequestText(raw=request.text, masked=self._mask(request.text))
        values: dict[str, Any] = {}
        needs: list[str] = []
        details: list[str] = []
        for name, spec in intent.slots.items():
            ext = self._extractors[spec.extractor]
            found = ext.read(text)
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
            tool, args = form.tool, fill(form.args, identity)
            description = template.description or describe(form.description, identity)
        else:
            tool = template.tool
            args = {}
            for key, value in template.args.items():
                slot = whole(value)
                if slot is not None and slot[0] not in values:
                    continue  # an optional slot the request did not fill
                args[key] = fill(value, values)
            description = describe(template.description, values)
            deps.update(ref_step for _, ref_step, _ in iter_refs(template.args) if ref_step)
        return Step(
            id=template.id,
            tool=tool,
            args=args,
            depends_on=sorted(deps, key=order.index),
            description=description,
        )
