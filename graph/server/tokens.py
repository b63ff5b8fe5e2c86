"""The server's view of the token table; the table itself lives in :mod:`graph.identity`."""

from graph.identity import (
    FILE_ENV,
    INLINE_ENV,
    REVIEW_ROLES,
    ROLE_PREFIX,
    ROLES,
    AuthConfigError,
    Identity,
    Role,
    TokenDocument,
    TokenEntry,
    TokenTable,
    digest,
    parse_table,
)

__all__ = [
    "FILE_ENV",
    "INLINE_ENV",
    "REVIEW_ROLES",
    "ROLES",
    "ROLE_PREFIX",
    "AuthConfigError",
    "Identity",
    "Role",
    "TokenDocument",
    "TokenEntry",
    "TokenTable",
    "digest",
    "parse_table",
]
