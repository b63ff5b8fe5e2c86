"""planbound on the real LangGraph server (``langgraph dev``), driven by the real SDK.

One server for the module (:func:`langgraph_server.launch`): a fresh PostgreSQL database for
its checkpoints, a fresh seeded ``PLANBOUND_HOME`` and a token file with two requesters, a
reviewer and a supervisor; ``LANGSMITH_TRACING`` on without a key, pointed at a local
recorder that must receive no run. Each
test creates the threads it needs and cancels only orders no other test touches (each
test's orders are named where it is defined), and asserts counts as changes over what it
did, so any test passes alone or in any order.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import re
import secrets
import subprocess
import time
from collections.abc import Coroutine, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import httpx
import psycopg
import pytest
import yaml
from answering import naming
from langgraph_server import PG, ROOT, Server, free_port, launch
from langsmith_recorder import Recorder, serve
from starlette.testclient import TestClient

from checkpoints.audit import AuditLog
from checkpoints.ledger import Approvals, Ledger
from graph.server.review import stamp_reviewer
from graph.server.tokens import AuthConfigError, TokenTable, parse_table
from graph.services import Services, open_stores
from guards.compat import IGNORED
from tools.retail import RetailDB

ASSISTANT = "planbound"
APPROVE = {"decisions": [{"type": "approve"}]}

T = TypeVar("T")


@dataclass(frozen=True)
class Order:
    """A pending order of the shipped τ² data, and the customer who placed it."""

    email: str
    order_id: str
    reason: str = "no longer needed"

    @property
    def request(self) -> str:
        return f"I'm {self.email}. Please cancel my order {self.order_id}, reason: {self.reason}."


def run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coro)


@pytest.fixture(scope="module")
def recorder() -> Iterator[Recorder]:
    """A local LangSmith the server is pointed at, without a key: it must receive no run."""
    with serve() as rec:
        yield rec


@pytest.fixture(scope="module")
def live_server(tmp_path_factory: pytest.TempPathFactory, recorder: Recorder) -> Iterator[Server]:
    # Tracing is asked for but no key is set: nothing may be traced (see test_no_key_...).
    no_key = {"LANGSMITH_TRACING": "true", "LANGSMITH_ENDPOINT": recorder.url}
    with launch(tmp_path_factory.mktemp("server"), no_key) as server:
        yield server


@pytest.fixture
def server(live_server: Server) -> Iterator[Server]:
    """The module's server; what it logged during the test is shown when the test fails."""
    start = live_server.log_size()
    yield live_server
    # Captured output: pytest reports it with the failure, and only then.
    print(f"---- langgraph dev log during this test ----\n{live_server.log_since(start)}")


async def start_run(server: Server, who: str, order: Order) -> str:
    """Create a thread as ``who``, run the order's cancellation until it stops; its id."""
    client = server.client(who)
    thread = await client.threads.create()
    assert (thread["metadata"] or {}).get("owner") == who, thread
    out = await client.runs.wait(
        thread["thread_id"], ASSISTANT, input={"request": order.request}, durability="sync"
    )
    assert isinstance(out, dict) and out["status"] == "verified", out
    return str(thread["thread_id"])


async def awaiting_review(server: Server, who: str, order: Order) -> str:
    """Start ``who``'s run on ``order`` and check that it waits for a reviewer; its id."""
    thread_id = await start_run(server, who, order)
    thread = await server.client(who).threads.get(thread_id)
    assert thread["status"] == "interrupted", thread
    return thread_id


async def answer(server: Server, reviewer: str, thread_id: str, resume: Any) -> dict[str, Any]:
    """Resume ``thread_id`` as ``reviewer`` and return the run's output."""
    out = await server.client(reviewer).runs.wait(
        thread_id, ASSISTANT, command={"resume": resume}, durability="sync"
    )
    assert isinstance(out, dict), out
    return out


async def pending_threads(server: Server) -> set[str]:
    """Every thread a reviewer is asked to answer."""
    found = await server.client("rita").threads.search(status="interrupted", limit=1000)
    return {t["thread_id"] for t in found}


async def _refused(coro: Coroutine[Any, Any, Any]) -> tuple[int, str]:
    try:
        await coro
    except httpx.HTTPStatusError as exc:
        return exc.response.status_code, exc.response.text
    raise AssertionError("the request was accepted")


def _interrupt(thread: Any) -> dict[str, Any]:
    values = [i for batch in (thread.get("interrupts") or {}).values() for i in batch]
    assert len(values) == 1, thread.get("interrupts")
    return dict(values[0])


async def pending_interrupt(server: Server, thread_id: str) -> dict[str, Any]:
    """The thread's pending interrupt (``id`` and ``value``), as a reviewer reads it."""
    return _interrupt(await server.client("rita").threads.get(thread_id))


async def named(server: Server, thread_id: str, resume: dict[str, Any]) -> dict[str, Any]:
    """``resume`` naming the review pending on ``thread_id`` (its decision and plan)."""
    return naming((await pending_interrupt(server, thread_id))["value"], resume)


async def keyed(server: Server, thread_id: str, resume: Any) -> dict[str, Any]:
    """``resume`` keyed by the id of the interrupt pending on ``thread_id``."""
    return {(await pending_interrupt(server, thread_id))["id"]: resume}


def _values(state: Any) -> dict[str, Any]:
    values = state["values"]
    assert isinstance(values, dict), values
    return values


def _parse_metrics(text: str) -> dict[str, float]:
    out = {}
    for line in text.splitlines():
        if line.startswith("planbound_"):
            name, value = line.rsplit(" ", 1)
            out[name] = float(value)
    return out


