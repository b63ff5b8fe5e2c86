"""Offline evaluation runs: every example through the real graph, scored, kept as JSONL.

One experiment runs the chosen datasets on one home (a fresh temporary one unless given):
the shipped retail data is seeded once, then each example runs in turn through
:class:`graph.runner.Runner`, answering a review as the example says, and the database
change it made is measured. Write examples each own their records (see ``evals.generate``), so
one home serves the whole run and keeps every decision for ``planbound report``.

The run goes through ``langsmith.evaluate`` with ``upload_results=False`` unless an upload is
asked for (and a key is set): then the datasets are synced to LangSmith and the experiment,
its runs (each with the system's own trace below it) and the scores are uploaded.

Planners are an extension point: :func:`register_planner` maps a name to a factory that
builds the planner for one example; ``template`` is built in; ``llm`` is registered by the
package that provides an LLM planner (:func:`evals.replay.recorded_model` replays recorded
model replies offline).
"""

from __future__ import annotations

import contextlib
import importlib
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from checkpoints.audit import AuditLog
from checkpoints.ledger import Ledger
from evals import datasets as ds
from evals.datasets import Example
from evals.errors import EvalError
from evals.evaluators import EVALUATORS, FIGURES, as_langsmith
from evals.results import RESULTS_DIR, Experiment, aggregate, write_results
from evals.upload import dataset_uuid, example_of, example_record, example_uuid, sync_datasets
from graph.errors import USER_ERRORS
from graph.planners.base import Planner
from graph.runner import Runner
from graph.services import Services, open_stores
from graph.settings import Settings
from graph.tracing import TRACE_KIND
from tools.retail import export, load_shipped

PlannerFactory = Callable[[Services, Example], Planner]
"""Builds the planner for one example (the services give the catalog, templates, settings)."""

_PLANNERS: dict[str, PlannerFactory] = {}


def register_planner(name: str, factory: PlannerFactory) -> None:
    """Make ``--planner NAME`` available (``llm`` is registered by the LLM planner's package)."""
    _PLANNERS[name] = factory


def planners() -> list[str]:
    """The planner names that can be chosen (``auto`` picks per example)."""
    _load_plugins()
    return sorted({*_PLANNERS, "auto"})


def _load_plugins() -> None:
    """Import ``evals.planners_llm`` when it exists: it registers the ``llm`` planner."""
    if "llm" not in _PLANNERS:
        try:
            importlib.import_module("evals.planners_llm")
        except ModuleNotFoundError as exc:
            if exc.name != "evals.planners_llm":
                raise


register_planner("template", lambda services, example: services.templates)


class EvalServices(Services):
    """Services whose planner for words is the one chosen for the current example."""

    current: Planner | None = None

    def planner_for(self, explicit_plan: Any = None, *args: Any, **kwargs: Any) -> Planner:
        """The explicit planner for a plan document, else the example's planner.

        Further arguments (a route, when the services route between planners) are passed on
        when the example has no planner of its own.
        """
        if explicit_plan is None and self.current is not None:
            return self.current
        return super().planner_for(explicit_plan, *args, **kwargs)


def choose_planner(name: str, example: Example) -> str:
    """Which planner runs an example (``auto``: the LLM for recorded LLM examples)."""
    _load_plugins()
    if name == "auto":
        return "llm" if example.llm is not None and "llm" in _PLANNERS else "template"
    if name not in _PLANNERS:
        if name == "llm":
            raise EvalError(
                "no LLM planner is installed: its package registers one with "
                "evals.runner.register_planner('llm', factory)"
            )
        raise EvalError(f"no planner {name!r} (known: {', '.join(planners())})")
    return name


def select(
    dataset: str, planner: str, directory: Path = ds.DATASETS_DIR
) -> list[tuple[str, Example]]:
    """The examples of ``dataset`` (a name or ``all``) that ``planner`` can run.

    ``all`` leaves out the LLM dataset when no LLM planner is installed (template planners
    cannot replay model replies); naming it then is an error.
    """
    wanted = ds.names(directory) if dataset == "all" else [dataset]
    out: list[tuple[str, Example]] = []
    for name in wanted:
        examples = ds.load(name, directory)
        if any(e.kind == "llm" for e in examples):
            _load_plugins()
            if "llm" not in _PLANNERS or planner == "template":
                if dataset == "all":
                    continue
                choose_planner("llm", examples[0])
        out.extend((name, e) for e in examples)
    if not out:
        raise EvalError(f"dataset {dataset!r} has no examples")
    return out


@dataclass
class Home:
    """The stores, services and runner an experiment runs on."""

    path: Path
    services: EvalServices
    runner: Runner
    temporary: bool

    def close(self) -> None:
        """Close the stores; remove a temporary home."""
        self.services.stores.close()
        if self.temporary:
            shutil.rmtree(self.path, ignore_errors=True)


