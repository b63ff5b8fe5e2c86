"""Facts for the policy: the domain records a plan's steps reference, read before deciding.

The policy never trusts what a plan claims about the world. The verifier resolves, read-only,
the records each step would touch: it runs the plan's lookup steps (the catalog's read
tools) in a transaction it rolls back, follows ``$refs`` through their outputs, and lets the
domain's facts provider collect the records the arguments name. Steps whose arguments depend
on a write step's output cannot be resolved before execution and are reported as unresolved.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any, Protocol

from guards.errors import ReferenceUnresolved, SelectionEmpty
from guards.fanout import expand, rename, repeat_problem
from guards.plan import Plan, Step, content_hash, dependencies, dependency_order, resolve_refs
from guards.snapshot import SnapshotReads
from tools.catalog import Catalog, CatalogEntry, ToolError
from tools.domain import DomainPlugin


class Snapshots(Protocol):
    """A connection that can run a block of reads in a transaction that is rolled back."""

    errors: tuple[type[BaseException], ...]
    """Every error its driver raises."""

    def snapshot(self) -> AbstractContextManager[Any]:
        """Open a read-only snapshot for the block."""
        ...


Invoke = Callable[[CatalogEntry, dict[str, Any]], Any]
"""Calls one read tool with its arguments (the store included as ``db``)."""


class DomainChanged(RuntimeError):
    """A read tool wrote to the domain while facts were read: a catalog bug, never data."""


@dataclass(frozen=True)
class Read:
    """A read step run while the facts were read, as execution would have run it.

    Attributes:
        tool: The read tool.
        args: Its arguments, references resolved.
        output: What it returned.
        seconds: How long the call took.
    """

    tool: str
    args: dict[str, Any]
    output: Any
    seconds: float


@dataclass(frozen=True)
class Reading:
    """The facts of a plan and the reads that produced them, from one snapshot.

    Attributes:
        facts: The policy's facts (see :func:`resolve_facts`).
        reads: The read steps that ran and succeeded and that no write step precedes (their
            result cannot change before they would run), by step id. Execution may use
            them instead of calling the tools again.
    """

    facts: dict[str, Any]
    reads: dict[str, Read] = field(default_factory=dict)
    plan: Plan | None = None
    """The plan the facts are of: with its foreach steps expanded (see :mod:`guards.fanout`)."""
    problems: list[str] = field(default_factory=list)
    """Why a foreach step could not be expanded (nothing matched, or it did not resolve)."""


def resolve_facts(
    plan: Plan,
    catalog: Catalog,
    domain: DomainPlugin,
    conn: Snapshots,
    lock: threading.RLock,
    known_outputs: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Return the facts for ``plan``: per-step resolved arguments, and the domain's sections.

    See :func:`read_plan`, which also returns the reads it ran.

    Raises:
        DomainChanged: a read tool wrote to the domain.
    """
    return read_plan(plan, catalog, domain, conn, lock, known_outputs).facts


