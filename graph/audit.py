"""A decision's whole story, from the audit journal, the ledger and the thread's checkpoints.

:func:`audit` reads, in one snapshot, every journal entry of a decision (verdicts, answers,
approvals used, step outcomes, undos), its ledger rows and consumed approvals, then the
checkpoints of the threads the journal names, and puts them in time order. It also checks
what the journal vouches for: both hash chains (:func:`checkpoints.audit.verify`), each ledger
row against its latest outcome or undo entry (status, attempts, output hash, changes, error),
and each consumed approval against its ``approval used`` entry. Nothing is written.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from langchain_core.runnables import RunnableConfig
from langgraph.pregel import Pregel

from checkpoints.audit import AuditLog, Entry, verify
from checkpoints.ledger import ApprovalRow, Approvals, Ledger, LedgerRow
from graph.errors import RunError
from graph.services import Services
from guards.plan import content_hash


@dataclass(frozen=True)
class AuditReport:
    """What :func:`audit` found.

    Attributes:
        decision_id: The decision.
        threads: The threads the journal names, in the order they first appear.
        events: The story in time order: journal entries and checkpoints, each with a
            one-line ``summary``.
        ledger: The decision's ledger rows, in the order the steps started.
        approvals: The approvals execution consumed.
        breaks: Everything that does not hold (empty when the record is intact).
    """

    decision_id: str
    threads: list[str]
    events: list[dict[str, Any]]
    ledger: list[dict[str, Any]]
    approvals: list[dict[str, Any]]
    breaks: list[str] = field(default_factory=list)

    @property
    def intact(self) -> bool:
        """Whether the chains hold and the ledger matches the journal."""
        return not self.breaks

    def to_json(self) -> dict[str, Any]:
        """The report as one JSON object (``chain`` is ``intact`` or ``broken``)."""
        return {
            "decision_id": self.decision_id,
            "chain": "intact" if self.intact else "broken",
            "breaks": list(self.breaks),
            "threads": list(self.threads),
            "events": list(self.events),
            "ledger": list(self.ledger),
            "approvals": list(self.approvals),
        }


def audit(services: Services, graph: Pregel[Any, Any], decision_id: str) -> AuditReport:
    """Tell a decision's story and check its record.

    Args:
        services: The services whose stores hold the decision.
        graph: The compiled graph on the same checkpointer (to read the threads' checkpoints).
        decision_id: The decision to audit.

    Raises:
        RunError: neither the journal nor the ledger knows the decision.
    """
    stores = services.stores
    with stores.lock, stores.domain.snapshot() as conn:
        entries = AuditLog(conn).entries(decision_id)
        rows = Ledger(conn).rows(decision_id)
        approvals = Approvals(conn).rows(decision_id)
    if not entries and not rows and not approvals:
        raise RunError(f"no decision {decision_id!r} in the audit journal or the ledger")
    threads = list(dict.fromkeys(e.thread_id for e in entries if e.thread_id is not None))
    events = [_journal_event(e) for e in entries]
    for thread_id in threads:
        events.extend(_checkpoints(graph, thread_id, decision_id))
    events.sort(key=lambda e: (e["at"], e["source"], e.get("n") or 0))
    breaks = [*verify(entries), *ledger_breaks(rows, entries), *approval_breaks(approvals, entries)]
    return AuditReport(
        decision_id=decision_id,
        threads=threads,
        events=events,
        ledger=[_ledger_json(r) for r in rows],
        approvals=[_approval_json(a) for a in approvals],
        breaks=breaks,
    )


def ledger_breaks(rows: Iterable[LedgerRow], entries: Iterable[Entry]) -> list[str]:
    """Where the ledger disagrees with the journal's latest outcome or undo of each step."""
    latest: dict[str, Entry] = {}
    outcomes: dict[str, Entry] = {}
    for e in sorted((e for e in entries if e.stream == "steps"), key=lambda e: e.n):
        step_id = e.body.get("step_id")
        if e.kind in ("outcome", "undo") and isinstance(step_id, str):
            latest[step_id] = e
            if e.kind == "outcome":
                outcomes[step_id] = e
    problems: list[str] = []
    seen: set[str] = set()
    for row in rows:
        seen.add(row.step_id)
        where = f"ledger row {row.step_id}"
        last = latest.get(row.step_id)
        if last is None:
            if row.status != "started":
                problems.append(f"{where}: status {row.status}, but the journal has no outcome")
            continue
        said = "compensated" if last.kind == "undo" else str(last.body.get("status"))
        if row.status != said:
            problems.append(f"{where}: status {row.status}, but steps row {last.n} recorded {said}")
        outcome = outcomes.get(row.step_id)
        if outcome is None:
            problems.append(f"{where}: undone (steps row {last.n}) with no outcome before it")
            continue
        problems.extend(_outcome_breaks(where, row, outcome))
    for step_id, e in latest.items():
        if step_id not in seen:
            problems.append(f"steps row {e.n} records step {step_id}, which has no ledger row")
    return problems


def _outcome_breaks(where: str, row: LedgerRow, outcome: Entry) -> list[str]:
    recorded = outcome.body
    found = {
        "attempts": row.attempts,
        "output_hash": row.output_hash,
        "error": row.error,
        "changes": _changes_hash(row.changes),
    }
    problems = [
        f"{where}: {name} {value!r}, but steps row {outcome.n} recorded {recorded.get(name)!r}"
        for name, value in found.items()
        if value != recorded.get(name)
    ]
    if row.output_hash is not None and content_hash(row.output, 64) != row.output_hash:
        problems.append(f"{where}: its output does not match its output hash")
    return problems


def _changes_hash(changes: list[dict[str, Any]]) -> str:
    """The hash the ledger journals for a step's changes."""
    return hashlib.sha256(json.dumps(changes, sort_keys=True).encode()).hexdigest()


def approval_breaks(approvals: Iterable[ApprovalRow], entries: Iterable[Entry]) -> list[str]:
    """Where the consumed approvals disagree with the journal's ``approval used`` entries."""
    used = {
        str(e.body.get("step_id")): e
        for e in entries
        if e.stream == "steps" and e.kind == "approval used"
    }
    problems: list[str] = []
    for a in approvals:
        e = used.pop(a.step_id, None)
        if e is None:
            problems.append(f"approval of {a.step_id}: consumed, but the journal never used it")
            continue
        found = {"digest": a.digest, "reviewer": a.reviewer, "roles": sorted(a.roles)}
        problems.extend(
            f"approval of {a.step_id}: {name} {value!r}, but steps row {e.n} recorded"
            f" {e.body.get(name)!r}"
            for name, value in found.items()
            if value != e.body.get(name)
        )
    problems.extend(
        f"steps row {e.n} used an approval of {step_id}, which is not among the approvals"
        for step_id, e in used.items()
    )
    return problems


# The story ----------------------------------------------------------------------------------


def _time(at: float) -> str:
    return datetime.fromtimestamp(at, UTC).isoformat(timespec="milliseconds")


def _journal_event(e: Entry) -> dict[str, Any]:
    return {
        "at": e.recorded_at,
        "time": _time(e.recorded_at),
        "source": e.stream,
        "n": e.n,
        "kind": e.kind,
        "thread_id": e.thread_id,
        "step_id": e.body.get("step_id"),
        "summary": summary(e.kind, e.body),
        "body": e.body,
        "hash": e.hash,
    }


def summary(kind: str, body: dict[str, Any]) -> str:
    """One line about a journal entry."""
    step = body.get("step_id")
    if kind == "verdict":
        text = f"plan {body.get('plan_id')} ({body.get('plan_source')}): {body.get('outcome')}"
        rules = [f"{d['step_id']} denied by {d['rule']}" for d in body.get("deny", [])]
        rules += [
            f"{a['step_id']} needs approval by {'/'.join(a['roles']) or 'anyone'}"
            f" [{', '.join(a['rules'])}]"
            for a in body.get("approval", [])
        ]
        rules += [f"contract: {c}" for c in body.get("contracts", [])]
        if not rules and body.get("reasons"):
            rules = list(body["reasons"])
        return text + ("; " + "; ".join(rules) if rules else "")
    if kind == "answer":
        roles = ", ".join(body.get("roles") or []) or "no role"
        detail = f": {body['detail']}" if body.get("detail") else ""
        return f"{body.get('reviewer')} ({roles}) answered: {body.get('outcome')}{detail}"
    if kind == "approval used":
        roles = ", ".join(body.get("roles") or []) or "no role"
        return f"{step}: approval by {body.get('reviewer')} ({roles}) used"
    if kind == "outcome":
        error = f": {body['error']}" if body.get("error") else ""
        return f"{step}: {body.get('status')} after {body.get('attempts')} attempt(s){error}"
    if kind == "undo":
        return f"{step}: undone"
    if kind == "trace":
        where = f"trace {body['trace_id']}" if body.get("trace_id") else "untraced"
        tokens = (body.get("usage") or {}).get("total_tokens") or 0
        return f"{body.get('invocation')}: {where}" + (f", {tokens} tokens" if tokens else "")
    return kind


def _checkpoints(graph: Pregel[Any, Any], thread_id: str, decision_id: str) -> list[dict[str, Any]]:
    """The checkpoints of ``thread_id`` that belong to the decision."""
    config: RunnableConfig = {"configurable": {"thread_id": thread_id}}
    found = []
    for snap in graph.get_state_history(config):
        if snap.values.get("decision_id") != decision_id or snap.created_at is None:
            continue
        at = datetime.fromisoformat(snap.created_at).timestamp()
        meta = snap.metadata or {}
        checkpoint_id = snap.config["configurable"].get("checkpoint_id")
        nxt = list(snap.next)
        status = "awaiting review" if snap.interrupts else snap.values.get("status")
        found.append(
            {
                "at": at,
                "time": _time(at),
                "source": "checkpoint",
                "n": meta.get("step"),
                "kind": "checkpoint",
                "thread_id": thread_id,
                "step_id": None,
                "checkpoint_id": checkpoint_id,
                "summary": f"{checkpoint_id} ({meta.get('source')}): {status}"
                + (f", next {', '.join(nxt)}" if nxt else ""),
                "next": nxt,
                "status": snap.values.get("status"),
            }
        )
    return found


def _ledger_json(r: LedgerRow) -> dict[str, Any]:
    return {
        "step_id": r.step_id,
        "tool": r.tool,
        "args": r.args,
        "status": r.status,
        "attempts": r.attempts,
        "output_hash": r.output_hash,
        "error": r.error,
        "changes": len(r.changes),
        "started_at": _time(r.started_at),
        "finished_at": _time(r.finished_at) if r.finished_at is not None else None,
    }


def _approval_json(a: ApprovalRow) -> dict[str, Any]:
    return {
        "step_id": a.step_id,
        "digest": a.digest,
        "reviewer": a.reviewer,
        "roles": a.roles,
        "recorded_at": _time(a.recorded_at),
    }
