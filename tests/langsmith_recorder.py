"""A local LangSmith: an HTTP server that speaks the parts of its API the client calls.

It keeps what it receives in memory so tests can look at the trees, feedback and uploads:
``/info``; runs through ``/runs/multipart`` (``post.<id>``, ``patch.<id>`` and their
``.inputs``/``.outputs``/``.extra``/``.events`` parts), ``/runs/batch``, ``POST /runs`` and
``PATCH /runs/<id>``; ``/feedback``; and, for evaluation uploads, projects (``/sessions``),
datasets (``/datasets``) and examples (``/examples``, ``/examples/bulk``, the multipart
``/v1/platform/datasets/<id>/examples``). Every request's path and headers are logged, so a
test can check which key was sent.
"""

from __future__ import annotations

import email.parser
import email.policy
import json
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlparse


def _now() -> str:
    return datetime.now(UTC).isoformat()


class Recorder:
    """What the fake LangSmith received."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.runs: dict[str, dict[str, Any]] = {}
        self.feedback: list[dict[str, Any]] = []
        self.requests: list[tuple[str, str, dict[str, str]]] = []
        self.sessions: dict[str, dict[str, Any]] = {}
        self.datasets: dict[str, dict[str, Any]] = {}
        self.examples: dict[str, dict[str, Any]] = {}
        self.url = ""

    # -- runs -----------------------------------------------------------------------------
    def _merge(self, op: str, run_id: str, key: str | None, value: Any) -> None:
        run = self.runs.setdefault(run_id, {"id": run_id})
        if key is None:
            if isinstance(value, dict):
                run.update({k: v for k, v in value.items() if v is not None or op == "post"})
        else:
            run[key] = value

    def roots(self) -> list[dict[str, Any]]:
        """Runs without a parent, in start order."""
        with self.lock:
            runs = [r for r in self.runs.values() if not r.get("parent_run_id")]
        return sorted(runs, key=lambda r: str(r.get("start_time", "")))

    def children(self, run_id: str) -> list[dict[str, Any]]:
        """The direct children of a run, in start order."""
        with self.lock:
            kids = [r for r in self.runs.values() if str(r.get("parent_run_id")) == str(run_id)]
        return sorted(kids, key=lambda r: str(r.get("dotted_order", "")))

    def tree(self, run_id: str) -> list[dict[str, Any]]:
        """Every run under ``run_id`` (itself included)."""
        out = [self.runs[run_id]]
        for kid in self.children(run_id):
            out.extend(self.tree(str(kid["id"])))
        return out


def _json(raw: bytes) -> Any:
    return json.loads(raw.decode() or "null")


class _Handler(BaseHTTPRequestHandler):
    recorder: Recorder

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        pass

    def _body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            return self.rfile.read(length)
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            while True:
                size = int(self.rfile.readline().strip() or b"0", 16)
                if size == 0:
                    self.rfile.readline()
                    break
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
            return b"".join(chunks)
        return b""

    def _send(self, status: int, body: Any) -> None:
        data = json.dumps(body, default=str).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _log(self) -> urlparse:  # type: ignore[valid-type]
        url = urlparse(self.path)
        with self.recorder.lock:
            self.recorder.requests.append((self.command, url.path, dict(self.headers.items())))
        return url

    # -- routes ---------------------------------------------------------------------------
    def do_GET(self) -> None:
        url = self._log()
        path, query = url.path.rstrip("/"), parse_qs(url.query)
        rec = self.recorder
        if path == "/info":
            return self._send(
                200,
                {
                    "version": "0.10.0",
                    "batch_ingest_config": {
                        "use_multipart_endpoint": True,
                        "size_limit": 100,
                        "size_limit_bytes": 20_000_000,
                        "scale_up_qsize_trigger": 1000,
                        "scale_up_nthreads_limit": 16,
                        "scale_down_nempty_trigger": 4,
                    },
                    "instance_flags": {},
                },
            )
        if path == "/sessions":
            names = query.get("name", [])
            found = [s for s in rec.sessions.values() if not names or s["name"] in names]
            return self._send(200, found)
        if path.startswith("/sessions/"):
            session = rec.sessions.get(path.rsplit("/", 1)[1])
            return self._send(200 if session else 404, session or {"detail": "not found"})
        if path == "/datasets":
            names = query.get("name", [])
            found = [d for d in rec.datasets.values() if not names or d["name"] in names]
            return self._send(200, found)
        if path.startswith("/datasets/") and path.count("/") == 2:
            dataset = rec.datasets.get(path.rsplit("/", 1)[1])
            return self._send(200 if dataset else 404, dataset or {"detail": "not found"})
        if path == "/examples":
            ids = query.get("dataset", [])
            offset = int(query.get("offset", ["0"])[0])
            limit = int(query.get("limit", ["100"])[0])
            found = [e for e in rec.examples.values() if not ids or e["dataset_id"] in ids]
            return self._send(200, found[offset : offset + limit])
        if path.startswith("/runs/"):
            run = rec.runs.get(path.rsplit("/", 1)[1])
            return self._send(200 if run else 404, run or {"detail": "not found"})
        return self._send(404, {"detail": f"no route GET {path}"})

    def do_PATCH(self) -> None:
        url = self._log()
        body = _json(self._body())
        path = url.path.rstrip("/")
        rec = self.recorder
        with rec.lock:
            if path.startswith("/runs/"):
                rec._merge("patch", path.rsplit("/", 1)[1], None, body)
                return self._send(200, {})
            if path.startswith("/sessions/"):
                session = rec.sessions.setdefault(path.rsplit("/", 1)[1], {})
                session.update({k: v for k, v in (body or {}).items() if v is not None})
                return self._send(200, session)
        return self._send(404, {"detail": f"no route PATCH {path}"})

    def do_POST(self) -> None:
        url = self._log()
        raw = self._body()
        path = url.path.rstrip("/")
        rec = self.recorder
        ctype = self.headers.get("Content-Type", "")
        with rec.lock:
            if path == "/runs/multipart":
                for name, value in _multipart(raw, ctype):
                    op, _, rest = name.partition(".")
                    run_id, _, key = rest.partition(".")
                    if op in ("post", "patch"):
                        rec._merge(op, run_id, key or None, value)
                    elif op == "feedback":
                        rec.feedback.append(value)
                return self._send(202, {})
            if path == "/runs/batch":
                body = _json(raw)
                for op in ("post", "patch"):
                    for run in body.get(op) or []:
                        rec._merge(op, str(run["id"]), None, run)
                return self._send(202, {})
            if path == "/runs":
                run = _json(raw)
                rec._merge("post", str(run["id"]), None, run)
                return self._send(202, {})
            if path == "/feedback":
                rec.feedback.append(_json(raw))
                return self._send(200, rec.feedback[-1])
            if path == "/sessions":
                body = _json(raw)
                sid = str(body.get("id") or uuid.uuid4())
                session = {"id": sid, "tenant_id": str(uuid.UUID(int=0)), **body, "id_": sid}
                session.setdefault("start_time", _now())
                rec.sessions[sid] = session
                return self._send(200, session)
            if path == "/datasets":
                body = _json(raw)
                did = str(body.get("id") or uuid.uuid4())
                dataset = {
                    "id": did,
                    "tenant_id": str(uuid.UUID(int=0)),
                    "created_at": _now(),
                    "modified_at": _now(),
                    "data_type": "kv",
                    **body,
                }
                rec.datasets[did] = dataset
                return self._send(200, dataset)
            if path in ("/examples/bulk", "/examples"):
                body = _json(raw)
                items = body if isinstance(body, list) else [body]
                made = [_example(rec, e) for e in items]
                return self._send(200, made if isinstance(body, list) else made[0])
            if path.endswith("/examples") and "/datasets/" in path:
                dataset_id = path.split("/datasets/")[1].split("/")[0]
                examples: dict[str, dict[str, Any]] = {}
                for name, value in _multipart(raw, ctype):
                    eid, _, key = name.partition(".")
                    examples.setdefault(eid, {"id": eid, "dataset_id": dataset_id})
                    if key:
                        examples[eid][key] = value
                    elif isinstance(value, dict):
                        examples[eid].update(value)
                ids = [_example(rec, e)["id"] for e in examples.values()]
                return self._send(201, {"example_ids": ids, "count": len(ids)})
        return self._send(404, {"detail": f"no route POST {path}"})


def _example(rec: Recorder, body: dict[str, Any]) -> dict[str, Any]:
    eid = str(body.get("id") or uuid.uuid4())
    example = {"id": eid, "created_at": _now(), "modified_at": _now(), **body}
    rec.examples[eid] = example
    return example


def _multipart(raw: bytes, ctype: str) -> Iterator[tuple[str, Any]]:
    """The (name, decoded value) of each part of a multipart/form-data body."""
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
        b"Content-Type: " + ctype.encode() + b"\r\n\r\n" + raw
    )
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        payload = part.get_payload(decode=True) or b""
        if part.get_content_type() == "application/json":
            yield str(name), _json(payload)
        else:
            yield str(name), payload


@contextmanager
def serve() -> Iterator[Recorder]:
    """Run a recorder on a free local port for the duration of the block."""
    recorder = Recorder()
    handler = type("Handler", (_Handler,), {"recorder": recorder})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    recorder.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield recorder
    finally:
        server.shutdown()
        server.server_close()
