"""Metrics counted as things happen; readiness and logs that leak nothing.

Runs go through the Runner on seeded SQLite stores, and each test asserts what its own
runs added to the process-wide counters, so the tests pass alone or in any order.
"""

from __future__ import annotations

import io
import logging
import re
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import structlog
from answering import answer_for
from langchain_core.runnables import RunnableConfig
from langgraph.types import Command
from prometheus_client import REGISTRY
from starlette.testclient import TestClient

from checkpoints.factory import Stores
from graph import events
from graph.runner import Runner
from graph.server import logs
from graph.server.app import UNAVAILABLE, create_app
from graph.services import Services, open_stores
from guards.errors import DecisionInvalid
from tools.retail import load_shipped, seed

EMAIL = "fatima.anderson1447@example.com"
PENDING_ORDER = "#W2974929"
ISABELLA = "isabella.lopez3271@example.com"
ISABELLA_ORDER = "#W4923227"


def cancel_actions(order_id: str = PENDING_ORDER) -> list[dict[str, Any]]:
    return [
        {"name": "find_user_id_by_email", "arguments": {"email": EMAIL}},
        {"name": "get_order_details", "arguments": {"order_id": order_id}},
        {
            "name": "cancel_pending_order",
            "arguments": {"order_id": order_id, "reason": "no longer needed"},
        },
    ]


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


TIMINGS = (
    "planbound_node_duration_seconds",
    "planbound_invocation_duration_seconds",
    "planbound_human_wait_seconds",
)
"""Wall-time histograms observed on every run (tests/test_tracing.py checks them); the counts
here are about what happened, not how long it took."""


class Counts:
    """The planbound samples when created; :meth:`delta` says what changed since."""

    def __init__(self) -> None:
        self.before = self._now()

    @staticmethod
    def _now() -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
        return {
            (s.name, tuple(sorted(s.labels.items()))): s.value
            for family in REGISTRY.collect()
            if family.name.startswith("planbound_") and family.name not in TIMINGS
            for s in family.samples
            if not s.name.endswith("_created")
        }

    def delta(self) -> dict[str, float]:
        """Samples that changed, as ``name{label="value",...}``, with how much."""
        changed = {}
        for key, value in self._now().items():
            diff = value - self.before.get(key, 0.0)
            if diff:
                name, labels = key
                inner = ",".join(f'{k}="{v}"' for k, v in labels)
                changed[f"{name}{{{inner}}}" if labels else name] = diff
        return changed


@pytest.fixture
def stores(tmp_path: Path) -> Iterator[Stores]:
    s = open_stores(tmp_path / "home")
    with s.lock:
        seed(s.domain, load_shipped())
    yield s
    s.close()


@pytest.fixture
def runner(stores: Stores) -> Runner:
    return Runner(stores)


def _only_runs_and_reviews(delta: dict[str, float]) -> dict[str, float]:
    return {k: v for k, v in delta.items() if k.startswith(("planbound_runs", "planbound_rev"))}


# -- counted where it happens ------------------------------------------------------------------


def test_an_approved_run_counts_its_pause_review_end_and_steps(runner: Runner) -> None:
    counts = Counts()
    first = runner.start(explicit_plan=cancel_actions())
    assert first["status"] == "awaiting_approval"
    paused = counts.delta()
    assert _only_runs_and_reviews(paused) == {'planbound_runs_total{status="awaiting_approval"}': 1}
    done = runner.resume(first["thread_id"], answer_for(first, {"type": "approve"}, reviewer="a"))
    assert done["status"] == "completed"
    delta = counts.delta()
    assert _only_runs_and_reviews(delta) == {
        'planbound_runs_total{status="awaiting_approval"}': 1,
        'planbound_runs_total{status="completed"}': 1,
        'planbound_reviews_total{decision="approve"}': 1,
    }
    for tool in ("find_user_id_by_email", "get_order_details", "cancel_pending_order"):
        key = f'planbound_step_duration_seconds_count{{status="succeeded",tool="{tool}"}}'
        assert delta[key] == 1, delta
        total = f'planbound_step_duration_seconds_sum{{status="succeeded",tool="{tool}"}}'
        assert delta[total] > 0


