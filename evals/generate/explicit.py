"""Explicit τ²-style plans (action lists), with the database change their gold actions make."""

from __future__ import annotations

import random
from collections.abc import Iterator
from typing import Any

from evals.generate.common import (
    REASONS,
    SEED,
    Call,
    Data,
    address_of,
    allowed_read,
    approved_write,
    call,
    paid_with,
    tau2,
)


def plan(
    eid: str, calls: list[Call], *, writes: list[Call], tags: list[str], **fields: Any
) -> dict[str, Any]:
    """One explicit plan that writes after an approval."""
    return approved_write(
        eid,
        "explicit",
        {"explicit_plan": tau2(calls)},
        calls,
        writes=writes,
        tags=["write", "tau2", *tags],
        **fields,
    )


def explicit(data: Data) -> Iterator[dict[str, Any]]:
    """Cancellations, two addresses at once, returns, a compensated plan and lookups."""
    db = data.db
    for n in range(10):
        user, order = data.take(data.first_order("pending"))
        oid = order["order_id"]
        calls = [
            call("find_user_id_by_email", email=user["email"]),
            call("get_order_details", order_id=oid),
            call("cancel_pending_order", order_id=oid, reason=REASONS[n % 2]),
        ]
        yield plan(f"plan-cancel-{n:03d}", calls, writes=[calls[-1]], tags=[])
    for n in range(8):
        user, order = data.take(data.first_order("pending"))
        oid, addr = order["order_id"], address_of(n + 1)
        calls = [
            call("find_user_id_by_email", email=user["email"]),
            call("modify_pending_order_address", order_id=oid, **addr),
            call("modify_user_address", user_id=user["user_id"], **addr),
        ]
        yield plan(
            f"plan-two-addresses-{n:03d}",
            calls,
            writes=calls[1:],
            tags=["two-writes"],
            match="unordered",
        )
    for n in range(8):
        user, order = data.take(data.first_order("delivered", distinct=True))
        oid = order["order_id"]
        calls = [
            call("find_user_id_by_email", email=user["email"]),
            call("get_user_details", user_id=user["user_id"]),
            call("get_order_details", order_id=oid),
            call(
                "return_delivered_order_items",
                order_id=oid,
                item_ids=[order["items"][0]["item_id"]],
                payment_method_id=paid_with(order),
            ),
        ]
        yield plan(f"plan-return-{n:03d}", calls, writes=[calls[-1]], tags=[])

    def two_other_methods(u: dict[str, Any]) -> tuple[dict[str, Any], list[str]] | None:
        for o in data.orders_of(u["user_id"], "pending"):
            if len(o["payment_history"]) != 1:
                continue
            others = [
                mid
                for mid, m in sorted(u["payment_methods"].items())
                if mid != paid_with(o) and m["source"] != "gift_card"
            ]
            if len(others) >= 2:
                return o, others[:2]
        return None

    for n in range(4):
        user, (order, (first, second)) = data.take(two_other_methods)
        oid = order["order_id"]
        calls = [
            call("find_user_id_by_email", email=user["email"]),
            call("modify_user_address", user_id=user["user_id"], **address_of(n)),
            call("modify_pending_order_payment", order_id=oid, payment_method_id=first),
            call("modify_pending_order_payment", order_id=oid, payment_method_id=second),
        ]
        # The facts show one payment, so the policy lets both changes through; the tool
        # refuses the second after the first, and compensation undoes the earlier writes.
        yield plan(
            f"plan-compensated-{n:03d}",
            calls,
            writes=[],
            tags=["compensation"],
            status="rolled_back",
        )
    rng = random.Random(SEED + 2)
    for n, uid in enumerate(rng.sample(data.users_with_orders(), 10)):
        user = db["users"][uid]
        calls = [
            call("find_user_id_by_email", email=user["email"]),
            call("get_user_details", user_id=uid),
            *[call("get_order_details", order_id=o) for o in user["orders"][:2]],
        ]
        yield allowed_read(
            f"plan-lookups-{n:03d}",
            "explicit",
            {"explicit_plan": tau2(calls)},
            calls,
            match="subset" if n % 2 else "strict",
            tags=["read", "tau2"],
        )
