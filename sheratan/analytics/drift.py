"""Drift: latency and cost per (intent, action) per time window, against a baseline.

The baseline of an (intent, action) is its first window (the reference period, when it was
first seen); every later window's p50/p95 is compared with it as a ratio, and a window is
flagged when a ratio leaves ``[1/RATIO_LIMIT, RATIO_LIMIT]``. Percentile ratios see a level
shift only once a window is mostly past it, so each decision's latency and cost, normalized
against the baseline (``(x - p50) / (p95 - p50)``, the scale score v1 uses), also runs
through a two-sided Page-Hinkley test, which alarms on a sustained shift of the mean within a
few dozen observations; the window holding an alarm is flagged too.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from sheratan.analytics import PH_DELTA, PH_LAMBDA

if TYPE_CHECKING:  # the detector runs in the dispatcher, which has no DuckDB session
    from sheratan.analytics.session import Analytics

RATIO_LIMIT = 1.5
METRICS = ("latency_ms", "cost")


@dataclass
class PageHinkley:
    """Two-sided Page-Hinkley change detector on one stream of values.

    ``delta`` is the change of the mean tolerated as noise, ``threshold`` (lambda) how much
    accumulated deviation raises an alarm. After an alarm the detector starts afresh, so a
    second shift is caught as well.
    """

    delta: float = PH_DELTA
    threshold: float = PH_LAMBDA
    count: int = 0
    mean: float = 0.0
    up: float = 0.0
    up_min: float = 0.0
    down: float = 0.0
    down_max: float = 0.0

    def add(self, value: float) -> str | None:
        """Feed one value; returns "up" or "down" on an alarm, else None."""
        self.count += 1
        self.mean += (value - self.mean) / self.count
        self.up += value - self.mean - self.delta
        self.up_min = min(self.up_min, self.up)
        self.down += value - self.mean + self.delta
        self.down_max = max(self.down_max, self.down)
        if self.up - self.up_min > self.threshold:
            self._reset()
            return "up"
        if self.down_max - self.down > self.threshold:
            self._reset()
            return "down"
        return None

    def _reset(self) -> None:
        self.count, self.mean = 0, 0.0
        self.up = self.up_min = self.down = self.down_max = 0.0


@dataclass
class _Series:
    """One (intent, action): its windows' percentiles and the Page-Hinkley detectors."""

    baseline: dict[str, tuple[float, float]]
    detectors: dict[str, PageHinkley] = field(default_factory=dict)
    alarms: dict[Any, list[str]] = field(default_factory=dict)


def normalized(value: float, p50: float, p95: float) -> float:
    """``value`` on the baseline's p50..p95 scale (0 at p50, 1 at p95)."""
    return (value - p50) / max(p95 - p50, 1e-9)


def drift_report(
    analytics: Analytics,
    window: timedelta,
    *,
    intent: str | None = None,
    delta: float = PH_DELTA,
    threshold: float = PH_LAMBDA,
) -> dict[str, Any]:
    """Rows per (intent, action, window) with ratios to the baseline, alarms and flags."""
    seconds = int(window.total_seconds())
    where, params = ("AND intent = ?", [intent]) if intent else ("", [])
    an = analytics
    an.con.execute(
        f"""CREATE OR REPLACE TEMP TABLE drift_rows AS
            SELECT intent, chosen_key AS action, ts, pos, latency_ms, cost,
                   time_bucket(INTERVAL {seconds} SECOND, ts) AS window_start
            FROM decisions WHERE status IS NOT NULL AND chosen_key IS NOT NULL {where}""",
        params,
    )
    windows = an.rows(
        """SELECT intent, action, window_start, count(*) AS n,
                  quantile_cont(latency_ms, 0.5) AS latency_ms_p50,
                  quantile_cont(latency_ms, 0.95) AS latency_ms_p95,
                  quantile_cont(cost, 0.5) AS cost_p50, quantile_cont(cost, 0.95) AS cost_p95
           FROM drift_rows GROUP BY ALL ORDER BY intent, action, window_start"""
    )
    series: dict[tuple[str, str], _Series] = {}
    for row in windows:
        key = (row["intent"], row["action"])
        if key not in series:
            series[key] = _Series(
                {m: (row[f"{m}_p50"], row[f"{m}_p95"]) for m in METRICS},
                {m: PageHinkley(delta, threshold) for m in METRICS},
            )
    observations = an.con.execute(
        "SELECT intent, action, window_start, latency_ms, cost FROM drift_rows ORDER BY pos"
    ).fetchall()
    an.con.execute("DROP TABLE drift_rows")
    _run_detectors(series, observations)
    rows = [_window_row(row, series[(row["intent"], row["action"])]) for row in windows]
    return {
        "ok": True,
        "window": str(window),
        "ratio_limit": RATIO_LIMIT,
        "page_hinkley": {"delta": delta, "lambda": threshold},
        "rows": rows,
        "flagged": [r for r in rows if r["flagged"]],
        "alarms": sum(len(r["alarms"]) for r in rows),
    }


def _run_detectors(
    series: dict[tuple[str, str], _Series], observations: Iterable[tuple[Any, ...]]
) -> None:
    for intent, action, window_start, latency_ms, cost in observations:
        s = series[(intent, action)]
        for metric, value in (("latency_ms", latency_ms), ("cost", cost)):
            p50, p95 = s.baseline[metric]
            direction = s.detectors[metric].add(normalized(value or 0.0, p50, p95))
            if direction is not None:
                s.alarms.setdefault(window_start, []).append(f"{metric} {direction}")


def _window_row(row: dict[str, Any], s: _Series) -> dict[str, Any]:
    out: dict[str, Any] = {
        "intent": row["intent"],
        "action": row["action"],
        "window_start": row["window_start"].strftime("%Y-%m-%dT%H:%M:%SZ"),
        "n": row["n"],
    }
    flagged = False
    for metric in METRICS:
        base50, base95 = s.baseline[metric]
        for q, base in (("p50", base50), ("p95", base95)):
            value = row[f"{metric}_{q}"]
            ratio = value / base if base else (1.0 if not value else float("inf"))
            out[f"{metric}_{q}"] = value
            out[f"{metric}_{q}_ratio"] = ratio
            flagged = flagged or not (1 / RATIO_LIMIT <= ratio <= RATIO_LIMIT)
    out["alarms"] = s.alarms.get(row["window_start"], [])
    out["flagged"] = flagged or bool(out["alarms"])
    return out
