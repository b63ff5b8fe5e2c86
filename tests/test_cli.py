"""The command line, in process, on a fresh data directory."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from graph.cli import app
from tools.retail import load_shipped, tau2_hash

ORDER = "#W2974929"
EMAIL = "fatima.anderson1447@example.com"


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return tmp_path / "home"


def cli(home: Path, *args: str) -> tuple[int, Any]:
    result = CliRunner().invoke(app, [*args, "--home", str(home), "--json"])
    lines = [line for line in result.stdout.splitlines() if line.strip()]
    assert len(lines) == 1, result.stdout  # exactly one JSON object
    return result.exit_code, json.loads(lines[0])


def test_seed_run_approve_export(home: Path, tmp_path: Path) -> None:
    code, seeded = cli(home, "seed")
    assert code == 0 and seeded["orders"] == 1000
    assert seeded["tau2_hash"] == tau2_hash(load_shipped())

    plan = tmp_path / "plan.json"
    plan.write_text(
        json.dumps(
            [
                {"name": "find_user_id_by_email", "arguments": {"email": EMAIL}},
                {"name": "get_order_details", "arguments": {"order_id": ORDER}},
                {
                    "name": "cancel_pending_order",
                    "arguments": {"order_id": ORDER, "reason": "ordered by mistake"},
                },
            ]
        )
    )
    code, run = cli(home, "run", "--plan", str(plan))
    assert code == 0
    assert set(run) >= {
        "thread_id",
        "decision_id",
        "status",
        "plan",
        "verdict",
        "pending",
        "results",
        "error",
    }
    assert run["status"] == "awaiting_approval"
    assert run["pending"][0]["step_id"] == "s3"
    thread = run["thread_id"]

    code, status = cli(home, "status", thread)
    assert code == 0 and status["status"] == "awaiting_approval"

    code, bad = cli(home, "approve", thread, "--all", "--approve")
    assert code == 2 and "--reviewer NAME is required" in bad["error"]
    code, bad = cli(home, "approve", thread, "--step", "s9", "--approve", "--reviewer", "ann")
    assert code == 2 and "'s9' is not awaiting review" in bad["error"]
    code, bad = cli(home, "approve", thread, "--payload", '{"decisions": [{"type": "maybe"}]}')
    assert code == 2 and "type must be one of" in bad["error"]
    assert cli(home, "status", thread)[1]["status"] == "awaiting_approval"

    code, done = cli(home, "approve", thread, "--all", "--approve", "--reviewer", "ann")
    assert code == 0 and done["status"] == "completed", done

    out = tmp_path / "state.json"
    code, exported = cli(home, "export", "--out", str(out))
    assert code == 0
    state = json.loads(out.read_text())
    assert state["orders"][ORDER]["status"] == "cancelled"
    assert state["orders"][ORDER]["cancel_reason"] == "ordered by mistake"
    assert exported["tau2_hash"] == tau2_hash(state) != seeded["tau2_hash"]

    code, hist = cli(home, "history", thread)
    assert code == 0 and len(hist["checkpoints"]) >= 8


def test_input_errors_exit_non_zero(home: Path, tmp_path: Path) -> None:
    code, out = cli(home, "run", "cancel something")
    assert code == 2 and "planbound seed" in out["error"]  # not seeded yet
    cli(home, "seed")
    code, out = cli(home, "run")
    assert code == 2 and "exactly one" in out["error"]
    code, out = cli(home, "run", "--plan", str(tmp_path / "missing.json"))
    assert code == 2 and "no such file" in out["error"]
    bad = tmp_path / "bad.json"
    bad.write_text('[{"tool": "get_order_details", "args": "x"}]')
    code, out = cli(home, "run", "--plan", str(bad))
    assert code == 2 and "steps[0].args" in out["error"]
    code, out = cli(home, "status", "no-such-thread")
    assert code == 2 and "no thread 'no-such-thread'" in out["error"]
    code, out = cli(home, "seed", "--from", str(bad))
    assert code == 2 and "missing" in out["error"]
