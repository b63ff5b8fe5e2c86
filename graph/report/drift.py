"""Drift between two sets of decisions (two windows, or two versions of one dimension).

Each signal is compared with a standard statistic and flagged past a documented threshold:

- **PSI** (population stability index), ``Σ (b − a) · ln(b / a)`` over the categories' shares
  (empty categories get a share of 0.5 / n): below 0.1 stable, 0.1–0.2 a moderate shift,
  **above 0.2 flagged** (:data:`PSI_FLAG`) when both sides have at least :data:`MIN_N`
  decisions (fewer make PSI noise). Used for the intent mix, the route mix, the plan
  length (1, 2, 3, 4, 5+ steps) and the end-to-end latency (binned at the baseline's deciles).
- **Chi-square** test of homogeneity on the counts (a 2×k table), **flagged at p < 0.01**
  (:data:`P_FLAG`) when both sides have at least :data:`MIN_N` decisions. Used for the mixes
  too, and alone for rates: the denial rate of each rule and the approval rate
  (approve or edit among reviewer decisions).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from graph.report.collect import Decision

PSI_FLAG = 0.2
"""PSI above which a distribution counts as shifted."""
P_FLAG = 0.01
"""Chi-square p-value below which a difference counts as real."""
MIN_N = 20
"""Fewest decisions (or reviewer decisions, for the approval rate) on each side for a flag."""


@dataclass(frozen=True)
class Signal:
    """One drift signal."""

    name: str
    statistic: str
    value: float
    p_value: float | None
    flagged: bool
    baseline: dict[str, float]
    current: dict[str, float]

    def as_json(self) -> dict[str, Any]:
        """The signal as JSON."""
        return asdict(self)


def psi(a: Counter[str], b: Counter[str]) -> float:
    """Population stability index of ``b`` against ``a``."""
    keys = set(a) | set(b)
    na, nb = sum(a.values()), sum(b.values())
    if not na or not nb:
        return 0.0
    total = 0.0
    for k in keys:
        pa = (a[k] or 0.5) / na
        pb = (b[k] or 0.5) / nb
        total += (pb - pa) * math.log(pb / pa)
    return total


def chi_square(a: Counter[str], b: Counter[str]) -> tuple[float, float]:
    """Chi-square statistic and p-value of the 2×k table (categories with counts only)."""
    keys = [k for k in set(a) | set(b) if a[k] + b[k] > 0]
    na, nb = sum(a.values()), sum(b.values())
    n = na + nb
    if len(keys) < 2 or not na or not nb:
        return 0.0, 1.0
    stat = 0.0
    for k in keys:
        col = a[k] + b[k]
        for side, count in ((na, a[k]), (nb, b[k])):
            expected = side * col / n
            stat += (count - expected) ** 2 / expected
    return stat, chi2_sf(stat, len(keys) - 1)


def chi2_sf(x: float, k: int) -> float:
    """P(X ≥ x) for a chi-square variable with ``k`` degrees of freedom."""
    if x <= 0:
        return 1.0
    return 1.0 - _lower_gamma_regularized(k / 2.0, x / 2.0)


def _lower_gamma_regularized(s: float, x: float) -> float:
    """P(s, x), by its series below s + 1 and its continued fraction above (Numerical Recipes)."""
    if x < s + 1:
        term = total = 1.0 / s
        a = s
        for _ in range(500):
            a += 1
            term *= x / a
            total += term
            if abs(term) < abs(total) * 1e-15:
                break
        return total * math.exp(-x + s * math.log(x) - math.lgamma(s))
    b = x + 1 - s
    c = 1e300
    d = 1 / b
    h = d
    for i in range(1, 500):
        an = -i * (i - s)
        b += 2
        d = an * d + b
        d = 1e-300 if abs(d) < 1e-300 else d
        c = b + an / c
        c = 1e-300 if abs(c) < 1e-300 else c
        d = 1 / d
        delta = d * c
        h *= delta
        if abs(delta - 1) < 1e-15:
            break
    return 1.0 - math.exp(-x + s * math.log(x) - math.lgamma(s)) * h


def _shares(c: Counter[str]) -> dict[str, float]:
    n = sum(c.values())
    return {k: round(v / n, 4) for k, v in sorted(c.items())} if n else {}


def _mix(name: str, a: Counter[str], b: Counter[str]) -> Signal:
    value = psi(a, b)
    stat, p = chi_square(a, b)
    enough = sum(a.values()) >= MIN_N and sum(b.values()) >= MIN_N
    flagged = enough and (value > PSI_FLAG or p < P_FLAG)
    return Signal(name, "psi", round(value, 4), round(p, 6), flagged, _shares(a), _shares(b))


def _rate(name: str, a: tuple[int, int], b: tuple[int, int]) -> Signal:
    """A rate (hits, total) on both sides, with the chi-square test of its 2×2 table."""
    ca = Counter({"yes": a[0], "no": a[1] - a[0]})
    cb = Counter({"yes": b[0], "no": b[1] - b[0]})
    stat, p = chi_square(ca, cb)
    enough = a[1] >= MIN_N and b[1] >= MIN_N
    ra = a[0] / a[1] if a[1] else 0.0
    rb = b[0] / b[1] if b[1] else 0.0
    return Signal(
        name,
        "chi2",
        round(stat, 4),
        round(p, 6),
        enough and p < P_FLAG,
        {"rate": round(ra, 4), "n": a[1]},
        {"rate": round(rb, 4), "n": b[1]},
    )


def _binned(values: Sequence[float], edges: Sequence[float]) -> Counter[str]:
    out: Counter[str] = Counter()
    for v in values:
        i = sum(1 for e in edges if v > e)
        out[f"bin{i:02d}"] += 1
    return out


def _deciles(values: Sequence[float]) -> list[float]:
    ordered = sorted(values)
    if not ordered:
        return []
    return sorted(
        {ordered[min(len(ordered) - 1, int(len(ordered) * q / 10))] for q in range(1, 10)}
    )


def compare(baseline: Sequence[Decision], current: Sequence[Decision]) -> list[Signal]:
    """Every drift signal of ``current`` against ``baseline``."""

    def counts(records: Iterable[Decision], key: Callable[[Decision], str]) -> Counter[str]:
        return Counter(key(d) for d in records)

    signals = [
        _mix(
            "intent mix", counts(baseline, lambda d: d.intent), counts(current, lambda d: d.intent)
        ),
        _mix("route mix", counts(baseline, lambda d: d.route), counts(current, lambda d: d.route)),
        _mix(
            "plan length",
            counts(baseline, lambda d: str(min(d.plan_length, 5))),
            counts(current, lambda d: str(min(d.plan_length, 5))),
        ),
    ]
    edges = _deciles([d.seconds for d in baseline])
    signals.append(
        _mix(
            "latency",
            _binned([d.seconds for d in baseline], edges),
            _binned([d.seconds for d in current], edges),
        )
    )
    rules = sorted({r for d in [*baseline, *current] for r in d.deny_rules})
    for rule in rules:
        signals.append(
            _rate(
                f"denial rate: {rule}",
                (sum(1 for d in baseline if rule in d.deny_rules), len(baseline)),
                (sum(1 for d in current if rule in d.deny_rules), len(current)),
            )
        )
    reviews_a = [t for d in baseline for t in d.reviews]
    reviews_b = [t for d in current for t in d.reviews]
    signals.append(
        _rate(
            "approval rate",
            (sum(1 for t in reviews_a if t in ("approve", "edit")), len(reviews_a)),
            (sum(1 for t in reviews_b if t in ("approve", "edit")), len(reviews_b)),
        )
    )
    return signals