def open_home(home: Path | None, uri: str | None, traced: bool) -> Home:
    """Open (or make) the experiment's home and seed the shipped data afresh."""
    temporary = home is None
    path = Path(tempfile.mkdtemp(prefix="planbound-eval-")) if home is None else home
    settings = Settings.load(home=path, **({"database_uri": uri} if uri else {}))
    stores = open_stores(path, uri)
    services = EvalServices(settings, stores=stores)
    services.seed(load_shipped())
    runner = Runner(services=services)
    if not traced:
        runner.tracer.enabled = False
    return Home(path, services, runner, temporary)


def run_example(home: Home, example: Example, planner: str) -> dict[str, Any]:
    """Run one example through the graph and describe what happened (the target's outputs)."""
    services, runner = home.services, home.runner
    factory = _PLANNERS[choose_planner(planner, example)]
    services.current = factory(services, example) if "request" in example.inputs else None
    conn = services.stores.domain
    with services.stores.lock:
        before = export(conn)
    started = time.perf_counter()
    out: dict[str, Any]
    try:
        out = runner.start(
            request=example.inputs.get("request"),
            explicit_plan=example.inputs.get("explicit_plan"),
            actor=example.inputs.get("actor"),
        )
        rounds = 0
        while out["status"] == "awaiting_approval" and example.review is not None and rounds < 4:
            rounds += 1
            out = runner.resume(out["thread_id"], _answer(example, out))
    except USER_ERRORS as exc:
        out = {"status": "invalid_input", "error": str(exc), "plan": None, "verdict": None}
    seconds = time.perf_counter() - started
    with services.stores.lock:
        after = export(conn)
    outputs = describe(services, out)
    outputs["seconds"] = round(seconds, 6)
    outputs["db_diff"] = ds.flat_diff(before, after)
    outputs["planner"] = services.current.name if services.current is not None else "explicit"
    return outputs


def _answer(example: Example, out: Mapping[str, Any]) -> dict[str, Any]:
    review = example.review
    assert review is not None
    pending = out.get("pending") or []
    given = review.decisions
    decisions = given if len(given) == len(pending) else [given[0]] * max(1, len(pending))
    answer: dict[str, Any] = {
        "decisions": [dict(d) for d in decisions],
        "decision_id": out["decision_id"],
        "plan_id": out["plan"]["id"],
        "reviewer": review.reviewer,
    }
    if review.role is not None:
        answer["role"] = review.role
    return answer


def describe(services: Services, out: Mapping[str, Any]) -> dict[str, Any]:
    """What the evaluators read: plan, verdict, rules, writes and their approvals, usage."""
    plan = out.get("plan") or {}
    verdict = out.get("verdict") or {}
    decision_id = out.get("decision_id")
    rules: set[str] = set()
    writes: list[dict[str, Any]] = []
    tokens, cost = 0, None
    if decision_id:
        stores = services.stores
        with stores.lock:
            entries = AuditLog(stores.domain).entries(decision_id)
            rows = Ledger(stores.domain).rows(decision_id)
        steps = [e for e in entries if e.stream == "steps"]
        for e in steps:
            if e.kind == "verdict":
                rules |= {d["rule"] for d in e.body.get("deny", [])}
                rules |= {r for a in e.body.get("approval", []) for r in a.get("rules", [])}
                if e.body.get("contracts"):
                    rules.add("contracts")
            if e.kind == TRACE_KIND and e.body.get("usage"):
                usage = e.body["usage"]
                tokens += int(usage.get("total_tokens") or 0)
                if usage.get("cost") is not None:
                    cost = (cost or 0.0) + float(usage["cost"])
        approved = {e.body.get("step_id") for e in steps if e.kind == "approval used"}
        for row in rows:
            entry = services.catalog.get(row.tool)
            if entry is None or entry.spec.effect != "write":
                continue
            if row.status in ("succeeded", "compensated"):
                writes.append(
                    {"step_id": row.step_id, "tool": row.tool, "approved": row.step_id in approved}
                )
    template = plan.get("template")
    return {
        "status": out.get("status"),
        "error": out.get("error"),
        "decision_id": decision_id,
        "thread_id": out.get("thread_id"),
        "plan_id": plan.get("id"),
        "plan_source": plan.get("source"),
        "intent": template.split("@")[0] if template else None,
        "trajectory": [
            {"tool": s["tool"], "args": s.get("args", {})} for s in plan.get("steps", [])
        ],
        "verdict": verdict.get("outcome"),
        "rules": sorted(rules),
        "writes": writes,
        "tokens": tokens,
        "cost": cost,
    }


def _revision() -> str | None:
    try:
        done = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, timeout=5
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip() or None


