"""Decisions/s against worker processes on one PostgreSQL, with exactly once checked.

Run: ``python -m evals.bench_durable.scale [--workers 1,2,4] [--concurrency 50] [--runs 3]``.
It creates a throw-away database (or uses ``--uri``, re-seeded), then for each worker count
starts that many worker processes (:mod:`.scale_worker`: each its own stores, like one API
replica) with the ``C`` callers split among them, and measures, ``--runs`` times:

* **read**: every caller runs ten-step read-only decisions;
* **write**: every caller starts a write that stops for review; each answer is then sent to
  *another* worker than the one that started it (the next one round the ring; itself when
  there is one), as a load balancer would spread reviewers' answers over replicas. A
  decision is the start, the review answer and the write; the rate counts both phases.

Then, untimed, a **race**: each new write decision's answer is sent to two workers at once
(two different processes when there are two or more). Exactly one may win: the other is
refused and writes nothing. Across all of it, on the database, every write decision must
have consumed one approval, taken one review claim and left one succeeded write, with no
ledger row left ``started``.

Prints a table (median, min and max over the runs) and one line for scripts::

    SCALE read_dps_w1=… read_dps_w2=… … read_scaling_w2=… … write_scaling_w4=… exactly_once=yes

Figures move with whatever else runs on the machine: the load average is printed with them.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import statistics
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from checkpoints.factory import redact
from evals.bench_durable.pgstats import once_counts
from evals.bench_durable.scale_worker import serve
from evals.bench_durable.setup import ADMIN_URI, bench_database, open_seeded, pool_of
from evals.bench_durable.workload import write_targets

TIMEOUT_S = 600.0
"""The longest one command may take in a worker before the bench gives up."""


@dataclass
class Sample:
    """One timed measurement: decisions, wall seconds and each decision's latency."""

    decisions: int
    wall_s: float
    latencies: list[float]

    @property
    def per_s(self) -> float:
        """Decisions per second."""
        return self.decisions / self.wall_s


@dataclass
class Row:
    """Every run of one workload at one worker count, and its exactly-once counts."""

    workload: str
    workers: int
    concurrency: int
    samples: list[Sample] = field(default_factory=list)
    once: dict[str, int] = field(default_factory=dict)
    expected: int = 0
    raced: int = 0
    won: int = 0
    refused: int = 0

    def median(self) -> float:
        """The median decisions/s over the runs."""
        return statistics.median(s.per_s for s in self.samples)

    def exactly_once(self) -> bool:
        """Every write decision: one approval, one claim, one write; each race lost once."""
        if self.workload != "write":
            return True
        n = self.expected
        counts = (self.once.get("approvals"), self.once.get("claims"), self.once.get("writes"))
        raced = self.won == self.refused == self.raced
        return counts == (n, n, n) and self.once.get("started") == 0 and raced


