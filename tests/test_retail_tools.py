"""The retail tools against τ²-bench's behaviour spec, on the real shipped data."""

from __future__ import annotations

import json
import sqlite3
import uuid
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from conftest import PG_ADMIN

from checkpoints.db import Domain, PostgresDomain, SqliteDomain, migrate
from checkpoints.factory import Stores
from tools.catalog import ToolError
from tools.domain import Change
from tools.retail import (
    MIGRATIONS,
    DomainNotSeeded,
    RetailDB,
    build_catalog,
    export,
    load_shipped,
    tau2_hash,
)
from tools.retail import seed as seed_domain
from tools.retail import tools as T

SHIPPED_HASH = "b25c9cb211f5efcaee5dd646054a73c4a9f43f4f5acc32c10713cd9f9ac20e9c"

PENDING = "#W2974929"  # fatima_anderson_2157, one item, paid with paypal_7916550
PENDING_GIFT = "#W6779827"  # ethan_lopez_6291, four items, paid with gift_card_7219486
PROCESSED = "#W2611340"
DELIVERED = "#W3113816"  # emma_santos_9753, five items, paid with credit_card_5869505


@pytest.fixture(scope="module")
def shipped() -> dict[str, Any]:
    return load_shipped()


def empty_domain() -> Domain:
    """An in-memory domain database with the retail tables and no data."""
    c = SqliteDomain(sqlite3.connect(":memory:", isolation_level=None))
    migrate(c, [("retail", MIGRATIONS)])
    return c


@pytest.fixture
def conn(shipped: dict[str, Any]) -> Iterator[Domain]:
    c = empty_domain()
    with c.transaction(write=True):
        seed_domain(c, shipped)
    yield c
    c.close()


@pytest.fixture
def db(conn: Domain) -> RetailDB:
    return RetailDB(conn)


def call(db: RetailDB, tool: Any, **args: Any) -> Any:
    return tool.invoke({**args, "db": db})


def refused(db: RetailDB, tool: Any, message: str, **args: Any) -> None:
    """Assert the call is refused with exactly ``message`` and changes nothing."""
    before = export(db.conn)
    with pytest.raises(ToolError) as info:
        call(db, tool, **args)
    assert info.value.message == message
    assert export(db.conn) == before


def other_variant(db: RetailDB, product_id: str, item_id: str, cheapest: bool = False) -> str:
    """Return an available variant of the product other than ``item_id``."""
    product = db.get_product(product_id)
    assert product is not None
    options = [
        (v["price"], vid)
        for vid, v in product["variants"].items()
        if vid != item_id and v["available"]
    ]
    assert options, f"no other variant of {product_id}"
    return str(min(options)[1] if cheapest else options[0][1])


def balance(db: RetailDB, user_id: str, method: str) -> float:
    user = db.get_user(user_id)
    assert user is not None
    return float(user["payment_methods"][method]["balance"])


# Data ---------------------------------------------------------------------------------------


def test_shipped_data_hash_equals_the_benchmarks(shipped: dict[str, Any]) -> None:
    assert tau2_hash(shipped) == SHIPPED_HASH
    assert (len(shipped["users"]), len(shipped["orders"]), len(shipped["products"])) == (
        500,
        1000,
        50,
    )


def test_seed_then_export_round_trips_byte_for_byte(conn: Domain, shipped: dict[str, Any]) -> None:
    out = export(conn)
    assert json.dumps(out) == json.dumps(shipped)


def test_export_of_an_empty_database_says_to_seed() -> None:
    with pytest.raises(DomainNotSeeded, match="planbound seed"):
        export(empty_domain())


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda d: d.pop("orders"), "missing orders"),
        (lambda d: d["orders"]["#W2974929"].update(status="lost"), "orders['#W2974929'].status"),
        (lambda d: d["users"]["noah_brown_6181"].pop("email"), "users['noah_brown_6181'].email"),
        (lambda d: d["orders"]["#W2974929"].update(user_id="nobody"), "user 'nobody'"),
    ],
)
def test_seed_refuses_malformed_data_and_keeps_the_old_state(
    conn: Domain, shipped: dict[str, Any], mutate: Any, message: str
) -> None:
    data = json.loads(json.dumps(shipped))
    mutate(data)
    with (
        pytest.raises(ValueError, match=message.replace("[", r"\[").replace("(", r"\(")),
        conn.transaction(write=True),
    ):
        seed_domain(conn, data)
    assert export(conn) == shipped


