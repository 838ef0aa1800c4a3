"""Write docs/cli.md from the click group, so the CLI reference never drifts from --help.

Run: python scripts/gen_cli_docs.py (tests/test_cli_docs.py fails when the file is stale).
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from cli import cli  # noqa: E402

HEADER = """# CLI reference

Generated from `--help` by `python scripts/gen_cli_docs.py`; do not edit by hand.
Every command takes `--home DIR` (default `$SHERATAN_HOME` or `./.sheratan`) and `--json`.
Bad input: one line on stderr, exit 2. A failed check: exit 1.
Long work shows progress on stderr: a bar on a terminal; elsewhere a line (label, count,
rate, time) every `$SHERATAN_PROGRESS_EVERY` seconds (10); nothing with `--quiet`, given
before the command or after it. Progress never changes stdout.
"""


def _walk(command: click.Command, path: list[str]) -> list[tuple[list[str], click.Command]]:
    found = [(path, command)]
    if isinstance(command, click.Group):
        for name in sorted(command.commands):
            found += _walk(command.commands[name], [*path, name])
    return found


def render() -> str:
    parts = [HEADER]
    for path, command in _walk(cli, ["sheratan"]):
        if isinstance(command, click.Group) and len(path) > 1:
            continue
        context = click.Context(
            command, info_name=" ".join(path), terminal_width=100, max_content_width=100
        )
        title = " ".join(path)
        parts.append(f"\n## `{title}`\n\n```\n{command.get_help(context).rstrip()}\n```\n")
    return "".join(parts)


if __name__ == "__main__":
    (ROOT / "docs" / "cli.md").write_text(render())