class Pool:
    """``workers`` worker processes sharing ``concurrency`` callers, on one database."""

    def __init__(self, uri: str, workers: int, concurrency: int) -> None:
        ctx = multiprocessing.get_context("spawn")
        self.outbox = ctx.Queue()
        self.inboxes = [ctx.Queue() for _ in range(workers)]
        shares = [concurrency // workers + (w < concurrency % workers) for w in range(workers)]
        self.procs, first = [], 0
        for w, share in enumerate(shares):
            proc = ctx.Process(
                target=serve, args=(w, uri, first, share, self.inboxes[w], self.outbox)
            )
            proc.start()
            self.procs.append(proc)
            first += share
        self.gather()  # every worker is ready (stores open, callers primed)

    def gather(self) -> list[Any]:
        """Every worker's reply to the last command, by worker index.

        Raises:
            RuntimeError: a worker failed (its error is named) or did not answer in time.
        """
        replies: dict[int, Any] = {}
        deadline = time.monotonic() + TIMEOUT_S
        while len(replies) < len(self.procs):
            status, index, payload = self.outbox.get(timeout=max(1.0, deadline - time.monotonic()))
            if status != "ok":
                raise RuntimeError(f"worker {index} failed: {payload}")
            replies[index] = payload
        return [replies[w] for w in range(len(self.procs))]

    def each(self, command: tuple[Any, ...]) -> list[Any]:
        """Send ``command`` to every worker; their replies."""
        for inbox in self.inboxes:
            inbox.put(command)
        return self.gather()

    def send(self, commands: list[tuple[Any, ...]]) -> list[Any]:
        """Send worker ``w`` the command ``commands[w]``; their replies."""
        for inbox, command in zip(self.inboxes, commands, strict=True):
            inbox.put(command)
        return self.gather()

    def close(self) -> None:
        """Stop the workers."""
        for inbox in self.inboxes:
            inbox.put(("stop",))
        for proc in self.procs:
            proc.join(timeout=60)
            if proc.is_alive():
                proc.terminate()
                proc.join()


@contextmanager
def worker_pool(uri: str, workers: int, concurrency: int) -> Iterator[Pool]:
    """A :class:`Pool`, stopped on exit."""
    pool = Pool(uri, workers, concurrency)
    try:
        yield pool
    finally:
        pool.close()


def measure_read(pool: Pool, per_caller: int) -> Sample:
    """Every caller of every worker runs ``per_caller`` read decisions at once."""
    start = time.perf_counter()
    replies = pool.each(("read", per_caller))
    wall = time.perf_counter() - start
    latencies = [ms for reply in replies for ms in reply]
    return Sample(len(latencies), wall, latencies)


def _handed_on(
    started: list[list[tuple[str, dict[str, Any], float]]], shift: int
) -> list[list[tuple[str, dict[str, Any]]]]:
    """Worker ``w``'s started decisions, to be answered by worker ``(w + shift) % N``."""
    n = len(started)
    out: list[list[tuple[str, dict[str, Any]]]] = [[] for _ in range(n)]
    for w, batch in enumerate(started):
        out[(w + shift) % n].extend((thread, answer) for thread, answer, _ in batch)
    return out


def measure_write(pool: Pool, rounds: int, turn: int) -> tuple[Sample, int]:
    """``rounds`` of: every caller starts a write, another worker answers it; (sample, turn).

    Raises:
        RuntimeError: an answer was refused (nothing else answered it).
    """
    wall, latencies = 0.0, []
    for _ in range(rounds):
        turn += 1
        start = time.perf_counter()
        started = pool.each(("start", turn))
        answered = pool.send([("resume", items) for items in _handed_on(started, 1)])
        wall += time.perf_counter() - start
        start_ms = {t: ms for batch in started for t, _, ms in batch}
        for items, outcomes in zip(_handed_on(started, 1), answered, strict=True):
            for (thread, _), (status, detail) in zip(items, outcomes, strict=True):
                if status != "completed":
                    raise RuntimeError(f"the only answer to {thread} was refused: {detail}")
                latencies.append(start_ms[thread] + float(detail))
    return Sample(len(latencies), wall, latencies), turn


def race(pool: Pool, turn: int) -> tuple[int, int, int]:
    """Answer each new write twice at once, from two workers; (decisions, won, refused).

    Raises:
        RuntimeError: an answer was refused for another reason than a lost race.
    """
    started = pool.each(("start", turn))
    n = len(started)
    first, second = _handed_on(started, 1), _handed_on(started, 2 if n > 2 else 0)
    answered = pool.send([("resume", a + b) for a, b in zip(first, second, strict=True)])
    outcomes = [o for batch in answered for o in batch]
    won = sum(1 for status, _ in outcomes if status == "completed")
    refused = [detail for status, detail in outcomes if status == "refused"]
    unexpected = [d for d in refused if "already" not in d and "not awaiting" not in d]
    if unexpected:
        raise RuntimeError(f"an answer was refused for another reason: {unexpected[0]}")
    return sum(len(b) for b in started), won, len(refused)


def measure(
    uri: str, workers: int, concurrency: int, runs: int, per_caller: int, rounds: int
) -> tuple[Row, Row]:
    """Both workloads at ``workers`` worker processes, ``runs`` times, then the race."""
    read, write = Row("read", workers, concurrency), Row("write", workers, concurrency)
    with tempfile.TemporaryDirectory(prefix="planbound-scale-") as home:
        stores = open_seeded(Path(home), uri)
        try:
            counts = pool_of(stores)
            before = once_counts(counts)
            with worker_pool(uri, workers, concurrency) as pool:
                measure_read(pool, 1)  # untimed: pools filled, caches warm
                _, turn = measure_write(pool, 1, 0)
                for _ in range(runs):
                    read.samples.append(measure_read(pool, per_caller))
                    sample, turn = measure_write(pool, rounds, turn)
                    write.samples.append(sample)
                write.raced, write.won, write.refused = race(pool, turn + 1)
            after = once_counts(counts)
        finally:
            stores.close()
    write.once = {k: after[k] - before[k] for k in after}
    write.once["started"] = after["started"]
    # The warm-up round, the timed rounds and the race: each write decision once.
    write.expected = concurrency * (1 + runs * rounds) + write.raced
    return read, write


def _scaling(rows: list[Row], row: Row) -> float:
    base = next(r for r in rows if r.workload == row.workload and r.workers == min_workers(rows))
    return row.median() / base.median()


def min_workers(rows: list[Row]) -> int:
    """The smallest worker count measured (the baseline of the scaling factor)."""
    return min(r.workers for r in rows)


def print_report(console: Console, rows: list[Row], load: str) -> str:
    """Print the table and the summary line; return the summary line."""
    table = Table(
        title=(
            "decisions/s by worker processes on one PostgreSQL (each worker its own stores; "
            "write answers go to another worker than the start)"
        ),
        title_justify="left",
    )
    for name in ("workload", "workers", "C", "runs", "decisions/s (median)", "min–max", "p50 ms",
                 "× vs fewest", "approvals / claims / writes", "started", "race won / refused",
                 "exactly once"):  # fmt: skip
        table.add_column(name, justify="left" if name == "workload" else "right")
    for row in rows:
        rates = [s.per_s for s in row.samples]
        p50 = statistics.median(statistics.median(s.latencies) for s in row.samples)
        counts = race = ""
        if row.workload == "write":
            counts = " / ".join(str(row.once.get(k)) for k in ("approvals", "claims", "writes"))
            counts += f" (expected {row.expected})"
            race = f"{row.won} / {row.refused} of {row.raced}"
        table.add_row(
            row.workload,
            str(row.workers),
            str(row.concurrency),
            str(len(row.samples)),
            f"{row.median():.1f}",
            f"{min(rates):.1f}–{max(rates):.1f}",
            f"{p50:.0f}",
            f"{_scaling(rows, row):.2f}",
            counts,
            str(row.once.get("started", "")) if row.workload == "write" else "",
            race,
            ("yes" if row.exactly_once() else "NO") if row.workload == "write" else "",
        )
    console.print(table)
    console.print(
        f"machine: {os.cpu_count()} cores, shared with whatever else runs; load {load}. "
        "A decision's CPU (planbound plus its PostgreSQL backend) is spread over the same "
        "cores as the workers: past the core count, more workers add contention, not CPU."
    )
    parts = [f"{r.workload}_dps_w{r.workers}={r.median():.1f}" for r in rows]
    base = min_workers(rows)
    parts += [f"{r.workload}_scaling_w{r.workers}={_scaling(rows, r):.2f}" for r in rows
              if r.workers != base]  # fmt: skip
    parts.append(f"exactly_once={'yes' if all(r.exactly_once() for r in rows) else 'no'}")
    line = "SCALE " + " ".join(parts)
    print(line)  # noqa: T201 -- the line scripts read, on stdout
    return line


def parse(argv: list[str] | None) -> argparse.Namespace:
    """The command line."""
    parser = argparse.ArgumentParser(
        prog="python -m evals.bench_durable.scale", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--workers", default="1,2,4", help="comma-separated worker counts")
    parser.add_argument("--concurrency", type=int, default=50, help="callers in all")
    parser.add_argument("--runs", type=int, default=3, help="timed runs per worker count")
    parser.add_argument("--reads", type=int, default=2, help="read decisions per caller a run")
    parser.add_argument("--rounds", type=int, default=2, help="write decisions per caller a run")
    parser.add_argument("--uri", help="a scratch PostgreSQL database to use (re-seeded)")
    parser.add_argument("--admin-uri", default=ADMIN_URI, help="where the throw-away db is made")
    args = parser.parse_args(argv)
    args.worker_counts = tuple(int(w) for w in args.workers.split(",") if w.strip())
    if not args.worker_counts or min(args.worker_counts) < 1:
        parser.error("--workers needs one or more counts of at least 1")
    if min(args.runs, args.reads, args.rounds) < 1:
        parser.error("--runs, --reads and --rounds must be at least 1")
    if not 1 <= args.concurrency <= len(write_targets()):
        parser.error(f"--concurrency must be 1 to {len(write_targets())} (write targets)")
    if args.concurrency < max(args.worker_counts):
        parser.error("--concurrency must be at least the largest worker count")
    return args


def main(argv: list[str] | None = None) -> list[Row]:
    """Run the scaling bench; print the table and the ``SCALE`` line; return the rows."""
    args = parse(argv)
    console = Console() if Console().is_terminal else Console(width=200)
    rows: list[Row] = []
    load_before = os.getloadavg()[0]
    with bench_database(args.uri, args.admin_uri) as uri:
        console.log(f"database {redact(uri)}")
        for workers in args.worker_counts:
            console.log(f"{workers} worker process(es), C={args.concurrency}, {args.runs} runs")
            rows.extend(measure(uri, workers, args.concurrency, args.runs, args.reads, args.rounds))
    rows.sort(key=lambda r: (r.workload != "read", r.workers))
    load = f"{load_before:.1f} at start, {os.getloadavg()[0]:.1f} at end (1 min)"
    print_report(console, rows, load)
    return rows


if __name__ == "__main__":
    main()
