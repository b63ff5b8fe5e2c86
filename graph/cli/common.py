"""What every ``planbound`` command shares: the Typer apps, options, errors and stores.

Errors a user can fix (bad input, a refused plan, an unusable store) end the command with
exit code 2 and one message: on standard error, or as the ``error`` of the one JSON object
printed with ``--json``.

Who runs a command: with a token table configured (``PLANBOUND_AUTH_FILE`` or
``PLANBOUND_AUTH_TOKENS``) the caller is the holder of ``PLANBOUND_TOKEN`` (or of the token
in ``--token-file``), with that entry's roles, as on the server; without one, the CLI is a
trusted local operator and takes the reviewer and role it is given (:func:`caller`).
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, NoReturn, TypeVar

import typer
from rich.console import Console
from rich.markup import escape

from checkpoints.factory import Stores, damaged_files, damaged_message, sqlite_problem
from graph.errors import USER_ERRORS
from graph.identity import (
    FILE_ENV,
    INLINE_ENV,
    REVIEW_ROLES,
    Identity,
    TokenRefused,
    clean_token,
    find,
    read_table,
)
from graph.runner import Runner
from graph.services import Services
from graph.settings import Settings

T = TypeVar("T")

app = typer.Typer(
    name="planbound",
    help="Governed agent runs: plan, verify, approve, execute.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
db_app = typer.Typer(help="Set up and maintain the databases.", no_args_is_help=True)
policy_app = typer.Typer(help="Inspect and test the Rego policy.", no_args_is_help=True)

out = Console()
"""Where results are printed."""
err = Console(stderr=True)
"""Where errors are printed."""

JsonOpt = Annotated[bool, typer.Option("--json", help="Print exactly one JSON object.")]
HomeOpt = Annotated[
    Path | None,
    typer.Option("--home", help="Data directory (default $PLANBOUND_HOME or ./.planbound)."),
]

TokenFileOpt = Annotated[
    Path | None,
    typer.Option(
        "--token-file",
        help="File holding your token (default $PLANBOUND_TOKEN); used with a token table.",
    ),
]

TOKEN_ENV = "PLANBOUND_TOKEN"
LOCAL_MODE = f"local mode: reviewer and role are taken as given; configure {FILE_ENV} to check them"
"""Said once on standard error by a command that answers reviews without a token table."""


class UsageError(Exception):
    """Bad input from the command line."""


def emit(document: Any) -> None:
    """Print ``document`` as the command's one JSON object (``str`` for unknown types)."""
    print(json.dumps(document, default=str))


def print_error(message: str) -> None:
    """Print an error message to standard error, as text (no markup is interpreted)."""
    err.print(f"[bold red]error:[/] {escape(message)}", highlight=False)


_REPORTED: tuple[type[Exception], ...] = (*USER_ERRORS, UsageError, ValueError, OSError)
"""Failures a command reports as a clear error (exit 2) instead of a traceback."""

_HOMES: list[Path] = []
"""Data directories the command opened: where a SQLite failure is looked for."""


def storage_problem(exc: sqlite3.DatabaseError) -> str:
    """Explain a SQLite failure met mid-command: name a damaged file and how to recover."""
    for home in _HOMES:
        for path, problem in damaged_files(home).items():
            return damaged_message(path, problem)
    return sqlite_problem(_HOMES[0] if _HOMES else Path("."), exc)


def fail(message: str, as_json: bool, **extra: Any) -> NoReturn:
    """Report an error and end the command with exit code 2.

    Args:
        message: What went wrong.
        as_json: Print ``{"status": null, **extra, "error": message}`` instead of text.
        **extra: Fields added to the JSON object (e.g. ``thread_id``).

    Raises:
        typer.Exit: Always, with code 2.
    """
    if as_json:
        print(json.dumps({"status": None, **extra, "error": message}))
    else:
        print_error(message)
    raise typer.Exit(2)


def guarded(as_json: bool, action: Callable[[], T], **extra: Any) -> T:
    """Run ``action``; a user error ends the command through :func:`fail`.

    Args:
        as_json: Whether errors are reported as JSON.
        action: The work to do.
        **extra: Fields added to a JSON error report.

    Returns:
        What ``action`` returned.
    """
    try:
        return action()
    except _REPORTED as exc:
        fail(str(exc), as_json, **extra)
    except sqlite3.DatabaseError as exc:
        fail(storage_problem(exc), as_json, **extra)


