"""Human review of a plan: the interrupt's content, finding it again, checking an answer.

The approve node formats a review request in LangChain's human-in-the-loop schema; the CLI
and the server check an answer against the pending request with :func:`check_answer` before
the thread is touched, and the node applies it with the same functions.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from checkpoints.audit import AuditLog
from checkpoints.ledger import AlreadyDecided, Approvals
from graph import events
from graph.services import Services
from graph.state import Pins
from guards.errors import DecisionInvalid
from guards.judgement import (
    Approval,
    Decision,
    StepReview,
    approval_digest,
    bound_args,
    bound_problems,
)
from guards.limits import MAX_ANSWER_BYTES, MAX_NAME_CHARS, document_problem
from guards.plan import Plan, Step, has_ref
from guards.review import Identity, apply_edits, authorize, parse_answer
from tools.catalog import Catalog, ToolError

DECISIONS_ALLOWED = ["approve", "edit", "reject", "respond"]


def digest(step: Step, plan: Plan, pins: Pins, bound: dict[str, Any] | None = None) -> str:
    """The digest an approval of ``step`` in ``plan`` must carry under the run's pins.

    ``bound``: the resolved values of the step's references the approval was given for.
    """
    return approval_digest(step, plan.id, pins.catalog_version, pins.policy_version, bound)


def granted_steps(approvals: Iterable[Approval], plan: Plan, pins: Pins) -> set[str]:
    """Ids of the steps whose approval still matches the exact call in ``plan``."""
    return {
        a.step_id
        for a in approvals
        if a.digest == digest(plan.step(a.step_id), plan, pins, a.bound)
    }


def grant(
    decisions: Sequence[Decision | Approval],
    plan: Plan,
    pins: Pins,
    shown: Mapping[str, dict[str, Any] | None] | None = None,
) -> list[Approval]:
    """Approvals for the given decisions (or earlier grants), bound to ``plan``'s calls.

    A new decision is bound to the values ``shown`` holds for its step (what its references
    resolved to when it was reviewed); an earlier grant keeps its own.
    """
    out = []
    for d in decisions:
        step = plan.step(d.step_id)
        bound = d.bound if isinstance(d, Approval) else (shown or {}).get(d.step_id)
        out.append(
            Approval(
                step_id=d.step_id,
                digest=digest(step, plan, pins, bound),
                reviewer=d.reviewer,
                roles=d.roles,
                bound=bound,
            )
        )
    return out


def review_request(
    plan: Plan,
    pending: Sequence[StepReview],
    decision_id: str,
    pins: Pins,
    catalog: Catalog,
    problem: str | None,
) -> dict[str, Any]:
    """Format the interrupt value in LangChain's human-in-the-loop schema.

    A ``HITLRequest``: ``action_requests`` (``name``, ``args``, ``description``, plus the
    ``step_id`` and, for a step whose arguments hold references or selections, the
    ``resolved_args`` they resolved to when the plan was verified: an approval binds to
    those values, and the step is refused if it would run with others) and
    ``review_configs`` (``action_name``, ``allowed_decisions``, the tool's
    ``args_schema``), plus the ``decision_id`` and ``plan_id`` an answer names back, the
    pinned versions, and the problem with the last answer, if any.
    """
    requests, configs = [], []
    for review in pending:
        step = plan.step(review.step_id)
        action: dict[str, Any] = {
            "name": step.tool,
            "args": step.args,
            "description": f"Step {step.id}: {review.reason}."
            + (f" {step.description}" if step.description else ""),
            "step_id": step.id,
        }
        if review.resolved_args is not None:
            # What the references resolve to: the approval is for these values only.
            action["resolved_args"] = review.resolved_args
        requests.append(action)
        config: dict[str, Any] = {
            "action_name": step.tool,
            "allowed_decisions": list(DECISIONS_ALLOWED),
        }
        if catalog.get(step.tool) is not None:
            config["args_schema"] = catalog.args_schema(step.tool).model_json_schema()
        configs.append(config)
    value: dict[str, Any] = {
        "action_requests": requests,
        "review_configs": configs,
        "decision_id": decision_id,
        "plan_id": plan.id,
        "catalog_version": pins.catalog_version,
        "policy_version": pins.policy_version,
    }
    if problem:
        value["error"] = problem
    return value


def pending_request(interrupts: Iterable[Any]) -> dict[str, Any] | None:
    """Return the review request among a thread's pending interrupts, if any."""
    for intr in interrupts:
        value = getattr(intr, "value", None)
        if isinstance(value, dict) and "action_requests" in value:
            return value
    return None


