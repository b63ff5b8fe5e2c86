"""Recorded model replies, replayed by the real OpenAI client over an in-process transport."""

from __future__ import annotations

import json
import threading
from collections.abc import Mapping
from typing import Any

import httpx
from langchain_core.language_models import BaseChatModel
from pydantic import SecretStr

from evals.datasets import Example
from evals.errors import EvalError


def recorded_model(example: Example) -> BaseChatModel:
    """A ``ChatOpenAI`` whose server is the example's recorded replies, replayed in order.

    The model is the real client (so structured output, tool calls and usage are read as in
    production) over an in-process transport: each request is answered with the next
    recorded reply as an OpenAI chat completion, and nothing leaves the process. After the
    last reply, further requests get the last one again.
    """
    from langchain_openai import ChatOpenAI

    llm = example.llm
    if llm is None:
        raise EvalError(f"{example.id}: no recorded model replies")
    replies = list(llm.recorded_replies)
    served = 0
    lock = threading.Lock()

    def replay(request: httpx.Request) -> httpx.Response:
        nonlocal served
        with lock:
            reply = replies[min(served, len(replies) - 1)]
            served += 1
        return httpx.Response(200, json=completion(reply, llm.model, served))

    return ChatOpenAI(
        model=llm.model,
        api_key=SecretStr("recorded"),
        base_url="http://recorded.invalid/v1",
        http_client=httpx.Client(transport=httpx.MockTransport(replay)),
        max_retries=0,
        temperature=0,
    )


def completion(reply: Mapping[str, Any], model: str, n: int) -> dict[str, Any]:
    """One recorded AI message as an OpenAI ``chat.completion`` response body."""
    usage = reply.get("usage_metadata") or {}
    calls = [
        {
            "id": call.get("id") or f"call_{n}_{i}",
            "type": "function",
            "function": {"name": call["name"], "arguments": json.dumps(call.get("args", {}))},
        }
        for i, call in enumerate(reply.get("tool_calls") or [])
    ]
    message: dict[str, Any] = {"role": "assistant", "content": reply.get("content") or None}
    if calls:
        message["tool_calls"] = calls
    name = (reply.get("response_metadata") or {}).get("model_name") or model
    return {
        "id": f"chatcmpl-recorded-{n}",
        "object": "chat.completion",
        "created": 0,
        "model": name,
        "choices": [
            {
                "index": 0,
                "message": message,
                "finish_reason": "tool_calls" if calls else "stop",
            }
        ],
        "usage": {
            "prompt_tokens": int(usage.get("input_tokens", 0)),
            "completion_tokens": int(usage.get("output_tokens", 0)),
            "total_tokens": int(usage.get("total_tokens", 0)),
        },
    }
