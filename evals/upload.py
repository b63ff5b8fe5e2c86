"""The datasets in LangSmith: stable example ids, and the datasets created there when missing."""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from typing import Any

from evals import datasets as ds
from evals.datasets import Example
from evals.errors import EvalError

Chosen = Sequence[tuple[str, Example]]
"""The examples of a run, each with the name of its dataset."""


def example_uuid(dataset: str, example: Example) -> uuid.UUID:
    """The example's id in LangSmith: the same on every run and every machine."""
    return uuid.uuid5(uuid.NAMESPACE_URL, f"planbound-eval:{dataset}:{example.id}")


def dataset_uuid(dataset: str) -> uuid.UUID:
    """A dataset's id when nothing is uploaded."""
    return uuid.uuid5(uuid.NAMESPACE_URL, f"planbound-eval:{dataset}")


def example_record(dataset: str, example: Example) -> dict[str, Any]:
    """The example as LangSmith keeps it: our id in the inputs, the expectation as outputs."""
    return {
        "id": example_uuid(dataset, example),
        "inputs": {"example_id": example.id, **example.inputs},
        "outputs": {"expected": example.expected.model_dump(mode="json")},
        "metadata": {"dataset": dataset, "kind": example.kind, "tags": example.tags},
    }


def example_of(inputs: Mapping[str, Any], chosen: Chosen) -> tuple[str, Example]:
    """The run's example whose record holds ``inputs``."""
    eid = inputs["example_id"]
    for n, e in chosen:
        if e.id == eid:
            return n, e
    raise EvalError(f"unknown example {eid!r}")


def sync_datasets(client: Any, chosen: Chosen) -> dict[str, uuid.UUID]:
    """Create each dataset (``planbound-<name>``) and its examples in LangSmith if missing."""
    ids: dict[str, uuid.UUID] = {}
    for name in dict.fromkeys(n for n, _ in chosen):
        ls_name = f"planbound-{name}"
        found = list(client.list_datasets(dataset_name=ls_name))
        dataset = (
            found[0]
            if found
            else client.create_dataset(
                ls_name, description=f"planbound offline evaluation: {name} ({ds.SOURCE})"
            )
        )
        ids[name] = dataset.id
        have = {str(e.id) for e in client.list_examples(dataset_id=dataset.id)}
        missing = [e for n, e in chosen if n == name and str(example_uuid(n, e)) not in have]
        if missing:
            client.create_examples(
                dataset_id=dataset.id, examples=[example_record(name, e) for e in missing]
            )
    return ids
