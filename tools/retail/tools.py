"""The 16 τ²-bench retail tools as LangChain tools over :class:`~tools.retail.db.RetailDB`.

Names, arguments, checks (in order), error messages and effects follow τ²-bench retail
(sierra-research/tau2-bench, MIT) exactly, so a plan run here leaves the same database as
the benchmark's own tools. Reproduced oddities are marked ``τ² quirk``. Every refusal raises
:class:`~tools.catalog.ToolError` with the benchmark's message; each tool checks everything
before it writes, and the engine's transaction discards partial writes of a refused call.

The database handle is an injected argument: it is not part of a tool's call schema, so
planners and reviewers never see or set it.
"""

from __future__ import annotations

import json
from typing import Annotated, Any

from langchain_core.tools import BaseTool, InjectedToolArg, tool
from simpleeval import InvalidExpression, SimpleEval

from tools.catalog import ToolError
from tools.retail.db import RetailDB

Db = Annotated[RetailDB, InjectedToolArg]

CANCEL_REASONS = ("no longer needed", "ordered by mistake")


# Lookups shared by the tools ---------------------------------------------------------------


def _order(db: RetailDB, order_id: str) -> dict[str, Any]:
    order = db.get_order(order_id)
    if order is None:
        raise ToolError("Order not found")
    return order


def _user(db: RetailDB, user_id: str) -> dict[str, Any]:
    user = db.get_user(user_id)
    if user is None:
        raise ToolError("User not found")
    return user


def _product(db: RetailDB, product_id: str) -> dict[str, Any]:
    product = db.get_product(product_id)
    if product is None:
        raise ToolError("Product not found")
    return product


def _variant(db: RetailDB, product_id: str, item_id: str) -> dict[str, Any]:
    variants: dict[str, dict[str, Any]] = _product(db, product_id)["variants"]
    if item_id not in variants:
        raise ToolError("Variant not found")
    return variants[item_id]


def _method(owner: dict[str, Any], payment_method_id: str) -> dict[str, Any]:
    # Payment methods are always looked up among the order owner's methods.
    methods: dict[str, dict[str, Any]] = owner["payment_methods"]
    if payment_method_id not in methods:
        raise ToolError("Payment method not found")
    return methods[payment_method_id]


def _is_gift_card(method: dict[str, Any]) -> bool:
    return bool(method["source"] == "gift_card")


def _first_item(order: dict[str, Any], item_id: str) -> dict[str, Any]:
    item: dict[str, Any] = next(i for i in order["items"] if i["item_id"] == item_id)
    return item


def _too_many(order: dict[str, Any], item_ids: list[str]) -> str | None:
    """Return the first id that appears more often in ``item_ids`` than in the order."""
    in_order = [i["item_id"] for i in order["items"]]
    for item_id in item_ids:
        if item_ids.count(item_id) > in_order.count(item_id):
            return item_id
    return None


def _address(
    address1: str, address2: str, city: str, state: str, country: str, zip: str
) -> dict[str, str]:
    # Field order of τ²'s address model, so exports match the benchmark's dumps.
    return {
        "address1": address1,
        "address2": address2,
        "city": city,
        "country": country,
        "state": state,
        "zip": zip,
    }


# Read and generic tools ---------------------------------------------------------------------


@tool(parse_docstring=True)
def find_user_id_by_email(email: str, db: Db) -> str:
    """Find a user id by email address (case-insensitive).

    Args:
        email: The user's email, e.g. 'something@example.com'.
    """
    wanted = email.lower()
    for user in db.iter_users():
        if user["email"].lower() == wanted:
            return str(user["user_id"])
    raise ToolError("User not found")


@tool(parse_docstring=True)
def find_user_id_by_name_zip(first_name: str, last_name: str, zip: str, db: Db) -> str:
    """Find a user id by first name, last name (both case-insensitive) and zip code.

    Args:
        first_name: The first name, e.g. 'John'.
        last_name: The last name, e.g. 'Doe'.
        zip: The zip code of the user's default address, e.g. '12345'.
    """
    first, last = first_name.lower(), last_name.lower()
    for user in db.iter_users():
        name = user["name"]
        if (
            name["first_name"].lower() == first
            and name["last_name"].lower() == last
            and user["address"]["zip"] == zip
        ):
            return str(user["user_id"])
    raise ToolError("User not found")


