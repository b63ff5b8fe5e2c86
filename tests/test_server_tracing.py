"""Runs started through the LangGraph server are traced like CLI runs (a local LangSmith).

One ``langgraph dev`` for the module (:func:`langgraph_server.launch`) with
``LANGSMITH_TRACING=true``, a key, ``LANGSMITH_ENDPOINT`` pointing at the recorder and
``PLANBOUND_TRACE_REDACT=mask``. Runs are created and resumed with the SDK, as a client of
the API would.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from answering import naming
from langgraph_server import BIN, Server, launch
from langsmith_recorder import Recorder, serve

KEY = "lsv2_pt_server0123456789abcdefkey"
PROJECT = "pb-server"
ASSISTANT = "planbound"
ALICE_EMAIL = "chen.brown4062@example.com"
ALICE_ORDER = "#W4296426"
BOB_EMAIL = "emma.ito3790@example.com"
BOB_ORDER = "#W8664580"


@pytest.fixture(scope="module")
def recorder() -> Iterator[Recorder]:
    with serve() as rec:
        yield rec


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, recorder: Recorder) -> Iterator[Server]:
    env = {
        "LANGSMITH_TRACING": "true",
        "LANGSMITH_API_KEY": KEY,
        "LANGSMITH_ENDPOINT": recorder.url,
        "LANGSMITH_PROJECT": PROJECT,
        "PLANBOUND_TRACE_REDACT": "mask",
    }
    with launch(tmp_path_factory.mktemp("traced"), env) as live:
        yield live


def request(email: str, order: str) -> str:
    return f"I'm {email}. Please cancel my order {order}, reason: no longer needed."


async def start(server: Server, who: str, text: str) -> tuple[str, str]:
    """Create a thread as ``who`` and run ``text`` until it pauses; (thread id, run id)."""
    client = server.client(who)
    thread = await client.threads.create()
    made = await client.runs.create(
        thread["thread_id"], ASSISTANT, input={"request": text}, durability="sync"
    )
    out = await client.runs.join(thread["thread_id"], made["run_id"])
    assert isinstance(out, dict) and out["status"] == "verified", out
    return str(thread["thread_id"]), str(made["run_id"])


async def resume(server: Server, thread_id: str, decision: dict[str, Any]) -> tuple[str, Any]:
    """Answer the pending review as rita; (run id, output)."""
    rita = server.client("rita")
    thread = await rita.threads.get(thread_id)
    pending = [i for batch in (thread.get("interrupts") or {}).values() for i in batch]
    answer = naming(pending[0]["value"], {"decisions": [decision]})
    made = await rita.runs.create(
        thread_id, ASSISTANT, command={"resume": answer}, durability="sync"
    )
    return str(made["run_id"]), await rita.runs.join(thread_id, made["run_id"])


def metadata(run: dict[str, Any]) -> dict[str, Any]:
    return dict((run.get("extra") or {}).get("metadata") or {})


def ended(recorder: Recorder, run_ids: list[str], feedback: int, timeout: float = 20) -> None:
    """Wait until each root run's end (with the decision on it) and the feedback arrived."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        runs = [recorder.runs.get(r) for r in run_ids]
        done = all(r and r.get("end_time") and metadata(r).get("decision_id") for r in runs)
        if done and len(recorder.feedback) >= feedback:
            return
        time.sleep(0.2)
    raise AssertionError(f"the traces of {run_ids} did not arrive: {sorted(recorder.runs)}")


