"""The LLM planner: prompts, the plan schema the model fills, prices, and the planner."""

from graph.planners.llm.planner import Attempt, LLMPlanner, plan_schema
from graph.planners.llm.prices import PriceTable, load_prices
from graph.planners.llm.prompts import PROMPT_VERSION, render_system

__all__ = [
    "PROMPT_VERSION",
    "Attempt",
    "LLMPlanner",
    "PriceTable",
    "load_prices",
    "plan_schema",
    "render_system",
]
