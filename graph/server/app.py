"""Extra HTTP routes served next to the LangGraph API (``langgraph.json`` ``http.app``).

- ``GET /healthz``: the process is up (always 200).
- ``GET /readyz``: the checkpoint database and the domain database (the one runs use,
  SQLite or PostgreSQL) answer and the domain is seeded (200), else 503 naming the failing
  check (``checkpoints``, ``domain``) as ``database unavailable`` or ``not seeded``. The
  driver's message, which can name the host, port, user and database, goes to the server
  log only.
- ``GET /threads/{thread_id}/storage``: 404 for a caller with a token (401 without): the
  LangGraph server reports checkpoint storage only for its built-in checkpointer, and
  would answer 501.
- ``GET /metrics``: Prometheus text (:mod:`graph.server.metrics`). The LangGraph server
  answers this path itself from the process-wide registry, where :mod:`graph.events` counts;
  the route here serves the same registry when this app runs on its own.

These routes are not behind the API's authentication (``enable_custom_route_auth`` is off):
they are meant for load balancers and Prometheus on the private network, and the gateway
refuses ``/metrics`` from outside (``deploy/nginx.conf``). While the app runs, credentials
sent in a URL are redacted from the server's logs (:mod:`graph.server.logs`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from checkpoints.factory import StorageError
from checkpoints.server import CONNECT_TIMEOUT, ping_checkpoints
from graph.graph import SERVICES
from graph.server import logs
from graph.server.auth import caller_of
from graph.server.metrics import PATH, metrics
from graph.services import Services

log = logging.getLogger(__name__)

UNAVAILABLE = "database unavailable"
"""What ``/readyz`` says of a check whose database does not answer (details in the log)."""


class NotSeeded(StorageError):
    """The domain database answers but holds no data."""


def ping_domain(services: Services) -> None:
    """Check that the domain database the runs use answers and is seeded (blocking).

    Raises:
        NotSeeded: the database answers but is not seeded.
        StorageError: the database cannot be opened.
        Exception: whatever the driver raised on the query.
    """
    if not services.is_seeded(fresh=True):
        raise NotSeeded(
            f"the {services.stores.backend} domain database is not seeded; run `planbound seed`"
        )


async def healthz(request: Request) -> JSONResponse:
    """Liveness: the process answers."""
    return JSONResponse({"ok": True})


async def readyz(request: Request) -> JSONResponse:
    """Readiness: both databases answer; 503 naming what does not, and nothing more."""
    services: Services = request.app.state.services
    checks: dict[str, str] = {}
    try:
        settings = services.settings
        ping = ping_checkpoints(settings.home, settings.postgres_uri)
        kind = await asyncio.wait_for(ping, timeout=CONNECT_TIMEOUT * 2)
        checks["checkpoints"] = f"ok ({kind})"
    except Exception:  # any failure means not ready; the details go to the log only
        log.warning("readiness: the checkpoint database does not answer", exc_info=True)
        checks["checkpoints"] = UNAVAILABLE
    try:
        check = asyncio.to_thread(ping_domain, services)
        await asyncio.wait_for(check, timeout=CONNECT_TIMEOUT * 2)
        checks["domain"] = "ok"
    except NotSeeded:
        checks["domain"] = "not seeded; run `planbound seed`"
    except Exception:  # any failure means not ready; the details go to the log only
        log.warning("readiness: the domain database does not answer", exc_info=True)
        checks["domain"] = UNAVAILABLE
    ok = all(v.startswith("ok") for v in checks.values())
    return JSONResponse({"ok": ok, "checks": checks}, status_code=200 if ok else 503)


NO_STORAGE = (
    "checkpoint storage is not reported by this server: planbound keeps checkpoints with its "
    "own checkpointer (see `planbound history THREAD`)"
)


async def thread_storage(request: Request) -> JSONResponse:
    """``GET /threads/{thread_id}/storage``: not offered here, said as 404 rather than 501.

    The LangGraph server reports a thread's checkpoint storage for its built-in checkpointer
    only and answers 501 for every other one; this route takes its place. It needs a token
    like the API's routes (401 without one) and says the same to everyone: it names no
    thread, so it tells no caller whether a thread exists.
    """
    if await caller_of(request.headers) is None:
        return JSONResponse(
            {"detail": "missing or unknown token: send 'Authorization: Bearer <token>'"},
            status_code=401,
            headers={"WWW-Authenticate": "Bearer"},
        )
    return JSONResponse({"detail": NO_STORAGE}, status_code=404)


@asynccontextmanager
async def lifespan(app: Starlette) -> AsyncIterator[None]:
    """Keep credentials sent in a URL out of the logs for the life of the server."""
    logs.install()
    try:
        yield
    finally:
        logs.uninstall()


def create_app(services: Services) -> Starlette:
    """The extra routes, answering for ``services`` (the process's own when served)."""
    routes = Starlette(
        routes=[
            Route("/healthz", healthz, methods=["GET"]),
            Route("/readyz", readyz, methods=["GET"]),
            Route(PATH, metrics, methods=["GET"]),
            Route("/threads/{thread_id}/storage", thread_storage, methods=["GET"]),
        ],
        lifespan=lifespan,
    )
    routes.state.services = services
    return routes


app = create_app(SERVICES)
"""The app ``langgraph.json`` names (``http.app``)."""