def _metrics(url: str) -> dict[str, float]:
    return _parse_metrics(httpx.get(f"{url}/metrics", timeout=10).text)


def _delta(after: dict[str, float], before: dict[str, float], name: str) -> float:
    return after.get(name, 0.0) - before.get(name, 0.0)


# -- the server answers ----------------------------------------------------------------------


def test_health_ready_and_metrics_routes_answer(server: Server) -> None:
    assert httpx.get(f"{server.url}/healthz").json() == {"ok": True}
    ready = httpx.get(f"{server.url}/readyz")
    assert ready.status_code == 200, ready.text
    assert ready.json()["checks"] == {"checkpoints": "ok (postgres)", "domain": "ok"}
    metrics = httpx.get(f"{server.url}/metrics")
    assert metrics.status_code == 200
    assert metrics.headers["content-type"].startswith("text/plain")
    # The server's own /metrics shows planbound's counters from the process registry.
    for name, kind in (
        ("planbound_runs_total", "counter"),
        ("planbound_reviews_total", "counter"),
        ("planbound_step_duration_seconds", "histogram"),
        ("planbound_compensations_total", "counter"),
        ("planbound_policy_denials_total", "counter"),
    ):
        assert re.search(rf"^# TYPE {name} {kind}$", metrics.text, re.M)
    assert 'planbound_runs_total{status="completed"}' in metrics.text


def test_a_token_in_the_query_string_is_refused_and_never_logged(server: Server) -> None:
    secret = secrets.token_urlsafe(16)
    start = server.log_size()
    for param in ("token", "api_key"):
        url = f"{server.url}/threads/search?limit=1&{param}={secret}"
        assert httpx.post(url, json={"limit": 1}).status_code == 401
    # The access lines are written once the response is sent; wait for both.
    deadline = time.monotonic() + 10
    while server.log_since(start).count("[REDACTED]") < 2 and time.monotonic() < deadline:
        time.sleep(0.2)
    logged = server.log_since(start)
    assert "api_key=[REDACTED]" in logged and "token=[REDACTED]" in logged, logged
    assert secret not in server.log.read_text(errors="replace")


def test_no_token_unknown_token_and_studio_header_get_401(server: Server) -> None:
    body = {"limit": 1}
    assert httpx.post(f"{server.url}/threads/search", json=body).status_code == 401
    assert httpx.post(f"{server.url}/assistants/search", json=body).status_code == 401
    bad = {"Authorization": "Bearer not-a-known-token"}
    assert httpx.post(f"{server.url}/threads/search", json=body, headers=bad).status_code == 401
    studio = {"x-auth-scheme": "langsmith"}
    assert httpx.post(f"{server.url}/threads/search", json=body, headers=studio).status_code == 401
    # The Studio header changes nothing for a real token: the same handler decides.
    good = {"x-auth-scheme": "langsmith", "X-Api-Key": server.tokens["alice"]}
    assert httpx.post(f"{server.url}/threads/search", json=body, headers=good).status_code == 200


# -- a requester's run stops for review --------------------------------------------------------

# Owned by the test below; under the 1000 threshold, then over it (a supervisor must approve).
REVIEW_SMALL = Order("fatima.anderson1447@example.com", "#W2974929")
REVIEW_BIG = Order("evelyn.ahmed2006@example.com", "#W1416704")
REVIEW_OTHER = Order("ava.nguyen2868@example.com", "#W8367380", "ordered by mistake")


def test_requester_runs_stop_for_review_in_the_hitl_schema(server: Server) -> None:
    before = _metrics(server.url)

    async def go() -> None:
        small = await awaiting_review(server, "alice", REVIEW_SMALL)
        await awaiting_review(server, "alice", REVIEW_BIG)
        await awaiting_review(server, "bob", REVIEW_OTHER)
        alice = server.client("alice")
        value = _interrupt(await alice.threads.get(small))["value"]
        assert [a["name"] for a in value["action_requests"]] == ["cancel_pending_order"]
        (action,) = value["action_requests"]
        assert action["args"] == {"order_id": "#W2974929", "reason": "no longer needed"}
        assert action["step_id"] == "s3"
        (config,) = value["review_configs"]
        assert config["action_name"] == "cancel_pending_order"
        assert config["allowed_decisions"] == ["approve", "edit", "reject", "respond"]
        assert "order_id" in config["args_schema"]["properties"]
        state = await alice.threads.get_state(small)
        assert state["next"] == ["approve"]
        # The requester recorded with the run is the authenticated one.
        assert _values(state)["actor"] == "alice"

    run(go())
    after = _metrics(server.url)
    # Each run paused once for review; nothing ended.
    assert _delta(after, before, 'planbound_runs_total{status="awaiting_approval"}') == 3
    assert _delta(after, before, 'planbound_runs_total{status="completed"}') == 0


# Owned by the test below: alice's order, then bob's.
HIDDEN_ALICE = Order("mei.ahmed5231@example.com", "#W2631563")
HIDDEN_BOB = Order("aarav.nguyen1293@example.com", "#W2443586", "ordered by mistake")


