"""`bench store` runs end to end at a tiny size and reports every figure against an anchor.

Speed targets are never asserted here (the bench measures them); only the report's shape is.
"""

from __future__ import annotations

import json
from pathlib import Path

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
            "--json",
            "--home",
            str(tmp_path),
        ],
    )
    assert result.exit_code == 0, result.output
    figures = json.loads(result.stdout)["figures"]
    assert set(figures) == {"decision_cpu", "simulate_jobs_per_s"}
    for figure in figures.values():
        assert set(figure) >= FIGURE_KEYS
        assert figure["ratio"] == figure["value"] / figure["anchor_value"]
