"""Start, resume and inspect runs on a durable checkpointer (used by the CLI and tests)."""

from __future__ import annotations

import contextlib
import sqlite3
import sys
import uuid
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import replace
from typing import Any

from langchain_core.runnables import RunnableConfig
from langgraph.types import Command, StateSnapshot

from checkpoints.factory import Stores
from checkpoints.ledger import AlreadyDecided, Approvals, Ledger
from graph.context import Context
from graph.engine import compensate_step
from graph.graph import build_graph
from graph.nodes import screen_input
from graph.planners.explicit import parse_plan_document
from graph.services import catalog, policy
from graph.state import InputState
from guards.contracts import Budget, check_plan
from guards.errors import DecisionInvalid, GuardError
from guards.facts import facts_hash, resolve_facts
from guards.judgement import Decision, StepReview
from guards.plan import Plan, ancestors
from guards.policy import to_verdict
from guards.review import Identity, apply_edits, authorize, parse_answer
from tools.retail import RetailDB

FINAL = ("completed", "refused", "rejected", "failed", "rolled_back", "cannot_plan")


class RunError(GuardError):
    """A run could not be started or resumed as asked (unknown thread, wrong state)."""


@contextlib.contextmanager
def store_failure(thread_id: str) -> Iterator[None]:
    """Report a database that failed mid-run (lost connection, server gone) as a RunError.

    The thread stays at its last checkpoint and the ledger holds every step that committed,
    so the message says how to continue instead of dumping a driver traceback.
    """
    try:
        yield
    except Exception as exc:
        psycopg = sys.modules.get("psycopg")  # only a run on PostgreSQL can raise its errors
        lost = isinstance(exc, sqlite3.OperationalError) or (
            psycopg is not None and isinstance(exc, psycopg.OperationalError)
        )
        if not lost:
            raise
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise RunError(
            f"thread {thread_id} stopped: the database failed ({first}); it stays at its last"
            f" checkpoint: `planbound status {thread_id}` shows where, `planbound resume"
            f" {thread_id}` (or `approve`, if it awaits a review) continues it"
        ) from exc


def domain_seeded(stores: Stores) -> bool:
    """Return whether the domain database has been seeded."""
    with stores.lock:
        return RetailDB(stores.domain).is_seeded()


