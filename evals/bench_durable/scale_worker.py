"""One worker process of the scaling bench: its own stores, a fixed set of caller threads.

A worker is what one API replica is: it opens planbound's stores once (its own checkpointer
pool and domain connection), shares them among its callers, and runs what the parent sends
until told to stop. Its caller threads live as long as it does, so each builds its Rego
interpreter once (as a server's threads do), not once per measurement.

Commands (tuples on the worker's inbox; one reply each on the shared outbox):

* ``("read", n)``: each caller runs ``n`` read decisions; reply the latencies (ms).
* ``("start", turn)``: each caller starts one write decision on its own pending order and
  stops for review; reply ``(thread_id, answer, ms)`` per caller.
* ``("resume", items)``: answer each ``(thread_id, answer)`` at once, one caller each;
  reply ``("completed", ms)`` or ``("refused", reason)`` per item, in order.
* ``("stop",)``: close the stores and exit.
"""

from __future__ import annotations

import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from evals.bench_durable.workload import (
    ACTOR,
    APPROVE,
    READ_PLAN,
    WriteTarget,
    run_read,
    write_plan,
    write_targets,
)
from graph.errors import RunError
from graph.runner import Runner
from graph.services import open_stores

Reply = tuple[str, int, Any]
"""``(status, worker index, payload)``: status ``ok`` or ``error`` (payload: the error)."""


def _timed(job: Callable[[], Any]) -> tuple[Any, float]:
    start = time.perf_counter()
    out = job()
    return out, (time.perf_counter() - start) * 1000


class Worker:
    """The callers of one worker process, on the process's one set of stores."""

    def __init__(self, runner: Runner, targets: list[WriteTarget]) -> None:
        self.runner, self.targets = runner, targets
        self.pool = ThreadPoolExecutor(max_workers=len(targets), thread_name_prefix="caller")
        self.prime()

    def prime(self) -> None:
        """Build each caller thread's policy interpreter before anything is timed."""
        barrier = threading.Barrier(len(self.targets))

        def once() -> None:
            self.runner.explain(READ_PLAN, ACTOR)
            barrier.wait()  # holds this thread, so every caller thread gets one

        list(self.pool.map(lambda _: once(), range(len(self.targets))))

    def _fresh(self) -> None:
        # The bench repeats one plan on unchanged data: no decision reuses another's policy
        # answers (within a decision they are reused, as in production).
        self.runner.services.policy.forget()

    def read(self, n: int) -> list[float]:
        """Each caller runs ``n`` read decisions; the latency of each, ms."""

        def caller(_: int) -> list[float]:
            out = []
            for _ in range(n):
                self._fresh()
                out.append(_timed(lambda: run_read(self.runner))[1])
            return out

        return [ms for batch in self.pool.map(caller, range(len(self.targets))) for ms in batch]

    def start(self, turn: int) -> list[tuple[str, dict[str, Any], float]]:
        """Each caller starts a write on its order; ``(thread, answer, ms)`` for a reviewer."""

        def caller(target: WriteTarget) -> tuple[str, dict[str, Any], float]:
            self._fresh()
            plan = write_plan(target, turn)
            first, ms = _timed(lambda: self.runner.start(explicit_plan=plan, actor=ACTOR))
            if first["status"] != "awaiting_approval":
                raise RuntimeError(f"the write decision ended {first['status']}: {first['error']}")
            answer = {
                **APPROVE,
                "decision_id": first["decision_id"],
                "plan_id": first["plan"]["id"],
            }
            return str(first["thread_id"]), answer, ms

        return list(self.pool.map(caller, self.targets))

    def resume(self, items: list[tuple[str, dict[str, Any]]]) -> list[tuple[str, Any]]:
        """Answer every item at once; ``("completed", ms)`` or ``("refused", why)`` each.

        Raises:
            RuntimeError: an accepted answer did not complete its write.
        """

        def answer(item: tuple[str, dict[str, Any]]) -> tuple[str, Any]:
            thread_id, resume = item
            self._fresh()
            try:
                done, ms = _timed(lambda: self.runner.resume(thread_id, resume))
            except RunError as exc:  # another worker's answer won: refused, nothing written
                return "refused", str(exc)
            if done["status"] != "completed":
                raise RuntimeError(f"the approved write ended {done['status']}: {done['error']}")
            return "completed", ms

        if not items:
            return []
        with ThreadPoolExecutor(max_workers=len(items), thread_name_prefix="answer") as pool:
            return list(pool.map(answer, items))

    def close(self) -> None:
        """Stop the caller threads."""
        self.pool.shutdown(wait=True)


def serve(index: int, uri: str, first: int, callers: int, inbox: Any, outbox: Any) -> None:
    """Run worker ``index`` (callers ``first`` … ``first + callers - 1``) until ``stop``."""
    try:
        with tempfile.TemporaryDirectory(prefix="planbound-scale-") as home:
            stores = open_stores(home, uri=uri)
            try:
                targets = list(write_targets()[first : first + callers])
                worker = Worker(Runner(stores), targets)
                outbox.put(("ok", index, "ready"))
                try:
                    while True:
                        command = inbox.get()
                        if command[0] == "stop":
                            break
                        try:
                            outbox.put(("ok", index, _dispatch(worker, command)))
                        except Exception as exc:  # reported by the parent
                            outbox.put(("error", index, repr(exc)))
                finally:
                    worker.close()
            finally:
                stores.close()
    except BaseException as exc:  # reported by the parent
        outbox.put(("error", index, repr(exc)))


def _dispatch(worker: Worker, command: tuple[Any, ...]) -> Any:
    kind = command[0]
    if kind == "read":
        return worker.read(int(command[1]))
    if kind == "start":
        return worker.start(int(command[1]))
    if kind == "resume":
        return worker.resume(list(command[1]))
    raise ValueError(f"unknown command {kind!r}")
