"""The CLI starts without what its command does not use: a regression guard on imports.

Each test runs the real CLI in a subprocess under ``python -X importtime`` and reads which
modules it imported (the timing itself lives in ``sheratan bench cli``)."""

from __future__ import annotations

import importlib
import subprocess
import sys
from pathlib import Path

import pytest

import cli as cli_module
from tests.cli_helpers import invoke

CLI = Path(cli_module.__file__)
#: Never loaded by ``--help`` nor ``job show``: the analytics and replay engines, the HTTP
#: server, the test-only property library.
HEAVY = ("duckdb", "numpy", "litestar", "uvicorn", "jsonschema", "hypothesis")


def imported(*args: str) -> set[str]:
    """The modules ``cli.py ARGS`` imports, from its ``-X importtime`` report."""
    done = subprocess.run(
        [sys.executable, "-X", "importtime", str(CLI), *args],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return {
        line.rsplit("|", 1)[1].strip()
        for line in done.stderr.splitlines()
        if line.startswith("import time:") and "|" in line
    }


def top_level(modules: set[str]) -> set[str]:
    return {name.split(".")[0] for name in modules}


def test_help_imports_no_engine_nor_store() -> None:
    modules = imported("--help")
    assert not top_level(modules) & set(HEAVY), top_level(modules) & set(HEAVY)
    assert "sheratan.store.ledger" not in modules
    assert "eventsourcing" not in top_level(modules)


def test_job_show_imports_no_duckdb_nor_numpy(tmp_path: Path) -> None:
    home = tmp_path / "home"
    invoke(home, "init")
    job_id = invoke(home, "job", "create", "noop").stdout.strip()
    modules = imported("job", "show", job_id, "--home", str(home))
    assert "sheratan.store.ledger" in modules  # it did open the home
    assert not top_level(modules) & set(HEAVY), top_level(modules) & set(HEAVY)


@pytest.mark.parametrize("name", cli_module.BAD_INPUT + cli_module.FAILED_CHECK)
def test_every_classified_error_names_its_defining_module(name: str) -> None:
    module, _, attribute = name.rpartition(".")
    error = getattr(importlib.import_module(module), attribute)
    assert issubclass(error, Exception)
    assert error.__module__ == module  # raised from here: loaded_errors finds it loaded


def test_an_error_of_a_lazily_imported_module_is_still_one_line(tmp_path: Path) -> None:
    home = tmp_path / "home"
    invoke(home, "init")
    done = subprocess.run(
        [sys.executable, str(CLI), "sql", "DELETE FROM events", "--home", str(home)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), done.stderr
