"""Pydantic models of τ²-bench retail records: validate seed data, document tool outputs."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, ValidationError


class _Record(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Variant(_Record):
    """One purchasable variant (item) of a product."""

    item_id: str
    options: dict[str, str]
    available: bool
    price: float


class Product(_Record):
    """A product with its variants keyed by item id."""

    name: str
    product_id: str
    variants: dict[str, Variant]


class Name(_Record):
    """A user's name."""

    first_name: str
    last_name: str


class Address(_Record):
    """A postal address; τ² stores every field as a string."""

    address1: str
    address2: str
    city: str
    country: str
    state: str
    zip: str


class PaymentMethod(_Record):
    """A credit card, PayPal account or gift card (with balance)."""

    source: Literal["credit_card", "paypal", "gift_card"]
    id: str
    brand: str | None = None
    last_four: str | None = None
    balance: float | None = None


class User(_Record):
    """A customer profile."""

    user_id: str
    name: Name
    address: Address
    email: str
    payment_methods: dict[str, PaymentMethod]
    orders: list[str]


class OrderItem(_Record):
    """One line of an order."""

    name: str
    product_id: str
    item_id: str
    price: float
    options: dict[str, str]


class Fulfillment(_Record):
    """Shipment tracking for some of an order's items."""

    tracking_id: list[str]
    item_ids: list[str]


class Payment(_Record):
    """One entry of an order's payment history."""

    transaction_type: Literal["payment", "refund"]
    amount: float
    payment_method_id: str


class Order(_Record):
    """An order, with the optional keys the write tools set."""

    order_id: str
    user_id: str
    address: Address
    items: list[OrderItem]
    status: Literal[
        "pending",
        "processed",
        "delivered",
        "cancelled",
        "pending (item modified)",
        "exchange requested",
        "return requested",
    ]
    fulfillments: list[Fulfillment]
    payment_history: list[Payment]
    cancel_reason: str | None = None
    exchange_items: list[str] | None = None
    exchange_new_items: list[str] | None = None
    exchange_payment_method_id: str | None = None
    exchange_price_difference: float | None = None
    return_items: list[str] | None = None
    return_payment_method_id: str | None = None


_MODELS: dict[str, tuple[type[_Record], str]] = {
    "products": (Product, "product_id"),
    "users": (User, "user_id"),
    "orders": (Order, "order_id"),
}


def validate_db(data: Any) -> None:
    """Check that ``data`` is a τ²-retail ``db.json`` document.

    Raises:
        ValueError: naming the first table, record and field that is wrong.
    """
    if not isinstance(data, dict):
        raise ValueError(
            "the data must be a JSON object with the tables products, users and orders"
            f" (got {type(data).__name__}; missing products, users, orders)"
        )
    missing = [t for t in _MODELS if t not in data]
    extra = [t for t in data if t not in _MODELS]
    if missing or extra:
        raise ValueError(
            "the data must have exactly the tables products, users and orders"
            + (f"; missing {', '.join(missing)}" if missing else "")
            + (f"; unexpected {', '.join(map(str, extra))}" if extra else "")
        )
    for table, (model, id_field) in _MODELS.items():
        records = data[table]
        if not isinstance(records, dict):
            raise ValueError(f"{table} must be an object keyed by {id_field}")
        for key, record in records.items():
            try:
                parsed = model.model_validate(record)
            except ValidationError as exc:
                first = exc.errors()[0]
                where = ".".join(str(p) for p in first["loc"])
                raise ValueError(f"{table}[{key!r}].{where}: {first['msg']}") from None
            if getattr(parsed, id_field) != key:
                raise ValueError(f"{table}[{key!r}]: {id_field} is {getattr(parsed, id_field)!r}")
    for key, order in data["orders"].items():
        if order["user_id"] not in data["users"]:
            raise ValueError(f"orders[{key!r}]: user {order['user_id']!r} does not exist")
