"""The lending domain's table, tools, catalog and facts provider."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Annotated, Any

from langchain_core.tools import InjectedToolArg, tool
from pydantic import BaseModel

from tools.catalog import Catalog, CatalogEntry, ToolError, ToolSpec
from tools.domain import Change, Connection

MIGRATIONS = (
    (
        1,
        "lending records",
        "CREATE TABLE IF NOT EXISTS lending_records ("
        " kind TEXT NOT NULL, key TEXT NOT NULL, doc TEXT NOT NULL, PRIMARY KEY (kind, key))",
    ),
)


class LendingDB:
    """Members and books, one JSON document per row; every write records a change."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.changes: list[Change] = []

    def get(self, kind: str, key: str) -> dict[str, Any] | None:
        row = self.conn.execute(
            "SELECT doc FROM lending_records WHERE kind = ? AND key = ?", (kind, key)
        ).fetchone()
        return None if row is None else dict(json.loads(row[0]))

    def members(self) -> list[dict[str, Any]]:
        rows = self.conn.execute("SELECT doc FROM lending_records WHERE kind = 'member'")
        return [json.loads(r[0]) for r in rows]

    def put_book(self, book: dict[str, Any]) -> None:
        before = self.conn.execute(
            "SELECT doc FROM lending_records WHERE kind = 'book' AND key = ?", (book["book_id"],)
        ).fetchone()[0]
        after = json.dumps(book)
        self.conn.execute(
            "UPDATE lending_records SET doc = ? WHERE kind = 'book' AND key = ?",
            (after, book["book_id"]),
        )
        self.changes.append(Change("book", book["book_id"], before, after))

    def take_changes(self) -> list[Change]:
        taken, self.changes = self.changes, []
        return taken

    def restore(self, change: Change) -> bool:
        current = self.conn.execute(
            "SELECT doc FROM lending_records WHERE kind = ? AND key = ?", (change.table, change.key)
        ).fetchone()
        if current is None or current[0] != change.after:
            return False
        self.conn.execute(
            "UPDATE lending_records SET doc = ? WHERE kind = ? AND key = ?",
            (change.before, change.table, change.key),
        )
        return True

    def is_seeded(self) -> bool:
        return self.conn.execute("SELECT 1 FROM lending_records LIMIT 1").fetchone() is not None


Db = Annotated[LendingDB, InjectedToolArg]


class Book(BaseModel):
    book_id: str
    title: str
    lent_to: str | None


@tool
def find_member_by_email(email: str, db: Db) -> str:
    """Find a member's id by email.

    Args:
        email: The member's email.
    """
    for member in db.members():
        if member["email"].lower() == email.lower():
            return str(member["member_id"])
    raise ToolError("Error: member not found")


@tool
def get_book(book_id: str, db: Db) -> dict[str, Any]:
    """Read a book.

    Args:
        book_id: The book's id, like B100.
    """
    book = db.get("book", book_id)
    if book is None:
        raise ToolError("Error: book not found")
    return book


@tool
def lend_book(book_id: str, member_id: str, db: Db) -> dict[str, Any]:
    """Lend a book to a member.

    Args:
        book_id: The book's id.
        member_id: The member's id.
    """
    book = db.get("book", book_id)
    if book is None:
        raise ToolError("Error: book not found")
    if book["lent_to"] is not None:
        raise ToolError("Error: book already lent")
    book["lent_to"] = member_id
    db.put_book(book)
    return book


def build_catalog() -> Catalog:
    return Catalog.of(
        "lending",
        [
            CatalogEntry(
                find_member_by_email, ToolSpec("find_member_by_email", "1.0.0", "low", "read")
            ),
            CatalogEntry(get_book, ToolSpec("get_book", "1.0.0", "low", "read", output=Book)),
            CatalogEntry(
                lend_book,
                ToolSpec(
                    "lend_book",
                    "1.0.0",
                    "high",
                    "write",
                    compensator="restore_before_image",
                    output=Book,
                ),
            ),
        ],
    )


class LendingFacts:
    """Collects the books a step names."""

    identity_tools = frozenset({"find_member_by_email"})

    def sections(self) -> tuple[str, ...]:
        return ("books",)

    def collect(
        self,
        store: Any,
        args: Mapping[str, Any],
        identity: str | None,
        facts: dict[str, dict[str, Any]],
    ) -> None:
        book_id = args.get("book_id")
        if isinstance(book_id, str) and book_id not in facts["books"]:
            book = store.get("book", book_id)
            if book is not None:
                facts["books"][book_id] = book


def seed(conn: Connection, data: dict[str, Any]) -> dict[str, int]:
    conn.execute("DELETE FROM lending_records")
    rows = [("member", m["member_id"], json.dumps(m)) for m in data["members"]]
    rows += [("book", b["book_id"], json.dumps(b)) for b in data["books"]]
    conn.executemany("INSERT INTO lending_records (kind, key, doc) VALUES (?, ?, ?)", rows)
    return {"members": len(data["members"]), "books": len(data["books"])}


def export(conn: Connection) -> dict[str, Any]:
    db = LendingDB(conn)
    rows = conn.execute("SELECT doc FROM lending_records WHERE kind = 'book' ORDER BY key")
    return {"members": db.members(), "books": [json.loads(r[0]) for r in rows]}
