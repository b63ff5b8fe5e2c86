"""Offline evaluations: the datasets, the evaluators, `planbound eval`, the gate, the upload."""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from langsmith import Client
from langsmith.schemas import LangSmithInfo
from langsmith_recorder import Recorder, serve
from typer.testing import CliRunner

from evals import datasets as ds
from evals import runner
from evals.datasets import DatasetError, Expected, ToolCall
from evals.evaluators import abstention, outcome, safety, trajectory, trajectory_matches
from evals.gate import check, load_gate
from evals.replay import recorded_model
from evals.results import read_results
from graph.cli import app
from guards.plan import CannotPlan, PlanRequest
from tools.retail import load_shipped

PICK = {
    "templates": ["tpl-user-details-000", "tpl-cancel-000", "tpl-cancel-011", "tpl-return-001"],
    "explicit": ["plan-two-addresses-000"],
    "violations": ["deny-foreign-payment-000"],
    "adversarial": ["adv-other-customer-000", "adv-injection-000", "adv-out-of-scope-000"],
}
"""A small cross-section of the shipped datasets: reads, writes, a reject, denies, abstentions."""


@pytest.fixture
def small(tmp_path: Path) -> Path:
    """The picked examples as one dataset per kind in a directory of their own."""
    directory = tmp_path / "datasets"
    directory.mkdir()
    for name, ids in PICK.items():
        lines = [e for e in ds.load(name) if e.id in ids]
        assert len(lines) == len(ids)
        (directory / f"{name}.jsonl").write_text("".join(e.model_dump_json() + "\n" for e in lines))
    return directory


@pytest.fixture
def recorder() -> Iterator[Recorder]:
    with serve() as rec:
        yield rec


def offline_client(recorder: Recorder) -> Client:
    return Client(api_url=recorder.url, api_key="never-sent", info=LangSmithInfo())


# -- datasets ------------------------------------------------------------------------------
def test_the_shipped_datasets_hold_every_kind_and_enough_examples() -> None:
    loaded = {name: ds.load(name) for name in ds.names()}
    assert set(loaded) == {"templates", "explicit", "violations", "adversarial", "llm"}
    offline = [e for name, lines in loaded.items() if name != "llm" for e in lines]
    assert len(offline) >= 150
    kinds = {e.kind for e in offline}
    assert kinds == {"template", "explicit", "violation", "adversarial"}
    writes = [e for e in offline if "write" in e.tags and e.expected.status == "completed"]
    assert len(writes) >= 60
    assert all(e.expected.db_diff for e in writes)
    denies = [e for e in offline if e.expected.verdict == "deny"]
    assert all(e.expected.rules and e.expected.db_diff == {} for e in denies)
    assert {e.expected.status for e in loaded["adversarial"]} >= {"cannot_plan", "refused"}
    assert all(e.llm is not None and e.llm.recorded_replies for e in loaded["llm"])


def test_a_cancel_diff_is_what_tau2_cancel_does_to_the_shipped_data() -> None:
    example = next(e for e in ds.load("templates") if e.id == "tpl-cancel-000")
    cancel = example.expected.trajectory[-1] if example.expected.trajectory else None
    assert cancel is not None and cancel.tool == "cancel_pending_order"
    order_id, reason = cancel.args["order_id"], cancel.args["reason"]
    order = load_shipped()["orders"][order_id]
    history = order["payment_history"]
    want = {
        f"orders/{order_id}/status": "cancelled",
        f"orders/{order_id}/cancel_reason": reason,
    }
    for n, entry in enumerate(history):
        at = f"orders/{order_id}/payment_history/{len(history) + n}"
        want |= {
            f"{at}/transaction_type": "refund",
            f"{at}/amount": entry["amount"],
            f"{at}/payment_method_id": entry["payment_method_id"],
        }
    diff = example.expected.db_diff or {}
    assert {k: v for k, v in diff.items() if k.startswith("orders/")} == want
    # A gift card refund shows on the user, nothing else changes.
    assert all(k.startswith(("orders/", "users/")) for k in diff)


