"""Prometheus metrics computed from planbound's durable data.

Numbers come from the checkpoints (each thread's latest state: its status, or a pending
review) and from the side-effect ledger in the domain database (each executed step's
duration and outcome), so every server process reports the same totals and a restart loses
nothing. A scrape of ``/metrics`` refreshes the snapshot first (:class:`RefreshOnScrape`);
the collector itself only reads the snapshot, so the exposition never blocks on a database.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from prometheus_client.core import GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector
from starlette.types import ASGIApp, Receive, Scope, Send

from checkpoints.server import latest, reader, thread_ids
from graph.graph import SERVICES
from graph.review import pending_request
from graph.state import STATE_TYPES, STATUSES

log = logging.getLogger(__name__)

BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
"""Upper bounds, in seconds, of the step latency histogram."""


@dataclass
class StepStats:
    """Latency buckets of one (tool, status) pair, cumulative as Prometheus wants them."""

    counts: list[int]
    total: int
    seconds: float


@dataclass
class Snapshot:
    """What the last refresh found."""

    runs: dict[str, int] = field(default_factory=dict)
    approvals_pending: int = 0
    approval_steps_pending: int = 0
    steps: dict[tuple[str, str], StepStats] = field(default_factory=dict)
    ledger: dict[str, int] = field(default_factory=dict)
    up: dict[str, bool] = field(default_factory=lambda: {"checkpoints": False, "domain": False})
    refreshed_at: float = 0.0


async def read_checkpoints(snapshot: Snapshot) -> None:
    """Fill the run and approval numbers from each thread's latest checkpoint."""
    runs = dict.fromkeys(("awaiting_approval", *STATUSES), 0)
    threads = steps = 0
    settings = SERVICES.settings
    async with reader(settings.home, settings.postgres_uri, STATE_TYPES) as saver:
        for thread_id in await thread_ids(saver):
            tup = await latest(saver, thread_id)
            if tup is None:
                continue
            found: list[Any] = []
            for _task, channel, value in tup.pending_writes or []:
                if channel == "__interrupt__":
                    found.extend(value if isinstance(value, (list, tuple)) else [value])
            request = pending_request(found)
            if request is not None:
                status = "awaiting_approval"
                threads += 1
                steps += len(request.get("action_requests") or [])
            else:
                status = str(tup.checkpoint["channel_values"].get("status") or "unknown")
            runs[status] = runs.get(status, 0) + 1
    snapshot.runs, snapshot.approvals_pending, snapshot.approval_steps_pending = (
        runs,
        threads,
        steps,
    )


def _step_query() -> str:
    buckets = ", ".join(f"SUM(CASE WHEN d <= {b!r} THEN 1 ELSE 0 END)" for b in BUCKETS)
    return (
        f"SELECT tool, status, COUNT(*), SUM(d), {buckets} FROM ("
        "SELECT tool, status, CASE WHEN finished_at > started_at"
        " THEN finished_at - started_at ELSE 0 END AS d FROM ledger"
        " WHERE finished_at IS NOT NULL) AS finished GROUP BY tool, status"
    )


def read_ledger(snapshot: Snapshot) -> None:
    """Fill the step numbers from the ledger of the domain database runs use (blocking)."""
    stores = SERVICES.stores
    with stores.lock:
        step_rows = list(stores.domain.execute(_step_query()))
        status_rows = list(
            stores.domain.execute("SELECT status, COUNT(*) FROM ledger GROUP BY status")
        )
    steps: dict[tuple[str, str], StepStats] = {}
    for row in step_rows:
        tool, status, total, seconds, *counts = row
        steps[(str(tool), str(status))] = StepStats(
            counts=[int(c or 0) for c in counts], total=int(total), seconds=float(seconds or 0)
        )
    snapshot.steps = steps
    snapshot.ledger = {str(status): int(n) for status, n in status_rows}


