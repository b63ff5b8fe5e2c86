"""Tool catalog: each tool is a LangChain tool plus a spec the guards and engine read."""

from __future__ import annotations

import functools
import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from langchain_core.tools import BaseTool
from pydantic import BaseModel

from tools.structured import CatalogTool, catalog_tool

__all__ = ["CatalogTool", "catalog_tool"]


Risk = Literal["low", "medium", "high"]
Effect = Literal["read", "write"]


class ToolError(ValueError):
    """A business refusal raised by a tool (τ²'s ``ValueError``); never retried.

    Attributes:
        message: The exact message the benchmark's tool would raise.
    """

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass(frozen=True)
class ToolSpec:
    """What the catalog promises about one tool.

    Attributes:
        name: Tool name, equal to the LangChain tool's name.
        version: Semantic version of the tool's contract (arguments, output, effects).
        risk: Risk class used by guards and policies.
        effect: ``read`` tools never change the domain; ``write`` tools do.
        timeout_s: Wall-clock limit for one attempt.
        retries: Extra attempts after a transient failure (the engine owns retries).
        compensator: Name of the compensation strategy, or ``None`` if irreversible.
        cost: Estimated cost units of one call, for budgets.
        output: Pydantic model of the output, or ``str``/``dict`` for plain values.
    """

    name: str
    version: str
    risk: Risk
    effect: Effect
    timeout_s: float = 5.0
    retries: int = 2
    compensator: str | None = None
    cost: float = 1.0
    output: type[Any] = str

    def fingerprint(self) -> dict[str, Any]:
        """Return the JSON-able part of the spec that contributes to the catalog hash."""
        out = self.output
        output_schema: Any
        if isinstance(out, type) and issubclass(out, BaseModel):
            output_schema = out.model_json_schema()
        else:
            output_schema = getattr(out, "__name__", repr(out))
        return {
            "name": self.name,
            "version": self.version,
            "risk": self.risk,
            "effect": self.effect,
            "timeout_s": self.timeout_s,
            "retries": self.retries,
            "compensator": self.compensator,
            "cost": self.cost,
            "output": output_schema,
        }


@dataclass(frozen=True)
class CatalogEntry:
    """A tool with its spec."""

    tool: BaseTool
    spec: ToolSpec


@dataclass(frozen=True)
class Catalog:
    """A versioned, immutable set of tools.

    The version is a hash over every spec and every tool's call schema, so any change to
    what a tool accepts or promises yields a new version; a run pins the version it started
    with.
    """

    name: str
    entries: Mapping[str, CatalogEntry] = field(default_factory=dict)

    @classmethod
    def of(cls, name: str, entries: Iterable[CatalogEntry]) -> Catalog:
        """Build a catalog, refusing duplicate or mismatched names."""
        table: dict[str, CatalogEntry] = {}
        for entry in entries:
            if entry.tool.name != entry.spec.name:
                raise ValueError(f"tool {entry.tool.name!r} has a spec named {entry.spec.name!r}")
            if entry.spec.name in table:
                raise ValueError(f"duplicate tool {entry.spec.name!r} in catalog {name!r}")
            table[entry.spec.name] = entry
        return cls(name=name, entries=table)

    def __contains__(self, tool_name: object) -> bool:
        return tool_name in self.entries

    def get(self, tool_name: str) -> CatalogEntry | None:
        """Return the entry for ``tool_name`` or ``None``."""
        return self.entries.get(tool_name)

    def names(self) -> list[str]:
        """Return the tool names, sorted."""
        return sorted(self.entries)

    def args_schema(self, tool_name: str) -> type[BaseModel]:
        """Return the pydantic model of the arguments a caller may set (injected args excluded)."""
        schema = self.entries[tool_name].tool.tool_call_schema
        if not (isinstance(schema, type) and issubclass(schema, BaseModel)):
            raise TypeError(f"tool {tool_name!r} has no pydantic call schema")
        return schema

    @functools.cached_property
    def version(self) -> str:
        """Content hash of the catalog (first 16 hex digits of a SHA-256)."""
        doc = {
            "name": self.name,
            "tools": [
                {
                    **self.entries[n].spec.fingerprint(),
                    "args": self.args_schema(n).model_json_schema(),
                }
                for n in self.names()
            ],
        }
        blob = json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()
        return hashlib.sha256(blob).hexdigest()[:16]