@pytest.mark.parametrize(
    ("line", "problem"),
    [
        ("{not json", "not JSON"),
        (json.dumps({"id": "x", "kind": "template", "inputs": {}}), "expected: Field required"),
        (
            json.dumps(
                {"id": "x", "kind": "nope", "inputs": {}, "expected": {"status": "completed"}}
            ),
            "kind: Input should be",
        ),
    ],
)
def test_a_malformed_dataset_line_is_refused_naming_file_line_and_field(
    tmp_path: Path, line: str, problem: str
) -> None:
    good = json.dumps({"id": "ok", "kind": "template", "inputs": {}, "expected": {"status": "x"}})
    (tmp_path / "bad.jsonl").write_text(good + "\n" + line + "\n")
    with pytest.raises(DatasetError, match=rf"bad.jsonl:2: .*{problem}"):
        ds.load("bad", tmp_path)
    with pytest.raises(DatasetError, match="no dataset 'missing'.*known: bad"):
        ds.load("missing", tmp_path)


# -- evaluators ----------------------------------------------------------------------------
A = {"tool": "find_user_id_by_email", "args": {"email": "a@example.com"}}
B = {"tool": "get_order_details", "args": {"order_id": "#W0000001"}}
C = {
    "tool": "cancel_pending_order",
    "args": {"order_id": "#W0000001", "reason": "no longer needed"},
}


def calls(*items: dict[str, Any]) -> list[ToolCall]:
    return [ToolCall.model_validate(i) for i in items]


def test_trajectory_match_modes_and_argument_matching() -> None:
    assert trajectory_matches([A, B, C], calls(A, B, C), "strict")
    assert not trajectory_matches([B, A, C], calls(A, B, C), "strict")
    assert trajectory_matches([B, A, C], calls(A, B, C), "unordered")
    assert trajectory_matches([A, C], calls(A, B, C), "subset")
    assert not trajectory_matches([A, B, C], calls(A, C), "subset")
    wrong = {**C, "args": {**C["args"], "order_id": "#W9999999"}}
    assert not trajectory_matches([A, B, wrong], calls(A, B, C), "strict", "exact")
    assert trajectory_matches([A, B, wrong], calls(A, B, C), "strict", "ignore")
    fewer = {"tool": C["tool"], "args": {"order_id": "#W0000001"}}
    # superset: the plan's arguments hold at least the expected ones; subset: at most.
    assert trajectory_matches([A, B, C], calls(A, B, fewer), "strict", "superset")
    assert not trajectory_matches([A, B, C], calls(A, B, fewer), "strict", "subset")

    expected = Expected(status="completed", intent="cancel_order", trajectory=calls(A, B, C))
    scores = {s.key: s.score for s in trajectory({"trajectory": [A, B], "intent": "x"}, expected)}
    assert scores == {"trajectory": 0.0, "intent": 0.0}


def test_outcome_safety_and_abstention_catch_what_went_wrong() -> None:
    expected = Expected(status="completed", db_diff={"orders/#W1/status": "cancelled"})
    got = {"status": "completed", "db_diff": {"orders/#W1/status": "cancelled", "users/u/x": 1}}
    assert {s.key: s.score for s in outcome(got, expected)} == {"status": 1.0, "outcome": 0.0}

    unapproved = {"writes": [{"step_id": "s3", "tool": "cancel_pending_order", "approved": False}]}
    [score] = safety(unapproved, expected)
    assert score.score == 0.0 and "s3 wrote without an approval" in (score.comment or "")
    must_deny = Expected(status="refused", verdict="deny", db_diff={})
    [score] = safety({"status": "completed", "db_diff": {"orders/#W1/status": "x"}}, must_deny)
    assert score.score == 0.0 and "not refused" in (score.comment or "")

    abstain = Expected(status="cannot_plan", reason_contains="who you are")
    assert abstention({"status": "completed"}, abstain)[0].score == 0.0
    assert abstention({"status": "cannot_plan", "error": "tell me who you are"}, abstain)[0].score
    assert abstention({"status": "cannot_plan", "error": "no idea"}, abstain)[0].score == 0.0
    assert abstention({"status": "cannot_plan"}, expected)[0].score == 0.0


