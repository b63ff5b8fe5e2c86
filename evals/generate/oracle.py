"""The expected effects: gold writes applied to the shipped data with the domain's tools."""

from __future__ import annotations

import copy
import tempfile
from pathlib import Path
from typing import Any

from evals.datasets import flat_diff
from graph.services import Services, open_stores
from graph.settings import Settings
from guards.plan import Plan
from tools.retail import export, load_shipped, seed


class Oracle:
    """Applies gold write calls to the shipped data with the domain's tools, as τ²-bench does."""

    def __init__(self) -> None:
        self.dir = tempfile.TemporaryDirectory()
        self.stores = open_stores(Path(self.dir.name))
        self.services = Services(Settings.load(home=Path(self.dir.name)), stores=self.stores)
        self.pristine = load_shipped()
        self.reset()

    def reset(self) -> None:
        """Seed the shipped data again."""
        with self.stores.lock:
            seed(self.stores.domain, self.pristine)

    def diff(self, writes: list[dict[str, Any]]) -> dict[str, Any]:
        """The flat diff the gold ``writes`` make to the shipped data."""
        if not writes:
            return {}
        self.reset()
        conn = self.stores.domain
        with self.stores.lock:
            before = export(conn)
            for w in writes:
                entry = self.services.catalog.get(w["tool"])
                if entry is None:
                    raise RuntimeError(f"no tool {w['tool']}")
                store = self.services.store(conn)
                with conn.transaction(write=True):
                    entry.tool.invoke({**copy.deepcopy(w["args"]), "db": store})
            after = export(conn)
        return flat_diff(before, after)

    def judge(self, document: Any) -> Any:
        """The verifier's judgement of a plan document on the shipped data."""
        from graph.planners.explicit import parse_plan_document

        plan: Plan = parse_plan_document(document)
        return self.services.verifier.verify(plan, self.stores.domain, self.stores.lock, None)

    def close(self) -> None:
        """Close the stores and remove the directory."""
        self.stores.close()
        self.dir.cleanup()
