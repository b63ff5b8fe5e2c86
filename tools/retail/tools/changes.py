"""The retail write tools: cancel, modify, return and exchange orders; change a user's address.

Each checks everything before it writes; the engine's transaction discards partial writes of a
refused call.
"""

from __future__ import annotations

from typing import Any

from tools.catalog import ToolError, catalog_tool
from tools.retail.tools import common as records
from tools.retail.tools.common import CANCEL_REASONS, Db


@catalog_tool
def cancel_pending_order(order_id: str, reason: str, db: Db) -> dict[str, Any]:
    """Cancel a pending order and refund every payment to its method.

    Args:
        order_id: The order id with its leading '#', e.g. '#W0000000'.
        reason: Exactly 'no longer needed' or 'ordered by mistake'.
    """
    order = records.order(db, order_id)
    if order["status"] != "pending":
        raise ToolError("Non-pending order cannot be cancelled")
    if reason not in CANCEL_REASONS:
        raise ToolError("Invalid reason")
    owner = records.user(db, order["user_id"])
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
        method = records.method(owner, entry["payment_method_id"])
        if records.is_gift_card(method):
            method["balance"] = round(method["balance"] + entry["amount"], 2)
    order["status"] = "cancelled"
    order["cancel_reason"] = reason
    order["payment_history"].extend(refunds)
    db.put_user(owner)
    db.put_order(order)
    return order


@catalog_tool
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
    order = records.order(db, order_id)
    # τ² quirk: any status containing 'pending' passes, 'pending (item modified)' included.
    if "pending" not in order["status"]:
        raise ToolError("Non-pending order cannot be modified")
    order["address"] = records.address(address1, address2, city, state, country, zip)
    db.put_order(order)
    return order


@catalog_tool
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
    user = records.user(db, user_id)
    user["address"] = records.address(address1, address2, city, state, country, zip)
    db.put_user(user)
    return user


@catalog_tool
def modify_pending_order_payment(order_id: str, payment_method_id: str, db: Db) -> dict[str, Any]:
    """Pay a pending order with another of the owner's payment methods.

    Args:
        order_id: The order id with its leading '#', e.g. '#W0000000'.
        payment_method_id: The new method, e.g. 'credit_card_0000000' or 'gift_card_0000000'.
    """
    order = records.order(db, order_id)
    if "pending" not in order["status"]:
        raise ToolError("Non-pending order cannot be modified")
    owner = records.user(db, order["user_id"])
    new_method = records.method(owner, payment_method_id)
    history = order["payment_history"]
    if len(history) != 1 or history[0]["transaction_type"] != "payment":
        raise ToolError("There should be exactly one payment for a pending order")
    old_id = history[0]["payment_method_id"]
    if payment_method_id == old_id:
        raise ToolError("The new payment method should be different from the current one")
    amount = history[0]["amount"]
    if records.is_gift_card(new_method) and new_method["balance"] < amount:
        raise ToolError("Insufficient gift card balance to pay for the order")
    history.append(
        {"transaction_type": "payment", "amount": amount, "payment_method_id": payment_method_id}
    )
    history.append({"transaction_type": "refund", "amount": amount, "payment_method_id": old_id})
    if records.is_gift_card(new_method):
        new_method["balance"] = round(new_method["balance"] - amount, 2)
    old_method = records.method(owner, old_id)
    if records.is_gift_card(old_method):
        old_method["balance"] = round(old_method["balance"] + amount, 2)
    db.put_user(owner)
    db.put_order(order)
    return order


@catalog_tool
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
    order = records.order(db, order_id)
    if order["status"] != "pending":
        raise ToolError("Non-pending order cannot be modified")
    missing = records.too_many(order, item_ids)
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
        old_item = records.first_item(order, old_id)
        variant = records.variant(db, old_item["product_id"], new_id)
        if not variant["available"]:
            raise ToolError(f"New item {new_id} not found or available")
        diff += variant["price"] - old_item["price"]
        variants.append(variant)
    owner = records.user(db, order["user_id"])
    method = records.method(owner, payment_method_id)
    if records.is_gift_card(method) and method["balance"] < diff:
        raise ToolError("Insufficient gift card balance to pay for the new item")
    order["payment_history"].append(
        {
            "transaction_type": "payment" if diff > 0 else "refund",
            "amount": float(abs(diff)),
            "payment_method_id": payment_method_id,
        }
    )
    if records.is_gift_card(method):
        method["balance"] = round(method["balance"] - diff, 2)
    for old_id, new_id in zip(item_ids, new_item_ids, strict=True):
        item = records.first_item(order, old_id)
        item["item_id"] = new_id
        # τ² quirk: price and options come from the LAST pair's variant for every pair.
        item["price"] = variants[-1]["price"]
        item["options"] = dict(variants[-1]["options"])
    order["status"] = "pending (item modified)"
    db.put_user(owner)
    db.put_order(order)
    return order


@catalog_tool
def return_delivered_order_items(
    order_id: str, item_ids: list[str], payment_method_id: str, db: Db
) -> dict[str, Any]:
    """Request a return of delivered items, refunded to the original method or a gift card.

    Args:
        order_id: The order id with its leading '#', e.g. '#W0000000'.
        item_ids: Item ids to return, e.g. ['1008292230'].
        payment_method_id: The original payment method or one of the user's gift cards.
    """
    order = records.order(db, order_id)
    if order["status"] != "delivered":
        raise ToolError("Non-delivered order cannot be returned")
    owner = records.user(db, order["user_id"])
    method = records.method(owner, payment_method_id)
    if (
        not records.is_gift_card(method)
        and payment_method_id != order["payment_history"][0]["payment_method_id"]
    ):
        raise ToolError("Payment method should be the original payment method")
    if records.too_many(order, item_ids) is not None:
        raise ToolError("Some item not found")
    order["status"] = "return requested"
    order["return_items"] = sorted(item_ids)
    order["return_payment_method_id"] = payment_method_id
    db.put_order(order)
    return order


@catalog_tool
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
    order = records.order(db, order_id)
    if order["status"] != "delivered":
        raise ToolError("Non-delivered order cannot be exchanged")
    missing = records.too_many(order, item_ids)
    if missing is not None:
        raise ToolError(f"Number of {missing} not found.")
    if len(item_ids) != len(new_item_ids):
        raise ToolError("The number of items to be exchanged should match.")
    diff: float = 0
    # τ² quirk: exchanging an item for the identical item id is not refused.
    for old_id, new_id in zip(item_ids, new_item_ids, strict=True):
        old_item = records.first_item(order, old_id)
        variant = records.variant(db, old_item["product_id"], new_id)
        if not variant["available"]:
            raise ToolError(f"New item {new_id} not found or available")
        diff += variant["price"] - old_item["price"]
    diff = round(diff, 2)
    owner = records.user(db, order["user_id"])
    method = records.method(owner, payment_method_id)
    if records.is_gift_card(method) and method["balance"] < diff:
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
