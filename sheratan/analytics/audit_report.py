"""The audit review: what happened, what was blocked or refused, and whether the chain holds.

Sections: the chain's verification; events by topic; decisions by reason (intent and
outcome of the choice); gates that blocked candidates and why; breaches (decision records
refused by the schema); quarantines of workers and jobs; automatic recoveries (self-heals)
by trigger, action and outcome; anomalies (checks that must come
out zero on a healthy log); replay runs. Every text passes through ``redact``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import msgspec

from sheratan.analytics.session import Analytics
from sheratan.decide.trace import iso_utc
from sheratan.dispatch.breaches import BreachLog
from sheratan.home import Home
from sheratan.reveal import shown
from sheratan.store.audit import Verification
from sheratan.store.factory import open_ledger

#: Checks that count rows which must not exist on a healthy log (SQL over the views).
ANOMALIES: dict[str, str] = {
    "decisions never scored": "SELECT count(*) FROM decisions WHERE status IS NULL",
    "chosen candidate was gated": (
        "SELECT count(*) FROM decisions WHERE chosen >= 0 AND candidates[chosen + 1].gated"
    ),
    "probabilities do not sum to 1": (
        "SELECT count(*) FROM decisions WHERE chosen >= 0 AND abs(list_sum("
        "list_transform(candidates, lambda c: c.probability)) - 1) > 1e-6"
    ),
    "gated candidate with a probability": (
        "SELECT count(*) FROM (SELECT unnest(candidates) AS c FROM decisions) "
        "WHERE c.gated AND c.probability > 0"
    ),
}
TOP_ROWS = 20


def audit_report(
    analytics: Analytics,
    verification: Verification,
    breaches: list[dict[str, Any]],
    *,
    since: int = 1,
    workspace: Path | None = None,
) -> dict[str, Any]:
    """The report as plain data (``render_markdown`` lays it out)."""
    an = analytics
    report = {
        "since": since,
        "last_position": an.last_position,
        "chain": verification.summary(),
        "events_by_topic": an.rows(
            "SELECT topic, count(*) AS count FROM events WHERE pos >= ? "
            "GROUP BY topic ORDER BY count DESC, topic",
            [since],
        ),
        "decisions_by_reason": an.rows(
            """SELECT intent, CASE WHEN chosen < 0 THEN 'ABORT: every candidate gated'
                                   ELSE 'chose ' || chosen_key END AS reason,
                      count(*) AS count, avg(score) AS mean_score
               FROM decisions WHERE pos >= ? GROUP BY ALL ORDER BY count DESC, intent, reason""",
            [since],
        ),
        "gates_blocked": an.rows(
            f"""SELECT g.gate AS gate, coalesce(g.reason, '') AS reason, count(*) AS count
               FROM (SELECT unnest(c.gates) AS g FROM
                     (SELECT unnest(candidates) AS c FROM decisions WHERE pos >= ?))
               WHERE NOT g.passed GROUP BY ALL ORDER BY count DESC, gate LIMIT {TOP_ROWS}""",
            [since],
        ),
        "breaches": {
            "count": len(breaches),
            "recent": [
                {"node_id": b.get("node_id"), "path": b.get("path"), "reason": b.get("reason")}
                for b in breaches[-TOP_ROWS:]
            ],
        },
        "quarantines": [
            {**row, "ts": iso_utc(row["ts"])}
            for row in an.rows(
                f"""SELECT pos, ts, topic, stream, data->>'reason' AS reason FROM events
                   WHERE topic IN ('worker.quarantined', 'job.quarantined') AND pos >= ?
                   ORDER BY pos DESC LIMIT {TOP_ROWS}""",
                [since],
            )
        ],
        "self_heals": an.rows(
            """SELECT trigger, action, outcome, count(*) AS count FROM self_heals
               WHERE pos >= ? GROUP BY ALL ORDER BY count DESC, trigger, action, outcome""",
            [since],
        ),
        "anomalies": {name: an.rows(sql)[0]["count_star()"] for name, sql in ANOMALIES.items()},
        "replay_runs": [
            {
                "pos": row["pos"],
                "ts": iso_utc(row["ts"]),
                "mode": row["mode"],
                "summary": msgspec.json.decode(row["summary"] or "{}"),
            }
            for row in an.rows(
                f"""SELECT pos, ts, data->>'mode' AS mode, data->'summary' AS summary
                   FROM events WHERE topic = 'replay.run' AND pos >= ?
                   ORDER BY pos DESC LIMIT {TOP_ROWS}""",
                [since],
            )
        ],
    }
    return shown(report, reveal=an.raw, workspace=workspace)  # type: ignore[no-any-return]


def home_report(
    home: Home, *, since: int = 1, workspace: Path | None = None, reveal: bool = False
) -> dict[str, Any]:
    """The audit report of a home: verify the chain, read breaches, query the views.

    Paths are shown relative to ``workspace`` (default: the one the engine recorded). With
    ``reveal`` (recorded by the caller) the views hold raw values and nothing is redacted."""
    verification = home.verify()
    breaches = BreachLog(open_ledger(home.path, "breaches")).all()
    with Analytics(home.path, raw=reveal) as analytics:
        workspace = workspace or analytics.recorded_workspace() or Path.cwd()
        return audit_report(analytics, verification, breaches, since=since, workspace=workspace)


def render_markdown(report: dict[str, Any]) -> str:
    """The report as a Markdown document for people (and for pasting into a review)."""
    chain = report["chain"]
    lines = [
        f"# Audit report (positions {report['since']}..{report['last_position']})",
        "",
        "## Chain",
        f"- {chain['verified']}/{chain['events']} events verified: "
        + ("intact" if chain["ok"] else f"**BROKEN** at {chain['first_bad_position']}"),
    ]
    if chain.get("problem"):
        lines.append(f"- problem: {chain['problem']}")
    lines += _section("Events by topic", report["events_by_topic"], ("topic", "count"))
    lines += _section(
        "Decisions by reason",
        report["decisions_by_reason"],
        ("intent", "reason", "count", "mean_score"),
    )
    lines += _section("Gates that blocked", report["gates_blocked"], ("gate", "reason", "count"))
    breaches = report["breaches"]
    lines += [
        "",
        "## Breaches",
        f"{breaches['count']} decision record(s) refused by decision_trace_v1.",
    ]
    lines += _table(breaches["recent"], ("node_id", "path", "reason")) if breaches["recent"] else []
    lines += _section(
        "Quarantines", report["quarantines"], ("pos", "ts", "topic", "stream", "reason")
    )
    lines += _section("Self-heals", report["self_heals"], ("trigger", "action", "outcome", "count"))
    lines += ["", "## Anomalies"]
    lines += [f"- {name}: {count}" for name, count in report["anomalies"].items()]
    runs = [
        {"pos": r["pos"], "ts": r["ts"], "mode": r["mode"], "result": _run_result(r["summary"])}
        for r in report["replay_runs"]
    ]
    lines += _section("Replay runs", runs, ("pos", "ts", "mode", "result"))
    return "\n".join(lines) + "\n"


def _run_result(summary: dict[str, Any]) -> str:
    if "drift" in summary:
        return ", ".join(f"{k} {v}" for k, v in summary["drift"].items())
    if "estimate" in summary and summary.get("mode") == "counterfactual":
        return f"{summary.get('policy')} {summary.get('estimator')} {summary['estimate']:.3f}"
    if "mean_drop" in summary:
        return f"mean drop {summary['mean_drop']}, changed {summary.get('changed')}"
    return ""


def _section(title: str, rows: list[dict[str, Any]], columns: tuple[str, ...]) -> list[str]:
    return ["", f"## {title}", *(_table(rows, columns) if rows else ["(none)"])]


def _table(rows: list[dict[str, Any]], columns: tuple[str, ...]) -> list[str]:
    out = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for row in rows:
        cells = [_cell(row.get(c)) for c in columns]
        out.append("| " + " | ".join(cells) + " |")
    return out


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.3f}"
    return str(value).replace("|", "\\|").replace("\n", " ")
