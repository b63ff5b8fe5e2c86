"""Requests for the LLM planner, with the model's replies recorded."""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from typing import Any

from evals.generate.common import APPROVE, SEED, Data, call, example


def llm(data: Data) -> Iterator[dict[str, Any]]:
    """Requests for the LLM planner, with the model's replies recorded (one plan document each)."""
    db = data.db
    rng = random.Random(SEED + 5)
    for n, uid in enumerate(
        rng.sample(sorted(u for u in db["users"] if db["users"][u]["orders"]), 10)
    ):
        user = db["users"][uid]
        oid = user["orders"][0]
        calls = [
            call("find_user_id_by_email", email=user["email"]),
            call("get_order_details", order_id=oid),
        ]
        # The reply in the LLM planner's schema: a decision, and each argument as JSON text.
        reply = {
            "decision": "plan",
            "reason": "",
            "steps": [
                {
                    "id": f"s{i}",
                    "tool": c["tool"],
                    "args": [{"name": k, "value": json.dumps(v)} for k, v in c["args"].items()],
                    "depends_on": [f"s{i - 1}"] if i > 1 else [],
                    "description": f"step {i} of looking up order {oid}",
                }
                for i, c in enumerate(calls, 1)
            ],
        }
        line = example(
            f"llm-order-status-{n:03d}",
            "llm",
            {"request": f"hey, where's my order {oid}? it's {user['email']}"},
            status="completed",
            trajectory=calls,
            # The policy may ask a human about a model's plan: then the review approves.
            review=APPROVE,
            writes=[],
            tags=["read", "llm"],
        )
        line["llm"] = {
            "model": "gpt-4o-mini",
            "prompt_version": None,
            "recorded_replies": [
                {
                    "type": "ai",
                    "content": json.dumps(reply),
                    "tool_calls": [],
                    "usage_metadata": {
                        "input_tokens": 812,
                        "output_tokens": 96,
                        "total_tokens": 908,
                    },
                    "response_metadata": {"model_name": "gpt-4o-mini"},
                }
            ],
        }
        yield line