PlannerOpt = Annotated[
    str | None,
    typer.Option(
        "--planner",
        help="auto (templates, else the LLM if its risk tier allows), template or llm "
        "(default $PLANBOUND_PLANNER or auto).",
    ),
]


def home_services(
    home: Path | None, readonly: bool = False, *, planner: str | None = None
) -> Services:
    """The services of a data directory (``--home``, else ``PLANBOUND_HOME``).

    With ``readonly`` (a command that only reads) the stores are opened read-only: no
    migration, no write lock, no writable directory needed. ``planner`` (``--planner``) is
    used instead of ``PLANBOUND_PLANNER``.

    Raises:
        ConfigError: a setting in the environment (or ``--planner``) is malformed.
    """
    overrides: dict[str, Any] = {"home": home} if home is not None else {}
    if planner is not None:
        overrides["planner"] = planner
    settings = Settings.load(**overrides)
    _HOMES.append(settings.home)
    return Services(settings, readonly=readonly)


def home_stores(home: Path | None) -> Stores:
    """Open the stores of a data directory (``--home``, else the default)."""
    return home_services(home).stores


def home_runner(home: Path | None, readonly: bool = False, *, planner: str | None = None) -> Runner:
    """Build a runner on the services of a data directory (see :func:`home_services`)."""
    return Runner(services=home_services(home, readonly, planner=planner))


def caller(settings: Settings, token_file: Path | None) -> Identity | None:
    """Return who runs the command, or ``None`` for a trusted local operator.

    With a token table configured the caller must hold a token in it: the one in
    ``token_file``, else ``PLANBOUND_TOKEN``. Without a table, no token may be given: it
    could not be checked.

    Raises:
        TokenRefused: no token, an unknown one, or a token given with no table to check it.
        AuthConfigError: the table is unreadable or malformed.
    """
    given = settings.token.get_secret_value() if settings.token is not None else None
    if token_file is not None:
        given = _read_token(token_file)
    if not settings.has_token_table:
        if given is not None:
            source = "--token-file" if token_file is not None else TOKEN_ENV
            raise TokenRefused(
                f"{source} gives a token but no token table is configured to check it: "
                f"set {FILE_ENV} (or {INLINE_ENV}), or drop the token"
            )
        return None
    if given is None:
        raise TokenRefused(
            f"a token table is configured ({FILE_ENV} or {INLINE_ENV}): "
            f"set {TOKEN_ENV} or give --token-file PATH"
        )
    inline = settings.auth_tokens.get_secret_value() if settings.auth_tokens else None
    holder = find(read_table(settings.auth_file, inline), given)
    if holder is None:
        raise TokenRefused(
            f"unknown token: it is not in the token table ({FILE_ENV} or {INLINE_ENV})"
        )
    return holder


def reviewing_caller(settings: Settings, token_file: Path | None) -> Identity | None:
    """Return who answers a review (see :func:`caller`); in local mode, say it once.

    Raises:
        TokenRefused: as :func:`caller`, or the token's holder has no reviewing role.
    """
    holder = caller(settings, token_file)
    if holder is None:
        say_local_mode()
    elif not REVIEW_ROLES & set(holder.roles):
        raise TokenRefused(
            f"{holder.identity} may not answer a review: it needs the "
            f"{', '.join(sorted(REVIEW_ROLES))} role (the token carries "
            f"{', '.join(holder.roles)})"
        )
    return holder


def say_local_mode() -> None:
    """Say on standard error that reviewers and roles are taken as given (no token table)."""
    err.print(escape(LOCAL_MODE), highlight=False, soft_wrap=True)


def _read_token(path: Path) -> str:
    """Read a token from a file (never from the command line, where ``ps`` shows it)."""
    try:
        text = path.read_text()
    except OSError as exc:
        raise TokenRefused(f"--token-file {path}: cannot read ({exc.strerror})") from None
    except UnicodeDecodeError:
        raise TokenRefused(f"--token-file {path}: not a text file") from None
    try:
        return clean_token(text)
    except TokenRefused as exc:
        raise TokenRefused(f"--token-file {path}: {exc}") from None