@tool(parse_docstring=True)
def get_user_details(user_id: str, db: Db) -> dict[str, Any]:
    """Get a user's profile, default address, payment methods and order ids.

    Args:
        user_id: The user id, e.g. 'sara_doe_496'.
    """
    return _user(db, user_id)


@tool(parse_docstring=True)
def get_order_details(order_id: str, db: Db) -> dict[str, Any]:
    """Get an order's status, items, address, fulfillments and payment history.

    Args:
        order_id: The order id with its leading '#', e.g. '#W0000000'.
    """
    return _order(db, order_id)


@tool(parse_docstring=True)
def get_product_details(product_id: str, db: Db) -> dict[str, Any]:
    """Get a product and all its variants (item ids, options, availability, prices).

    Args:
        product_id: The product id, e.g. '6086499569'. Item ids are not product ids.
    """
    return _product(db, product_id)


@tool(parse_docstring=True)
def get_item_details(item_id: str, db: Db) -> dict[str, Any]:
    """Get one item (a product variant): its options, availability and price.

    Args:
        item_id: The item id, e.g. '1008292230'.
    """
    variant = db.find_item(item_id)
    if variant is None:
        raise ToolError("Item not found")
    return variant


@tool
def list_all_product_types(db: Db) -> str:
    """List the name and product id of every product type in the store."""
    names = {p["name"]: p["product_id"] for p in db.iter_products()}
    # τ² quirk: the result is a JSON string (sorted keys, default separators), not an object.
    return json.dumps(names, sort_keys=True)


_ARITHMETIC = set("0123456789+-*/(). ")
_EVALUATOR = SimpleEval(functions={}, names={})


@tool(parse_docstring=True)
def calculate(expression: str) -> str:
    """Evaluate an arithmetic expression of numbers, + - * / and parentheses.

    Args:
        expression: The expression, e.g. '2 * (3 + 4.5)'.
    """
    if not set(expression) <= _ARITHMETIC:
        raise ToolError("Invalid characters in expression")
    try:
        value = _EVALUATOR.eval(expression)
        return str(round(float(value), 2))
    except (SyntaxError, ZeroDivisionError, TypeError, ValueError, OverflowError) as exc:
        raise ToolError(str(exc)) from None
    except InvalidExpression as exc:
        raise ToolError(str(exc)) from None


@tool(parse_docstring=True)
def transfer_to_human_agents(summary: str) -> str:
    """Hand the conversation to a human agent, with a summary of the user's issue.

    Use only when the request cannot be handled within policy and the tools.

    Args:
        summary: A summary of the user's issue.
    """
    return "Transfer successful"


# Write tools --------------------------------------------------------------------------------


@tool(parse_docstring=True)
def cancel_pending_order(order_id: str, reason: str, db: Db) -> dict[str, Any]:
    """Cancel a pending order and refund every payment to its method.

    Args:
        order_id: The order id with its leading '#', e.g. '#W0000000'.
        reason: Exactly 'no longer needed' or 'ordered by mistake'.
    """
    order = _order(db, order_id)
    if order["status"] != "pending":
        raise ToolError("Non-pending order cannot be cancelled")
    if reason not in CANCEL_REASONS:
        raise ToolError("Invalid reason")
    owner = _user(db, order["user_id"])
    refunds = []
    # τ² quirk: every history entry is refunded, refunds included (after a payment change a
    # cancel refunds the first method twice).
    for entry in order["payment_history"]:
        refunds.append(
            {
                "transaction_type": "refund",
                "amount": entry["amount"],
                "payment_method_id": entry["payment_method_id"],
            }
        )
        method = _method(owner, entry["payment_method_id"])
        if _is_gift_card(method):
            method["balance"] = round(method["balance"] + entry["amount"], 2)
    order["status"] = "cancelled"
    order["cancel_reason"] = reason
    order["payment_history"].extend(refunds)
    db.put_user(owner)
    db.put_order(order)
    return order


