"""Chains as the log made them: each chain's jobs and what its limits count.

A chain starts at a job someone created and grows by the follow-ups its jobs' results ask
for (``events.chains``). The view keeps, per chain, its jobs in order, how many follow-ups
it has of each kind (``sheratan.chains`` counts the ones that write files), the bytes of
their payloads, and which (kind, payload hash) it already holds
(a duplicate follow-up is refused, naming the job that does it). Jobs outside any chain
cost nothing here: a chain enters the view with its first follow-up.
"""

from __future__ import annotations

from typing import ClassVar
from uuid import UUID

import msgspec

from events import Event
from events.jobs import JobCreated


class ChainState(msgspec.Struct, kw_only=True):
    #: Every job of the chain, the first one first.
    jobs: list[UUID]
    #: Follow-ups per kind.
    kinds: dict[str, int] = msgspec.field(default_factory=dict)
    #: Bytes of the follow-ups' payloads (canonical JSON).
    bytes: int = 0
    #: "<kind>:<payload hash>" -> the job of the chain that has it.
    seen: dict[str, UUID] = msgspec.field(default_factory=dict)


def seen_key(kind: str, payload_hash: str) -> str:
    return f"{kind}:{payload_hash}"


def payload_bytes(payload: object) -> int:
    return len(msgspec.json.encode(payload))


class ChainsView:
    #: The event classes this view folds (others only advance its position).
    FOLDS: ClassVar[frozenset[type[Event]]] = frozenset({JobCreated})

    def __init__(self, position: int = 0) -> None:
        self.position = position
        self.chains: dict[UUID, ChainState] = {}
        #: job -> its chain, for every job of a chain (the first one included).
        self.chain_of: dict[UUID, UUID] = {}

    def apply(self, position: int, event: Event) -> None:
        self.position = position
        if type(event) is not JobCreated or event.chain is None:  # type: ignore[attr-defined]
            return
        created: JobCreated = event  # type: ignore[assignment]
        link = created.chain
        assert link is not None
        chain = self.chains.get(link.chain_id)
        if chain is None:
            chain = self.chains[link.chain_id] = ChainState(jobs=[link.chain_id])
            self.chain_of[link.chain_id] = link.chain_id
        chain.jobs.append(created.originator_id)
        chain.kinds[created.kind] = chain.kinds.get(created.kind, 0) + 1
        chain.bytes += payload_bytes(created.payload)
        chain.seen.setdefault(seen_key(created.kind, created.payload_hash), created.originator_id)
        self.chain_of[created.originator_id] = link.chain_id

    def summary(self) -> dict[str, int]:
        return {"chains": len(self.chains), "jobs": len(self.chain_of)}
