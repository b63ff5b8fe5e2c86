"""The ``planbound`` command line.

The command tree is assembled here; each command lives in the module of its concern:
:mod:`~graph.cli.runs` (runs and threads), :mod:`~graph.cli.data` (domain data and
databases), :mod:`~graph.cli.demo`, :mod:`~graph.cli.policy`, :mod:`~graph.cli.audit`,
:mod:`~graph.cli.planning` (preview a plan; answer a request for one).
:mod:`~graph.cli.common` holds what they share, :mod:`~graph.cli.answers` turns ``approve``
options into a review answer and :mod:`~graph.cli.render` prints outcomes and reports.
"""

from __future__ import annotations

import json
import sqlite3
import sys
from importlib.metadata import entry_points

from graph.cli import audit, data, demo, planning, policy, report, runs
from graph.cli.common import app, db_app, policy_app, print_error, storage_problem
from graph.errors import USER_ERRORS
from graph.tracing import flush_all

__all__ = ["app", "main"]

app.command("seed")(data.seed_cmd)
app.command("export")(data.export_cmd)
app.command("run")(runs.run_cmd)
app.command("plan")(planning.plan_cmd)
app.command("give-plan")(planning.give_plan_cmd)
app.command("approve")(runs.approve_cmd)
app.command("resume")(runs.resume_cmd)
app.command("status")(runs.status_cmd)
app.command("history")(runs.history_cmd)
app.command("replay")(runs.replay_cmd)
app.command("rollback")(runs.rollback_cmd)
app.command("audit")(audit.audit_cmd)
app.command("demo")(demo.demo_cmd)
app.command("report")(report.report_cmd)

app.add_typer(db_app, name="db")
db_app.command("init")(data.db_init_cmd)
db_app.command("prune")(data.db_prune_cmd)

app.add_typer(policy_app, name="policy")
policy_app.command("explain")(policy.explain_cmd)
policy_app.command("test")(policy.test_cmd)


def _add_plugin_commands() -> None:
    """Add the commands installed packages contribute (entry point group ``planbound.commands``).

    Each entry point is a ``register(app)`` function; ``planbound eval`` comes this way from
    the evaluations package, which the product itself never imports. A plug-in that cannot be
    loaded is named on standard error and left out; the other commands still work.
    """
    for entry in entry_points(group="planbound.commands"):
        try:
            entry.load()(app)
        except Exception as exc:  # a broken plug-in never takes the CLI down
            print_error(f"the {entry.name!r} command is unavailable ({type(exc).__name__}: {exc})")


_add_plugin_commands()


def main() -> None:
    """Entry point of the ``planbound`` console script."""
    try:
        app()
    except USER_ERRORS as exc:  # e.g. an unreachable database or a bad setting
        if "--json" in sys.argv[1:]:
            print(json.dumps({"status": None, "error": str(exc)}))
        else:
            print_error(str(exc))
        sys.exit(2)
    except sqlite3.DatabaseError as exc:
        message = storage_problem(exc)
        if "--json" in sys.argv[1:]:
            print(json.dumps({"status": None, "error": message}))
        else:
            print_error(message)
        sys.exit(2)
    finally:
        flush_all()  # traces still queued leave before the process does
