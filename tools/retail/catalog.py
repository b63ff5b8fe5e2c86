"""The retail catalog: every τ² retail tool with its spec (risk, effect, limits, compensator)."""

from __future__ import annotations

from typing import Any

from langchain_core.tools import BaseTool

from tools.catalog import Catalog, CatalogEntry, Risk, ToolSpec
from tools.retail import tools
from tools.retail.models import Order, Product, User, Variant

CATALOG_NAME = "retail"
TOOLS_VERSION = "1.0.0"
"""Contract version of the retail tools (τ²-bench retail behaviour)."""

RESTORE = "restore_before_image"
"""Compensator of every retail write: put back the before-images of the changed records."""

_OUTPUTS: dict[str, type[Any]] = {
    "find_user_id_by_email": str,
    "find_user_id_by_name_zip": str,
    "get_user_details": User,
    "get_order_details": Order,
    "get_product_details": Product,
    "get_item_details": Variant,
    "list_all_product_types": str,
    "calculate": str,
    "transfer_to_human_agents": str,
    "cancel_pending_order": Order,
    "modify_pending_order_address": Order,
    "modify_pending_order_items": Order,
    "modify_pending_order_payment": Order,
    "modify_user_address": User,
    "return_delivered_order_items": Order,
    "exchange_delivered_order_items": Order,
}

_WRITE_RISK: dict[str, Risk] = {
    "modify_pending_order_address": "medium",
    "modify_pending_order_payment": "medium",
    "modify_user_address": "medium",
    "cancel_pending_order": "high",
    "modify_pending_order_items": "high",
    "return_delivered_order_items": "high",
    "exchange_delivered_order_items": "high",
}


def _read(tool: BaseTool) -> CatalogEntry:
    return CatalogEntry(
        tool=tool,
        spec=ToolSpec(
            name=tool.name,
            version=TOOLS_VERSION,
            risk="low",
            effect="read",
            timeout_s=5.0,
            retries=2,
            compensator=None,
            cost=1.0,
            output=_OUTPUTS[tool.name],
        ),
    )


def _write(tool: BaseTool) -> CatalogEntry:
    return CatalogEntry(
        tool=tool,
        spec=ToolSpec(
            name=tool.name,
            version=TOOLS_VERSION,
            risk=_WRITE_RISK[tool.name],
            effect="write",
            timeout_s=10.0,
            # A retry is safe: a failed attempt's writes roll back with its transaction, and
            # the ledger keeps a successful one exactly-once.
            retries=1,
            compensator=RESTORE,
            cost=2.0,
            output=_OUTPUTS[tool.name],
        ),
    )


def build_catalog() -> Catalog:
    """Return the retail catalog (16 tools); its ``version`` is pinned by every run."""
    return Catalog.of(
        CATALOG_NAME,
        [*map(_read, tools.READ_TOOLS), *map(_write, tools.WRITE_TOOLS)],
    )