# Read tools ---------------------------------------------------------------------------------


def test_find_user_by_email_ignores_case(db: RetailDB) -> None:
    assert call(db, T.find_user_id_by_email, email="NOAH.Brown7922@example.com") == (
        "noah_brown_6181"
    )
    refused(db, T.find_user_id_by_email, "User not found", email="nobody@example.com")


def test_find_user_by_name_zip_ignores_name_case_not_zip(db: RetailDB) -> None:
    args = {"first_name": "noah", "last_name": "BROWN", "zip": "80279"}
    assert call(db, T.find_user_id_by_name_zip, **args) == "noah_brown_6181"
    refused(db, T.find_user_id_by_name_zip, "User not found", **{**args, "zip": "80279 "})


def test_lookups_match_ids_exactly(db: RetailDB) -> None:
    assert call(db, T.get_order_details, order_id=PENDING)["user_id"] == "fatima_anderson_2157"
    refused(db, T.get_order_details, "Order not found", order_id="W2974929")
    refused(db, T.get_user_details, "User not found", user_id="Noah_brown_6181")
    refused(db, T.get_product_details, "Product not found", product_id="3877188862")
    assert call(db, T.get_item_details, item_id="3877188862")["price"] == 182.03
    refused(db, T.get_item_details, "Item not found", item_id="1968349452")
    product = call(db, T.get_product_details, product_id="1968349452")
    assert product["name"] == "Skateboard" and "3877188862" in product["variants"]


def test_list_all_product_types_is_a_sorted_json_string(db: RetailDB, shipped: Any) -> None:
    out = call(db, T.list_all_product_types)
    assert isinstance(out, str)
    expected = {p["name"]: p["product_id"] for p in shipped["products"].values()}
    assert out == json.dumps(expected, sort_keys=True)
    assert len(json.loads(out)) == 50


def test_list_all_product_types_reads_the_same_on_both_databases(
    stores: Stores, shipped: Any
) -> None:
    # The names are read out of the records by the database (json_extract, ->>).
    with stores.lock:
        out = call(RetailDB(stores.domain), T.list_all_product_types)
    expected = {p["name"]: p["product_id"] for p in shipped["products"].values()}
    assert out == json.dumps(expected, sort_keys=True)


@pytest.mark.parametrize(
    ("expression", "result"),
    [("2 * (3 + 4.5)", "15.0"), ("10 / 4", "2.5"), ("1/3", "0.33"), ("2**3", "8.0"), ("4", "4.0")],
)
def test_calculate(expression: str, result: str) -> None:
    assert T.calculate.invoke({"expression": expression}) == result


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ("__import__('os')", "Invalid characters in expression"),
        ("2 ^ 3", "Invalid characters in expression"),
        ("1/0", "division by zero"),
        ("(1+", None),
    ],
)
def test_calculate_refuses_anything_but_arithmetic(expression: str, message: str | None) -> None:
    with pytest.raises(ToolError) as info:
        T.calculate.invoke({"expression": expression})
    if message is not None:
        assert info.value.message == message


def test_transfer_to_human_agents() -> None:
    assert T.transfer_to_human_agents.invoke({"summary": "wants a refund"}) == (
        "Transfer successful"
    )


# Cancel -------------------------------------------------------------------------------------


def test_cancel_refunds_every_payment_and_records_the_reason(db: RetailDB) -> None:
    order = call(db, T.cancel_pending_order, order_id=PENDING, reason="ordered by mistake")
    assert order["status"] == "cancelled"
    assert order["cancel_reason"] == "ordered by mistake"
    assert order["payment_history"][-1] == {
        "transaction_type": "refund",
        "amount": 182.03,
        "payment_method_id": "paypal_7916550",
    }
    assert db.get_order(PENDING) == order


def test_cancel_to_a_gift_card_raises_its_balance_rounded(db: RetailDB) -> None:
    before = balance(db, "ethan_lopez_6291", "gift_card_7219486")
    call(db, T.cancel_pending_order, order_id=PENDING_GIFT, reason="no longer needed")
    assert balance(db, "ethan_lopez_6291", "gift_card_7219486") == round(before + 4079.45, 2)


