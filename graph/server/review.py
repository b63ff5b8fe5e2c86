"""Answers to a review arriving through the server: who answers, and are they well formed.

A resume is checked before a run is created for it, like ``planbound approve`` does: the
thread must be awaiting a review and the answer must fit the pending steps, else the caller
gets a 4xx and the thread stays exactly as it was. An answer names the review it answers:
with the interrupt value's ``decision_id`` and ``plan_id`` in planbound's shape, or by being
sent keyed by the interrupt's id (LangGraph's resume map, ``{interrupt_id: answer}``; the
only way for a legacy Agent Inbox answer). An answer naming another review gets 409, one
naming none 422. The reviewer recorded is the authenticated identity, whatever the payload
says. An accepted answer observes how long the review waited (``planbound_human_wait_seconds``,
from the paused checkpoint's time), as ``planbound approve`` does.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from checkpoints.ledger import AlreadyDecided
from checkpoints.server import latest, reader
from graph import events
from graph.graph import SERVICES
from graph.review import decide_answer, pending_request
from graph.state import STATE_TYPES
from guards.compat import from_agent_inbox
from guards.errors import DecisionInvalid, ReviewChanged
from guards.judgement import Verdict
from guards.plan import Plan
from guards.review import Identity

REVIEW_KEYS = frozenset({"decisions", "decision_id", "plan_id", "reviewer", "role", "roles"})
"""The top-level keys of planbound's answer shape (anything else is a resume map)."""


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

    The review the answer names, its shape, the reviewer's authority over each step it
    approves (the policy) and any edited plan's contracts are all checked here, so a refused
    answer never reaches the thread.

    Raises:
        ResumeRefused: 404 no such thread; 409 nothing awaiting review, or the answer names
            another review (decision, plan or interrupt) than the pending one; 422 a
            malformed answer, or one that names no review.
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
    answer, keyed = _unkeyed(resume, [str(getattr(i, "id", "")) for i in found])
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
            keyed=keyed,
        )
    except ReviewChanged as exc:
        raise ResumeRefused(409, exc.problems) from exc
    except DecisionInvalid as exc:
        raise ResumeRefused(422, exc.problems) from exc
    except AlreadyDecided as exc:
        raise ResumeRefused(409, [str(exc)]) from exc
    # Accepted: the review waited from its pause (the checkpoint's time) until now.
    paused = datetime.fromisoformat(str(tup.checkpoint["ts"])).timestamp()
    events.review_waited(time.time() - paused)


def _unkeyed(resume: Any, interrupt_ids: list[str]) -> tuple[Any, bool]:
    """Return the answer a resume carries, and whether it came keyed by its interrupt's id.

    Raises:
        ResumeRefused: 409 a resume map keyed by interrupts no longer pending; 422 one that
            answers the pending interrupt more than once.
    """
    if not isinstance(resume, Mapping) or not resume or set(resume) & REVIEW_KEYS:
        return resume, False
    if set(resume) <= set(interrupt_ids):
        if len(resume) != 1:
            raise ResumeRefused(422, ["answer the one pending review request once"])
        return next(iter(resume.values())), True
    if all(isinstance(v, (Mapping, list)) for v in resume.values()):
        stale = ", ".join(sorted(str(k) for k in set(resume) - set(interrupt_ids)))
        changed = ReviewChanged(f"interrupt {stale}", f"interrupt {', '.join(interrupt_ids)}")
        raise ResumeRefused(409, changed.problems)
    return resume, False


def _as_list(value: Any) -> list[Any]:
    if isinstance(value, (list, tuple)):
        return list(value)
    return [value]
