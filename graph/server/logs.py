"""Keep credentials sent in a URL out of the server's logs.

A token belongs in a header; one sent as ``?token=...`` or ``?api_key=...`` is refused
(401), but the LangGraph server's access log (logger ``langgraph_api.server``, a structlog
event with ``query_string``) and uvicorn's (``uvicorn.access``, the request line) would write
it as sent. :class:`RedactSecrets` replaces the value of such query parameters with
``[REDACTED]`` in every record it sees: it is attached to the access loggers themselves and
to the root logger's handlers, so records from any logger that reach them are covered.
"""

from __future__ import annotations

import logging
import re
from typing import Any

SECRET_PARAMS = (
    "token",
    "access_token",
    "refresh_token",
    "id_token",
    "auth_token",
    "api_key",
    "apikey",
    "api-key",
    "x-api-key",
    "authorization",
    "password",
    "secret",
    "client_secret",
)
"""Query parameters whose value is a credential (matched without regard to case)."""

REDACTED = "[REDACTED]"
"""What a credential's value is replaced with."""

ACCESS_LOGGERS = ("langgraph_api.server", "uvicorn.access")
"""Loggers that write request lines: the LangGraph server's access log and uvicorn's."""

_PARAM = re.compile(
    r"(?<![\w.-])(" + "|".join(re.escape(p) for p in SECRET_PARAMS) + r")=[^&;#\s\"']*",
    re.IGNORECASE,
)


def redact(text: str) -> str:
    """Return ``text`` with the value of every credential query parameter replaced."""
    return _PARAM.sub(lambda m: f"{m.group(1)}={REDACTED}", text)


def _scrub(value: Any) -> Any:
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, bytes):
        return redact(value.decode("utf-8", "replace"))
    if isinstance(value, dict):
        return {k: _scrub(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_scrub(v) for v in value)
    return value


class RedactSecrets(logging.Filter):
    """A filter that redacts credential query parameters from a record; it drops nothing.

    It rewrites the message (a string, or the event dict a structlog logger hands to the
    standard library), its arguments, and the ``query_string``-like attributes some
    formatters read from the record itself.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        """Redact ``record`` in place and keep it."""
        record.msg = _scrub(record.msg)
        if record.args:
            record.args = _scrub(record.args)
        for name in ("query_string", "path", "url", "request_line"):
            if isinstance(getattr(record, name, None), (str, bytes)):
                setattr(record, name, _scrub(getattr(record, name)))
        return True


FILTER = RedactSecrets()
"""The one filter installed by :func:`install`."""


def _targets() -> list[logging.Filterer]:
    return [*(logging.getLogger(n) for n in ACCESS_LOGGERS), *logging.getLogger().handlers]


def install() -> None:
    """Attach the filter to the access loggers and to the root logger's handlers."""
    for target in _targets():
        target.addFilter(FILTER)


def uninstall() -> None:
    """Detach the filter from wherever :func:`install` attached it."""
    for target in _targets():
        target.removeFilter(FILTER)
