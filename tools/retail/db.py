"""The retail domain database: τ²-bench retail records, one JSON document per row.

Each record (user, order, product) is stored as its τ² JSON document in one row, so what
goes in with ``seed`` comes back byte for byte from ``export``. Every write through
:class:`RetailDB` records a :class:`Change` (before- and after-image), which the engine
stores in the side-effect ledger and uses for compensation.

:class:`RetailDB` never begins or commits a transaction: the engine owns transactions, so a
tool's writes and the ledger row that records them commit together.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from importlib import resources
from typing import Any, Literal

from tools.domain import Change, Connection, Migration

Table = Literal["users", "orders", "products"]
TABLES: tuple[Table, ...] = ("products", "users", "orders")
"""Tables in the order τ²'s ``db.json`` lists them."""

_KEYS: dict[Table, str] = {"users": "user_id", "orders": "order_id", "products": "product_id"}

OPTIONAL_ORDER_KEYS = (
    "cancel_reason",
    "exchange_items",
    "exchange_new_items",
    "exchange_payment_method_id",
    "exchange_price_difference",
    "return_items",
    "return_payment_method_id",
)
"""Order keys τ²'s pydantic model adds with ``null`` when absent (used by its hash)."""


class DomainNotSeeded(RuntimeError):
    """The domain database has no retail data yet (run ``planbound seed``)."""

    def __init__(self) -> None:
        super().__init__("the retail domain is not seeded; run `planbound seed` first")


def _dump(doc: dict[str, Any]) -> str:
    # Key order is kept as given: τ² documents are exported in their original order.
    return json.dumps(doc, ensure_ascii=False)


MIGRATIONS: tuple[Migration, ...] = (
    (
        1,
        "retail tables",
        """
        CREATE TABLE IF NOT EXISTS retail_users (
            seq INTEGER NOT NULL UNIQUE, key TEXT PRIMARY KEY, doc TEXT NOT NULL);
        CREATE TABLE IF NOT EXISTS retail_orders (
            seq INTEGER NOT NULL UNIQUE, key TEXT PRIMARY KEY, doc TEXT NOT NULL);
        CREATE TABLE IF NOT EXISTS retail_products (
            seq INTEGER NOT NULL UNIQUE, key TEXT PRIMARY KEY, doc TEXT NOT NULL);
        CREATE TABLE IF NOT EXISTS retail_items (
            item_id TEXT PRIMARY KEY, product_id TEXT NOT NULL)
        """,
    ),
    (
        2,
        "lookup columns: a user's email, a product's name",
        {
            # Generated from the record, so no write can leave them stale; a lookup by
            # email, and the list of product names, read no record they do not need.
            "sqlite": """
            ALTER TABLE retail_users ADD COLUMN email TEXT
                GENERATED ALWAYS AS (lower(json_extract(doc, '$.email'))) VIRTUAL;
            CREATE INDEX IF NOT EXISTS retail_users_email ON retail_users (email);
            ALTER TABLE retail_products ADD COLUMN name TEXT
                GENERATED ALWAYS AS (json_extract(doc, '$.name')) VIRTUAL
            """,
            "postgres": """
            ALTER TABLE retail_users ADD COLUMN IF NOT EXISTS email TEXT
                GENERATED ALWAYS AS (lower((doc::json) ->> 'email')) STORED;
            CREATE INDEX IF NOT EXISTS retail_users_email ON retail_users (email);
            ALTER TABLE retail_products ADD COLUMN IF NOT EXISTS name TEXT
                GENERATED ALWAYS AS ((doc::json) ->> 'name') STORED
            """,
        },
    ),
)
"""The retail domain's tables (component ``retail``)."""


