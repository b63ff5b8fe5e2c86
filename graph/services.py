"""Long-lived objects a run needs (catalog, planner, stores), built on first use."""

from __future__ import annotations

import functools
from importlib import resources
from pathlib import Path
from typing import Any

from checkpoints.factory import Stores, shared_stores
from graph.context import Context
from graph.planners.base import Planner
from graph.planners.explicit import ExplicitPlanner
from graph.planners.templates import TemplatePlanner
from guards.policy import Policy, load_policy
from tools.catalog import Catalog
from tools.retail import build_catalog, extractors


@functools.cache
def catalog() -> Catalog:
    """Return the retail catalog (built once per process)."""
    return build_catalog()


@functools.cache
def policy() -> Policy:
    """Return the policy (``PLANBOUND_POLICY_DIR`` / ``OPA_URL`` / shipped; loaded once)."""
    return load_policy()


@functools.cache
def _templates(path: str | None) -> TemplatePlanner:
    source = Path(path) if path else resources.files("tools.retail").joinpath("templates.yaml")
    return TemplatePlanner.load(source, extractors=extractors.EXTRACTORS, mask=extractors.mask)


def planner_for(ctx: Context, explicit_plan: Any = None) -> Planner:
    """Return the planner for a run: explicit when a plan document is given, else templates."""
    if explicit_plan is not None:
        return ExplicitPlanner(explicit_plan)
    return _templates(ctx.templates)


def stores(ctx: Context) -> Stores:
    """Return the stores the run should use."""
    if ctx.stores is not None:
        if not isinstance(ctx.stores, Stores):
            raise TypeError("Context.stores must be a checkpoints.factory.Stores")
        return ctx.stores
    return shared_stores(ctx.home)
