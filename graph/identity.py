"""Who is calling: API keys and bearer tokens mapped to identities with roles.

One identity source for the server and the CLI. The table comes from a JSON or YAML file
named by ``PLANBOUND_AUTH_FILE``, or from JSON inline in ``PLANBOUND_AUTH_TOKENS`` (the file
wins when both are set). Either holds a list of entries, or an object with a ``tokens``
list::

    tokens:
      - identity: ann
        display_name: Ann Reviewer
        roles: [reviewer]
        token_sha256: 5e88...   # hex SHA-256 of the token (preferred), or
      - identity: bob
        roles: [requester]
        token: a-long-random-string

Roles are ``requester``, ``reviewer``, ``supervisor`` and ``admin``. The server's
:class:`TokenTable` is re-read when the file or the variable changes, so keys can be rotated
without a restart; the CLI reads the table once per command (:func:`read_table`). A token
never appears in an error message.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal, get_args

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    model_validator,
)
from pydantic_core import PydanticCustomError

from guards.problems import field_path, unknown_keys
from guards.review import Identity as Reviewer

FILE_ENV = "PLANBOUND_AUTH_FILE"
INLINE_ENV = "PLANBOUND_AUTH_TOKENS"

Role = Literal["requester", "reviewer", "supervisor", "admin"]
ROLES: tuple[str, ...] = get_args(Role)
"""Every role a token may carry."""

REVIEW_ROLES = frozenset({"reviewer", "supervisor", "admin"})
"""Roles that may answer a review (list and resume threads awaiting approval)."""

ROLE_PREFIX = "role:"
"""Roles travel in the user's permissions as ``role:<name>``."""


MAX_TOKEN_CHARS = 4096
"""Longest token accepted."""


class AuthConfigError(ValueError):
    """The token table is missing or malformed; names the entry and the problem."""


class TokenRefused(ValueError):
    """A caller's token is missing, malformed or not in the table (the token is not named)."""


@dataclass(frozen=True)
class Identity:
    """Who a token belongs to and what they may do."""

    identity: str
    display_name: str
    roles: tuple[str, ...]

    @property
    def permissions(self) -> list[str]:
        """The roles as LangGraph permissions (``role:<name>``)."""
        return [f"{ROLE_PREFIX}{r}" for r in self.roles]

    def reviewer(self) -> Reviewer:
        """Return the identity as the review checks take it (who answers, with which roles)."""
        return Reviewer(id=self.identity, roles=tuple(sorted(self.roles)))

    def user(self) -> dict[str, Any]:
        """Return the user object handed to the LangGraph server."""
        return {
            "identity": self.identity,
            "display_name": self.display_name,
            "is_authenticated": True,
            "permissions": self.permissions,
            "roles": list(self.roles),
        }


def digest(token: str) -> str:
    """Return the hex SHA-256 of a token, the form the table is keyed by."""
    return hashlib.sha256(token.encode()).hexdigest()


def clean_token(token: str) -> str:
    """Return a token without surrounding whitespace (a trailing newline from a file).

    Raises:
        TokenRefused: the token is empty, too long, or holds whitespace or control
            characters; the message never quotes it.
    """
    token = token.strip()
    if not token:
        raise TokenRefused("the token is empty")
    if len(token) > MAX_TOKEN_CHARS:
        raise TokenRefused(f"the token is longer than {MAX_TOKEN_CHARS} characters")
    if any(c.isspace() or not c.isprintable() for c in token):
        raise TokenRefused("the token must be one word, without spaces or control characters")
    return token


def find(table: Mapping[str, Identity], token: str) -> Identity | None:
    """Return who holds ``token`` in ``table`` (compared in constant time), or ``None``."""
    wanted = digest(token)
    found = None
    for key, identity in table.items():
        if hmac.compare_digest(key, wanted):
            found = identity
    return found