def test_another_requester_can_neither_see_nor_answer_the_thread(server: Server) -> None:
    async def go() -> None:
        small = await awaiting_review(server, "alice", HIDDEN_ALICE)
        own = await awaiting_review(server, "bob", HIDDEN_BOB)
        bob = server.client("bob")
        assert (await _refused(bob.threads.get(small)))[0] == 404
        assert (await _refused(bob.threads.get_state(small)))[0] == 404
        assert (await _refused(bob.threads.get_history(small)))[0] == 404
        # Bob lists exactly the threads the server records as his, whoever else has threads.
        everyone = await server.client("rita").threads.search(limit=1000)
        bobs = {t["thread_id"] for t in everyone if (t["metadata"] or {}).get("owner") == "bob"}
        assert own in bobs and small not in bobs
        listed = {t["thread_id"] for t in await bob.threads.search(limit=1000)}
        assert listed == bobs
        code, _ = await _refused(bob.runs.wait(small, ASSISTANT, command={"resume": APPROVE}))
        assert code == 403
        code, _ = await _refused(
            bob.runs.wait(small, ASSISTANT, input={"request": HIDDEN_BOB.request})
        )
        assert code == 404
        assert (await server.client("alice").threads.get(small))["status"] == "interrupted"

    run(go())


# Owned by the test below (never cancelled).
OWN_THREAD = Order("olivia.lopez8783@example.com", "#W8955613")


def test_a_requester_cannot_answer_or_write_their_own_thread(server: Server) -> None:
    async def go() -> None:
        small = await awaiting_review(server, "alice", OWN_THREAD)
        alice = server.client("alice")
        code, text = await _refused(alice.runs.wait(small, ASSISTANT, command={"resume": APPROVE}))
        assert code == 403 and "reviewer" in text
        forged = {"approvals": [{"step_id": "s3", "digest": "x", "reviewer": "alice"}]}
        assert (await _refused(alice.threads.update_state(small, forged)))[0] == 403
        thread = await alice.threads.get(small)
        assert thread["status"] == "interrupted"

    run(go())


# Owned by the test below (cancelled by its last answer).
MALFORMED = Order("isabella.sanchez6218@example.com", "#W4386313")


def test_malformed_answers_are_refused_and_the_thread_stays_resumable(server: Server) -> None:
    async def go() -> None:
        small = await awaiting_review(server, "alice", MALFORMED)
        rita = server.client("rita")
        before = _interrupt(await rita.threads.get(small))
        history_before = len(await rita.threads.get_history(small, limit=100))
        cases = {
            "wrong count": {"decisions": [{"type": "approve"}, {"type": "approve"}]},
            "unknown step": {"decisions": [{"type": "approve", "step_id": "s9"}]},
            "bad type": {"decisions": [{"type": "maybe"}]},
            "not an object": "yes",
        }
        expected = {
            "wrong count": "expected 1 decisions",
            "unknown step": "'s9' is not awaiting review",
            "bad type": "must be one of approve, edit, reject",
            "not an object": "must be an object",
        }
        for name, resume in cases.items():
            if isinstance(resume, dict):
                resume = naming(before["value"], resume)
            code, text = await _refused(
                rita.runs.wait(small, ASSISTANT, command={"resume": resume})
            )
            assert code == 422, (name, text)
            assert expected[name] in json.loads(text)["detail"], (name, text)
        after = await rita.threads.get(small)
        assert after["status"] == "interrupted"
        assert _interrupt(after)["id"] == before["id"]
        assert len(await rita.threads.get_history(small, limit=100)) == history_before
        # Still resumable: a well-formed answer goes through.
        resume = await named(server, small, APPROVE)
        assert (await answer(server, "rita", small, resume))["status"] == "completed"

    run(go())


# -- reviewers answer ----------------------------------------------------------------------------

# Owned by the test below: alice's order (cancelled), then bob's (left awaiting review).
LISTED_ALICE = Order("daiki.jackson9202@example.com", "#W8306539")
LISTED_BOB = Order("ava.smith4465@example.com", "#W8328622")


def test_reviewer_lists_pending_threads_and_approves_as_themselves(server: Server) -> None:
    async def go() -> None:
        before = await pending_threads(server)
        small = await awaiting_review(server, "alice", LISTED_ALICE)
        other = await awaiting_review(server, "bob", LISTED_BOB)
        # Every requester's thread awaiting review is listed, and nothing else changed.
        assert await pending_threads(server) == before | {small, other}
        rita = server.client("rita")
        out = await answer(server, "rita", small, await named(server, small, APPROVE))
        assert out["status"] == "completed", out
        values = _values(await rita.threads.get_state(small))
        assert [(d["step_id"], d["type"], d["reviewer"]) for d in values["decisions"]] == [
            ("s3", "approve", "rita")
        ]
        assert values["decisions"][0]["roles"] == ["reviewer"]
        assert [(a["step_id"], a["reviewer"]) for a in values["approvals"]] == [("s3", "rita")]
        # The write happened once, recorded in the ledger under the run's decision.
        stores = open_stores(server.home, server.uri)
        try:
            order = RetailDB(stores.domain).get_order(LISTED_ALICE.order_id)
            rows = Ledger(stores.domain).rows(values["decision_id"])
            approvals = Approvals(stores.domain).rows(values["decision_id"])
        finally:
            stores.close()
        # The approval the write consumed is in the ledger's database, under the auth identity.
        assert [(a.step_id, a.reviewer, a.roles) for a in approvals] == [
            ("s3", "rita", ["reviewer"])
        ]
        assert order is not None and order["status"] == "cancelled"
        assert [(r.step_id, r.tool, r.status) for r in rows][-1] == (
            "s3",
            "cancel_pending_order",
            "succeeded",
        )

    run(go())


# Owned by the test below: over the threshold, never cancelled.
NEEDS_SUPERVISOR = Order("lucas.martin5733@example.com", "#W9318778")


