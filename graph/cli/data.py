"""Commands on the data: seed and export the domain, set up and prune the databases."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape

from checkpoints.db import schema_versions
from checkpoints.factory import (
    damaged_files,
    domain_path,
    move_aside,
)
from checkpoints.retention import prune
from graph.cli.common import (
    HomeOpt,
    JsonOpt,
    UsageError,
    emit,
    fail,
    guarded,
    home_runner,
    home_services,
    home_stores,
    out,
)


def seed_cmd(
    source: Annotated[
        Path | None,
        typer.Option("--from", help="A data file (default: the domain's shipped data)."),
    ] = None,
    force: Annotated[
        bool,
        typer.Option(
            "--force",
            help="Move a damaged database file aside (renamed *.damaged-TIME) and start it anew.",
        ),
    ] = False,
    home: HomeOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """(Re)create the domain database from the shipped data (τ²-bench retail) or a file."""
    services = guarded(as_json, lambda: home_services(home))
    domain = services.domain

    def load() -> Any:
        if source is None:
            if domain.shipped_data is None:
                raise UsageError(f"the {domain.name} domain ships no data: give --from FILE")
            return domain.shipped_data()
        if source.is_dir():
            raise UsageError(f"--from {source}: is a directory; give a data file (JSON)")
        if not source.is_file():
            raise UsageError(f"--from {source}: no such file")
        try:
            return json.loads(source.read_text())
        except json.JSONDecodeError as exc:
            raise UsageError(f"--from {source}: not JSON ({exc})") from exc
        except RecursionError:
            raise UsageError(f"--from {source}: nested too deeply") from None
        except UnicodeDecodeError:
            raise UsageError(f"--from {source}: not UTF-8 text") from None

    def repair() -> list[str]:
        if services.settings.postgres_uri is not None:
            return []
        return [f"{path} -> {move_aside(path)}" for path in damaged_files(services.settings.home)]

    def replace() -> dict[str, int]:
        try:
            return services.seed(data)
        except ValueError as exc:
            raise UsageError(f"--from {source or 'shipped data'}: {exc}") from exc

    data = guarded(as_json, load)
    moved = guarded(as_json, repair) if force else []
    counts = guarded(as_json, replace)
    stores = services.stores
    where = (
        "the PostgreSQL database" if stores.backend == "postgres" else str(domain_path(stores.home))
    )
    summary: dict[str, Any] = {"home": str(stores.home), "backend": stores.backend, **counts}
    if stores.backend == "postgres":
        summary["home"] = None
    if moved:
        summary["moved_aside"] = moved
    if domain.data_hash is not None:
        summary[domain.data_hash_name] = domain.data_hash(data)
    if as_json:
        emit(summary)
    else:
        for line in moved:
            out.print(f"moved aside {escape(line)}", highlight=False)
        seeded = ", ".join(f"{n} {table}" for table, n in counts.items())
        out.print(f"seeded {seeded} into {escape(where)}", highlight=False)
        if domain.data_hash is not None:
            out.print(f"{domain.data_hash_name} {summary[domain.data_hash_name]}")


def export_cmd(
    dest: Annotated[
        Path | None, typer.Option("--out", help="Write here instead of standard output.")
    ] = None,
    home: HomeOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Write the domain's current state in its data format (τ²-format JSON for retail)."""
    if dest is not None:
        if dest.is_dir():
            fail(f"--out {dest}: is a directory; give a file name", as_json)
        if not dest.parent.is_dir():
            fail(f"--out {dest}: no such directory {dest.parent}", as_json)
    services = guarded(as_json, lambda: home_services(home, readonly=True))
    domain = services.domain
    stores = guarded(as_json, lambda: services.stores)
    exporter = domain.export
    if exporter is None:
        fail(f"the {domain.name} domain cannot export its data", as_json)

    def read() -> Any:
        with stores.lock:
            if not services.store(stores.domain).is_seeded():
                raise UsageError("the domain database is empty: run `planbound seed` first")
            return exporter(stores.domain)

    data = guarded(as_json, read)
    if dest is None and not as_json:
        print(json.dumps(data, indent=2))
        return
    if dest is not None:
        text = json.dumps(data, indent=2) + "\n"

        def write() -> None:
            try:
                dest.write_text(text)
            except OSError as exc:
                raise UsageError(f"--out {dest}: cannot write it ({exc.strerror})") from None

        guarded(as_json, write)
    summary: dict[str, Any] = {"path": str(dest) if dest else None}
    if domain.data_hash is not None:
        summary[domain.data_hash_name] = domain.data_hash(data)
    if as_json:
        if dest is None:
            summary["data"] = data
        emit(summary)
    else:
        out.print(f"wrote {escape(str(dest))}")
        if domain.data_hash is not None:
            out.print(f"{domain.data_hash_name} {summary[domain.data_hash_name]}")


def db_init_cmd(home: HomeOpt = None, as_json: JsonOpt = False) -> None:
    """Create or migrate the checkpointer and domain tables (SQLite or PostgreSQL)."""
    stores = guarded(as_json, lambda: home_stores(home))
    with stores.lock:
        versions = schema_versions(stores.domain)
    report = {"backend": stores.backend, "home": str(stores.home), "schema_versions": versions}
    stores.close()
    if as_json:
        emit(report)
    else:
        listed = "; ".join(f"{c} {v}" for c, v in versions.items())
        out.print(f"{report['backend']} ready; schema versions {listed}", highlight=False)


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