def test_cancel_checks_in_order(db: RetailDB) -> None:
    refused(db, T.cancel_pending_order, "Order not found", order_id="#W0", reason="x")
    refused(db, T.cancel_pending_order, "Non-pending order cannot be cancelled",
            order_id=PROCESSED, reason="x")  # fmt: skip
    refused(db, T.cancel_pending_order, "Invalid reason", order_id=PENDING,
            reason="No longer needed")  # fmt: skip


def test_cancel_after_a_payment_change_refunds_the_first_method_twice(db: RetailDB) -> None:
    call(db, T.modify_pending_order_payment, order_id=PENDING_GIFT,
         payment_method_id="credit_card_9789590")  # fmt: skip
    order = call(db, T.cancel_pending_order, order_id=PENDING_GIFT, reason="no longer needed")
    kinds = [(p["transaction_type"], p["payment_method_id"]) for p in order["payment_history"]]
    assert kinds == [
        ("payment", "gift_card_7219486"),
        ("payment", "credit_card_9789590"),
        ("refund", "gift_card_7219486"),
        ("refund", "gift_card_7219486"),
        ("refund", "credit_card_9789590"),
        ("refund", "gift_card_7219486"),
    ]


# Address ------------------------------------------------------------------------------------

ADDRESS = {
    "address1": "1 Elm St",
    "address2": "",
    "city": "Austin",
    "state": "TX",
    "country": "USA",
    "zip": "78701",
}


def test_modify_order_address_accepts_item_modified_orders(db: RetailDB) -> None:
    item = "3877188862"
    new = other_variant(db, "1968349452", item)
    call(db, T.modify_pending_order_items, order_id=PENDING, item_ids=[item],
         new_item_ids=[new], payment_method_id="paypal_7916550")  # fmt: skip
    order = call(db, T.modify_pending_order_address, order_id=PENDING, **ADDRESS)
    assert order["status"] == "pending (item modified)"
    assert list(order["address"]) == ["address1", "address2", "city", "country", "state", "zip"]
    assert order["address"]["city"] == "Austin"
    refused(db, T.modify_pending_order_address, "Non-pending order cannot be modified",
            order_id=PROCESSED, **ADDRESS)  # fmt: skip


def test_modify_user_address_leaves_orders_alone(db: RetailDB) -> None:
    orders_before = export(db.conn)["orders"]
    user = call(db, T.modify_user_address, user_id="fatima_anderson_2157", **ADDRESS)
    assert user["address"]["zip"] == "78701"
    assert export(db.conn)["orders"] == orders_before
    refused(db, T.modify_user_address, "User not found", user_id="nobody", **ADDRESS)


# Payment ------------------------------------------------------------------------------------


def test_modify_payment_moves_money_between_gift_card_and_card(db: RetailDB) -> None:
    before = balance(db, "ethan_lopez_6291", "gift_card_7219486")
    order = call(db, T.modify_pending_order_payment, order_id=PENDING_GIFT,
                 payment_method_id="credit_card_9789590")  # fmt: skip
    assert order["payment_history"][1:] == [
        {"transaction_type": "payment", "amount": 4079.45,
         "payment_method_id": "credit_card_9789590"},
        {"transaction_type": "refund", "amount": 4079.45,
         "payment_method_id": "gift_card_7219486"},
    ]  # fmt: skip
    assert order["status"] == "pending"
    assert balance(db, "ethan_lopez_6291", "gift_card_7219486") == round(before + 4079.45, 2)
    refused(db, T.modify_pending_order_payment,
            "There should be exactly one payment for a pending order",
            order_id=PENDING_GIFT, payment_method_id="gift_card_7219486")  # fmt: skip


def test_modify_payment_checks_in_order(db: RetailDB) -> None:
    m = T.modify_pending_order_payment
    refused(db, m, "Order not found", order_id="#W1", payment_method_id="x")
    refused(db, m, "Non-pending order cannot be modified", order_id=PROCESSED,
            payment_method_id="x")  # fmt: skip
    # Another user's method is never found: methods are looked up on the order's owner.
    refused(db, m, "Payment method not found", order_id=PENDING,
            payment_method_id="gift_card_7219486")  # fmt: skip
    refused(db, m, "The new payment method should be different from the current one",
            order_id=PENDING, payment_method_id="paypal_7916550")  # fmt: skip
    refused(db, m, "Insufficient gift card balance to pay for the order",
            order_id="#W2443586", payment_method_id="gift_card_2742113")  # fmt: skip