class TokenEntry(BaseModel):
    """One entry of the table: who holds a token and with which roles."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    identity: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1)] = Field(
        description="Who the token belongs to (recorded as the reviewer or requester)."
    )
    display_name: str | None = Field(default=None, description="A name to show; the identity.")
    roles: list[Role] = Field(min_length=1, description="What the holder may do.")
    token: Annotated[str, Field(min_length=16)] | None = Field(
        default=None, description="The token itself (prefer ``token_sha256``)."
    )
    token_sha256: Annotated[str, Field(pattern=r"^[0-9A-Fa-f]{64}$")] | None = Field(
        default=None, description="The hex SHA-256 of the token."
    )

    @model_validator(mode="after")
    def _one_token(self) -> TokenEntry:
        if (self.token is None) == (self.token_sha256 is None):
            raise PydanticCustomError("one_token", "needs exactly one of 'token' or 'token_sha256'")
        return self

    @property
    def key(self) -> str:
        """The digest the table is keyed by."""
        return digest(self.token) if self.token is not None else str(self.token_sha256).lower()

    def holder(self) -> Identity:
        """Return who holds the token."""
        return Identity(
            identity=self.identity,
            display_name=self.display_name or self.identity,
            roles=tuple(dict.fromkeys(self.roles)),
        )


class TokenDocument(BaseModel):
    """The table as written: ``{"tokens": [...]}``; a bare list stands for ``tokens``.

    Other keys of the object are ignored.
    """

    model_config = ConfigDict(frozen=True)

    tokens: list[TokenEntry]


_FIELD_PROBLEMS = {
    "identity": "must be a non-empty string",
    "display_name": "must be a string",
    "roles": f"must be a non-empty list drawn from {', '.join(ROLES)}",
    "token": "must be a string of at least 16 characters",
    "token_sha256": "must be 64 hex digits",
}


def parse_table(data: Any, source: str) -> dict[str, Identity]:
    """Validate a token table document and return it keyed by token digest.

    Raises:
        AuthConfigError: naming every malformed entry.
    """
    try:
        document = TokenDocument.model_validate(
            data if isinstance(data, Mapping) else {"tokens": data}
        )
    except ValidationError as exc:
        raise AuthConfigError("; ".join(_problems(exc, source))) from None
    table: dict[str, Identity] = {}
    problems: list[str] = []
    for i, entry in enumerate(document.tokens):
        if entry.key in table:
            problems.append(f"{source}: tokens[{i}]: the same token is listed twice")
        else:
            table[entry.key] = entry.holder()
    if problems:
        raise AuthConfigError("; ".join(problems))
    return table


def _problems(exc: ValidationError, source: str) -> list[str]:
    """Name each malformed entry and field, once per field."""
    errors = exc.errors()
    problems = [
        f"{source}: {field_path(parent)} has unknown keys {keys}"
        for parent, keys in unknown_keys(errors).items()
    ]
    named: set[str] = set()
    for err in errors:
        loc = err["loc"]
        if err["type"] == "extra_forbidden":
            continue
        if len(loc) <= 1:
            problems.append(f"{source}: expected a list of tokens or {{'tokens': [...]}}")
            continue
        where = field_path(loc[:2])
        if len(loc) == 2:
            problem = (
                f"{where} must be an object"
                if err["type"] in ("model_type", "model_attributes_type")
                else f"{where} {err['msg']}"
            )
        else:
            problem = f"{where}.{loc[2]} {_FIELD_PROBLEMS[str(loc[2])]}"
        if problem not in named:
            named.add(problem)
            problems.append(f"{source}: {problem}")
    return problems


def _read_file(path: Path) -> Any:
    try:
        text = path.read_text()
    except OSError as exc:
        raise AuthConfigError(f"{FILE_ENV}={path}: cannot read ({exc.strerror})") from exc
    try:
        if path.suffix.lower() == ".json":
            return json.loads(text)
        return yaml.safe_load(text)
    except json.JSONDecodeError as exc:
        raise AuthConfigError(f"{FILE_ENV}={path}: not valid JSON ({exc})") from None
    except yaml.YAMLError as exc:
        # Name the place only: the YAML error's excerpt of the file could show a token.
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise AuthConfigError(f"{FILE_ENV}={path}: not valid YAML{where}") from None


def read_table(path: str | Path | None, inline: str | None) -> dict[str, Identity]:
    """Read the table from a file (it wins), else from inline JSON.

    Args:
        path: The file ``PLANBOUND_AUTH_FILE`` names, or ``None``.
        inline: The JSON ``PLANBOUND_AUTH_TOKENS`` holds, or ``None``.

    Raises:
        AuthConfigError: neither is given, or the one used is unreadable or malformed.
    """
    if path is not None and str(path).strip():
        return parse_table(_read_file(Path(path)), str(path))
    if inline is not None and inline.strip():
        try:
            data = json.loads(inline)
        except json.JSONDecodeError as exc:
            raise AuthConfigError(f"{INLINE_ENV}: not valid JSON ({exc})") from exc
        return parse_table(data, INLINE_ENV)
    raise AuthConfigError(
        f"no tokens configured: set {FILE_ENV} (a JSON/YAML file) or {INLINE_ENV}"
    )


class TokenTable:
    """The process's token table, loaded on first use and reloaded when its source changes."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._key: tuple[Any, ...] | None = None
        self._table: dict[str, Identity] = {}

    def _source_key(self) -> tuple[Any, ...]:
        path = os.environ.get(FILE_ENV, "").strip()
        if path:
            try:
                stat = Path(path).stat()
            except OSError as exc:
                raise AuthConfigError(f"{FILE_ENV}={path}: {exc.strerror}") from exc
            return ("file", path, stat.st_mtime_ns, stat.st_size)
        return ("inline", os.environ.get(INLINE_ENV, ""))

    def load(self) -> dict[str, Identity]:
        """Return the current table (blocking: may read a file).

        Raises:
            AuthConfigError: no source configured, or a malformed one.
        """
        key = self._source_key()
        with self._lock:
            if key == self._key:
                return self._table
            table = read_table(key[1], None) if key[0] == "file" else read_table(None, key[1])
            self._key, self._table = key, table
            return table

    def lookup(self, token: str) -> Identity | None:
        """Return the identity of a token, or ``None`` for an unknown one."""
        return find(self.load(), token)
