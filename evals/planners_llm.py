"""The ``llm`` planner for evaluation runs: recorded replies offline, the endpoint live.

An example with recorded model replies is planned by the real LLM planner over a
``ChatOpenAI`` that replays them (:func:`evals.replay.recorded_model`); an example without
them is planned by the configured endpoint (``OPENAI_BASE_URL``, ``PLANBOUND_MODEL``).
"""

from __future__ import annotations

from evals.datasets import Example
from evals.errors import EvalError
from evals.replay import recorded_model
from evals.runner import register_planner
from graph.planners.base import Planner
from graph.services import Services


def llm_planner(services: Services, example: Example) -> Planner:
    """Return the LLM planner that plans ``example``."""
    if example.llm is not None:
        planner = Services(
            services.settings, stores=services.stores, chat_model=recorded_model(example)
        ).llm
    else:
        planner = services.llm
    if planner is None:
        raise EvalError(
            f"{example.id}: no model is configured for the LLM planner "
            "(set PLANBOUND_MODEL and OPENAI_BASE_URL)"
        )
    return planner


register_planner("llm", llm_planner)