def test_a_reviewer_without_the_needed_role_is_refused(server: Server) -> None:
    async def go() -> tuple[int, str]:
        big = await awaiting_review(server, "alice", NEEDS_SUPERVISOR)
        resume = await named(server, big, APPROVE)
        refused = await _refused(
            server.client("rita").runs.wait(big, ASSISTANT, command={"resume": resume})
        )
        assert (await server.client("rita").threads.get(big))["status"] == "interrupted"
        return refused

    code, text = run(go())
    assert code == 422 and "supervisor" in json.loads(text)["detail"], text


# Owned by the test below: over the threshold, cancelled.
SUPERVISED = Order("sofia.thomas3069@example.com", "#W7619352")


def test_a_supervisor_approves_and_is_recorded_from_auth(server: Server) -> None:
    async def go() -> None:
        big = await awaiting_review(server, "alice", SUPERVISED)
        sam = server.client("sam")
        assert (await sam.threads.get(big))["status"] == "interrupted"
        # The payload names someone else: the recorded reviewer is still the caller.
        out = await answer(
            server,
            "sam",
            big,
            await named(
                server,
                big,
                {"decisions": [{"type": "approve", "reviewer": "mallory"}], "reviewer": "mallory"},
            ),
        )
        assert out["status"] == "completed", out
        values = _values(await sam.threads.get_state(big))
        assert [(d["reviewer"], d["roles"]) for d in values["decisions"]] == [
            ("sam", ["supervisor"])
        ]
        assert [a["reviewer"] for a in values["approvals"]] == ["sam"]
        stores = open_stores(server.home, server.uri)
        try:
            approvals = Approvals(stores.domain).rows(values["decision_id"])
        finally:
            stores.close()
        assert [(a.reviewer, a.roles) for a in approvals] == [("sam", ["supervisor"])]

    run(go())


# Owned by the test below: bob's, over the threshold, rejected.
LEGACY = Order("aarav.lee6460@example.com", "#W3361211", "ordered by mistake")


def test_a_legacy_agent_inbox_answer_is_accepted(server: Server) -> None:
    async def go() -> None:
        other = await awaiting_review(server, "bob", LEGACY)
        legacy = [{"type": "ignore", "args": None}]
        # The legacy list has no place to name its review: sent bare, it is refused.
        code, text = await _refused(
            server.client("sam").runs.wait(other, ASSISTANT, command={"resume": legacy})
        )
        assert code == 422 and "keyed by its interrupt id" in json.loads(text)["detail"], text
        out = await answer(server, "sam", other, await keyed(server, other, legacy))
        assert out["status"] == "rejected", out
        values = _values(await server.client("sam").threads.get_state(other))
        assert [(d["type"], d["reviewer"], d["message"]) for d in values["decisions"]] == [
            ("reject", "sam", IGNORED)
        ]

    run(go())


# Owned by the test below: alice's (cancelled), then bob's (answered with a respond).
NAMING = Order("yusuf.rossi7301@example.com", "#W6247578")
NAMING_KEYED = Order("omar.kim8981@example.com", "#W8557584")


def test_an_answer_must_name_the_review_it_answers(server: Server) -> None:
    async def go() -> None:
        small = await awaiting_review(server, "alice", NAMING)
        rita = server.client("rita")
        pending = await pending_interrupt(server, small)
        plan_id = pending["value"]["plan_id"]
        history_before = len(await rita.threads.get_history(small, limit=100))

        async def refused(resume: Any) -> tuple[int, str]:
            code, text = await _refused(
                rita.runs.wait(small, ASSISTANT, command={"resume": resume})
            )
            return code, json.loads(text)["detail"]

        code, detail = await refused(APPROVE)
        assert code == 422 and "add 'decision_id' and 'plan_id'" in detail, detail
        stale = naming(pending["value"], APPROVE) | {"plan_id": "p-old"}
        code, detail = await refused(stale)
        assert (code, detail) == (
            409,
            f"the review changed: you answered plan p-old, plan {plan_id} is pending",
        )
        code, detail = await refused({"0" * 32: APPROVE})
        assert code == 409 and f"you answered interrupt {'0' * 32}" in detail, detail
        after = await rita.threads.get(small)
        assert after["status"] == "interrupted"
        assert _interrupt(after)["id"] == pending["id"]
        assert len(await rita.threads.get_history(small, limit=100)) == history_before
        # Keyed by its interrupt id, an answer names its review without the ids.
        out = await answer(server, "rita", small, {pending["id"]: APPROVE})
        assert out["status"] == "completed", out

        other = await awaiting_review(server, "bob", NAMING_KEYED)
        wrong = naming((await pending_interrupt(server, other))["value"], APPROVE)
        code, text = await _refused(rita.runs.wait(small, ASSISTANT, command={"resume": wrong}))
        assert code == 409, text  # the first thread no longer awaits review
        # A respond: the step is not run and the run ends, the message kept in the decision.
        respond = {"decisions": [{"type": "respond", "message": "refunded by hand"}]}
        out = await answer(server, "rita", other, await named(server, other, respond))
        assert out["status"] == "rejected", out
        assert out["error"] == "s3 not run: rita responded: refunded by hand"
        values = _values(await rita.threads.get_state(other))
        assert [(d["type"], d["reviewer"], d["message"]) for d in values["decisions"]] == [
            ("respond", "rita", "refunded by hand")
        ]

    run(go())


# -- durable history -------------------------------------------------------------------------------

# Owned by the test below: cancelled.
HISTORY = Order("harper.thomas1454@example.com", "#W7425646")


