"""The served HTTP API under schemathesis: no 5xx, no internals, every thread still readable.

One ``langgraph dev`` server (:func:`langgraph_server.launch`: a fresh PostgreSQL database,
a fresh seeded ``PLANBOUND_HOME``, a token table; a requester and a reviewer are used). The
OpenAPI spec is the one the server publishes (``/openapi.json``); every operation is called
with examples schemathesis generates from it, a fixed number per operation, derandomized
(the same examples on every run), valid ones and invalid ones, each with the requester's and
the reviewer's token. Operations that take a thread id get the requester's real thread (one
paused for review) in every other example, so the calls reach the handlers and not only the
404 path. Streaming routes (which hold the connection open), the server's own deployment
and protocol routes (``/internal``, ``/deploy``, ``/mcp``, ``/a2a``) and the docs are left
out.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

schemathesis = pytest.importorskip("schemathesis")
from hypothesis import HealthCheck, Phase, given, settings  # noqa: E402
from hypothesis.errors import Unsatisfiable  # noqa: E402
from langgraph_server import launch  # noqa: E402

EXAMPLES = 3
"""Examples per operation, per generation mode (valid and invalid)."""
SKIPPED = re.compile(
    r"/stream|^/internal|^/deploy|^/mcp|^/a2a|^/\.well-known|^/docs$|^/openapi\.json$|^/ui/"
)
LEAKS = re.compile(
    r"Traceback \(most recent call last\)|File \"[^\"]+\.py\", line|psycopg|sqlite3\."
    r"|postgresql://|/site-packages/|pb_server_"
)
"""What no response body may contain: a traceback, source paths, driver or database names."""
REQUEST = "I'm fatima.anderson1447@example.com. Please cancel my order #W2974929, no longer needed."


@dataclass
class Api:
    url: str
    tokens: dict[str, str]
    thread_id: str
    seen: list[str] = field(default_factory=list)

    def headers(self, who: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[who]}"}


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    with launch(tmp_path_factory.mktemp("fuzz")) as server:
        tokens = {"requester": server.tokens["alice"], "reviewer": server.tokens["rita"]}
        owner = {"Authorization": f"Bearer {tokens['requester']}"}
        thread = httpx.post(f"{server.url}/threads", json={}, headers=owner, timeout=30).json()
        paused = httpx.post(
            f"{server.url}/threads/{thread['thread_id']}/runs/wait",
            json={"assistant_id": "planbound", "input": {"request": REQUEST}},
            headers=owner,
            timeout=120,
        )
        assert paused.status_code == 200, paused.text
        yield Api(url=server.url, tokens=tokens, thread_id=thread["thread_id"])


def _fuzz_operation(api: Api, operation: Any, findings: list[str]) -> int:
    """Call one operation with its generated examples; return how many calls were made."""
    return sum(
        _fuzz_mode(api, operation, mode, findings)
        for mode in (schemathesis.GenerationMode.POSITIVE, schemathesis.GenerationMode.NEGATIVE)
    )


def _fuzz_mode(api: Api, operation: Any, mode: Any, findings: list[str]) -> int:
    """Call one operation with the examples of one generation mode (valid or invalid)."""
    calls = 0
    real_thread = "{thread_id}" in operation.path and operation.method.upper() != "DELETE"

    @settings(
        max_examples=EXAMPLES,
        database=None,
        deadline=None,
        derandomize=True,
        suppress_health_check=list(HealthCheck),
        phases=[Phase.generate],
    )
    @given(case=operation.as_strategy(generation_mode=mode))
    def call(case: Any) -> None:
        nonlocal calls
        if real_thread and calls % 4 < 2 and isinstance(case.path_parameters, dict):
            case.path_parameters["thread_id"] = api.thread_id
        for who in ("requester", "reviewer"):
            calls += 1
            where = f"{operation.method.upper()} {operation.path} as {who} ({mode.value})"
            try:
                response = case.call(base_url=api.url, headers=api.headers(who), timeout=30)
            except Exception as exc:  # the server dropped the connection or hung
                findings.append(f"{where}: no answer ({type(exc).__name__}: {exc})"[:400])
                continue
            body = response.content.decode("utf-8", "replace")
            if response.status_code >= 500:
                findings.append(f"{where}: {response.status_code} {body[:300]}")
            leak = LEAKS.search(body)
            if leak is not None:
                findings.append(f"{where}: body shows {leak.group(0)!r}: {body[:300]}")

    try:
        call()
    except Unsatisfiable:
        pass  # no invalid input exists for an operation without parameters
    return calls


def test_the_api_under_fuzzing_gives_no_5xx_and_no_internals(api: Api) -> None:
    schema = schemathesis.openapi.from_url(
        f"{api.url}/openapi.json", headers=api.headers("requester"), timeout=30
    )
    findings: list[str] = []
    calls = operations = 0
    for result in schema.get_all_operations():
        operation = result.ok()
        if SKIPPED.search(operation.path):
            continue
        operations += 1
        calls += _fuzz_operation(api, operation, findings)
    assert operations >= 40 and calls >= 200  # the spec was read and exercised
    assert not findings, "\n".join(findings[:40])

    # Every thread the fuzzing touched is still there for its owner, whole.
    owner = api.headers("requester")
    thread = httpx.get(f"{api.url}/threads/{api.thread_id}", headers=owner, timeout=30)
    assert thread.status_code == 200, thread.text
    assert thread.json()["metadata"]["owner"] == "alice"
    state = httpx.get(f"{api.url}/threads/{api.thread_id}/state", headers=owner, timeout=30)
    assert state.status_code == 200, state.text
    assert state.json()["values"]["actor"] == "alice"
    history = httpx.post(
        f"{api.url}/threads/{api.thread_id}/history", json={"limit": 50}, headers=owner, timeout=30
    )
    assert history.status_code == 200 and history.json(), history.text
    assert any(h["values"].get("asked") == REQUEST for h in history.json())
    listed = httpx.post(f"{api.url}/threads/search", json={"limit": 100}, headers=owner, timeout=30)
    assert listed.status_code == 200
    for other in listed.json():
        got = httpx.get(f"{api.url}/threads/{other['thread_id']}/state", headers=owner, timeout=30)
        assert got.status_code == 200, (other["thread_id"], got.text)
