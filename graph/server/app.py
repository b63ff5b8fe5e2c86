"""Extra HTTP routes served next to the LangGraph API (``langgraph.json`` ``http.app``).

- ``GET /healthz``: the process is up (always 200).
- ``GET /readyz``: the checkpoint database and the domain database (the one runs use,
  SQLite or PostgreSQL) answer and the domain is seeded (200), else 503 with the failing
  check named.
- ``GET /metrics``: Prometheus text. The LangGraph server answers this path itself from the
  process-wide registry; planbound registers its collector there at startup and refreshes
  it before each scrape, so the answer holds both the server's and planbound's metrics. The
  route below serves the same registry when this app runs on its own.

These routes are not behind the API's authentication (``enable_custom_route_auth`` is off):
they are meant for load balancers and Prometheus on the private network.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from checkpoints.factory import StorageError
from checkpoints.server import CONNECT_TIMEOUT, ping_checkpoints
from graph.graph import SERVICES
from graph.server.metrics import PlanboundMetrics, RefreshOnScrape
from graph.services import Services

METRICS = PlanboundMetrics()
"""The process's planbound collector (registered by the app's lifespan)."""


def ping_domain(services: Services) -> None:
    """Check that the domain database the runs use answers and is seeded (blocking).

    Raises:
        StorageError: the database cannot be opened, or it is not seeded.
        Exception: whatever the driver raised on the query.
    """
    if not services.is_seeded():
        raise StorageError(
            f"the {services.stores.backend} domain database is not seeded; run `planbound seed`"
        )


async def healthz(request: Request) -> JSONResponse:
    """Liveness: the process answers."""
    return JSONResponse({"ok": True})


async def readyz(request: Request) -> JSONResponse:
    """Readiness: both databases answer; 503 naming what does not."""
    services: Services = request.app.state.services
    checks: dict[str, str] = {}
    ok = True
    try:
        settings = services.settings
        ping = ping_checkpoints(settings.home, settings.postgres_uri)
        kind = await asyncio.wait_for(ping, timeout=CONNECT_TIMEOUT * 2)
        checks["checkpoints"] = f"ok ({kind})"
    except Exception as exc:  # any failure means not ready; the reason is reported
        ok = False
        checks["checkpoints"] = f"{type(exc).__name__}: {exc}"
    try:
        check = asyncio.to_thread(ping_domain, services)
        await asyncio.wait_for(check, timeout=CONNECT_TIMEOUT * 2)
        checks["domain"] = "ok"
    except Exception as exc:  # any failure means not ready; the reason is reported
        ok = False
        checks["domain"] = f"{type(exc).__name__}: {exc}"
    return JSONResponse({"ok": ok, "checks": checks}, status_code=200 if ok else 503)


async def metrics(request: Request) -> Response:
    """Prometheus exposition of the process-wide registry."""
    return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)


@asynccontextmanager
async def lifespan(app: Starlette) -> AsyncIterator[None]:
    """Register planbound's collector for the life of the server."""
    REGISTRY.register(METRICS)
    try:
        yield
    finally:
        REGISTRY.unregister(METRICS)


def create_app(services: Services) -> Starlette:
    """The extra routes, answering for ``services`` (the process's own when served)."""
    routes = Starlette(
        routes=[
            Route("/healthz", healthz, methods=["GET"]),
            Route("/readyz", readyz, methods=["GET"]),
            Route("/metrics", metrics, methods=["GET"]),
        ],
        middleware=[Middleware(RefreshOnScrape, metrics=METRICS)],
        lifespan=lifespan,
    )
    routes.state.services = services
    return routes


app = create_app(SERVICES)
"""The app ``langgraph.json`` names (``http.app``)."""
