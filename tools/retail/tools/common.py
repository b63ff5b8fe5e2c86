"""What the retail tools share: the injected store, record lookups that refuse like τ²."""

from __future__ import annotations

from typing import Annotated, Any

from langchain_core.tools import InjectedToolArg

from tools.catalog import ToolError
from tools.retail.db import RetailDB

Db = Annotated[RetailDB, InjectedToolArg]
"""The domain store, injected by the engine and hidden from the tools' call schemas."""

CANCEL_REASONS = ("no longer needed", "ordered by mistake")


def order(db: RetailDB, order_id: str) -> dict[str, Any]:
    """The order, or the benchmark's refusal."""
    order = db.get_order(order_id)
    if order is None:
        raise ToolError("Order not found")
    return order


def user(db: RetailDB, user_id: str) -> dict[str, Any]:
    """The user, or the benchmark's refusal."""
    user = db.get_user(user_id)
    if user is None:
        raise ToolError("User not found")
    return user


def product(db: RetailDB, product_id: str) -> dict[str, Any]:
    """The product, or the benchmark's refusal."""
    product = db.get_product(product_id)
    if product is None:
        raise ToolError("Product not found")
    return product


def variant(db: RetailDB, product_id: str, item_id: str) -> dict[str, Any]:
    """One variant of a product, or the benchmark's refusal."""
    variants: dict[str, dict[str, Any]] = product(db, product_id)["variants"]
    if item_id not in variants:
        raise ToolError("Variant not found")
    return variants[item_id]


def method(owner: dict[str, Any], payment_method_id: str) -> dict[str, Any]:
    """One of the owner's payment methods, or the benchmark's refusal."""
    # Payment methods are always looked up among the order owner's methods.
    methods: dict[str, dict[str, Any]] = owner["payment_methods"]
    if payment_method_id not in methods:
        raise ToolError("Payment method not found")
    return methods[payment_method_id]


def is_gift_card(method: dict[str, Any]) -> bool:
    """Whether a payment method is a gift card."""
    return bool(method["source"] == "gift_card")


def first_item(order: dict[str, Any], item_id: str) -> dict[str, Any]:
    """The first line of an order with ``item_id``."""
    item: dict[str, Any] = next(i for i in order["items"] if i["item_id"] == item_id)
    return item


def too_many(order: dict[str, Any], item_ids: list[str]) -> str | None:
    """Return the first id that appears more often in ``item_ids`` than in the order."""
    in_order = [i["item_id"] for i in order["items"]]
    for item_id in item_ids:
        if item_ids.count(item_id) > in_order.count(item_id):
            return item_id
    return None


def address(
    address1: str, address2: str, city: str, state: str, country: str, zip: str
) -> dict[str, str]:
    """An address in the field order of τ²'s address model."""
    # Field order of τ²'s address model, so exports match the benchmark's dumps.
    return {
        "address1": address1,
        "address2": address2,
        "city": city,
        "country": country,
        "state": state,
        "zip": zip,
    }