@tool(parse_docstring=True)
def modify_pending_order_address(
    order_id: str,
    address1: str,
    address2: str,
    city: str,
    state: str,
    country: str,
    zip: str,
    db: Db,
) -> dict[str, Any]:
    """Change the shipping address of a pending order.

    Args:
        order_id: The order id with its leading '#', e.g. '#W0000000'.
        address1: First address line, e.g. '123 Main St'.
        address2: Second address line, e.g. 'Apt 1' or ''.
        city: The city, e.g. 'San Francisco'.
        state: The state, e.g. 'CA'.
        country: The country, e.g. 'USA'.
        zip: The zip code, e.g. '12345'.
    """
    order = _order(db, order_id)
    # τ² quirk: any status containing 'pending' passes, 'pending (item modified)' included.
    if "pending" not in order["status"]:
        raise ToolError("Non-pending order cannot be modified")
    order["address"] = _address(address1, address2, city, state, country, zip)
    db.put_order(order)
    return order


@tool(parse_docstring=True)
def modify_user_address(
    user_id: str,
    address1: str,
    address2: str,
    city: str,
    state: str,
    country: str,
    zip: str,
    db: Db,
) -> dict[str, Any]:
    """Change a user's default address (existing orders keep theirs).

    Args:
        user_id: The user id, e.g. 'sara_doe_496'.
        address1: First address line, e.g. '123 Main St'.
        address2: Second address line, e.g. 'Apt 1' or ''.
        city: The city, e.g. 'San Francisco'.
        state: The state, e.g. 'CA'.
        country: The country, e.g. 'USA'.
        zip: The zip code, e.g. '12345'.
    """
    user = _user(db, user_id)
    user["address"] = _address(address1, address2, city, state, country, zip)
    db.put_user(user)
    return user


@tool(parse_docstring=True)
def modify_pending_order_payment(order_id: str, payment_method_id: str, db: Db) -> dict[str, Any]:
    """Pay a pending order with another of the owner's payment methods.

    Args:
        order_id: The order id with its leading '#', e.g. '#W0000000'.
        payment_method_id: The new method, e.g. 'credit_card_0000000' or 'gift_card_0000000'.
    """
    order = _order(db, order_id)
    if "pending" not in order["status"]:
        raise ToolError("Non-pending order cannot be modified")
    owner = _user(db, order["user_id"])
    new_method = _method(owner, payment_method_id)
    history = order["payment_history"]
    if len(history) != 1 or history[0]["transaction_type"] != "payment":
        raise ToolError("There should be exactly one payment for a pending order")
    old_id = history[0]["payment_method_id"]
    if payment_method_id == old_id:
        raise ToolError("The new payment method should be different from the current one")
    amount = history[0]["amount"]
    if _is_gift_card(new_method) and new_method["balance"] < amount:
        raise ToolError("Insufficient gift card balance to pay for the order")
    history.append(
        {"transaction_type": "payment", "amount": amount, "payment_method_id": payment_method_id}
    )
    history.append({"transaction_type": "refund", "amount": amount, "payment_method_id": old_id})
    if _is_gift_card(new_method):
        new_method["balance"] = round(new_method["balance"] - amount, 2)
    old_method = _method(owner, old_id)
    if _is_gift_card(old_method):
        old_method["balance"] = round(old_method["balance"] + amount, 2)
    db.put_user(owner)
    db.put_order(order)
    return order


@tool(parse_docstring=True)
def modify_pending_order_items(
    order_id: str,
    item_ids: list[str],
    new_item_ids: list[str],
    payment_method_id: str,
    db: Db,
) -> dict[str, Any]:
    """Swap items of a pending order for other variants of the same products (once per order).

    Args:
        order_id: The order id with its leading '#', e.g. '#W0000000'.
        item_ids: Item ids in the order to replace, e.g. ['1008292230'].
        new_item_ids: The replacements, same length and order, e.g. ['1008292231'].
        payment_method_id: Method that pays or receives the price difference.
    """
    order = _order(db, order_id)
    if order["status"] != "pending":
        raise ToolError("Non-pending order cannot be modified")
    missing = _too_many(order, item_ids)
    if missing is not None:
        raise ToolError(f"{missing} not found")
    if len(item_ids) != len(new_item_ids):
        raise ToolError("The number of items to be exchanged should match")
    # τ² quirk: the sum starts from the integer 0 and is never rounded.
    diff: float = 0
    variants: list[dict[str, Any]] = []
    for old_id, new_id in zip(item_ids, new_item_ids, strict=True):
        if old_id == new_id:
            raise ToolError("The new item id should be different from the old item id")
        old_item = _first_item(order, old_id)
        variant = _variant(db, old_item["product_id"], new_id)
        if not variant["available"]:
            raise ToolError(f"New item {new_id} not found or available")
        diff += variant["price"] - old_item["price"]
        variants.append(variant)
    owner = _user(db, order["user_id"])
    method = _method(owner, payment_method_id)
    if _is_gift_card(method) and method["balance"] < diff:
        raise ToolError("Insufficient gift card balance to pay for the new item")
    order["payment_history"].append(
        {
            "transaction_type": "payment" if diff > 0 else "refund",
            "amount": float(abs(diff)),
            "payment_method_id": payment_method_id,
        }
    )
    if _is_gift_card(method):
        method["balance"] = round(method["balance"] - diff, 2)
    for old_id, new_id in zip(item_ids, new_item_ids, strict=True):
        item = _first_item(order, old_id)
        item["item_id"] = new_id
        # τ² quirk: price and options come from the LAST pair's variant for every pair.
        item["price"] = variants[-1]["price"]
        item["options"] = dict(variants[-1]["options"])
    order["status"] = "pending (item modified)"
    db.put_user(owner)
    db.put_order(order)
    return order