class Runner:
    """Drives the graph for one set of stores."""

    def __init__(self, stores: Stores, context: Context | None = None) -> None:
        self.stores = stores
        self.context = context or Context(home=str(stores.home))
        self.context.stores = stores
        self.graph = build_graph(checkpointer=stores.checkpointer)

    def _config(self, thread_id: str) -> RunnableConfig:
        return {"configurable": {"thread_id": thread_id}}

    def _require_seeded(self) -> None:
        if not domain_seeded(self.stores):
            raise RunError(
                f"the domain database at {self.stores.home / 'domain.sqlite'} is empty; "
                "run `planbound seed` first"
            )

    def start(
        self,
        *,
        request: str | None = None,
        explicit_plan: Any = None,
        thread_id: str | None = None,
        actor: str | None = None,
    ) -> dict[str, Any]:
        """Start a run and return its outcome (paused or final).

        Raises:
            InputRejected: the input is malformed.
            PlanInvalid: the explicit plan document is malformed.
            RunError: the thread is waiting for a review, the domain is not seeded, or the
                database failed mid-run.
        """
        payload: InputState = {}
        if request is not None:
            payload["request"] = request
        if explicit_plan is not None:
            payload["explicit_plan"] = explicit_plan
        if actor is not None:
            payload["actor"] = actor
        screen_input(payload)
        if explicit_plan is not None:
            parse_plan_document(explicit_plan)
        self._require_seeded()
        thread_id = thread_id or uuid.uuid4().hex
        snapshot = self.graph.get_state(self._config(thread_id))
        if snapshot.next:
            raise RunError(
                f"thread {thread_id} has a run in progress (waiting at {', '.join(snapshot.next)});"
                " answer it with `planbound approve` or use another thread"
            )
        with store_failure(thread_id):
            self.graph.invoke(
                payload, self._config(thread_id), context=self.context, durability="sync"
            )
            return self.outcome(thread_id)

    def resume(self, thread_id: str, answer: Any) -> dict[str, Any]:
        """Answer a pending review; the answer is validated before the thread is touched.

        Raises:
            RunError: unknown thread, nothing is awaiting review, the review was already
                decided, or the database failed mid-run.
            DecisionInvalid: the answer is malformed or an edit breaks the plan's contracts.
        """
        snapshot = self._snapshot(thread_id)
        request = _pending_request(snapshot)
        if request is None:
            raise RunError(f"thread {thread_id} is not awaiting approval")
        plan = snapshot.values.get("plan")
        if not isinstance(plan, Plan):
            raise RunError(f"thread {thread_id} has no plan")
        verdict = snapshot.values.get("verdict")
        check_answer(
            answer,
            request,
            plan,
            max_steps=self.context.max_steps,
            reviews=verdict.reviews if verdict is not None else (),
            actor=snapshot.values.get("actor"),
        )
        self._require_seeded()
        # One answer per pending review, across processes: the first claim wins. A claim
        # whose process died before its answer moved the thread on is taken over.
        checkpoint_id = str(snapshot.config["configurable"].get("checkpoint_id"))
        reviewer = answer.get("reviewer") if isinstance(answer, Mapping) else None
        approvals = Approvals(self.stores.domain)
        try:
            with self.stores.lock:
                approvals.claim(
                    thread_id,
                    checkpoint_id,
                    str(reviewer or "unknown"),
                    still_waiting=lambda: self._waiting_at(thread_id, checkpoint_id),
                )
        except AlreadyDecided as exc:
            raise RunError(str(exc)) from None
        try:
            with store_failure(thread_id):
                self.graph.invoke(
                    Command(resume=answer),
                    self._config(thread_id),
                    context=self.context,
                    durability="sync",
                )
        except BaseException:
            # Give the claim back if nothing was applied; if the store cannot tell (a lost
            # connection), keep the original error: the claim is taken over later anyway.
            with contextlib.suppress(Exception):
                if self._waiting_at(thread_id, checkpoint_id):
                    with self.stores.lock:
                        approvals.release(thread_id, checkpoint_id)
            raise
        finally:
            with self.stores.lock:
                approvals.end_claim(thread_id, checkpoint_id)
        return self.outcome(thread_id)

    def proceed(self, thread_id: str) -> dict[str, Any]:
        """Continue a run that stopped mid-way (crash, lost connection) from its last checkpoint.

        Steps already in the ledger are not run again: their recorded outcome is reused.

        Raises:
            RunError: unknown thread, a thread waiting for a review, one that is finished, or
                the database failed mid-run.
        """
        snapshot = self._snapshot(thread_id)
        if _pending_request(snapshot) is not None:
            raise RunError(
                f"thread {thread_id} is awaiting approval; answer it with `planbound approve`"
            )
        if not snapshot.next:
            raise RunError(
                f"thread {thread_id} is finished ({snapshot.values.get('status')}); "
                "nothing to resume"
            )
        self._require_seeded()
        with store_failure(thread_id):
            self.graph.invoke(
                None, self._config(thread_id), context=self.context, durability="sync"
            )
            return self.outcome(thread_id)

    def explain(self, document: Any, actor: str | None = None) -> dict[str, Any]:
        """Judge a plan document without running anything; say which rule fired and why.

        Raises:
            PlanInvalid: the document is not a plan.
            RunError: the domain is not seeded (facts cannot be read).
        """
        plan = parse_plan_document(document)
        self._require_seeded()
        cat, pol = catalog(), policy()
        findings = [str(f) for f in check_plan(plan, cat, Budget(max_steps=self.context.max_steps))]
        facts = resolve_facts(plan, cat, self.stores.domain, self.stores.lock)
        decision = pol.decide(pol.input_for(plan, cat, facts, ancestors(plan), actor))
        verdict = to_verdict(decision, plan, cat.version, pol.version, facts_hash(facts))
        steps = []
        for step in plan.steps:
            deny = [
                {"rule": v.rule, "reason": v.reason}
                for v in decision.deny
                if v.step in (step.id, "plan")
            ]
            asks = [
                {"rule": r.rule, "reason": r.reason, "roles": list(r.roles)}
                for r in decision.needs_approval
                if r.step == step.id
            ]
            steps.append(
                {
                    "step": step.id,
                    "tool": step.tool,
                    "args": step.args,
                    "resolved_args": facts["steps"][step.id]["args"],
                    "outcome": "deny" if deny else "needs_approval" if asks else "allow",
                    "deny": deny,
                    "needs_approval": asks,
                }
            )
        return {
            "plan_id": plan.id,
            "outcome": "deny" if findings else verdict.outcome,
            "contracts": findings,
            "policy_version": pol.version,
            "catalog_version": cat.version,
            "facts_hash": verdict.facts_hash,
            "steps": steps,
        }

    def _waiting_at(self, thread_id: str, checkpoint_id: str) -> bool:
        """Whether the thread's latest checkpoint is ``checkpoint_id``, awaiting a review."""
        snapshot = self.graph.get_state(self._config(thread_id))
        latest = snapshot.config["configurable"].get("checkpoint_id")
        return latest == checkpoint_id and _pending_request(snapshot) is not None

    def _snapshot(self, thread_id: str) -> StateSnapshot:
        snapshot = self.graph.get_state(self._config(thread_id))
        if snapshot.created_at is None:
            raise RunError(f"no thread {thread_id!r} in {self.stores.home}")
        return snapshot

    def outcome(self, thread_id: str) -> dict[str, Any]:
        """Return the one-object summary of a thread's latest state."""
        snapshot = self._snapshot(thread_id)
        values = snapshot.values
        request = _pending_request(snapshot)
        plan = values.get("plan")
        verdict = values.get("verdict")
        pending = []
        if request is not None:
            reasons = {r.step_id: r.reason for r in (verdict.reviews if verdict else [])}
            pending = [
                {
                    "step_id": a["step_id"],
                    "tool": a["name"],
                    "args": a["arguments"],
                    "reason": reasons.get(a["step_id"], a.get("description", "")),
                }
                for a in request["action_requests"]
            ]
        status = "awaiting_approval" if request is not None else values.get("status")
        results = values.get("results") or {}
        return {
            "thread_id": thread_id,
            "decision_id": values.get("decision_id"),
            "status": status,
            "plan": plan.model_dump(mode="json") if plan is not None else None,
            "verdict": verdict.model_dump(mode="json") if verdict is not None else None,
            "pending": pending,
            "results": [
                {
                    "step_id": r.step_id,
                    "tool": r.tool,
                    "ok": r.ok,
                    **({"output": r.output} if r.ok else {"error": r.error}),
                    **({"output_ref": r.output_ref} if r.output_ref else {}),
                    "attempts": r.attempts,
                    "compensated": r.compensated,
                }
                for r in results.values()
            ],
            "compensation": values.get("compensation") or [],
            "review_error": request.get("error") if request is not None else None,
            "error": values.get("error"),
        }

    def history(self, thread_id: str) -> Iterator[dict[str, Any]]:
        """Yield the thread's checkpoints, newest first, with the ledger entries each covers."""
        self._snapshot(thread_id)
        ledgers: dict[str, dict[str, str]] = {}
        for snap in self.graph.get_state_history(self._config(thread_id)):
            meta = snap.metadata or {}
            decision_id = snap.values.get("decision_id")
            if decision_id and decision_id not in ledgers:
                with self.stores.lock:
                    rows = Ledger(self.stores.domain).rows(decision_id)
                ledgers[decision_id] = {r.step_id: r.status for r in rows}
            done = sorted((snap.values.get("results") or {}).keys())
            statuses = ledgers.get(decision_id or "", {})
            yield {
                "checkpoint_id": snap.config["configurable"].get("checkpoint_id"),
                "step": meta.get("step"),
                "source": meta.get("source"),
                "created_at": snap.created_at,
                "next": list(snap.next),
                "status": snap.values.get("status"),
                "steps_done": done,
                "ledger": {sid: statuses.get(sid, "missing") for sid in done},
                "interrupted": bool(snap.interrupts),
            }

    def _at(self, thread_id: str, checkpoint_id: str) -> tuple[RunnableConfig, StateSnapshot]:
        config: RunnableConfig = {
            "configurable": {
                "thread_id": thread_id,
                "checkpoint_ns": "",
                "checkpoint_id": checkpoint_id,
            }
        }
        snap = self.graph.get_state(config)
        if snap.created_at is None:
            raise RunError(f"thread {thread_id} has no checkpoint {checkpoint_id!r}")
        return config, snap

    def replay(self, thread_id: str, checkpoint_id: str, live: bool = False) -> dict[str, Any]:
        """Re-run a thread from one of its checkpoints.

        Safe mode (the default): steps with an outcome in the ledger serve it and no write
        tool is called; the replay stops at the first write step that never ran. Live mode:
        approvals are dropped and asked for again, then steps not in the ledger run for real.

        Raises:
            RunError: unknown thread or checkpoint.
        """
        self._snapshot(thread_id)
        config, snap = self._at(thread_id, checkpoint_id)
        self._require_seeded()
        verdict = snap.values.get("verdict")
        if live and verdict is not None and verdict.outcome == "needs_approval":
            # Fork as if verify had just decided, without approvals: approve asks again.
            config = self.graph.update_state(
                config, {"approvals": [], "status": "verified"}, as_node="verify"
            )
        context = replace(self.context, replay="live" if live else "safe")
        self.graph.invoke(None, config, context=context, durability="sync")
        return self.outcome(thread_id)

    def rollback(self, thread_id: str, checkpoint_id: str) -> dict[str, Any]:
        """Undo every write applied after ``checkpoint_id``, newest first, then fork back to it.

        Each undo restores the before-images of the records the step changed, in one
        transaction recorded in the ledger (``compensated``), only if those records were not
        changed since; a conflict stops the rollback and is reported, and the thread is not
        moved. Writes without a compensator are reported as irreversible.

        Raises:
            RunError: unknown thread or checkpoint.
        """
        latest = self._snapshot(thread_id)
        _, target = self._at(thread_id, checkpoint_id)
        decision_id = latest.values.get("decision_id")
        kept = set()
        if target.values.get("decision_id") == decision_id:
            kept = {
                sid for sid, r in (target.values.get("results") or {}).items() if not r.compensated
            }
        cat = catalog()
        with self.stores.lock:
            rows = Ledger(self.stores.domain).rows(decision_id) if decision_id else []
        applied = [
            r
            for r in rows
            if r.status == "succeeded"
            and r.step_id not in kept
            and (entry := cat.get(r.tool)) is not None
            and entry.spec.effect == "write"
        ]
        undone, irreversible, conflicts = [], [], []
        for row in reversed(applied):
            spec = cat.entries[row.tool].spec
            if spec.compensator is None:
                irreversible.append(f"{row.step_id}: {row.tool} cannot be undone")
                continue
            done, note = compensate_step(
                self.stores.domain, self.stores.lock, row.decision_id, row.step_id
            )
            if not done:
                conflicts.append(note)
                break
            undone.append(note)
        forked = None
        if not conflicts:
            config: RunnableConfig = {
                "configurable": {"thread_id": thread_id, "checkpoint_id": checkpoint_id}
            }
            fork = self.graph.update_state(config, None, as_node="__copy__")
            forked = fork["configurable"].get("checkpoint_id")
        return {
            "thread_id": thread_id,
            "decision_id": decision_id,
            "status": "conflict" if conflicts else "rolled_back",
            "to_checkpoint": checkpoint_id,
            "forked_checkpoint": forked,
            "undone": undone,
            "irreversible": irreversible,
            "conflicts": conflicts,
        }


