"""Who may call the server, and what they may see and do (``langgraph.json`` ``auth.path``).

Every request needs a token from the table in :mod:`server.tokens`, as
``Authorization: Bearer <token>`` or ``X-Api-Key: <token>``; a missing or unknown token gets
401. The user's roles travel as ``role:<name>`` permissions and as ``roles``.

- **requester**: creates threads (recorded as their ``owner``) and runs on them (the run's
  ``actor`` is their identity, whatever the input says); sees only their own threads and
  runs; cannot answer a review.
- **reviewer**, **supervisor**: see every thread (``threads.search(status="interrupted")``
  lists those awaiting approval) and answer reviews (a run whose command resumes). The answer
  is checked before the run is created (422 when malformed, 409 when nothing awaits review)
  and the reviewer recorded is the authenticated identity.
- **admin**: everything, including writing thread state, assistants, crons and the store.

Anything not covered here is refused (403).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from typing import Any

from langgraph_sdk import Auth

from graph.server.review import ResumeRefused, check_resume, stamp_reviewer
from graph.server.tokens import REVIEW_ROLES, ROLE_PREFIX, AuthConfigError, TokenTable
from guards.errors import InputRejected
from guards.review import Identity
from guards.screening import screen_input

log = logging.getLogger(__name__)

OWNER = "owner"
"""Thread metadata key holding the identity that created the thread."""

auth = Auth()
_tokens = TokenTable()


def _token(authorization: str | None, headers: Mapping[bytes, bytes]) -> str | None:
    if authorization:
        scheme, _, value = authorization.strip().partition(" ")
        if scheme.lower() == "bearer" and value.strip():
            return value.strip()
        return None
    api_key = headers.get(b"x-api-key")
    if api_key:
        return api_key.decode("utf-8", "replace").strip() or None
    return None


@auth.authenticate
async def authenticate(authorization: str | None, headers: dict[bytes, bytes]) -> dict[str, Any]:
    """Map the request's bearer token or API key to a user with roles.

    Raises:
        Auth.exceptions.HTTPException: 401 for a missing, malformed or unknown token.
    """
    token = _token(authorization, headers)
    if token is None:
        raise Auth.exceptions.HTTPException(
            status_code=401,
            detail="missing credentials: send 'Authorization: Bearer <token>'",
            headers={"WWW-Authenticate": "Bearer"},
        )
    try:
        identity = await asyncio.to_thread(_tokens.lookup, token)
    except AuthConfigError as exc:
        log.error("authentication is not configured: %s", exc)
        raise Auth.exceptions.HTTPException(
            status_code=401, detail="authentication is not configured on this server"
        ) from exc
    if identity is None:
        raise Auth.exceptions.HTTPException(
            status_code=401, detail="unknown token", headers={"WWW-Authenticate": "Bearer"}
        )
    return identity.user()


async def caller_of(headers: Mapping[str, str]) -> Identity | None:
    """Who sends a request to a custom route (which the API's authentication does not cover).

    Returns ``None`` for no token, an unknown one, or a token table that cannot be read.
    """
    raw = {k.lower().encode(): v.encode() for k, v in headers.items()}
    token = _token(headers.get("authorization"), raw)
    if token is None:
        return None
    try:
        holder = await asyncio.to_thread(_tokens.lookup, token)
    except AuthConfigError as exc:
        log.error("authentication is not configured: %s", exc)
        return None
    return holder.reviewer() if holder is not None else None


def roles_of(ctx: Auth.types.AuthContext) -> set[str]:
    """Return the roles carried in the caller's permissions."""
    return {p.removeprefix(ROLE_PREFIX) for p in ctx.permissions if p.startswith(ROLE_PREFIX)}


def _reviewer(ctx: Auth.types.AuthContext) -> bool:
    return bool(roles_of(ctx) & REVIEW_ROLES)


def _admin(ctx: Auth.types.AuthContext) -> bool:
    return "admin" in roles_of(ctx)


def _own(ctx: Auth.types.AuthContext) -> dict[str, str]:
    return {OWNER: ctx.user.identity}


def _set_owner(ctx: Auth.types.AuthContext, value: Any) -> None:
    metadata = value.get("metadata")
    if not isinstance(metadata, dict):
        metadata = value["metadata"] = {}
    metadata[OWNER] = ctx.user.identity


@auth.on
async def deny_by_default(ctx: Auth.types.AuthContext, value: Any) -> bool:
    """Refuse whatever no other handler covers, except to admins."""
    return _admin(ctx)


@auth.on.assistants.read
async def read_assistants(ctx: Auth.types.AuthContext, value: Auth.types.AssistantsRead) -> None:
    """Let every authenticated user read assistants (runs name one)."""


@auth.on.assistants.search
async def search_assistants(
    ctx: Auth.types.AuthContext, value: Auth.types.AssistantsSearch
) -> None:
    """Let every authenticated user list assistants."""


@auth.on.threads.create
async def create_thread(
    ctx: Auth.types.AuthContext, value: Auth.types.ThreadsCreate
) -> dict[str, str]:
    """Record the creator as the thread's owner.

    The owner filter also applies when the caller chooses the id of a thread that exists
    (``if_exists: do_nothing``): another user's thread is never returned (409 instead).
    """
    _set_owner(ctx, value)
    return _own(ctx)


@auth.on.threads.read
async def read_thread(
    ctx: Auth.types.AuthContext, value: Auth.types.ThreadsRead
) -> dict[str, str] | None:
    """Reviewers read every thread; requesters only their own."""
    return None if _reviewer(ctx) else _own(ctx)


@auth.on.threads.search
async def search_threads(
    ctx: Auth.types.AuthContext, value: Auth.types.ThreadsSearch
) -> dict[str, str] | None:
    """Reviewers list every thread; requesters only their own."""
    return None if _reviewer(ctx) else _own(ctx)


@auth.on.threads.update
async def update_thread(
    ctx: Auth.types.AuthContext, value: Auth.types.ThreadsUpdate
) -> dict[str, str] | None:
    """Owners patch metadata and cancel runs; only admins write thread state.

    Raises:
        Auth.exceptions.HTTPException: 403 for a state write or an ownership change.
    """
    if _admin(ctx):
        return None
    if "metadata" not in value and "action" not in value:
        raise Auth.exceptions.HTTPException(
            status_code=403, detail="only an admin may write thread state"
        )
    metadata = value.get("metadata")
    if isinstance(metadata, Mapping) and metadata.get(OWNER, ctx.user.identity) != (
        ctx.user.identity
    ):
        raise Auth.exceptions.HTTPException(
            status_code=403, detail="a thread's owner cannot be changed"
        )
    return _own(ctx)


@auth.on.threads.delete
async def delete_thread(
    ctx: Auth.types.AuthContext, value: Auth.types.ThreadsDelete
) -> dict[str, str] | None:
    """Owners and admins delete threads."""
    return None if _admin(ctx) else _own(ctx)


INPUT_KEYS = frozenset({"request", "explicit_plan", "actor"})
"""What a run's input may hold (``actor`` is overwritten with the caller's identity)."""

RUN_CONTROLS = ("checkpoint_id", "checkpoint_ns", "checkpoint", "checkpoint_map")
"""Configurable keys that would fork a run from another checkpoint (admins only)."""


def _refuse_run_settings(ctx: Auth.types.AuthContext, kwargs: dict[str, Any]) -> None:
    """Fix what a caller may not choose about a run; refuse what they tried to choose.

    The run's context (replay mode, and anything a future field adds) and a fork from an
    older checkpoint are the operator's, never the caller's: a request that sets them is
    refused with 422 naming the field (admins excepted). Every transition is stored before
    the next begins (``durability="sync"``): a lost approval record must never sit next to a
    committed write.

    Raises:
        Auth.exceptions.HTTPException: 422 naming the field the caller may not set.
    """
    kwargs["durability"] = "sync"
    if _admin(ctx):
        return
    context = kwargs.get("context") or {}
    if context:
        fields = ", ".join(sorted(str(k) for k in context))
        raise Auth.exceptions.HTTPException(
            status_code=422,
            detail=f"the run context is set by the server, not the caller (got {fields})",
        )
    configurable = (kwargs.get("config") or {}).get("configurable") or {}
    forks = [key for key in RUN_CONTROLS if configurable.get(key)]
    if forks:
        raise Auth.exceptions.HTTPException(
            status_code=422,
            detail=f"only an admin may run from another checkpoint (got {', '.join(forks)})",
        )


def _resume_of(command: Any) -> tuple[bool, Any]:
    if not isinstance(command, Mapping):
        return False, None
    privileged = any(command.get(k) is not None for k in ("resume", "update", "goto"))
    return privileged, command.get("resume")


@auth.on.threads.create_run
async def create_run(
    ctx: Auth.types.AuthContext, value: Auth.types.RunsCreate
) -> dict[str, str] | None:
    """Requesters start runs on their own threads; reviewers answer reviews on any thread.

    A run with new input is owned by, and records as its ``actor``, the caller. A run whose
    command resumes (or updates, or jumps) is an answer to a review: it needs a
    reviewing role, is checked against the pending review, and carries the authenticated
    identity as reviewer.

    Raises:
        Auth.exceptions.HTTPException: 403 wrong role, 404/409/422 a resume that cannot apply.
    """
    kwargs = value.get("kwargs") or {}
    _refuse_run_settings(ctx, kwargs)
    command = kwargs.get("command")
    privileged, resume = _resume_of(command)
    if not privileged:
        _set_owner(ctx, value)
        run_input = kwargs.get("input")
        if isinstance(run_input, dict):
            run_input["actor"] = ctx.user.identity
            unknown = sorted(set(run_input) - INPUT_KEYS)
            if unknown:
                raise Auth.exceptions.HTTPException(
                    status_code=422,
                    detail=f"unknown input keys {unknown}: send 'request' or 'explicit_plan'",
                )
            try:
                screen_input(run_input)  # size, depth and shape, before a run exists
            except InputRejected as exc:
                raise Auth.exceptions.HTTPException(status_code=422, detail=str(exc)) from exc
        return None if _admin(ctx) else _own(ctx)
    if not _reviewer(ctx):
        raise Auth.exceptions.HTTPException(
            status_code=403,
            detail="answering a review needs the reviewer, supervisor or admin role",
        )
    given = {k for k, v in command.items() if v is not None} if isinstance(command, dict) else set()
    if not isinstance(command, dict) or resume is None or given - {"resume"}:
        if _admin(ctx):
            return None
        raise Auth.exceptions.HTTPException(
            status_code=403, detail="only an admin may update or redirect a thread"
        )
    stamped = stamp_reviewer(resume, ctx.user.identity)
    thread_id = value.get("thread_id")
    try:
        await check_resume(
            None if thread_id is None else str(thread_id),
            stamped,
            Identity(id=ctx.user.identity, roles=tuple(sorted(roles_of(ctx)))),
        )
    except ResumeRefused as exc:
        raise Auth.exceptions.HTTPException(
            status_code=exc.status, detail="; ".join(exc.reasons)
        ) from exc
    command["resume"] = stamped
    return None
