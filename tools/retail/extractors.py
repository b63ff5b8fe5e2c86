"""Strict slot extractors of the retail domain, read by its plan templates.

Each extractor reads one slot (an order id, item ids, an identity ...) from a request with
regular expressions and either returns the value, a :class:`~tools.domain.SlotProblem`
saying why what was given cannot be used, or ``None`` when the request does not mention
the slot. Nothing is guessed. :func:`mask` blanks emails and the bodies of structured
addresses, so that digits or words inside them are never read as something else; the
extractors that read emails and addresses read the raw text.

The accepted formats are stated for users in the ``description`` of
``tools/retail/templates.yaml``.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Sequence
from typing import Any

from tools.domain import Extracted, RequestText, SlotExtractor, SlotProblem
from tools.retail.vocabulary import ALIASES, PRODUCT_OPTIONS, VALUE_ALIASES

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
    r"(?:\b(?:i\s+am|i'm|my\s+name\s+is|this\s+is|called)\s+|\bname\s*:\s*)"
    r"(?-i:([A-Z][A-Za-z'-]*)\s+([A-Z][A-Za-z'-]*))"
    r"(?=\s*(?:[,.;:!?)]|$)|\s+(?:and|with|from|zip|my|in|at|living|residing|who)\b)",
    re.IGNORECASE,
)
_ZIP = re.compile(r"\bzip(?:\s*code)?\s*(?:is\s+|:\s*|=\s*)?(\d+)(?!\w)", re.IGNORECASE)
_USER_ID = re.compile(r"(?<![\w@.])([a-z]+)_([a-z]+)_(\d{4})(?![\w@])")
_HOME = re.compile(
    r"\b(?:live|living|lives|residing|reside|based|from)\b[^.;!?\n]{0,60}?(?<![\d#$])(\d{5})(?![\d])",
    re.IGNORECASE,
)
_PAYMENT = re.compile(r"(?<![\w])(?:credit_card|paypal|gift_card)_\d+(?!\w)")
_REASONS = {
    "no longer needed": re.compile(r"\bno\s+longer\s+needed\b", re.IGNORECASE),
    "ordered by mistake": re.compile(r"\bordered\s+by\s+mistake\b", re.IGNORECASE),
}
_ADDRESS_KEY = re.compile(r"(?<!email )(?<!e-mail )\baddress\s*:", re.IGNORECASE)
_ADDRESS = re.compile(r"\s*([^,;\n]*),([^,;\n]*),([^,;\n]*),([^,;\n]*),([^,;\n]*),\s*(\d{5})(?!\d)")
_ADDRESS_STOP = re.compile(r"(?:\d{5}(?!\d)|(?=[;\n])|(?=\.\s))()")
ADDRESS_FIELDS = ("address1", "address2", "city", "state", "country", "zip")
"""Fields of an ``address`` value, in the order a request writes them."""


def mask(raw: str) -> str:
    """Return ``raw`` with emails and address bodies blanked (same length, spaces)."""
    spans = [m.span() for m in _EMAIL.finditer(raw)]
    spans += [_address_span(m, raw) for m in _ADDRESS_KEY.finditer(raw)]
    chars = list(raw)
    for start, end in spans:
        chars[start:end] = " " * (end - start)
    return "".join(chars)


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
        return SlotProblem(f"several {what}s were given ({', '.join(found)}); give exactly one")
    return found[0]


_SOURCE_ORDER = re.compile(
    r"\b(?:same\s+as|as\s+in|as\s+on|like)\s+(?:(?:my|the)\s+)?(?:other\s+)?(?:order\s+)?"
    r"((?:#[A-Za-z]?\d+|[Ww]\d+))(?!\w)",
    re.IGNORECASE,
)


def _order_id(text: RequestText) -> Extracted:
    ids: list[str] = []
    bad: list[str] = []
    sources = {m.start(1) for m in _SOURCE_ORDER.finditer(text.masked)}
    tokens = [m.group() for m in _ORDER_TOKEN.finditer(text.masked) if m.start() not in sources]
    for token in _distinct(tokens):
        m = _ORDER_ID.fullmatch(token)
        if m is None:
            bad.append(repr(token))
        else:
            ids.append("#W" + m.group(1))
    if bad:
        return SlotProblem(
            f"{', '.join(bad)} is not an order id: order ids are '#W' followed by exactly 7 digits"
        )
    return _one("order id", ids)


def _product_numbers(text: RequestText) -> list[tuple[int, str]]:
    return [(m.start(1), m.group(1)) for m in _PRODUCT.finditer(text.masked)]


def _item_numbers(text: RequestText) -> list[str] | SlotProblem:
    """Return every 10-digit number that is not a product id, in order."""
    product_at = {pos for pos, _ in _product_numbers(text)}
    numbers = [(m.start(), m.group()) for m in _NUMBER.finditer(text.masked)]
    bad = [n for pos, n in numbers if len(n) != 10 and pos not in product_at]
    if bad:
        return SlotProblem(f"{', '.join(bad)} is not an item id: item ids have exactly 10 digits")
    return [n for pos, n in numbers if pos not in product_at]


def _item_ids(text: RequestText) -> Extracted:
    numbers = _item_numbers(text)
    if isinstance(numbers, SlotProblem):
        return numbers
    return numbers or None


def _item_id(text: RequestText) -> Extracted:
    numbers = _item_numbers(text)
    if isinstance(numbers, SlotProblem):
        return numbers
    return _one("item id", numbers)


def _item_pairs(text: RequestText) -> Extracted:
    numbers = _item_numbers(text)
    if isinstance(numbers, SlotProblem):
        return numbers
    pairs = [(m.group(1), m.group(2)) for m in _PAIR.finditer(text.masked)]
    paired = [n for pair in pairs for n in pair]
    unpaired = _distinct([n for n in numbers if n not in paired])
    if unpaired:
        return SlotProblem(
            f"item {', '.join(unpaired)} has no partner: write each change as "
            "'item 1234567890 to 0987654321'"
        )
    if not pairs:
        return None
    return {"old": [old for old, _ in pairs], "new": [new for _, new in pairs]}


def _product_id(text: RequestText) -> Extracted:
    found = [n for _, n in _product_numbers(text)]
    bad = [n for n in found if len(n) != 10]
    if bad:
        return SlotProblem(
            f"{', '.join(bad)} is not a product id: product ids have exactly 10 digits"
        )
    return _one("product id", found)


def _email(text: RequestText) -> Extracted:
    emails = [m.group() for m in _EMAIL.finditer(text.raw)]
    found: dict[str, str] = {}
    for e in emails:
        found.setdefault(e.lower(), e)
    return _one("email", list(found.values()))


def _zips(masked: str) -> list[str]:
    """Zips written after "zip" (any digit count, checked later), else where one lives."""
    said = _distinct([m.group(1) for m in _ZIP.finditer(masked)])
    return said or _distinct([m.group(1) for m in _HOME.finditer(masked)])


def _identity(text: RequestText) -> Extracted:
    email = _email(text)
    if email is not None:
        return email if isinstance(email, SlotProblem) else {"form": "email", "email": email}
    names = _distinct([f"{m.group(1)} {m.group(2)}" for m in _NAME.finditer(text.masked)])
    user_ids = _distinct([m.group() for m in _USER_ID.finditer(text.masked)])
    zips = _zips(text.masked)
    if len(user_ids) > 1:
        return SlotProblem(f"several user ids were given ({', '.join(user_ids)}); give exactly one")
    if user_ids and not names:
        # A user id names its user: "mei_kovacs_8020" is Mei Kovacs. The lookup by name and
        # zip then says whether that user lives there; the id alone proves nothing.
        first, last, _ = user_ids[0].split("_")
        names = [f"{first.capitalize()} {last.capitalize()}"]
        if not zips:
            return SlotProblem(
                f"found the user id {user_ids[0]} but no email or zip to confirm it, "
                "e.g. 'zip 19122'"
            )
    if not names and not zips:
        return None
    if len(names) > 1 or len(zips) > 1:
        return SlotProblem(
            f"several names or zips were given ({', '.join(names + zips)}); give exactly one"
        )
    if not zips:
        return SlotProblem(f"found the name {names[0]} but no zip, e.g. 'zip 19122'")
    if not names:
        return SlotProblem(
            f"found zip {zips[0]} but no first and last name, e.g. 'I am Yusuf Rossi'"
        )
    if not re.fullmatch(r"\d{5}", zips[0]):
        return SlotProblem(f"{zips[0]!r} is not a zip: a zip has exactly 5 digits")
    first, last = names[0].split(" ")
    return {"form": "name_zip", "first_name": first, "last_name": last, "zip": zips[0]}


def _payment_method_id(text: RequestText) -> Extracted:
    return _one("payment method", [m.group() for m in _PAYMENT.finditer(text.masked)])


def _cancel_reason(text: RequestText) -> Extracted:
    found = [reason for reason, rx in _REASONS.items() if rx.search(text.masked)]
    if len(found) > 1:
        return SlotProblem("both allowed reasons were given; give exactly one")
    return found[0] if found else None


def _address(text: RequestText) -> Extracted:
    keys = list(_ADDRESS_KEY.finditer(text.raw))
    if not keys:
        return None
    if len(keys) > 1:
        return SlotProblem("several addresses were given; give exactly one")
    start, end = _address_span(keys[0], text.raw)
    m = _ADDRESS.match(text.raw, start)
    if m is not None:
        values = [g.strip() for g in m.groups()]
        empty = [f for f, v in zip(ADDRESS_FIELDS, values, strict=True) if not v]
        if not empty:
            return dict(zip(ADDRESS_FIELDS, values, strict=True))
        return SlotProblem(f"the new address has an empty {', '.join(empty)}")
    parts = [p.strip() for p in text.raw[start:end].split(",")]
    if len(parts) < len(ADDRESS_FIELDS):
        return SlotProblem(
            f"the new address has {len(parts)} of the 6 fields "
            f"({', '.join(ADDRESS_FIELDS)}); all six are required"
        )
    return SlotProblem(
        "the new address must be 'address: address1, address2, city, state, country, zip' "
        "with a 5-digit zip as the sixth field"
    )


# Items described by name and options -----------------------------------------------------


def _product_words() -> list[tuple[re.Pattern[str], tuple[str, ...]]]:
    words: dict[str, tuple[str, ...]] = {}
    for name in PRODUCT_OPTIONS:
        base = name.lower().replace("-", " ")
        words[base] = (name,)
        words[base + "s"] = (name,)
        words[base + "es"] = (name,)
    for alias, names in ALIASES.items():
        words.setdefault(alias, names)
        words.setdefault(alias + "s", names)
    ordered = sorted(words.items(), key=lambda kv: -len(kv[0]))
    return [
        (re.compile(r"(?<![\w-])" + r"[\s-]*".join(map(re.escape, w.split())) + r"(?![\w-])"), n)
        for w, n in ordered
    ]


_PRODUCT_WORDS = _product_words()
_DICT = re.compile(r"\{[^{}]*\}")
_CHEAPEST = re.compile(r"\b(?:cheapest|least\s+expensive|lowest[-\s]priced?)\b", re.IGNORECASE)
_SAME = re.compile(r"\bsame\b", re.IGNORECASE)
_INSTEAD_OF = re.compile(r"\binstead\s+of\b[^,.;]*", re.IGNORECASE)
_RELATIVE = re.compile(
    r"\b(?:bigger|smaller|larger|brighter|less\s+bright|more\s+expensive|most\s+expensive|"
    r"higher|lower|shorter|longer|fewest|fewer|more\s+pieces|less\s+pieces|maximum|minimum|"
    r"upgrade|downgrade|better|fancier|more\s+fancy|slightly|a\s+size\s+(?:up|down))\b",
    re.IGNORECASE,
)


_NO_CARE = (
    r"\b(?:(?:do\s+not|don't|dont|doesn't|does\s+not)\s+(?:really\s+)?care\s+"
    r"(?:about|for|what|which)\s+(?:the\s+)?({keys})|any\s+({keys})|"
    r"({keys})\s+(?:does\s+not|doesn't|do\s+not|don't)\s+matter)\b"
)


def _free(text: str, names: tuple[str, ...]) -> tuple[list[str], str]:
    """Options the customer does not care about ("do not care about waterproof or not").

    Returns them and ``text`` with those phrases blanked (they name no value to change to).
    """
    keys = sorted({k for n in names for k in PRODUCT_OPTIONS[n]}, key=len, reverse=True)
    rx = re.compile(_NO_CARE.format(keys="|".join(map(re.escape, keys))), re.IGNORECASE)
    found = [next(g for g in m.groups() if g) for m in rx.finditer(text)]
    free = _distinct([next(k for k in keys if k.lower() == f.lower()) for f in found])
    return free, rx.sub(lambda m: " " * len(m.group()), text)


_EXCLUDE = re.compile(
    r"\b(?:except|excluding|but\s+not|other\s+than|apart\s+from|besides|everything|"
    r"all|both|each|every|keep\s+the|"
    r"not\s+the)\b",
    re.IGNORECASE,
)


def _exclusion(text: str) -> SlotProblem | None:
    """Items named by what they are not ("everything except the pet bed") are not read."""
    m = _EXCLUDE.search(text)
    if m is None:
        return None
    return SlotProblem(
        f"'{m.group()}' names items by exclusion or as a whole; name each item to change"
    )


def mentions_in(text: str) -> list[tuple[int, int, tuple[str, ...]]]:
    """Product mentions as (start, end, product names), longest words first, in order."""
    taken: list[tuple[int, int, tuple[str, ...]]] = []
    low = text.lower()
    for rx, names in _PRODUCT_WORDS:
        for m in rx.finditer(low):
            if not any(m.start() < e and s < m.end() for s, e, _ in taken):
                taken.append((m.start(), m.end(), names))
    return sorted(taken)


def _option_dict(text: str, names: tuple[str, ...]) -> dict[str, str] | SlotProblem:
    try:
        value = ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return SlotProblem(f"{text} is not a list of options like {{'color': 'red'}}")
    if not isinstance(value, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    ):
        return SlotProblem(f"{text} is not a list of options like {{'color': 'red'}}")
    known = {k for n in names for k in PRODUCT_OPTIONS[n]}
    unknown = sorted(set(value) - known)
    if unknown:
        return SlotProblem(f"{', '.join(unknown)} is not an option of {' or '.join(names)}")
    return dict(value)


def _values_of(low: str, name: str) -> dict[str, str] | SlotProblem:
    """The option values of product ``name`` that ``low`` (normalised text) names."""
    phrases: dict[str, set[tuple[str, str]]] = {}
    for key, values in PRODUCT_OPTIONS[name].items():
        for v in values:
            if len(v) >= 3 and v.lower() != "none":
                phrases.setdefault(v.lower().replace("-", " "), set()).add((key, v))
            if key == "size":
                phrases.setdefault(f"size {v.lower()}", set()).add((key, v))
    for alias, (key, v) in {**VALUE_ALIASES["*"], **VALUE_ALIASES.get(name, {})}.items():
        if v in PRODUCT_OPTIONS[name].get(key, ()):
            phrases.setdefault(alias, set()).add((key, v))
    found: dict[str, set[str]] = {}
    for phrase, options in sorted(phrases.items(), key=lambda kv: -len(kv[0])):
        m = re.search(r"(?<![\w])" + re.escape(phrase) + r"(?![\w])", low)
        if m is None:
            continue
        if len(options) > 1:
            keys = " or the ".join(sorted(k for k, _ in options))
            return SlotProblem(f"'{phrase}' could be the {keys} of the {name}; say which")
        ((key, v),) = options
        found.setdefault(key, set()).add(v)
        low = low[: m.start()] + " " * (m.end() - m.start()) + low[m.end() :]
    several = {k: sorted(v) for k, v in found.items() if len(v) > 1}
    if several:
        key, both = next(iter(several.items()))
        return SlotProblem(f"both {' and '.join(both)} were given for the {key}; give one")
    return {k: next(iter(v)) for k, v in found.items()}


def option_values_in(text: str, names: tuple[str, ...]) -> dict[str, str] | SlotProblem:
    """Option values named in free text ("clicky switches", "red", "size 8").

    A word that names several products ("watch") must name the same options of each;
    otherwise the product is asked for.
    """
    low = " ".join(_INSTEAD_OF.sub(" ", text).lower().replace("-", " ").split())
    readings = [_values_of(low, name) for name in names]
    for r in readings:
        if isinstance(r, SlotProblem):
            return r
    if any(r != readings[0] for r in readings):
        return SlotProblem(f"say which product: {' or '.join(names)}")
    return readings[0]


def _change(span: str, names: tuple[str, ...]) -> dict[str, Any] | SlotProblem:
    """What one described item should become: options to keep, set, or the cheapest."""
    dicts = [_option_dict(m.group(), names) for m in _DICT.finditer(span)]
    bad = [d for d in dicts if isinstance(d, SlotProblem)]
    if bad:
        return bad[0]
    plain = _DICT.sub(" ", span)
    cheapest = bool(_CHEAPEST.search(plain))
    relative = _RELATIVE.search(plain)
    if relative is not None and not cheapest:
        return SlotProblem(
            f"'{relative.group()}' does not name an option: say which value you want ("
            + "; ".join(
                f"options of the {n}: "
                + "; ".join(f"{k}: {', '.join(v)}" for k, v in PRODUCT_OPTIONS[n].items())
                for n in names
            )
            + ")"
        )
    free, plain = _free(plain, names)
    frm: dict[str, str] = {}
    to: dict[str, str]
    if len(dicts) >= 2:
        frm, to = dicts[0], dicts[1]  # type: ignore[assignment]
    elif len(dicts) == 1:
        to = dicts[0]  # type: ignore[assignment]
    else:
        values = option_values_in(plain, names)
        if isinstance(values, SlotProblem):
            return values
        to = values
    if not to and not cheapest:
        # "the same one", "the same type as the other one": nothing named changes, and a
        # change to the item it already is would be a write no one asked for.
        return SlotProblem(f"it does not say what the {' or '.join(names)} should become")
    both = sorted(set(free) & set(to))
    if both:
        return SlotProblem(f"the {both[0]} is asked for and said not to matter; say which")
    same = not cheapest or bool(_SAME.search(plain))
    return {
        "names": list(names),
        "from": frm,
        "to": to,
        "same": same,
        "cheapest": cheapest,
        "free": free,
    }


def _item_changes(text: RequestText) -> Extracted:
    mentions = mentions_in(text.masked)
    if not mentions:
        return None
    excluded = _exclusion(text.masked)
    if excluded is not None:
        return excluded
    out: list[dict[str, Any]] = []
    i = 0
    while i < len(mentions):
        start, end, names = mentions[i]
        j = i + 1
        # "the Desk Lamp ... for the cheapest Desk Lamp": a repeated name is the same item.
        while j < len(mentions) and mentions[j][2] == names:
            j += 1
        stop = mentions[j][0] if j < len(mentions) else len(text.masked)
        change = _change(text.masked[end:stop], names)
        if isinstance(change, SlotProblem):
            return change
        out.append(change)
        i = j
    return out


def _item_names(text: RequestText) -> Extracted:
    names = [list(n) for _, _, n in mentions_in(text.masked)]
    if not names:
        return None
    excluded = _exclusion(text.masked)
    if excluded is not None:
        return excluded
    return [{"names": list(n)} for n in dict.fromkeys(map(tuple, names))]


_BUT = re.compile(
    r"\b(?:except(?:\s+for)?|excluding|other\s+than|apart\s+from|but\s+not|besides|"
    r"save\s+for)\b",
    re.IGNORECASE,
)
_WHOLE = re.compile(r"\b(?:everything|all|every\s+item|each\s+item|the\s+rest)\b", re.IGNORECASE)


def _kept_items(text: RequestText) -> Extracted:
    """What "everything except the coffee machine" keeps: one product named after "except".

    The items to return are then the order's other lines, picked from the data. A product
    named before "except" (the items would be named both ways) or several kept products are
    asked about.
    """
    but = _BUT.search(text.masked)
    if but is None:
        return None
    if _WHOLE.search(text.masked, 0, but.start()) is None:
        return SlotProblem(f"'{but.group()}' follows no 'everything' or 'all'")
    mentions = mentions_in(text.masked)
    before = [n for s, _, n in mentions if s < but.start()]
    if before:
        return SlotProblem(
            f"the {' or '.join(before[0])} is named before '{but.group()}': name each item "
            "to return, or everything except the one to keep"
        )
    kept = list(dict.fromkeys(n for s, _, n in mentions if s >= but.end()))
    if not kept:
        return SlotProblem(f"nothing is named after '{but.group()}'")
    if len(kept) > 1:
        return SlotProblem(
            f"several items are kept ({', '.join(' or '.join(n) for n in kept)}); name the "
            "items to return instead"
        )
    return {"names": list(kept[0])}


_KINDS = {
    "gift_card": re.compile(r"\bgift\s*card\b|\bgiftcard\b|\bGC\b", re.IGNORECASE),
    "paypal": re.compile(r"\bpay\s*pal\b", re.IGNORECASE),
    "credit_card": re.compile(r"\bcredit\s+card\b|\bvisa\b|\bmastercard\b|\bamex\b", re.IGNORECASE),
}


def _payment_kind(text: RequestText) -> Extracted:
    found = [kind for kind, rx in _KINDS.items() if rx.search(text.masked)]
    if len(found) > 1:
        return SlotProblem(
            f"several kinds of payment were named ({', '.join(found)}); name the one to use"
        )
    return found[0] if found else None


def _source_order_id(text: RequestText) -> Extracted:
    ids = []
    for m in _SOURCE_ORDER.finditer(text.masked):
        found = _ORDER_ID.fullmatch(m.group(1))
        if found is None:
            return SlotProblem(f"{m.group(1)!r} is not an order id: '#W' and exactly 7 digits")
        ids.append("#W" + found.group(1))
    return _one("order id to copy the address from", ids)


def _summary(text: RequestText) -> Extracted:
    """What to tell a human agent: the customer's clause, as written (emails masked)."""
    summary = " ".join(text.masked.split())
    return summary[:500] or None


