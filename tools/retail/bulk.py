"""Slot extractors for requests about every matching order, and addresses named by place.

"Modify all my pending small t-shirts to purple ..." names one kind of item and what it
should become, for every pending order that holds one: the plan repeats the change per
order the data gives (a ``foreach``, :mod:`guards.fanout`), so the extractor reads the one
change and the options the items have now ("small"), never which orders. "To the
Washington DC address" names an address the customer already has on an order or their
profile, by its city (and state): the plan selects it from the data, and refuses when none
or several distinct addresses are in that place.

As in :mod:`tools.retail.extractors`, nothing is guessed: a value is read, a
:class:`~tools.domain.SlotProblem` says why what was given cannot be used, or ``None`` says
the request does not mention the slot.
"""

from __future__ import annotations

import re
from typing import Any

from tools.domain import Extracted, RequestText, SlotExtractor, SlotProblem
from tools.retail.extractors import EXTRACTORS, mentions_in, option_values_in

_ALL = re.compile(
    r"\b(?:all|every|each)\s+(?:of\s+)?(?:my\s+|the\s+)?(?:pending\s+)?", re.IGNORECASE
)
_SIZE_FIRST = re.compile(r"\b([a-z]{1,3})\s+size\b", re.IGNORECASE)
""""s size" as the customer wrote it, read as "size s"."""

_PLACE = re.compile(
    r"\b(?:the|my|to)\s+(?:default\s+)?(?:user\s+)?"
    r"(?-i:([A-Z][A-Za-z.]+(?:\s+[A-Z][a-z][A-Za-z.]*){0,2}))"
    r"(?:,?\s+(?-i:([A-Z]{2})))?\s+(?:home\s+)?(?:address|one|home)\b",
    re.IGNORECASE,
)
_ABBREVIATIONS = {
    "NYC": ("New York", "NY"),
    "LA": ("Los Angeles", "CA"),
    "SF": ("San Francisco", "CA"),
    "DC": ("Washington", "DC"),
}
_NOT_PLACES = frozenset({"I", "The", "My", "Default", "New", "Same", "Old", "Other", "User"})


def _all_item_change(text: RequestText) -> Extracted:
    """One kind of item, for every pending order: what it is now, and what it should become."""
    found = _ALL.search(text.masked)
    if found is None:
        return None
    tail = _SIZE_FIRST.sub(lambda m: f"size {m.group(1)}", text.masked[found.end() :])
    mentions = mentions_in(tail)
    if not mentions:
        return None
    kinds = list(dict.fromkeys(names for _, _, names in mentions))
    if len(kinds) > 1:
        return SlotProblem(
            "a change of all your pending orders names one kind of item; found "
            + ", ".join(" or ".join(k) for k in kinds)
        )
    names = kinds[0]
    now = option_values_in(tail[: mentions[0][0]], names)
    if isinstance(now, SlotProblem):
        return now
    changes = EXTRACTORS["item_changes"].read(RequestText(raw=tail, masked=tail))
    if not isinstance(changes, list):
        return changes
    if len(changes) != 1 or not isinstance(changes[0], dict):
        return SlotProblem("a change of all your pending orders names one kind of item")
    change: dict[str, Any] = dict(changes[0])
    clash = sorted(k for k in now if k in change["from"] and change["from"][k] != now[k])
    if clash:
        return SlotProblem(f"two values were given for the {clash[0]} the items have now")
    change["from"] = {**change["from"], **now}
    return change


def _place(text: RequestText) -> Extracted:
    """The city (and state) of an address the customer names by place: "my NYC address"."""
    places: list[tuple[str, str]] = []
    for m in _PLACE.finditer(text.masked):
        city, state = m.group(1), m.group(2) or ""
        if city in _ABBREVIATIONS:
            city, implied = _ABBREVIATIONS[city]
            state = state or implied
        if city.split()[0] in _NOT_PLACES and city not in ("New York",):
            continue
        places.append((city, state))
    places = list(dict.fromkeys(places))
    if not places:
        return None
    if len(places) > 1:
        named = ", ".join(f"{c} {s}".strip() for c, s in places)
        return SlotProblem(f"several places were named ({named}); name the one address")
    city, state = places[0]
    return {"city": city, "state": state}


BULK_EXTRACTORS: dict[str, SlotExtractor] = {
    "all_item_change": SlotExtractor(
        _all_item_change,
        "no item was named after 'all'",
        fields=("names", "from", "to", "same", "cheapest", "free"),
    ),
    "place": SlotExtractor(_place, "no address was named by its city", fields=("city", "state")),
}
"""The extractors of this module, added to the domain's."""
