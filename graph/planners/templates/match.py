"""Intent matching: which one intent of a template document a request asks for.

The rule is the document's ``matching.description``: the request is masked by the
domain, lower-cased, and the ``ignore`` phrases blanked; an intent is a candidate when
each ``require_any`` group has a matching phrase and no ``reject_if`` phrase matches; a
candidate whose coverage (characters matched by ``require_any`` and ``prefer``) lies
strictly inside another's is dropped. Exactly one left is the answer; otherwise the
answer is a :class:`~guards.plan.CannotPlan`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from graph.planners.templates.schema import Intent, TemplateDocument
from guards.plan import CannotPlan


def _phrase_pattern(phrase: str) -> re.Pattern[str]:
    body = r"\s+".join(re.escape(w) for w in phrase.split(" "))
    return re.compile(rf"(?<!\w){body}(?!\w)")


def _spans(patterns: Sequence[re.Pattern[str]], text: str) -> set[int]:
    covered: set[int] = set()
    for rx in patterns:
        for m in rx.finditer(text):
            covered.update(range(m.start(), m.end()))
    return covered


@dataclass(frozen=True)
class _CompiledIntent:
    intent: Intent
    require_any: tuple[tuple[re.Pattern[str], ...], ...]
    prefer: tuple[re.Pattern[str], ...]
    reject_if: tuple[re.Pattern[str], ...]


class IntentMatcher:
    """The trigger phrases of a document, compiled once."""

    def __init__(self, document: TemplateDocument, mask: Callable[[str], str]) -> None:
        """Compile the triggers of ``document``; ``mask`` blanks what matching must not read."""
        self._document = document
        self._mask = mask

        def compile_all(phrases: Sequence[str]) -> tuple[re.Pattern[str], ...]:
            out: list[str] = []
            for p in phrases:
                out.extend(document.phrases[p[1:]] if p.startswith("@") else [p])
            return tuple(_phrase_pattern(p) for p in out)

        self._intents = [
            _CompiledIntent(
                intent=i,
                require_any=tuple(compile_all(g) for g in i.triggers.require_any),
                prefer=compile_all(i.triggers.prefer),
                reject_if=compile_all(i.triggers.reject_if),
            )
            for i in document.intents
        ]
        self._ignore = [_phrase_pattern(p) for p in document.matching.ignore]

    def candidates(self, text: str) -> list[Intent]:
        """The intents ``text`` may ask for, widest coverage first (empty: none)."""
        return [i for i, _ in self._left(text)]

    def match(self, text: str) -> Intent | CannotPlan:
        """Return the one intent ``text`` asks for, or why there is not exactly one."""
        left = self._left(text)
        if len(left) == 1:
            return left[0][0]
        if not left:
            offers = "; ".join(i.description for i in self._document.intents)
            return CannotPlan(reason=f"I could not tell what you want to do. I can: {offers}.")
        names = "; ".join(f"{i.description} ({i.id})" for i, _ in left)
        return CannotPlan(
            reason=(
                f"the request matches more than one thing I can do: {names}. "
                "Ask for one thing at a time, and name it clearly."
            ),
            candidates=[i.id for i, _ in left],
        )

    def _left(self, text: str) -> list[tuple[Intent, frozenset[int]]]:
        normal = self._mask(text).lower()
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
        left.sort(key=lambda pair: -len(pair[1]))
        return left