def test_history_lists_the_checkpoints_stored_in_postgres(server: Server) -> None:
    async def go() -> tuple[str, list[Any]]:
        small = await awaiting_review(server, "alice", HISTORY)
        resume = await named(server, small, APPROVE)
        assert (await answer(server, "rita", small, resume))["status"] == "completed"
        return small, list(await server.client("alice").threads.get_history(small, limit=100))

    small, history = run(go())
    nexts = [tuple(h["next"]) for h in history]
    assert ("approve",) in nexts and ("execute",) in nexts and () in nexts
    assert _values(history[0])["status"] == "completed"
    with psycopg.connect(server.uri) as conn:
        (count,) = conn.execute(
            "SELECT count(*) FROM checkpoints WHERE thread_id = %s AND checkpoint_ns = ''",
            (small,),
        ).fetchone() or (0,)
        (writes,) = conn.execute(
            "SELECT count(*) FROM checkpoint_writes WHERE thread_id = %s", (small,)
        ).fetchone() or (0,)
    assert count == len(history) >= 8
    assert writes > 0


# Owned by the test below: under the threshold (cancelled), over it (cancelled), bob's (rejected).
METERED_SMALL = Order("james.sanchez6979@example.com", "#W7464385")
METERED_BIG = Order("fatima.nguyen1348@example.com", "#W8808563")
METERED_OTHER = Order("yusuf.hernandez6086@example.com", "#W2033238", "ordered by mistake")


def test_metrics_reflect_the_runs(server: Server) -> None:
    before = _metrics(server.url)

    async def go() -> None:
        small = await awaiting_review(server, "alice", METERED_SMALL)
        big = await awaiting_review(server, "alice", METERED_BIG)
        other = await awaiting_review(server, "bob", METERED_OTHER)
        resume = await named(server, small, APPROVE)
        assert (await answer(server, "rita", small, resume))["status"] == "completed"
        resume = await named(server, big, APPROVE)
        assert (await answer(server, "sam", big, resume))["status"] == "completed"
        legacy = await keyed(server, other, [{"type": "ignore", "args": None}])
        rejected = await answer(server, "sam", other, legacy)
        assert rejected["status"] == "rejected"

    run(go())
    metrics = _metrics(server.url)
    assert _delta(metrics, before, 'planbound_runs_total{status="awaiting_approval"}') == 3
    assert _delta(metrics, before, 'planbound_runs_total{status="completed"}') == 2
    assert _delta(metrics, before, 'planbound_runs_total{status="rejected"}') == 1
    assert _delta(metrics, before, 'planbound_reviews_total{decision="approve"}') == 2
    assert _delta(metrics, before, 'planbound_reviews_total{decision="reject"}') == 1
    assert _delta(metrics, before, 'planbound_reviews_total{decision="refused"}') == 0
    key = 'planbound_step_duration_seconds_count{status="succeeded",tool="cancel_pending_order"}'
    assert _delta(metrics, before, key) == 2
    text = httpx.get(f"{server.url}/metrics").text
    assert re.search(r"^# TYPE planbound_step_duration_seconds histogram$", text, re.M)


# -- in-process checks of the same modules ---------------------------------------------------------


