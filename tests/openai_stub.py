"""A local OpenAI-compatible chat server with scripted replies, for tests of the LLM planner.

It serves ``POST /v1/chat/completions`` on 127.0.0.1 (a free port) and answers each request
with the next scripted :class:`Reply`: a JSON document as the message content (for a
``response_format`` of type ``json_schema``) or as the arguments of a call of the requested
function (for ``tools`` with ``tool_choice``), raw text (malformed JSON), an HTTP error, or a
reply delayed past the client's timeout. Every request body is recorded, so a test can assert
what the model was sent and how often it was asked. A request the script has no reply for is
answered HTTP 500 and recorded as unexpected.

Run by hand to try the CLI against it: ``python tests/openai_stub.py replies.json`` serves
the replies in the file (a JSON list of :class:`Reply` fields, e.g. ``{"document": {...}}``,
``{"text": "{"}``, ``{"status": 500}``) and prints its URL; Ctrl-C stops it.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass(frozen=True)
class Reply:
    """One scripted answer.

    Attributes:
        document: A JSON document the model "wrote" (content or function arguments).
        text: Raw text sent instead of a document (e.g. malformed JSON).
        status: An HTTP status to answer with instead of a completion.
        delay_s: Seconds to wait before answering (past the client's timeout: a timeout).
        prompt_tokens: Reported prompt tokens.
        completion_tokens: Reported completion tokens.
        usage: Whether usage is reported at all.
    """

    document: Any = None
    text: str | None = None
    status: int = 200
    delay_s: float = 0.0
    prompt_tokens: int = 1200
    completion_tokens: int = 300
    usage: bool = True

    @classmethod
    def plan(cls, steps: list[dict[str, Any]], **kw: Any) -> Reply:
        """A reply with a plan: ``steps`` with ``args`` as a mapping, encoded for the schema."""
        return cls(document=plan_reply(steps), **kw)

    @classmethod
    def cannot(cls, reason: str) -> Reply:
        """A reply that says the request cannot be planned."""
        return cls(document={"decision": "cannot_plan", "reason": reason, "steps": []})


def plan_reply(steps: list[dict[str, Any]]) -> dict[str, Any]:
    """Encode steps (``{"id", "tool", "args": {...}, "depends_on"?}``) in the reply schema."""
    return {
        "decision": "plan",
        "reason": "",
        "steps": [
            {
                "id": s["id"],
                "tool": s["tool"],
                "args": [{"name": k, "value": json.dumps(v)} for k, v in s["args"].items()],
                "depends_on": s.get("depends_on", []),
                "description": s.get("description", ""),
            }
            for s in steps
        ],
    }


@dataclass
class Stub:
    """The running server: its URL, its script and what it was sent."""

    url: str
    script: list[Reply] = field(default_factory=list)
    requests: list[dict[str, Any]] = field(default_factory=list)
    unexpected: list[dict[str, Any]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, *replies: Reply) -> None:
        """Queue replies, answered in order."""
        with self.lock:
            self.script.extend(replies)

    def user_messages(self) -> list[str]:
        """The user message of every request, in order."""
        return [
            next(m["content"] for m in body["messages"] if m["role"] == "user")
            for body in self.requests
        ]

    def take(self, body: dict[str, Any]) -> Reply | None:
        with self.lock:
            self.requests.append(body)
            if not self.script:
                self.unexpected.append(body)
                return None
            return self.script.pop(0)


def _completion(body: dict[str, Any], reply: Reply) -> dict[str, Any]:
    content = reply.text if reply.text is not None else json.dumps(reply.document)
    message: dict[str, Any] = {"role": "assistant", "content": content}
    choice = body.get("tool_choice")
    if body.get("tools"):
        name = (
            choice["function"]["name"]
            if isinstance(choice, dict)
            else body["tools"][0]["function"]["name"]
        )
        message = {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": name, "arguments": content},
                }
            ],
        }
    out: dict[str, Any] = {
        "id": "chatcmpl-stub",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": body.get("model", "stub"),
        "choices": [
            {
                "index": 0,
                "message": message,
                "finish_reason": "tool_calls" if body.get("tools") else "stop",
            }
        ],
    }
    if reply.usage:
        out["usage"] = {
            "prompt_tokens": reply.prompt_tokens,
            "completion_tokens": reply.completion_tokens,
            "total_tokens": reply.prompt_tokens + reply.completion_tokens,
        }
    return out


def _handler(stub: Stub) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:  # quiet
            return

        def _send(self, status: int, document: Any) -> None:
            data = json.dumps(document).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            try:
                self.wfile.write(data)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client gave up (a timeout test)

        def do_POST(self) -> None:
            if self.path.rstrip("/") != "/v1/chat/completions":
                self._send(404, {"error": {"message": f"no route {self.path}"}})
                return
            length = int(self.headers.get("Content-Length", "0"))
            try:
                body = json.loads(self.rfile.read(length))
            except json.JSONDecodeError:
                self._send(400, {"error": {"message": "the request is not JSON"}})
                return
            if not isinstance(body.get("messages"), list) or "model" not in body:
                self._send(400, {"error": {"message": "model and messages are required"}})
                return
            reply = stub.take(body)
            if reply is None:
                self._send(500, {"error": {"message": "no scripted reply left"}})
                return
            if reply.delay_s:
                time.sleep(reply.delay_s)
            if reply.status != 200:
                self._send(reply.status, {"error": {"message": f"scripted {reply.status}"}})
                return
            self._send(200, _completion(body, reply))

    return Handler


@contextmanager
def serve() -> Iterator[Stub]:
    """Run a stub server on 127.0.0.1 for the block; yields it (``stub.url`` ends in /v1)."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(Stub(url="")))
    host, port = server.server_address[:2]
    stub = Stub(url=f"http://{host!s}:{port}/v1")
    server.RequestHandlerClass = _handler(stub)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield stub
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def main(argv: list[str] | None = None) -> None:
    """Serve the replies of a JSON file until interrupted (see the module docstring)."""
    import argparse

    parser = argparse.ArgumentParser(description="OpenAI-compatible stub with scripted replies")
    parser.add_argument("script", help="JSON file: a list of replies")
    args = parser.parse_args(argv)
    with open(args.script, encoding="utf-8") as f:
        replies = [Reply(**r) for r in json.load(f)]
    with serve() as stub:
        stub.add(*replies)
        print(stub.url, flush=True)
        try:
            while True:
                time.sleep(0.5)
        except KeyboardInterrupt:
            pass
        print(f"{len(stub.requests)} requests, {len(stub.unexpected)} unexpected", flush=True)


if __name__ == "__main__":
    main()
