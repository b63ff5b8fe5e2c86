"""Start planbound on the real LangGraph server (``langgraph dev``) for a test module.

:func:`launch` makes a fresh PostgreSQL database for the server's checkpoints and domain, a
fresh seeded ``PLANBOUND_HOME``, a token file with two requesters (alice, bob), a reviewer
(rita) and a supervisor (sam), and runs ``langgraph dev`` from a directory of its own until
the block ends. The process environment's LangSmith, LangChain, planbound and OpenAI
variables are not passed on: a module names the ones it wants.
"""

from __future__ import annotations

import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import psycopg
import yaml
from langgraph_sdk import get_client
from langgraph_sdk.client import LangGraphClient

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
PG = "postgresql://postgres@127.0.0.1:5432"
ROLES = {"alice": "requester", "bob": "requester", "rita": "reviewer", "sam": "supervisor"}
"""The token file's users and their roles."""


@dataclass
class Server:
    url: str
    uri: str
    home: Path
    log: Path
    tokens: dict[str, str]
    env: dict[str, str]
    """The environment the server runs with (for the CLI on the same databases)."""

    def client(self, who: str | None) -> LangGraphClient:
        headers = {"Authorization": f"Bearer {self.tokens[who]}"} if who else {}
        return get_client(url=self.url, headers=headers)

    def log_size(self) -> int:
        return self.log.stat().st_size if self.log.exists() else 0

    def log_since(self, offset: int, lines: int = 200) -> str:
        """Return the last ``lines`` lines the server logged after byte ``offset``."""
        if not self.log.exists():
            return ""
        with self.log.open("rb") as f:
            f.seek(offset)
            text = f.read().decode(errors="replace")
        return "\n".join(text.splitlines()[-lines:])


def free_port() -> int:
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


@contextmanager
def launch(base: Path, extra_env: Mapping[str, str] | None = None) -> Iterator[Server]:
    """Run ``langgraph dev`` on fresh databases under ``base`` with ``extra_env`` added."""
    dbname = f"pb_server_{secrets.token_hex(6)}"
    with psycopg.connect(f"{PG}/postgres", autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {dbname}")
    uri = f"{PG}/{dbname}"
    home = base / "home"
    tokens = {name: secrets.token_urlsafe(24) for name in ROLES}
    token_file = base / "tokens.yaml"
    token_file.write_text(
        yaml.safe_dump(
            {
                "tokens": [
                    {"identity": name, "roles": [ROLES[name]], "token": tok}
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
        **(extra_env or {}),
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
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = base / "server.log"
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
    try:
        _wait_ready(proc, url, log)
        yield Server(url=url, uri=uri, home=home, log=log, tokens=tokens, env=env)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        with psycopg.connect(f"{PG}/postgres", autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {dbname} WITH (FORCE)")
