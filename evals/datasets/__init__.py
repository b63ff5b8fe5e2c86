"""The offline evaluation datasets: JSONL files, one example a line (schema in README.md).

:class:`Example` is the schema every line is validated against when loaded; a malformed line
is refused naming its file, line and field.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

DATASETS_DIR = Path(__file__).resolve().parent
"""Where the dataset files are."""

SOURCE = "tau2-bench retail data (MIT, Sierra Research), via tools/retail/data"
"""Where every example's users, orders and items come from."""

Kind = Literal["template", "explicit", "violation", "adversarial", "llm"]


class DatasetError(ValueError):
    """A dataset file is missing or malformed (the message names the file, line and field)."""


class ToolCall(BaseModel):
    """One expected call of a plan's trajectory."""

    model_config = ConfigDict(extra="forbid")

    tool: str
    args: dict[str, Any] = Field(default_factory=dict)


class Expected(BaseModel):
    """What a correct run of the example does."""

    model_config = ConfigDict(extra="forbid")

    status: str
    """Final status (or ``awaiting_approval`` for a run that must stop at a human)."""
    intent: str | None = None
    """The template intent the request must be planned with (template id without version)."""
    trajectory: list[ToolCall] | None = None
    """The plan's tool calls; ``None``: not checked."""
    trajectory_match: Literal["strict", "unordered", "subset", "superset"] = "strict"
    args_match: Literal["exact", "ignore", "subset", "superset"] = "exact"
    verdict: Literal["allow", "needs_approval", "deny"] | None = None
    rules: list[str] = Field(default_factory=list)
    """Rules that must have fired (deny or approval rules), a subset of those that did."""
    db_diff: dict[str, Any] | None = None
    """The database change after the run, flat (``table/key/path``: new value, ``null`` for a
    removed field); ``{}`` means nothing may change; ``None``: not checked."""
    reason_contains: str | None = None
    """Words the reason of a ``cannot_plan`` must contain."""


class Review(BaseModel):
    """How the example answers a review: one decision applied to every pending step."""

    model_config = ConfigDict(extra="forbid")

    decisions: list[dict[str, Any]] = Field(min_length=1)
    reviewer: str
    role: str | None = None


class RecordedLLM(BaseModel):
    """The model's recorded replies, replayed in order by a scripted chat model."""

    model_config = ConfigDict(extra="forbid")

    model: str
    prompt_version: str | None = None
    recorded_replies: list[dict[str, Any]] = Field(min_length=1)
    """LangChain AI message dicts: ``content``, ``tool_calls``, ``usage_metadata`` ..."""


class Example(BaseModel):
    """One dataset line."""

    model_config = ConfigDict(extra="forbid")

    id: str
    kind: Kind
    inputs: dict[str, Any]
    review: Review | None = None
    expected: Expected
    llm: RecordedLLM | None = None
    tags: list[str] = Field(default_factory=list)
    source: str = SOURCE


def names(directory: Path = DATASETS_DIR) -> list[str]:
    """The dataset names in ``directory`` (file stems)."""
    return sorted(p.stem for p in directory.glob("*.jsonl"))


def load(name: str, directory: Path = DATASETS_DIR) -> list[Example]:
    """Read and validate one dataset.

    Raises:
        DatasetError: no such dataset, or a line that is not a valid example.
    """
    path = directory / f"{name}.jsonl"
    if not path.is_file():
        known = ", ".join(names(directory)) or "none"
        raise DatasetError(f"no dataset {name!r} in {directory} (known: {known})")
    out: list[Example] = []
    seen: set[str] = set()
    for n, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            example = Example.model_validate(json.loads(line))
        except json.JSONDecodeError as exc:
            raise DatasetError(f"{path}:{n}: not JSON ({exc.msg})") from None
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"]) or "line"
            raise DatasetError(f"{path}:{n}: {where}: {first['msg']}") from None
        if example.id in seen:
            raise DatasetError(f"{path}:{n}: duplicate id {example.id!r}")
        seen.add(example.id)
        out.append(example)
    return out


def flat(value: Any, prefix: str = "") -> dict[str, Any]:
    """Flatten nested dicts and lists into ``a/b/0/c`` paths."""
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for key, item in value.items():
            out.update(flat(item, f"{prefix}{key}/"))
        return out or {prefix.rstrip("/"): {}}
    if isinstance(value, list):
        out = {}
        for i, item in enumerate(value):
            out.update(flat(item, f"{prefix}{i}/"))
        return out or {prefix.rstrip("/"): []}
    return {prefix.rstrip("/"): value}


def flat_diff(before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
    """What changed between two database exports, as flat paths to new values.

    Records are compared table by table first, so only changed records are flattened.
    """
    diff: dict[str, Any] = {}
    for table in sorted(set(before) | set(after)):
        old, new = before.get(table) or {}, after.get(table) or {}
        for key in sorted(set(old) | set(new)):
            if old.get(key) == new.get(key):
                continue
            a = flat(old.get(key), f"{table}/{key}/") if key in old else {}
            b = flat(new.get(key), f"{table}/{key}/") if key in new else {}
            for path in sorted(set(a) | set(b)):
                if a.get(path, _MISSING) != b.get(path, _MISSING):
                    diff[path] = b.get(path)
    return diff


_MISSING = object()
