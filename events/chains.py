"""Chains: the follow-up jobs a completed job's result asks for.

A result of ``{"followups": [{"kind": ..., "payload": ...}, ...]}`` (the earlier system's LCP
format) asks for follow-up jobs. The dispatcher that settles the completed attempt records,
for each requested follow-up ``index``, exactly one event on the stream
``followup_stream(parent, attempt, index)``: the follow-up's ``job.created`` (carrying its
``ChainLink``), or ``job.followup_refused`` with the reason. One stream per request makes
"at most once" the store's version check: a second dispatcher's try is a lost race.
"""

from __future__ import annotations

from typing import ClassVar
from uuid import UUID, uuid5

import msgspec

from events import Event

#: Namespace of the follow-up streams (uuid5 of "<parent>:<attempt>:<index>").
FOLLOWUP_NAMESPACE = UUID("5b1c8f3e-6f0a-4d41-9c59-0f9d1f0c2a71")


def followup_stream(parent: UUID, attempt: int, index: int) -> UUID:
    """The stream of the ``index``-th follow-up that attempt ``attempt`` of ``parent`` asked
    for: the follow-up job's id, or the stream of its refusal."""
    return uuid5(FOLLOWUP_NAMESPACE, f"{parent}:{attempt}:{index}")


class ChainLink(msgspec.Struct, frozen=True, kw_only=True):
    """Where a follow-up job sits in its chain, and whose result asked for it."""

    #: The chain: the id of its first job (the one no follow-up made).
    chain_id: UUID
    #: 1 for a follow-up of the first job, 2 for a follow-up of that one, and so on.
    depth: int
    parent: UUID
    #: The parent's attempt whose result asked for this job, and the request's index in it.
    attempt: int
    index: int


class FollowupRefused(Event, frozen=True, kw_only=True):
    """A follow-up the chain's limits (or its own shape) refused; no job was made."""

    TOPIC: ClassVar[str] = "job.followup_refused"

    chain_id: UUID
    depth: int
    parent: UUID
    attempt: int
    index: int
    #: What was asked, as far as it could be read ("" and None for a malformed request).
    kind: str = ""
    payload_hash: str | None = None
    reason: str
    #: For a duplicate (same kind and payload in the chain): the job that already does it.
    duplicate_of: UUID | None = None


CHAIN_EVENTS = (FollowupRefused,)
