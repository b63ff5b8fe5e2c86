"""Commands on the Rego policy: explain a plan's verdict, run the policy's unit tests."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from graph.cli import render
from graph.cli.common import (
    HomeOpt,
    JsonOpt,
    UsageError,
    emit,
    guarded,
    home_runner,
    home_services,
)
from guards.policy import PolicyBundle, run_tests


def explain_cmd(
    plan_file: Annotated[Path, typer.Option("--plan", help="A plan document (JSON).")],
    actor: Annotated[
        str | None, typer.Option("--actor", help="Who asks (for approval rules).")
    ] = None,
    home: HomeOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Show, for every step, each policy rule that fired and why (nothing is run)."""

    def go() -> dict[str, Any]:
        if not plan_file.is_file():
            raise UsageError(f"plan file {plan_file} does not exist")
        try:
            document = json.loads(plan_file.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise UsageError(f"plan file {plan_file} is not JSON ({exc})") from exc
        return home_runner(home).explain(document, actor=actor)

    report = guarded(as_json, go)
    if as_json:
        emit(report)
    else:
        render.explain(report)


def test_cmd(
    policy_dir: Annotated[
        Path | None,
        typer.Option(
            "--dir", help="Policy directory (default: PLANBOUND_POLICY_DIR, the domain's)."
        ),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Run the policy's Rego unit tests (``*_test.rego``); exit 1 if any fails."""

    def load() -> PolicyBundle:
        if policy_dir is not None:
            return PolicyBundle.load(policy_dir)
        services = home_services(None)
        return PolicyBundle.load(services.settings.policy_dir or services.domain.policy_dir)

    bundle = guarded(as_json, load)
    results = guarded(as_json, lambda: run_tests(bundle))
    failed = [r for r in results if not r.passed]
    if as_json:
        emit(
            {
                "policy_version": bundle.version,
                "passed": len(results) - len(failed),
                "failed": len(failed),
                "tests": [r.__dict__ for r in results],
            }
        )
    else:
        render.policy_tests(bundle, results)
    if failed or not results:
        raise typer.Exit(1)
