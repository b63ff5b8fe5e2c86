"""Run the phrased τ² retail requests end to end and classify each outcome.

Each request runs through the real graph (intake, the template planner, the verifier and the
Rego policy, review, the engine) on a fresh copy of a seeded home; every review is approved
by a supervisor. The gold database of a task is what its gold actions leave, run the same
way as an explicit plan on a fresh home. A run is

* ``exact`` when the database ends as the gold one (and the run completed),
* ``abstained`` when nothing changed (the run says why: ``cannot_plan``, a refusal, or a
  step that failed before any write, such as a selection that matched nothing),
* ``wrong`` otherwise: a write the gold actions do not make, or one they make left undone
  after others ran.
"""

from __future__ import annotations

import json
import re
import shutil
import tempfile
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from graph.runner import Runner
from graph.services import Services
from graph.settings import Settings
from tools.retail import export, load_shipped

DATASET = "train_requests.jsonl"
SUPERVISOR = {"reviewer": "eval-supervisor", "roles": ["supervisor"]}
CUSTOMER = "customer"
MAX_REVIEWS = 8
"""Reviews answered per run before it counts as stuck (a plan asks once per batch)."""

READS = ("get_", "find_", "list_", "calculate", "transfer_")


@dataclass(frozen=True)
class Case:
    """One phrased request of the dataset."""

    id: str
    task_id: str
    request: str
    conditional: bool
    gold_actions: list[dict[str, Any]]

    @property
    def intent(self) -> str:
        """The gold plan's write tools, in order, deduplicated ("none" for a read-only task)."""
        writes = [a["name"] for a in self.gold_actions if not a["name"].startswith(READS)]
        return "+".join(dict.fromkeys(writes)) or "none"


@dataclass
class Result:
    """How one request ended."""

    case: Case
    outcome: str
    status: str | None
    reason: str = ""
    template: str | None = None


@dataclass
class Report:
    """Every result, and the figures of the run."""

    results: list[Result] = field(default_factory=list)
    gold_failures: dict[str, str] = field(default_factory=dict)

    def count(self, outcome: str, results: Iterable[Result] | None = None) -> int:
        """How many results have ``outcome``."""
        return sum(
            1 for r in (self.results if results is None else results) if r.outcome == outcome
        )

    def tasks_exact(self, unconditional_only: bool = False) -> tuple[int, int]:
        """(tasks with at least one exact phrasing, tasks), optionally unconditional ones."""
        tasks: dict[str, bool] = {}
        for r in self.results:
            if unconditional_only and r.case.conditional:
                continue
            tasks[r.case.task_id] = tasks.get(r.case.task_id, False) or r.outcome == "exact"
        return sum(tasks.values()), len(tasks)


def load_cases(path: Path | None = None) -> list[Case]:
    """The shipped dataset (or ``path``)."""
    text = (
        path.read_text(encoding="utf-8")
        if path is not None
        else resources.files("evals.tau2").joinpath(DATASET).read_text(encoding="utf-8")
    )
    cases = []
    for line in text.splitlines():
        if line.strip():
            r = json.loads(line)
            cases.append(
                Case(r["id"], r["task_id"], r["request"], r["conditional"], r["gold_actions"])
            )
    return cases


def gold_plan(actions: list[dict[str, Any]], data: dict[str, Any]) -> list[dict[str, Any]]:
    """The gold actions that change data, after the identity step a real caller makes first.

    τ²'s gold action lists hold the agent's lookups too, some of which fail (a product id
    taken for an item id, a wrong email first); lookups change nothing, so the gold plan is
    the owner's identity lookup (by email) and the writes, in order.
    """
    writes = [a for a in actions if not a["name"].startswith(READS)]
    for action in writes:
        args = action.get("arguments") or {}
        user = args.get("user_id") or data["orders"].get(args.get("order_id", ""), {}).get(
            "user_id"
        )
        if user in data["users"]:
            email = data["users"][user]["email"]
            return [{"name": "find_user_id_by_email", "arguments": {"email": email}}, *writes]
    return writes


def reason_class(reason: str) -> str:
    """A short class of an abstention reason: its words with ids, numbers and quotes cut."""
    text = re.sub(r"'[^']*'|\"[^\"]*\"|\([^()]*\)", "…", reason)
    text = re.sub(r"#?W\d+|\b\d[\d.,]*\b|\S+@\S+|\b[a-z]+_[a-z_]*\d+\b", "…", text)
    return " ".join(text.split())[:110]


def _settings(home: Path) -> Settings:
    """Settings on the SQLite files of ``home``: every run has a database of its own."""
    return Settings.load(home=str(home), database_uri=None, server_database_uri=None)


