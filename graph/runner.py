"""Start, resume and inspect runs on a durable checkpointer (used by the CLI and tests)."""

from __future__ import annotations

import contextlib
import time
import uuid
from collections.abc import Iterator
from datetime import datetime
from typing import Any

from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.types import Command, StateSnapshot

from checkpoints.factory import Stores, serializer
from checkpoints.ledger import AlreadyDecided, Approvals
from graph import events, inspect
from graph import replay as replays
from graph.context import Context
from graph.errors import RunError, store_failure
from graph.graph import build_graph
from graph.planners.explicit import parse_plan_document
from graph.review import decide_answer, pending_request
from graph.services import Services
from graph.settings import Settings
from graph.state import STATE_TYPES, InputState
from graph.tracing import Tracer
from guards.compat import from_agent_inbox
from guards.plan import Plan
from guards.review import Identity
from guards.screening import screen_input


class Runner:
    """Drives the graph for one set of services (stores, catalog, policy, planners).

    Args:
        services: The services to run on; or give ``stores`` (and optionally ``settings``)
            and they are built around them.
        stores: Open stores (a shortcut for ``Services(settings, stores=stores)``).
        settings: Operator settings for the services built around ``stores``.
    """

    def __init__(
        self,
        stores: Stores | None = None,
        settings: Settings | None = None,
        *,
        services: Services | None = None,
    ) -> None:
        if services is None:
            if settings is None:
                settings = Settings.load(**({"home": stores.home} if stores else {}))
            services = Services(settings, stores=stores)
        self.services = services
        self.stores = services.stores
        self.graph = build_graph(services, checkpointer=self.stores.checkpointer)
        self.context = Context()
        """The per-run context of normal runs (replays use their own)."""
        self.tracer = Tracer.from_settings(services.settings)
        """Sends each invocation to LangSmith when a key is configured."""

    def _config(self, thread_id: str) -> RunnableConfig:
        return {"configurable": {"thread_id": thread_id}}

    def _invoke(self, value: Any, thread_id: str, name: str = "planbound") -> dict[str, Any]:
        """Run the graph on a thread with every transition stored before the next begins.

        The invocation is one trace when tracing is configured (:mod:`graph.tracing`).
        Returns the thread's outcome once it stopped, from what the invocation returned (its
        output values and interrupts); the thread's state is read again only for a trace.
        """
        inputs = value.resume if isinstance(value, Command) else value
        with self.tracer.invocation(
            self.services, name, {"input": inputs}, thread_id
        ) as invocation:
            config: RunnableConfig = {**self._config(thread_id), **invocation.config()}
            output = self.graph.invoke(
                value, config, context=self.context, durability="sync", version="v2"
            )
            outcome = inspect.outcome_of(thread_id, output.value, output.interrupts)
            invocation.finish(lambda: self.graph.get_state(self._config(thread_id)).values, outcome)
        return outcome

    def _require_seeded(self) -> None:
        if not self.services.is_seeded():
            where = self.stores.backend if self.stores.backend == "postgres" else self.stores.home
            raise RunError(f"the domain database ({where}) is empty; run `planbound seed` first")

    def start(
        self,
        *,
        request: str | None = None,
        explicit_plan: Any = None,
        thread_id: str | None = None,
        actor: str | None = None,
        identity: Identity | None = None,
    ) -> dict[str, Any]:
        """Start a run and return its outcome (paused or final).

        Args:
            request: The request, in words.
            explicit_plan: A plan document (instead of ``request``).
            thread_id: The thread to run on (a new one when ``None``).
            actor: Who asks, as they name themselves (a trusted local caller).
            identity: Who asks, authenticated: recorded as the actor; an ``actor`` that
                names someone else is refused.

        Raises:
            InputRejected: the input is malformed.
            PlanInvalid: the explicit plan document is malformed.
            RunError: the actor is not the authenticated caller, the thread is waiting for a
                review, the domain is not seeded, or the database failed mid-run.
        """
        if identity is not None:
            if actor is not None and actor != identity.id:
                raise RunError(
                    f"the actor {actor!r} is not the authenticated caller {identity.id!r}: "
                    "a run is recorded as asked by whoever holds the token",
                    thread_id,
                )
            actor = identity.id
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
        if thread_id is not None:  # a thread of our own making is new: nothing runs on it
            snapshot = self.graph.get_state(self._config(thread_id))
            if snapshot.next:
                raise RunError(
                    f"thread {thread_id} has a run in progress (waiting at"
                    f" {', '.join(snapshot.next)}); answer it with `planbound approve` or use"
                    " another thread",
                    thread_id,
                )
        thread_id = thread_id or uuid.uuid4().hex
        with store_failure(thread_id):
            return self._invoke(payload, thread_id, "planbound.start")

    def resume(
        self, thread_id: str, answer: Any, identity: Identity | None = None
    ) -> dict[str, Any]:
        """Answer a pending review; the answer is validated before the thread is touched.

        Args:
            thread_id: The thread awaiting a review.
            answer: The review answer (decisions, and who gives them).
            identity: The authenticated reviewer: their id and roles are the ones checked
                and recorded, whatever the answer names. Without it the answer's
                ``reviewer`` and ``role`` are taken as given (a trusted local caller).

        Raises:
            RunError: unknown thread, nothing is awaiting review, the review was already
                decided, or the database failed mid-run.
            DecisionInvalid: the answer is malformed or an edit breaks the plan's contracts.
        """
        snapshot = self._snapshot(thread_id)
        request = pending_request(snapshot.interrupts)
        if request is None:
            raise RunError(f"thread {thread_id} is not awaiting approval", thread_id)
        plan = snapshot.values.get("plan")
        if not isinstance(plan, Plan):
            raise RunError(f"thread {thread_id} has no plan", thread_id)
        verdict = snapshot.values.get("verdict")
        self._require_seeded()
        # One answer per pending review, across processes and the server: the first claim
        # wins. A claim whose process died before its answer moved the thread on is taken
        # over. Every answer, the refused and the losing ones too, is journalled.
        checkpoint_id = str(snapshot.config["configurable"].get("checkpoint_id"))
        approvals = Approvals(self.stores.domain)
        try:
            decide_answer(
                self.services,
                thread_id=thread_id,
                checkpoint_id=checkpoint_id,
                decision_id=str(snapshot.values.get("decision_id")),
                answer=answer,
                request=request,
                plan=plan,
                reviews=verdict.reviews if verdict is not None else (),
                actor=snapshot.values.get("actor"),
                identity=identity,
                still_waiting=lambda: self._waiting_at(thread_id, checkpoint_id),
            )
        except AlreadyDecided as exc:
            raise RunError(str(exc), thread_id) from None
        if snapshot.created_at is not None:
            paused = datetime.fromisoformat(snapshot.created_at).timestamp()
            events.review_waited(time.time() - paused)
        if identity is not None:
            answer = as_given_by(answer, identity)
        try:
            with store_failure(thread_id):
                outcome = self._invoke(Command(resume=answer), thread_id, "planbound.resume")
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
        return outcome

    def proceed(self, thread_id: str) -> dict[str, Any]:
        """Continue a run that stopped mid-way (crash, lost connection) from its last checkpoint.

        Steps already in the ledger are not run again: their recorded outcome is reused.

        Raises:
            RunError: unknown thread, a thread waiting for a review, one that is finished, or
                the database failed mid-run.
        """
        snapshot = self._snapshot(thread_id)
        if pending_request(snapshot.interrupts) is not None:
            raise RunError(
                f"thread {thread_id} is awaiting approval; answer it with `planbound approve`",
                thread_id,
            )
        if not snapshot.next:
            raise RunError(
                f"thread {thread_id} is finished ({snapshot.values.get('status')}); "
                "nothing to resume",
                thread_id,
            )
        self._require_seeded()
        with store_failure(thread_id):
            return self._invoke(None, thread_id, "planbound.proceed")

    def explain(self, document: Any, actor: str | None = None) -> dict[str, Any]:
        """Judge a plan document without running anything; say which rule fired and why.

        Raises:
            PlanInvalid: the document is not a plan.
            RunError: the domain is not seeded (facts cannot be read).
        """
        parse_plan_document(document)
        self._require_seeded()
        return inspect.explain(self.services, document, actor)

    def preview(self, request: str, actor: str | None = None) -> dict[str, Any]:
        """Plan and verify a request without executing anything: the plan, route and verdict.

        The graph runs on a checkpointer in memory (no thread is kept) and stops before
        ``approve`` and ``execute``; the planner's re-plans happen as in a real run. The
        verdict is journalled like any other.

        Raises:
            InputRejected: the request is malformed.
            RunError: the domain is not seeded.
        """
        payload: InputState = {"request": request}
        if actor is not None:
            payload["actor"] = actor
        screen_input(payload)
        self._require_seeded()
        graph = build_graph(
            self.services, checkpointer=InMemorySaver(serde=serializer(STATE_TYPES))
        )
        thread_id = f"preview-{uuid.uuid4().hex}"
        config = self._config(thread_id)
        graph.invoke(
            payload,
            config,
            context=self.context,
            interrupt_before=["approve", "execute"],
            durability="sync",
        )
        snapshot = graph.get_state(config)
        report = inspect.outcome(thread_id, snapshot)
        report["thread_id"] = None
        report["next"] = list(snapshot.next)
        return report

    def give_plan(
        self, thread_id: str, answer: Any, identity: Identity | None = None
    ) -> dict[str, Any]:
        """Answer a plan request (the human fallback): ``{"plan": {...}}`` or ``{"reject": "why"}``.

        The plan is verified, and its writes reviewed, like any other.

        Raises:
            RunError: unknown thread, or it is not awaiting a plan.
            PlanInvalid: the plan document is malformed (nothing is changed).
        """
        snapshot = self._snapshot(thread_id)
        asking = any(
            isinstance(i.value, dict) and i.value.get("type") == "plan_request"
            for i in snapshot.interrupts
        )
        if not asking:
            raise RunError(f"thread {thread_id} is not awaiting a plan", thread_id)
        if not isinstance(answer, dict) or not (
            "plan" in answer or isinstance(answer.get("reject"), str)
        ):
            raise RunError('a plan answer is {"plan": {...}} or {"reject": "why"}', thread_id)
        if "plan" in answer:
            parse_plan_document(answer["plan"])
        self._require_seeded()
        if identity is not None:
            answer = {**answer, "reviewer": identity.id}
        with store_failure(thread_id):
            return self._invoke(Command(resume=answer), thread_id)

    def _waiting_at(self, thread_id: str, checkpoint_id: str) -> bool:
        """Whether the thread's latest checkpoint is ``checkpoint_id``, awaiting a review."""
        snapshot = self.graph.get_state(self._config(thread_id))
        latest = snapshot.config["configurable"].get("checkpoint_id")
        return latest == checkpoint_id and pending_request(snapshot.interrupts) is not None

    def _snapshot(self, thread_id: str) -> StateSnapshot:
        snapshot = self.graph.get_state(self._config(thread_id))
        if snapshot.created_at is None:
            raise RunError(f"no thread {thread_id!r} in {self.stores.home}", thread_id)
        return snapshot

    def outcome(self, thread_id: str) -> dict[str, Any]:
        """Return the one-object summary of a thread's latest state."""
        return inspect.outcome(thread_id, self._snapshot(thread_id))

    def history(self, thread_id: str) -> Iterator[dict[str, Any]]:
        """Yield the thread's checkpoints, newest first, with the ledger entries each covers."""
        self._snapshot(thread_id)
        return inspect.history(self.services, self.graph.get_state_history(self._config(thread_id)))

    def replay(self, thread_id: str, checkpoint_id: str, live: bool = False) -> dict[str, Any]:
        """Re-run a thread from one of its checkpoints (see :func:`graph.replay.replay`).

        Raises:
            RunError: unknown thread or checkpoint.
        """
        self._snapshot(thread_id)
        self._require_seeded()
        replays.replay(self.graph, thread_id, checkpoint_id, live)
        return self.outcome(thread_id)

    def rollback(self, thread_id: str, checkpoint_id: str) -> dict[str, Any]:
        """Undo every write applied after ``checkpoint_id`` (see :func:`graph.replay.rollback`).

        Raises:
            RunError: unknown thread or checkpoint.
        """
        latest = self._snapshot(thread_id)
        return replays.rollback(self.services, self.graph, latest, thread_id, checkpoint_id)


def as_given_by(answer: Any, identity: Identity) -> dict[str, Any]:
    """Return a validated answer with ``identity`` as its only reviewer, with its roles.

    The approve node judges the answer again from the resume value alone (it has no caller
    identity outside the server); stamped, the value names the reviewer and roles that were
    checked, and the thread keeps that record.
    """
    given = dict(from_agent_inbox(answer))
    given.pop("role", None)
    given["decisions"] = [
        {key: value for key, value in decision.items() if key != "reviewer"}
        for decision in given["decisions"]
    ]
    return {**given, "reviewer": identity.id, "roles": list(identity.roles)}
