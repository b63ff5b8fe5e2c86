"""Selections: a pure JMESPath query over an earlier step's output, as a step argument.

A plan cannot know which variant of a product is "the same keyboard but with clicky
switches" before the product has been read, and a planner must never see tool outputs. A
*selection* lets the plan say how to pick the value, and the engine picks it from the data:

.. code-block:: json

    {"$select": "s3",
     "query": "variants.* | [?available && options.switch == 'clicky'].item_id",
     "take": "one",
     "params": {"current": "$s2.items.0.options"}}

* ``query`` is a `JMESPath <https://jmespath.org>`_ expression evaluated on the output of
  step ``s3`` (which the selection makes a dependency, like a ``$s3`` reference).
* ``take: one`` (the default) wants exactly one match: a list result of one element gives that
  element, a non-list non-null result is one match; an empty result is
  :class:`~guards.errors.SelectionEmpty` and several are
  :class:`~guards.errors.SelectionAmbiguous`. ``take: all`` wants a non-empty list.
* ``params`` are named values (references and selections allowed) that the query reads with
  the function ``param('name')``; they are data, never parsed as a query. ``omit(object,
  keys)`` is the object without those keys (options the customer does not care about);
  ``unique(list)`` keeps the distinct values of a list (the same address on several orders
  is one address).
* ``$select`` may name a list of steps (those a foreach step was written as,
  :mod:`guards.fanout`): the query reads the list of their outputs.

Contracts check a selection before anything runs (:func:`check_selection`): the query parses,
calls only known functions, and every field it names exists in the output type of the step
it reads. At execution an empty or ambiguous selection fails the step before any write.
"""

from __future__ import annotations

import functools
import json
import types
from collections.abc import Mapping
from typing import Annotated, Any, Literal, Union, get_args, get_origin

import jmespath
import jmespath.exceptions
import jmespath.functions
import jmespath.parser
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError

from guards.errors import ReferenceUnresolved, SelectionAmbiguous, SelectionEmpty

SELECT_KEY = "$select"
"""The key that marks a JSON object inside step arguments as a selection."""

MAX_QUERY_LENGTH = 2000
"""Longest query text accepted (a query is plan data; plans have size limits too)."""


StepId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z][A-Za-z0-9_-]{0,63}$")]


class Selection(BaseModel):
    """A pure selection over one earlier step's output."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    step: StepId | list[StepId] = Field(
        alias=SELECT_KEY,
        description=(
            "Id of the earlier step whose output the query reads; or a list of ids (the "
            "steps a foreach step was written as): the query reads the list of their outputs."
        ),
    )
    query: str = Field(
        min_length=1,
        max_length=MAX_QUERY_LENGTH,
        description="JMESPath expression over that output; `param('name')` reads a param.",
    )
    take: Literal["one", "all"] = Field(
        default="one",
        description="'one': exactly one match is the value; 'all': the non-empty list.",
    )
    params: dict[str, Any] = Field(
        default_factory=dict,
        description="Named values for the query (may hold references and selections).",
    )

    @property
    def steps(self) -> list[str]:
        """The ids of the steps the query reads."""
        return [self.step] if isinstance(self.step, str) else list(self.step)

    def data(self, outputs: Mapping[str, Any]) -> Any:
        """What the query reads: the output of its step, or the list of its steps' outputs."""
        if isinstance(self.step, str):
            return outputs[self.step]
        return [outputs[s] for s in self.step]


def is_selection(value: Any) -> bool:
    """Whether a JSON value is meant as a selection (an object with a ``$select`` key)."""
    return isinstance(value, dict) and SELECT_KEY in value


def parse_selection(value: Mapping[str, Any]) -> Selection:
    """Return the :class:`Selection` a ``$select`` object spells.

    Raises:
        ValueError: the object is no valid selection (the message says which part).
    """
    try:
        return Selection.model_validate(dict(value))
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'selection'}: {e['msg']}" for e in exc.errors()
        )
        raise ValueError(f"not a valid selection ({problems})") from None


# Evaluation -----------------------------------------------------------------------------------


