"""Requests the template planner should plan: one table row per intent."""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from evals.generate.common import (
    REASONS,
    REVIEWER,
    SEED,
    Call,
    Data,
    address_of,
    address_text,
    allowed_read,
    approved_write,
    call,
    distinct_items,
    other_method,
    paid_with,
    who,
)

User = dict[str, Any]
REJECT = {"decisions": [{"type": "reject", "message": "the customer called back"}]} | REVIEWER
REJECTED_CANCELS_FROM = 11
"""The cancellations from this one on are rejected by the reviewer."""


@dataclass(frozen=True)
class Write:
    """One write request: its words (before the identity phrase), the lookup, the write."""

    request: str
    lookup: Call
    change: Call
    gold: Call | None = None
    """The gold write when the plan's call names a reference (``$s1``) instead of a value."""


@dataclass(frozen=True)
class Intent:
    """How to make the write examples of one intent: whom to take and what they ask."""

    prefix: str
    intent: str
    count: int
    fits: Callable[[User], Any]
    write: Callable[[int, User, Any], Write]


def reads(data: Data) -> Iterator[dict[str, Any]]:
    """Lookups: the user's profile, an order, a product, an item, the product types."""
    db = data.db
    rng = random.Random(SEED + 1)
    readers = rng.sample(data.users_with_orders(), 40)
    for n, uid in enumerate(readers[:12]):
        phrase, first = who(data, db["users"][uid], n)
        text = (
            f"Show my profile. {phrase}" if n % 2 == 0 else f"{phrase} What are my account details?"
        )
        trajectory = [first, call("get_user_details", user_id="$s1")]
        yield read(f"tpl-user-details-{n:03d}", "user_details", text, trajectory)
    for n, uid in enumerate(readers[12:24]):
        user = db["users"][uid]
        oid = user["orders"][0]
        phrase, first = who(data, user, n)
        text = f"What is the status of order {oid}? {phrase}"
        trajectory = [first, call("get_order_details", order_id=oid)]
        yield read(f"tpl-order-details-{n:03d}", "order_details", text, trajectory)
    products = sorted(db["products"])
    for n, pid in enumerate(rng.sample(products, 6)):
        trajectory = [call("get_product_details", product_id=pid)]
        yield read(
            f"tpl-product-details-{n:03d}", "product_details", f"Show me product {pid}", trajectory
        )
    for n, pid in enumerate(rng.sample(products, 6)):
        vid = sorted(db["products"][pid]["variants"])[0]
        text = f"Is item {vid} available? What is its price?"
        trajectory = [call("get_item_details", item_id=vid)]
        yield read(f"tpl-item-details-{n:03d}", "item_details", text, trajectory)
    trajectory = [call("list_all_product_types")]
    yield read(
        "tpl-list-product-types-000", "list_product_types", "List all product types", trajectory
    )


def read(eid: str, intent: str, text: str, trajectory: list[Call]) -> dict[str, Any]:
    """One template read example."""
    return allowed_read(
        eid, "template", {"request": text}, trajectory, intent=intent, tags=["read"]
    )


