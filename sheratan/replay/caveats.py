"""What an off-policy estimate cannot see: gated target actions and the logged policy's quarantines.

Importance weighting reweights the decisions as they were logged, in the states they were
logged in. Two things bend that picture, and ``replay --counterfactual`` reports both:

- **the target's action was gated**: in such a decision the target policy could not have
  done what it wanted (``always:w`` with w quarantined, say) and falls back to another
  candidate, so its estimate is partly the fallback's. Counted per decision and per gate.
- **the logged policy's own consequential actions shaped the states**: a QUARANTINE it chose
  took a worker out of every decision for the cooldown. A target policy that would not have
  quarantined would have seen that worker open; the log holds no such state, so the estimate
  averages over states the target would not have reached. Counted, with the workers named.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any

import duckdb
import numpy as np

from sheratan.decide.selection import SelectionPolicy

#: Each chosen QUARANTINE of a recovery decision, with the cooldown of the policy it ran under.
_QUARANTINES = """
    SELECT d.pos, epoch_us(d.ts) AS ts, d.candidates[d.chosen + 1].params->>'worker' AS worker,
           (p.data->'gates'->>'quarantine_cooldown_s')::DOUBLE AS cooldown_s
    FROM decisions d
    LEFT JOIN (SELECT data FROM events WHERE topic = 'policy.recorded') p
           ON p.data->>'policy_id' = d.policy_id
    WHERE d.chosen >= 0 AND d.action_type = 'QUARANTINE' AND d.pos <= ?
    ORDER BY d.pos
"""


def preferred(
    target: SelectionPolicy,
    unconstrained: list[float],
    workers: list[str],
    explorable: list[bool],
) -> list[int]:
    """The candidates the target would take were nothing gated: ``always:w``'s candidate on
    w, ``ucb``'s best select score, every explorable candidate for ``random``."""
    if target.name == "always":
        return next(([i] for i, w in enumerate(workers) if w == target.worker), [])
    if target.name == "random":
        return [i for i, ok in enumerate(explorable) if ok]
    return [max(range(len(unconstrained)), key=lambda i: (unconstrained[i], -i))]


@dataclass
class TargetGated:
    """In how many decisions a candidate the target wanted was gated, and by which gates."""

    decisions: int = 0
    by_gate: Counter[str] | None = None

    def note(self, failed_gates: list[list[str]], wanted: list[int]) -> None:
        gates = {gate for i in wanted for gate in failed_gates[i]}
        if gates:
            self.decisions += 1
            self.by_gate = (self.by_gate or Counter()) + Counter(gates)

    def summary(self, n: int) -> dict[str, Any]:
        return {
            "decisions": self.decisions,
            "share": self.decisions / n if n else 0.0,
            "by_gate": dict(sorted((self.by_gate or Counter()).items())),
        }


def logged_quarantines(
    con: duckdb.DuckDBPyConnection,
    first_ts_us: int,
    last_pos: int,
    decisions: list[tuple[int, list[tuple[str, list[str]]]]],
) -> dict[str, Any]:
    """The QUARANTINEs the logged policy chose whose cooldown reached into the estimate's
    decisions (``first_ts_us`` on, up to ``last_pos``), and the decisions of the estimate in
    which a worker it quarantined was gated while that quarantine held.

    ``decisions``: per decision its time (us) and (worker, failed gates) per candidate.
    """
    rows = con.execute(_QUARANTINES, [last_pos]).fetchall()
    spans: dict[str, list[tuple[int, float]]] = {}
    count = 0
    for _, ts, worker, cooldown_s in rows:
        until = np.inf if cooldown_s is None else ts + cooldown_s * 1e6
        if until < first_ts_us:
            continue  # over before the first decision the estimate averages over
        count += 1
        spans.setdefault(worker, []).append((ts, until))
    affected = sum(
        1
        for ts, candidates in decisions
        if any(
            "G0_barrier" in failed and any(a <= ts < b for a, b in spans.get(worker, ()))
            for worker, failed in candidates
        )
    )
    workers = sorted(spans)
    warning = None
    if count:
        warning = (
            f"the logged policy quarantined {', '.join(workers)} {count} time(s) while these "
            f"decisions were made; {affected} decision(s) saw a worker it had quarantined gated. "
            "A target policy that would not have quarantined would have seen other states: "
            "the estimate averages over the logged policy's states"
        )
    return {
        "count": count,
        "workers": workers,
        "decisions_affected": affected,
        "warning": warning,
    }