class _Functions(jmespath.functions.Functions):
    """JMESPath's built-ins, ``param(name)`` over one selection's params, and ``omit``."""

    def __init__(self, params: Mapping[str, Any]) -> None:
        super().__init__()
        self._params = params

    @jmespath.functions.signature({"types": ["string"]})
    def _func_param(self, name: str) -> Any:
        if name not in self._params:
            known = ", ".join(sorted(self._params)) or "none"
            raise jmespath.exceptions.JMESPathError(f"no param {name!r} (params: {known})")
        return self._params[name]

    @jmespath.functions.signature({"types": ["object"]}, {"types": ["array"]})
    def _func_omit(self, value: Mapping[str, Any], keys: list[Any]) -> dict[str, Any]:
        """The object without ``keys``: options a customer does not care about."""
        return {k: v for k, v in value.items() if k not in keys}

    @jmespath.functions.signature({"types": ["array"]})
    def _func_unique(self, values: list[Any]) -> list[Any]:
        """The distinct values of a list, first occurrence first (``unique(@)``)."""
        seen: dict[str, Any] = {}
        for v in values:
            seen.setdefault(json.dumps(v, sort_keys=True, ensure_ascii=False), v)
        return list(seen.values())


FUNCTIONS = frozenset(
    name.removeprefix("_func_") for name in dir(_Functions) if name.startswith("_func_")
)
"""Every function a query may call."""


@functools.lru_cache(maxsize=512)
def compile_query(query: str) -> jmespath.parser.ParsedResult:
    """Parse a query once (cached); raises ``jmespath.exceptions.ParseError``."""
    return jmespath.compile(query)


def evaluate(selection: Selection, data: Any, params: Mapping[str, Any], step_id: str) -> Any:
    """Evaluate ``selection`` on ``data`` (the output it reads) with resolved ``params``.

    Raises:
        SelectionEmpty: nothing matched.
        SelectionAmbiguous: ``take: one`` and several matched.
        ReferenceUnresolved: the query does not parse or fails on this data.
    """
    where = f"selection on {selection.step} ({selection.query!r})"
    try:
        parsed = compile_query(selection.query)
        found = parsed.search(data, jmespath.Options(custom_functions=_Functions(params)))
    except jmespath.exceptions.JMESPathError as exc:
        raise ReferenceUnresolved(step_id, f"{where}: {exc}") from None
    matches = found if isinstance(found, list) else ([] if found is None else [found])
    matches = [m for m in matches if m is not None]
    if not matches:
        raise SelectionEmpty(step_id, f"{where} matched nothing")
    if selection.take == "all":
        return matches
    if len(matches) > 1:
        shown = ", ".join(_short(m) for m in matches[:5])
        more = f" and {len(matches) - 5} more" if len(matches) > 5 else ""
        raise SelectionAmbiguous(
            step_id, f"{where} matched {len(matches)} values ({shown}{more}); it needs exactly one"
        )
    return matches[0]


def _short(value: Any, limit: int = 40) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


# Static checks --------------------------------------------------------------------------------


class _Unknown:
    """The type of a value whose shape the checker cannot tell (anything goes)."""


ANY: Any = _Unknown
_LIST_OF_ANY: Any = list[Any]


def strip_optional(tp: Any) -> Any:
    """Return ``X`` for ``X | None``; a union of several types is :data:`typing.Any`."""
    origin = get_origin(tp)
    if origin is Union or origin is types.UnionType:
        members = [a for a in get_args(tp) if a is not type(None)]
        if len(members) == 1:
            return members[0]
        return Any
    return tp


def _is_unknown(tp: Any) -> bool:
    return tp is ANY or tp is Any or tp is dict or tp is list or tp is object


def _element(tp: Any) -> Any | None:
    """The element type of a list type, ``ANY`` for unknown, ``None`` when not a list."""
    tp = strip_optional(tp)
    if _is_unknown(tp):
        return ANY
    if get_origin(tp) is list:
        args = get_args(tp)
        return args[0] if args else ANY
    return None


def _values(tp: Any) -> Any | None:
    """The value type of an object type (``*`` projects it), ``None`` when not an object."""
    tp = strip_optional(tp)
    if _is_unknown(tp):
        return ANY
    if get_origin(tp) is dict:
        args = get_args(tp)
        return args[1] if len(args) == 2 else ANY
    if isinstance(tp, type) and issubclass(tp, BaseModel):
        kinds = {strip_optional(f.annotation) for f in tp.model_fields.values()}
        return kinds.pop() if len(kinds) == 1 else ANY
    return None


