"""Undoing writes, newest first: after a failed step (the compensate node) and on rollback.

Each undo restores the before-images a write recorded, in one transaction recorded in the
ledger, only if those records were not changed since; a write without a compensator is
reported as irreversible, never hidden.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from graph.engine import compensate_step
from graph.services import Services


@dataclass
class Undo:
    """What undoing a series of writes did.

    Attributes:
        undone: Ids of the steps whose effects were undone (or already were).
        notes: One line per step, in the order handled.
        irreversible: Lines for writes without a compensator.
        conflicts: Lines for writes whose records changed since (left as they are).
    """

    undone: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    irreversible: list[str] = field(default_factory=list)
    conflicts: list[str] = field(default_factory=list)

    @property
    def complete(self) -> bool:
        """Whether every write was undone."""
        return not self.irreversible and not self.conflicts


def undo_writes(
    services: Services,
    decision_id: str,
    writes: Iterable[tuple[str, str]],
    *,
    stop_at_conflict: bool,
) -> Undo:
    """Undo ``writes`` (``(step_id, tool)``, oldest first) newest first.

    Args:
        services: Where the stores and catalog are.
        decision_id: The decision the writes belong to.
        writes: The succeeded write steps to undo, in the order they ran.
        stop_at_conflict: Stop at the first conflict (rollback) instead of going on
            (compensation after a failure undoes whatever it can).
    """
    stores = services.stores
    report = Undo()
    for step_id, tool in reversed(list(writes)):
        entry = services.catalog.get(tool)
        if entry is None or entry.spec.compensator is None:
            line = f"{step_id}: {tool} is irreversible; its effect remains"
            report.irreversible.append(line)
            report.notes.append(line)
            continue
        done, note = compensate_step(
            stores.domain,
            stores.lock,
            decision_id,
            step_id,
            open_store=services.domain.open_store,
        )
        report.notes.append(note)
        if done:
            report.undone.append(step_id)
            continue
        report.conflicts.append(note)
        if stop_at_conflict:
            break
    return report