class RetailDB:
    """Typed access to the retail records on a connection whose transactions the caller owns.

    Reads return fresh ``dict`` copies; a tool mutates its copy and writes it back with
    :meth:`put`, which records a :class:`~tools.domain.Change`. ``conn`` is any
    :class:`~tools.domain.Connection` (planbound's SQLite or PostgreSQL domain database).
    """

    def __init__(self, conn: Connection) -> None:
        """Work on ``conn``; the caller owns its transactions."""
        self.conn = conn
        self.changes: list[Change] = []

    # Reads -------------------------------------------------------------------------------

    def _get(self, table: Table, key: str) -> dict[str, Any] | None:
        row = self.conn.execute(f"SELECT doc FROM retail_{table} WHERE key = ?", (key,)).fetchone()
        if row is None:
            return None
        doc: dict[str, Any] = json.loads(row[0])
        return doc

    def get_user(self, user_id: str) -> dict[str, Any] | None:
        """Return the user record or ``None``."""
        return self._get("users", user_id)

    def get_order(self, order_id: str) -> dict[str, Any] | None:
        """Return the order record or ``None`` (the id must match exactly, ``#`` included)."""
        return self._get("orders", order_id)

    def get_product(self, product_id: str) -> dict[str, Any] | None:
        """Return the product record with its variants, or ``None``."""
        return self._get("products", product_id)

    def _iter(self, table: Table) -> Iterator[dict[str, Any]]:
        for (doc,) in self.conn.execute(f"SELECT doc FROM retail_{table} ORDER BY seq"):
            yield json.loads(doc)

    def iter_users(self) -> Iterator[dict[str, Any]]:
        """Yield users in the order of the source data (τ²'s scan order)."""
        return self._iter("users")

    def iter_users_containing(self, text: str) -> Iterator[dict[str, Any]]:
        """Yield the users whose record contains ``text`` (case-insensitive), in scan order.

        The database filters the rows, so only the candidates are parsed (a lookup by email
        or zip no longer decodes every user). A candidate is not yet a match: callers check
        the field they compare. When nothing contains ``text`` every user is yielded, so a
        caller's own comparison stays the final word even for spellings the database's
        ``lower()`` does not fold.
        """
        needle = json.dumps(text.lower(), ensure_ascii=False)[1:-1]
        pattern = "%" + needle.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        rows = self.conn.execute(
            "SELECT doc FROM retail_users WHERE lower(doc) LIKE ? ESCAPE '\\' ORDER BY seq",
            (pattern,),
        ).fetchall()
        if not rows:
            yield from self.iter_users()
            return
        for (doc,) in rows:
            yield json.loads(doc)

    def iter_products(self) -> Iterator[dict[str, Any]]:
        """Yield products in the order of the source data."""
        return self._iter("products")

    def product_names(self) -> list[tuple[str, str]]:
        """``(name, product_id)`` of every product, in the order of the source data.

        Read from the ``name`` column generated from each record: no record is decoded.
        """
        rows = self.conn.execute("SELECT name, key FROM retail_products ORDER BY seq").fetchall()
        return [(str(name), str(product_id)) for name, product_id in rows]

    def iter_users_with_email(self, email: str) -> Iterator[dict[str, Any]]:
        """Yield the users whose email lower-cases to ``email``'s, in scan order.

        The indexed ``email`` column is the record's email lower-cased by the database; a
        candidate is not yet a match (callers compare the field themselves), and when no
        user has that column value :meth:`iter_users_containing` is asked instead, so a
        spelling the database's ``lower()`` folds differently is still found.
        """
        rows = self.conn.execute(
            "SELECT doc FROM retail_users WHERE email = ? ORDER BY seq", (email.lower(),)
        ).fetchall()
        if not rows:
            yield from self.iter_users_containing(email)
            return
        for (doc,) in rows:
            yield json.loads(doc)

    def product_of(self, item_id: str) -> str | None:
        """Return the id of the product that has the variant ``item_id``, or ``None``."""
        row = self.conn.execute(
            "SELECT product_id FROM retail_items WHERE item_id = ?", (item_id,)
        ).fetchone()
        return None if row is None else str(row[0])

    def find_item(self, item_id: str) -> dict[str, Any] | None:
        """Return the variant with ``item_id`` from whichever product holds it, or ``None``."""
        product_id = self.product_of(item_id)
        if product_id is None:
            return None
        product = self.get_product(product_id)
        if product is None:
            return None
        variant: dict[str, Any] | None = product["variants"].get(item_id)
        return variant

    def is_seeded(self) -> bool:
        """Whether the retail tables exist and hold data."""
        if self.conn.dialect == "postgres":
            exists = self.conn.execute("SELECT to_regclass('retail_users')").fetchone()[0]
        else:
            exists = self.conn.execute(
                "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'retail_users'"
            ).fetchone()
        if not exists:
            return False
        return self.conn.execute("SELECT 1 FROM retail_users LIMIT 1").fetchone() is not None

    # Writes ------------------------------------------------------------------------------

    def put(self, table: Table, doc: dict[str, Any]) -> None:
        """Write back an existing record, recording its before- and after-image."""
        key = doc[_KEYS[table]]
        row = self.conn.execute(f"SELECT doc FROM retail_{table} WHERE key = ?", (key,)).fetchone()
        if row is None:
            raise KeyError(f"{table} {key!r} does not exist")
        after = _dump(doc)
        if after == row[0]:
            return
        self.conn.execute(f"UPDATE retail_{table} SET doc = ? WHERE key = ?", (after, key))
        self.changes.append(Change(table=table, key=key, before=row[0], after=after))

    def put_user(self, user: dict[str, Any]) -> None:
        """Write back a user record."""
        self.put("users", user)

    def put_order(self, order: dict[str, Any]) -> None:
        """Write back an order record."""
        self.put("orders", order)

    def take_changes(self) -> list[Change]:
        """Return the changes recorded since the last call and forget them."""
        taken, self.changes = self.changes, []
        return taken

    def current(self, table: str, key: str) -> str | None:
        """Return a record's stored JSON text, or ``None`` if it does not exist."""
        row = self.conn.execute(f"SELECT doc FROM retail_{table} WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def restore(self, change: Change) -> bool:
        """Put back ``change.before`` if the record still equals ``change.after``.

        Returns ``False`` (and writes nothing) when the record changed since: a conflict is
        reported, never overwritten.
        """
        if change.table not in _KEYS:
            raise ValueError(f"unknown table {change.table!r} in a recorded change")
        if self.current(change.table, change.key) != change.after:
            return False
        self.conn.execute(
            f"UPDATE retail_{change.table} SET doc = ? WHERE key = ?", (change.before, change.key)
        )
        self.changes.append(
            Change(table=change.table, key=change.key, before=change.after, after=change.before)
        )
        return True


def seed(conn: Connection, data: dict[str, Any]) -> dict[str, int]:
    """Replace the domain's records with ``data`` (a τ²-format ``db.json`` document).

    Run it inside one write transaction (the caller's), so that either all records are
    replaced or none. Returns the number of records per table.

    Raises:
        ValueError: when ``data`` is not τ²-shaped (the message names what is wrong).
    """
    from tools.retail.models import validate_db

    validate_db(data)
    counts: dict[str, int] = {}
    for table in ("retail_users", "retail_orders", "retail_products", "retail_items"):
        conn.execute(f"DELETE FROM {table}")
    for name in TABLES:
        records: dict[str, Any] = data[name]
        conn.executemany(
            f"INSERT INTO retail_{name} (seq, key, doc) VALUES (?, ?, ?)",
            [(i, key, _dump(doc)) for i, (key, doc) in enumerate(records.items())],
        )
        counts[name] = len(records)
    conn.executemany(
        "INSERT INTO retail_items (item_id, product_id) VALUES (?, ?)",
        [
            (item_id, product_id)
            for product_id, product in data["products"].items()
            for item_id in product["variants"]
        ],
    )
    return counts


def export(conn: Connection) -> dict[str, Any]:
    """Return the domain state as a τ²-format ``db.json`` document.

    Optional order keys that are ``null`` are left out, as in τ²'s own ``db.json``.

    Raises:
        DomainNotSeeded: when there is no retail data.
    """
    db = RetailDB(conn)
    if not db.is_seeded():
        raise DomainNotSeeded()
    out: dict[str, Any] = {}
    for table in TABLES:
        records: dict[str, Any] = {}
        for doc in db._iter(table):
            if table == "orders":
                doc = {
                    k: v for k, v in doc.items() if k not in OPTIONAL_ORDER_KEYS or v is not None
                }
            records[doc[_KEYS[table]]] = doc
        out[table] = records
    return out


def load_shipped() -> dict[str, Any]:
    """Return the τ²-bench retail ``db.json`` shipped with planbound (MIT, Sierra Research)."""
    text = resources.files("tools.retail.data").joinpath("db.json").read_text(encoding="utf-8")
    data: dict[str, Any] = json.loads(text)
    return data


def tau2_hash(data: dict[str, Any]) -> str:
    """Return τ²-bench's ``get_db_hash()`` of a ``db.json`` document.

    τ² hashes its pydantic ``model_dump()``, where every order carries all optional keys
    (``null`` when unset), with ``json.dumps(..., sort_keys=True)`` defaults.
    """
    dumped = {
        "products": data["products"],
        "users": data["users"],
        "orders": {
            key: {**{k: None for k in OPTIONAL_ORDER_KEYS}, **order}
            for key, order in data["orders"].items()
        },
    }
    return hashlib.sha256(json.dumps(dumped, sort_keys=True).encode()).hexdigest()