@tool(parse_docstring=True)
def return_delivered_order_items(
    order_id: str, item_ids: list[str], payment_method_id: str, db: Db
) -> dict[str, Any]:
    """Request a return of delivered items, refunded to the original method or a gift card.

    Args:
        order_id: The order id with its leading '#', e.g. '#W0000000'.
        item_ids: Item ids to return, e.g. ['1008292230'].
        payment_method_id: The original payment method or one of the user's gift cards.
    """
    order = _order(db, order_id)
    if order["status"] != "delivered":
        raise ToolError("Non-delivered order cannot be returned")
    owner = _user(db, order["user_id"])
    method = _method(owner, payment_method_id)
    if (
        not _is_gift_card(method)
        and payment_method_id != order["payment_history"][0]["payment_method_id"]
    ):
        raise ToolError("Payment method should be the original payment method")
    if _too_many(order, item_ids) is not None:
        raise ToolError("Some item not found")
    order["status"] = "return requested"
    order["return_items"] = sorted(item_ids)
    order["return_payment_method_id"] = payment_method_id
    db.put_order(order)
    return order


@tool(parse_docstring=True)
def exchange_delivered_order_items(
    order_id: str,
    item_ids: list[str],
    new_item_ids: list[str],
    payment_method_id: str,
    db: Db,
) -> dict[str, Any]:
    """Request an exchange of delivered items for other variants of the same products.

    Args:
        order_id: The order id with its leading '#', e.g. '#W0000000'.
        item_ids: Item ids to exchange, e.g. ['1008292230'].
        new_item_ids: The replacements, same length and order, e.g. ['1008292231'].
        payment_method_id: Method that pays or receives the price difference.
    """
    order = _order(db, order_id)
    if order["status"] != "delivered":
        raise ToolError("Non-delivered order cannot be exchanged")
    missing = _too_many(order, item_ids)
    if missing is not None:
        raise ToolError(f"Number of {missing} not found.")
    if len(item_ids) != len(new_item_ids):
        raise ToolError("The number of items to be exchanged should match.")
    diff: float = 0
    # τ² quirk: exchanging an item for the identical item id is not refused.
    for old_id, new_id in zip(item_ids, new_item_ids, strict=True):
        old_item = _first_item(order, old_id)
        variant = _variant(db, old_item["product_id"], new_id)
        if not variant["available"]:
            raise ToolError(f"New item {new_id} not found or available")
        diff += variant["price"] - old_item["price"]
    diff = round(diff, 2)
    owner = _user(db, order["user_id"])
    method = _method(owner, payment_method_id)
    if _is_gift_card(method) and method["balance"] < diff:
        raise ToolError("Insufficient gift card balance to pay for the price difference")
    order["status"] = "exchange requested"
    # τ² quirk: both lists are sorted independently, so the pairing is not kept.
    order["exchange_items"] = sorted(item_ids)
    order["exchange_new_items"] = sorted(new_item_ids)
    order["exchange_payment_method_id"] = payment_method_id
    # τ² quirk: an integer 0 when the lists are empty, else a float.
    order["exchange_price_difference"] = diff
    db.put_order(order)
    return order


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