def test_readyz_is_503_naming_what_does_not_answer(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from graph.server.app import create_app

    # The settings are read once per process: each case gets an app on its own services.
    monkeypatch.delenv("DATABASE_URI", raising=False)
    # PostgreSQL configured but down: both checks say so, and nothing about the connection.
    closed = f"postgresql://postgres@127.0.0.1:{free_port()}/x"
    monkeypatch.setenv("PLANBOUND_DATABASE_URI", closed)
    monkeypatch.setenv("PLANBOUND_HOME", str(tmp_path / "down"))
    response = TestClient(create_app(Services())).get("/readyz")
    assert response.status_code == 503
    body = response.json()
    assert body == {
        "ok": False,
        "checks": {"checkpoints": "database unavailable", "domain": "database unavailable"},
    }
    # SQLite files, never seeded: the checkpoints answer, the domain is named as the problem.
    monkeypatch.delenv("PLANBOUND_DATABASE_URI")
    monkeypatch.setenv("PLANBOUND_HOME", str(tmp_path / "empty"))
    sqlite = Services()
    try:
        response = TestClient(create_app(sqlite)).get("/readyz")
    finally:
        sqlite.stores.close()
    assert response.status_code == 503
    checks = response.json()["checks"]
    assert checks["checkpoints"] == "ok (sqlite)"
    assert checks["domain"] == "not seeded; run `planbound seed`"


def test_token_table_formats_and_errors(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    token = "x" * 20
    monkeypatch.delenv("PLANBOUND_AUTH_FILE", raising=False)
    monkeypatch.setenv(
        "PLANBOUND_AUTH_TOKENS",
        json.dumps([{"identity": "ann", "roles": ["reviewer", "admin"], "token": token}]),
    )
    table = TokenTable()
    found = table.lookup(token)
    assert found is not None and found.user()["permissions"] == ["role:reviewer", "role:admin"]
    assert table.lookup("y" * 20) is None
    hashed = tmp_path / "tokens.json"
    hashed.write_text(
        json.dumps(
            {
                "tokens": [
                    {
                        "identity": "bob",
                        "roles": ["requester"],
                        "token_sha256": hashlib.sha256(token.encode()).hexdigest(),
                    }
                ]
            }
        )
    )
    monkeypatch.setenv("PLANBOUND_AUTH_FILE", str(hashed))
    assert (table.lookup(token) or pytest.fail("no identity")).identity == "bob"
    with pytest.raises(AuthConfigError) as err:
        parse_table(
            [
                {"identity": "a", "roles": ["root"], "token": token},
                {"identity": "b", "roles": ["reviewer"], "token": "short"},
                {"identity": "c", "roles": ["reviewer"]},
            ],
            "test",
        )
    assert "tokens[0].roles" in str(err.value)
    assert "tokens[1].token" in str(err.value)
    assert "tokens[2] needs exactly one" in str(err.value)
    monkeypatch.delenv("PLANBOUND_AUTH_FILE")
    monkeypatch.delenv("PLANBOUND_AUTH_TOKENS")
    with pytest.raises(AuthConfigError, match="no tokens configured"):
        TokenTable().lookup(token)


def test_stamp_reviewer_overrides_every_named_reviewer() -> None:
    assert stamp_reviewer(
        {"decisions": [{"type": "approve", "reviewer": "x"}], "reviewer": "y"}, "ann"
    ) == {"decisions": [{"type": "approve"}], "reviewer": "ann"}
    assert stamp_reviewer([{"type": "accept", "args": None}], "ann") == {
        "decisions": [{"type": "approve"}],
        "reviewer": "ann",
    }
    assert stamp_reviewer({"intr-1": {"decisions": [{"type": "approve"}]}}, "ann") == {
        "intr-1": {"decisions": [{"type": "approve"}], "reviewer": "ann"}
    }
    assert stamp_reviewer({"decision_id": "d", "plan_id": "p"}, "ann") == {
        "decision_id": "d",
        "plan_id": "p",
        "reviewer": "ann",
    }
    assert stamp_reviewer("yes", "ann") == "yes"


@pytest.fixture
def fresh_db() -> Iterator[str]:
    name = f"pb_server_{secrets.token_hex(6)}"
    with psycopg.connect(f"{PG}/postgres", autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    try:
        yield f"{PG}/{name}"
    finally:
        with psycopg.connect(f"{PG}/postgres", autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@pytest.mark.parametrize("backend", ["postgres", "sqlite"])
def test_the_server_checkpointer_never_blocks_the_event_loop(
    backend: str, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # `langgraph dev` raises on blocking calls in the event loop (blockbuster); so does this.
    from blockbuster import blockbuster_ctx

    import graph.server.checkpointer
    from checkpoints.server import ping_checkpoints, thread_ids
    from graph.server.checkpointer import checkpointer

    monkeypatch.setenv("PLANBOUND_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("PLANBOUND_DATABASE_URI", raising=False)
    monkeypatch.delenv("DATABASE_URI", raising=False)
    if backend == "postgres":
        monkeypatch.setenv("PLANBOUND_DATABASE_URI", request.getfixturevalue("fresh_db"))
    # The settings are read once per process: this case gets the services it configures.
    services = Services()
    monkeypatch.setattr(graph.server.checkpointer, "SERVICES", services)

    async def go() -> tuple[str, list[str], str]:
        with blockbuster_ctx() as bb:
            bb.functions["os.stat"].deactivate()  # as `langgraph dev` does
            async with checkpointer() as saver:
                ids = await thread_ids(saver)
            settings = services.settings
            return (
                type(saver).__name__,
                ids,
                await ping_checkpoints(settings.home, settings.postgres_uri),
            )

    kind, ids, pinged = run(go())
    assert ids == [] and pinged == backend
    assert kind == {"postgres": "AsyncPostgresSaver", "sqlite": "AsyncSqliteSaver"}[backend]
    if backend == "sqlite":
        assert (tmp_path / "home" / "checkpoints.sqlite").is_file()


# -- the deployment files ----------------------------------------------------------------------


def _docker_compose() -> bool:
    try:
        probe = subprocess.run(
            ["docker", "compose", "version"], capture_output=True, timeout=20, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return probe.returncode == 0


def test_compose_file_is_valid(tmp_path: Path) -> None:
    deploy = ROOT / "deploy"
    tokens = tmp_path / "tokens.yaml"
    tokens.write_text("tokens: []\n")
    if _docker_compose():
        env = os.environ | {"POSTGRES_PASSWORD": "x", "PLANBOUND_TOKENS_FILE": str(tokens)}
        done = subprocess.run(
            ["docker", "compose", "-f", str(deploy / "compose.yaml"), "config", "--quiet"],
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        assert done.returncode == 0, done.stderr
    spec = yaml.safe_load((deploy / "compose.yaml").read_text())
    services = spec["services"]
    assert {"postgres", "redis", "seed", "api", "gateway"} <= set(services)
    api = services["api"]
    assert str(api["deploy"]["replicas"]).startswith("${PLANBOUND_API_REPLICAS")
    env = api["environment"]
    for name in (
        "DATABASE_URI",
        "REDIS_URI",
        "PLANBOUND_DATABASE_URI",
        "PLANBOUND_HOME",
        "PLANBOUND_AUTH_FILE",
    ):
        assert env.get(name), name
    assert env["DATABASE_URI"].endswith("@postgres:5432/langgraph")
    assert env["PLANBOUND_DATABASE_URI"].endswith("@postgres:5432/planbound")
    assert env["REDIS_URI"].startswith("redis://redis:")
    for name, service in services.items():
        assert "image" in service, name
        for dep, cond in (service.get("depends_on") or {}).items():
            assert dep in services, (name, dep)
            assert cond["condition"] in {
                "service_healthy",
                "service_started",
                "service_completed_successfully",
            }
            if cond["condition"] == "service_healthy":
                assert "healthcheck" in services[dep], dep
        for volume in service.get("volumes") or []:
            source = volume.split(":", 1)[0]
            if source.startswith("."):
                assert (deploy / source).is_file(), source
            else:
                assert source in spec["volumes"], source
        for secret in service.get("secrets") or []:
            assert secret in spec["secrets"], secret
    assert "CREATE DATABASE planbound" in (deploy / "postgres-init.sql").read_text()
    assert "server api:8000" in (deploy / "nginx.conf").read_text()


# -- the caller cannot choose what the server fixes ----------------------------------------------

# Owned by the test below (left waiting).
CLAIMED_ID = Order("fatima.muller6448@example.com", "#W9962383")


def test_a_thread_id_of_another_user_is_not_handed_over(server: Server) -> None:
    async def go() -> None:
        theirs = await awaiting_review(server, "alice", CLAIMED_ID)
        bob = server.client("bob")
        code, body = await _refused(bob.threads.create(thread_id=theirs, if_exists="do_nothing"))
        assert code == 409, (code, body)
        assert "fatima" not in body and CLAIMED_ID.order_id not in body
        # alice's thread is as it was.
        thread = await server.client("alice").threads.get(theirs)
        assert thread["status"] == "interrupted" and thread["metadata"]["owner"] == "alice"

    run(go())


# Owned by the test below (never run past its plan).
FIXED_RUN = Order("evelyn.kovacs5369@example.com", "#W5694685")


def test_run_context_and_forks_are_the_servers_not_the_callers(server: Server) -> None:
    async def go() -> None:
        alice = server.client("alice")
        thread = (await alice.threads.create())["thread_id"]
        request = {"request": FIXED_RUN.request}
        for extra in (
            {"context": {"replay": "safe"}},
            {"context": {"home": "/tmp/elsewhere"}},
            {"config": {"configurable": {"max_steps": 1000}}},
            {"checkpoint_id": "1f0a0000-0000-6000-8000-000000000000"},
        ):
            code, body = await _refused(alice.runs.wait(thread, ASSISTANT, input=request, **extra))
            assert code == 422, (extra, code, body)
        assert (await alice.threads.get_state(thread))["values"] in ({}, None, [])
        # Asked not to checkpoint every step, the server still stores every transition.
        await alice.runs.wait(thread, ASSISTANT, input=request, durability="exit")
        history = await alice.threads.get_history(thread, limit=50)
        assert len(history) >= 5, [h["next"] for h in history]

    run(go())


def test_run_input_is_screened_before_a_run_exists(server: Server) -> None:
    async def go() -> None:
        alice = server.client("alice")
        thread = (await alice.threads.create())["thread_id"]
        deep: Any = "x"
        for _ in range(100):
            deep = [deep]
        for bad in (
            {"request": "x" * 5000},
            {"explicit_plan": deep},
            {"request": "hello", "approvals": [{"step_id": "s1", "digest": "x"}]},
            {},
        ):
            code, body = await _refused(alice.runs.wait(thread, ASSISTANT, input=bad))
            assert code == 422, (list(bad), code, body)
        assert await alice.runs.list(thread) == []

    run(go())


# -- approvals tried as an attacker would, on the server -----------------------------------------


def _domain_state(server: Server, *order_ids: str) -> tuple[dict[str, str], list[Any]]:
    """Order statuses, and the journal entries of the decisions, as the database holds them."""
    stores = open_stores(server.home, server.uri)
    try:
        db = RetailDB(stores.domain)
        statuses = {}
        for oid in order_ids:
            order = db.get_order(oid)
            assert order is not None
            statuses[oid] = str(order["status"])
        return statuses, []
    finally:
        stores.close()


def _journal(server: Server, decision_id: str) -> list[Any]:
    stores = open_stores(server.home, server.uri)
    try:
        return AuditLog(stores.domain).entries(decision_id)
    finally:
        stores.close()


# Owned by the test below: the small order may be edited into the big one (same customer).
EDITED = Order("harper.johansson4006@example.com", "#W3525030")  # 49.67
EDITED_BIG = "#W9677982"  # 2,573.85: over the supervisor threshold


def test_an_edit_cannot_get_past_the_supervisor_rule_on_the_server(server: Server) -> None:
    async def go() -> None:
        thread = await awaiting_review(server, "alice", EDITED)
        review = _interrupt(await server.client("rita").threads.get(thread))["value"]
        action = {
            "name": "cancel_pending_order",
            "args": {"order_id": EDITED_BIG, "reason": "no longer needed"},
        }
        edit = naming(review, {"decisions": [{"type": "edit", "edited_action": action}]})
        code, body = await _refused(
            server.client("rita").runs.wait(thread, ASSISTANT, command={"resume": edit})
        )
        assert code == 422 and "supervisor" in body, (code, body)
        assert (await server.client("rita").threads.get(thread))["status"] == "interrupted"
        statuses, _ = _domain_state(server, EDITED.order_id, EDITED_BIG)
        assert statuses == {EDITED.order_id: "pending", EDITED_BIG: "pending"}
        # The supervisor may make that edit: it runs, recorded with their role.
        out = await answer(server, "sam", thread, edit)
        assert out["status"] == "completed", out
        statuses, _ = _domain_state(server, EDITED.order_id, EDITED_BIG)
        assert statuses == {EDITED.order_id: "pending", EDITED_BIG: "cancelled"}
        kept = [
            e.body["outcome"] for e in _journal(server, out["decision_id"]) if e.kind == "answer"
        ]
        assert kept == ["refused", "accepted"]

    run(go())


# Owned by the test below: rita asks for an address change on her own thread.
SELF = Order("lei.ahmed1696@example.com", "#W9132840")


def test_an_edit_cannot_get_past_the_no_self_approval_rule_on_the_server(server: Server) -> None:
    async def go() -> None:
        rita = server.client("rita")
        thread = (await rita.threads.create())["thread_id"]
        address = {
            "address1": "1 Elm St",
            "address2": "Apt 2",
            "city": "Austin",
            "state": "TX",
            "country": "USA",
            "zip": "78701",
        }
        move = [
            {"name": "find_user_id_by_email", "arguments": {"email": SELF.email}},
            {
                "name": "modify_pending_order_address",
                "arguments": {"order_id": SELF.order_id, **address},
            },
        ]
        out = await rita.runs.wait(
            thread, ASSISTANT, input={"explicit_plan": move}, durability="sync"
        )
        assert isinstance(out, dict) and out["status"] == "verified", out
        review = _interrupt(await rita.threads.get(thread))["value"]
        action = {
            "name": "cancel_pending_order",
            "args": {"order_id": SELF.order_id, "reason": "no longer needed"},
        }
        edit = naming(review, {"decisions": [{"type": "edit", "edited_action": action}]})
        code, body = await _refused(rita.runs.wait(thread, ASSISTANT, command={"resume": edit}))
        assert code == 422 and "no_self_approval" in body, (code, body)
        statuses, _ = _domain_state(server, SELF.order_id)
        assert statuses == {SELF.order_id: "pending"}
        assert (await rita.threads.get(thread))["status"] == "interrupted"

    run(go())


# Owned by the tests below (one cancelled after a race each).
RACED = Order("raj.lopez2997@example.com", "#W3502364")
CROWDED = Order("olivia.silva3776@example.com", "#W6940125")


def test_one_answer_wins_and_a_losing_rejection_is_kept(server: Server) -> None:
    async def go() -> None:
        thread = await awaiting_review(server, "alice", RACED)
        review = _interrupt(await server.client("rita").threads.get(thread))["value"]
        approve = naming(review, APPROVE)
        reject = naming(review, {"decisions": [{"type": "reject", "message": "fraud suspected"}]})
        first = await server.client("rita").runs.create(
            thread, ASSISTANT, command={"resume": approve}, durability="sync"
        )
        code, body = await _refused(
            server.client("sam").runs.wait(thread, ASSISTANT, command={"resume": reject})
        )
        assert code == 409 and "already decided" in body, (code, body)
        await server.client("rita").runs.join(thread, first["run_id"])
        values = _values(await server.client("alice").threads.get_state(thread))
        assert values["status"] == "completed"
        kept = [
            (e.body["reviewer"], e.body["outcome"], e.body["answer"]["decisions"][0]["type"])
            for e in _journal(server, values["decision_id"])
            if e.kind == "answer"
        ]
        assert kept == [("rita", "accepted", "approve"), ("sam", "lost", "reject")]

    run(go())


def test_twenty_concurrent_approvals_apply_once(server: Server) -> None:
    async def go() -> None:
        thread = await awaiting_review(server, "alice", CROWDED)
        review = _interrupt(await server.client("rita").threads.get(thread))["value"]
        approve = naming(review, APPROVE)

        async def one(i: int) -> int:
            who = "rita" if i % 2 else "sam"
            try:
                await server.client(who).runs.create(
                    thread, ASSISTANT, command={"resume": approve}, durability="sync"
                )
            except httpx.HTTPStatusError as exc:
                return exc.response.status_code
            return 200

        codes = await asyncio.gather(*(one(i) for i in range(20)))
        assert sorted(codes) == [200] + [409] * 19, codes
        for _ in range(100):
            state = await server.client("alice").threads.get_state(thread)
            if _values(state).get("status") == "completed":
                break
            await asyncio.sleep(0.1)
        values = _values(state)
        assert values["status"] == "completed"
        statuses, _ = _domain_state(server, CROWDED.order_id)
        assert statuses == {CROWDED.order_id: "cancelled"}
        outcomes = [
            e.body["outcome"] for e in _journal(server, values["decision_id"]) if e.kind == "answer"
        ]
        assert sorted(outcomes) == ["accepted"] + ["lost"] * 19

    run(go())


# Owned by the test below.
UNTRACED = Order("james.lee4131@example.com", "#W5356919")


def test_no_key_no_trace_and_the_human_wait_is_observed(server: Server, recorder: Recorder) -> None:
    """Tracing on without a key: runs go on, nothing reaches LangSmith; the wait is measured."""
    before = _metrics(server.url)

    async def go() -> None:
        thread_id = await awaiting_review(server, "alice", UNTRACED)
        await asyncio.sleep(1.2)
        out = await answer(server, "rita", thread_id, await named(server, thread_id, APPROVE))
        assert out["status"] == "completed", out

    run(go())
    after = _metrics(server.url)
    # The resume through the server observes how long the review waited for its answer.
    assert _delta(after, before, "planbound_human_wait_seconds_count") == 1
    assert _delta(after, before, "planbound_human_wait_seconds_sum") >= 1.2
    key = 'planbound_invocation_duration_seconds_count{invocation="planbound.resume"}'
    assert _delta(after, before, key) == 1
    time.sleep(1.0)  # what a client would have sent by now
    assert recorder.runs == {}
    assert recorder.feedback == []
    sent = [(method, path) for method, path, _ in recorder.requests]
    assert not [p for _, p in sent if p.startswith("/runs") or p == "/feedback"], sent
