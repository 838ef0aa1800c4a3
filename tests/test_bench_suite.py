"""`bench all` runs every bench of the registry in one process and writes one document;
`bench compare` sets two documents side by side. Real processes, stderr captured (a pipe).

Speed is never asserted (the benches measure it); the document's shape and the progress
lines are.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest
from process_helpers import run_cli

from sheratan.bench.suite import KIND, NAMES
from sheratan.progress import EVERY_ENV

FIGURE_KEYS = {"value", "unit", "anchor", "anchor_value", "ratio", "target", "met"}


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any], str]:
    """One `bench all --quick --json --out` (about a minute): its file, document and stderr."""
    folder = tmp_path_factory.mktemp("suite")
    out = folder / "a.json"
    done = run_cli(
        folder / "home", "bench", "all", "--quick", "--json", "--out", str(out),
        env={EVERY_ENV: "0.05"},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert json.loads(out.read_text()) == json.loads(done.stdout)
    return out, json.loads(done.stdout), done.stderr


def test_bench_all_quick_gives_every_bench_with_a_ratio_for_every_figure(
    quick_run: tuple[Path, dict[str, Any], str],
) -> None:
    _, document, _ = quick_run
    assert document["kind"] == KIND and document["quick"] is True
    assert document["failed"] == []
    assert set(document["benches"]) == set(NAMES)
    assert {"python", "platform", "cpus", "load_average", "msgspec"} <= set(document["environment"])
    for bench, part in document["benches"].items():
        assert part["figures"] or part["skipped"], bench  # bench scale without PostgreSQL
        assert all(isinstance(why, str) and why for why in part.get("skipped", {}).values())
        assert part["seconds"] > 0
        for name, figure in {**part["figures"], **part["info"]}.items():
            assert set(figure) >= FIGURE_KEYS, (bench, name)
            assert isinstance(figure["ratio"], float) and math.isfinite(figure["ratio"])


def test_bench_all_shows_what_each_bench_is_doing_on_stderr(
    quick_run: tuple[Path, dict[str, Any], str],
) -> None:
    _, _, stderr = quick_run
    for number, name in enumerate(NAMES, 1):
        assert f"bench {name} ({number}/{len(NAMES)}): " in stderr
    assert "\ngenerating jobs: " in stderr  # bench analytics generating its log


def test_bench_compare_lists_every_figure_of_both_runs(
    quick_run: tuple[Path, dict[str, Any], str], tmp_path: Path
) -> None:
    first, document, _ = quick_run
    second = tmp_path / "b.json"
    done = run_cli(
        tmp_path / "home", "--quiet", "bench", "all", "--quick", "--only", "decide",
        "--only", "accounts", "--out", str(second),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    assert "decide/decision_cpu" in done.stdout  # the text table

    compared = json.loads(
        run_cli(tmp_path, "bench", "compare", str(first), str(second), "--json").stdout
    )
    everything = {
        f"{bench}/{name}"
        for bench, part in document["benches"].items()
        for name in {**part["figures"], **part["info"]}
    }
    both = {row["figure"] for row in compared["figures"]}
    assert both | set(compared["only_first"]) == everything
    assert both == {f for f in everything if f.split("/")[0] in {"decide", "accounts"}}
    assert compared["only_second"] == []
    for row in compared["figures"]:
        assert row["change"] == pytest.approx(row["second"] / row["first"] - 1)

    text = run_cli(tmp_path, "bench", "compare", str(first), str(second)).stdout
    assert all(name in text for name in everything)
    assert f"only in {first}: store/" in text


@pytest.mark.parametrize(
    "content",
    [b"not json at all", b'{"figures": {}}', b"[1, 2]", b'{"kind": "sheratan.bench.all"}'],
)
def test_bench_compare_refuses_a_file_that_is_not_a_bench_report(
    tmp_path: Path, content: bytes
) -> None:
    bad = tmp_path / "bad.json"
    bad.write_bytes(content)
    done = run_cli(tmp_path, "bench", "compare", str(bad), str(bad))
    assert done.returncode == 2
    assert done.stderr == (
        f"error: {bad} is not a bench report (written by `sheratan bench all --json`)\n"
    )
    assert done.stdout == ""


def test_bench_all_refuses_an_unknown_bench_in_one_line(tmp_path: Path) -> None:
    done = run_cli(tmp_path, "bench", "all", "--only", "nope")
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and "no bench 'nope'" in done.stderr