class PlanboundMetrics(Collector):
    """A Prometheus collector over the latest :class:`Snapshot`."""

    def __init__(self) -> None:
        self.snapshot = Snapshot()
        self._lock = asyncio.Lock()

    async def refresh(self) -> Snapshot:
        """Re-read the checkpoints and the ledger; a source that fails is reported down."""
        async with self._lock:
            snap = Snapshot(
                runs=self.snapshot.runs,
                approvals_pending=self.snapshot.approvals_pending,
                approval_steps_pending=self.snapshot.approval_steps_pending,
                steps=self.snapshot.steps,
                ledger=self.snapshot.ledger,
            )
            try:
                await read_checkpoints(snap)
                snap.up["checkpoints"] = True
            except Exception:  # a database error must not break the scrape; reported as down
                log.warning("metrics: cannot read the checkpoints", exc_info=True)
                snap.up["checkpoints"] = False
            try:
                await asyncio.to_thread(read_ledger, snap)
                snap.up["domain"] = True
            except Exception:  # a database error must not break the scrape; reported as down
                log.warning("metrics: cannot read the ledger", exc_info=True)
                snap.up["domain"] = False
            snap.refreshed_at = time.time()
            self.snapshot = snap
            return snap

    def describe(self) -> Iterable[Metric]:
        """Return the metric families without touching any data."""
        return list(self._families(Snapshot()))

    def collect(self) -> Iterable[Metric]:
        """Return the metric families of the latest snapshot."""
        return list(self._families(self.snapshot))

    def _families(self, snap: Snapshot) -> Iterator[Metric]:
        runs = GaugeMetricFamily(
            "planbound_runs",
            "Threads by the status of their latest checkpoint (awaiting_approval when a review"
            " is pending).",
            labels=["status"],
        )
        for status, n in sorted(snap.runs.items()):
            runs.add_metric([status], n)
        yield runs
        yield GaugeMetricFamily(
            "planbound_approvals_pending",
            "Threads waiting for a reviewer's answer.",
            value=snap.approvals_pending,
        )
        yield GaugeMetricFamily(
            "planbound_approval_steps_pending",
            "Plan steps waiting for a reviewer's decision, over all threads.",
            value=snap.approval_steps_pending,
        )
        hist = HistogramMetricFamily(
            "planbound_step_duration_seconds",
            "Wall time of executed plan steps (tool calls with their retries), from the ledger.",
            labels=["tool", "status"],
        )
        for (tool, status), stats in sorted(snap.steps.items()):
            buckets = [(repr(b), c) for b, c in zip(BUCKETS, stats.counts, strict=True)]
            hist.add_metric(
                [tool, status], buckets=[*buckets, ("+Inf", stats.total)], sum_value=stats.seconds
            )
        yield hist
        ledger = GaugeMetricFamily(
            "planbound_ledger_steps",
            "Ledger rows (executed or started plan steps) by status.",
            labels=["status"],
        )
        for status, n in sorted(snap.ledger.items()):
            ledger.add_metric([status], n)
        yield ledger
        up = GaugeMetricFamily(
            "planbound_source_up",
            "Whether the last refresh could read the source (checkpoints, domain).",
            labels=["source"],
        )
        for source, ok in sorted(snap.up.items()):
            up.add_metric([source], 1.0 if ok else 0.0)
        yield up
        yield GaugeMetricFamily(
            "planbound_metrics_refreshed_timestamp_seconds",
            "When the numbers above were read (Unix time).",
            value=snap.refreshed_at,
        )


class RefreshOnScrape:
    """ASGI middleware: refresh the snapshot before ``GET /metrics`` is answered.

    The LangGraph server answers ``/metrics`` itself from the process-wide Prometheus
    registry, where the collector is registered; this makes that answer current.
    """

    def __init__(self, app: ASGIApp, metrics: PlanboundMetrics, path: str = "/metrics") -> None:
        self.app = app
        self.metrics = metrics
        self.path = path

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Refresh on a metrics scrape, then hand the request on."""
        if (
            scope["type"] == "http"
            and scope.get("method") in ("GET", "HEAD")
            and scope.get("path") == self.path
        ):
            await self.metrics.refresh()
        await self.app(scope, receive, send)
