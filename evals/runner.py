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
package that provides an LLM planner (see :func:`recorded_model` for the offline replay).
"""

from __future__ import annotations

import contextlib
import importlib
import json
import math
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from langchain_core.language_models import BaseChatModel
from pydantic import SecretStr

from checkpoints.audit import AuditLog
from checkpoints.ledger import Ledger
from evals import datasets as ds
from evals.datasets import Example
from evals.evaluators import EVALUATORS, FIGURES, as_langsmith
from graph.errors import USER_ERRORS
from graph.planners.base import Planner
from graph.runner import Runner
from graph.services import Services, open_stores
from graph.settings import Settings
from graph.tracing import TRACE_KIND
from tools.retail import export, load_shipped

RESULTS_DIR = Path("evals/results")
"""Where experiments are written (``<experiment>.jsonl``), relative to the working directory."""

PlannerFactory = Callable[[Services, Example], Planner]
"""Builds the planner for one example (the services give the catalog, templates, settings)."""

_PLANNERS: dict[str, PlannerFactory] = {}


class EvalError(ValueError):
    """An evaluation cannot run as asked (the message says why)."""


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


def recorded_model(example: Example) -> BaseChatModel:
    """A ``ChatOpenAI`` whose server is the example's recorded replies, replayed in order.

    The model is the real client (so structured output, tool calls and usage are read as in
    production) over an in-process transport: each request is answered with the next
    recorded reply as an OpenAI chat completion, and nothing leaves the process. After the
    last reply, further requests get the last one again.
    """
    from langchain_openai import ChatOpenAI

    llm = example.llm
    if llm is None:
        raise EvalError(f"{example.id}: no recorded model replies")
    replies = list(llm.recorded_replies)
    served = 0
    lock = threading.Lock()

    def replay(request: httpx.Request) -> httpx.Response:
        nonlocal served
        with lock:
            reply = replies[min(served, len(replies) - 1)]
            served += 1
        return httpx.Response(200, json=completion(reply, llm.model, served))

    return ChatOpenAI(
        model=llm.model,
        api_key=SecretStr("recorded"),
        base_url="http://recorded.invalid/v1",
        http_client=httpx.Client(transport=httpx.MockTransport(replay)),
        max_retries=0,
        temperature=0,
    )


def completion(reply: Mapping[str, Any], model: str, n: int) -> dict[str, Any]:
    """One recorded AI message as an OpenAI ``chat.completion`` response body."""
    usage = reply.get("usage_metadata") or {}
    calls = [
        {
            "id": call.get("id") or f"call_{n}_{i}",
            "type": "function",
            "function": {"name": call["name"], "arguments": json.dumps(call.get("args", {}))},
        }
        for i, call in enumerate(reply.get("tool_calls") or [])
    ]
    message: dict[str, Any] = {"role": "assistant", "content": reply.get("content") or None}
    if calls:
        message["tool_calls"] = calls
    name = (reply.get("response_metadata") or {}).get("model_name") or model
    return {
        "id": f"chatcmpl-recorded-{n}",
        "object": "chat.completion",
        "created": 0,
        "model": name,
        "choices": [
            {
                "index": 0,
                "message": message,
                "finish_reason": "tool_calls" if calls else "stop",
            }
        ],
        "usage": {
            "prompt_tokens": int(usage.get("input_tokens", 0)),
            "completion_tokens": int(usage.get("output_tokens", 0)),
            "total_tokens": int(usage.get("total_tokens", 0)),
        },
    }


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


# -- experiments ---------------------------------------------------------------------------
@dataclass
class Experiment:
    """One finished evaluation run."""

    name: str
    rows: list[dict[str, Any]]
    summary: dict[str, Any]
    path: Path | None = None
    home: Path | None = None

    @property
    def metrics(self) -> dict[str, dict[str, float]]:
        """Per-metric aggregates (``mean``, ``n``; figures also ``p50``, ``p95``)."""
        return dict(self.summary["metrics"])


def aggregate(rows: Iterable[Mapping[str, Any]]) -> dict[str, dict[str, float]]:
    """Mean and count of every metric (p50/p95/max too for the figures)."""
    values: dict[str, list[float]] = {}
    for row in rows:
        for key, score in row["scores"].items():
            values.setdefault(key, []).append(float(score))
    out: dict[str, dict[str, float]] = {}
    for key, xs in values.items():
        stats = {"mean": round(statistics.fmean(xs), 6), "n": len(xs)}
        if key in FIGURES:
            stats |= {
                "p50": round(percentile(xs, 50), 6),
                "p95": round(percentile(xs, 95), 6),
                "max": round(max(xs), 6),
            }
        out[key] = stats
    return dict(sorted(out.items()))


def percentile(xs: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (nearest rank) of ``xs``."""
    ordered = sorted(xs)
    if not ordered:
        return 0.0
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


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
        ids = _sync_datasets(client, chosen)
    else:
        # Nothing leaves the process: the client is never asked to send.
        client = client or Client(
            api_url="http://127.0.0.1:9", api_key="offline", info=LangSmithInfo()
        )
        ids = {n: uuid.uuid5(uuid.NAMESPACE_URL, f"planbound-eval:{n}") for n, _ in chosen}
    by_id = {_example_uuid(n, e): (n, e) for n, e in chosen}
    examples = [
        LsExample(
            id=_example_uuid(n, e),
            dataset_id=ids[n],
            inputs={"example_id": e.id, **e.inputs},
            outputs={"expected": e.expected.model_dump(mode="json")},
            metadata={"dataset": n, "kind": e.kind, "tags": e.tags},
        )
        for n, e in chosen
    ]
    box = open_home(home, uri, traced=upload)
    rows: list[dict[str, Any]] = []
    try:

        def target(inputs: dict[str, Any]) -> dict[str, Any]:
            key = _example_uuid_of(inputs, chosen)
            return run_example(box, by_id[key][1], planner)

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


