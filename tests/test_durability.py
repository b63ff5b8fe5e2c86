"""Durable execution: a process killed at every pause point, lost connections, concurrency.

Crash tests run ``planbound`` as real subprocesses on a real PostgreSQL (and on SQLite where
cheap), SIGKILL them at a named pause point, recover the thread in a new process (killed in
turn at the next point of the scenario) and compare the end with an uninterrupted run's,
write by write. Scenarios share a few databases, reseeded between runs, in parallel.
"""

from __future__ import annotations

import copy
import json
import os
import select
import signal
import subprocess
import sys
import threading
import time
import traceback
import uuid
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
import pytest
from answering import answer_for, naming
from conftest import PG_ADMIN

from checkpoints.factory import Stores
from checkpoints.ledger import Approvals, Ledger
from graph.runner import RunError, Runner
from graph.services import Services, open_stores
from guards.judgement import approval_digest, bound_args
from guards.plan import Plan, Step, resolve_refs
from tools.retail import export, load_shipped, seed
from tools.retail.db import OPTIONAL_ORDER_KEYS as OPTIONAL

PLANBOUND = str(Path(sys.executable).parent / "planbound")
FATIMA = "fatima_anderson_2157"
EMAIL = "fatima.anderson1447@example.com"
ORDER = "#W2974929"  # pending, 182.03, paid with paypal_7916550
ADDRESS = {
    "address1": "1 Main St",
    "address2": "",
    "city": "Austin",
    "state": "TX",
    "country": "USA",
    "zip": "78701",
}
PLAN: dict[str, Any] = {
    "goal": "move fatima, send her pending order to the new address, then cancel it",
    "steps": [
        {"id": "who", "tool": "find_user_id_by_email", "args": {"email": EMAIL}},
        {
            "id": "move",
            "tool": "modify_user_address",
            "depends_on": ["who"],
            "args": {"user_id": "$who", **ADDRESS},
        },
        {
            "id": "addr",
            "tool": "modify_pending_order_address",
            "depends_on": ["move"],
            "args": {"order_id": ORDER, **ADDRESS},
        },
        {
            "id": "cancel",
            "tool": "cancel_pending_order",
            "depends_on": ["addr"],
            "args": {"order_id": ORDER, "reason": "no longer needed"},
        },
    ],
}
ISABELLA = "isabella.lopez3271@example.com"
ISABELLA_ORDER = "#W4923227"  # pending, 321.18, paid with credit_card_8554680
UNDONE_PLAN: dict[str, Any] = {
    "goal": "move isabella, then change her order's payment twice (the second change fails)",
    "steps": [
        {"id": "who", "tool": "find_user_id_by_email", "args": {"email": ISABELLA}},
        {
            "id": "move",
            "tool": "modify_user_address",
            "depends_on": ["who"],
            "args": {"user_id": "$who", **ADDRESS},
        },
        {
            "id": "pay1",
            "tool": "modify_pending_order_payment",
            "depends_on": ["move"],
            "args": {"order_id": ISABELLA_ORDER, "payment_method_id": "paypal_1621947"},
        },
        {
            "id": "pay2",
            "tool": "modify_pending_order_payment",
            "depends_on": ["pay1"],
            "args": {"order_id": ISABELLA_ORDER, "payment_method_id": "credit_card_8897086"},
        },
    ],
}
PLANS = {"move_and_cancel": PLAN, "undone": UNDONE_PLAN}
STEPS = ("who", "move", "addr", "cancel")
WRITES = ("move", "addr", "cancel")
ALL_DONE = [(s, "succeeded", 1) for s in STEPS]


APPROVE_ALL = {"decisions": [{"type": "approve"}] * 3, "reviewer": "rev", "role": "reviewer"}
ENV_KEYS = ("PLANBOUND_DATABASE_URI", "DATABASE_URI", "PLANBOUND_PAUSE_AT", "PLANBOUND_PAUSE_S")


def plan_writes(plan: dict[str, Any]) -> list[str]:
    return [s["id"] for s in plan["steps"] if s["tool"] != "find_user_id_by_email"]


@pytest.fixture(scope="module", autouse=True)
def clean_env() -> Iterator[None]:
    """Storage and pause points come from each test, never from the caller's environment."""
    with pytest.MonkeyPatch.context() as mp:
        for key in ENV_KEYS:
            mp.delenv(key, raising=False)
        yield


