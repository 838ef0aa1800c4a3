"""It installs the way users install (issue 8, point 8): a built wheel, in a fresh venv,
runs init, a simulation and audit verify from outside the source tree, reading its policies
and schemas as package data. Part of the normal suite (about 30 s: a build and a venv)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NOT_SOURCES = shutil.ignore_patterns(
    ".venv", ".git", "build", "dist", "*.egg-info", "__pycache__", ".*_cache", ".hypothesis"
)


def run(*args: str | Path, cwd: Path, code: int = 0) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "SHERATAN_HOME")}
    done = subprocess.run(
        [str(a) for a in args], cwd=cwd, env=env, capture_output=True, text=True, check=False
    )
    assert done.returncode == code, done.stdout + done.stderr
    return done


@pytest.mark.packaging
def test_the_wheel_runs_init_simulate_and_audit_verify_outside_the_source_tree(
    tmp_path: Path,
) -> None:
    source = tmp_path / "source"
    shutil.copytree(ROOT, source, ignore=NOT_SOURCES)  # the build never writes into ours
    dist = tmp_path / "dist"
    run(sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", dist, source, cwd=tmp_path)
    (wheel,) = dist.glob("sheratan-*.whl")

    venv = tmp_path / "venv"
    run(sys.executable, "-m", "venv", venv, cwd=tmp_path)
    python = venv / "bin" / "python"
    run(python, "-m", "pip", "install", "-q", "--no-deps", "--no-index", wheel, cwd=tmp_path)
    # the dependencies come from this interpreter's site-packages, after the venv's own, so
    # the sheratan imported is the wheel's (an editable install's finder is not processed)
    site = run(
        python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])", cwd=tmp_path
    )
    Path(site.stdout.strip(), "deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")

    outside = tmp_path / "elsewhere"
    outside.mkdir()
    where = run(
        python, "-c", "import sheratan, policies, schemas; print(sheratan.__file__)", cwd=outside
    )
    assert Path(where.stdout.strip()).is_relative_to(venv)
    assert not Path(where.stdout.strip()).is_relative_to(ROOT)

    sheratan = venv / "bin" / "sheratan"
    home = outside / "home"
    assert json.loads(run(sheratan, "init", "--home", home, "--json", cwd=outside).stdout)[
        "created"
    ]
    simulated = json.loads(
        run(
            sheratan, "simulate", "--jobs", "50", "--seed", "1", "--home", home, "--json",
            cwd=outside,
        ).stdout
    )  # fmt: skip
    assert simulated["jobs"] == 50
    assert set(simulated["per_worker"]) <= {"fast-cheap", "slow-reliable", "expensive-quality"}
    verified = json.loads(
        run(sheratan, "audit", "verify", "--home", home, "--json", cwd=outside).stdout
    )
    assert verified["ok"] is True
    assert verified["verified"] == verified["events"] > 50
    # the kinds' payload schemas and the shipped gates are found in the wheel too
    refused = run(sheratan, "job", "create", "file_read", "--home", home, cwd=outside, code=2)
    assert "payload does not fit file_read" in refused.stderr
    shown = json.loads(
        run(sheratan, "policy", "show", "--home", home, "--json", cwd=outside).stdout
    )
    assert shown["sources"]["gates"]["forbidden_kinds"] == "policies/gates.json"
    assert "shell_exec" in shown["gates"]["forbidden_kinds"]
    # DecisionView's page, script and style are package data of the wheel (issue 10, 4)
    static = run(
        python,
        "-c",
        "from sheratan.api.ui import _asset; "
        "print(*(len(_asset(n)) for n in ('index.html', 'app.js', 'app.css')))",
        cwd=outside,
    )
    assert all(int(size) > 0 for size in static.stdout.split())
