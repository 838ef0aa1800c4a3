"""What the engine ran with, and what replay found: policy snapshots and replay runs.

``policy.recorded`` keeps the scoring and gate policy (and the workspace the gates confine
paths to) that decisions were taken under, once per distinct policy; each ``decision.made``
names it by ``policy_id``. Exact replay re-runs a decision under the policy it recorded, so
editing ``policies/*.json`` afterwards never makes history look non-deterministic.
``replay.run`` records each replay's mode, options and summary, for audit.
"""

from __future__ import annotations

from typing import Any, ClassVar

import msgspec

from events import Event


class PolicyRecorded(Event, frozen=True, kw_only=True):
    TOPIC: ClassVar[str] = "policy.recorded"

    policy_id: str
    scoring: dict[str, Any]
    gates: dict[str, Any]
    workspace: str


class ReplayRun(Event, frozen=True, kw_only=True):
    TOPIC: ClassVar[str] = "replay.run"

    mode: str
    options: dict[str, Any] = msgspec.field(default_factory=dict)
    summary: dict[str, Any] = msgspec.field(default_factory=dict)


POLICY_EVENTS = (PolicyRecorded, ReplayRun)