# Items --------------------------------------------------------------------------------------


def test_modify_items_one_pair(db: RetailDB) -> None:
    order = db.get_order(PENDING_GIFT)
    assert order is not None
    old = order["items"][0]
    new_id = other_variant(db, old["product_id"], old["item_id"], cheapest=True)
    new = db.find_item(new_id)
    assert new is not None
    before = balance(db, "ethan_lopez_6291", "gift_card_7219486")
    out = call(db, T.modify_pending_order_items, order_id=PENDING_GIFT,
               item_ids=[old["item_id"]], new_item_ids=[new_id],
               payment_method_id="gift_card_7219486")  # fmt: skip
    diff = 0 + (new["price"] - old["price"])
    assert out["status"] == "pending (item modified)"
    assert out["payment_history"][-1] == {
        "transaction_type": "payment" if diff > 0 else "refund",
        "amount": abs(diff),  # unrounded
        "payment_method_id": "gift_card_7219486",
    }
    assert balance(db, "ethan_lopez_6291", "gift_card_7219486") == round(before - diff, 2)
    assert out["items"][0]["item_id"] == new_id
    assert out["items"][0]["options"] == new["options"]
    assert out["items"][0]["name"] == old["name"]
    refused(db, T.modify_pending_order_items, "Non-pending order cannot be modified",
            order_id=PENDING_GIFT, item_ids=[], new_item_ids=[],
            payment_method_id="gift_card_7219486")  # fmt: skip


def test_modify_items_two_pairs_take_the_last_variants_price_and_options(db: RetailDB) -> None:
    order = db.get_order(PENDING_GIFT)
    assert order is not None
    a, b = order["items"][0], order["items"][2]
    new_a = other_variant(db, a["product_id"], a["item_id"])
    new_b = other_variant(db, b["product_id"], b["item_id"])
    last = db.find_item(new_b)
    assert last is not None
    out = call(db, T.modify_pending_order_items, order_id=PENDING_GIFT,
               item_ids=[a["item_id"], b["item_id"]], new_item_ids=[new_a, new_b],
               payment_method_id="credit_card_9789590")  # fmt: skip
    first, third = out["items"][0], out["items"][2]
    assert (first["item_id"], third["item_id"]) == (new_a, new_b)
    assert first["price"] == third["price"] == last["price"]
    assert first["options"] == third["options"] == last["options"]
    assert first["product_id"] == a["product_id"]


def test_modify_items_checks_in_order(db: RetailDB) -> None:
    m = T.modify_pending_order_items
    order = db.get_order(PENDING_GIFT)
    assert order is not None
    item = order["items"][0]
    old, pid = item["item_id"], item["product_id"]
    ok_new = other_variant(db, pid, old)
    pm = "credit_card_9789590"
    refused(db, m, f"{old} not found", order_id=PENDING_GIFT, item_ids=[old, old],
            new_item_ids=[ok_new, ok_new], payment_method_id=pm)  # fmt: skip
    refused(db, m, "The number of items to be exchanged should match", order_id=PENDING_GIFT,
            item_ids=[old], new_item_ids=[], payment_method_id=pm)  # fmt: skip
    refused(db, m, "The new item id should be different from the old item id",
            order_id=PENDING_GIFT, item_ids=[old], new_item_ids=[old],
            payment_method_id=pm)  # fmt: skip
    refused(db, m, "Variant not found", order_id=PENDING_GIFT, item_ids=[old],
            new_item_ids=["3877188862"], payment_method_id=pm)  # fmt: skip
    product = db.get_product(pid)
    assert product is not None
    unavailable = [v for v, d in product["variants"].items() if not d["available"]]
    if unavailable:
        refused(db, m, f"New item {unavailable[0]} not found or available",
                order_id=PENDING_GIFT, item_ids=[old], new_item_ids=[unavailable[0]],
                payment_method_id=pm)  # fmt: skip
    refused(db, m, "Payment method not found", order_id=PENDING_GIFT, item_ids=[old],
            new_item_ids=[ok_new], payment_method_id="paypal_7916550")  # fmt: skip