def _name(tp: Any) -> str:
    tp = strip_optional(tp)
    if get_origin(tp) is list:
        return "list"
    if get_origin(tp) is dict:
        return "object"
    if get_origin(tp) is Literal:
        return "string"
    return getattr(tp, "__name__", repr(tp))


class _Checker:
    """Walks a JMESPath AST with the type of the current value, collecting problems."""

    def __init__(self) -> None:
        self.problems: list[str] = []

    def walk(self, node: dict[str, Any], tp: Any) -> Any:  # noqa: C901 - one case per node type
        kind = node["type"]
        kids: list[dict[str, Any]] = node.get("children", [])
        if kind in ("identity", "current"):
            return tp
        if kind == "literal":
            return ANY
        if kind == "field":
            return self.field(node["value"], tp)
        if kind in ("subexpression", "pipe"):
            for kid in kids:
                tp = self.walk(kid, tp)
            return tp
        if kind == "index_expression":
            return self.walk(kids[1], self.walk(kids[0], tp))
        if kind in ("index", "slice"):
            element = _element(tp)
            if element is None:
                self.problems.append(f"indexes a {_name(tp)}, which is not a list")
                return ANY
            return element if kind == "index" else tp
        if kind == "flatten":
            inner = _element(self.walk(kids[0], tp))
            if inner is None:
                self.problems.append("flattens a value that is not a list")
                return _LIST_OF_ANY
            nested = _element(inner)
            return list[nested] if nested is not None else list[inner]  # type: ignore[valid-type]
        if kind in ("projection", "filter_projection"):
            element = _element(self.walk(kids[0], tp))
            if element is None:
                self.problems.append("projects over a value that is not a list")
                return _LIST_OF_ANY
            if kind == "filter_projection":
                self.walk(kids[2], element)
            return list[self.walk(kids[1], element)]  # type: ignore[misc]
        if kind == "value_projection":
            left = self.walk(kids[0], tp)
            values = _values(left)
            if values is None:
                self.problems.append(f"'*' projects the values of a {_name(left)}")
                return _LIST_OF_ANY
            return list[self.walk(kids[1], values)]  # type: ignore[misc]
        if kind in ("comparator", "and_expression", "or_expression", "not_expression"):
            for kid in kids:
                self.walk(kid, tp)
            return ANY
        if kind == "function_expression":
            if node["value"] not in FUNCTIONS:
                self.problems.append(f"unknown function {node['value']}()")
            for kid in kids:
                self.walk(kid, tp)
            return ANY
        if kind == "expref":
            element = _element(tp)
            for kid in kids:
                self.walk(kid, element if element is not None else ANY)
            return ANY
        if kind in ("multi_select_list", "multi_select_dict", "key_val_pair"):
            for kid in kids:
                self.walk(kid, tp)
            return ANY
        return ANY

    def field(self, name: str, tp: Any) -> Any:
        tp = strip_optional(tp)
        if _is_unknown(tp):
            return ANY
        if isinstance(tp, type) and issubclass(tp, BaseModel):
            fields = tp.model_fields
            if name not in fields:
                known = ", ".join(sorted(fields))
                self.problems.append(f"{tp.__name__} has no field {name!r} (fields: {known})")
                return ANY
            return fields[name].annotation
        if get_origin(tp) is dict:
            args = get_args(tp)
            return args[1] if len(args) == 2 else ANY
        if get_origin(tp) is list:
            self.problems.append(f"reads field {name!r} of a list; project it with [*] or []")
            return ANY
        self.problems.append(f"reads field {name!r} of a {_name(tp)}")
        return ANY


def check_selection(selection: Selection, output: Any) -> list[str]:
    """Return the static problems of ``selection`` against the output type it reads.

    ``output`` is the tool's declared output type (a pydantic model, ``dict[str, X]``,
    ``list[X]``, a scalar, or ``Any``); an empty list means the selection is sound.
    """
    try:
        parsed = compile_query(selection.query)
    except jmespath.exceptions.JMESPathError as exc:
        return [f"the query does not parse: {str(exc).splitlines()[0]}"]
    checker = _Checker()
    checker.walk(dict(parsed.parsed), output)
    return list(dict.fromkeys(checker.problems))