EXTRACTORS: dict[str, SlotExtractor] = {
    "identity": SlotExtractor(
        _identity,
        "no email and no name with zip was found",
        forms={"email": ("email",), "name_zip": ("first_name", "last_name", "zip")},
    ),
    "order_id": SlotExtractor(_order_id, "no order id was found"),
    "item_ids": SlotExtractor(_item_ids, "no item id was found"),
    "item_pairs": SlotExtractor(_item_pairs, "no item pairs were found", fields=("old", "new")),
    "item_id": SlotExtractor(_item_id, "no item id was found"),
    "product_id": SlotExtractor(_product_id, "no product id was found"),
    "payment_method_id": SlotExtractor(_payment_method_id, "no payment method id was found"),
    "cancel_reason": SlotExtractor(_cancel_reason, "none of the allowed reasons was found"),
    "address": SlotExtractor(_address, "no 'address:' was found", fields=ADDRESS_FIELDS),
    "item_changes": SlotExtractor(
        _item_changes,
        "no item was named",
        fields=("names", "from", "to", "same", "cheapest", "free"),
    ),
    "item_names": SlotExtractor(_item_names, "no item was named", fields=("names",)),
    "kept_items": SlotExtractor(_kept_items, "nothing to keep was named", fields=("names",)),
    "payment_kind": SlotExtractor(_payment_kind, "no kind of payment was named"),
    "source_order_id": SlotExtractor(_source_order_id, "no order to copy from was named"),
    "summary": SlotExtractor(_summary, "nothing was said"),
}
"""Every extractor a retail template may name."""