def test_modify_items_with_empty_lists_records_a_zero_refund(db: RetailDB) -> None:
    out = call(db, T.modify_pending_order_items, order_id=PENDING, item_ids=[],
               new_item_ids=[], payment_method_id="paypal_7916550")  # fmt: skip
    assert out["payment_history"][-1] == {
        "transaction_type": "refund",
        "amount": 0.0,
        "payment_method_id": "paypal_7916550",
    }
    assert out["status"] == "pending (item modified)"


# Return and exchange ------------------------------------------------------------------------


def test_return_to_the_original_method_or_a_gift_card(db: RetailDB) -> None:
    order = db.get_order(DELIVERED)
    assert order is not None
    ids = [order["items"][3]["item_id"], order["items"][0]["item_id"]]
    r = T.return_delivered_order_items
    out = call(db, r, order_id=DELIVERED, item_ids=ids, payment_method_id="gift_card_6023546")
    assert out["status"] == "return requested"
    assert out["return_items"] == sorted(ids)
    assert out["return_payment_method_id"] == "gift_card_6023546"
    assert out["payment_history"] == order["payment_history"]
    refused(db, r, "Non-delivered order cannot be returned", order_id=DELIVERED,
            item_ids=ids, payment_method_id="credit_card_5869505")  # fmt: skip


def test_return_checks_in_order(db: RetailDB) -> None:
    r = T.return_delivered_order_items
    order = db.get_order(DELIVERED)
    assert order is not None
    item = order["items"][0]["item_id"]
    refused(db, r, "Payment method not found", order_id=DELIVERED, item_ids=[item],
            payment_method_id="paypal_7916550")  # fmt: skip
    refused(db, r, "Some item not found", order_id=DELIVERED, item_ids=[item, item],
            payment_method_id="credit_card_5869505")  # fmt: skip


def test_exchange_sorts_both_lists_and_rounds_the_difference(db: RetailDB) -> None:
    order = db.get_order(DELIVERED)
    assert order is not None
    a, b = order["items"][0], order["items"][1]
    new_a = other_variant(db, a["product_id"], a["item_id"])
    new_b = other_variant(db, b["product_id"], b["item_id"])
    pa, pb = db.find_item(new_a), db.find_item(new_b)
    assert pa is not None and pb is not None
    out = call(db, T.exchange_delivered_order_items, order_id=DELIVERED,
               item_ids=[a["item_id"], b["item_id"]], new_item_ids=[new_a, new_b],
               payment_method_id="credit_card_5869505")  # fmt: skip
    assert out["status"] == "exchange requested"
    assert out["exchange_items"] == sorted([a["item_id"], b["item_id"]])
    assert out["exchange_new_items"] == sorted([new_a, new_b])
    diff = 0 + (pa["price"] - a["price"])
    diff += pb["price"] - b["price"]
    assert out["exchange_price_difference"] == round(diff, 2)
    assert out["items"] == order["items"]


def test_exchange_allows_the_same_item_and_empty_lists(db: RetailDB) -> None:
    order = db.get_order(DELIVERED)
    assert order is not None
    item = order["items"][0]
    product = db.get_product(item["product_id"])
    assert product is not None
    x = T.exchange_delivered_order_items
    if product["variants"][item["item_id"]]["available"]:
        out = call(db, x, order_id=DELIVERED, item_ids=[item["item_id"]],
                   new_item_ids=[item["item_id"]],
                   payment_method_id="gift_card_6023546")  # fmt: skip
        assert out["exchange_price_difference"] == round(
            product["variants"][item["item_id"]]["price"] - item["price"], 2
        )
    else:
        out = call(db, x, order_id=DELIVERED, item_ids=[], new_item_ids=[],
                   payment_method_id="gift_card_6023546")  # fmt: skip
        assert out["exchange_price_difference"] == 0


def test_exchange_checks_in_order(db: RetailDB) -> None:
    x = T.exchange_delivered_order_items
    order = db.get_order(DELIVERED)
    assert order is not None
    old = order["items"][0]["item_id"]
    pm = "credit_card_5869505"
    refused(db, x, "Non-delivered order cannot be exchanged", order_id=PENDING,
            item_ids=[], new_item_ids=[], payment_method_id=pm)  # fmt: skip
    refused(db, x, f"Number of {old} not found.", order_id=DELIVERED, item_ids=[old, old],
            new_item_ids=[], payment_method_id=pm)  # fmt: skip
    refused(db, x, "The number of items to be exchanged should match.", order_id=DELIVERED,
            item_ids=[old], new_item_ids=[], payment_method_id=pm)  # fmt: skip
    refused(db, x, "Variant not found", order_id=DELIVERED, item_ids=[old],
            new_item_ids=["3877188862"], payment_method_id=pm)  # fmt: skip


