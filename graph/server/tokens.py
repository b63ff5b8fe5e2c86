"""API keys and bearer tokens mapped to identities with roles.

The table comes from a JSON or YAML file named by ``PLANBOUND_AUTH_FILE``, or from JSON
inline in ``PLANBOUND_AUTH_TOKENS`` (the file wins when both are set). Either holds a list
of entries, or an object with a ``tokens`` list::

    tokens:
      - identity: ann
        display_name: Ann Reviewer
        roles: [reviewer]
        token_sha256: 5e88...   # hex SHA-256 of the token (preferred), or
      - identity: bob
        roles: [requester]
        token: a-long-random-string

Roles are ``requester``, ``reviewer``, ``supervisor`` and ``admin``. The table is re-read
when the file or the variable changes, so keys can be rotated without a restart.
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
from typing import Any

import yaml

FILE_ENV = "PLANBOUND_AUTH_FILE"
INLINE_ENV = "PLANBOUND_AUTH_TOKENS"

ROLES = ("requester", "reviewer", "supervisor", "admin")
"""Every role a token may carry."""

REVIEW_ROLES = frozenset({"reviewer", "supervisor", "admin"})
"""Roles that may answer a review (list and resume threads awaiting approval)."""

ROLE_PREFIX = "role:"
"""Roles travel in the user's permissions as ``role:<name>``."""


class AuthConfigError(ValueError):
    """The token table is missing or malformed; names the entry and the problem."""


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


def parse_table(data: Any, source: str) -> dict[str, Identity]:
    """Validate a token table document and return it keyed by token digest.

    Raises:
        AuthConfigError: naming every malformed entry.
    """
    entries = data.get("tokens") if isinstance(data, Mapping) else data
    if not isinstance(entries, list):
        raise AuthConfigError(f"{source}: expected a list of tokens or {{'tokens': [...]}}")
    table: dict[str, Identity] = {}
    problems: list[str] = []
    for i, entry in enumerate(entries):
        where = f"{source}: tokens[{i}]"
        if not isinstance(entry, Mapping):
            problems.append(f"{where} must be an object")
            continue
        unknown = sorted(
            set(entry) - {"identity", "display_name", "roles", "token", "token_sha256"}
        )
        if unknown:
            problems.append(f"{where} has unknown keys {unknown}")
        identity = entry.get("identity")
        if not isinstance(identity, str) or not identity.strip():
            problems.append(f"{where}.identity must be a non-empty string")
            continue
        roles = entry.get("roles")
        if (
            not isinstance(roles, list)
            or not roles
            or not all(isinstance(r, str) and r in ROLES for r in roles)
        ):
            problems.append(f"{where}.roles must be a non-empty list drawn from {', '.join(ROLES)}")
            continue
        token, hashed = entry.get("token"), entry.get("token_sha256")
        if (token is None) == (hashed is None):
            problems.append(f"{where} needs exactly one of 'token' or 'token_sha256'")
            continue
        if token is not None:
            if not isinstance(token, str) or len(token) < 16:
                problems.append(f"{where}.token must be a string of at least 16 characters")
                continue
            key = digest(token)
        else:
            if not isinstance(hashed, str) or len(hashed) != 64:
                problems.append(f"{where}.token_sha256 must be 64 hex digits")
                continue
            key = hashed.lower()
        if key in table:
            problems.append(f"{where}: the same token is listed twice")
            continue
        name = entry.get("display_name", identity)
        table[key] = Identity(
            identity=identity.strip(),
            display_name=name if isinstance(name, str) and name else identity.strip(),
            roles=tuple(dict.fromkeys(roles)),
        )
    if problems:
        raise AuthConfigError("; ".join(problems))
    return table


def _read_file(path: Path) -> Any:
    try:
        text = path.read_text()
    except OSError as exc:
        raise AuthConfigError(f"{FILE_ENV}={path}: cannot read ({exc.strerror})") from exc
    try:
        if path.suffix.lower() == ".json":
            return json.loads(text)
        return yaml.safe_load(text)
    except (json.JSONDecodeError, yaml.YAMLError) as exc:
        raise AuthConfigError(f"{FILE_ENV}={path}: not valid JSON/YAML ({exc})") from exc


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
            if key[0] == "file":
                table = parse_table(_read_file(Path(key[1])), key[1])
            elif key[1].strip():
                try:
                    data = json.loads(key[1])
                except json.JSONDecodeError as exc:
                    raise AuthConfigError(f"{INLINE_ENV}: not valid JSON ({exc})") from exc
                table = parse_table(data, INLINE_ENV)
            else:
                raise AuthConfigError(
                    f"no tokens configured: set {FILE_ENV} (a JSON/YAML file) or {INLINE_ENV}"
                )
            self._key, self._table = key, table
            return table

    def lookup(self, token: str) -> Identity | None:
        """Return the identity of a token, or ``None`` for an unknown one."""
        wanted = digest(token)
        for key, identity in self.load().items():
            if hmac.compare_digest(key, wanted):
                return identity
        return None
