"""Readable text for why, stats, drift and replay answers (the CLI's default output).

Layout only: every value shown here was already redacted by the service that produced it.
"""

from __future__ import annotations

from typing import Any

from events.accounts import units
from sheratan.render import table


def _num(value: Any, digits: int = 3) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def charge_text(charge: dict[str, Any]) -> str:
    """The charge of the attempt a decision leased: held, then settled or released."""
    held = f"held {units(charge['held_micros'])} of account {charge['account_id']}"
    held += f" for attempt {charge['attempt']}"
    if charge["status"] == "settled":
        return (
            f"charge: {held}; settled {units(charge['cost_micros'])}, "
            f"released {units(charge['released_micros'])}"
        )
    if charge["status"] == "released":
        return f"charge: {held}; released ({charge['why']})"
    return f"charge: {held}; still held"


def heal_text(heal: dict[str, Any]) -> str:
    """The self-heal a recovery decision took: trigger, action and how it turned out."""
    outcome, detail = heal["outcome"], heal["outcome_detail"]
    if detail and not detail.startswith(outcome):
        outcome = f"{outcome} ({detail})"
    elif detail:
        outcome = detail
    return (
        f"self-heal: {heal['action']} after {heal['trigger']} "
        f"(confidence {_num(heal['confidence'])}), outcome {outcome}"
    )


def node_text(node: dict[str, Any]) -> str:
    """One decision node: what was chosen, over what, why, and how it turned out."""
    chosen = node["chosen"]
    result = node["result"]
    lines = [
        f"decision {node['node_id']} ({node['intent']}, depth {node['depth']}) "
        f"at {node['timestamp']}, position {node['position']}",
        f"  trace {node['trace_id']}, job {node['job_id']}",
        f"  chose {chosen.get('action_key', chosen['type'])}: {node['reason']}",
        f"  result {result['status']}, score {_num(result['score'])}, latency "
        f"{_num(result['latency_ms'], 1)} ms, cost {_num(result['cost'])}"
        + (f", error {result['error']['code']}" if result["error"] else ""),
    ]
    charge = node.get("charge")
    if charge:
        lines.append("  " + charge_text(charge))
    heal = node.get("self_heal")
    if heal:
        lines.append("  " + heal_text(heal))
    rows = []
    for c in [chosen, *node["alternatives"]]:
        if "action_key" not in c:
            continue
        failed = [
            g["gate"] + (f" ({g['reason']})" if g["reason"] else "")
            for g in c["gates"]
            if not g["passed"]
        ]
        rows.append(
            (
                "*" if c is chosen else "",
                c["action_key"],
                _num(c["select_score"]),
                _num(c["probability"]),
                _num(c["mean"]),
                c["visits"],
                "; ".join(failed) or "pass",
            )
        )
    if rows:
        headers = ("", "candidate", "select", "p", "mean", "visits", "gates")
        lines += ["  " + line for line in table(rows, headers).splitlines()]
    breakdown = node.get("breakdown")
    if breakdown:
        terms = ", ".join(
            f"{k} {_num(breakdown[k])}" for k in ("S", "Q", "R", "L_norm", "C_norm", "K")
        )
        lines.append(f"  breakdown: {terms} (baseline {breakdown['baseline']['source']})")
    if node["artifacts"]:
        lines.append(f"  artifacts: {', '.join(node['artifacts'])}")
    return "\n".join(lines)


def stats_text(stats: dict[str, Any]) -> str:
    scope = stats["intent"] or "all intents"
    window = f" since {stats['since']}" if stats["since"] else ""
    lines = [
        f"{scope}{window}: {stats['count']} scored decisions, success rate "
        f"{_num(stats['success_rate'])}, mean score {_num(stats['mean_score'])}",
        f"latency p50/p95 {_num(stats['latency_p50_ms'], 1)}/{_num(stats['latency_p95_ms'], 1)}"
        f" ms, cost p50/p95 {_num(stats['cost_p50'])}/{_num(stats['cost_p95'])}",
        "",
    ]
    rows = [
        (
            a["intent"],
            a["action"],
            a["count"],
            _num(a["success_rate"]),
            _num(a["mean_score"]),
            _num(a["latency_p50_ms"], 1),
            _num(a["latency_p95_ms"], 1),
            _num(a["cost_p50"]),
            _num(a["cost_p95"]),
        )
        for a in stats["per_action"]
    ]
    headers = ("intent", "action", "n", "success", "score", "lat p50", "lat p95", "c p50", "c p95")
    lines.append(table(rows, headers))
    if stats["failure_codes"]:
        lines += [
            "",
            "failure codes: "
            + ", ".join(f"{f['code']} {f['count']}" for f in stats["failure_codes"]),
        ]
    if stats["self_heal"]:
        lines += [
            "",
            "self-heal (trigger, action: outcome): "
            + ", ".join(
                f"{h['trigger']}, {h['action']}: {h['outcome']} {h['count']}"
                for h in stats["self_heal"]
            ),
        ]
    return "\n".join(lines)


