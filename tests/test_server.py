"""planbound on the real LangGraph server (``langgraph dev``), driven by the real SDK.

One server for the module: a fresh PostgreSQL database for its checkpoints, a fresh seeded
``PLANBOUND_HOME`` and a token file with two requesters, a reviewer and a supervisor. The
tests run in file order and share the threads they create.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Coroutine, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import httpx
import psycopg
import pytest
import yaml
from langgraph_sdk import get_client
from langgraph_sdk.client import LangGraphClient
from starlette.testclient import TestClient

from checkpoints.ledger import Approvals, Ledger
from graph.server.review import stamp_reviewer
from graph.server.tokens import AuthConfigError, TokenTable, parse_table
from graph.services import open_stores
from guards.compat import IGNORED
from tools.retail import RetailDB

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
PG = "postgresql://postgres@127.0.0.1:5432"
ASSISTANT = "planbound"

SMALL = (
    "I'm fatima.anderson1447@example.com. Please cancel my order #W2974929, "
    "reason: no longer needed."
)
BIG = (
    "I'm evelyn.ahmed2006@example.com. Please cancel my order #W1416704, reason: no longer needed."
)
OTHER = (
    "I'm ava.nguyen2868@example.com. Please cancel my order #W8367380, reason: ordered by mistake."
)

T = TypeVar("T")


def run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coro)


@dataclass
class Server:
    url: str
    uri: str
    home: Path
    log: Path
    tokens: dict[str, str]
    threads: dict[str, str] = field(default_factory=dict)

    def client(self, who: str | None) -> LangGraphClient:
        headers = {"Authorization": f"Bearer {self.tokens[who]}"} if who else {}
        return get_client(url=self.url, headers=headers)

    def log_tail(self, lines: int = 80) -> str:
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return "\n".join(text.splitlines()[-lines:])


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_ready(proc: subprocess.Popen[bytes], url: str, log: Path, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"langgraph dev exited with {proc.returncode}:\n{log.read_text()}")
        try:
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise RuntimeError(f"langgraph dev did not answer within {timeout}s:\n{log.read_text()}")


@pytest.fixture(scope="module")
def server(
    tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> Iterator[Server]:
    base = tmp_path_factory.mktemp("server")
    dbname = f"pb_server_{secrets.token_hex(6)}"
    with psycopg.connect(f"{PG}/postgres", autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {dbname}")
    uri = f"{PG}/{dbname}"
    home = base / "home"
    tokens = {name: secrets.token_urlsafe(24) for name in ("alice", "bob", "rita", "sam")}
    roles = {"alice": "requester", "bob": "requester", "rita": "reviewer", "sam": "supervisor"}
    token_file = base / "tokens.yaml"
    token_file.write_text(
        yaml.safe_dump(
            {
                "tokens": [
                    {"identity": name, "roles": [roles[name]], "token": tok}
                    for name, tok in tokens.items()
                ]
            }
        )
    )
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("LANGSMITH_", "LANGCHAIN_", "PLANBOUND_", "OPENAI_"))
    }
    env |= {
        "PLANBOUND_HOME": str(home),
        "PLANBOUND_DATABASE_URI": uri,
        "PLANBOUND_AUTH_FILE": str(token_file),
        "LANGSMITH_TRACING": "false",
        "LANGCHAIN_TRACING_V2": "false",
        "LANGGRAPH_CLI_NO_ANALYTICS": "1",
        "LANGGRAPH_NO_VERSION_CHECK": "true",
    }
    # The domain (and its ledger) lives in the same PostgreSQL database as the checkpoints.
    subprocess.run(
        [str(BIN / "planbound"), "seed", "--home", str(home), "--json"],
        env=env,
        check=True,
        capture_output=True,
    )
    # The in-memory runtime keeps its thread and run records under ./.langgraph_api: run it
    # from a directory of its own that links to the project's langgraph.json and packages.
    work = base / "work"
    work.mkdir()
    for name in ("langgraph.json", "graph", "guards", "tools", "checkpoints"):
        (work / name).symlink_to(ROOT / name)
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    log = base / "server.log"
    failed_before = request.session.testsfailed
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [
                str(BIN / "langgraph"),
                "dev",
                "--no-browser",
                "--no-reload",
                "--port",
                str(port),
                "--config",
                "langgraph.json",
            ],
            cwd=work,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    srv = Server(url=url, uri=uri, home=home, log=log, tokens=tokens)
    try:
        _wait_ready(proc, url, log)
        yield srv
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        if request.session.testsfailed > failed_before:
            capture = request.config.pluginmanager.getplugin("capturemanager")
            with capture.global_and_fixture_disabled():
                print(f"\n---- langgraph dev log (tail) ----\n{srv.log_tail()}\n----")
        with psycopg.connect(f"{PG}/postgres", autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {dbname} WITH (FORCE)")


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


def _values(state: Any) -> dict[str, Any]:
    values = state["values"]
    assert isinstance(values, dict), values
    return values


def _metrics(url: str) -> dict[str, float]:
    text = httpx.get(f"{url}/metrics", timeout=10).text
    out = {}
    for line in text.splitlines():
        if line.startswith("planbound_"):
            name, value = line.rsplit(" ", 1)
            out[name] = float(value)
    return out


# -- the server answers ----------------------------------------------------------------------


def test_health_ready_and_metrics_routes_answer(server: Server) -> None:
    assert httpx.get(f"{server.url}/healthz").json() == {"ok": True}
    ready = httpx.get(f"{server.url}/readyz")
    assert ready.status_code == 200, ready.text
    assert ready.json()["checks"] == {"checkpoints": "ok (postgres)", "domain": "ok"}
    metrics = httpx.get(f"{server.url}/metrics")
    assert metrics.status_code == 200
    assert metrics.headers["content-type"].startswith("text/plain")
    assert 'planbound_source_up{source="checkpoints"} 1.0' in metrics.text
    assert "planbound_approvals_pending 0.0" in metrics.text


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


def test_requester_runs_stop_for_review_in_the_hitl_schema(server: Server) -> None:
    async def go() -> None:
        alice, bob = server.client("alice"), server.client("bob")
        for key, who, client, text in (
            ("small", "alice", alice, SMALL),
            ("big", "alice", alice, BIG),
            ("other", "bob", bob, OTHER),
        ):
            thread = await client.threads.create()
            assert (thread["metadata"] or {}).get("owner") == who
            out = await client.runs.wait(
                thread["thread_id"], ASSISTANT, input={"request": text}, durability="sync"
            )
            assert isinstance(out, dict) and out["status"] == "verified", out
            server.threads[key] = thread["thread_id"]

        thread = await alice.threads.get(server.threads["small"])
        assert thread["status"] == "interrupted"
        value = _interrupt(thread)["value"]
        assert [a["name"] for a in value["action_requests"]] == ["cancel_pending_order"]
        (action,) = value["action_requests"]
        assert action["arguments"] == {"order_id": "#W2974929", "reason": "no longer needed"}
        assert action["step_id"] == "s3"
        (config,) = value["review_configs"]
        assert config["action_name"] == "cancel_pending_order"
        assert config["allowed_decisions"] == ["approve", "edit", "reject"]
        assert "order_id" in config["arguments_schema"]["properties"]
        state = await alice.threads.get_state(server.threads["small"])
        assert state["next"] == ["approve"]
        # The requester recorded with the run is the authenticated one.
        assert _values(state)["actor"] == "alice"

    run(go())
    metrics = _metrics(server.url)
    assert metrics["planbound_approvals_pending"] == 3
    assert metrics["planbound_approval_steps_pending"] == 3
    assert metrics['planbound_runs{status="awaiting_approval"}'] == 3


def test_another_requester_can_neither_see_nor_answer_the_thread(server: Server) -> None:
    async def go() -> None:
        bob = server.client("bob")
        small = server.threads["small"]
        assert (await _refused(bob.threads.get(small)))[0] == 404
        assert (await _refused(bob.threads.get_state(small)))[0] == 404
        assert (await _refused(bob.threads.get_history(small)))[0] == 404
        listed = {t["thread_id"] for t in await bob.threads.search(limit=100)}
        assert listed == {server.threads["other"]}
        code, _ = await _refused(
            bob.runs.wait(
                small, ASSISTANT, command={"resume": {"decisions": [{"type": "approve"}]}}
            )
        )
        assert code == 403
        code, _ = await _refused(bob.runs.wait(small, ASSISTANT, input={"request": OTHER}))
        assert code == 404
        assert (await server.client("alice").threads.get(small))["status"] == "interrupted"

    run(go())


def test_a_requester_cannot_answer_or_write_their_own_thread(server: Server) -> None:
    async def go() -> None:
        alice = server.client("alice")
        small = server.threads["small"]
        code, text = await _refused(
            alice.runs.wait(
                small, ASSISTANT, command={"resume": {"decisions": [{"type": "approve"}]}}
            )
        )
        assert code == 403 and "reviewer" in text
        forged = {"approvals": [{"step_id": "s3", "digest": "x", "reviewer": "alice"}]}
        assert (await _refused(alice.threads.update_state(small, forged)))[0] == 403
        thread = await alice.threads.get(small)
        assert thread["status"] == "interrupted"

    run(go())


def test_malformed_answers_are_refused_and_the_thread_stays_resumable(server: Server) -> None:
    async def go() -> None:
        rita = server.client("rita")
        small = server.threads["small"]
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
        for name, answer in cases.items():
            code, text = await _refused(
                rita.runs.wait(small, ASSISTANT, command={"resume": answer})
            )
            assert code == 422, (name, text)
            assert expected[name] in json.loads(text)["detail"], (name, text)
        after = await rita.threads.get(small)
        assert after["status"] == "interrupted"
        assert _interrupt(after)["id"] == before["id"]
        assert len(await rita.threads.get_history(small, limit=100)) == history_before

    run(go())


# -- reviewers answer ----------------------------------------------------------------------------


def test_reviewer_lists_pending_threads_and_approves_as_themselves(server: Server) -> None:
    async def go() -> None:
        rita = server.client("rita")
        small = server.threads["small"]
        pending = {t["thread_id"] for t in await rita.threads.search(status="interrupted")}
        assert pending == set(server.threads.values())
        out = await rita.runs.wait(
            small,
            ASSISTANT,
            command={"resume": {"decisions": [{"type": "approve"}]}},
            durability="sync",
        )
        assert isinstance(out, dict) and out["status"] == "completed", out
        values = _values(await rita.threads.get_state(small))
        assert [(d["step_id"], d["type"], d["reviewer"]) for d in values["decisions"]] == [
            ("s3", "approve", "rita")
        ]
        assert values["decisions"][0]["roles"] == ["reviewer"]
        assert [(a["step_id"], a["reviewer"]) for a in values["approvals"]] == [("s3", "rita")]
        # The write happened once, recorded in the ledger under the run's decision.
        stores = open_stores(server.home, server.uri)
        try:
            order = RetailDB(stores.domain).get_order("#W2974929")
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


def test_a_reviewer_without_the_needed_role_is_refused(server: Server) -> None:
    async def go() -> tuple[int, str]:
        rita = server.client("rita")
        return await _refused(
            rita.runs.wait(
                server.threads["big"],
                ASSISTANT,
                command={"resume": {"decisions": [{"type": "approve"}]}},
            )
        )

    code, text = run(go())
    assert code == 422 and "supervisor" in json.loads(text)["detail"], text


def test_a_supervisor_approves_and_is_recorded_from_auth(server: Server) -> None:
    async def go() -> None:
        sam = server.client("sam")
        big = server.threads["big"]
        assert (await sam.threads.get(big))["status"] == "interrupted"
        # The payload names someone else: the recorded reviewer is still the caller.
        out = await sam.runs.wait(
            big,
            ASSISTANT,
            command={
                "resume": {
                    "decisions": [{"type": "approve", "reviewer": "mallory"}],
                    "reviewer": "mallory",
                }
            },
            durability="sync",
        )
        assert isinstance(out, dict) and out["status"] == "completed", out
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


def test_a_legacy_agent_inbox_answer_is_accepted(server: Server) -> None:
    async def go() -> None:
        sam = server.client("sam")
        other = server.threads["other"]
        out = await sam.runs.wait(
            other,
            ASSISTANT,
            command={"resume": [{"type": "ignore", "args": None}]},
            durability="sync",
        )
        assert isinstance(out, dict) and out["status"] == "rejected", out
        values = _values(await sam.threads.get_state(other))
        assert [(d["type"], d["reviewer"], d["message"]) for d in values["decisions"]] == [
            ("reject", "sam", IGNORED)
        ]

    run(go())


# -- durable history -------------------------------------------------------------------------------


def test_history_lists_the_checkpoints_stored_in_postgres(server: Server) -> None:
    small = server.threads["small"]
    history = run(server.client("alice").threads.get_history(small, limit=100))
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


def test_metrics_reflect_the_runs(server: Server) -> None:
    metrics = _metrics(server.url)
    assert metrics['planbound_runs{status="completed"}'] == 2
    assert metrics['planbound_runs{status="rejected"}'] == 1
    assert metrics['planbound_runs{status="awaiting_approval"}'] == 0
    assert metrics["planbound_approvals_pending"] == 0
    key = 'planbound_step_duration_seconds_count{status="succeeded",tool="cancel_pending_order"}'
    assert metrics[key] == 2
    assert metrics['planbound_source_up{source="domain"}'] == 1
    text = httpx.get(f"{server.url}/metrics").text
    assert re.search(r"^# TYPE planbound_step_duration_seconds histogram$", text, re.M)


# -- in-process checks of the same modules ---------------------------------------------------------


def test_readyz_is_503_naming_what_does_not_answer(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from graph.server.app import app

    client = TestClient(app)
    monkeypatch.delenv("DATABASE_URI", raising=False)
    # PostgreSQL configured but down: both checks say so.
    closed = f"postgresql://postgres@127.0.0.1:{_free_port()}/x"
    monkeypatch.setenv("PLANBOUND_DATABASE_URI", closed)
    monkeypatch.setenv("PLANBOUND_HOME", str(tmp_path / "down"))
    response = client.get("/readyz")
    assert response.status_code == 503
    body = response.json()
    assert body["ok"] is False
    assert "OperationalError" in body["checks"]["checkpoints"]
    assert "cannot connect to PostgreSQL" in body["checks"]["domain"]
    # SQLite files, never seeded: the checkpoints answer, the domain is named as the problem.
    monkeypatch.delenv("PLANBOUND_DATABASE_URI")
    monkeypatch.setenv("PLANBOUND_HOME", str(tmp_path / "empty"))
    response = client.get("/readyz")
    assert response.status_code == 503
    checks = response.json()["checks"]
    assert checks["checkpoints"] == "ok (sqlite)"
    assert "not seeded" in checks["domain"]


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

    from checkpoints.server import checkpointer, ping_checkpoints, thread_ids

    monkeypatch.setenv("PLANBOUND_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("PLANBOUND_DATABASE_URI", raising=False)
    monkeypatch.delenv("DATABASE_URI", raising=False)
    if backend == "postgres":
        monkeypatch.setenv("PLANBOUND_DATABASE_URI", request.getfixturevalue("fresh_db"))

    async def go() -> tuple[str, list[str], str]:
        with blockbuster_ctx() as bb:
            bb.functions["os.stat"].deactivate()  # as `langgraph dev` does
            async with checkpointer() as saver:
                ids = await thread_ids(saver)
            return type(saver).__name__, ids, await ping_checkpoints()

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