def judge_answer(
    answer: Any,
    pending: Sequence[StepReview],
    plan: Plan,
    services: Services,
    actor: str | None,
    identity: Identity | None,
    *,
    decision_id: str | None = None,
    must_name: bool = False,
) -> tuple[list[Decision], Plan, dict[str, dict[str, Any] | None]]:
    """Parse an answer and authorise it against the calls that would actually run.

    The answer must be for the pending review: naming another ``decision_id`` or plan is
    refused (:class:`~guards.errors.ReviewChanged`), and with ``must_name`` so is naming
    neither.

    An edit is judged like a new plan: the edited plan goes through the verifier (contracts,
    then the policy on fresh facts), and each approving reviewer must satisfy the edited
    step's requirements (roles, the amount threshold, no self-approval of a high-risk call),
    not those of the call they replaced. A refused edit is a refused answer: the review is
    asked again and the original plan stays pending.

    Returns:
        The decisions, the plan they leave (the edited plan, or ``plan``), and per step
        the resolved values of its references the approval binds to: those of the pending
        review, or for an edited step those its edit resolved to when it was judged.

    Raises:
        ReviewChanged: the answer names another review than the pending one.
        DecisionInvalid: the answer is malformed, an edit is refused, or a reviewer may not
            approve a step.
    """
    decisions = parse_answer(
        answer, pending, plan, identity, decision_id=decision_id, must_name=must_name
    )
    edited = apply_edits(plan, decisions)
    reviews = list(pending)
    edits: dict[str, StepReview | None] = {}
    if edited is not plan:
        stores = services.stores
        judged = services.verifier.verify(edited, stores.domain, stores.lock, actor).verdict
        if judged.outcome == "deny":
            raise DecisionInvalid([f"the edited plan is refused: {r}" for r in judged.reasons])
        now = {r.step_id: r for r in judged.reviews}
        reviews = [now.get(r.step_id, r) for r in pending]
        edits = {d.step_id: now.get(d.step_id) for d in decisions if d.type == "edit"}
    authorize(decisions, reviews, edited, services.catalog, services.policy, actor)
    shown = {r.step_id: r.resolved_args for r in reviews}
    shown |= {sid: r.resolved_args if r is not None else None for sid, r in edits.items()}
    return decisions, edited, shown


def still_authorised(
    approval: Approval, review: StepReview, plan: Plan, services: Services, actor: str | None
) -> list[str]:
    """Why an approval no longer satisfies its step's current requirements (empty if it does)."""
    entry = services.catalog.get(plan.step(approval.step_id).tool)
    risk = entry.spec.risk if entry is not None else "high"
    return services.policy.approval_denied(review, risk, approval.reviewer, approval.roles, actor)


def check_answer(
    answer: Any,
    request: Mapping[str, Any],
    plan: Plan,
    services: Services,
    *,
    reviews: Iterable[StepReview] = (),
    actor: str | None = None,
    identity: Identity | None = None,
    keyed: bool = False,
) -> list[Decision]:
    """Validate an answer to a pending review request before the thread is touched.

    The answer names the review it answers (the request's ``decision_id`` and ``plan_id``),
    unless it was sent keyed by the request's interrupt id (``keyed``), which names it.

    Args:
        answer: The resume payload, as a reviewer sent it.
        request: The pending interrupt value (``action_requests`` ...).
        plan: The plan under review.
        services: The run's services (catalog, policy, verifier, stores).
        reviews: The verdict's reviews (who may approve what).
        actor: Who asked for the run (a requester may not approve their own high-risk step).
        identity: The authenticated reviewer, when the answer comes through the server.
        keyed: The answer came keyed by the pending interrupt's id.

    Raises:
        ReviewChanged: the answer names another decision or plan than the pending one.
        DecisionInvalid: the answer is malformed or names no review, the reviewer may not
            approve a step, or an edit is refused.
    """
    known = {r.step_id: r for r in reviews}
    pending = [
        known.get(a["step_id"]) or StepReview(step_id=a["step_id"], reason=a.get("description", ""))
        for a in request["action_requests"]
    ]
    decision_id = request.get("decision_id")
    try:
        decisions, _, _ = judge_answer(
            answer,
            pending,
            plan,
            services,
            actor,
            identity,
            decision_id=str(decision_id) if decision_id is not None else None,
            must_name=not keyed,
        )
    except DecisionInvalid:
        events.answer_refused()
        raise
    return decisions


