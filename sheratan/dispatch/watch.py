"""Anomaly rules, run by the dispatcher every round on its live views, and the state moves
they make.

Each rule measures one thing cheaply (no log scans): the failure rate and the timeout rate
over the namespace's last attempts (``projections.system``), worker daemons holding an
attempt but silent, the depth of the queue, and a Page-Hinkley test on the attempts'
latency (``sheratan.analytics.drift.PageHinkley``, normalized against the dispatch baseline).
A rule above its ``raise_above`` records ``system.alarm_raised``; at or below its
``clear_below``, ``system.alarm_cleared``.

Moves (``sheratan.system_state`` checks each): a raised alarm takes OPERATIONAL to DEGRADED,
or to RECOVERY when its severity is ``recover`` (a DEGRADED set by a rule escalates to
RECOVERY the same way); once no recovery work is left, RECOVERY steps down to DEGRADED; once
every alarm has cleared, a state a rule set returns to OPERATIONAL. Raising moves on the
edge (the round that raises), clearing on the level (no alarm open), so an alarm that stays
open does not flap the state. A state an operator set is never moved by a rule.

Everything a rule reads is folded from the log except the clock (silent workers) and the
drift detector's memory, which starts afresh with each dispatcher process. What gates
dispatch is the recorded state, never a rule's reading, so replay agrees with the live run.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from itertools import islice
from typing import Any

from events.system import AlarmCleared, AlarmRaised
from projections.system import SystemState
from sheratan.analytics.drift import PageHinkley, normalized
from sheratan.decide.scoring import baseline_for
from sheratan.dispatch.candidates import DISPATCH
from sheratan.dispatch.context import DispatchContext
from sheratan.dispatch.gating import RateRule, SystemPolicy
from sheratan.dispatch.heal import system_heal_resolved, system_heal_taken
from sheratan.streams import system_stream
from sheratan.system_state import transition_event

#: The prefix of the cause of every transition a rule makes.
RULE = "rule:"
#: How many values at the reference's p50 a (re)started drift detector counts as seen.
WARM_COUNT = 30


@dataclass(frozen=True)
class Reading:
    """What a rule measured now (None from a rule: too little to judge, nothing changes)."""

    value: float
    detail: str


class Watch:
    """The anomaly rules of one dispatcher's namespace."""

    def __init__(self, context: DispatchContext, policy: SystemPolicy) -> None:
        self.context = context
        self.policy = policy
        rules = policy.rules
        self.detector = PageHinkley(rules.drift.delta, rules.drift.threshold)
        #: The outcomes the detector has seen (``SystemState.ended`` when it last looked).
        self.fed: int | None = None
        #: Outcomes seen since the detector's last alarm (the drift alarm clears after enough).
        self.quiet = 0
        self.drifted: Reading | None = None
        #: The latency p50 and p95 the detector's values are normalized against.
        self.reference: tuple[float, float] | None = None

    @property
    def state(self) -> SystemState:
        return self.context.views.system.of(self.context.namespace)

    def look(self) -> None:
        """Run every enabled rule, record alarms raised and cleared, then move the state."""
        now = self.context.clock.now()
        raised: list[tuple[str, str]] = []
        cleared: str | None = None
        for name, severity, reading, raise_above, clear_below in self._readings(now):
            if reading is None:
                continue
            alarm = self.state.alarms.get(name)
            if alarm is None and reading.value > raise_above:
                self._record_alarm(AlarmRaised, now, name, reading, raise_above, severity=severity)
                raised.append((name, severity))
            elif alarm is not None and reading.value <= clear_below:
                self._record_alarm(AlarmCleared, now, name, reading, clear_below)
                cleared = name
        self._move(now, raised, cleared)
        resolved = system_heal_resolved(self.state, now)
        if resolved is not None:
            self.context.recorder.record(resolved)

    def _readings(self, now: datetime) -> Iterator[tuple[str, str, Reading | None, float, float]]:
        rules = self.policy.rules
        for name, rule, code in (
            ("failure_rate", rules.failure_rate, None),
            ("timeouts", rules.timeouts, "timed_out"),
        ):
            if rule.enabled:
                reading = self._rate(rule, code)
                yield name, rule.severity, reading, rule.raise_above, rule.clear_below
        silent = rules.silent_workers
        if silent.enabled:
            reading = self._silent(now, silent.silent_after_s)
            yield "silent_workers", silent.severity, reading, silent.raise_above, silent.clear_below
        depth = rules.queue_depth
        if depth.enabled:
            queued = self.context.views.jobs.queue_depth(self.context.namespace)
            reading = Reading(queued, f"{queued} job(s) queued")
            yield "queue_depth", depth.severity, reading, depth.raise_above, depth.clear_below
        drift = rules.drift
        if drift.enabled:
            yield "drift", drift.severity, self._drift(), 0.0, 0.0

    def _rate(self, rule: RateRule, code: str | None) -> Reading | None:
        """The share of the last ``rule.window`` outcomes that failed (``code`` None: failed
        or timed out) or that were ``code``."""
        last = list(islice(reversed(self.state.outcomes), rule.window))
        if len(last) < rule.min_attempts:
            return None
        bad = sum(o.code == code if code else o.code != "completed" for o in last)
        what = "failed or timed out" if code is None else code.replace("_", " ")
        return Reading(bad / len(last), f"{bad} of the last {len(last)} attempts {what}")

    def _silent(self, now: datetime, after_s: float) -> Reading:
        """Worker daemons holding an attempt, not heard of for ``after_s`` seconds."""
        workers = self.context.views.workers
        since = now - timedelta(seconds=after_s)
        silent = sorted(
            {
                worker.id
                for worker_id in workers.attempts.values()
                if (worker := workers.workers.get(worker_id)) is not None
                and worker.transport == "process"
                and worker.namespace == self.context.namespace
                and worker.last_seen < since
            }
        )
        detail = f"silent for over {after_s:g}s: {', '.join(silent)}" if silent else "none silent"
        return Reading(len(silent), detail)

    def _drift(self) -> Reading | None:
        """Feed the detector the latencies ended since it last looked; 1.0 while drifting,
        0.0 once ``clear_after`` outcomes passed without a new alarm.

        Latencies are normalized against a reference, the dispatch baseline's p50 and p95
        when the detector (re)starts (only an observed baseline: the policy's default or
        fixed numbers say nothing about this system's latency). Not the live baseline: it
        follows the latencies within a round, so it would absorb the very shift to detect.
        The detector starts as if it had seen ``WARM_COUNT`` values at the reference's p50,
        so the first values after a shift already stand out. After an alarm the rest of that
        batch is skipped (it is the shift) and the next look takes the shifted baseline as
        the new reference."""
        state, rule = self.state, self.policy.rules.drift
        if self.drifted is None and "drift" in state.alarms:  # raised before this process
            self.drifted = Reading(1.0, state.alarms["drift"].detail)
        new = state.ended - (state.ended if self.fed is None else self.fed)
        self.fed = state.ended
        if self.reference is None:
            used = baseline_for(self.context.scoring, self.context.views.baselines, DISPATCH)
            if used.source != "observed":  # policy numbers (defaults, fixed), not latencies
                return self.drifted
            self.reference = (used.latency_ms.p50, used.latency_ms.p95)
            self.detector = PageHinkley(rule.delta, rule.threshold, count=WARM_COUNT)
            new = 0  # what ended before the reference is in it
        p50, p95 = self.reference
        for outcome in islice(state.outcomes, max(0, len(state.outcomes) - new), None):
            if outcome.latency_ms is None:
                continue
            self.quiet += 1
            direction = self.detector.add(normalized(outcome.latency_ms, p50, p95))
            if direction is not None:
                self.quiet, self.reference = 0, None
                self.drifted = Reading(
                    1.0,
                    f"latency shifted {direction} from p50 {p50:g} ms "
                    f"(Page-Hinkley, lambda {rule.threshold:g})",
                )
                break
        if self.drifted is None:
            return None
        if self.quiet >= rule.clear_after:
            self.drifted = None
            return Reading(0.0, f"no latency shift over {rule.clear_after} attempts")
        return self.drifted

    # -------------------------------------------------------------- recording

    def _record_alarm(
        self,
        event_type: type[AlarmRaised] | type[AlarmCleared],
        now: datetime,
        rule: str,
        reading: Reading,
        threshold: float,
        **fields: Any,
    ) -> None:
        state = self.state
        self.context.recorder.record(
            event_type(
                originator_id=system_stream(state.namespace),
                originator_version=state.version + 1,
                timestamp=now,
                namespace=state.namespace,
                rule=rule,
                value=reading.value,
                threshold=threshold,
                detail=reading.detail,
                **fields,
            )
        )

    def _move(self, now: datetime, raised: list[tuple[str, str]], cleared: str | None) -> None:
        state = self.state
        if state.state != "OPERATIONAL" and not state.cause.startswith(RULE):
            return  # an operator's choice stands until an operator changes it
        severe = next((name for name, severity in raised if severity == "recover"), None)
        if severe is not None and state.state in ("OPERATIONAL", "DEGRADED"):
            self._to("RECOVERY", now, f"alarm {severe}: {state.alarms[severe].detail}", severe)
        elif raised and state.state == "OPERATIONAL":
            name = raised[0][0]
            self._to("DEGRADED", now, f"alarm {name}: {state.alarms[name].detail}", name)
        elif not state.alarms and state.state in ("DEGRADED", "RECOVERY"):
            self._to("OPERATIONAL", now, "every alarm cleared", cleared or "all_clear")
        elif state.state == "RECOVERY" and not self._recovery_left():
            self._to("DEGRADED", now, "no recovery work left; alarms still open", "recovery_done")

    def _to(self, target: Any, now: datetime, reason: str, rule: str) -> None:
        alarm = rule if rule in self.state.alarms else None
        before = self.state.state
        event = transition_event(
            self.state, target, now, reason=reason, cause=f"{RULE}{rule}", alarm=alarm
        )
        self.context.recorder.record(event)
        if before == "OPERATIONAL":
            self.context.recorder.record(system_heal_taken(self.state, event, rule))

    def _recovery_left(self) -> bool:
        """Whether an attempt of the namespace is open or a job tried before waits."""
        namespace = self.context.namespace
        jobs = self.context.views.jobs
        if any(jobs.jobs[job_id].namespace == namespace for job_id in jobs.leased):
            return True
        return any(job.namespace == namespace and job.attempt > 0 for job in jobs.queued())
