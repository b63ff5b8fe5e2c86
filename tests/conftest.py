"""Shared fixtures: a small catalog for guard tests, and seeded stores for graph tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any

import pytest
from langchain_core.tools import InjectedToolArg, tool
from pydantic import BaseModel

from checkpoints.factory import Stores, open_stores
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
                    idempotent=False,
                    compensator="restore_before_image",
                    cost=2,
                ),
            ),
        ],
    )


@pytest.fixture
def stores(tmp_path: Path) -> Iterator[Stores]:
    """Fresh stores with the shipped retail data seeded."""
    from tools.retail import load_shipped, seed

    s = open_stores(tmp_path / "home")
    with s.lock:
        seed(s.domain, load_shipped())
    yield s
    s.close()
