"""Prometheus exposition of planbound's figures, which :mod:`graph.events` counts as runs go.

The figures live in the process-wide Prometheus registry. Under the LangGraph server its own
``GET /metrics`` (a route the server answers before any custom app, and without the token
check) formats that registry, so it shows planbound's counters next to the server's; the
route here answers the same way when the extra routes run on their own. A scrape formats
numbers held in memory: it reads no database and takes no lock shared with runs.

The path is meant for Prometheus on the private network only: the gateway refuses it from
outside (``deploy/nginx.conf``), and Prometheus scrapes each API process directly.
"""

from __future__ import annotations

from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest
from starlette.requests import Request
from starlette.responses import Response

PATH = "/metrics"
"""Where the figures are served."""


async def metrics(request: Request) -> Response:
    """Prometheus text of the process-wide registry (planbound's counters included)."""
    return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)
