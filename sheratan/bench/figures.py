"""What every bench report shares: a figure against its anchor, and the machine it ran on."""

from __future__ import annotations

import os
import platform
import time
from collections.abc import Callable
from importlib import metadata
from typing import Any, TypeVar

T = TypeVar("T")


def figure(
    value: float,
    unit: str,
    anchor: str,
    anchor_value: float,
    target: str | None,
    met: bool | None,
    **extra: Any,
) -> dict[str, Any]:
    """One measured figure, its anchor from the same run, the ratio and the target (None for
    figures reported only as information)."""
    return {
        "value": value,
        "unit": unit,
        "anchor": anchor,
        "anchor_value": anchor_value,
        "ratio": value / anchor_value,
        "target": target,
        "met": met,
        **extra,
    }


def environment(packages: tuple[str, ...], **extra: Any) -> dict[str, Any]:
    """Python, platform, CPUs, load and the versions of ``packages``: a figure's context."""
    versions: dict[str, str | None] = {}
    for package in packages:
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = None
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "load_average": list(os.getloadavg()),
        **extra,
        **versions,
    }


def timed(fn: Callable[[], T]) -> tuple[float, T]:
    """Seconds ``fn()`` took, and what it returned."""
    began = time.perf_counter()
    result = fn()
    return time.perf_counter() - began, result
