"""Hard gates, evaluated before any scoring: a gated candidate can never be chosen.

G0 quarantine barrier (quarantined or silent worker, untrusted provenance zone), G1 payload
against the kind's schema, G2 kind allowlist and forbidden kinds, G3 path sandbox (every
path-like parameter, at any depth), G4 escalation markers, G5 evidence (a decision may
quarantine a worker only when its recent record shows it failing); plus budget and readonly
constraints. Each gate returns a GateResult with the reason it blocked.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import datetime, timedelta
from functools import lru_cache
from pathlib import Path
from typing import Any

from events.accounts import to_micros, units
from events.decisions import Evidence, GateResult
from projections.jobs import JobState
from projections.workers import WorkerState
from sheratan.decide.policy import GatePolicy, QuarantineEvidence
from sheratan.sandbox import normal_path as _normal
from sheratan.sandbox import resolves_inside, shape_problem
from sheratan.workers.kinds import WRITE_KINDS, validate_payload

#: Keys whose string values are paths, whatever else they look like.
PATH_KEY = re.compile(
    r"(^|_)(path|paths|file|files|filename|dir|dirs|directory|folder|target|source|src|dst|"
    r"dest|destination|cwd|root|output|input|location)$",
    re.IGNORECASE,
)
#: A passed gate carries no reason: one shared, immutable result per gate.
PASSED = {
    name: GateResult(name, True)
    for name in (
        "G0_barrier",
        "G1_payload",
        "G2_kind",
        "G3_path",
        "G4_escalation",
        "G5_evidence",
        "readonly",
        "budget",
        "worker_limit",
    )
}
#: In-process transports never go silent; others must send heartbeats.
IN_PROCESS_TRANSPORTS = frozenset({"local", "simulated"})


def _strings(value: Any, key: str = "") -> list[tuple[str, str]]:
    """Every (key, string) in a JSON value, at any depth, in document order; list items keep
    their list's key. A loop over an explicit stack: a generator per level cost a quarter
    of a decision's job gates."""
    out: list[tuple[str, str]] = []
    stack: list[tuple[str, Any]] = [(key, value)]
    pop, push = stack.pop, stack.append
    while stack:
        key, value = pop()
        if isinstance(value, str):
            out.append((key, value))
        elif isinstance(value, dict):
            for k, v in reversed(value.items()):
                push((str(k), v))
        elif isinstance(value, list | tuple):
            for item in reversed(value):
                push((key, item))
    return out


def _looks_like_path(text: str) -> bool:
    return (
        bool(text)
        and not any(c.isspace() for c in text)
        and ("/" in text or "\\" in text or text.startswith(("~", "..")))
    )


#: Gates re-check a job's paths at every decision: resolving them is cached here. A symlink
#: made after the check is caught where it matters: the local worker checks again, uncached,
#: at the moment it opens the file. The engine records what the gate resolved (``observed``).
resolves_inside_cached = lru_cache(maxsize=4096)(resolves_inside)
#: What a path's text alone says (absolute, climbing out, a forbidden prefix) never changes:
#: each text is judged once per process.
_shape_problem = lru_cache(maxsize=4096)(shape_problem)


class JobGates:
    """The gates that depend on the job alone (G1-G4, readonly), computed once per decision."""

    def __init__(self, policy: GatePolicy, workspace: Path) -> None:
        self.policy = policy
        self.workspace = workspace
        self._root = str(workspace)
        self._markers = [m.lower() for m in policy.escalation_markers]

    def check(
        self,
        job: JobState,
        constraints: dict[str, Any],
        inside: Callable[[str, str], bool] = resolves_inside_cached,
    ) -> list[GateResult]:
        """G1-G4 and readonly; ``inside`` is G3's one reach into the filesystem (whether a
        path stays inside the workspace once symlinks are followed)."""
        strings = _strings(job.payload)  # G3 and G4 both look at every string
        return [
            self._g1_payload(job),
            self._g2_kind(job.kind),
            self._g3_paths(strings, inside),
            self._g4_escalation(strings),
            self._readonly(job, constraints),
        ]

    def _g1_payload(self, job: JobState) -> GateResult:
        problem = validate_payload(job.kind, job.payload)
        return PASSED["G1_payload"] if problem is None else GateResult("G1_payload", False, problem)

    def admission(self, kind: str, payload: dict[str, Any]) -> GateResult | None:
        """The first of G2-G4 that refuses a job before it is recorded, or None.

        These gates read the job alone, so a job they refuse now would be gated by every
        dispatch decision: the API refuses it at creation (403) instead of queueing it. G3
        is checked on the filesystem as it is now; the dispatch decision checks it again."""
        strings = _strings(payload)
        for result in (
            self._g2_kind(kind),
            self._g3_paths(strings, resolves_inside),
            self._g4_escalation(strings),
        ):
            if not result.passed:
                return result
        return None

    def _g2_kind(self, kind: str) -> GateResult:
        if kind in self.policy.forbidden_kinds:
            return GateResult("G2_kind", False, f"kind {kind!r} is forbidden")
        if kind not in self.policy.allowed_kinds:
            return GateResult("G2_kind", False, f"kind {kind!r} is not on the allowlist")
        return PASSED["G2_kind"]

    def _g3_paths(
        self, strings: list[tuple[str, str]], inside: Callable[[str, str], bool]
    ) -> GateResult:
        for key, text in strings:
            if PATH_KEY.search(key) or _looks_like_path(text):
                problem = _shape_problem(text, self.policy.forbidden_path_prefixes)
                if problem is None and not inside(self._root, _normal(text)):
                    problem = f"path {text!r} resolves outside the workspace"
                if problem:
                    return GateResult("G3_path", False, f"{key or 'value'}: {problem}")
        return PASSED["G3_path"]

    def _g4_escalation(self, strings: list[tuple[str, str]]) -> GateResult:
        markers = self._markers
        for key, text in strings:
            lowered = text.lower()
            for marker in markers:
                if marker in lowered:
                    return GateResult("G4_escalation", False, f"{key or 'value'} holds {marker!r}")
        return PASSED["G4_escalation"]

    @staticmethod
    def _readonly(job: JobState, constraints: dict[str, Any]) -> GateResult:
        if constraints.get("readonly") and job.kind in WRITE_KINDS:
            return GateResult("readonly", False, f"{job.kind} writes, and the job is readonly")
        return PASSED["readonly"]