# Subprocesses ------------------------------------------------------------------------------


def cli_env(uri: str | None, pause_at: str | None = None, pause_s: float = 60) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ENV_KEYS}
    if uri is not None:
        env["PLANBOUND_DATABASE_URI"] = uri
    if pause_at is not None:
        env["PLANBOUND_PAUSE_AT"] = pause_at
        env["PLANBOUND_PAUSE_S"] = str(pause_s)
    return env


@dataclass
class Done:
    code: int
    out: dict[str, Any]
    stderr: str


def planbound(home: Path, uri: str | None, *args: str) -> Done:
    """Run ``planbound ARGS --home HOME --json`` to the end; return its one JSON object."""
    proc = subprocess.run(
        [PLANBOUND, *args, "--home", str(home), "--json"],
        env=cli_env(uri),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    lines = [line for line in proc.stdout.splitlines() if line.strip()]
    assert len(lines) == 1, f"planbound {args}: {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    return Done(proc.returncode, json.loads(lines[0]), proc.stderr)


def spawn(
    home: Path, uri: str | None, pause_at: str, *args: str, pause_s: float = 60
) -> subprocess.Popen[bytes]:
    """Start ``planbound ARGS`` in its own session, set to pause at ``pause_at``."""
    return subprocess.Popen(
        [PLANBOUND, *args, "--home", str(home), "--json"],
        env=cli_env(uri, pause_at, pause_s),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )


def wait_paused(proc: subprocess.Popen[bytes], timeout: float = 60) -> str:
    """Block until the process reports ``planbound: paused at NAME``; return NAME."""
    assert proc.stderr is not None
    fd, seen, deadline = proc.stderr.fileno(), b"", time.monotonic() + timeout
    marker = b"planbound: paused at "
    while True:
        if marker in seen and b"\n" in seen[seen.index(marker) :]:
            line = seen[seen.index(marker) :].split(b"\n", 1)[0]
            return line[len(marker) :].decode()
        left = deadline - time.monotonic()
        ready, _, _ = select.select([fd], [], [], max(left, 0))
        if not ready:
            kill(proc)
            raise AssertionError(f"no pause within {timeout}s; stderr so far:\n{seen.decode()}")
        chunk = os.read(fd, 65536)
        if not chunk:
            out = proc.stdout.read().decode() if proc.stdout else ""
            proc.wait()
            raise AssertionError(
                f"exited ({proc.returncode}) without pausing\n{out}\n{seen.decode()}"
            )
        seen += chunk


def kill(proc: subprocess.Popen[bytes]) -> str:
    """SIGKILL the process group; return what the process had printed on stdout."""
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    out = proc.stdout.read().decode() if proc.stdout else ""
    for pipe in (proc.stdout, proc.stderr):
        if pipe is not None:
            pipe.close()
    return out


# Domain helpers ----------------------------------------------------------------------------


def reseed(stores: Stores) -> None:
    with stores.lock:
        seed(stores.domain, load_shipped())


def ledger_of(stores: Stores, decision_id: str) -> list[tuple[str, str, int]]:
    with stores.lock:
        return [(r.step_id, r.status, r.attempts) for r in Ledger(stores.domain).rows(decision_id)]


def approvals_of(stores: Stores, decision_id: str) -> list[tuple[str, str, str]]:
    with stores.lock:
        rows = Approvals(stores.domain).rows(decision_id)
    return sorted((r.step_id, r.reviewer, r.digest) for r in rows)


def claims_of(stores: Stores, thread_id: str) -> list[str]:
    with stores.lock:
        cur = stores.domain.execute(
            "SELECT reviewer FROM review_claims WHERE thread_id = ?", (thread_id,)
        )
        return [str(r[0]) for r in cur.fetchall()]


def domain_matches_ledger(stores: Stores, decision_id: str | None) -> bool:
    """Whether the domain holds the shipped data plus exactly the writes the ledger committed.

    Each ``succeeded`` row's after-images must be in place; a ``started`` row (its
    transaction died) and a ``compensated`` row (undone) must have left no trace.
    """
    with stores.lock:
        rows = Ledger(stores.domain).rows(decision_id) if decision_id else []
        now = export(stores.domain)
    want = load_shipped()
    for row in rows:
        if row.status == "succeeded":
            for change in row.changes:
                doc = json.loads(change["after"])
                if change["table"] == "orders":  # as exported: unset optional keys left out
                    doc = {k: v for k, v in doc.items() if v is not None or k not in OPTIONAL}
                want[change["table"]][change["key"]] = doc
    return now == want


def digests(
    outcome: dict[str, Any], reviewer: str, steps: Iterable[str]
) -> list[tuple[str, str, str]]:
    """The approvals a run must have consumed: one per applied write, bound to its exact call.

    A call whose arguments hold references is bound to the values they resolved to.
    """
    plan = Plan.model_validate(outcome["plan"])
    services = Services()
    catalog, policy = services.catalog.version, services.policy.version
    outputs = {r["step_id"]: r.get("output") for r in outcome["results"] if r["ok"]}

    def bound(step: Step) -> dict[str, Any] | None:
        return bound_args(step, resolve_refs(step.args, outputs, step.id))

    return sorted(
        (s.id, reviewer, approval_digest(s, plan.id, catalog, policy, bound(s)))
        for s in plan.steps
        if s.id in steps
    )


def summary(outcome: dict[str, Any]) -> dict[str, Any]:
    """An outcome without its ids: what an uninterrupted run and a resumed one share."""
    return {
        "status": outcome["status"],
        "error": outcome["error"],
        "compensation": outcome["compensation"],
        "results": [
            (r["step_id"], r["ok"], r["attempts"], r["compensated"], r.get("output"))
            for r in outcome["results"]
        ],
    }


def refunds(data: dict[str, Any], order_id: str = ORDER) -> list[dict[str, Any]]:
    history = data["orders"][order_id]["payment_history"]
    return [p for p in history if p["transaction_type"] == "refund"]


@dataclass(frozen=True)
class Baseline:
    """A plan run uninterrupted: its domain afterwards, outcome, ledger and approvals."""

    exported: dict[str, Any]
    summary: dict[str, Any]
    ledger: list[tuple[str, str, int]]
    approved: list[str]


@pytest.fixture(scope="module")
def baselines(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Baseline]:
    """Each plan run uninterrupted, in process, on its own SQLite store."""
    found: dict[str, Baseline] = {}
    for name, plan in PLANS.items():
        stores = open_stores(tmp_path_factory.mktemp(f"baseline-{name}"))
        try:
            reseed(stores)
            runner = Runner(stores)
            first = runner.start(explicit_plan=plan, thread_id="baseline")
            assert first["status"] == "awaiting_approval", first
            assert [p["step_id"] for p in first["pending"]] == plan_writes(plan)
            done = runner.resume("baseline", naming(first, APPROVE_ALL))
            approvals = approvals_of(stores, done["decision_id"])
            found[name] = Baseline(
                exported=export(stores.domain),
                summary=summary(done),
                ledger=ledger_of(stores, done["decision_id"]),
                approved=[step for step, _, _ in approvals],
            )
            assert approvals == digests(done, "rev", found[name].approved)
        finally:
            stores.close()

    shipped = load_shipped()
    main = found["move_and_cancel"]
    assert main.summary["status"] == "completed"
    assert main.ledger == [(s, "succeeded", 1) for s in STEPS]
    assert main.approved == sorted(WRITES)
    data = main.exported
    assert data["users"][FATIMA]["address"] == ADDRESS != shipped["users"][FATIMA]["address"]
    assert data["orders"][ORDER]["address"] == ADDRESS
    assert data["orders"][ORDER]["status"] == "cancelled"
    assert refunds(data) == [
        {"transaction_type": "refund", "amount": 182.03, "payment_method_id": "paypal_7916550"}
    ]
    assert {k for k in data["orders"] if data["orders"][k] != shipped["orders"][k]} == {ORDER}

    undone = found["undone"]
    assert undone.summary["status"] == "rolled_back"
    assert undone.summary["compensation"] == [
        "pay1: undid modify_pending_order_payment (1 record(s) restored)",
        "move: undid modify_user_address (1 record(s) restored)",
    ]
    assert undone.ledger == [
        ("who", "succeeded", 1),
        ("move", "compensated", 1),
        ("pay1", "compensated", 1),
        ("pay2", "failed", 1),
    ]
    assert undone.approved == ["move", "pay1"]  # pay2's approval went with its rollback
    assert undone.exported == shipped
    return found


@pytest.fixture(scope="module")
def expected(baselines: dict[str, Baseline]) -> dict[str, Any]:
    """The domain after :data:`PLAN` ran uninterrupted."""
    return baselines["move_and_cancel"].exported


# Crash tests -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Crash:
    """Kill ``planbound <during>`` at ``points[0]``, then each recovery at the next point.

    ``recovery`` is what brings the thread to its end, in order: ``resume`` and ``approve``
    are new ``planbound`` processes (``!``: killed at the next point), ``answer`` answers a
    review that was first asked after the crash (in this process: it is not under test).
    """

    points: tuple[str, ...]
    during: str  # "run" or "approve"
    recovery: tuple[str, ...]
    backend: str = "postgres"
    plan: str = "move_and_cancel"

    @property
    def name(self) -> str:
        return "-".join([self.backend, self.plan, self.during, "+".join(self.points)])


RUN_CRASHES = [
    Crash((point,), "run", ("resume", "answer"))
    for point in ("node:intake", "node:plan", "node:verify", "node:approve")
]
APPROVE_CRASHES = [
    # The claimed answer had not taken effect: answering again takes the dead claim over;
    # that answer is killed once applied, and so is the resume after it.
    Crash(
        ("node:approve", "node:execute", "node:finalize"),
        "approve",
        ("approve!", "resume!", "resume"),
    ),
    # Inside each write step: before the call, with the writes in the open transaction, and
    # after the commit, each in the process that recovered from the kill before.
    *(
        Crash(
            (f"step:{step}:before_call", f"step:{step}:before_commit", f"step:{step}:after_commit"),
            "approve",
            ("resume!", "resume!", "resume"),
        )
        for step in WRITES
    ),
    # A failed step's compensation, killed before it starts and after one undo of two.
    Crash(
        ("node:compensate", "compensate:pay1:after_commit"),
        "approve",
        ("resume!", "resume"),
        plan="undone",
    ),
]
SQLITE_CRASHES = [
    Crash(("node:approve",), "approve", ("approve",), "sqlite"),
    Crash(
        ("step:addr:before_commit", "step:cancel:after_commit"),
        "approve",
        ("resume!", "resume"),
        "sqlite",
    ),
]
CRASHES = [*RUN_CRASHES, *APPROVE_CRASHES, *SQLITE_CRASHES]


def expected_after_kill(point: str, crash: Crash) -> tuple[str | None, list[tuple[str, str]]]:
    """The thread's status and its ledger just after a kill at ``point``."""
    ok = "succeeded"
    if crash.plan == "undone":
        undo = "compensated" if point.startswith("compensate:") else ok
        return "executing", [("who", ok), ("move", ok), ("pay1", undo), ("pay2", "failed")]
    if crash.during == "run":
        status = {
            "node:intake": None,
            "node:plan": "planning",
            "node:verify": "planning",
            "node:approve": "verified",
        }[point]
        return status, []
    if point == "node:approve":
        return "awaiting_approval", []
    if point == "node:execute":
        return "approved", []
    if point == "node:finalize":
        return "executing", [(s, ok) for s in STEPS]
    _, step, where = point.split(":")
    before = [(s, ok) for s in STEPS[: STEPS.index(step)]]
    # The read before the first write runs in that write's super-step: the last checkpoint
    # is still the approved one.
    status = "approved" if STEPS.index(step) == 1 else "executing"
    return status, [*before, (step, ok if where == "after_commit" else "started")]


@dataclass(frozen=True)
class Kill:
    """One SIGKILL and what the stores showed right after it."""

    point: str
    stdout: str
    status: str | None
    ledger: list[tuple[str, str]]
    consistent: bool


@dataclass
class Recovery:
    """What happened to one crash, gathered for the assertions."""

    crash: Crash
    kills: list[Kill] = field(default_factory=list)
    commands: list[str] = field(default_factory=list)
    final: dict[str, Any] = field(default_factory=dict)
    ledger: list[tuple[str, str, int]] = field(default_factory=list)
    approvals: list[tuple[str, str, str]] = field(default_factory=list)
    claims: list[str] = field(default_factory=list)
    exported: dict[str, Any] = field(default_factory=dict)
    error: str | None = None


@dataclass
class Lane:
    """One PostgreSQL database that crash scenarios share, one at a time, by reseeding."""

    uri: str
    home: Path
    stores: Stores | None = None


def crash_and_recover(crash: Crash, lane: Lane, scratch: Path) -> Recovery:
    """Start the plan, kill ``planbound`` at the crash's point(s), recover it in new ones.

    Only the processes under test are subprocesses: where the kill comes later, the run is
    started in this process, and a review asked only after recovery is answered here too.
    """
    rec = Recovery(crash)
    thread = f"crash-{uuid.uuid4().hex[:8]}"
    sqlite = crash.backend == "sqlite"
    home = scratch / thread if sqlite else lane.home
    uri = None if sqlite else lane.uri
    if sqlite:
        stores = open_stores(home)
    else:
        assert lane.stores is not None
        stores = lane.stores
    try:
        reseed(stores)
        runner = Runner(stores)

        def killed(point: str, *args: str) -> None:
            proc = spawn(home, uri, point, *args)
            paused_at = wait_paused(proc)
            stdout = kill(proc)
            after = runner.outcome(thread)
            decision_id = after["decision_id"]
            rows = ledger_of(stores, decision_id) if decision_id else []
            rec.kills.append(
                Kill(
                    point=paused_at,
                    stdout=stdout,
                    status=after["status"],
                    ledger=[(step, status) for step, status, _ in rows],
                    consistent=domain_matches_ledger(stores, decision_id),
                )
            )

        if crash.during == "run":
            plan_file = scratch / f"{crash.plan}.json"
            killed(crash.points[0], "run", "--plan", str(plan_file), "--thread", thread)
        else:
            started = runner.start(explicit_plan=PLANS[crash.plan], thread_id=thread)
            assert started["status"] == "awaiting_approval", started
            killed(crash.points[0], "approve", thread, "--all", "--approve", "--reviewer", "rev")

        later = list(crash.points[1:])
        for _ in range(6):
            status = runner.outcome(thread)["status"]
            if status in ("completed", "failed", "refused", "rejected", "rolled_back"):
                break
            if status == "awaiting_approval" and crash.during == "run":
                rec.commands.append("answer")
                shown = runner.outcome(thread)
                runner.resume(thread, naming(shown, {**APPROVE_ALL, "reviewer": "rev2"}))
                continue
            args: tuple[str, ...] = ("resume", thread)
            if status == "awaiting_approval":
                args = ("approve", thread, "--all", "--approve", "--reviewer", "rev2")
            if later:
                killed(later.pop(0), *args)
                rec.commands.append(f"{args[0]}!")
                continue
            rec.commands.append(args[0])
            done = planbound(home, uri, *args)
            assert done.code == 0, (done.out, done.stderr)

        rec.final = runner.outcome(thread)
        decision_id = rec.final["decision_id"]
        rec.ledger = ledger_of(stores, decision_id)
        rec.approvals = approvals_of(stores, decision_id)
        rec.claims = claims_of(stores, thread)
        with stores.lock:
            rec.exported = export(stores.domain)
    except Exception:
        rec.error = traceback.format_exc()
    finally:
        if sqlite:
            stores.close()
    return rec


LANES = 3


@pytest.fixture(scope="module")
def recoveries(
    tmp_path_factory: pytest.TempPathFactory, baselines: dict[str, Baseline]
) -> Iterator[dict[str, Recovery]]:
    """Every crash of :data:`CRASHES`, run on a few databases in parallel."""
    scratch = tmp_path_factory.mktemp("crashes")
    for name, plan in PLANS.items():
        (scratch / f"{name}.json").write_text(json.dumps(plan))
    names = [f"pb_durability_lane{i}_{uuid.uuid4().hex[:8]}" for i in range(LANES)]
    lanes: list[Lane] = []
    with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
        for name in names:
            admin.execute(f'CREATE DATABASE "{name}"')
    try:
        for i, name in enumerate(names):
            lane = Lane(PG_ADMIN.rsplit("/", 1)[0] + "/" + name, scratch / f"lane{i}")
            lane.stores = open_stores(lane.home, uri=lane.uri)
            lanes.append(lane)
        queue = list(CRASHES)
        mutex = threading.Lock()
        found: dict[str, Recovery] = {}

        def work(lane: Lane) -> None:
            while True:
                with mutex:
                    if not queue:
                        return
                    crash = queue.pop(0)
                rec = crash_and_recover(crash, lane, scratch)
                with mutex:
                    found[crash.name] = rec

        with ThreadPoolExecutor(LANES) as pool:
            list(pool.map(work, lanes))
        yield found
    finally:
        for lane in lanes:
            if lane.stores is not None:
                lane.stores.close()
        with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
            for name in names:
                admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.mark.parametrize("crash", CRASHES, ids=[c.name for c in CRASHES])
def test_killed_at_a_pause_point_resumes_to_the_uninterrupted_state_exactly_once(
    crash: Crash, recoveries: dict[str, Recovery], baselines: dict[str, Baseline]
) -> None:
    rec, base = recoveries[crash.name], baselines[crash.plan]
    assert rec.error is None, rec.error

    # After each kill: nothing was reported, the ledger says how far the run got, and the
    # domain holds exactly the writes the ledger committed.
    assert [k.point for k in rec.kills] == list(crash.points)
    for k in rec.kills:
        assert k.stdout == ""
        assert (k.status, k.ledger) == expected_after_kill(k.point, crash)
        assert k.consistent, k

    assert rec.commands == list(crash.recovery)
    # Whoever answered last had their answer applied (a killed answer was applied first).
    answered = [c for c in rec.commands if c.rstrip("!") in ("approve", "answer")]
    answered_by = "rev2" if answered else "rev"

    # The end is the uninterrupted run's, write by write, each applied exactly once.
    assert summary(rec.final) == base.summary
    assert rec.exported == base.exported
    assert rec.ledger == base.ledger  # one outcome per step, each on its first attempt
    assert rec.approvals == digests(rec.final, answered_by, base.approved)  # consumed once
    assert rec.claims == [answered_by]  # one claim, held by whoever's answer took effect
    if crash.plan == "move_and_cancel":
        assert len(refunds(rec.exported)) == 1


def test_crash_matrix_covers_every_node_and_every_write_step() -> None:
    points = {p for c in CRASHES if c.backend == "postgres" for p in c.points}
    nodes = ("intake", "plan", "verify", "approve", "execute", "compensate", "finalize")
    assert {f"node:{n}" for n in nodes} <= points
    for step in WRITES:
        for where in ("before_call", "before_commit", "after_commit"):
            assert f"step:{step}:{where}" in points
    assert {c.during for c in CRASHES if "node:approve" in c.points} == {"run", "approve"}
    assert len({c.name for c in CRASHES}) == len(CRASHES)
    for c in CRASHES:
        assert len(c.points) == 1 + sum(r.endswith("!") for r in c.recovery)


# Lost connections --------------------------------------------------------------------------


def terminate_sessions(uri: str) -> int:
    """Kill every server session on the database of ``uri``; return how many."""
    name = uri.rsplit("/", 1)[1]
    with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
        row = admin.execute(
            "SELECT count(*) FILTER (WHERE pg_terminate_backend(pid)) FROM pg_stat_activity"
            " WHERE datname = %s AND pid <> pg_backend_pid()",
            (name,),
        ).fetchone()
    assert row is not None
    return int(row[0])


def test_connections_killed_mid_step_fail_the_run_then_resume_applies_it_once(
    pg_uri: str, tmp_path: Path, expected: dict[str, Any]
) -> None:
    home, thread = tmp_path / "home", "terminated"
    stores = open_stores(home, uri=pg_uri)
    reseed(stores)
    assert Runner(stores).start(explicit_plan=PLAN, thread_id=thread)["status"] == (
        "awaiting_approval"
    )
    stores.close()

    proc = spawn(
        home,
        pg_uri,
        "step:cancel:before_commit",
        *("approve", thread, "--all", "--approve", "--reviewer", "rev"),
        pause_s=1,
    )
    assert wait_paused(proc) == "step:cancel:before_commit"
    assert terminate_sessions(pg_uri) >= 2  # the domain connection and the checkpointer's
    began = time.monotonic()
    out, err = proc.communicate(timeout=60)
    assert time.monotonic() - began < 30  # it fails, it does not hang
    assert proc.returncode == 2, (out, err.decode()[-3000:])
    failure = json.loads(out)
    assert failure["status"] is None and failure["thread_id"] == thread
    assert failure["error"].startswith(f"thread {thread} stopped: the database failed (")
    lost = ("terminating connection", "connection is lost", "connection is closed", "server closed")
    assert any(words in failure["error"] for words in lost), failure
    assert f"`planbound resume {thread}`" in failure["error"]

    stores = open_stores(home, uri=pg_uri)
    try:
        runner = Runner(stores)
        stopped = runner.outcome(thread)
        assert stopped["status"] == "executing"
        assert ledger_of(stores, stopped["decision_id"]) == [
            ("who", "succeeded", 1),
            ("move", "succeeded", 1),
            ("addr", "succeeded", 1),
            ("cancel", "started", 0),
        ]
        # The cancel's transaction died with its connection: only the committed writes show.
        assert domain_matches_ledger(stores, stopped["decision_id"])

        done = planbound(home, pg_uri, "resume", thread)
        assert done.code == 0 and done.out["status"] == "completed", done
        assert ledger_of(stores, done.out["decision_id"]) == ALL_DONE
        assert approvals_of(stores, done.out["decision_id"]) == digests(done.out, "rev", WRITES)
        with stores.lock:
            exported = export(stores.domain)
        assert exported == expected
        assert len(refunds(exported)) == 1
    finally:
        stores.close()


# Concurrency -------------------------------------------------------------------------------


def small_orders(count: int) -> list[tuple[str, str, str]]:
    """``(user_id, email, order_id)`` of distinct users with a pending order under $1000."""
    data = load_shipped()
    found: list[tuple[str, str, str]] = []
    for order_id, order in data["orders"].items():
        user_id = order["user_id"]
        total = sum(float(i["price"]) for i in order["items"])
        if order["status"] != "pending" or total >= 1000 or user_id == FATIMA:
            continue
        if any(user_id == u for u, _, _ in found):
            continue
        found.append((user_id, data["users"][user_id]["email"], order_id))
        if len(found) == count:
            return found
    raise AssertionError(f"only {len(found)} users with a small pending order")


def small_plan(i: int, email: str, order_id: str) -> list[dict[str, Any]]:
    if i % 2:
        return [
            {"id": "who", "name": "find_user_id_by_email", "arguments": {"email": email}},
            {
                "id": "w",
                "name": "modify_user_address",
                "arguments": {"user_id": "$who", **ADDRESS, "address1": f"{i} Main St"},
            },
        ]
    return [
        {"id": "who", "name": "find_user_id_by_email", "arguments": {"email": email}},
        {
            "id": "w",
            "name": "cancel_pending_order",
            "arguments": {"order_id": order_id, "reason": "ordered by mistake"},
        },
    ]


def after_small_plan(data: dict[str, Any], i: int, user_id: str, order_id: str) -> None:
    """Apply to ``data`` what :func:`small_plan` does (τ²'s semantics, gift cards included)."""
    user = data["users"][user_id]
    if i % 2:
        user["address"] = {**ADDRESS, "address1": f"{i} Main St"}
        return
    order = data["orders"][order_id]
    for entry in list(order["payment_history"]):
        order["payment_history"].append({**entry, "transaction_type": "refund"})
        method = user["payment_methods"][entry["payment_method_id"]]
        if method["source"] == "gift_card":
            method["balance"] = round(method["balance"] + entry["amount"], 2)
    order["status"] = "cancelled"
    order["cancel_reason"] = "ordered by mistake"


def test_fifty_runs_at_once_through_one_runner_on_postgres(pg_uri: str, tmp_path: Path) -> None:
    stores = open_stores(tmp_path / "home", uri=pg_uri)
    try:
        reseed(stores)
        runner = Runner(stores)
        picked = small_orders(50)
        barrier = threading.Barrier(len(picked))

        def one(i: int) -> tuple[dict[str, Any], dict[str, Any]]:
            _, email, order_id = picked[i]
            barrier.wait()
            first = runner.start(explicit_plan=small_plan(i, email, order_id), thread_id=f"c{i}")
            answer = answer_for(first, {"type": "approve"}, reviewer=f"r{i}")
            return first, runner.resume(f"c{i}", answer)

        with ThreadPoolExecutor(len(picked)) as pool:
            runs = list(pool.map(one, range(len(picked))))

        want = copy.deepcopy(load_shipped())
        for i, (first, done) in enumerate(runs):
            user_id, _, order_id = picked[i]
            assert first["status"] == "awaiting_approval", first
            assert [p["step_id"] for p in first["pending"]] == ["w"]
            assert done["status"] == "completed", done
            assert [(r["step_id"], r["ok"], r["attempts"]) for r in done["results"]] == [
                ("who", True, 1),
                ("w", True, 1),
            ]
            assert done["results"][0]["output"] == user_id
            assert ledger_of(stores, done["decision_id"]) == [
                ("who", "succeeded", 1),
                ("w", "succeeded", 1),
            ]
            assert [(s, r) for s, r, _ in approvals_of(stores, done["decision_id"])] == [
                ("w", f"r{i}")
            ]
            assert claims_of(stores, f"c{i}") == [f"r{i}"]
            after_small_plan(want, i, user_id, order_id)
        assert len({done["decision_id"] for _, done in runs}) == len(picked)
        with stores.lock:
            assert export(stores.domain) == want
    finally:
        stores.close()


def test_two_processes_answer_the_same_review_one_wins_the_step_runs_once(
    pg_uri: str, tmp_path: Path, expected: dict[str, Any]
) -> None:
    home, thread = tmp_path / "home", "raced"
    stores = open_stores(home, uri=pg_uri)
    try:
        reseed(stores)
        assert Runner(stores).start(explicit_plan=PLAN, thread_id=thread)["status"] == (
            "awaiting_approval"
        )
        # Both start together; whoever claims first holds the claim for a few seconds inside
        # the approve node (a slow answer), so the other always arrives while it is held.
        procs = {
            who: spawn(
                home,
                pg_uri,
                "node:approve",
                *("approve", thread, "--all", "--approve", "--reviewer", who),
                pause_s=3,
            )
            for who in ("ann", "bob")
        }
        ends: dict[str, tuple[int, dict[str, Any]]] = {}
        for who, proc in procs.items():
            out, err = proc.communicate(timeout=120)
            lines = [line for line in out.decode().splitlines() if line.strip()]
            assert len(lines) == 1, (out, err)
            assert proc.returncode is not None
            ends[who] = (proc.returncode, json.loads(lines[0]))
        winners = [w for w, (code, _) in ends.items() if code == 0]
        assert len(winners) == 1, ends
        winner = winners[0]
        loser = "bob" if winner == "ann" else "ann"
        assert ends[winner][1]["status"] == "completed"
        assert ends[loser] == (
            2,
            {
                "status": None,
                "thread_id": thread,
                "error": f"the review of thread {thread} was already decided by {winner}",
            },
        )
        done = ends[winner][1]
        assert ledger_of(stores, done["decision_id"]) == ALL_DONE
        assert approvals_of(stores, done["decision_id"]) == digests(done, winner, WRITES)
        assert claims_of(stores, thread) == [winner]
        with stores.lock:
            assert export(stores.domain) == expected
    finally:
        stores.close()


def test_two_threads_of_one_process_answer_the_same_review_one_wins(
    stores: Stores, monkeypatch: pytest.MonkeyPatch, expected: dict[str, Any]
) -> None:
    runner = Runner(stores)
    first = runner.start(explicit_plan=PLAN)
    thread = first["thread_id"]
    monkeypatch.setenv("PLANBOUND_PAUSE_AT", "node:approve")  # the winner answers slowly
    monkeypatch.setenv("PLANBOUND_PAUSE_S", "1")
    barrier = threading.Barrier(2)

    def answer(who: str) -> dict[str, Any] | str:
        barrier.wait()
        try:
            return runner.resume(thread, naming(first, {**APPROVE_ALL, "reviewer": who}))
        except RunError as exc:
            return str(exc)

    with ThreadPoolExecutor(2) as pool:
        ends = dict(zip(("ann", "bob"), pool.map(answer, ("ann", "bob")), strict=True))
    winners = [w for w, end in ends.items() if isinstance(end, dict)]
    assert len(winners) == 1, ends
    winner = winners[0]
    done = ends[winner]
    assert isinstance(done, dict) and done["status"] == "completed"
    loser = "bob" if winner == "ann" else "ann"
    assert ends[loser] == f"the review of thread {thread} was already decided by {winner}"
    assert ledger_of(stores, done["decision_id"]) == ALL_DONE
    assert approvals_of(stores, done["decision_id"]) == digests(done, winner, WRITES)
    with stores.lock:
        assert export(stores.domain) == expected
