"""The 16 τ²-bench retail tools as LangChain tools over :class:`~tools.retail.db.RetailDB`.

Names, arguments, checks (in order), error messages and effects follow τ²-bench retail
(sierra-research/tau2-bench, MIT) exactly, so a plan run here leaves the same database as
the benchmark's own tools. Reproduced oddities are marked ``τ² quirk``. Every refusal raises
:class:`~tools.catalog.ToolError` with the benchmark's message; each tool checks everything
before it writes, and the engine's transaction discards partial writes of a refused call.

The database handle is an injected argument: it is not part of a tool's call schema, so
planners and reviewers never see or set it.
"""

from langchain_core.tools import BaseTool

from tools.retail.tools.changes import (
    cancel_pending_order,
    exchange_delivered_order_items,
    modify_pending_order_address,
    modify_pending_order_items,
    modify_pending_order_payment,
    modify_user_address,
    return_delivered_order_items,
)
from tools.retail.tools.common import CANCEL_REASONS
from tools.retail.tools.lookups import (
    calculate,
    find_user_id_by_email,
    find_user_id_by_name_zip,
    get_item_details,
    get_order_details,
    get_product_details,
    get_user_details,
    list_all_product_types,
    transfer_to_human_agents,
)

READ_TOOLS: tuple[BaseTool, ...] = (
    find_user_id_by_email,
    find_user_id_by_name_zip,
    get_user_details,
    get_order_details,
    get_product_details,
    get_item_details,
    list_all_product_types,
    calculate,
    transfer_to_human_agents,
)
"""Tools that never change the domain."""

WRITE_TOOLS: tuple[BaseTool, ...] = (
    cancel_pending_order,
    modify_pending_order_address,
    modify_pending_order_items,
    modify_pending_order_payment,
    modify_user_address,
    return_delivered_order_items,
    exchange_delivered_order_items,
)
"""Tools that change the domain (each needs review and has a compensator)."""

__all__ = [
    "CANCEL_REASONS",
    "READ_TOOLS",
    "WRITE_TOOLS",
    *(t.name for t in (*READ_TOOLS, *WRITE_TOOLS)),
]
