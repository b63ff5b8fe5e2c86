"""Facts for the policy: the domain records a plan's steps reference, read before deciding.

The policy never trusts what a plan claims about the world. The verifier resolves, read-only,
the records each step would touch: it runs the plan's lookup steps (the catalog's read
tools) in a transaction it rolls back, follows ``$refs`` through their outputs, and
collects the users, orders and items the arguments name. Steps whose arguments depend on a
write step's output cannot be resolved before execution and are reported as unresolved.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Mapping
from typing import Any

from checkpoints.db import Domain, as_domain
from guards.errors import ReferenceUnresolved
from guards.plan import Plan, content_hash, dependency_order, resolve_refs
from tools.catalog import Catalog, ToolError
from tools.retail.db import RetailDB


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


IDENTITY_TOOLS = ("find_user_id_by_email", "find_user_id_by_name_zip")
"""Lookups whose answer (a user id) establishes who the run serves."""


def resolve_facts(
    plan: Plan,
    catalog: Catalog,
    conn: Domain | sqlite3.Connection,
    lock: threading.RLock,
    known_outputs: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Return the facts for ``plan``: per-step resolved arguments, users, orders and items.

    Args:
        plan: The plan to judge.
        catalog: The pinned catalog (read tools are run to follow references).
        conn: The domain database; only read, inside a transaction that is rolled back.
        lock: The lock that serialises use of ``conn``.
        known_outputs: Outputs of steps that already ran (at execution time); they are used
            instead of re-running those steps.
    """
    known = dict(known_outputs or {})
    step_facts: dict[str, dict[str, Any]] = {}
    outputs: dict[str, Any] = {}
    users: dict[str, Any] = {}
    orders: dict[str, Any] = {}
    items: dict[str, Any] = {}
    domain = as_domain(conn)
    with lock, domain.snapshot():
        db = RetailDB(domain)
        for step in dependency_order(plan):
            entry = catalog.get(step.tool)
            record: dict[str, Any] = {"args": None, "unresolved": [], "output": None}
            record["error"] = None
            step_facts[step.id] = record
            try:
                args = resolve_refs(step.args, outputs, step.id)
            except ReferenceUnresolved as exc:
                record["unresolved"].append(exc.reason)
                continue
            record["args"] = args
            if step.id in known:
                outputs[step.id] = known[step.id]
            elif entry is not None and entry.spec.effect == "read":
                try:
                    outputs[step.id] = entry.tool.invoke({**args, "db": db})
                except ToolError as exc:
                    record["error"] = exc.message
                except ValueError as exc:  # arguments the contracts already refused
                    record["error"] = str(exc).splitlines()[0]
            identity = None
            if step.tool in IDENTITY_TOOLS and isinstance(outputs.get(step.id), str):
                identity = record["output"] = outputs[step.id]
            _collect(db, args, identity, users, orders, items)
        if db.take_changes():
            raise RuntimeError("a read tool changed the domain while facts were resolved")
    return {"steps": step_facts, "users": users, "orders": orders, "items": items}


def _collect(
    db: RetailDB,
    args: Mapping[str, Any],
    identity: str | None,
    users: dict[str, Any],
    orders: dict[str, Any],
    items: dict[str, Any],
) -> None:
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


def facts_hash(facts: Mapping[str, Any]) -> str:
    """Return the hash recorded with a decision for the facts it was made on."""
    return content_hash(dict(facts), 32)
