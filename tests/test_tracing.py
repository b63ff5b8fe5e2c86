"""Traces reach LangSmith (a local recorder speaking its ingest API) as one tree per run."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from answering import answer_for
from langsmith_recorder import Recorder, serve

from checkpoints.audit import AuditLog
from checkpoints.factory import Stores
from graph.audit import summary
from graph.runner import Runner
from graph.services import open_stores
from graph.settings import Settings
from graph.tracing import mask_text, trace_ids
from tools.retail import load_shipped, seed

KEY = "lsv2_pt_0123456789abcdefsecretkey"
EMAIL = "fatima.anderson1447@example.com"
ORDER = "#W2974929"
CANCEL = f"Please cancel order {ORDER}, it was ordered by mistake. My email is {EMAIL}"
ADDRESS = (
    f"Change the shipping address of order {ORDER} to address: 123 Main St, Suite 4, Austin, "
    f"TX, USA, 78701. Email {EMAIL}"
)


@pytest.fixture
def recorder() -> Iterator[Recorder]:
    with serve() as rec:
        yield rec


@pytest.fixture
def stores(tmp_path: Path) -> Iterator[Stores]:
    s = open_stores(tmp_path / "home")
    with s.lock:
        seed(s.domain, load_shipped())
    yield s
    s.close()


def traced_runner(stores: Stores, recorder: Recorder, **settings: Any) -> Runner:
    config = Settings.load(
        home=stores.home,
        langsmith_tracing=True,
        langsmith_api_key=KEY,
        langsmith_endpoint=recorder.url,
        langsmith_project="pb-test",
        **settings,
    )
    return Runner(stores, config)


def by_name(runs: list[dict[str, Any]], name: str) -> list[dict[str, Any]]:
    return [r for r in runs if r.get("name") == name]


def metadata(run: dict[str, Any]) -> dict[str, Any]:
    return dict((run.get("extra") or {}).get("metadata") or {})


def test_a_decision_is_one_tree_per_invocation_with_its_story_on_the_root(
    stores: Stores, recorder: Recorder, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    runner = traced_runner(stores, recorder)
    first = runner.start(request=CANCEL)
    assert first["status"] == "awaiting_approval"
    done = runner.resume(first["thread_id"], answer_for(first, {"type": "approve"}, reviewer="ann"))
    assert done["status"] == "completed"
    runner.tracer.flush()

    roots = recorder.roots()
    assert [r["name"] for r in roots] == ["planbound.start", "planbound.resume"]
    assert all(r["session_name"] == "pb-test" for r in roots)
    start, resume = roots
    start_tree, resume_tree = recorder.tree(str(start["id"])), recorder.tree(str(resume["id"]))
    # The graph's nodes are in the tree; nothing ran before the approval.
    names = [r["name"] for r in start_tree]
    for node in ("intake", "plan", "verify", "approve"):
        assert node in names
    assert "execute" not in names
    assert not by_name(start_tree, "cancel_pending_order")
    # Each tool call is a child of the execute step that made it.
    # After the approval the two reads and the write they lead to run in one execute step.
    executes = by_name(resume_tree, "execute")
    assert len(executes) == 1
    tools = [
        sorted(c["name"] for c in recorder.children(str(e["id"])) if c.get("run_type") == "tool")
        for e in executes
    ]
    assert tools == [["cancel_pending_order", "find_user_id_by_email", "get_order_details"]]
    assert all(r["trace_id"] == resume["trace_id"] for r in resume_tree)

    meta = metadata(resume)
    assert meta["decision_id"] == done["decision_id"] == metadata(start)["decision_id"]
    assert meta["thread_id"] == done["thread_id"]
    assert meta["plan_id"] == done["plan"]["id"]
    assert meta["plan_source"] == "template"
    assert meta["template"] == "cancel_order@1"
    assert meta["catalog_version"] and meta["policy_version"] and meta["template_version"]
    assert meta["verdict"] == "needs_approval"
    assert meta["rules"] == ["writes.need_approval"]
    assert meta["route"] == "review"
    assert meta["reviewers"] == ["ann"]
    assert [(d["step_id"], d["type"]) for d in meta["decisions"]] == [("s3", "approve")]
    assert [(s["tool"], s["ok"], s["ledger"]) for s in meta["steps"]] == [
        ("find_user_id_by_email", True, "succeeded"),
        ("get_order_details", True, "succeeded"),
        ("cancel_pending_order", True, "succeeded"),
    ]
    assert meta["status"] == "completed"
    assert meta["usage"]["total_tokens"] == 0
    assert meta["previous_trace_ids"] == [str(start["trace_id"])]
    assert metadata(start)["status"] == "awaiting_approval"
    assert resume["outputs"]["status"] == "completed"

    # The audit journal leads to the traces.
    assert trace_ids(runner.services, done["decision_id"]) == [
        str(start["trace_id"]),
        str(resume["trace_id"]),
    ]
    # The key is sent to LangSmith as its header, and nowhere else.
    assert {h.get("X-Api-Key") or h.get("x-api-key") for _, _, h in recorder.requests} == {KEY}
    assert KEY not in caplog.text
    with stores.lock:
        journal = AuditLog(stores.domain).entries(done["decision_id"])
    assert KEY not in json.dumps([e.body for e in journal])
    traced = [summary(e.kind, e.body) for e in journal if e.kind == "trace"]
    assert traced == [
        f"planbound.start: trace {start['trace_id']}",
        f"planbound.resume: trace {resume['trace_id']}",
    ]
    assert KEY not in repr(runner.tracer.__dict__.get("_client"))


def test_review_decisions_arrive_as_feedback_on_the_trace_that_asked(
    stores: Stores, recorder: Recorder
) -> None:
    runner = traced_runner(stores, recorder)
    first = runner.start(request=CANCEL)
    out = runner.resume(
        first["thread_id"],
        answer_for(first, {"type": "reject", "message": "customer called back"}, reviewer="bo"),
    )
    assert out["status"] == "rejected"
    runner.tracer.flush()
    start = recorder.roots()[0]
    assert len(recorder.feedback) == 1
    fb = recorder.feedback[0]
    assert fb["key"] == "review"
    assert fb["score"] == 0
    assert fb["value"] == "reject"
    assert fb["comment"] == "customer called back"
    assert str(fb["run_id"]) == str(start["id"])
    assert fb["feedback_source"]["metadata"]["reviewer"] == "bo"
    assert fb["feedback_source"]["metadata"]["step_id"] == "s3"


def test_mask_redaction_removes_personal_data_before_it_leaves(
    stores: Stores, recorder: Recorder
) -> None:
    runner = traced_runner(stores, recorder, trace_redact="mask")
    first = runner.start(request=ADDRESS)
    assert first["status"] == "awaiting_approval"
    runner.resume(first["thread_id"], answer_for(first, {"type": "approve"}, reviewer="ann"))
    runner.tracer.flush()
    sent = json.dumps(list(recorder.runs.values()), default=str)
    assert recorder.runs
    for secret in (EMAIL, "123 Main St", "Austin", "78701", "paypal_7916550", "fatima_anderson"):
        assert secret not in sent, sent[max(0, sent.find(secret) - 300) : sent.find(secret) + 50]
    assert "<email>" in sent
    # What is not personal stays readable.
    assert ORDER in sent
    assert "modify_pending_order_address" in sent


def test_hide_redaction_sends_no_inputs_or_outputs(stores: Stores, recorder: Recorder) -> None:
    runner = traced_runner(stores, recorder, trace_redact="hide")
    runner.start(request=CANCEL)
    runner.tracer.flush()
    assert recorder.runs
    for run in recorder.runs.values():
        assert not run.get("inputs"), run["name"]
        assert not run.get("outputs"), run["name"]
    assert EMAIL not in json.dumps(list(recorder.runs.values()), default=str)


def test_no_key_no_trace(
    stores: Stores, recorder: Recorder, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LANGSMITH_TRACING", "true")
    monkeypatch.setenv("LANGSMITH_ENDPOINT", recorder.url)
    monkeypatch.delenv("LANGSMITH_API_KEY", raising=False)
    runner = Runner(stores, Settings.load(home=stores.home))
    assert not runner.tracer.enabled
    out = runner.start(request=CANCEL)
    runner.tracer.flush()
    assert out["status"] == "awaiting_approval"
    assert recorder.requests == []
    assert trace_ids(runner.services, out["decision_id"]) == []


def test_mask_text_masks_each_kind_of_personal_data() -> None:
    text = "I am Fatima Anderson, mail a.b@example.com, pay with credit_card_1234567."
    masked = mask_text(text)
    assert "Fatima" not in masked and "a.b@example.com" not in masked
    assert "credit_card_1234567" not in masked
    assert mask_text("Austin", ["args", "city"]) == "<city>"
    assert mask_text("#W2974929", ["args", "order_id"]) == "#W2974929"


def test_prometheus_sees_node_times_invocations_and_the_review_wait(
    stores: Stores, recorder: Recorder
) -> None:
    from prometheus_client import REGISTRY

    def count(name: str, **labels: str) -> float:
        return REGISTRY.get_sample_value(name, labels) or 0.0

    before = {
        "verify": count("planbound_node_duration_seconds_count", node="verify"),
        "start": count("planbound_invocation_duration_seconds_count", invocation="planbound.start"),
        "wait": count("planbound_human_wait_seconds_count"),
        "wait_sum": count("planbound_human_wait_seconds_sum"),
    }
    runner = Runner(stores, Settings.load(home=stores.home))
    first = runner.start(request=CANCEL)
    time.sleep(0.2)
    runner.resume(first["thread_id"], answer_for(first, {"type": "approve"}, reviewer="ann"))
    assert count("planbound_node_duration_seconds_count", node="verify") == before["verify"] + 1
    assert (
        count("planbound_invocation_duration_seconds_count", invocation="planbound.start")
        == before["start"] + 1
    )
    assert count("planbound_human_wait_seconds_count") == before["wait"] + 1
    assert count("planbound_human_wait_seconds_sum") - before["wait_sum"] >= 0.2
