"""The retail read tools: users, orders, products and items, and the two generic tools."""

from __future__ import annotations

import json
from typing import Any

from simpleeval import InvalidExpression, SimpleEval

from tools.catalog import ToolError, catalog_tool
from tools.retail.tools import common as records
from tools.retail.tools.common import Db


@catalog_tool
def find_user_id_by_email(email: str, db: Db) -> str:
    """Find a user id by email address (case-insensitive).

    Args:
        email: The user's email, e.g. 'something@example.com'.
    """
    wanted = email.lower()
    for user in db.iter_users_with_email(email):
        if user["email"].lower() == wanted:
            return str(user["user_id"])
    raise ToolError("User not found")


@catalog_tool
def find_user_id_by_name_zip(first_name: str, last_name: str, zip: str, db: Db) -> str:
    """Find a user id by first name, last name (both case-insensitive) and zip code.

    Args:
        first_name: The first name, e.g. 'John'.
        last_name: The last name, e.g. 'Doe'.
        zip: The zip code of the user's default address, e.g. '12345'.
    """
    first, last = first_name.lower(), last_name.lower()
    for user in db.iter_users_containing(zip):
        name = user["name"]
        if (
            name["first_name"].lower() == first
            and name["last_name"].lower() == last
            and user["address"]["zip"] == zip
        ):
            return str(user["user_id"])
    raise ToolError("User not found")


@catalog_tool
def get_user_details(user_id: str, db: Db) -> dict[str, Any]:
    """Get a user's profile, default address, payment methods and order ids.

    Args:
        user_id: The user id, e.g. 'sara_doe_496'.
    """
    return records.user(db, user_id)


@catalog_tool
def get_order_details(order_id: str, db: Db) -> dict[str, Any]:
    """Get an order's status, items, address, fulfillments and payment history.

    Args:
        order_id: The order id with its leading '#', e.g. '#W0000000'.
    """
    return records.order(db, order_id)


@catalog_tool
def get_product_details(product_id: str, db: Db) -> dict[str, Any]:
    """Get a product and all its variants (item ids, options, availability, prices).

    Args:
        product_id: The product id, e.g. '6086499569'. Item ids are not product ids.
    """
    return records.product(db, product_id)


@catalog_tool
def get_item_details(item_id: str, db: Db) -> dict[str, Any]:
    """Get one item (a product variant): its options, availability and price.

    Args:
        item_id: The item id, e.g. '1008292230'.
    """
    variant = db.find_item(item_id)
    if variant is None:
        raise ToolError("Item not found")
    return variant


@catalog_tool
def list_all_product_types(db: Db) -> str:
    """List the name and product id of every product type in the store."""
    names = dict(db.product_names())
    # τ² quirk: the result is a JSON string (sorted keys, default separators), not an object.
    return json.dumps(names, sort_keys=True)


_ARITHMETIC = set("0123456789+-*/(). ")
_EVALUATOR = SimpleEval(functions={}, names={})


@catalog_tool
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


@catalog_tool
def transfer_to_human_agents(summary: str) -> str:
    """Hand the conversation to a human agent, with a summary of the user's issue.

    Use only when the request cannot be handled within policy and the tools.

    Args:
        summary: A summary of the user's issue.
    """
    return "Transfer successful"