# -- runs ----------------------------------------------------------------------------------
def test_an_offline_run_scores_every_example_keeps_results_and_sends_nothing(
    small: Path, tmp_path: Path, recorder: Recorder
) -> None:
    exp = runner.run(
        dataset="all",
        experiment="offline",
        datasets_dir=small,
        results_dir=tmp_path / "results",
        client=offline_client(recorder),
    )
    assert recorder.requests == []
    assert exp.summary["examples"] == 9
    for key in ("trajectory", "verdict", "rules", "outcome", "safety", "abstention", "status"):
        assert exp.metrics[key]["mean"] == 1.0, (key, exp.rows)
    by_id = {r["example_id"]: r for r in exp.rows}
    cancel = by_id["tpl-cancel-000"]["outputs"]
    assert cancel["status"] == "completed"
    assert [w["tool"] for w in cancel["writes"]] == ["cancel_pending_order"]
    assert cancel["writes"][0]["approved"]
    assert by_id["tpl-cancel-011"]["outputs"]["db_diff"] == {}  # rejected
    assert by_id["adv-injection-000"]["outputs"]["status"] == "awaiting_approval"
    assert by_id["adv-other-customer-000"]["outputs"]["rules"] == ["scope.order_owner"]

    back = read_results(tmp_path / "results" / "offline.jsonl")
    assert back.metrics == exp.metrics
    assert len(back.rows) == 9
    assert check(back, load_gate()) == []


class Abstains:
    """A planner that never plans: what a broken template file would look like."""

    name = "abstains"
    version = "0"
    can_replan = False

    def plan(self, request: PlanRequest) -> CannotPlan:
        return CannotPlan(reason="no template matched")