# Before-images ------------------------------------------------------------------------------


def test_writes_record_before_images_and_restore_undoes_them(db: RetailDB) -> None:
    start = export(db.conn)
    call(db, T.cancel_pending_order, order_id=PENDING_GIFT, reason="no longer needed")
    changes = db.take_changes()
    assert sorted(c.table for c in changes) == ["orders", "users"]
    again = [Change.from_json(json.loads(json.dumps(c.to_json()))) for c in changes]
    assert all(db.restore(c) for c in reversed(again))
    assert export(db.conn) == start


def test_restore_refuses_when_the_record_changed_since(db: RetailDB) -> None:
    call(db, T.modify_user_address, user_id="fatima_anderson_2157", **ADDRESS)
    (change,) = db.take_changes()
    call(db, T.modify_user_address, user_id="fatima_anderson_2157",
         **{**ADDRESS, "city": "Dallas"})  # fmt: skip
    db.take_changes()
    assert db.restore(change) is False
    user = db.get_user("fatima_anderson_2157")
    assert user is not None and user["address"]["city"] == "Dallas"


# Catalog ------------------------------------------------------------------------------------


def test_catalog_lists_the_benchmarks_tools_with_specs() -> None:
    catalog = build_catalog()
    assert len(catalog.names()) == 16
    writes = {n for n in catalog.names() if catalog.entries[n].spec.effect == "write"}
    assert writes == {
        "cancel_pending_order",
        "modify_pending_order_address",
        "modify_pending_order_items",
        "modify_pending_order_payment",
        "modify_user_address",
        "return_delivered_order_items",
        "exchange_delivered_order_items",
    }
    for name in writes:
        assert catalog.entries[name].spec.compensator == "restore_before_image"
    for name in catalog.names():
        assert "db" not in catalog.args_schema(name).model_fields
    assert catalog.version == build_catalog().version
    assert len(catalog.version) == 16


def test_the_lookup_columns_follow_every_write_and_a_database_that_had_none_gets_them(
    stores: Stores,
) -> None:
    # The generated email and name columns are the records' own fields, after any write.
    db = RetailDB(stores.domain)
    with stores.lock, stores.domain.transaction(write=True):
        user = db.get_user("fatima_anderson_2157")
        assert user is not None
        db.put("users", {**user, "email": "Fatima.New@Example.com"})
    with stores.lock:
        found = call(db, T.find_user_id_by_email, email="fatima.new@example.com")
        assert found == "fatima_anderson_2157"
        refused(db, T.find_user_id_by_email, "User not found", email=user["email"])
        names = dict(db.product_names())
    assert names["Skateboard"] == "1968349452" and len(names) == 50


@pytest.fixture(params=["sqlite", "postgres"])
def unmigrated(request: pytest.FixtureRequest, tmp_path: Any) -> Iterator[Domain]:
    """A domain database with no tables at all (a new SQLite file, a new PostgreSQL database)."""
    if request.param == "sqlite":
        c: Domain = SqliteDomain(sqlite3.connect(tmp_path / "old.db", isolation_level=None))
        yield c
        c.close()
        return
    name = f"pb_retail_upgrade_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    c = PostgresDomain(PG_ADMIN.rsplit("/", 1)[0] + "/" + name)
    yield c
    c.close()
    with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def test_a_retail_database_seeded_before_the_lookup_columns_gets_them_on_upgrade(
    unmigrated: Domain, shipped: dict[str, Any]
) -> None:
    migrate(unmigrated, [("retail", MIGRATIONS[:1])])
    with unmigrated.transaction(write=True):
        seed_domain(unmigrated, shipped)
    assert migrate(unmigrated, [("retail", MIGRATIONS)]) == [("retail", 2)]
    db = RetailDB(unmigrated)
    email = shipped["users"]["fatima_anderson_2157"]["email"]
    assert call(db, T.find_user_id_by_email, email=email.upper()) == "fatima_anderson_2157"
    assert dict(db.product_names()) == {p["name"]: k for k, p in shipped["products"].items()}
    assert export(unmigrated) == shipped