def _journal_entry(
    answer: Any, reviewer: str, roles: Sequence[str], checkpoint_id: str, outcome: str, detail: str
) -> dict[str, Any]:
    too_big = document_problem(answer, "the answer", MAX_ANSWER_BYTES)
    if too_big is not None:  # kept as what it was, never as the oversized document itself
        answer = {"not kept": too_big}
    reviewer = reviewer[:MAX_NAME_CHARS]
    roles = [r[:MAX_NAME_CHARS] for r in list(roles)[:16]]
    return {
        "checkpoint_id": checkpoint_id,
        "reviewer": reviewer,
        "roles": sorted(roles),
        "outcome": outcome,
        "detail": detail,
        "answer": answer,
    }


def decide_answer(
    services: Services,
    *,
    thread_id: str,
    checkpoint_id: str,
    decision_id: str,
    answer: Any,
    request: Mapping[str, Any],
    plan: Plan,
    reviews: Iterable[StepReview],
    actor: str | None,
    identity: Identity | None = None,
    still_waiting: Callable[[], bool] | None = None,
    lease_s: float | None = None,
    keyed: bool = False,
) -> list[Decision]:
    """Check an answer and claim the review for it; every answer is kept in the journal.

    The answer is validated against the pending request (:func:`check_answer`); a refused one
    is journalled as ``refused``. A valid one then claims the review pending at
    ``checkpoint_id``: the first claim wins and is journalled as ``accepted`` in the same
    transaction; a later one is journalled as ``lost`` and refused with "already decided".
    ``keyed`` says the answer came keyed by the interrupt's id (see :func:`check_answer`).

    Raises:
        DecisionInvalid: the answer is malformed or not authorised.
        AlreadyDecided: another answer already won this review.
    """
    reviewer = identity.id if identity is not None else _named_reviewer(answer)
    roles: Sequence[str] = identity.roles if identity is not None else _named_roles(answer)
    stores = services.stores
    journal = AuditLog(stores.domain)

    def keep(outcome: str, detail: str) -> None:
        entry = _journal_entry(answer, reviewer, roles, checkpoint_id, outcome, detail)
        with stores.lock:
            journal.append_now(decision_id, "reviews", "answer", entry, thread_id)

    try:
        decisions = check_answer(
            answer,
            request,
            plan,
            services,
            reviews=reviews,
            actor=actor,
            identity=identity,
            keyed=keyed,
        )
    except DecisionInvalid as exc:
        keep("refused", "; ".join(exc.problems))
        raise
    if decisions:  # the reviewer and roles as validated (identity, or the local default role)
        reviewer, roles = decisions[0].reviewer, decisions[0].roles
    accepted = _journal_entry(answer, reviewer, roles, checkpoint_id, "accepted", "")
    try:
        with stores.lock:
            Approvals(stores.domain).claim(
                thread_id,
                checkpoint_id,
                reviewer,
                still_waiting=still_waiting,
                lease_s=lease_s,
                record=lambda: journal.append(
                    decision_id, "reviews", "answer", accepted, thread_id
                ),
            )
    except AlreadyDecided as exc:
        keep("lost", str(exc))
        raise
    return decisions


def _named_reviewer(answer: Any) -> str:
    name = answer.get("reviewer") if isinstance(answer, Mapping) else None
    return name if isinstance(name, str) and name.strip() else "unknown"


def _named_roles(answer: Any) -> list[str]:
    if not isinstance(answer, Mapping):
        return []
    roles = answer.get("roles", answer.get("role"))
    if isinstance(roles, str):
        return [roles]
    return [r for r in roles if isinstance(r, str)] if isinstance(roles, list) else []