def test_a_rejected_run_counts_the_rejection_and_runs_no_write(runner: Runner) -> None:
    counts = Counts()
    first = runner.start(explicit_plan=cancel_actions())
    out = runner.resume(first["thread_id"], answer_for(first, {"type": "reject"}, reviewer="a"))
    assert out["status"] == "rejected"
    delta = counts.delta()
    assert _only_runs_and_reviews(delta) == {
        'planbound_runs_total{status="awaiting_approval"}': 1,
        'planbound_runs_total{status="rejected"}': 1,
        'planbound_reviews_total{decision="reject"}': 1,
    }
    assert not any("cancel_pending_order" in k for k in delta), delta


def test_refused_answers_are_counted_once_each(runner: Runner) -> None:
    first = runner.start(explicit_plan=cancel_actions())
    thread = first["thread_id"]
    counts = Counts()
    # Checked before the thread is touched (as the server does): refused, nothing runs.
    with pytest.raises(DecisionInvalid):
        runner.resume(thread, answer_for(first, {"type": "approve"}))
    assert counts.delta() == {'planbound_reviews_total{decision="refused"}': 1}
    # Sent straight to the graph, twice: the node asks again each time.
    config: RunnableConfig = {"configurable": {"thread_id": thread}}
    for _ in range(2):
        runner.graph.invoke(Command(resume={"decisions": "yes"}), config, context=runner.context)
    assert runner.outcome(thread)["status"] == "awaiting_approval"
    assert counts.delta() == {
        'planbound_reviews_total{decision="refused"}': 3,
        'planbound_runs_total{status="awaiting_approval"}': 2,
    }
    # The accepted answer replays the refused ones inside the node: they are not recounted.
    done = runner.resume(thread, answer_for(first, {"type": "approve"}, reviewer="a"))
    assert done["status"] == "completed"
    assert _only_runs_and_reviews(counts.delta()) == {
        'planbound_reviews_total{decision="refused"}': 3,
        'planbound_reviews_total{decision="approve"}': 1,
        'planbound_runs_total{status="awaiting_approval"}': 2,
        'planbound_runs_total{status="completed"}': 1,
    }


def test_a_denied_plan_counts_its_rule_and_a_contract_finding_counts_as_contracts(
    runner: Runner,
) -> None:
    counts = Counts()
    lone_cancel = [cancel_actions()[-1]]
    out = runner.start(explicit_plan=lone_cancel)
    assert out["status"] == "refused"
    assert any("[identity.required]" in r for r in out["verdict"]["reasons"]), out
    delta = counts.delta()
    assert delta['planbound_policy_denials_total{rule="identity.required"}'] == 1
    denials = sum(v for k, v in delta.items() if k.startswith("planbound_policy_denials"))
    assert denials == len(out["verdict"]["reasons"])
    assert delta['planbound_runs_total{status="refused"}'] == 1

    counts = Counts()
    out = runner.start(explicit_plan=[{"id": "x1", "name": "drop_all_orders", "arguments": {}}])
    assert out["status"] == "refused"
    assert counts.delta() == {
        'planbound_policy_denials_total{rule="contracts"}': 1,
        'planbound_runs_total{status="refused"}': 1,
    }


def test_a_failed_write_counts_its_step_failure_and_each_undo(runner: Runner) -> None:
    steps: list[dict[str, Any]] = [
        {"id": "who", "tool": "find_user_id_by_email", "args": {"email": ISABELLA}},
        {
            "id": "pay1",
            "tool": "modify_pending_order_payment",
            "args": {"order_id": ISABELLA_ORDER, "payment_method_id": "paypal_1621947"},
            "depends_on": ["who"],
        },
        {
            "id": "pay2",
            "tool": "modify_pending_order_payment",
            "depends_on": ["pay1"],
            "args": {"order_id": ISABELLA_ORDER, "payment_method_id": "credit_card_8897086"},
        },
    ]
    first = runner.start(explicit_plan={"goal": "change the payment twice", "steps": steps})
    counts = Counts()
    approve_all = answer_for(first, *[{"type": "approve"}] * 2, reviewer="a")
    out = runner.resume(first["thread_id"], approve_all)
    assert out["status"] == "rolled_back", out
    delta = counts.delta()
    tool = "modify_pending_order_payment"
    assert delta[f'planbound_step_duration_seconds_count{{status="succeeded",tool="{tool}"}}'] == 1
    assert delta[f'planbound_step_duration_seconds_count{{status="failed",tool="{tool}"}}'] == 1
    assert delta['planbound_compensations_total{outcome="undone"}'] == 1
    assert delta['planbound_runs_total{status="rolled_back"}'] == 1
    assert not any("conflict" in k or "irreversible" in k for k in delta), delta


