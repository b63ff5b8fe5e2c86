"""Read what a home stores into one record per decision (checkpoints, ledger, journal).

Everything here only reads. A decision's timeline comes from its thread's checkpoints: the
node that ran between two checkpoints is the one whose ``versions_seen`` changed, and the
time between them is that node's latency. A pause for review ends at the reviewer's answer,
whose time the audit journal holds: the time before it is human wait, the time after it the
approve node's own. Step outcomes, attempts and compensations come from the ledger; rules
from the journal's verdicts; tokens and cost from its trace records.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from checkpoints.audit import AuditLog
from checkpoints.factory import Stores
from checkpoints.ledger import Ledger
from graph.tracing import TRACE_KIND, route_of


@dataclass
class StepRecord:
    """One ledger row of a decision."""

    step_id: str
    tool: str
    status: str
    attempts: int


@dataclass
class Decision:
    """Everything the report needs about one decision."""

    decision_id: str
    thread_id: str
    started: float
    ended: float
    status: str
    route: str
    planner: str | None = None
    planner_version: str | None = None
    template: str | None = None
    catalog_version: str | None = None
    policy_version: str | None = None
    prompt_version: str | None = None
    plan_length: int = 0
    verdict: str | None = None
    deny_rules: list[str] = field(default_factory=list)
    reviews: list[str] = field(default_factory=list)
    """Each reviewer decision's type (approve, edit, reject, respond)."""
    node_seconds: dict[str, list[float]] = field(default_factory=dict)
    human_wait_s: float = 0.0
    steps: list[StepRecord] = field(default_factory=list)
    compensated: int = 0
    tokens: int = 0
    cost: float | None = None

    @property
    def seconds(self) -> float:
        """End-to-end latency without the time spent waiting for a human."""
        return max(0.0, self.ended - self.started - self.human_wait_s)

    @property
    def intent(self) -> str:
        """The template intent (without version), or what the run came to without one."""
        if self.template:
            return self.template.split("@")[0]
        return "explicit" if self.planner == "explicit" else f"({self.status})"

    def version(self, by: str) -> str | None:
        """The value of a dimension, or ``None`` when it does not apply to this decision.

        ``planner``: the planner and its version (explicit plans have none); ``template``:
        the template set's version (template-planned decisions only); ``catalog``,
        ``policy``: the pinned versions; ``prompt``: the planner's prompt version, if any.
        """
        planned = self.planner not in (None, "explicit")
        value = {
            "planner": f"{self.planner}@{self.planner_version}" if planned else None,
            "template": self.planner_version if self.planner == "template" else None,
            "catalog": self.catalog_version,
            "policy": self.policy_version,
            "prompt": self.prompt_version,
        }.get(by)
        return str(value) if value else None

    def group(self, by: str) -> str:
        """The value of a grouping dimension, ``n/a`` when it does not apply."""
        if by == "planner" and self.planner == "explicit":
            return "explicit"
        return self.version(by) or "n/a"


def _ts(value: str) -> float:
    return datetime.fromisoformat(value).timestamp()


def _segments(checkpoints: list[Any]) -> Iterator[list[Any]]:
    """A thread's checkpoints (oldest first) cut into runs: each begins at an input."""
    current: list[Any] = []
    for c in checkpoints:
        if c.metadata.get("source") == "input" and current:
            yield current
            current = []
        current.append(c)
    if current:
        yield current


def decisions(stores: Stores, since: float | None = None) -> list[Decision]:
    """Every decision in the home that started at or after ``since`` (epoch seconds)."""
    threads: dict[str, list[Any]] = {}
    with stores.lock:
        for c in stores.checkpointer.list(None):
            if c.config["configurable"].get("checkpoint_ns"):
                continue  # subgraph checkpoints belong to their parent's step
            threads.setdefault(str(c.config["configurable"]["thread_id"]), []).append(c)
    out: list[Decision] = []
    for thread_id, cps in threads.items():
        cps.sort(key=lambda c: (c.checkpoint["ts"], c.metadata.get("step", 0)))
        for segment in _segments(cps):
            record = _decision(stores, thread_id, segment)
            if record is not None and (since is None or record.started >= since):
                out.append(record)
    out.sort(key=lambda d: d.started)
    return out


