"""The ``planbound`` command line."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from rich.console import Console
from rich.table import Table

from checkpoints.factory import StorageError, Stores, open_stores, planbound_home
from checkpoints.retention import prune
from graph.context import Context
from graph.runner import RunError, Runner
from guards.errors import GuardError
from guards.policy import PolicyBundle, run_tests
from tools.retail import RetailDB, load_shipped, seed, tau2_hash
from tools.retail import export as export_domain

app = typer.Typer(
    name="planbound",
    help="Governed agent runs: plan, verify, approve, execute.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
out = Console()
err = Console(stderr=True)

JsonOpt = Annotated[bool, typer.Option("--json", help="Print exactly one JSON object.")]
HomeOpt = Annotated[
    Path | None,
    typer.Option("--home", help="Data directory (default $PLANBOUND_HOME or ./.planbound)."),
]


class UsageError(Exception):
    """Bad input from the command line."""


def _fail(message: str, as_json: bool, **extra: Any) -> NoReturn:
    if as_json:
        print(json.dumps({"status": None, **extra, "error": message}))
    else:
        err.print(f"[bold red]error:[/] {message}", highlight=False)
    raise typer.Exit(2)


def _guarded(as_json: bool, action: Callable[[], Any], **extra: Any) -> Any:
    try:
        return action()
    except (GuardError, UsageError, ValueError, OSError, StorageError) as exc:
        _fail(str(exc), as_json, **extra)


def _stores(home: Path | None) -> Stores:
    return open_stores(planbound_home(home))


def _runner(home: Path | None) -> Runner:
    stores = _stores(home)
    return Runner(stores, Context(home=str(stores.home)))


DEMO_ORDER = "#W2974929"
DEMO_REQUEST = (
    "Hi, I'm fatima.anderson1447@example.com. Please cancel my order #W2974929, "
    "reason: no longer needed."
)


@app.command("seed")
def seed_cmd(
    source: Annotated[
        Path | None, typer.Option("--from", help="A τ²-format db.json (default: shipped data).")
    ] = None,
    home: HomeOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """(Re)create the domain database from τ²-bench retail data."""

    def load() -> dict[str, Any]:
        if source is None:
            return load_shipped()
        if not source.is_file():
            raise UsageError(f"--from {source}: no such file")
        try:
            data = json.loads(source.read_text())
        except json.JSONDecodeError as exc:
            raise UsageError(f"--from {source}: not JSON ({exc})") from exc
        missing = {"users", "orders", "products"} - set(data if isinstance(data, dict) else {})
        if missing:
            raise UsageError(f"--from {source}: missing {sorted(missing)}")
        return dict(data)

    data = _guarded(as_json, load)
    stores = _stores(home)
    with stores.lock:
        seed(stores.domain, data)
    summary = {
        "home": str(stores.home),
        "users": len(data["users"]),
        "orders": len(data["orders"]),
        "products": len(data["products"]),
        "tau2_hash": tau2_hash(data),
    }
    if as_json:
        print(json.dumps(summary))
    else:
        out.print(
            f"seeded {summary['users']} users, {summary['orders']} orders, "
            f"{summary['products']} products into {stores.home / 'domain.sqlite'}\n"
            f"τ² db hash {summary['tau2_hash']}"
        )


@app.command("export")
def export_cmd(
    dest: Annotated[
        Path | None, typer.Option("--out", help="Write here instead of standard output.")
    ] = None,
    home: HomeOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Write the domain's current state as τ²-format JSON."""
    stores = _stores(home)
    with stores.lock:
        data = _guarded(as_json, lambda: export_domain(stores.domain))
    digest = tau2_hash(data)
    if dest is None and not as_json:
        print(json.dumps(data, indent=2))
        return
    if dest is not None:
        dest.write_text(json.dumps(data, indent=2) + "\n")
    summary = {"path": str(dest) if dest else None, "tau2_hash": digest}
    if as_json:
        if dest is None:
            summary["data"] = data
        print(json.dumps(summary))
    else:
        out.print(f"wrote {dest}\nτ² db hash {digest}")