def read_plan(
    plan: Plan,
    catalog: Catalog,
    domain: DomainPlugin,
    conn: Snapshots,
    lock: threading.RLock,
    known_outputs: Mapping[str, Any] | None = None,
    *,
    collect: bool = True,
    invoke: Invoke | None = None,
) -> Reading:
    """Read the facts for ``plan`` (per-step resolved arguments, the domain's sections).

    Every read runs in one read-only snapshot, so the facts and the recorded reads are one
    consistent view of the domain (a query asked twice in it is sent once, see
    :mod:`guards.snapshot`). A read is kept in :attr:`Reading.reads` when it
    succeeded and every step it depends on is known or kept too (so never after a write
    that has not run, nor after a failed step).

    Args:
        plan: The plan to judge.
        catalog: The pinned catalog (read tools are run to follow references).
        domain: The domain plug-in (its store and facts provider).
        conn: The domain database; only read, inside a transaction that is rolled back.
        lock: The lock that serialises use of ``conn``.
        known_outputs: Outputs of steps that already ran (at execution time); they are used
            instead of re-running those steps.
        collect: Whether the facts provider collects the records the arguments name (not
            needed when only the reads are wanted).
        invoke: Calls a read tool (``entry, arguments with the store``); the tool's own
            ``invoke`` when ``None``. An error it raises other than the tool's refusal
            propagates (the snapshot is rolled back).

    Raises:
        DomainChanged: a read tool wrote to the domain.
    """
    known = dict(known_outputs or {})
    provider = domain.facts
    call = invoke or (lambda entry, arguments: entry.tool.invoke(arguments))
    reads: dict[str, Read] = {}
    step_facts: dict[str, dict[str, Any]] = {}
    outputs: dict[str, Any] = {}
    sections: dict[str, dict[str, Any]] = {name: {} for name in provider.sections()}
    written: dict[str, list[Step]] = {}
    expanded: dict[str, list[str]] = {}
    problems: list[str] = []
    with lock, conn.snapshot():
        # a row two steps (or a step and the facts provider) ask for is read once
        store = domain.open_store(SnapshotReads(conn))

        def visit(step: Step) -> None:
            entry = catalog.get(step.tool)
            record: dict[str, Any] = {"args": None, "unresolved": [], "output": None, "error": None}
            step_facts[step.id] = record
            repeated = repeat_problem(step, {**known, **outputs})
            if repeated is not None:
                record["unresolved"].append(repeated)
                return
            try:
                args = resolve_refs(step.args, outputs, step.id)
            except ReferenceUnresolved as exc:
                record["unresolved"].append(exc.reason)
                return
            record["args"] = args
            if step.id in known:
                outputs[step.id] = known[step.id]
            elif entry is not None and entry.spec.effect == "read":
                try:
                    started = time.monotonic()
                    outputs[step.id] = call(entry, {**args, "db": store})
                    if all(d in known or d in reads for d in dependencies(step)):
                        seconds = time.monotonic() - started
                        reads[step.id] = Read(step.tool, args, outputs[step.id], seconds)
                except ToolError as exc:
                    record["error"] = exc.message
                except ValueError as exc:  # arguments the contracts already refused
                    record["error"] = str(exc).splitlines()[0]
            if not collect:
                return
            identity = None
            if step.tool in provider.identity_tools and isinstance(outputs.get(step.id), str):
                identity = record["output"] = outputs[step.id]
            provider.collect(store, args, identity, sections)

        for original in dependency_order(plan):
            step = rename(original, expanded)
            if step.foreach is None:
                written[original.id] = [step]
                visit(step)
                continue
            try:
                steps = expand(step, outputs)
            except ReferenceUnresolved as exc:
                problems.append(
                    f"step {step.id!r} is to be repeated for each of a selection, but "
                    f"{exc.reason}: there is nothing to do it for"
                    if isinstance(exc, SelectionEmpty)
                    else f"step {step.id!r}: its foreach selection: {exc.reason}"
                )
                written[original.id] = [step]
                step_facts[step.id] = {
                    "args": None,
                    "unresolved": [exc.reason],
                    "output": None,
                    "error": None,
                }
                continue
            written[original.id] = steps
            expanded[original.id] = [s.id for s in steps]
            for one in steps:
                visit(one)
        if store.take_changes():
            raise DomainChanged("a read tool changed the domain while facts were resolved")
    judged = plan
    if expanded:
        steps = [s for original in plan.steps for s in written.get(original.id, [original])]
        judged = Plan(source=plan.source, goal=plan.goal, template=plan.template, steps=steps)
    return Reading(
        facts={"steps": step_facts, **sections}, reads=reads, plan=judged, problems=problems
    )


def facts_hash(facts: Mapping[str, Any]) -> str:
    """Return the hash recorded with a decision for the facts it was made on."""
    return content_hash(dict(facts), 32)
