"""The operations report: latency, human wait, outcome rates, tools, cost and drift.

:func:`build` reads a home (:mod:`graph.report.collect`) and the evaluation results files
(JSONL written by ``planbound eval``; read as data, the product never imports the evaluations)
into one JSON document; :mod:`graph.report.html` draws it as one self-contained HTML file.

Rates: ``approve``, ``edit``, ``reject`` and ``respond`` are shares of reviewer decisions;
``deny`` (the guards' verdict was deny), ``refuse`` (the run ended refused, at verify or at
execution), ``cannot_plan`` and the status mix are shares of decisions.
"""

from __future__ import annotations

import json
import math
import re
import statistics
import time
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from checkpoints.factory import Stores
from graph.report import drift as drifts
from graph.report.collect import Decision, decisions, tool_stats

DIMENSIONS = ("planner", "template", "catalog", "policy", "prompt")
"""What ``--by`` and version drift can group by."""

_DURATION = re.compile(r"^(\d+(?:\.\d+)?)([smhdw])$")
_UNIT = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_since(text: str | None) -> float | None:
    """Seconds in a window like ``7d``, ``12h``, ``30m``; ``None`` or ``all`` for everything.

    Raises:
        ValueError: not a duration.
    """
    if text is None or text == "all":
        return None
    m = _DURATION.match(text.strip())
    if m is None:
        raise ValueError(f"--since {text!r}: give a duration like 7d, 12h, 30m or 'all'")
    return float(m.group(1)) * _UNIT[m.group(2)]


def percentiles(xs: Sequence[float]) -> dict[str, float]:
    """p50, p95, p99 (nearest rank), mean and count."""
    ordered = sorted(xs)
    if not ordered:
        return {"n": 0}

    def at(q: float) -> float:
        return ordered[max(0, min(len(ordered), math.ceil(q / 100 * len(ordered))) - 1)]

    return {
        "n": len(ordered),
        "mean": round(statistics.fmean(ordered), 6),
        "p50": round(at(50), 6),
        "p95": round(at(95), 6),
        "p99": round(at(99), 6),
    }


def rates(records: Sequence[Decision]) -> dict[str, Any]:
    """Review decision shares, deny/refuse/cannot-plan shares and the status mix."""
    n = len(records) or 1
    reviews = Counter(t for d in records for t in d.reviews)
    nr = sum(reviews.values()) or 1
    return {
        "decisions": len(records),
        "review_decisions": sum(reviews.values()),
        **{t: round(reviews[t] / nr, 4) for t in ("approve", "edit", "reject", "respond")},
        "deny": round(sum(1 for d in records if d.verdict == "deny") / n, 4),
        "refuse": round(sum(1 for d in records if d.status == "refused") / n, 4),
        "cannot_plan": round(sum(1 for d in records if d.status == "cannot_plan") / n, 4),
        "statuses": {
            s: round(c / n, 4) for s, c in Counter(d.status for d in records).most_common()
        },
        "routes": {s: round(c / n, 4) for s, c in Counter(d.route for d in records).most_common()},
    }


def latency(records: Sequence[Decision]) -> dict[str, Any]:
    """End-to-end (without human wait), per node, and human wait."""
    nodes: dict[str, list[float]] = {}
    for d in records:
        for node, xs in d.node_seconds.items():
            nodes.setdefault(node, []).extend(xs)
    waited = [d.human_wait_s for d in records if d.reviews]
    return {
        "end_to_end": percentiles([d.seconds for d in records if d.status != "awaiting_approval"]),
        "nodes": {k: percentiles(v) for k, v in sorted(nodes.items())},
        "human_wait": {**percentiles(waited), "total": round(sum(waited), 6)},
        "samples": [round(d.seconds, 6) for d in records if d.status != "awaiting_approval"],
    }


def usage(records: Sequence[Decision]) -> dict[str, Any]:
    """Tokens and cost, total and per decision."""
    n = len(records) or 1
    tokens = sum(d.tokens for d in records)
    costs = [d.cost for d in records if d.cost is not None]
    return {
        "tokens_total": tokens,
        "tokens_per_decision": round(tokens / n, 3),
        "cost_total": round(sum(costs), 6) if costs else None,
        "cost_per_decision": round(sum(costs) / n, 8) if costs else None,
    }


