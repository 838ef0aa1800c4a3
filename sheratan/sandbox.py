"""The workspace sandbox: which paths a job may name, defined once for the gates and the worker.

A path must be relative, must not climb out with ``..``, must not start with a forbidden
prefix (``.env``, ``.ssh``, ...), and must stay inside the workspace once symlinks are
followed. The path gate (G3) checks it at every decision (with a cached resolver); the local
worker checks again, uncached, at the moment it opens the file.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from pathlib import Path, PurePosixPath


def path_problem(
    text: str,
    workspace: Path,
    forbidden_prefixes: tuple[str, ...],
    inside: Callable[[str, str], bool] | None = None,
) -> str | None:
    """Why ``text`` may not be used as a path inside ``workspace``, or None.

    ``inside`` decides whether the path stays inside once symlinks are followed (default:
    ``resolves_inside``, resolved now).
    """
    problem = shape_problem(text, forbidden_prefixes)
    if problem is None and not (inside or resolves_inside)(str(workspace), normal_path(text)):
        return f"path {text!r} resolves outside the workspace"
    return problem


def normal_path(text: str) -> str:
    """The path with forward slashes, as it is checked and resolved."""
    return text.replace("\\", "/")


def shape_problem(text: str, forbidden_prefixes: tuple[str, ...]) -> str | None:
    """What the text of a path alone forbids (the filesystem aside), or None: a NUL byte, an
    absolute path, climbing out with ``..``, a forbidden prefix. A pure function of its
    arguments, so the gates cache it."""
    if "\x00" in text:
        return f"path {text!r} holds a NUL byte"
    normal = normal_path(text)
    if normal.startswith(("/", "~")) or re.match(r"^[A-Za-z]:", normal):
        return f"absolute path {text!r}"
    parts = PurePosixPath(normal).parts
    if ".." in parts:
        return f"path {text!r} climbs out with '..'"
    if parts and any(
        parts[0] == prefix or normal.startswith(prefix + "/") for prefix in forbidden_prefixes
    ):
        return f"path {text!r} is under a forbidden prefix"
    return None


def resolves_inside(workspace: str, relative: str) -> bool:
    """Whether ``relative`` stays inside ``workspace`` once symlinks are followed."""
    root = os.path.realpath(workspace)
    resolved = os.path.realpath(os.path.join(root, relative))
    return resolved == root or resolved.startswith(root.rstrip("/") + "/")
