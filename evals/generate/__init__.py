"""Generate the offline evaluation datasets from the shipped retail data.

Run ``python -m evals.generate`` to rewrite ``evals/datasets/*.jsonl``.

The examples are built from the τ²-bench retail database shipped in ``tools/retail/data``
(τ²-bench, MIT, Sierra Research): real users, orders, items and payment methods, picked with a
fixed seed, so the files are the same on every run. Each write example gets a user of its own
(:class:`~evals.generate.common.Data` hands users out from one pool, in the order the builders
ask), so one evaluation home can run every example in turn without one example's change
meeting another's. The expected database change of a write is what τ²-bench itself compares:
the state after applying the gold actions, in order, to the shipped data with the domain's
tools (:class:`~evals.generate.oracle.Oracle`); it is kept as a flat diff
(``"orders/#W1234567/status": "cancelled"``). Policy violations are built to break one named
rule each, and checked against the verifier as they are written: a plan that does not break
its rule stops the generator.

One module per dataset: ``templates``, ``explicit``, ``violations``, ``adversarial``, ``llm``.
"""

from __future__ import annotations

import json
from typing import Any

from evals.datasets import DATASETS_DIR
from evals.generate.adversarial import adversarial
from evals.generate.common import Data
from evals.generate.explicit import explicit
from evals.generate.llm import llm
from evals.generate.oracle import Oracle
from evals.generate.templates import templates
from evals.generate.violations import violations


def build() -> dict[str, list[dict[str, Any]]]:
    """Every dataset, by name."""
    data = Data()
    sets = {
        "templates": list(templates(data)),
        "explicit": list(explicit(data)),
        "violations": list(violations(data)),
        "adversarial": list(adversarial(data)),
        "llm": list(llm(data)),
    }
    oracle = Oracle()
    try:
        for lines in sets.values():
            for line in lines:
                expected = line["expected"]
                expected["db_diff"] = oracle.diff(expected["db_diff"] or [])
        oracle.reset()
        for line in sets["violations"]:
            judged = oracle.judge(line["inputs"]["explicit_plan"])
            fired = {v.rule for v in judged.decision.deny}
            rule = line["expected"]["rules"][0]
            if judged.verdict.outcome != "deny" or rule not in fired:
                raise RuntimeError(f"{line['id']} does not break {rule}: {judged.verdict}")
    finally:
        oracle.close()
    return sets


def main() -> None:
    """Write ``evals/datasets/<name>.jsonl``."""
    for name, lines in build().items():
        path = DATASETS_DIR / f"{name}.jsonl"
        path.write_text("".join(json.dumps(line, sort_keys=True) + "\n" for line in lines))
        print(f"{path}: {len(lines)} examples")  # noqa: T201