def groups(records: Sequence[Decision], by: str) -> list[dict[str, Any]]:
    """One row per value of ``by``: decisions, rates and latency."""
    buckets: dict[str, list[Decision]] = {}
    for d in records:
        buckets.setdefault(d.group(by), []).append(d)
    rows = []
    for value, rs in sorted(buckets.items(), key=lambda kv: -len(kv[1])):
        r = rates(rs)
        rows.append(
            {
                "group": value,
                "decisions": len(rs),
                "approve": r["approve"],
                "deny": r["deny"],
                "cannot_plan": r["cannot_plan"],
                "p95_s": percentiles([d.seconds for d in rs]).get("p95"),
                "tokens_per_decision": usage(rs)["tokens_per_decision"],
            }
        )
    return rows


def drift_sets(
    records: Sequence[Decision],
    baseline_records: Sequence[Decision],
    between: str,
) -> tuple[str, str, list[Decision], list[Decision]]:
    """The two sides of the drift comparison and their labels.

    ``window``: the decisions of the window before the report's (``baseline_records``) against
    the window's; a dimension: the decisions under its two newest values (by when each was
    first seen), older against newer; decisions it does not apply to are left out.
    """
    if between == "window":
        return "previous window", "this window", list(baseline_records), list(records)
    first: dict[str, float] = {}
    for d in records:
        value = d.version(between)
        if value is not None:
            first[value] = min(first.get(value, d.started), d.started)
    if len(first) < 2:
        only = next(iter(first), "none")
        return f"{between} {only}", f"{between} {only}", [], list(records)
    older, newer = sorted(first, key=lambda v: first[v])[-2:]
    return (
        f"{between} {older}",
        f"{between} {newer}",
        [d for d in records if d.version(between) == older],
        [d for d in records if d.version(between) == newer],
    )


def eval_results(directory: Path, limit: int = 5) -> list[dict[str, Any]]:
    """The summaries of the latest evaluation experiments in ``directory`` (newest last)."""
    if not directory.is_dir():
        return []
    found = []
    for path in directory.glob("*.jsonl"):
        try:
            last = path.read_text().splitlines()[-1]
            summary = json.loads(last)
        except (OSError, IndexError, json.JSONDecodeError):
            continue
        if isinstance(summary, dict) and summary.get("type") == "summary":
            found.append(summary)
    found.sort(key=lambda s: str(s.get("created_at")))
    return found[-limit:]


def build(
    stores: Stores,
    *,
    since: str | None = "7d",
    by: str = "planner",
    between: str = "window",
    results_dir: Path | None = None,
    now: float | None = None,
) -> dict[str, Any]:
    """The report document.

    Raises:
        ValueError: a bad ``since``, ``by`` or ``between``.
    """
    if by not in DIMENSIONS:
        raise ValueError(f"--by {by!r}: one of {', '.join(DIMENSIONS)}")
    if between != "window" and between not in DIMENSIONS:
        raise ValueError(f"--drift {between!r}: 'window' or one of {', '.join(DIMENSIONS)}")
    now = time.time() if now is None else now
    span = parse_since(since)
    everything = decisions(stores)
    if span is None:
        window = everything
        earlier: list[Decision] = []
        start = everything[0].started if everything else now
    else:
        start = now - span
        window = [d for d in everything if d.started >= start]
        earlier = [d for d in everything if start - span <= d.started < start]
    base_label, cur_label, base, cur = drift_sets(window, earlier, between)
    signals = drifts.compare(base, cur) if base and cur else []
    return {
        "window": {
            "since": since or "all",
            "from": start,
            "to": now,
            "decisions": len(window),
        },
        "latency": latency(window),
        "rates": rates(window),
        "tools": tool_stats(window),
        "compensations": sum(d.compensated for d in window),
        "usage": usage(window),
        "groups": {"by": by, "rows": groups(window, by)},
        "drift": {
            "between": between,
            "baseline": {"label": base_label, "decisions": len(base)},
            "current": {"label": cur_label, "decisions": len(cur)},
            "thresholds": {"psi": drifts.PSI_FLAG, "p_value": drifts.P_FLAG, "min_n": drifts.MIN_N},
            "signals": [s.as_json() for s in signals],
            "flagged": [s.name for s in signals if s.flagged],
        },
        "evals": eval_results(results_dir) if results_dir is not None else [],
    }


def intents(records: Iterable[Decision]) -> Counter[str]:
    """How many decisions of each intent."""
    return Counter(d.intent for d in records)
