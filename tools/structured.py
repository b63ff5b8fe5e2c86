"""Catalog tools: LangChain structured tools without the per-call look at their function.

Every call of a ``StructuredTool`` reads the type hints of the function, and of the tool's
own ``_run``, to find a ``RunnableConfig`` or ``callbacks`` parameter to pass on (about a
tenth of a millisecond a call, more with string annotations). A catalog tool's function
takes its arguments and nothing else: that is checked once, when the tool is made, and
``_run`` calls it directly. Input parsing, validation, callbacks and tracing stay
LangChain's.

This module has no ``from __future__ import annotations`` on purpose: LangChain evaluates
``_run``'s annotations on every call, and real objects cost nothing to evaluate.
"""

import inspect
import typing
from collections.abc import Callable
from typing import Any

from langchain_core.runnables import RunnableConfig
from langchain_core.tools import StructuredTool


class CatalogTool(StructuredTool):
    """A structured tool whose function is called with its arguments alone.

    Make one with :func:`catalog_tool`, which gives a plain ``StructuredTool`` to a
    function that takes a ``RunnableConfig`` or ``callbacks``.
    """

    def _run(self, *args: Any, **kwargs: Any) -> Any:
        if self.func is None:
            raise NotImplementedError(f"the tool {self.name!r} has no function")
        return self.func(*args, **kwargs)


def _takes_run_context(func: Callable[..., Any]) -> bool:
    """Whether ``func`` asks LangChain for the run's config or callbacks."""
    parameters = inspect.signature(func).parameters
    if "callbacks" in parameters or "run_manager" in parameters:
        return True
    try:
        hints = typing.get_type_hints(func)
    except (NameError, TypeError):  # hints that do not resolve: treat it as LangChain does
        return True
    return any(hints.get(name) in (RunnableConfig, RunnableConfig | None) for name in parameters)


def catalog_tool(func: Callable[..., Any]) -> StructuredTool:
    """Make a tool of ``func``, described by its Google-style docstring.

    The same tool as LangChain's ``@tool(parse_docstring=True)``, as a :class:`CatalogTool`
    unless the function takes the run's config or callbacks.
    """
    if _takes_run_context(func):
        return StructuredTool.from_function(func, parse_docstring=True)
    return CatalogTool.from_function(func, parse_docstring=True)
