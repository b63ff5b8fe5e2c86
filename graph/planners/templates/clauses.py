"""Cutting a message into clauses, and telling which clauses hold a condition.

A customer writes several requests in one message ("exchange the keyboard ... Also, cancel
order #W1 ..."). The message is cut at sentence ends (``.``, ``!``, ``?``, ``;``, a line
break) and before each ``split_before`` phrase of the document's ``clauses``; each clause is
planned on its own. A clause that holds a ``conditions`` phrase ("if", "unless", "when you
ask ...") cannot be decided by one plan made before anything runs: the planner says so
instead of choosing a branch. A clause that opens with a ``fallbacks`` phrase ("if there is
no such ...") only says what to do when the first choice does not exist: it is left out,
and the first choice is planned as a selection that fails before any write when nothing
matches, so the fallback is never run in the customer's name. A clause with a
``questions`` phrase ("do not process anything") asks, and must not act: it is left out.
A clause that says not to do something ("please don't cancel ...", a ``negations`` word a
few words before a ``negated`` verb) or takes the request back (``retractions``: "never
mind") is never read as the thing it negates: nothing is planned, and the answer says why.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Literal

from graph.planners.templates.schema import Clauses as ClausesDoc

_SENTENCE = re.compile(r"(?<=[.!?;])\s+|\n+")


def phrase_pattern(phrase: str) -> re.Pattern[str]:
    """A phrase matched at word boundaries; a space matches any run of whitespace."""
    body = r"\s+".join(re.escape(w) for w in phrase.split(" "))
    return re.compile(rf"(?<!\w){body}(?!\w)")


class Clauses:
    """The clause rules of one template document, compiled."""

    def __init__(self, doc: ClausesDoc, phrases: Mapping[str, list[str]]) -> None:
        """Compile ``doc``'s phrases (``"@name"`` stands for ``phrases[name]``)."""

        def expand(items: list[str]) -> list[str]:
            return [q for p in items for q in (phrases.get(p[1:], []) if p[:1] == "@" else [p])]

        self._split = [phrase_pattern(p) for p in doc.split_before]
        self._conditions = [phrase_pattern(p) for p in doc.conditions]
        self._fallbacks = [re.compile(r"^\W*" + phrase_pattern(p).pattern) for p in doc.fallbacks]
        self._questions = [phrase_pattern(p) for p in doc.questions]
        self._retractions = [phrase_pattern(p) for p in doc.retractions]
        negation = "|".join(phrase_pattern(p).pattern for p in expand(doc.negations)) or "(?!)"
        verbs = "|".join(phrase_pattern(p).pattern for p in expand(doc.negated)) or "(?!)"
        self._negated = re.compile(rf"(?:{negation})\W+(?:[\w']+\W+){{0,3}}?(?:{verbs})")

    def split(self, text: str) -> list[str]:
        """The clauses of ``text``, in order, without empty ones."""
        out: list[str] = []
        for sentence in _SENTENCE.split(text):
            low = sentence.lower()
            cuts = sorted({m.start() for rx in self._split for m in rx.finditer(low)} - {0})
            start = 0
            for cut in cuts:
                out.append(sentence[start:cut])
                start = cut
            out.append(sentence[start:])
        return [c.strip(" ,") for c in out if c.strip(" ,.;!?")]

    def condition(
        self, clause: str
    ) -> Literal["negated", "question", "fallback", "condition"] | None:
        """What makes ``clause`` more than a plain request, or ``None``.

        ``negated``: it says not to do something ("please don't cancel ...") or takes the
        request back ("never mind"); ``question``: it asks and must not act; ``fallback``:
        it says what to do when the first choice does not exist; ``condition``: it holds
        a condition one plan cannot decide.
        """
        low = clause.lower()
        if any(rx.search(low) for rx in self._questions):
            return "question"
        if any(rx.search(low) for rx in self._fallbacks):
            return "fallback"
        if any(rx.search(low) for rx in self._conditions):
            return "condition"
        if self._negated.search(low) or any(rx.search(low) for rx in self._retractions):
            return "negated"
        return None
