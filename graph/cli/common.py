"""What every ``planbound`` command shares: the Typer apps, options, errors and stores.

Errors a user can fix (bad input, a refused plan, an unusable store) end the command with
exit code 2 and one message: on standard error, or as the ``error`` of the one JSON object
printed with ``--json``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, NoReturn, TypeVar

import typer
from rich.console import Console
from rich.markup import escape

from checkpoints.factory import Stores
from graph.errors import USER_ERRORS
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


def home_services(home: Path | None) -> Services:
    """The services of a data directory (``--home``, else ``PLANBOUND_HOME``).

    Raises:
        ConfigError: a setting in the environment is malformed.
    """
    return Services(Settings.load(**({"home": home} if home is not None else {})))


def home_stores(home: Path | None) -> Stores:
    """Open the stores of a data directory (``--home``, else the default)."""
    return home_services(home).stores


def home_runner(home: Path | None) -> Runner:
    """Build a runner on the services of a data directory."""
    return Runner(services=home_services(home))
