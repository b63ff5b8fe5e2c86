"""What a planner is told about a refused plan: rule ids, step ids and field paths.

A verdict's reasons quote the facts a rule read (an order's status, a user id, a tool's
error message): the records a plan touches, which a prompt injection can write into. A
planner that re-plans from them would read data as instructions. :func:`planner_findings`
builds its findings from the structure of the judgement only: a contract finding's step, field
and message (built from the plan and the catalog, never from the domain), or a policy rule's
id, its step, and the rule's fixed description. Budgets spent by the planner itself are
findings too (:func:`budget_findings`).
"""

from __future__ import annotations

from collections.abc import Mapping

from guards.verifier import Judgement


def planner_findings(judgement: Judgement, rules: Mapping[str, str]) -> list[str]:
    """The findings of a deny, for a planner to re-plan from.

    Args:
        judgement: The verifier's judgement (a deny).
        rules: Each policy rule id with its description in words (the domain's taxonomy).

    Returns:
        One finding per contract violation or policy denial; nothing read from the domain.
    """
    if judgement.findings:
        return [f"contract: {finding}" for finding in judgement.findings]
    found = []
    for violation in judgement.decision.deny:
        where = "the plan" if violation.step == "plan" else f"step {violation.step}"
        text = rules.get(violation.rule, "see the rules above")
        found.append(f"{violation.rule}: {where}: {text}{_selection_hint(violation.reason)}")
    if not found and judgement.verdict.outcome == "deny":
        found.append("policy: the plan was refused (the policy gave no rule)")
    return list(dict.fromkeys(found))


def _selection_hint(reason: str) -> str:
    """Which of two fixed hints fits a selection that did not resolve (none otherwise).

    The reason itself quotes matched values, so only the kind of failure is passed on.
    """
    if "matched nothing" in reason:
        return " (a selection matched nothing: loosen it, or check the fields it compares)"
    if "it needs exactly one" in reason:
        return " (a selection matched several values where one is wanted: narrow it)"
    return ""


def budget_findings(
    tokens: int, max_tokens: int, cost: float, max_cost: float, currency: str = "USD"
) -> list[str]:
    """Findings for a planner that spent more than its run's budget of tokens or cost."""
    found = []
    if tokens > max_tokens:
        found.append(
            f"budget.tokens: planning used {tokens} tokens; the run's budget is {max_tokens}"
        )
    if cost > max_cost:
        found.append(
            f"budget.cost: planning cost {cost:.6g} {currency}; the run's budget is "
            f"{max_cost:g} {currency}"
        )
    return found