def test_a_step_observation_lands_in_its_bucket() -> None:
    tool = "metrics_probe_tool"
    events.step_finished(tool, True, 0.2)
    events.step_finished(tool, False, 7.0)
    labels = {"tool": tool, "status": "succeeded"}
    assert sample("planbound_step_duration_seconds_bucket", **labels, le="0.1") == 0
    assert sample("planbound_step_duration_seconds_bucket", **labels, le="0.25") == 1
    assert sample("planbound_step_duration_seconds_sum", **labels) == pytest.approx(0.2)
    failed = {"tool": tool, "status": "failed"}
    assert sample("planbound_step_duration_seconds_bucket", **failed, le="5.0") == 0
    assert sample("planbound_step_duration_seconds_bucket", **failed, le="10.0") == 1


# -- the routes --------------------------------------------------------------------------------


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def database_down(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> str:
    """Settings pointing at a PostgreSQL server that is not there; returns the URI."""
    monkeypatch.delenv("DATABASE_URI", raising=False)
    uri = f"postgresql://metricsuser@127.0.0.1:{_closed_port()}/metricsdb"
    monkeypatch.setenv("PLANBOUND_DATABASE_URI", uri)
    monkeypatch.setenv("PLANBOUND_HOME", str(tmp_path / "down"))
    return uri


def test_metrics_answer_from_memory_with_the_database_down(database_down: str) -> None:
    services = Services()
    events.run_reached("completed")
    started = time.monotonic()
    with TestClient(create_app(services)) as client:
        response = client.get("/metrics")
    assert time.monotonic() - started < 2
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    assert "# TYPE planbound_runs_total counter" in response.text
    assert "# TYPE planbound_step_duration_seconds histogram" in response.text
    completed = next(
        line
        for line in response.text.splitlines()
        if line.startswith('planbound_runs_total{status="completed"}')
    )
    assert float(completed.rsplit(" ", 1)[1]) >= 1
    # Nothing was opened: the scrape never asked for the stores.
    assert services._stores is None


def test_readyz_names_the_failing_checks_and_no_connection_detail(
    database_down: str, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="graph.server.app"):
        response = TestClient(create_app(Services())).get("/readyz")
    assert response.status_code == 503
    assert response.json() == {
        "ok": False,
        "checks": {"checkpoints": UNAVAILABLE, "domain": UNAVAILABLE},
    }
    port = database_down.rsplit(":", 1)[1].split("/")[0]
    for detail in ("127.0.0.1", port, "metricsuser", "metricsdb", "postgresql", "Error"):
        assert detail not in response.text
    # The details are in the server log.
    logged = "\n".join(
        f"{r.getMessage()} {r.exc_info[1] if r.exc_info else ''}" for r in caplog.records
    )
    assert "checkpoint database" in logged and "domain database" in logged
    assert port in logged


def test_readyz_says_not_seeded(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("DATABASE_URI", raising=False)
    monkeypatch.delenv("PLANBOUND_DATABASE_URI", raising=False)
    monkeypatch.setenv("PLANBOUND_HOME", str(tmp_path / "empty"))
    services = Services()
    try:
        response = TestClient(create_app(services)).get("/readyz")
    finally:
        services.stores.close()
    assert response.status_code == 503
    assert response.json()["checks"] == {
        "checkpoints": "ok (sqlite)",
        "domain": "not seeded; run `planbound seed`",
    }


def test_readyz_asks_the_domain_again_after_runs_saw_it_seeded(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # Runs remember that the domain holds data; readiness asks the database every time.
    monkeypatch.delenv("DATABASE_URI", raising=False)
    monkeypatch.delenv("PLANBOUND_DATABASE_URI", raising=False)
    monkeypatch.setenv("PLANBOUND_HOME", str(tmp_path / "home"))
    services = Services()
    try:
        services.seed(load_shipped())
        client = TestClient(create_app(services))
        assert client.get("/readyz").json()["checks"]["domain"].startswith("ok")
        assert services.is_seeded()
        with services.stores.lock, services.stores.domain.transaction(write=True) as domain:
            domain.execute("DELETE FROM retail_users")
        response = client.get("/readyz")
        assert not services.is_seeded(fresh=True)
    finally:
        services.stores.close()
    assert response.status_code == 503
    assert response.json()["checks"]["domain"] == "not seeded; run `planbound seed`"


# -- credentials in a URL never reach a log ----------------------------------------------------

SECRET = "s3cr3t-Token_value"


def _access_logger(stream: io.StringIO) -> tuple[Any, logging.Handler]:
    """The LangGraph server's access logger, wired as its logging setup does."""
    handler = logging.StreamHandler(stream)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(processors=[structlog.processors.JSONRenderer()])
    )
    stdlib = logging.getLogger("langgraph_api.server")
    stdlib.addHandler(handler)
    stdlib.setLevel(logging.INFO)
    logger = structlog.wrap_logger(
        stdlib,
        processors=[structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        wrapper_class=structlog.stdlib.BoundLogger,
    )
    return logger, handler


def test_query_string_credentials_are_redacted_from_the_access_logs() -> None:
    stream = io.StringIO()
    logger, handler = _access_logger(stream)
    uvicorn_stream = io.StringIO()
    uvicorn_handler = logging.StreamHandler(uvicorn_stream)
    uvicorn = logging.getLogger("uvicorn.access")
    uvicorn.addHandler(uvicorn_handler)
    uvicorn.setLevel(logging.INFO)
    query = f"limit=1&token={SECRET}&api_key={SECRET}&X-Api-Key={SECRET}&tokens=2"
    try:
        with TestClient(create_app(Services())):
            # The access line the server's middleware writes for every request.
            logger.warning(
                "GET /threads 401 1ms", method="GET", path="/threads", query_string=query
            )
            # uvicorn's request line.
            uvicorn.info('%s - "%s %s HTTP/%s" %d', "1.2.3.4", "GET", f"/x?{query}", "1.1", 401)
        # Once the app has stopped, the filter is gone (it belongs to the app's life).
        logger.warning("after", query_string=f"token={SECRET}")
    finally:
        logging.getLogger("langgraph_api.server").removeHandler(handler)
        uvicorn.removeHandler(uvicorn_handler)
    during, after = stream.getvalue().splitlines()
    assert SECRET not in during
    assert "limit=1&token=[REDACTED]&api_key=[REDACTED]&X-Api-Key=[REDACTED]&tokens=2" in during
    assert SECRET not in uvicorn_stream.getvalue()
    assert "/x?limit=1&token=[REDACTED]" in uvicorn_stream.getvalue()
    assert SECRET in after


def test_redact_keeps_other_parameters_and_text() -> None:
    assert logs.redact("a=1&token=x&b=2") == "a=1&token=[REDACTED]&b=2"
    assert logs.redact("/p?access_token=abc#frag") == "/p?access_token=[REDACTED]#frag"
    assert logs.redact("mytoken=1&token_type=bearer") == "mytoken=1&token_type=bearer"
    assert logs.redact("no credentials here") == "no credentials here"


def test_the_gateway_refuses_the_metrics_path() -> None:
    conf = (Path(__file__).resolve().parents[1] / "deploy" / "nginx.conf").read_text()
    block = re.search(r"location = /metrics \{([^}]*)\}", conf)
    assert block is not None, "deploy/nginx.conf must refuse /metrics"
    assert re.search(r"\breturn 40[34];|\bdeny all;", block.group(1))
    assert "proxy_pass" not in block.group(1)
