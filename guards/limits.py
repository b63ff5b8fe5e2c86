"""Limits on what callers send: size and nesting of documents, length of names and texts.

A document is measured before it is parsed further, without recursion, so one nested a
hundred thousand levels deep (or one that contains itself) is refused with the limit named
instead of exhausting the stack in a JSON encoder or a validator.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

MAX_DEPTH = 32
"""Deepest nesting of objects and lists in a plan or a review answer (the top level is 1)."""

MAX_PLAN_BYTES = 256 * 1024
"""Largest plan document, in bytes of compact UTF-8 JSON."""

MAX_ANSWER_BYTES = 64 * 1024
"""Largest review answer, in bytes of compact UTF-8 JSON."""

MAX_NAME_CHARS = 512
"""Longest reviewer name, role or actor, in characters."""

MAX_MESSAGE_CHARS = 4000
"""Longest reject message, in characters."""

MAX_REQUEST_CHARS = 4000
"""Longest request in words, in characters."""

_SCALAR_SIZES = {True: 4, False: 5, None: 4}
_EXACT_INT_BITS = 10_000
"""Integers up to this many bits are counted digit by digit (Python refuses 4300+ digits)."""


def document_problem(
    value: Any, what: str, max_bytes: int, max_depth: int = MAX_DEPTH
) -> str | None:
    """Say why ``value`` is too deep or too large, or return ``None`` when it fits.

    The size is that of the compact JSON encoding (``separators=(",", ":")``, UTF-8),
    counted as the walk goes, which stops at the first limit crossed. Values JSON cannot
    encode are counted by their ``repr``.

    Args:
        value: The document, as decoded JSON (objects, lists and scalars).
        what: How the problem names the document, e.g. ``"the plan"``.
        max_bytes: The size limit.
        max_depth: The nesting limit.

    Returns:
        The problem, naming the limit, or ``None``.
    """
    size = 0
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, Mapping | list | tuple):
            depth += 1
            if depth > max_depth:
                return f"{what} is nested more than {max_depth} levels deep (the limit)"
            size += 2 + max(len(item) - 1, 0)
            if isinstance(item, Mapping):
                for key, child in item.items():
                    size += _scalar_size(str(key)) + 1
                    stack.append((child, depth))
            else:
                stack.extend((child, depth) for child in item)
        else:
            size += _scalar_size(item)
        if size > max_bytes:
            return f"{what} is larger than {_bytes(max_bytes)} as JSON (the limit)"
    return None


def text_problem(value: Any, what: str, max_chars: int) -> str | None:
    """Say why a string is too long, or return ``None`` (non-strings are someone else's case)."""
    if isinstance(value, str) and len(value) > max_chars:
        return f"{what} has {len(value)} characters; the limit is {max_chars}"
    return None


def _scalar_size(value: Any) -> int:
    if value is None or isinstance(value, bool):
        return _SCALAR_SIZES[value]
    if isinstance(value, str):
        return len(json.dumps(value, ensure_ascii=False).encode())
    if isinstance(value, int):
        if value.bit_length() <= _EXACT_INT_BITS:
            return len(str(value))
        # Estimated from the bit length: a huge int cannot be turned into digits at all.
        return int(value.bit_length() * 0.30103)
    if isinstance(value, float):
        return len(json.dumps(value))
    return len(repr(value))


def _bytes(count: int) -> str:
    return f"{count // 1024} KiB" if count % 1024 == 0 else f"{count} bytes"
