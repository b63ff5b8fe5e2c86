"""The LLM planner: a chat model fills the plan schema; the reply is read strictly.

The model is asked through ``with_structured_output`` (strict JSON schema, or function
calling for servers without it) with ``include_raw=True``, and the raw reply is read here
with a strict JSON parser: a reply that is not JSON, does not fit the schema or does not make
a valid plan comes back as findings naming each field, which the graph hands back to the
planner (bounded by ``max_replans``). Nothing is repaired: a truncated reply is not closed,
a missing field is not filled. A model server that fails (HTTP error, timeout, unreachable)
is a finding too: the graph owns retries, the client's own are off.

Every call's tokens are counted (``usage_metadata``; estimated from the text when a server
reports none) and priced from the price table.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import openai
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage
from langchain_core.utils.function_calling import convert_to_openai_function
from pydantic import ValidationError

from graph.planners.llm.prices import PriceTable
from graph.planners.llm.prompts import PROMPT_VERSION, render_user
from graph.planners.llm.schema import ModelPlan, to_plan
from graph.state import Usage
from guards.errors import PlanInvalid
from guards.plan import CannotPlan, Plan, PlanRequest, content_hash
from guards.problems import field_path

Method = Literal["json_schema", "function_calling"]
SCHEMA_NAME = "plan"
"""Name of the schema (or function) the model fills."""

CHARS_PER_TOKEN = 4
"""Estimate used when a server reports no usage: about four characters a token."""


def plan_schema() -> dict[str, Any]:
    """The strict JSON schema of :class:`ModelPlan` (every object closed, every field required)."""
    function = convert_to_openai_function(ModelPlan, strict=True)
    return dict(function["parameters"])


@dataclass(frozen=True)
class Attempt:
    """One call of the planner.

    Attributes:
        outcome: The plan or the :class:`CannotPlan`; ``None`` when the reply was rejected.
        findings: Why the reply was rejected (empty when it was read).
        usage: The call's tokens and cost.
    """

    outcome: Plan | CannotPlan | None
    findings: list[str] = field(default_factory=list)
    usage: Usage = field(default_factory=Usage)


class LLMPlanner:
    """Plans with a chat model; feedback from the verifier changes its next answer.

    Args:
        model: The chat model (``ChatOpenAI`` in production, temperature 0, no retries).
        model_name: The model's name, for prices and the version.
        system: The rendered system prompt (catalog, rules, examples).
        prices: The price table.
        method: ``json_schema`` (strict) or ``function_calling``.
    """

    name = "llm"

    def __init__(
        self,
        model: BaseChatModel,
        *,
        model_name: str,
        system: str,
        prices: PriceTable,
        method: Method = "json_schema",
    ) -> None:
        self.model_name = model_name
        self.system = system
        self.prices = prices
        self.method = method
        schema = plan_schema()
        description = ModelPlan.__doc__ or SCHEMA_NAME
        if method == "json_schema":
            target: dict[str, Any] = {
                "name": SCHEMA_NAME,
                "description": description,
                "schema": schema,
                "strict": True,
            }
            self._runnable = model.with_structured_output(
                target, method="json_schema", strict=True, include_raw=True
            )
        else:
            target = {"name": SCHEMA_NAME, "description": description, "parameters": schema}
            self._runnable = model.with_structured_output(
                target, method="function_calling", include_raw=True
            )

    @property
    def version(self) -> str:
        """Prompt constants' hash, rendered system prompt's hash, method and model."""
        return f"{PROMPT_VERSION}+{content_hash(self.system, 8)}:{self.method}:{self.model_name}"

    @property
    def can_replan(self) -> bool:
        """Findings are shown to the model: its next answer can differ."""
        return True

    def plan(self, request: PlanRequest) -> Plan | CannotPlan:
        """Return a plan or a :class:`CannotPlan` (raises :class:`PlanInvalid` on a bad reply)."""
        attempt = self.attempt(request)
        if attempt.outcome is None:
            raise PlanInvalid(attempt.findings)
        return attempt.outcome

    def messages(self, request: PlanRequest) -> list[BaseMessage]:
        """The messages sent for ``request``: the system prompt and the request (+ findings)."""
        return [
            SystemMessage(self.system),
            HumanMessage(render_user(request.text, request.feedback, request.previous)),
        ]

    def attempt(self, request: PlanRequest) -> Attempt:
        """Ask the model once; return what it planned, or why its reply cannot be used."""
        messages = self.messages(request)
        failed = Usage(calls=1)  # a failed call is counted; its tokens are unknown
        try:
            result = self._runnable.invoke(messages)
        except openai.APITimeoutError:
            return Attempt(None, ["llm.timeout: the model server did not answer in time"], failed)
        except openai.APIStatusError as exc:
            problem = f"llm.unavailable: the model server answered HTTP {exc.status_code}"
            return Attempt(None, [problem], failed)
        except openai.APIConnectionError:
            problem = "llm.unavailable: the model server could not be reached"
            return Attempt(None, [problem], failed)
        raw = result.get("raw") if isinstance(result, dict) else None
        if not isinstance(raw, AIMessage):
            return Attempt(None, ["llm.reply: the model returned no message"], failed)
        usage = self._usage(raw, messages)
        document, unreadable = self._document(raw)
        if unreadable is not None:
            return Attempt(None, [unreadable], usage)
        try:
            reply = ModelPlan.model_validate(document)
        except ValidationError as exc:
            findings = [
                f"llm.schema: {field_path(e['loc']) or 'the reply'}: {e['msg']}"
                for e in exc.errors()
            ]
            return Attempt(None, list(dict.fromkeys(findings)), usage)
        read = to_plan(reply, request.text)
        if isinstance(read, list):
            return Attempt(None, [f"llm.plan: {p}" for p in read], usage)
        return Attempt(read, [], usage)

    def _document(self, raw: AIMessage) -> tuple[Any, str | None]:
        """The reply's JSON document, read strictly, or the problem with it."""
        refusal = raw.additional_kwargs.get("refusal")
        if refusal:
            return None, f"llm.refused: the model refused: {str(refusal)[:200]}"
        if self.method == "function_calling":
            calls = [c for c in raw.tool_calls if c["name"] == SCHEMA_NAME]
            if calls:
                return calls[0]["args"], None
            if raw.invalid_tool_calls:
                return None, "llm.json: the function call's arguments are not valid JSON"
            return None, f"llm.reply: the model did not call the {SCHEMA_NAME!r} function"
        content = raw.content if isinstance(raw.content, str) else None
        if not content or not content.strip():
            return None, "llm.reply: the reply is empty"
        try:
            return json.loads(content), None
        except json.JSONDecodeError as exc:
            return None, f"llm.json: the reply is not valid JSON ({exc.msg} at char {exc.pos})"

    def _usage(self, raw: AIMessage, messages: Sequence[BaseMessage]) -> Usage:
        meta = raw.usage_metadata
        if meta is not None:
            return self.prices.usage(
                self.model_name, int(meta["input_tokens"]), int(meta["output_tokens"])
            )
        sent = sum(len(str(m.content)) for m in messages)
        got = len(str(raw.content)) + len(json.dumps(raw.additional_kwargs, default=str))
        return self.prices.usage(
            self.model_name, -(-sent // CHARS_PER_TOKEN), -(-got // CHARS_PER_TOKEN)
        )
