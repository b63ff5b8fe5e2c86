"""Answers to a review arriving through the server: who answers, and are they well formed.

A resume is checked before a run is created for it, like ``planbound approve`` does: the
thread must be awaiting a review and the answer must fit the pending steps, else the caller
gets a 4xx and the thread stays exactly as it was. The reviewer recorded is the authenticated
identity, whatever the payload says.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

from checkpoints.ledger import AlreadyDecided
from checkpoints.server import latest, reader
from graph.graph import SERVICES
from graph.review import decide_answer, pending_request
from graph.state import STATE_TYPES
from guards.compat import from_agent_inbox
from guards.errors import DecisionInvalid
from guards.judgement import Verdict
from guards.plan import Plan
from guards.review import Identity

REVIEW_KEYS = frozenset({"decisions", "reviewer", "role", "roles"})


class ResumeRefused(Exception):
    """A resume cannot be accepted; carries the HTTP status and the reasons."""

    def __init__(self, status: int, reasons: list[str]) -> None:
        super().__init__("; ".join(reasons))
        self.status = status
        self.reasons = reasons


def stamp_reviewer(answer: Any, identity: str) -> Any:
    """Return ``answer`` with the reviewer set to ``identity`` everywhere it could be named.

    Legacy Agent Inbox answers are translated first. A resume map keyed by interrupt id has
    each of its answers stamped. Values that are no review answer are returned unchanged
    (validation reports them).
    """
    answer = from_agent_inbox(answer)
    if not isinstance(answer, Mapping):
        return answer
    if "decisions" not in answer and answer and not (set(answer) & REVIEW_KEYS):
        return {key: stamp_reviewer(value, identity) for key, value in answer.items()}
    stamped = dict(answer)
    stamped["reviewer"] = identity
    decisions = stamped.get("decisions")
    if isinstance(decisions, list):
        stamped["decisions"] = [
            {k: v for k, v in d.items() if k != "reviewer"} if isinstance(d, Mapping) else d
            for d in decisions
        ]
    return stamped


async def check_resume(thread_id: str | None, resume: Any, identity: Identity) -> None:
    """Check a resume against the thread's pending review, as the approve node will.

    The answer's shape, the reviewer's authority over each step it approves (the policy)
    and any edited plan's contracts are all checked here, so a refused answer never reaches
    the thread.

    Raises:
        ResumeRefused: 404 no such thread, 409 nothing awaiting review, 422 a malformed answer.
    """
    if thread_id is None:
        raise ResumeRefused(422, ["a resume needs a thread"])
    settings = SERVICES.settings
    async with reader(settings.home, settings.postgres_uri, STATE_TYPES) as saver:
        tup = await latest(saver, str(thread_id))
    if tup is None:
        raise ResumeRefused(404, [f"thread {thread_id} has no checkpoints"])
    interrupts = [
        (task_id, value)
        for task_id, channel, value in tup.pending_writes or []
        if channel == "__interrupt__"
    ]
    found = [i for _, batch in interrupts for i in _as_list(batch)]
    request = pending_request(found)
    if request is None:
        raise ResumeRefused(409, [f"thread {thread_id} is not awaiting approval"])
    values = tup.checkpoint["channel_values"]
    plan = values.get("plan")
    verdict = values.get("verdict")
    if not isinstance(plan, Plan):
        raise ResumeRefused(409, [f"thread {thread_id} has no plan under review"])
    answer = resume
    if isinstance(resume, Mapping) and "decisions" not in resume:
        ids = {str(getattr(i, "id", "")) for i in found}
        if resume and set(resume) <= ids:
            if len(resume) != 1:
                raise ResumeRefused(422, ["answer the one pending review request once"])
            answer = next(iter(resume.values()))
    checkpoint_id = str(tup.config["configurable"].get("checkpoint_id"))
    try:
        # Checked, claimed and journalled in one step: one answer wins, across workers and
        # replicas; the others get 409 and are kept in the journal as lost.
        await asyncio.to_thread(
            decide_answer,
            SERVICES,
            thread_id=str(thread_id),
            checkpoint_id=checkpoint_id,
            decision_id=str(values.get("decision_id")),
            answer=answer,
            request=request,
            plan=plan,
            reviews=verdict.reviews if isinstance(verdict, Verdict) else (),
            actor=values.get("actor"),
            identity=identity,
            still_waiting=lambda: True,  # it waits at checkpoint_id: read just above
            lease_s=settings.review_lease_s,
        )
    except DecisionInvalid as exc:
        raise ResumeRefused(422, exc.problems) from exc
    except AlreadyDecided as exc:
        raise ResumeRefused(409, [str(exc)]) from exc


def _as_list(value: Any) -> list[Any]:
    if isinstance(value, (list, tuple)):
        return list(value)
    return [value]