def _decision(stores: Stores, thread_id: str, segment: list[Any]) -> Decision | None:
    last = segment[-1]
    values = last.checkpoint["channel_values"]
    decision_id = values.get("decision_id")
    if not decision_id:
        return None
    paused = any(w[1] == "__interrupt__" for w in last.pending_writes or ())
    status = "awaiting_approval" if paused else str(values.get("status"))
    pins = values.get("pins")
    plan = values.get("plan")
    verdict = values.get("verdict")
    record = Decision(
        decision_id=str(decision_id),
        thread_id=thread_id,
        started=_ts(segment[0].checkpoint["ts"]),
        ended=_ts(last.checkpoint["ts"]),
        status=status,
        route=route_of({**values, "status": status}),
        planner=getattr(pins, "planner", None),
        planner_version=getattr(pins, "planner_version", None),
        catalog_version=getattr(pins, "catalog_version", None),
        policy_version=getattr(pins, "policy_version", None),
        prompt_version=getattr(pins, "prompt_version", None),
        template=getattr(plan, "template", None),
        plan_length=len(plan.steps) if plan is not None else 0,
        verdict=verdict.outcome if verdict is not None else None,
        reviews=[str(d.type) for d in values.get("decisions") or []],
    )
    with stores.lock:
        entries = AuditLog(stores.domain).entries(record.decision_id)
        rows = Ledger(stores.domain).rows(record.decision_id)
    answers = sorted(e.recorded_at for e in entries if e.stream == "reviews")
    for e in entries:
        if e.stream != "steps":
            continue
        if e.kind == "verdict":
            record.deny_rules = sorted({d["rule"] for d in e.body.get("deny", [])})
            if e.body.get("contracts"):
                record.deny_rules.append("contracts")
        elif e.kind == TRACE_KIND and e.body.get("usage"):
            usage = e.body["usage"]
            record.tokens += int(usage.get("total_tokens") or 0)
            if usage.get("cost") is not None:
                record.cost = (record.cost or 0.0) + float(usage["cost"])
    record.steps = [StepRecord(r.step_id, r.tool, r.status, r.attempts) for r in rows]
    record.compensated = sum(1 for r in rows if r.status == "compensated")
    _timeline(record, segment, answers)
    return record


def _timeline(record: Decision, segment: list[Any], answers: list[float]) -> None:
    """Node latencies and human wait from consecutive checkpoints and the answers' times."""
    for prev, cur in zip(segment, segment[1:], strict=False):
        seen_prev = prev.checkpoint.get("versions_seen") or {}
        seen_cur = cur.checkpoint.get("versions_seen") or {}
        ran = [n for n, v in seen_cur.items() if not n.startswith("__") and seen_prev.get(n) != v]
        if not ran:
            continue
        start, end = _ts(prev.checkpoint["ts"]), _ts(cur.checkpoint["ts"])
        waited = [a for a in answers if start <= a <= end]
        if waited and "approve" in ran:
            wait = max(waited) - start
            record.human_wait_s += wait
            start += wait
        for node in ran:
            record.node_seconds.setdefault(node, []).append(max(0.0, end - start))


def tool_stats(records: Iterable[Decision]) -> dict[str, dict[str, float]]:
    """Per tool: calls, error ratio, retry ratio and compensations (from the ledger)."""
    calls: dict[str, list[StepRecord]] = {}
    for d in records:
        for s in d.steps:
            calls.setdefault(s.tool, []).append(s)
    out: dict[str, dict[str, float]] = {}
    for tool, rows in sorted(calls.items()):
        n = len(rows)
        out[tool] = {
            "calls": n,
            "error_ratio": sum(1 for r in rows if r.status == "failed") / n,
            "retry_ratio": sum(1 for r in rows if r.attempts > 1) / n,
            "compensated": sum(1 for r in rows if r.status == "compensated"),
        }
    return out