def preview(
    services: Services,
    plan: Plan,
    step_ids: Sequence[str],
    bound: Mapping[str, dict[str, Any] | None] | None = None,
) -> dict[str, Any]:
    """Show a reviewer what each pending step would do, from the data as it is now.

    ``bound`` holds, per step, the values its references resolved to when the plan was
    verified (the review's ``resolved_args``): those are the values an approval is for,
    so they are the ones shown, with a note when the data now resolves them otherwise.

    For each step: the references in its arguments with the values they resolve to now
    (the plan's lookups are run read-only, as the verifier does: ``read_now``), and, for a
    write tool whose effect is undoable from recorded before-images (it has a compensator),
    what it would change, ``before`` → ``after`` per field: the tool is run on the current
    data in a transaction that is always rolled back. Each step is previewed alone, on the
    data as it is now, not after the plan's earlier writes. Nothing here is an approval or is
    kept: the step is judged again, on fresh facts, just before it runs.

    Returns:
        ``{step_id: {"refs": [...], "changes": [...] | None, "note": str | None}}``.
    """
    from guards.facts import resolve_facts  # the verifier's own read-only resolution

    stores = services.stores
    facts = resolve_facts(plan, services.catalog, services.domain, stores.domain, stores.lock)
    found: dict[str, Any] = {}
    for step_id in step_ids:
        step = plan.step(step_id)
        record = facts["steps"].get(step_id) or {}
        resolved = record.get("args")
        approved = (bound or {}).get(step_id)
        refs = []
        for key, given in step.args.items():
            if not has_ref(given):
                continue
            value = resolved.get(key) if isinstance(resolved, Mapping) else None
            shown = approved.get(key) if approved is not None else value
            refs.append(
                {"arg": key, "ref": given, "value": shown, "read_now": resolved is not None}
            )
        entry: dict[str, Any] = {"refs": refs, "changes": None, "note": None}
        moved = bound_problems(step_id, approved, bound_args(step, resolved) or {})
        if approved is not None and moved:
            entry["note"] = "the data changed since the plan was verified: " + "; ".join(moved)
        elif record.get("unresolved"):
            entry["note"] = "; ".join(str(u) for u in record["unresolved"])
        elif isinstance(resolved, Mapping):
            entry["changes"], entry["note"] = _dry_run(services, step.tool, dict(resolved))
        found[step_id] = entry
    return found


def _dry_run(
    services: Services, tool: str, args: dict[str, Any]
) -> tuple[list[dict[str, Any]] | None, str | None]:
    """Run a write tool on the current data and roll it back: the fields it would change."""
    entry = services.catalog.get(tool)
    if entry is None or entry.spec.effect != "write" or entry.spec.compensator is None:
        return None, None
    stores = services.stores
    if stores.readonly:
        return None, "what it changes: `planbound status THREAD --changes` tries it (rolled back)"
    conn = stores.domain
    with stores.lock:
        try:
            conn.begin(write=True)
        except conn.errors:
            return None, "changes not previewed: the database is read-only here"
        try:
            store = services.store(conn)
            entry.tool.invoke({**args, "db": store})
            changes = store.take_changes()
        except (ToolError, ValueError) as exc:
            message = exc.message if isinstance(exc, ToolError) else str(exc).splitlines()[0]
            return None, f"it would fail now: {message}"
        except conn.errors:
            return None, "changes not previewed: the database refused the trial write"
        finally:
            conn.rollback()
    return [_field_changes(c) for c in changes], None


def _field_changes(change: Any) -> dict[str, Any]:
    """One record's change as the fields that differ, ``before`` → ``after``."""
    before = json.loads(change.before) if change.before else None
    after = json.loads(change.after) if change.after else None
    fields: dict[str, Any] = {}
    if isinstance(before, dict) and isinstance(after, dict):
        for key in sorted(set(before) | set(after)):
            if before.get(key) != after.get(key):
                fields[key] = {"before": before.get(key), "after": after.get(key)}
    else:
        fields["record"] = {"before": before, "after": after}
    return {"table": change.table, "key": change.key, "fields": fields}
