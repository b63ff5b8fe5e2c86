"""What a domain plug-in brings, and the small protocols the rest of planbound uses it through.

A domain (the shipped one is τ²-bench retail, :mod:`tools.retail`) is one folder holding its
tools and catalog, its tables and migrations, its facts provider, its Rego package and its
plan templates. ``graph/``, ``guards/`` and ``checkpoints/`` know a domain only through
:class:`DomainPlugin` and the protocols below, so adding a domain needs no change outside
its own folder.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from importlib.resources.abc import Traversable
from typing import Any, Literal, Protocol

from tools.catalog import Catalog

Dialect = Literal["sqlite", "postgres"]


class Connection(Protocol):
    """A database connection whose transactions the engine owns (``?`` placeholders)."""

    @property
    def dialect(self) -> Dialect:
        """``sqlite`` or ``postgres``."""
        ...

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Any:
        """Run one statement; return a cursor."""
        ...

    def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        """Run one statement for many parameter rows."""
        ...


Migration = tuple[int, str, "str | Mapping[Dialect, str]"]
"""One versioned schema change: ``(version, name, ddl)``. Versions count up within a
component (a domain's name); ``ddl`` holds statements separated by ``;``, with ``{float}``
standing for the dialect's float type, or maps each dialect to its own statements (where
SQLite and PostgreSQL spell a change differently)."""


@dataclass(frozen=True)
class Change:
    """One record's before- and after-image, as JSON text (what the ledger keeps per write).

    Attributes:
        table: The domain's table name (without the domain prefix).
        key: The record's id.
        before: The record before the write.
        after: The record after the write.
    """

    table: str
    key: str
    before: str
    after: str

    def to_json(self) -> dict[str, str]:
        """Return the change as a JSON-able mapping."""
        return {"table": self.table, "key": self.key, "before": self.before, "after": self.after}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Change:
        """Rebuild a change from :meth:`to_json` output."""
        return cls(
            table=str(data["table"]),
            key=str(data["key"]),
            before=str(data["before"]),
            after=str(data["after"]),
        )


class DomainStore(Protocol):
    """A domain's records on one connection: what tools get injected as ``db``.

    Every write records a :class:`Change`; the engine takes them after each call, keeps them
    in the ledger and restores them to compensate.
    """

    def take_changes(self) -> list[Change]:
        """Return the changes recorded since the last call and forget them."""
        ...

    def restore(self, change: Change) -> bool:
        """Put back ``change.before`` if the record still equals ``change.after``."""
        ...

    def is_seeded(self) -> bool:
        """Whether the domain's tables exist and hold data."""
        ...


class FactsProvider(Protocol):
    """Collects, read-only, the records a step's arguments name, for the policy to decide on."""

    identity_tools: frozenset[str]
    """Read tools whose output (a user id) establishes who the run serves."""

    def sections(self) -> tuple[str, ...]:
        """Names of the fact sections this provider fills (``users``, ``orders`` ...)."""
        ...

    def collect(
        self,
        store: Any,
        args: Mapping[str, Any],
        identity: str | None,
        facts: dict[str, dict[str, Any]],
    ) -> None:
        """Add to ``facts`` (one dict per section) what the arguments of one step name."""
        ...


# Slot extraction for plan templates ---------------------------------------------------------


@dataclass(frozen=True)
class SlotProblem:
    """A slot was given but cannot be used: malformed or ambiguous."""

    detail: str


@dataclass(frozen=True)
class RequestText:
    """A request: ``raw`` as written, ``masked`` with spans extractors must not read blanked."""

    raw: str
    masked: str


Extracted = str | list[str] | dict[str, Any] | list[dict[str, Any]] | SlotProblem | None
"""A value (a list of records for a list slot), a :class:`SlotProblem`, or ``None`` when the
request does not mention the slot."""


@dataclass(frozen=True)
class SlotExtractor:
    """A strict slot extractor.

    Attributes:
        read: Reads the slot from the request.
        absent: Said when a required slot is not in the request.
        fields: Fields of a structured value (``{slot.field}``); empty for plain values.
        forms: For an identity: each form and its fields; placeholders may not name them.
    """

    read: Callable[[RequestText], Extracted]
    absent: str
    fields: tuple[str, ...] = ()
    forms: Mapping[str, tuple[str, ...]] | None = None


Evidence = Callable[[Any, Mapping[str, Any]], frozenset[str] | None]
"""Reads, read-only, the states of the records a planned reading would act on.

Called with the domain's store and the slot values of one reading of a request (an order
id, or who the customer is and the products named); returns the states of those records
(the statuses of the orders), or ``None`` when the values name no record. The template
planner uses it only to choose between readings of the same words (an exchange of a
delivered order, a change of a pending one): never to add a step, never to fill a value.
"""


# The plug-in ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class DomainPlugin:
    """Everything planbound needs from one domain.

    Attributes:
        name: Short name; also the prefix of the domain's migrations component.
        build_catalog: Builds the domain's versioned tool catalog.
        open_store: Wraps a connection as the domain's :class:`DomainStore`.
        migrations: The domain's tables, as versioned migrations.
        facts: The domain's facts provider.
        policy_package: The Rego package that holds ``decision`` and ``approval_denied``.
        policy_dir: The folder of the domain's ``.rego`` files (and ``*_test.rego``).
        templates: The domain's plan-template YAML, if it has one.
        extractors: The slot extractors its templates may name.
        mask: Blanks the parts of a request that intent matching must not read.
        seed: Replaces the domain's records with a data document; returns counts per table.
        export: Returns the domain's records as a data document.
        shipped_data: Returns the data shipped with the domain (``planbound seed``).
        data_hash: A digest of a data document (``seed``/``export`` print it).
        data_hash_name: What that digest is called in reports.
        risk_tiers: The domain's risk taxonomy YAML (which tier a request and a tool are
            in, and whether the LLM planner may plan it), if it has one.
        evidence: Reads the states of the records a reading of a request names
            (:data:`Evidence`), if the domain offers it.
    """

    name: str
    build_catalog: Callable[[], Catalog]
    open_store: Callable[[Any], DomainStore]
    migrations: tuple[Migration, ...]
    facts: FactsProvider
    policy_package: str
    policy_dir: Traversable
    templates: Traversable | None = None
    extractors: Mapping[str, SlotExtractor] = field(default_factory=dict)
    mask: Callable[[str], str] = lambda text: text
    seed: Callable[[Any, Any], dict[str, int]] | None = None
    export: Callable[[Any], dict[str, Any]] | None = None
    shipped_data: Callable[[], dict[str, Any]] | None = None
    data_hash: Callable[[dict[str, Any]], str] | None = None
    data_hash_name: str = "data_hash"
    risk_tiers: Traversable | None = None
    evidence: Evidence | None = None
