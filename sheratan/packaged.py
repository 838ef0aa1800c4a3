"""The files Sheratan reads at run time, shipped as package data (``policies``, ``schemas``).

Found through ``importlib.resources``, never relative to a source file, so a wheel or a plain
``pip install .`` reads the same files as a checkout.
"""

from __future__ import annotations

from importlib.resources import files
from importlib.resources.abc import Traversable


def policy_file(name: str) -> Traversable:
    """A shipped policy file, e.g. ``policy_file("gates.json")``."""
    return files("policies") / name


def schema_file(*parts: str) -> Traversable:
    """A shipped JSON Schema, e.g. ``schema_file("kinds", "file_read.json")``."""
    found = files("schemas")
    for part in parts:
        found = found / part
    return found