def run(
    *,
    dataset: str = "all",
    planner: str = "template",
    experiment: str | None = None,
    upload: bool = False,
    home: Path | None = None,
    uri: str | None = None,
    results_dir: Path = RESULTS_DIR,
    datasets_dir: Path = ds.DATASETS_DIR,
    client: Any = None,
    progress: Callable[[int, int], None] | None = None,
) -> Experiment:
    """Run an experiment and write ``<results_dir>/<experiment>.jsonl``.

    Args:
        dataset: A dataset name or ``all``.
        planner: ``template``, ``llm`` (when installed) or ``auto``.
        experiment: The experiment's name (default: ``<planner>-<UTC time>``).
        upload: Upload datasets, runs and scores to LangSmith (needs ``LANGSMITH_API_KEY``).
        home: Keep the decisions in this home (default: a temporary one, removed after).
        uri: PostgreSQL URI for the home's stores (default SQLite under ``home``).
        results_dir: Where the results file goes.
        datasets_dir: Where the dataset files are.
        client: The LangSmith client to use (default: one from the environment; offline, one
            that is never asked to send).
        progress: Called with (done, total) after each example.

    Raises:
        EvalError: an unknown planner, a dataset the planner cannot run, an upload without key.
        DatasetError: a missing or malformed dataset.
    """
    from langsmith import Client, evaluate
    from langsmith.schemas import Example as LsExample
    from langsmith.schemas import LangSmithInfo

    if planner != "auto":
        choose_planner(planner, Example.model_validate(_probe()))
    chosen = select(dataset, planner, datasets_dir)
    settings = Settings.load()
    live = [e.id for _, e in chosen if e.llm is None and "request" in e.inputs]
    if planner == "llm" and live and not settings.llm_configured:
        raise EvalError(
            f"--planner llm: {len(live)} examples have no recorded model replies (e.g. "
            f"{live[0]}) and no model is configured: set PLANBOUND_MODEL and OPENAI_BASE_URL, "
            "or run --dataset llm"
        )
    key = settings.langsmith_api_key
    if upload and key is None:
        raise EvalError(
            "--upload needs LANGSMITH_API_KEY (and LANGSMITH_ENDPOINT if not the cloud)"
        )
    name = experiment or f"{planner}-{datetime.now(UTC).strftime('%Y%m%dT%H%M%S')}"
    if upload:
        client = client or Client(
            api_url=settings.langsmith_endpoint,
            api_key=key.get_secret_value() if key is not None else None,
        )
        ids = sync_datasets(client, chosen)
    else:
        # Nothing leaves the process: the client is never asked to send.
        client = client or Client(
            api_url="http://127.0.0.1:9", api_key="offline", info=LangSmithInfo()
        )
        ids = {n: dataset_uuid(n) for n, _ in chosen}
    by_id = {example_uuid(n, e): (n, e) for n, e in chosen}
    examples = [LsExample(dataset_id=ids[n], **example_record(n, e)) for n, e in chosen]
    box = open_home(home, uri, traced=upload)
    rows: list[dict[str, Any]] = []
    try:

        def target(inputs: dict[str, Any]) -> dict[str, Any]:
            return run_example(box, example_of(inputs, chosen)[1], planner)

        # langsmith prints its progress notes; standard output belongs to the command.
        with contextlib.redirect_stdout(sys.stderr):
            results = evaluate(
                target,
                data=examples,
                evaluators=[as_langsmith(e) for e in EVALUATORS],
                experiment_prefix=name,
                metadata={"planner": planner, "dataset": dataset, "revision": _revision()},
                max_concurrency=0,
                client=client,
                upload_results=upload,
                blocking=False,
            )
            for done, result in enumerate(results, 1):
                dataset_name, example = by_id[result["example"].id]
                run_outputs = dict(result["run"].outputs or {})
                scores: dict[str, float] = {}
                comments: dict[str, str] = {}
                for r in result["evaluation_results"]["results"]:
                    if r.score is None:
                        continue
                    scores[r.key] = float(r.score)
                    if r.comment and float(r.score) < 1 and r.key not in FIGURES:
                        comments[r.key] = r.comment
                rows.append(
                    {
                        "type": "example",
                        "experiment": name,
                        "example_id": example.id,
                        "dataset": dataset_name,
                        "kind": example.kind,
                        "tags": example.tags,
                        "outputs": run_outputs,
                        "scores": scores,
                        "comments": comments,
                    }
                )
                if progress is not None:
                    progress(done, len(examples))
            if upload:
                client.flush()
            box.runner.tracer.flush()
    finally:
        box.close()
    pins = box.services
    summary = {
        "type": "summary",
        "experiment": name,
        "langsmith_experiment": getattr(results, "experiment_name", None) if upload else None,
        "created_at": datetime.now(UTC).isoformat(),
        "planner": planner,
        "dataset": dataset,
        "datasets": {
            n: sum(1 for d, _ in chosen if d == n) for n in dict.fromkeys(d for d, _ in chosen)
        },
        "examples": len(rows),
        "revision": _revision(),
        "catalog_version": pins.catalog.version,
        "policy_version": pins.policy.version,
        "template_version": pins.templates.version,
        "uploaded": upload,
        "home": None if box.temporary else str(box.path),
        "metrics": aggregate(rows),
    }
    results_dir.mkdir(parents=True, exist_ok=True)
    path = results_dir / f"{name}.jsonl"
    write_results(path, rows, summary)
    return Experiment(name, rows, summary, path, None if box.temporary else box.path)


def _probe() -> dict[str, Any]:
    return {"id": "probe", "kind": "template", "inputs": {}, "expected": {"status": "completed"}}
