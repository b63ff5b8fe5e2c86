"""Planners: turn a request into a :class:`~guards.plan.Plan` as data, never run a tool."""

from graph.planners.base import Planner, PlannerError

__all__ = ["Planner", "PlannerError"]
