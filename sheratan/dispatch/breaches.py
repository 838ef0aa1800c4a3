"""The breaches log: decision records that failed decision_trace_v1, kept apart from history.

An invalid record never enters the main log (its score would poison priors and baselines);
it is kept whole in ``<home>/breaches/`` with the violation's path and reason, so nothing is
lost and an auditor can see what was refused and why. Recording is the dispatcher's:
``decide/`` only finds the violation and never writes.
"""

from __future__ import annotations

from typing import Any
from uuid import uuid4

import msgspec
from eventsourcing.persistence import StoredEvent

from sheratan.decide.trace import Violation
from sheratan.store.ledger import Ledger

BREACH_TOPIC = "decision.breach"


class BreachLog:
    def __init__(self, ledger: Ledger) -> None:
        self.ledger = ledger

    def record(self, record: dict[str, Any], violation: Violation) -> int:
        """Append one refused record; returns its position in the breaches log."""
        state = msgspec.json.encode(
            {
                "node_id": record.get("node_id"),
                "path": violation.path,
                "reason": violation.reason,
                "record": record,
            }
        )
        return self.ledger.append([StoredEvent(uuid4(), 1, BREACH_TOPIC, state)])[0]

    def all(self) -> list[dict[str, Any]]:
        """Every breach recorded, oldest first."""
        return [
            msgspec.json.decode(line)["data"]
            for _, line in self.ledger.lines(1, self.ledger.last_position())
        ]