class Homes:
    """A seeded home, copied fresh for every run."""

    def __init__(self, root: Path) -> None:
        """Seed a template home under ``root``."""
        self.root = root
        self.template = root / "seeded"
        services = Services(_settings(self.template))
        services.seed(load_shipped())
        services.stores.close()
        self._n = 0

    def fresh(self) -> Path:
        """A new copy of the seeded home."""
        self._n += 1
        home = self.root / f"run-{self._n}"
        shutil.copytree(self.template, home)
        return home


def _drive(runner: Runner, **start: Any) -> dict[str, Any]:
    outcome = runner.start(actor=CUSTOMER, **start)
    for _ in range(MAX_REVIEWS):
        if outcome["status"] != "awaiting_approval":
            break
        decisions = [{"type": "approve"} for _ in outcome["pending"]]
        answer = {
            "decisions": decisions,
            "decision_id": outcome["decision_id"],
            "plan_id": outcome["plan"]["id"],
            **SUPERVISOR,
        }
        outcome = runner.resume(outcome["thread_id"], answer)
    return outcome


def _run(homes: Homes, **start: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    home = homes.fresh()
    services = Services(_settings(home))
    try:
        runner = Runner(services=services)
        outcome = _drive(runner, **start)
        stores = services.stores
        with stores.lock:
            data = export(stores.domain)
        return outcome, data
    finally:
        services.stores.close()
        shutil.rmtree(home, ignore_errors=True)


def _why(outcome: dict[str, Any]) -> str:
    if outcome.get("error"):
        return str(outcome["error"])
    verdict = outcome.get("verdict") or {}
    reasons = [r.get("reason", "") for r in verdict.get("denials", []) or []]
    failed = [r.get("error", "") for r in outcome.get("results", []) if not r.get("ok")]
    return "; ".join([*reasons, *map(str, failed)]) or str(outcome.get("status"))


def evaluate(cases: Sequence[Case], progress: Callable[[str], None] = lambda _: None) -> Report:
    """Run every case and the gold plans of their tasks."""
    report = Report()
    with tempfile.TemporaryDirectory(prefix="planbound-tau2-") as tmp:
        homes = Homes(Path(tmp))
        services = Services(_settings(homes.template))
        with services.stores.lock:
            initial = export(services.stores.domain)
        services.stores.close()
        gold: dict[str, dict[str, Any]] = {}
        for n, case in enumerate(cases, 1):
            if case.task_id not in gold:
                if any(not a["name"].startswith(READS) for a in case.gold_actions):
                    actions = gold_plan(case.gold_actions, initial)
                    outcome, data = _run(homes, explicit_plan={"actions": actions})
                    if outcome["status"] != "completed":
                        report.gold_failures[case.task_id] = _why(outcome)
                    gold[case.task_id] = data
                else:
                    gold[case.task_id] = initial
            outcome, data = _run(homes, request=case.request)
            status = outcome.get("status")
            template = (outcome.get("plan") or {}).get("template")
            if case.task_id in report.gold_failures:
                result = Result(case, "unjudged", status, report.gold_failures[case.task_id])
            elif data == gold[case.task_id] and status == "completed":
                result = Result(case, "exact", status, template=template)
            elif data == initial:
                result = Result(case, "abstained", status, _why(outcome), template)
            else:
                result = Result(case, "wrong", status, _why(outcome), template)
            report.results.append(result)
            progress(f"[{n}/{len(cases)}] {case.id} {result.outcome} ({status})")
    return report


def table(report: Report) -> Iterator[str]:
    """The report as text: per intent, totals and the most common abstention reasons."""
    by_intent: dict[str, list[Result]] = {}
    for r in report.results:
        by_intent.setdefault(r.case.intent, []).append(r)
    yield f"{'intent (gold writes)':<58} {'runs':>5} {'exact':>6} {'abst.':>6} {'wrong':>6}"
    for intent, results in sorted(by_intent.items(), key=lambda kv: -len(kv[1])):
        yield (
            f"{intent[:58]:<58} {len(results):>5} {report.count('exact', results):>6} "
            f"{report.count('abstained', results):>6} {report.count('wrong', results):>6}"
        )
    total = len(report.results)
    yield (
        f"{'all':<58} {total:>5} {report.count('exact'):>6} "
        f"{report.count('abstained'):>6} {report.count('wrong'):>6}"
    )
    exact, tasks = report.tasks_exact()
    uexact, utasks = report.tasks_exact(unconditional_only=True)
    yield f"tasks with an exact phrasing: {exact}/{tasks}; unconditional tasks: {uexact}/{utasks}"
    reasons = Counter(reason_class(r.reason) for r in report.results if r.outcome == "abstained")
    yield "most common abstention reasons:"
    for reason, n in reasons.most_common(10):
        yield f"  {n:>4}  {reason}"
    for task, why in sorted(report.gold_failures.items()):
        yield f"gold plan of task {task} did not complete: {why[:150]}"
    for r in report.results:
        if r.outcome == "wrong":
            yield f"WRONG {r.case.id}: {r.status} {r.template} {r.reason[:200]}"