@app.command("run")
def run_cmd(
    request: Annotated[str | None, typer.Argument(help="The request, in words.")] = None,
    plan_file: Annotated[
        Path | None, typer.Option("--plan", help="A plan as JSON (steps or τ² actions).")
    ] = None,
    thread: Annotated[str | None, typer.Option("--thread", help="Thread id to use.")] = None,
    actor: Annotated[str | None, typer.Option("--actor", help="Who is asking.")] = None,
    home: HomeOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Plan, verify and run a request; stops when a step needs approval."""

    def go() -> dict[str, Any]:
        if (request is None) == (plan_file is None):
            raise UsageError("give a REQUEST or --plan FILE (exactly one)")
        document = None
        if plan_file is not None:
            if not plan_file.is_file():
                raise UsageError(f"--plan {plan_file}: no such file")
            try:
                document = json.loads(plan_file.read_text())
            except json.JSONDecodeError as exc:
                raise UsageError(f"--plan {plan_file}: not JSON ({exc})") from exc
        return _runner(home).start(
            request=request, explicit_plan=document, thread_id=thread, actor=actor
        )

    _show(_guarded(as_json, go, thread_id=thread), as_json)


@app.command("approve")
def approve_cmd(
    thread: Annotated[str, typer.Argument(help="Thread awaiting approval.")],
    reviewer: Annotated[str, typer.Option("--reviewer", help="Your name (recorded).")] = "",
    role: Annotated[
        str, typer.Option("--role", help="Your role: reviewer, supervisor or admin.")
    ] = "reviewer",
    all_steps: Annotated[bool, typer.Option("--all", help="Answer every pending step.")] = False,
    step: Annotated[str | None, typer.Option("--step", help="Answer one step.")] = None,
    yes: Annotated[bool, typer.Option("--approve", help="Approve.")] = False,
    edit: Annotated[
        str | None,
        typer.Option("--edit", help='New arguments as JSON, e.g. \'{"reason": "..."}\'.'),
    ] = None,
    reject: Annotated[str | None, typer.Option("--reject", help="Reject, with a reason.")] = None,
    payload: Annotated[
        str | None,
        typer.Option("--payload", help="A raw human-in-the-loop answer as JSON (advanced)."),
    ] = None,
    home: HomeOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Answer a pending review: approve, edit or reject."""

    def answer() -> Any:
        if payload is not None:
            if all_steps or step or yes or edit is not None or reject is not None:
                raise UsageError("--payload cannot be combined with other answer options")
            try:
                return json.loads(payload)
            except json.JSONDecodeError as exc:
                raise UsageError(f"--payload is not JSON ({exc})") from exc
        if not reviewer.strip():
            raise UsageError("--reviewer NAME is required")
        if all_steps == (step is not None):
            raise UsageError("give --all or --step ID (exactly one)")
        if sum([yes, edit is not None, reject is not None]) != 1:
            raise UsageError("give exactly one of --approve, --edit JSON, --reject MSG")
        if edit is not None and all_steps:
            raise UsageError("--edit applies to one step: use --step ID")
        decision: dict[str, Any] = {"type": "approve"}
        if reject is not None:
            decision = {"type": "reject", "message": reject}
        if edit is not None:
            try:
                edited = json.loads(edit)
            except json.JSONDecodeError as exc:
                raise UsageError(f"--edit is not JSON ({exc})") from exc
            if not isinstance(edited, dict):
                raise UsageError("--edit must be a JSON object of arguments")
            action = edited if "arguments" in edited else {"arguments": edited}
            decision = {"type": "edit", "edited_action": action}
        if step is not None:
            return {
                "decisions": [{**decision, "step_id": step}],
                "reviewer": reviewer,
                "role": role,
            }
        pending = runner.outcome(thread)["pending"]
        if not pending:
            raise RunError(f"thread {thread} is not awaiting approval")
        return {
            "decisions": [{**decision, "step_id": p["step_id"]} for p in pending],
            "reviewer": reviewer,
            "role": role,
        }

    runner = _guarded(as_json, lambda: _runner(home), thread_id=thread)
    body = _guarded(as_json, answer, thread_id=thread)
    _show(_guarded(as_json, lambda: runner.resume(thread, body), thread_id=thread), as_json)


@app.command("resume")
def resume_cmd(
    thread: Annotated[str, typer.Argument(help="Thread that stopped mid-way.")],
    home: HomeOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Continue a run that stopped mid-way (crash, lost connection) from its last checkpoint."""
    runner = _guarded(as_json, lambda: _runner(home), thread_id=thread)
    _show(_guarded(as_json, lambda: runner.proceed(thread), thread_id=thread), as_json)


@app.command("status")
def status_cmd(
    thread: Annotated[str, typer.Argument(help="Thread id.")],
    home: HomeOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Show where a thread stands."""
    runner = _runner(home)
    _show(_guarded(as_json, lambda: runner.outcome(thread), thread_id=thread), as_json)


@app.command("history")
def history_cmd(
    thread: Annotated[str, typer.Argument(help="Thread id.")],
    limit: Annotated[int, typer.Option("--limit", min=1, help="Most checkpoints shown.")] = 50,
    home: HomeOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """List a thread's checkpoints, newest first."""
    runner = _runner(home)

    def rows() -> list[dict[str, Any]]:
        found = []
        for row in runner.history(thread):
            found.append(row)
            if len(found) >= limit:
                break
        return found

    found = _guarded(as_json, rows, thread_id=thread)
    if as_json:
        print(json.dumps({"thread_id": thread, "checkpoints": found}, default=str))
        return
    table = Table(title=f"thread {thread}")
    for col in ("step", "source", "next", "status", "ledger", "checkpoint"):
        table.add_column(col, overflow="fold", no_wrap=col == "checkpoint")
    short = {"succeeded": "ok", "compensated": "undone", "failed": "failed"}
    for r in found:
        table.add_row(
            str(r["step"]),
            str(r["source"]),
            ", ".join(r["next"]) or "-",
            str(r["status"]) + (" (interrupted)" if r["interrupted"] else ""),
            " ".join(f"{sid}:{short.get(st, st)}" for sid, st in r["ledger"].items()) or "-",
            str(r["checkpoint_id"]),
        )
    out.print(table)


@app.command("replay")
def replay_cmd(
    thread: Annotated[str, typer.Argument(help="Thread id.")],
    checkpoint: Annotated[str, typer.Option("--checkpoint", help="Checkpoint id to re-run from.")],
    live: Annotated[
        bool,
        typer.Option("--live", help="Allow writes that never ran (after a new approval)."),
    ] = False,
    home: HomeOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Re-run a thread from a checkpoint; safe mode serves recorded outcomes, calls no writes."""
    runner = _guarded(as_json, lambda: _runner(home), thread_id=thread)
    outcome = _guarded(
        as_json, lambda: runner.replay(thread, checkpoint, live=live), thread_id=thread
    )
    _show(outcome, as_json)


@app.command("rollback")
def rollback_cmd(
    thread: Annotated[str, typer.Argument(help="Thread id.")],
    to: Annotated[str, typer.Option("--to", help="Checkpoint id to roll back to.")],
    home: HomeOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Undo the writes applied after a checkpoint (newest first), then fork back to it."""
    runner = _guarded(as_json, lambda: _runner(home), thread_id=thread)
    report = _guarded(as_json, lambda: runner.rollback(thread, to), thread_id=thread)
    if as_json:
        print(json.dumps(report))
    else:
        colour = "green" if report["status"] == "rolled_back" else "red"
        out.print(f"thread {thread}: [bold {colour}]{report['status']}[/]", highlight=False)
        for key in ("undone", "irreversible", "conflicts"):
            for line in report[key]:
                out.print(f"{key}: {line}", highlight=False)
        if report["forked_checkpoint"]:
            out.print(f"thread now at {report['forked_checkpoint']} (copy of {to})")
    if report["status"] != "rolled_back":
        raise typer.Exit(1)


db_app = typer.Typer(help="Set up and maintain the databases.", no_args_is_help=True)
app.add_typer(db_app, name="db")


@db_app.command("init")
def db_init_cmd(home: HomeOpt = None, as_json: JsonOpt = False) -> None:
    """Create or migrate the checkpointer and domain tables (SQLite or DATABASE_URI)."""
    stores = _guarded(as_json, lambda: _stores(home))
    with stores.lock:
        versions = [
            int(r[0]) for r in stores.domain.execute("SELECT version FROM schema_migrations")
        ]
    report = {
        "backend": stores.backend,
        "home": str(stores.home),
        "schema_versions": sorted(versions),
    }
    stores.close()
    if as_json:
        print(json.dumps(report))
    else:
        out.print(
            f"{report['backend']} ready; schema versions {report['schema_versions']}",
            highlight=False,
        )


@db_app.command("prune")
def db_prune_cmd(
    older_than: Annotated[
        float, typer.Option("--older-than", min=0, help="Age in days of finished threads.")
    ],
    keep_latest: Annotated[
        bool, typer.Option("--keep-latest", help="Keep each thread's final checkpoint.")
    ] = False,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Count only.")] = False,
    home: HomeOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Delete checkpoints of finished threads; the ledger and approvals are kept."""
    runner = _guarded(as_json, lambda: _runner(home))
    report = prune(runner.stores, runner.graph, older_than, keep_latest, dry_run)
    if as_json:
        print(json.dumps(report.__dict__))
    else:
        verb = "would delete" if dry_run else "deleted"
        out.print(
            f"{verb} {report.checkpoints_deleted} checkpoints of {report.threads_pruned} "
            f"finished threads ({report.threads_seen} seen); ledger and approvals kept"
        )


@app.command("demo")
def demo_cmd(
    home: HomeOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Seed the shipped data, plan a cancellation, approve it and show the change."""
    stores = _stores(home)
    with stores.lock:
        seed(stores.domain, load_shipped())
    runner = Runner(stores, Context(home=str(stores.home)))
    request = DEMO_REQUEST
    orders_before = _order(stores, DEMO_ORDER)
    first = runner.start(request=request, actor="demo")
    steps: list[dict[str, Any]] = [first]
    final = first
    if first["status"] == "awaiting_approval":
        final = runner.resume(
            first["thread_id"],
            {
                "decisions": [{"type": "approve"}] * len(first["pending"]),
                "reviewer": "demo-reviewer",
            },
        )
        steps.append(final)
    orders_after = _order(stores, DEMO_ORDER)
    if as_json:
        print(json.dumps({**final, "before": orders_before, "after": orders_after}))
        return
    out.rule("planbound demo")
    out.print(f"request: {request!r}")
    _show(first, False)
    if len(steps) > 1:
        out.print("[bold]approved[/] by demo-reviewer")
        _show(final, False)
    out.print(
        f"order {DEMO_ORDER} status: {orders_before.get('status')} -> {orders_after.get('status')}"
    )


def _order(stores: Stores, order_id: str) -> dict[str, Any]:
    with stores.lock:
        return RetailDB(stores.domain).get_order(order_id) or {}


def _show(outcome: dict[str, Any], as_json: bool) -> None:
    if as_json:
        print(json.dumps(outcome, default=str))
        return
    colour = {
        "completed": "green",
        "awaiting_approval": "yellow",
        "rolled_back": "magenta",
    }.get(str(outcome["status"]), "red")
    out.print(
        f"thread [bold]{outcome['thread_id']}[/]  status [bold {colour}]{outcome['status']}[/]",
        highlight=False,
    )
    plan = outcome.get("plan")
    if plan:
        table = Table(title=f"plan {plan['id']} ({plan['source']})")
        for col in ("step", "tool", "args", "after"):
            table.add_column(col)
        for s in plan["steps"]:
            table.add_row(s["id"], s["tool"], json.dumps(s["args"]), ", ".join(s["depends_on"]))
        out.print(table)
    if outcome.get("pending"):
        table = Table(title="awaiting approval")
        for col in ("step", "tool", "args", "why"):
            table.add_column(col)
        for p in outcome["pending"]:
            table.add_row(p["step_id"], p["tool"], json.dumps(p["args"]), p["reason"])
        out.print(table)
        out.print(
            f"answer with: planbound approve {outcome['thread_id']} --all --approve --reviewer NAME"
        )
    if outcome.get("results"):
        table = Table(title="results")
        for col in ("step", "tool", "ok", "output / error"):
            table.add_column(col)
        for r in outcome["results"]:
            text = json.dumps(r.get("output")) if r["ok"] else str(r.get("error"))
            table.add_row(
                r["step_id"],
                r["tool"],
                "yes" if r["ok"] else "no",
                text if len(text) < 100 else text[:97] + "...",
            )
        out.print(table)
    for line in outcome.get("compensation") or []:
        out.print(f"compensation: {line}")
    if outcome.get("review_error"):
        out.print(f"[red]last answer was invalid:[/] {outcome['review_error']}")
    if outcome.get("error"):
        out.print(f"[red]{outcome['error']}[/]", highlight=False)


policy_app = typer.Typer(help="Inspect and test the Rego policy.", no_args_is_help=True)
app.add_typer(policy_app, name="policy")


@policy_app.command("explain")
def policy_explain_cmd(
    plan_file: Annotated[Path, typer.Option("--plan", help="A plan document (JSON).")],
    actor: Annotated[
        str | None, typer.Option("--actor", help="Who asks (for approval rules).")
    ] = None,
    home: HomeOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Show, for every step, each policy rule that fired and why (nothing is run)."""

    def go() -> dict[str, Any]:
        if not plan_file.is_file():
            raise UsageError(f"plan file {plan_file} does not exist")
        try:
            document = json.loads(plan_file.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise UsageError(f"plan file {plan_file} is not JSON ({exc})") from exc
        return _runner(home).explain(document, actor=actor)

    report = _guarded(as_json, go)
    if as_json:
        print(json.dumps(report))
        return
    colour = {"allow": "green", "needs_approval": "yellow"}.get(report["outcome"], "red")
    out.print(
        f"plan {report['plan_id']}: [bold {colour}]{report['outcome']}[/]  "
        f"(policy {report['policy_version']}, catalog {report['catalog_version']}, "
        f"facts {report['facts_hash']})",
        highlight=False,
    )
    for finding in report["contracts"]:
        out.print(f"[red]contract:[/] {finding}", highlight=False)
    table = Table(show_lines=True)
    for column in ("step", "tool", "outcome", "rule", "why"):
        table.add_column(column, overflow="fold")
    for step in report["steps"]:
        fired = [("deny", d) for d in step["deny"]] + [
            ("approve", a) for a in step["needs_approval"]
        ]
        if not fired:
            table.add_row(step["step"], step["tool"], "allow", "-", "no rule fired")
        for kind, rule in fired:
            why = rule["reason"]
            if kind == "approve":
                why += f" (approver roles: {', '.join(rule['roles'])})"
            table.add_row(step["step"], step["tool"], step["outcome"], rule["rule"], why)
    out.print(table)


@policy_app.command("test")
def policy_test_cmd(
    policy_dir: Annotated[
        Path | None,
        typer.Option("--dir", help="Policy directory (default: $PLANBOUND_POLICY_DIR or shipped)."),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Run the policy's Rego unit tests (``*_test.rego``); exit 1 if any fails."""
    bundle = _guarded(as_json, lambda: PolicyBundle.load(policy_dir or _policy_dir()))
    results = _guarded(as_json, lambda: run_tests(bundle))
    failed = [r for r in results if not r.passed]
    if as_json:
        print(
            json.dumps(
                {
                    "policy_version": bundle.version,
                    "passed": len(results) - len(failed),
                    "failed": len(failed),
                    "tests": [r.__dict__ for r in results],
                }
            )
        )
    else:
        table = Table(title=f"Rego tests ({bundle.source}, {bundle.version})")
        for column in ("module", "test", "result"):
            table.add_column(column)
        for r in results:
            mark = "[green]pass[/]" if r.passed else f"[red]FAIL[/] {r.error or ''}"
            table.add_row(r.module, r.name, mark)
        out.print(table)
        out.print(f"{len(results) - len(failed)} passed, {len(failed)} failed")
    if failed or not results:
        raise typer.Exit(1)


def _policy_dir() -> Path | None:
    env = os.environ.get("PLANBOUND_POLICY_DIR")
    return Path(env) if env else None


def main() -> None:
    """Entry point of the ``planbound`` console script."""
    try:
        app()
    except (GuardError, StorageError) as exc:  # e.g. an unreachable database
        err.print(f"[bold red]error:[/] {exc}", highlight=False)
        sys.exit(2)
