"""Catalog tools: called as LangChain calls a structured tool, without its per-call look."""

from __future__ import annotations

from typing import Any

import pytest
from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.runnables import RunnableConfig
from pydantic import ValidationError

from tools.catalog import CatalogTool, catalog_tool
from tools.retail import build_catalog


class Seen(BaseCallbackHandler):
    """Records the tool runs LangChain reports."""

    def __init__(self) -> None:
        self.started: list[tuple[str, Any]] = []
        self.ended: list[Any] = []

    def on_tool_start(self, serialized: dict[str, Any], input_str: str, **kwargs: Any) -> None:
        self.started.append((serialized["name"], kwargs.get("inputs")))

    def on_tool_end(self, output: Any, **kwargs: Any) -> None:
        self.ended.append(output)


@catalog_tool
def add(a: int, b: int) -> int:
    """Add two integers.

    Args:
        a: The first.
        b: The second.
    """
    return a + b


@catalog_tool
def tagged(word: str, config: RunnableConfig) -> str:
    """Say a word with the run's tags.

    Args:
        word: The word.
    """
    return f"{word}:{','.join(config.get('tags') or [])}"


def test_a_catalog_tool_validates_its_input_and_reports_its_run() -> None:
    seen = Seen()
    assert add.invoke({"a": 2, "b": "3"}, config={"callbacks": [seen]}) == 5  # coerced
    assert seen.started == [("add", {"a": 2, "b": "3"})] and seen.ended == [5]
    with pytest.raises(ValidationError):
        add.invoke({"a": 2, "b": "three"})
    with pytest.raises(ValidationError):
        add.invoke({"a": 2})
    assert add.description == "Add two integers."
    assert set(add.tool_call_schema.model_json_schema()["properties"]) == {"a", "b"}


def test_a_function_that_takes_the_config_is_given_it() -> None:
    assert not isinstance(tagged, CatalogTool)
    assert tagged.invoke({"word": "hi"}, config={"tags": ["x", "y"]}) == "hi:x,y"


def test_every_retail_tool_is_a_catalog_tool_called_with_its_arguments_alone() -> None:
    catalog = build_catalog()
    for name, entry in catalog.entries.items():
        assert isinstance(entry.tool, CatalogTool), name