def _example_uuid(dataset: str, example: Example) -> uuid.UUID:
    return uuid.uuid5(uuid.NAMESPACE_URL, f"planbound-eval:{dataset}:{example.id}")


def _example_uuid_of(inputs: Mapping[str, Any], chosen: Sequence[tuple[str, Example]]) -> uuid.UUID:
    eid = inputs["example_id"]
    for n, e in chosen:
        if e.id == eid:
            return _example_uuid(n, e)
    raise EvalError(f"unknown example {eid!r}")


def _sync_datasets(client: Any, chosen: Sequence[tuple[str, Example]]) -> dict[str, uuid.UUID]:
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
        missing = [e for n, e in chosen if n == name and str(_example_uuid(n, e)) not in have]
        if missing:
            client.create_examples(
                dataset_id=dataset.id,
                examples=[
                    {
                        "id": _example_uuid(name, e),
                        "inputs": {"example_id": e.id, **e.inputs},
                        "outputs": {"expected": e.expected.model_dump(mode="json")},
                        "metadata": {"dataset": name, "kind": e.kind, "tags": e.tags},
                    }
                    for e in missing
                ],
            )
    return ids


def write_results(
    path: Path, rows: Sequence[Mapping[str, Any]], summary: Mapping[str, Any]
) -> None:
    """Write an experiment: one line per example, then the summary line."""
    import json

    with path.open("w") as f:
        for row in rows:
            f.write(json.dumps(row, sort_keys=True, default=str) + "\n")
        f.write(json.dumps(summary, sort_keys=True, default=str) + "\n")


def read_results(path_or_name: str | Path, results_dir: Path = RESULTS_DIR) -> Experiment:
    """Read an experiment by file path or by name in ``results_dir``.

    Raises:
        EvalError: no such experiment, or not a results file.
    """
    import json

    path = Path(path_or_name)
    if not path.is_file():
        path = results_dir / f"{path_or_name}.jsonl"
    if not path.is_file():
        raise EvalError(f"no experiment {str(path_or_name)!r} (looked for {path})")
    rows: list[dict[str, Any]] = []
    summary: dict[str, Any] | None = None
    for n, line in enumerate(path.read_text().splitlines(), 1):
        try:
            item = json.loads(line)
        except json.JSONDecodeError:
            raise EvalError(f"{path}:{n}: not JSON") from None
        if item.get("type") == "summary":
            summary = item
        elif item.get("type") == "example":
            rows.append(item)
    if summary is None:
        raise EvalError(f"{path}: no summary line (not an experiment file)")
    return Experiment(str(summary["experiment"]), rows, summary, path)


@dataclass
class Comparison:
    """Two experiments side by side."""

    base: Experiment
    head: Experiment
    deltas: dict[str, tuple[float | None, float | None]] = field(default_factory=dict)
    regressed: list[dict[str, Any]] = field(default_factory=list)
    fixed: list[dict[str, Any]] = field(default_factory=list)


def compare(base: Experiment, head: Experiment) -> Comparison:
    """Per-metric means of both, and every example whose pass/fail score got worse (or better)."""
    cmp = Comparison(base, head)
    for key in sorted(set(base.metrics) | set(head.metrics)):
        a = base.metrics.get(key, {}).get("mean")
        b = head.metrics.get(key, {}).get("mean")
        cmp.deltas[key] = (a, b)
    before = {(r["dataset"], r["example_id"]): r for r in base.rows}
    for row in head.rows:
        old = before.get((row["dataset"], row["example_id"]))
        if old is None:
            continue
        for key, score in row["scores"].items():
            if key in FIGURES or key not in old["scores"]:
                continue
            was = old["scores"][key]
            item = {
                "example_id": row["example_id"],
                "dataset": row["dataset"],
                "metric": key,
                "base": was,
                "head": score,
                "comment": row.get("comments", {}).get(key) or old.get("comments", {}).get(key),
            }
            if score < was:
                cmp.regressed.append(item)
            elif score > was:
                cmp.fixed.append(item)
    return cmp