def drift_text(report: dict[str, Any]) -> str:
    rows = [
        (
            "!" if r["flagged"] else "",
            r["intent"],
            r["action"],
            r["window_start"],
            r["n"],
            f"{_num(r['latency_ms_p50'], 1)} ({_num(r['latency_ms_p50_ratio'], 2)}x)",
            f"{_num(r['latency_ms_p95'], 1)} ({_num(r['latency_ms_p95_ratio'], 2)}x)",
            f"{_num(r['cost_p50'])} ({_num(r['cost_p50_ratio'], 2)}x)",
            ", ".join(r["alarms"]) or "-",
        )
        for r in report["rows"]
    ]
    headers = ("", "intent", "action", "window", "n", "lat p50", "lat p95", "cost p50", "alarms")
    return (
        table(rows, headers)
        + f"\n\n{len(report['flagged'])} flagged window(s), {report['alarms']} Page-Hinkley "
        f"alarm(s); baseline = each action's first window, flag outside "
        f"1/{report['ratio_limit']}..{report['ratio_limit']}x"
    )


def _counterfactual_text(summary: dict[str, Any]) -> str:
    low, high = summary["ci"]
    gated = summary["target_gated"]
    by_gate = ", ".join(f"{gate} {n}" for gate, n in gated["by_gate"].items())
    lines = [
        f"{summary['policy']} ({summary['estimator']}, {summary['intent']}): estimate "
        f"{_num(summary['estimate'])}, {summary['confidence']:.0%} interval "
        f"[{_num(low)}, {_num(high)}]; n {summary['n']}, effective sample size "
        f"{_num(summary['ess'], 1)}; logged policy's mean {_num(summary['logged_mean'])}",
        f"  the target's action was gated in {gated['decisions']} decision(s) "
        f"({gated['share']:.1%})" + (f": {by_gate}" if by_gate else ""),
    ]
    warning = summary["logged_quarantines"]["warning"]
    if warning:
        lines.append(f"  warning: {warning}")
    return "\n".join(lines)


def replay_text(summary: dict[str, Any]) -> str:
    mode = summary["mode"]
    if mode == "exact":
        drift = summary["drift"]
        lines = [
            f"exact replay of {summary['decisions']} decision(s), {summary['scores_checked']} "
            f"score(s): drift none {drift['none']}, minor {drift['minor']}, major {drift['major']}"
        ]
        if summary["worker_health_differs"]:
            lines.append(
                f"  worker health a decision recorded differs from the fold in "
                f"{summary['worker_health_differs']} decision(s) (minor; see the findings)"
            )
        lines += [
            f"  {f['drift']} at {f['position']} ({f['node_id']}): {'; '.join(f['differences'])}"
            for f in summary["findings"]
        ]
        return "\n".join(lines)
    if mode == "counterfactual":
        return _counterfactual_text(summary)
    if mode == "counterfactual_at":
        evidence = summary["evidence"]
        return (
            f"{summary['action']} at {summary['node_id']}: {_num(summary['estimate'])} "
            f"({summary['estimate_kind']}; {evidence['observations']} observation(s)); "
            f"actually chosen {summary['actual']['action']}, score "
            f"{_num(summary['actual']['score'])}"
        )
    lines = [
        f"regression over {summary['decisions']} decision(s): mean score "
        f"{_num(summary['mean_score_old'])} -> {_num(summary['mean_score_new'])}, "
        f"{summary['changed']} choice(s) change ({summary['changed_share']:.1%})"
    ]
    lines += [
        f"  {t['position']} {t['intent']}: {t['old_choice']} -> {t['new_choice']} "
        f"(select {t['select_change']:+.3f})"
        for t in summary["top_changed"]
    ]
    return "\n".join(lines)