def check_answer(
    answer: Any,
    request: Mapping[str, Any],
    plan: Plan,
    *,
    max_steps: int,
    reviews: Iterable[StepReview] = (),
    actor: str | None = None,
    identity: Identity | None = None,
) -> list[Decision]:
    """Validate an answer to a pending review request before the thread is touched.

    Args:
        answer: The resume payload, as a reviewer sent it.
        request: The pending interrupt value (``action_requests`` ...).
        plan: The plan under review.
        max_steps: The run's step budget, for re-checking edited plans.
        reviews: The verdict's reviews (who may approve what).
        actor: Who asked for the run (a requester may not approve their own high-risk step).
        identity: The authenticated reviewer, when the answer comes through the server.

    Raises:
        DecisionInvalid: the answer is malformed, the reviewer may not approve a step, or an
            edit breaks the plan's contracts.
    """
    known = {r.step_id: r for r in reviews}
    pending = [
        known.get(a["step_id"]) or StepReview(step_id=a["step_id"], reason=a.get("description", ""))
        for a in request["action_requests"]
    ]
    decisions = parse_answer(answer, pending, plan, identity)
    authorize(decisions, pending, plan, catalog(), policy(), actor)
    edited = apply_edits(plan, decisions)
    if edited is not plan:
        findings = check_plan(edited, catalog(), Budget(max_steps=max_steps))
        if findings:
            raise DecisionInvalid([f"the edited plan breaks its contract: {f}" for f in findings])
    return decisions


def pending_request(interrupts: Iterable[Any]) -> dict[str, Any] | None:
    """Return the review request among a thread's pending interrupts, if any."""
    for intr in interrupts:
        value = getattr(intr, "value", None)
        if isinstance(value, dict) and "action_requests" in value:
            return value
    return None


def _pending_request(snapshot: StateSnapshot) -> dict[str, Any] | None:
    return pending_request(snapshot.interrupts)