def worker_gates(
    policy: GatePolicy,
    worker: WorkerState,
    job: JobState,
    constraints: dict[str, Any],
    now: datetime,
    held: int | None = None,
) -> list[GateResult]:
    """The gates that depend on the worker: G0 barrier, the budget, and under a limit of
    attempts per worker (``worker_max_attempts``) the ``worker_limit`` on what it ``held``.
    Without a limit there is no such gate, so decisions made before limits replay as made."""
    gates = [_g0_barrier(policy, worker, job, now), _budget(worker, constraints)]
    limit = policy.worker_max_attempts
    if limit is not None:
        gates.append(_worker_limit(worker, held or 0, limit))
    return gates


def _worker_limit(worker: WorkerState, held: int, limit: int) -> GateResult:
    if held < limit:
        return PASSED["worker_limit"]
    reason = f"worker {worker.id} holds {held} attempts (workers.max_attempts is {limit})"
    return GateResult("worker_limit", False, reason)


def _g0_barrier(
    policy: GatePolicy, worker: WorkerState, job: JobState, now: datetime
) -> GateResult:
    if worker.status == "quarantined" and (
        worker.quarantined_until is None or now < worker.quarantined_until
    ):
        return GateResult(
            "G0_barrier", False, f"worker {worker.id} is quarantined: {worker.quarantine_reason}"
        )
    if worker.transport not in IN_PROCESS_TRANSPORTS and now - worker.last_seen > timedelta(
        seconds=policy.heartbeat_timeout_s
    ):
        return GateResult(
            "G0_barrier",
            False,
            f"worker {worker.id} is silent since {worker.last_seen:%Y-%m-%dT%H:%M:%SZ}",
        )
    if not policy.untrusted_zones:
        return PASSED["G0_barrier"]
    zones = {str(job.payload.get("zone", "")), str((worker.profile or {}).get("zone", ""))}
    untrusted = zones & set(policy.untrusted_zones)
    if untrusted:
        return GateResult(
            "G0_barrier", False, f"untrusted provenance zone {sorted(untrusted)[0]!r}"
        )
    return PASSED["G0_barrier"]


def _budget(worker: WorkerState, constraints: dict[str, Any]) -> GateResult:
    budget = constraints.get("budget_remaining")
    if budget is not None and worker.cost_hint > float(budget):
        return GateResult(
            "budget", False, f"worker {worker.id} costs {worker.cost_hint}, budget is {budget}"
        )
    funds = constraints.get("funds")
    if funds is not None:
        return _funds(worker, funds)
    return PASSED["budget"]


def _funds(worker: WorkerState, funds: dict[str, Any]) -> GateResult:
    """A paid job's candidate: its estimate (the worker's cost hint, what the lease holds)
    within the job's budget and within what the payer has available (balance - held)."""
    estimate = to_micros(worker.cost_hint)
    budget = funds.get("budget_micros")
    if budget is not None and estimate > budget:
        return GateResult(
            "budget",
            False,
            f"worker {worker.id} costs {units(estimate)}, the job's budget is {units(budget)}",
        )
    available = funds["available_micros"]
    if estimate > available:
        return GateResult(
            "budget",
            False,
            f"insufficient funds: account {funds['payer']} has {units(available)} available, "
            f"worker {worker.id} needs {units(estimate)} held",
        )
    return PASSED["budget"]


def evidence(rule: QuarantineEvidence, worker: str, recent: tuple[bool, ...]) -> Evidence:
    """What G5 reads of a worker's recent record (oldest first, True = completed): its
    failures in a row at the end, and the attempts and failures of its last ``window``.

    Recorded with the decision (``observed.evidence``, and the QUARANTINE candidate's
    params), so the decision says what it saw and replay judges the same record."""
    streak = 0
    for ok in reversed(recent):
        if ok:
            break
        streak += 1
    last = recent[-rule.window :]
    return Evidence(worker=worker, streak=streak, attempts=len(last), failures=last.count(False))


def g5_evidence(rule: QuarantineEvidence, seen: Evidence) -> GateResult:
    """Passes when the record ``evidence`` read shows ``consecutive_failures`` failures in
    a row, or more than ``failure_rate`` of a full window of ``window`` attempts failed."""
    worker, streak, attempts, failures = seen.worker, seen.streak, seen.attempts, seen.failures
    if streak >= rule.consecutive_failures:
        return PASSED["G5_evidence"]
    if attempts >= rule.window and failures > rule.failure_rate * attempts:
        return PASSED["G5_evidence"]
    return GateResult(
        "G5_evidence",
        False,
        f"no evidence against worker {worker}: {streak} failure(s) in a row "
        f"(quarantine needs {rule.consecutive_failures}), {failures} of its last {attempts} "
        f"attempt(s) failed (needs more than {rule.failure_rate:.0%} of {rule.window})",
    )
