"""Durable execution cost on PostgreSQL: planbound vs raw LangGraph vs one durable commit.

Run: ``python -m evals.bench_durable [--quick] [--uri postgresql://...]``. Without ``--uri``
it creates a throw-away database ``pb_bench_<random>`` on ``--admin-uri`` and drops it at the
end; with ``--uri`` it uses that (scratch!) database: the retail tables are re-seeded, bench
threads and ledger rows are written (the ``planbound_bench_floor`` table and, if the bench
created it, the ``pg_walinspect`` extension are dropped again).

Every measurement uses a read-only ten-step plan (find the user, nine lookups) so no approval
is needed, and compares it, in the same run, with:

* a raw LangGraph graph: one node that calls the same retail tools, one per super-step, on
  the same ``PostgresSaver`` and pool, ``durability="sync"``;
* the physical floor: one autocommit ``INSERT`` of a 1 KB row (one durable commit, with the
  server's ``synchronous_commit``) on a connection of the same pool.

It prints four tables: per-transition latency, throughput at several concurrencies, bytes
written per transition (relation sizes, row sizes, and this database's WAL via
``pg_walinspect`` when available), and where the time of one decision goes (cProfile self
time per component, and its top list). The targets of issue 4 are printed next to the
measured values; nothing is asserted.

Modules: :mod:`.workload` (the plan, targets, run sizes), :mod:`.setup` (database, stores),
:mod:`.baseline` (raw graph, floor commit), :mod:`.pgstats` (what the server wrote),
:mod:`.profiling` (CPU attribution), :mod:`.phases` (the measurements), :mod:`.report`
(the tables), :mod:`.cli` (options and the run).

``python -m evals.bench_durable.scale`` measures decisions/s against worker processes on one
database (1, 2, 4), with review answers handed between workers and raced, and checks that
each write decision is exactly once (:mod:`.scale`, :mod:`.scale_worker`).
"""

from evals.bench_durable.cli import main
from evals.bench_durable.phases import Results

__all__ = ["Results", "main"]
