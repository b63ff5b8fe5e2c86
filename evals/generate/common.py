"""What every dataset builder shares: the data with its pool of users, and the line shapes."""

from __future__ import annotations

import random
from typing import Any

from evals.datasets import SOURCE
from tools.retail import load_shipped

SEED = 13
REVIEWER = {"reviewer": "eval-supervisor", "role": "supervisor"}
APPROVE = {"decisions": [{"type": "approve"}], **REVIEWER}
REASONS = ("no longer needed", "ordered by mistake")
NEW_ADDRESSES = [
    ("123 Main St", "Suite 4", "Austin", "TX", "USA", "78701"),
    ("77 Harbor Way", "Apt 12", "Seattle", "WA", "USA", "98101"),
    ("9 Elm Street", "Unit 3", "Portland", "OR", "USA", "97201"),
    ("455 Lake Ave", "Floor 2", "Chicago", "IL", "USA", "60601"),
    ("18 Pine Road", "Box 7", "Denver", "CO", "USA", "80202"),
]
ADDRESS_FIELDS = ("address1", "address2", "city", "state", "country", "zip")

Call = dict[str, Any]
"""One expected tool call: ``{"tool": name, "args": {...}}``."""


def call(tool: str, **args: Any) -> Call:
    """One expected tool call of a trajectory."""
    return {"tool": tool, "args": args}


def tau2(calls: list[Call]) -> list[dict[str, Any]]:
    """A τ²-style action list."""
    return [{"name": c["tool"], "arguments": c["args"]} for c in calls]


class Data:
    """The shipped data with indexes and a pool of users not yet given to a write example."""

    def __init__(self) -> None:
        self.db = load_shipped()
        self.rng = random.Random(SEED)
        users = sorted(self.db["users"])
        self.rng.shuffle(users)
        self.free = users
        names: dict[tuple[str, str, str], int] = {}
        for u in self.db["users"].values():
            key = (u["name"]["first_name"], u["name"]["last_name"], u["address"]["zip"])
            names[key] = names.get(key, 0) + 1
        self.unique_name = {k for k, n in names.items() if n == 1}

    def orders_of(self, uid: str, status: str) -> list[dict[str, Any]]:
        """The user's orders with ``status``."""
        return [
            self.db["orders"][oid]
            for oid in self.db["users"][uid]["orders"]
            if self.db["orders"][oid]["status"] == status
        ]

    def first_order(self, status: str, *, distinct: bool = False) -> Any:
        """A :meth:`take` test: the user's first order with ``status`` (and distinct items)."""
        return lambda u: next(
            (o for o in self.orders_of(u["user_id"], status) if not distinct or distinct_items(o)),
            None,
        )

    def take(self, ok: Any) -> tuple[dict[str, Any], Any]:
        """Give the first free user for whom ``ok(user)`` returns something, with that thing."""
        for i, uid in enumerate(self.free):
            found = ok(self.db["users"][uid])
            if found:
                del self.free[i]
                return self.db["users"][uid], found
        raise RuntimeError("no free user fits")

    def variant_for(self, item: dict[str, Any]) -> str | None:
        """Another available variant of the item's product, if any."""
        product = self.db["products"][item["product_id"]]
        for vid, v in sorted(product["variants"].items()):
            if vid != item["item_id"] and v["available"]:
                return str(vid)
        return None

    def by_name(self, user: dict[str, Any]) -> bool:
        """Whether the user's name and zip identify them alone."""
        key = (user["name"]["first_name"], user["name"]["last_name"], user["address"]["zip"])
        return key in self.unique_name

    def users_with_orders(self) -> list[str]:
        """The ids of users who placed at least one order, sorted."""
        return sorted(u for u in self.db["users"] if self.db["users"][u]["orders"])


def who(data: Data, user: dict[str, Any], n: int) -> tuple[str, Call]:
    """How a request names its user (email, or name and zip every third time) and step 1."""
    if n % 3 == 2 and data.by_name(user):
        first, last = user["name"]["first_name"], user["name"]["last_name"]
        zipc = user["address"]["zip"]
        return f"I am {first} {last}, zip {zipc}.", call(
            "find_user_id_by_name_zip", first_name=first, last_name=last, zip=zipc
        )
    return f"My email is {user['email']}.", call("find_user_id_by_email", email=user["email"])


def address_of(n: int) -> dict[str, str]:
    """The ``n``-th new address."""
    return dict(zip(ADDRESS_FIELDS, NEW_ADDRESSES[n % len(NEW_ADDRESSES)], strict=True))


def address_text(addr: dict[str, str]) -> str:
    """An address as the templates read it."""
    return "address: " + ", ".join(addr[f] for f in ADDRESS_FIELDS)


def paid_with(order: dict[str, Any]) -> str:
    """The payment method that paid for the order first."""
    return str(order["payment_history"][0]["payment_method_id"])


def other_method(user: dict[str, Any], order: dict[str, Any]) -> str | None:
    """A payment method of the user other than the order's, that can pay for it."""
    paid = paid_with(order)
    amount = order["payment_history"][0]["amount"]
    for mid, m in sorted(user["payment_methods"].items()):
        if mid == paid:
            continue
        if m["source"] == "gift_card" and m.get("balance", 0) < amount:
            continue
        return str(mid)
    return None


def distinct_items(order: dict[str, Any]) -> bool:
    """Whether no item id appears twice in the order (so an item id names one line)."""
    ids = [i["item_id"] for i in order["items"]]
    return len(set(ids)) == len(ids)


def example(
    eid: str,
    kind: str,
    inputs: dict[str, Any],
    *,
    status: str,
    intent: str | None = None,
    trajectory: list[Call] | None = None,
    match: str = "strict",
    args_match: str = "exact",
    verdict: str | None = None,
    rules: list[str] | None = None,
    review: dict[str, Any] | None = None,
    writes: list[Call] | None = None,
    tags: list[str] | None = None,
    reason_contains: str | None = None,
) -> dict[str, Any]:
    """One dataset line (``writes``: the gold write calls whose effect is expected)."""
    return {
        "id": eid,
        "kind": kind,
        "inputs": inputs,
        "review": review,
        "expected": {
            "status": status,
            "intent": intent,
            "trajectory": trajectory,
            "trajectory_match": match,
            "args_match": args_match,
            "verdict": verdict,
            "rules": rules or [],
            "db_diff": writes,  # replaced by the diff when written
            "reason_contains": reason_contains,
        },
        "tags": tags or [],
        "source": SOURCE,
    }


def approved_write(
    eid: str,
    kind: str,
    inputs: dict[str, Any],
    trajectory: list[Call],
    *,
    writes: list[Call],
    tags: list[str],
    **fields: Any,
) -> dict[str, Any]:
    """A write the policy sends to review and the reviewer approves (the common case)."""
    fields.setdefault("status", "completed")
    fields.setdefault("review", APPROVE)
    return example(
        eid,
        kind,
        inputs,
        trajectory=trajectory,
        verdict="needs_approval",
        rules=["writes.need_approval"],
        writes=writes,
        tags=tags,
        **fields,
    )


def allowed_read(
    eid: str, kind: str, inputs: dict[str, Any], trajectory: list[Call], **fields: Any
) -> dict[str, Any]:
    """A read the policy allows without review: it completes and changes nothing."""
    return example(
        eid,
        kind,
        inputs,
        status="completed",
        trajectory=trajectory,
        verdict="allow",
        writes=[],
        **fields,
    )
