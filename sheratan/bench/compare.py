"""``bench compare A.json B.json``: the change of every ratio between two ``bench all`` runs.

Ratios, not values, are compared: each is measured against an anchor of its own run, so two
runs on a loaded or a different machine still say whether Sheratan itself moved.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import msgspec

from sheratan.bench.suite import KIND
from sheratan.inputs import InvalidInputError


class NotABenchReportError(InvalidInputError):
    """The file is not a document written by ``bench all --json`` (or ``--out``)."""


def load_report(path: Path) -> dict[str, Any]:
    """A ``bench all`` document, or NotABenchReportError naming the file."""
    refused = f"{path} is not a bench report (written by `sheratan bench all --json`)"
    try:
        document = msgspec.json.decode(path.read_bytes())
    except (OSError, msgspec.DecodeError):
        raise NotABenchReportError(refused) from None
    if not isinstance(document, dict) or document.get("kind") != KIND:
        raise NotABenchReportError(refused)
    benches = document.get("benches")
    if not isinstance(benches, dict) or not all(isinstance(b, dict) for b in benches.values()):
        raise NotABenchReportError(refused)
    return document


def ratios(document: dict[str, Any]) -> dict[str, float]:
    """Every figure's ratio by ``bench/figure`` (information figures included)."""
    found: dict[str, float] = {}
    for bench, part in document["benches"].items():
        for group in ("figures", "info"):
            for name, figure in (part.get(group) or {}).items():
                ratio = figure.get("ratio") if isinstance(figure, dict) else None
                if isinstance(ratio, int | float):
                    found[f"{bench}/{name}"] = float(ratio)
    return found


def compare(first: dict[str, Any], second: dict[str, Any]) -> dict[str, Any]:
    """Figures present in both (ratio in each, relative change), and those in only one."""
    a, b = ratios(first), ratios(second)
    rows = [
        {"figure": name, "first": a[name], "second": b[name], "change": _change(a[name], b[name])}
        for name in [*a, *(n for n in b if n not in a)]
        if name in a and name in b
    ]
    return {
        "figures": rows,
        "only_first": [name for name in a if name not in b],
        "only_second": [name for name in b if name not in a],
        "failed": {"first": first.get("failed", []), "second": second.get("failed", [])},
        "environment": {"first": first.get("environment"), "second": second.get("environment")},
    }


def _change(before: float, after: float) -> float | None:
    """(after - before) / before: +0.10 is a ratio 10% higher; None from a zero ratio."""
    if before == 0 or not math.isfinite(before) or not math.isfinite(after):
        return None
    return (after - before) / before
