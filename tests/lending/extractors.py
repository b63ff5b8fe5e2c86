"""The lending template's slot extractors."""

from __future__ import annotations

import re

from tools.domain import Extracted, RequestText, SlotExtractor, SlotProblem

_EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
_BOOK = re.compile(r"\bB\d{3}\b")


def _one(found: list[str], what: str) -> Extracted:
    found = list(dict.fromkeys(found))
    if not found:
        return None
    if len(found) > 1:
        return SlotProblem(f"several {what}s were given; give exactly one")
    return found[0]


def _identity(text: RequestText) -> Extracted:
    email = _one(_EMAIL.findall(text.raw), "email")
    return {"form": "email", "email": email} if isinstance(email, str) else email


def _book(text: RequestText) -> Extracted:
    return _one(_BOOK.findall(text.masked), "book id")


EXTRACTORS = {
    "identity": SlotExtractor(_identity, "no email was found", forms={"email": ("email",)}),
    "book_id": SlotExtractor(_book, "no book id was found"),
}
