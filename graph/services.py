"""Long-lived objects a run needs (catalog, planner, stores), built on first use."""

from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import Any

from checkpoints.factory import Stores, shared_stores
from graph.context import Context
from graph.planners.base import Planner
from graph.planners.explicit import ExplicitPlanner
from graph.planners.templates import TemplatePlanner
from guards.errors import PolicyError
from guards.policy import Policy, PolicyConfig, load_policy
from tools.catalog import Catalog
from tools.retail import build_catalog


@functools.cache
def catalog() -> Catalog:
    """Return the retail catalog (built once per process)."""
    return build_catalog()


def _policy_config() -> PolicyConfig:
    """Read the operator's policy settings from the environment, with their defaults."""
    try:
        threshold = float(os.environ.get("PLANBOUND_APPROVAL_THRESHOLD") or 1000)
        max_writes = int(os.environ.get("PLANBOUND_MAX_WRITE_STEPS") or 3)
    except ValueError as exc:
        raise PolicyError(f"bad policy setting in the environment: {exc}") from None
    return PolicyConfig(amount_threshold=threshold, max_write_steps=max_writes)


@functools.cache
def policy() -> Policy:
    """Return the policy (``PLANBOUND_POLICY_DIR`` / ``OPA_URL`` / shipped; loaded once)."""
    return load_policy(
        package="planbound.retail",
        opa_url=os.environ.get("OPA_URL") or None,
        path=os.environ.get("PLANBOUND_POLICY_DIR") or None,
        config=_policy_config(),
    )


@functools.cache
def _templates(path: str | None) -> TemplatePlanner:
    return TemplatePlanner.load(Path(path) if path else None)


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
