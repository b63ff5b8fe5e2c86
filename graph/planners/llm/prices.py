"""The price table: what a model's tokens cost, for the per-run cost budget.

The table is a YAML document (the shipped one is ``prices.yaml`` beside this module, which
documents the format); ``PLANBOUND_PRICE_TABLE`` names another. A malformed table is
refused when it is loaded, naming the file and the field.
"""

from __future__ import annotations

import math
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from graph.errors import ConfigError
from graph.state import Usage
from guards.plan import content_hash

SHIPPED = resources.files(__name__.rsplit(".", 1)[0]).joinpath("prices.yaml")
"""The price table shipped with planbound."""


class Price(BaseModel):
    """What one model's tokens cost, per ``per_tokens`` tokens."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    input: float = Field(ge=0, description="Price of prompt tokens.")
    output: float = Field(ge=0, description="Price of completion tokens.")

    @field_validator("input", "output")
    @classmethod
    def _finite(cls, value: float) -> float:
        if not math.isfinite(value):
            raise ValueError("must be a finite number")
        return value


class PriceTable(BaseModel):
    """A price table: a default and per-model prices."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    version: str = Field(min_length=1)
    currency: str = Field(min_length=1)
    per_tokens: int = Field(gt=0)
    default: Price
    models: dict[str, Price] = Field(default_factory=dict)
    digest: str = Field(default="", description="Content hash of the document (computed).")

    def price_of(self, model: str) -> Price:
        """The price of ``model``: its entry, its longest ``name-`` prefix, else the default."""
        if model in self.models:
            return self.models[model]
        prefixes = [name for name in self.models if model.startswith(name + "-")]
        return self.models[max(prefixes, key=len)] if prefixes else self.default

    def usage(self, model: str, input_tokens: int, output_tokens: int) -> Usage:
        """Price one call's tokens as a :class:`~graph.state.Usage`."""
        price = self.price_of(model)
        cost = (input_tokens * price.input + output_tokens * price.output) / self.per_tokens
        return Usage(
            calls=1,
            input_tokens=input_tokens,
            output_tokens=output_tokens,
            total_tokens=input_tokens + output_tokens,
            cost=round(cost, 10),
        )

    @property
    def version_label(self) -> str:
        """``version+digest``, recorded with a run's usage."""
        return f"{self.version}+{self.digest}"


def load_prices(source: Path | Traversable | None = None) -> PriceTable:
    """Load a price table (the shipped one when ``source`` is ``None``).

    Raises:
        ConfigError: the file cannot be read or is not a price table (naming the field).
    """
    where = source if source is not None else SHIPPED
    try:
        raw = yaml.safe_load(where.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"price table {where}: cannot read it ({exc})") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"price table {where}: not valid YAML ({exc})") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"price table {where}: must be a mapping with default and models")
    try:
        table = PriceTable.model_validate(raw)
    except ValidationError as exc:
        problems = [
            f"{'.'.join(str(p) for p in e['loc']) or 'document'}: {e['msg']}" for e in exc.errors()
        ]
        raise ConfigError(f"price table {where}: {'; '.join(problems)}") from None
    return table.model_copy(update={"digest": content_hash(raw, 12)})
