"""`bench store` runs end to end at a tiny size and reports every figure against an anchor.

Speed targets are never asserted here (the bench measures them); only the report's shape is.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from cli import cli

FIGURE_KEYS = {"value", "unit", "anchor", "anchor_value", "ratio", "target", "met"}


def test_bench_store_reports_ratios_against_anchors(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        cli,
        [
            "bench",
            "store",
            "--jobs",
            "20",
            "--rebuild-events",
            "1000",
            "--process-jobs",
            "20",
            "--json",
            "--home",
            str(tmp_path),
        ],
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    figures = report["figures"]
    assert {
        "write_save_per_job_vs_sqlite",
        "read_decode_vs_sqlite",
        "rebuild_jobs_view",
        "get_job",
        "open_for_write_vs_sidecar_load",
        "rebuild_process_vs_decode",
    } <= set(figures)
    for name, figure in figures.items():
        assert set(figure) >= FIGURE_KEYS, name
        assert figure["value"] > 0 and figure["anchor_value"] > 0, name
        assert figure["ratio"] == figure["value"] / figure["anchor_value"], name
    # the rebuild is the product's (sheratan.views), checked against the library path
    verified = figures["rebuild_jobs_view"]["verified_against_library_path"]
    assert verified["equal_position"] and verified["equal_jobs"] and verified["equal_queue"]
    assert "Views.rebuild" in figures["rebuild_jobs_view"]["what"]
    # the second disk anchor: a write+fsync loop of records as large as Sheratan's saves
    save_sized = report["info"]["write_save_per_job_vs_save_sized_fsync_loop"]
    assert set(save_sized) >= FIGURE_KEYS
    assert save_sized["target"] is None and save_sized["met"] is None
    assert save_sized["ratio"] == save_sized["value"] / save_sized["anchor_value"]


def test_bench_decide_reports_cpu_per_decision_and_simulate_rate(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        cli,
        [
            "bench",
            "decide",
            "--decisions",
            "200",
            "--jobs",
            "200",
            "--repeats",
            "1",
            "--replay-jobs",
            "200",
            "--json",
            "--home",
            str(tmp_path),
        ],
    )
    assert result.exit_code == 0, result.output
    figures = json.loads(result.stdout)["figures"]
    assert set(figures) == {
        "decision_cpu",
        "simulate_jobs_per_s",
        "exact_replay_decisions_per_s",
        "exact_replay_2_ranges_decisions_per_cpu_s",
        "replay_process_pace",
        "replay_process_pace_2_workers",
    }
    assert figures["exact_replay_decisions_per_s"]["drift"]["major"] == 0
    for figure in figures.values():
        assert set(figure) >= FIGURE_KEYS
        assert figure["ratio"] == figure["value"] / figure["anchor_value"]


def test_bench_analytics_reports_figures_against_anchors() -> None:
    result = CliRunner().invoke(
        cli,
        [
            "bench",
            "analytics",
            "--decisions",
            "3000",
            "--repeats",
            "1",
            "--counterfactual-decisions",
            "1000",
            "--resamples",
            "50",
            "--json",
        ],
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["decision_events"] >= 3000 and report["events"] > report["decision_events"]
    for key in (
        "why_stats_warm_s",
        "why_stats_query_s",
        "session_open_cold_s",
        "session_open_warm_s",
        "trace_lookup_s",
        "exact_replay_decisions_per_s",
        "counterfactual_dr_s",
    ):
        assert report[key] > 0, key
    assert set(report["anchors"]) >= {"parquet_stats_s", "parquet_trace_s", "msgspec_scan_s"}
    assert all(v > 0 for v in report["anchors"].values())
    assert report["ratios"] and all(v > 0 for v in report["ratios"].values())
    assert set(report["targets"]) == {
        "why_stats_warm_s",
        "why_stats_process_s",
        "trace_lookup_s",
        "exact_replay_decisions_per_s",
        "counterfactual_dr_s",
    }
    for target in report["targets"].values():
        assert target["measured"] > 0 and isinstance(target["met"], bool)
    for name, figure in report["figures"].items():
        assert set(figure) >= FIGURE_KEYS, name
        assert figure["ratio"] == figure["value"] / figure["anchor_value"], name
    # the anchors compute the same stats on the same data, and the replay finds no drift
    assert report["checks"]["same_count"] and report["checks"]["same_mean_score"]
    assert report["checks"]["exact_replay_ok"]


def test_bench_audit_reports_verify_prove_and_proof_size(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        cli, ["bench", "audit", "--quick", "--json", "--home", str(tmp_path)]
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["events"] == 50_000 and report["log_bytes"] > 0
    figures = report["figures"]
    assert set(figures) == {"verify_vs_sha256", "prove_latency", "proof_path_vs_log2"}
    assert set(report["info"]) == {
        "tree_cache_build",
        "verify_pubkey_tree_heads",
        "prove_cli_process",
    }
    for name, figure in {**figures, **report["info"]}.items():
        assert set(figure) >= FIGURE_KEYS, name
        assert figure["value"] > 0 and figure["anchor_value"] > 0, name
        assert figure["ratio"] == figure["value"] / figure["anchor_value"], name
    # the path is O(log n): never longer than ceil(log2 n) nodes
    assert figures["proof_path_vs_log2"]["anchor_value"] == 16  # ceil(log2 50,000)
    assert figures["proof_path_vs_log2"]["met"] is True
    assert all(f["target"] is None and f["met"] is None for f in report["info"].values())


def test_bench_runtime_reports_latency_throughput_and_idle_cpu(tmp_path: Path) -> None:
    """Real processes at a tiny size: a dispatcher and two worker daemons, stopped after."""
    result = CliRunner().invoke(
        cli,
        ["bench", "runtime", "--samples", "10", "--jobs", "100", "--json", "--home", str(tmp_path)],
    )
    assert result.exit_code == 0, result.output
    figures = json.loads(result.stdout)["figures"]
    assert set(figures) == {
        "create_to_start_p50",
        "create_to_start_p99",
        "create_to_start_p50_in_fsyncs",
        "end_to_end_jobs_per_s",
        "idle_dispatcher_cpu",
        "idle_worker_cpu",
    }
    for name, figure in figures.items():
        assert set(figure) >= FIGURE_KEYS, name
        assert figure["anchor_value"] > 0, name
        assert figure["ratio"] == figure["value"] / figure["anchor_value"], name
    assert figures["create_to_start_p50"]["value"] <= figures["create_to_start_p99"]["value"]
    assert figures["end_to_end_jobs_per_s"]["value"] > 0


def test_bench_api_reports_its_figures_against_their_anchors(tmp_path: Path) -> None:
    """Real servers on 127.0.0.1 (a bare Litestar route, then sheratan serve), a real outside
    worker's round trips, and DecisionView in Chromium where Debian's chromium is installed."""
    result = CliRunner().invoke(
        cli,
        [
            *("bench", "api", "--only", "create", "--only", "pull", "--only", "page"),
            *("--requests", "80", "--rounds", "20", "--decisions", "20"),
            *("--json", "--home", str(tmp_path)),
        ],
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    figures = report["figures"]
    expected = {"job_create_per_s", "claim_result_p50", "page_first_render"}
    assert set(figures) | set(report["skipped"]) == expected
    for name, figure in figures.items():
        assert set(figure) >= FIGURE_KEYS, name
        assert figure["value"] > 0 and figure["anchor_value"] > 0, name
        assert figure["ratio"] == figure["value"] / figure["anchor_value"], name
    assert figures["claim_result_p50"]["rounds"] == 20
    assert figures["claim_result_p50"]["p99_ms"] >= figures["claim_result_p50"]["value"]


def test_bench_api_only_views_times_the_slider_against_a_fold_from_zero(tmp_path: Path) -> None:
    """A small log: the shape of the figures and the history's report (speed is the bench's)."""
    result = CliRunner().invoke(
        cli,
        ["bench", "api", "--only", "views", "--events", "2000", "--json", "--home", str(tmp_path)],
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert set(report["figures"]) == {"views_at_worst_s", "views_at_median_s"}
    for figure in report["figures"].values():
        assert set(figure) >= FIGURE_KEYS
        assert figure["ratio"] == figure["value"] / figure["anchor_value"]
        assert figure["target"] == "<= 1 s"
    views = report["views"]
    assert views["events"] == 2000 and len(views["seconds_at"]) >= 10
    assert views["history_bytes"] == sum(h["bytes"] for h in views["history"].values())
    assert views["jobs_view_snapshot_bytes"] > 0


@pytest.mark.parametrize(
    ("args", "needle"),
    [(["--only", "nope"], "'nope' is not one of"), (["--events", "10"], "--events")],
)
def test_bench_api_refuses_bad_options_in_one_line(
    tmp_path: Path, args: list[str], needle: str
) -> None:
    result = CliRunner().invoke(cli, ["bench", "api", *args, "--home", str(tmp_path)])
    assert result.exit_code == 2
    assert len(result.stderr.strip().splitlines()) == 1
    assert needle in result.stderr


def test_bench_cli_times_the_start_against_a_bare_interpreter(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        cli, ["bench", "cli", "--repeats", "1", "--json", "--home", str(tmp_path)]
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert set(report["figures"]) == {"cli_help", "job_show", "job_create"}
    for name, figure in report["figures"].items():
        assert set(figure) >= FIGURE_KEYS, name
        assert figure["anchor"] == "python -c pass"
        assert figure["value"] > 0 and figure["anchor_value"] > 0, name
        assert figure["target"] is not None and figure["met"] in (True, False)
    for figure in report["info"].values():
        assert figure["target"] is None and figure["met"] is None


def test_bench_scale_measures_or_skips_every_figure_on_postgres(postgres_dsn: str) -> None:
    """Tiny sizes on the test server: the recorder figure, the dispatch curve (measured once
    dispatch runs on PostgreSQL, else skipped with the dispatcher's own line), the lag."""
    result = CliRunner().invoke(
        cli,
        [
            *("bench", "scale", "--dsn", postgres_dsn, "--events-jobs", "400"),
            *("--jobs", "20", "--dispatchers", "2", "--repeats", "1", "--load-seconds", "1"),
            "--json",
        ],
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    figures, skipped = report["figures"], report["skipped"]
    assert set(figures) | set(skipped) == {
        "recorder_events_per_s",
        "dispatch_2_vs_1",
        "exporter_lag",
    }
    assert not set(figures) & set(skipped)
    assert all(isinstance(why, str) and why for why in skipped.values())
    for name, figure in {**figures, **report["info"]}.items():
        assert set(figure) >= FIGURE_KEYS, name
        assert figure["value"] > 0 and figure["anchor_value"] > 0, name
        assert figure["ratio"] == figure["value"] / figure["anchor_value"], name
    assert figures["recorder_events_per_s"]["events"] >= 2_000
    if "dispatch_2_vs_1" in figures:
        assert set(report["info"]["dispatch_1"]["curve"]) == {"1", "2"}


@pytest.mark.parametrize(
    ("dsn", "needle"),
    [
        ("postgresql://u@127.0.0.1:5432/db?sslmode=disable", "bad --dsn: only host"),
        (
            "postgresql://u@127.0.0.1:1/db",
            "cannot reach PostgreSQL at postgresql://u@127.0.0.1:1/db",
        ),
    ],
)
def test_bench_scale_refuses_a_bad_dsn_in_one_line(tmp_path: Path, dsn: str, needle: str) -> None:
    result = CliRunner().invoke(cli, ["bench", "scale", "--dsn", dsn, "--home", str(tmp_path)])
    assert result.exit_code == 2
    assert len(result.stderr.strip().splitlines()) == 1
    assert result.stderr.startswith("error: ") and needle in result.stderr
