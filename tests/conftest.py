"""Shared fixtures: a small catalog for guard tests, and seeded stores for graph tests."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any

import psycopg
import pytest
from langchain_core.tools import InjectedToolArg, tool
from pydantic import BaseModel

from checkpoints.factory import Stores
from graph.services import open_stores
from tools.catalog import Catalog, CatalogEntry, ToolSpec


class Account(BaseModel):
    account_id: str
    tags: list[str]
    limits: dict[str, float]


@tool
def find_account(email: str, db: Annotated[Any, InjectedToolArg] = None) -> str:
    """Find an account id by email.

    Args:
        email: The email.
        db: Injected store.
    """
    return "acct_1"


@tool
def get_account(account_id: str, db: Annotated[Any, InjectedToolArg] = None) -> dict[str, Any]:
    """Get an account.

    Args:
        account_id: The account id.
        db: Injected store.
    """
    return {"account_id": account_id, "tags": [], "limits": {}}


@tool
def close_account(
    account_id: str,
    reason: str,
    item_ids: list[str] | None = None,
    db: Annotated[Any, InjectedToolArg] = None,
) -> str:
    """Close an account.

    Args:
        account_id: The account id.
        reason: Why.
        item_ids: Items.
        db: Injected store.
    """
    return "closed"


@pytest.fixture
def mini_catalog() -> Catalog:
    return Catalog.of(
        "mini",
        [
            CatalogEntry(find_account, ToolSpec("find_account", "1.0.0", "low", "read")),
            CatalogEntry(
                get_account, ToolSpec("get_account", "1.0.0", "low", "read", output=Account)
            ),
            CatalogEntry(
                close_account,
                ToolSpec(
                    "close_account",
                    "1.0.0",
                    "high",
                    "write",
                    compensator="restore_before_image",
                    cost=2,
                ),
            ),
        ],
    )


PG_ADMIN = os.environ.get("PLANBOUND_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
"""A PostgreSQL server where tests may create and drop databases."""


@pytest.fixture(scope="module")
def pg_uri(request: pytest.FixtureRequest) -> Iterator[str]:
    """A fresh PostgreSQL database for the test module, dropped afterwards."""
    module = request.module.__name__.rsplit(".", 1)[-1]
    name = f"pb_{module}_{uuid.uuid4().hex[:8]}".lower()
    with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    yield PG_ADMIN.rsplit("/", 1)[0] + "/" + name
    with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(params=["sqlite", "postgres"])
def stores(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Stores]:
    """Fresh stores with the shipped retail data seeded, on SQLite and on PostgreSQL."""
    from tools.retail import load_shipped, seed

    uri = request.getfixturevalue("pg_uri") if request.param == "postgres" else None
    s = open_stores(tmp_path / "home", uri=uri)
    with s.lock:
        seed(s.domain, load_shipped())
    yield s
    s.close()
