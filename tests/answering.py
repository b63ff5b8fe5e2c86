"""Answers to a pending review that name it, as every caller must (see ``guards.review``)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def review_of(source: Mapping[str, Any]) -> dict[str, Any]:
    """The ``decision_id`` and ``plan_id`` of the review a run outcome or interrupt value shows."""
    plan_id = source["plan_id"] if "plan_id" in source else source["plan"]["id"]
    return {"decision_id": source["decision_id"], "plan_id": plan_id}


def answer_for(
    source: Mapping[str, Any], *decisions: Mapping[str, Any], **fields: Any
) -> dict[str, Any]:
    """An answer with ``decisions`` (and ``reviewer``, ``role`` ...) to the review shown."""
    return {"decisions": [dict(d) for d in decisions], **review_of(source), **fields}


def naming(source: Mapping[str, Any], answer: Mapping[str, Any]) -> dict[str, Any]:
    """``answer`` naming the review shown."""
    return {**answer, **review_of(source)}
