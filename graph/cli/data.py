"""Commands on the data: seed and export the domain, set up and prune the databases."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape

from checkpoints.db import schema_versions
from checkpoints.retention import prune
from graph.cli.common import (
    HomeOpt,
    JsonOpt,
    UsageError,
    emit,
    guarded,
    home_runner,
    home_stores,
    out,
)
from tools.retail import export as export_domain
from tools.retail import load_shipped, seed, tau2_hash

SEED_TABLES = frozenset({"users", "orders", "products"})
"""Top-level keys a τ²-format database must have."""


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
        missing = SEED_TABLES - set(data if isinstance(data, dict) else {})
        if missing:
            raise UsageError(f"--from {source}: missing {sorted(missing)}")
        return dict(data)

    data = guarded(as_json, load)
    stores = home_stores(home)
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
        emit(summary)
    else:
        out.print(
            f"seeded {summary['users']} users, {summary['orders']} orders, "
            f"{summary['products']} products into {escape(str(stores.home / 'domain.sqlite'))}\n"
            f"τ² db hash {summary['tau2_hash']}"
        )


def export_cmd(
    dest: Annotated[
        Path | None, typer.Option("--out", help="Write here instead of standard output.")
    ] = None,
    home: HomeOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Write the domain's current state as τ²-format JSON."""
    stores = home_stores(home)
    with stores.lock:
        data = guarded(as_json, lambda: export_domain(stores.domain))
    digest = tau2_hash(data)
    if dest is None and not as_json:
        print(json.dumps(data, indent=2))
        return
    if dest is not None:
        dest.write_text(json.dumps(data, indent=2) + "\n")
    summary: dict[str, Any] = {"path": str(dest) if dest else None, "tau2_hash": digest}
    if as_json:
        if dest is None:
            summary["data"] = data
        emit(summary)
    else:
        out.print(f"wrote {escape(str(dest))}\nτ² db hash {digest}")


def db_init_cmd(home: HomeOpt = None, as_json: JsonOpt = False) -> None:
    """Create or migrate the checkpointer and domain tables (SQLite or DATABASE_URI)."""
    stores = guarded(as_json, lambda: home_stores(home))
    with stores.lock:
        versions = schema_versions(stores.domain)
    report = {"backend": stores.backend, "home": str(stores.home), "schema_versions": versions}
    stores.close()
    if as_json:
        emit(report)
    else:
        out.print(
            f"{report['backend']} ready; schema versions {report['schema_versions']}",
            highlight=False,
        )


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
    runner = guarded(as_json, lambda: home_runner(home))
    report = prune(runner.stores, runner.graph, older_than, keep_latest, dry_run)
    if as_json:
        emit(report.__dict__)
    else:
        verb = "would delete" if dry_run else "deleted"
        out.print(
            f"{verb} {report.checkpoints_deleted} checkpoints of {report.threads_pruned} "
            f"finished threads ({report.threads_seen} seen); ledger and approvals kept"
        )