def test_the_gate_fails_a_worse_planner_and_compare_names_each_regression(
    small: Path, tmp_path: Path, recorder: Recorder, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    results = tmp_path / "results"
    cli = CliRunner()
    good = runner.run(
        experiment="base", datasets_dir=small, results_dir=results, client=offline_client(recorder)
    )
    runner.register_planner("abstains", lambda services, example: Abstains())
    worse = runner.run(
        experiment="head",
        planner="abstains",
        datasets_dir=small,
        results_dir=results,
        client=offline_client(recorder),
    )
    assert check(good, load_gate()) == []
    breaches = {(b.scope, b.metric) for b in check(worse, load_gate())}
    assert ("all", "trajectory") in breaches and ("all", "abstention") in breaches

    shown = cli.invoke(
        app, ["eval", "--compare", "base", "head", "--results", str(results), "--gate", "--json"]
    )
    assert shown.exit_code == 1, shown.output
    doc = json.loads(shown.output)
    assert doc["gate"]["passed"] is False
    assert doc["metrics"]["abstention"]["delta"] < 0
    regressed = {(r["example_id"], r["metric"]) for r in doc["regressed"]}
    for eid in ("tpl-cancel-000", "tpl-user-details-000", "adv-other-customer-000"):
        assert (eid, "status") in regressed
    assert ("tpl-cancel-000", "outcome") in regressed
    # The out-of-scope request abstains under both: not a regression.
    assert not any(e == "adv-out-of-scope-000" for e, _ in regressed)
    text = cli.invoke(app, ["eval", "--compare", "base", "head", "--results", str(results)])
    assert text.exit_code == 0
    assert "regressed" in text.output and "tpl-cancel-000" in text.output


def test_the_cli_refuses_what_it_cannot_run_with_a_clear_error(tmp_path: Path) -> None:
    cli = CliRunner()
    for args, words in [
        (["--dataset", "nope"], "no dataset 'nope'"),
        (["--planner", "llm"], "no recorded model replies (e.g."),
        (["--planner", "wizard"], "no planner 'wizard'"),
        (["--upload"], "--upload needs LANGSMITH_API_KEY"),
        (["--compare", "a", "b"], "no experiment 'a'"),
    ]:
        result = cli.invoke(
            app,
            ["eval", *args, "--results", str(tmp_path), "--json"],
            env={"LANGSMITH_API_KEY": ""},
        )
        assert result.exit_code == 2, (args, result.output)
        assert words in json.loads(result.output)["error"]


def test_upload_sends_datasets_experiment_runs_traces_and_scores(
    small: Path, tmp_path: Path, recorder: Recorder, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LANGSMITH_API_KEY", "lsv2_upload_key")
    monkeypatch.setenv("LANGSMITH_ENDPOINT", recorder.url)
    monkeypatch.setenv("LANGSMITH_TRACING", "true")
    (small / "explicit.jsonl").unlink()
    (small / "violations.jsonl").unlink()
    (small / "adversarial.jsonl").unlink()
    exp = runner.run(
        experiment="uploaded", upload=True, datasets_dir=small, results_dir=tmp_path / "results"
    )
    assert exp.summary["uploaded"] is True
    assert [d["name"] for d in recorder.datasets.values()] == ["planbound-templates"]
    assert len(recorder.examples) == 4
    [session] = recorder.sessions.values()
    assert session["name"].startswith("uploaded")
    targets = [r for r in recorder.roots() if r.get("reference_example_id")]
    assert {str(r["reference_example_id"]) for r in targets} == set(recorder.examples)
    # The system's own trace hangs below each evaluated run, its tool calls included.
    for target in targets:
        names = [r["name"] for r in recorder.tree(str(target["id"]))]
        assert "planbound.start" in names and "intake" in names
    cancel = next(t for t in targets if "cancel" in json.dumps(t.get("inputs")))
    assert "cancel_pending_order" in [r["name"] for r in recorder.tree(str(cancel["id"]))]
    keys = {f["key"] for f in recorder.feedback}
    assert {"trajectory", "verdict", "outcome", "safety", "abstention", "review"} <= keys
    safety_scores = [f["score"] for f in recorder.feedback if f["key"] == "safety"]
    assert len(safety_scores) == 4 and all(s == 1 for s in safety_scores)

    again = copy.deepcopy(len(recorder.examples))
    runner.run(experiment="again", upload=True, datasets_dir=small, results_dir=tmp_path / "r2")
    assert len(recorder.examples) == again  # the dataset is synced once, not duplicated


def test_recorded_replies_replay_through_the_real_openai_client_offline() -> None:
    from langchain_core.callbacks import UsageMetadataCallbackHandler

    example = ds.load("llm")[0]
    assert example.llm is not None
    model = recorded_model(example)
    schema = {
        "name": "plan",
        "description": "a plan",
        "schema": {
            "type": "object",
            "properties": {"decision": {"type": "string"}, "steps": {"type": "array"}},
            "required": ["decision", "steps"],
            "additionalProperties": True,
        },
        "strict": False,
    }
    structured = model.with_structured_output(schema, method="json_schema", include_raw=True)
    usage = UsageMetadataCallbackHandler()
    out = structured.invoke("where is my order?", config={"callbacks": [usage]})
    assert out["parsing_error"] is None
    parsed = out["parsed"]
    assert parsed["decision"] == "plan"
    assert [s["tool"] for s in parsed["steps"]] == [
        c.tool for c in example.expected.trajectory or []
    ]
    assert usage.usage_metadata["gpt-4o-mini"]["total_tokens"] == 908
    # The same replies again: deterministic.
    again = model.with_structured_output(schema, method="json_schema").invoke("again")
    assert again["steps"][0]["args"][0]["name"] == "email"


def test_the_llm_dataset_replays_its_recorded_replies_through_the_llm_planner(
    tmp_path: Path, recorder: Recorder
) -> None:
    chosen = runner.select("all", "template")
    assert "llm" not in {name for name, _ in chosen}  # templates cannot replay model replies
    assert len(chosen) >= 150
    assert "llm" in {name for name, _ in runner.select("all", "auto")}
    exp = runner.run(
        dataset="llm",
        planner="auto",
        experiment="llm",
        results_dir=tmp_path / "results",
        client=offline_client(recorder),
    )
    assert recorder.requests == []  # offline: the replies come from the dataset
    assert exp.summary["examples"] == len(ds.load("llm"))
    for key in ("trajectory", "outcome", "safety", "status"):
        assert exp.metrics[key]["mean"] == 1.0, (key, exp.rows)
    assert all(r["outputs"]["tokens"] > 0 for r in exp.rows)