def test_a_server_run_is_one_trace_per_run_with_the_decision_on_its_root(
    server: Server, recorder: Recorder
) -> None:
    async def go() -> tuple[str, str, str, Any]:
        thread_id, started = await start(server, "alice", request(ALICE_EMAIL, ALICE_ORDER))
        resumed, out = await resume(server, thread_id, {"type": "approve"})
        return thread_id, started, resumed, out

    thread_id, started, resumed, out = asyncio.run(go())
    assert out["status"] == "completed", out
    feedback_before = len(recorder.feedback)
    ended(recorder, [started, resumed], feedback_before)
    start_root, resume_root = recorder.runs[started], recorder.runs[resumed]
    # The server's run is the trace's root: its id is the API's run id.
    assert not start_root.get("parent_run_id") and not resume_root.get("parent_run_id")
    assert str(start_root["trace_id"]) == started and str(resume_root["trace_id"]) == resumed
    assert start_root["session_name"] == PROJECT

    # The graph's nodes are below the root; nothing ran before the approval.
    start_names = [r["name"] for r in recorder.tree(started)]
    for node in ("intake", "plan", "verify", "approve"):
        assert node in start_names
    assert "execute" not in start_names and "cancel_pending_order" not in start_names
    # Each tool call is a child of the execute step that made it.
    executes = [r for r in recorder.tree(resumed) if r["name"] == "execute"]
    tools = [
        sorted(c["name"] for c in recorder.children(str(e["id"])) if c.get("run_type") == "tool")
        for e in executes
    ]
    # The reads and the write they lead to run in one execute step.
    assert tools == [["cancel_pending_order", "find_user_id_by_email", "get_order_details"]]

    first, meta = metadata(start_root), metadata(resume_root)
    assert first["status"] == "awaiting_approval" and first["invocation"] == "planbound.start"
    assert meta["invocation"] == "planbound.resume"
    assert meta["decision_id"] == out["decision_id"] == first["decision_id"]
    assert meta["thread_id"] == thread_id
    assert meta["plan_id"] == out["plan"]["id"]
    assert meta["plan_source"] == "template" and meta["template"] == "cancel_order@1"
    assert meta["catalog_version"] and meta["policy_version"] and meta["template_version"]
    assert meta["verdict"] == "needs_approval" and meta["rules"] == ["writes.need_approval"]
    assert meta["route"] == "review"
    # The reviewer is the caller, whom the server names as `user_id`: masked like a customer.
    assert meta["reviewers"] == ["<personal>"]
    assert [(d["step_id"], d["type"], d["invocation"]) for d in meta["decisions"]] == [
        ("s3", "approve", "new")
    ]
    assert [(s["tool"], s["ok"], s["ledger"]) for s in meta["steps"]] == [
        ("find_user_id_by_email", True, "succeeded"),
        ("get_order_details", True, "succeeded"),
        ("cancel_pending_order", True, "succeeded"),
    ]
    assert meta["status"] == "completed"
    assert meta["usage"]["total_tokens"] == 0
    assert meta["previous_trace_ids"] == [started]

    # The reviewer's answer is feedback on the trace that asked for it.
    review = [f for f in recorder.feedback if str(f["run_id"]) == started]
    assert [(f["key"], f["score"], f["value"]) for f in review] == [("review", 1, "approve")]
    assert review[0]["feedback_source"]["metadata"]["reviewer"] == "rita"

    # `planbound audit` of the decision leads to both traces.
    done = subprocess.run(
        [str(BIN / "planbound"), "audit", out["decision_id"], "--json"],
        env=server.env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert started in done.stdout and resumed in done.stdout

    # Masking removed the customer's email and user id before anything left the server.
    sent = json.dumps([recorder.runs[r] for r in recorder.runs], default=str)
    for secret in (ALICE_EMAIL, "chen_brown_"):
        assert secret not in sent, sent[max(0, sent.find(secret) - 300) : sent.find(secret) + 50]
    assert "<email>" in sent and ALICE_ORDER in sent
    # Every run and feedback went with the key as its header. (The LangGraph server also
    # reports its own usage to the LangSmith it is given: /v1/metadata/submit.)
    ours = [
        {k.lower(): v for k, v in h.items()}.get("x-api-key")
        for _, p, h in recorder.requests
        if p.startswith("/runs") or p == "/feedback"
    ]
    assert ours and set(ours) == {KEY}
    assert KEY not in sent
    assert KEY not in Path(server.log).read_text(errors="replace")


def test_a_rejection_on_the_server_is_feedback_scoring_zero(
    server: Server, recorder: Recorder
) -> None:
    async def go() -> tuple[str, str, Any]:
        thread_id, started = await start(server, "bob", request(BOB_EMAIL, BOB_ORDER))
        reject = {"type": "reject", "message": "customer called back"}
        resumed, out = await resume(server, thread_id, reject)
        return started, resumed, out

    started, resumed, out = asyncio.run(go())
    assert out["status"] == "rejected", out
    ended(recorder, [started, resumed], 1)
    review = [f for f in recorder.feedback if str(f["run_id"]) == started]
    assert [(f["score"], f["value"], f["comment"]) for f in review] == [
        (0, "reject", "customer called back")
    ]
    assert metadata(recorder.runs[resumed])["route"] == "review"
    assert metadata(recorder.runs[resumed])["status"] == "rejected"
