"""The retail facts provider: the users, orders and items a step's arguments name.

The verifier runs a plan's lookups read-only and, for each step, hands its resolved arguments
here; what is collected becomes ``input.facts`` of the retail Rego policy (see the header of
``policies/retail.rego`` for the shapes).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from tools.catalog import ToolError
from tools.retail.db import RetailDB
from tools.retail.tools.lookups import find_user_id_by_email, find_user_id_by_name_zip


def _order_facts(order: Mapping[str, Any]) -> dict[str, Any]:
    history = order.get("payment_history") or []
    return {
        "user_id": order["user_id"],
        "status": order["status"],
        "total": round(sum(float(i["price"]) for i in order["items"]), 2),
        "payment_method_id": history[0]["payment_method_id"] if history else None,
        "items": [{"item_id": i["item_id"], "product_id": i["product_id"]} for i in order["items"]],
    }


def _user_facts(user: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "payment_methods": {
            pid: {"source": m["source"], "balance": m.get("balance")}
            for pid, m in user["payment_methods"].items()
        },
        "orders": list(user["orders"]),
    }


class RetailFacts:
    """Collects users, orders (with their total and first payment) and item variants."""

    identity_tools = frozenset({"find_user_id_by_email", "find_user_id_by_name_zip"})
    """Lookups whose answer (a user id) establishes who the run serves."""

    def sections(self) -> tuple[str, ...]:
        """The fact sections: ``users``, ``orders`` and ``items``."""
        return ("users", "orders", "items")

    def collect(
        self,
        store: Any,
        args: Mapping[str, Any],
        identity: str | None,
        facts: dict[str, dict[str, Any]],
    ) -> None:
        """Add the records one step's arguments (and its identity lookup) name."""
        db: RetailDB = store
        users, orders, items = facts["users"], facts["orders"], facts["items"]
        user_ids: list[str] = []
        if isinstance(args.get("user_id"), str):
            user_ids.append(args["user_id"])
        if identity is not None:
            user_ids.append(identity)
        order_id = args.get("order_id")
        if isinstance(order_id, str) and order_id not in orders:
            order = db.get_order(order_id)
            if order is not None:
                orders[order_id] = _order_facts(order)
                user_ids.append(order["user_id"])
        for uid in user_ids:
            if uid not in users:
                user = db.get_user(uid)
                if user is not None:
                    users[uid] = _user_facts(user)
        for key in ("item_ids", "new_item_ids"):
            for item_id in args.get(key) or []:
                if isinstance(item_id, str) and item_id not in items:
                    variant = db.find_item(item_id)
                    product_id = db.product_of(item_id)
                    if variant is not None and product_id is not None:
                        items[item_id] = {
                            "product_id": product_id,
                            "available": variant["available"],
                            "price": variant["price"],
                        }


def _customer(db: RetailDB, identity: Any) -> dict[str, Any] | None:
    """The user an identity slot names (as the plan's identity step would find it)."""
    if not isinstance(identity, Mapping):
        return None
    try:
        if identity.get("form") == "email":
            user_id = find_user_id_by_email.invoke({"email": identity["email"], "db": db})
        elif identity.get("form") == "name_zip":
            user_id = find_user_id_by_name_zip.invoke(
                {
                    "first_name": identity["first_name"],
                    "last_name": identity["last_name"],
                    "zip": identity["zip"],
                    "db": db,
                }
            )
        else:
            return None
    except ToolError:
        return None
    return db.get_user(str(user_id))


def _named_products(values: Mapping[str, Any]) -> set[str]:
    named: set[str] = set()
    for slot in ("changes", "items"):
        for entry in values.get(slot) or []:
            if isinstance(entry, Mapping):
                named.update(str(n) for n in entry.get("names") or [])
    return named


def order_states(store: Any, values: Mapping[str, Any]) -> frozenset[str] | None:
    """The statuses of the orders a reading of a request acts on (the domain's evidence).

    The order named by ``order_id``; without one, the orders of the customer the
    ``identity`` names that hold a product the request names (``changes`` or ``items``).
    ``None`` when the values name no order. Whether a delivered order's item is exchanged
    or a pending order's item changed is then decided by the data, not by the verb the
    customer used ("exchange" my jacket, of an order that has not shipped yet).
    """
    db: RetailDB = store
    order_id = values.get("order_id")
    if isinstance(order_id, str):
        order = db.get_order(order_id)
        return frozenset({str(order["status"])}) if order is not None else None
    user = _customer(db, values.get("identity"))
    names = _named_products(values)
    if user is None or not names:
        return None
    states = set()
    for oid in user["orders"]:
        order = db.get_order(oid)
        if order is not None and any(i["name"] in names for i in order["items"]):
            states.add(str(order["status"]))
    return frozenset(states) or None