def intents(data: Data) -> list[Intent]:
    """The write intents, in the order their users are taken from the pool."""

    def payable(u: User) -> tuple[dict[str, Any], str] | None:
        for o in data.orders_of(u["user_id"], "pending"):
            if len(o["payment_history"]) == 1 and (m := other_method(u, o)):
                return o, m
        return None

    def swappable(status: str) -> Callable[[User], tuple[dict[str, Any], str, str] | None]:
        def fits(u: User) -> tuple[dict[str, Any], str, str] | None:
            for o in data.orders_of(u["user_id"], status):
                if not distinct_items(o):
                    continue
                for item in o["items"]:
                    new = data.variant_for(item)
                    m = u["payment_methods"].get(paid_with(o))
                    if new is None or m is None or m["source"] == "gift_card":
                        continue
                    return o, item["item_id"], new
            return None

        return fits

    def order_lookup(order: dict[str, Any]) -> Call:
        return call("get_order_details", order_id=order["order_id"])

    def cancel(n: int, _: User, order: dict[str, Any]) -> Write:
        oid, reason = order["order_id"], REASONS[n % 2]
        return Write(
            f"Please cancel order {oid}, it was {reason}.",
            order_lookup(order),
            call("cancel_pending_order", order_id=oid, reason=reason),
        )

    def order_address(n: int, _: User, order: dict[str, Any]) -> Write:
        oid, addr = order["order_id"], address_of(n)
        return Write(
            f"Change the shipping address of order {oid} to {address_text(addr)}.",
            order_lookup(order),
            call("modify_pending_order_address", order_id=oid, **addr),
        )

    def user_address(n: int, user: User, _: Any) -> Write:
        addr = address_of(n + 2)
        return Write(
            f"Update my default address to {address_text(addr)}.",
            call("get_user_details", user_id="$s1"),
            call("modify_user_address", user_id="$s1", **addr),
            gold=call("modify_user_address", user_id=user["user_id"], **addr),
        )

    def payment(_: int, __: User, found: tuple[dict[str, Any], str]) -> Write:
        order, method = found
        oid = order["order_id"]
        return Write(
            f"Change the payment method of order {oid} to {method}.",
            order_lookup(order),
            call("modify_pending_order_payment", order_id=oid, payment_method_id=method),
        )

    def returns(n: int, _: User, order: dict[str, Any]) -> Write:
        oid, method = order["order_id"], paid_with(order)
        items = [i["item_id"] for i in order["items"]][: 1 + n % 2]
        return Write(
            f"Return item{'s' if len(items) > 1 else ''} {' and '.join(items)} from delivered "
            f"order {oid}, refund to {method}.",
            order_lookup(order),
            call(
                "return_delivered_order_items",
                order_id=oid,
                item_ids=items,
                payment_method_id=method,
            ),
        )

    def swap(tool: str, words: str) -> Callable[[int, User, Any], Write]:
        def write(_: int, __: User, found: tuple[dict[str, Any], str, str]) -> Write:
            order, old, new = found
            oid, method = order["order_id"], paid_with(order)
            return Write(
                words.format(oid=oid, old=old, new=new, method=method),
                order_lookup(order),
                call(
                    tool, order_id=oid, item_ids=[old], new_item_ids=[new], payment_method_id=method
                ),
            )

        return write

    return [
        Intent("cancel", "cancel_order", 14, data.first_order("pending"), cancel),
        Intent(
            "order-address", "modify_order_address", 8, data.first_order("pending"), order_address
        ),
        Intent("user-address", "modify_user_address", 6, lambda u: True, user_address),
        Intent("payment", "modify_order_payment", 8, payable, payment),
        Intent("return", "return_items", 8, data.first_order("delivered", distinct=True), returns),
        Intent(
            "exchange",
            "exchange_items",
            6,
            swappable("delivered"),
            swap(
                "exchange_delivered_order_items",
                "Exchange items in delivered order {oid}: item {old} for {new}; pay with {method}.",
            ),
        ),
        Intent(
            "modify-items",
            "modify_order_items",
            6,
            swappable("pending"),
            swap(
                "modify_pending_order_items",
                "Modify items in my pending order {oid}: change item {old} to {new}, pay the "
                "difference with {method}.",
            ),
        ),
    ]


def writes(data: Data) -> Iterator[dict[str, Any]]:
    """One approved write per example (the last cancellations are rejected instead)."""
    for spec in intents(data):
        for n in range(spec.count):
            user, found = data.take(spec.fits)
            w = spec.write(n, user, found)
            phrase, first = who(data, user, n)
            rejected = spec.intent == "cancel_order" and n >= REJECTED_CANCELS_FROM
            extra = {"status": "rejected", "review": REJECT} if rejected else {}
            tags = (
                ["write", "reject" if rejected else "approve"]
                if spec.prefix == "cancel"
                else ["write"]
            )
            yield approved_write(
                f"tpl-{spec.prefix}-{n:03d}",
                "template",
                {"request": f"{w.request} {phrase}"},
                [first, w.lookup, w.change],
                intent=spec.intent,
                writes=[] if rejected else [w.gold or w.change],
                tags=tags,
                **extra,
            )


def templates(data: Data) -> Iterator[dict[str, Any]]:
    """Requests the template planner should plan: the reads, then the writes."""
    yield from reads(data)
    yield from writes(data)
