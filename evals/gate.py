"""The evaluation gate: thresholds from a versioned file, checked against an experiment."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from evals.errors import EvalError
from evals.results import Experiment, aggregate

GATE_FILE = Path(__file__).resolve().parent / "gate.yaml"
"""The shipped thresholds."""


class Threshold(BaseModel):
    """Bounds for one metric."""

    model_config = ConfigDict(extra="forbid")

    min: float | None = Field(default=None, ge=0)
    mean_max: float | None = Field(default=None, ge=0)
    p95_max: float | None = Field(default=None, ge=0)


class Gate(BaseModel):
    """The gate file."""

    model_config = ConfigDict(extra="forbid")

    version: int
    metrics: dict[str, Threshold]
    datasets: dict[str, dict[str, Threshold]] = Field(default_factory=dict)


@dataclass(frozen=True)
class Breach:
    """One metric outside its bound."""

    scope: str
    metric: str
    bound: str
    value: float | None

    def __str__(self) -> str:
        got = "missing" if self.value is None else f"{self.value:.4g}"
        return f"{self.scope}: {self.metric} {got}, needs {self.bound}"


def load_gate(path: Path = GATE_FILE) -> Gate:
    """Read a gate file.

    Raises:
        EvalError: missing file or malformed thresholds (naming the field).
    """
    try:
        raw = yaml.safe_load(path.read_text())
    except OSError as exc:
        raise EvalError(f"cannot read the gate file {path}: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise EvalError(f"{path}: not YAML ({exc})") from None
    try:
        return Gate.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise EvalError(f"{path}: {where}: {first['msg']}") from None


def _check(
    scope: str, metrics: Mapping[str, Mapping[str, float]], bounds: Mapping[str, Threshold]
) -> list[Breach]:
    out: list[Breach] = []
    for metric, t in bounds.items():
        stats = metrics.get(metric)
        if t.min is not None:
            value = stats.get("mean") if stats else None
            if value is None or value < t.min:
                out.append(Breach(scope, metric, f">= {t.min:g}", value))
        if t.mean_max is not None:
            value = stats.get("mean") if stats else None
            if value is not None and value > t.mean_max:
                out.append(Breach(scope, metric, f"mean <= {t.mean_max:g}", value))
        if t.p95_max is not None:
            value = stats.get("p95") if stats else None
            if value is not None and value > t.p95_max:
                out.append(Breach(scope, metric, f"p95 <= {t.p95_max:g}", value))
    return out


def check(experiment: Experiment, gate: Gate) -> list[Breach]:
    """Every bound the experiment breaks (overall, then per dataset); empty when it passes.

    A pass-rate metric the experiment has no score for counts as a breach only when a dataset
    it applies to ran; figures without values are not checked.
    """
    overall = experiment.metrics
    present = {k: v for k, v in gate.metrics.items() if k in overall or v.min is None}
    breaches = _check("all", overall, present)
    for name, bounds in gate.datasets.items():
        rows = [r for r in experiment.rows if r["dataset"] == name]
        if not rows:
            continue
        metrics: dict[str, Any] = aggregate(rows)
        breaches += _check(name, metrics, {k: v for k, v in bounds.items() if k in metrics})
    return breaches
