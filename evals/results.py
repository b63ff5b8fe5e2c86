"""Experiments as files: one line per example then a summary, their aggregates and comparisons."""

from __future__ import annotations

import json
import math
import statistics
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from evals.errors import EvalError
from evals.evaluators import FIGURES

RESULTS_DIR = Path("evals/results")
"""Where experiments are written (``<experiment>.jsonl``), relative to the working directory."""


@dataclass
class Experiment:
    """One finished evaluation run."""

    name: str
    rows: list[dict[str, Any]]
    summary: dict[str, Any]
    path: Path | None = None
    home: Path | None = None

    @property
    def metrics(self) -> dict[str, dict[str, float]]:
        """Per-metric aggregates (``mean``, ``n``; figures also ``p50``, ``p95``)."""
        return dict(self.summary["metrics"])


def aggregate(rows: Iterable[Mapping[str, Any]]) -> dict[str, dict[str, float]]:
    """Mean and count of every metric (p50/p95/max too for the figures)."""
    values: dict[str, list[float]] = {}
    for row in rows:
        for key, score in row["scores"].items():
            values.setdefault(key, []).append(float(score))
    out: dict[str, dict[str, float]] = {}
    for key, xs in values.items():
        stats = {"mean": round(statistics.fmean(xs), 6), "n": len(xs)}
        if key in FIGURES:
            stats |= {
                "p50": round(percentile(xs, 50), 6),
                "p95": round(percentile(xs, 95), 6),
                "max": round(max(xs), 6),
            }
        out[key] = stats
    return dict(sorted(out.items()))


def percentile(xs: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (nearest rank) of ``xs``."""
    ordered = sorted(xs)
    if not ordered:
        return 0.0
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


def write_results(
    path: Path, rows: Sequence[Mapping[str, Any]], summary: Mapping[str, Any]
) -> None:
    """Write an experiment: one line per example, then the summary line."""
    with path.open("w") as f:
        for row in rows:
            f.write(json.dumps(row, sort_keys=True, default=str) + "\n")
        f.write(json.dumps(summary, sort_keys=True, default=str) + "\n")


def read_results(path_or_name: str | Path, results_dir: Path = RESULTS_DIR) -> Experiment:
    """Read an experiment by file path or by name in ``results_dir``.

    Raises:
        EvalError: no such experiment, or not a results file.
    """
    path = Path(path_or_name)
    if not path.is_file():
        path = results_dir / f"{path_or_name}.jsonl"
    if not path.is_file():
        raise EvalError(f"no experiment {str(path_or_name)!r} (looked for {path})")
    rows: list[dict[str, Any]] = []
    summary: dict[str, Any] | None = None
    for n, line in enumerate(path.read_text().splitlines(), 1):
        try:
            item = json.loads(line)
        except json.JSONDecodeError:
            raise EvalError(f"{path}:{n}: not JSON") from None
        if item.get("type") == "summary":
            summary = item
        elif item.get("type") == "example":
            rows.append(item)
    if summary is None:
        raise EvalError(f"{path}: no summary line (not an experiment file)")
    return Experiment(str(summary["experiment"]), rows, summary, path)


@dataclass
class Comparison:
    """Two experiments side by side."""

    base: Experiment
    head: Experiment
    deltas: dict[str, tuple[float | None, float | None]] = field(default_factory=dict)
    regressed: list[dict[str, Any]] = field(default_factory=list)
    fixed: list[dict[str, Any]] = field(default_factory=list)


def compare(base: Experiment, head: Experiment) -> Comparison:
    """Per-metric means of both, and every example whose pass/fail score got worse (or better)."""
    cmp = Comparison(base, head)
    for key in sorted(set(base.metrics) | set(head.metrics)):
        a = base.metrics.get(key, {}).get("mean")
        b = head.metrics.get(key, {}).get("mean")
        cmp.deltas[key] = (a, b)
    before = {(r["dataset"], r["example_id"]): r for r in base.rows}
    for row in head.rows:
        old = before.get((row["dataset"], row["example_id"]))
        if old is None:
            continue
        for key, score in row["scores"].items():
            if key in FIGURES or key not in old["scores"]:
                continue
            was = old["scores"][key]
            item = {
                "example_id": row["example_id"],
                "dataset": row["dataset"],
                "metric": key,
                "base": was,
                "head": score,
                "comment": row.get("comments", {}).get(key) or old.get("comments", {}).get(key),
            }
            if score < was:
                cmp.regressed.append(item)
            elif score > was:
                cmp.fixed.append(item)
    return cmp
