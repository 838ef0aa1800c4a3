"""The local transport: built-in kinds executed in-process, every path confined to a workspace.

Gate G3 already refused paths that leave the workspace; this executor checks again at the
moment of use (a symlink may have appeared since), because a gate is not a sandbox.
"""

from __future__ import annotations

import hashlib
import time
from pathlib import Path
from typing import Any

import msgspec

from events.decisions import ErrorInfo
from projections.jobs import JobState
from projections.workers import WorkerState
from sheratan.sandbox import path_problem
from sheratan.store.files import write_durably
from sheratan.workers.kinds import (
    FileReadPayload,
    FileWritePayload,
    PatchApplyPayload,
    validate_payload,
)
from sheratan.workers.outcome import Outcome

MAX_FILE_BYTES = 16 * 1024 * 1024


class ExecutionError(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


class LocalTransport:
    def __init__(self, workspace: Path, forbidden_prefixes: tuple[str, ...] = ()) -> None:
        self.workspace = workspace.resolve()
        self.forbidden_prefixes = forbidden_prefixes

    def execute(self, job: JobState, worker: WorkerState) -> Outcome:
        started = time.perf_counter()
        try:
            result = self._run(job)
        except ExecutionError as error:
            elapsed = (time.perf_counter() - started) * 1000
            return Outcome(False, elapsed, error=ErrorInfo(error.code, str(error)))
        elapsed = (time.perf_counter() - started) * 1000
        artifacts = (f"file:{result['path']}",) if "path" in result else ()
        return Outcome(True, elapsed, 0.0, 1.0, 0.0, result=result, artifacts=artifacts)

    def _run(self, job: JobState) -> dict[str, Any]:
        problem = validate_payload(job.kind, job.payload)
        if problem:
            raise ExecutionError("bad_payload", problem)
        if job.kind == "noop":
            return {}
        if job.kind == "file_read":
            read = msgspec.convert(job.payload, FileReadPayload)
            data = self._path(read.path).read_bytes()[: MAX_FILE_BYTES + 1]
            if len(data) > MAX_FILE_BYTES:
                raise ExecutionError("too_large", f"{read.path} is over {MAX_FILE_BYTES} bytes")
            return _file_result(read.path, data)
        if job.kind == "file_write":
            write = msgspec.convert(job.payload, FileWritePayload)
            data = write.content.encode()
            self._write(write.path, data)
            return _file_result(write.path, data)
        if job.kind == "patch_apply":
            patch = msgspec.convert(job.payload, PatchApplyPayload)
            text = self._path(patch.path).read_text(encoding="utf-8")
            if text.count(patch.old) != 1:
                found = text.count(patch.old)
                raise ExecutionError(
                    "patch_mismatch", f"expected 1 match of old text, found {found}"
                )
            data = text.replace(patch.old, patch.new).encode()
            self._write(patch.path, data)
            return _file_result(patch.path, data)
        raise ExecutionError("unsupported_kind", f"the local worker cannot run {job.kind}")

    def _path(self, relative: str) -> Path:
        problem = path_problem(relative, self.workspace, self.forbidden_prefixes)
        if problem:
            raise ExecutionError("path_denied", problem)
        path = self.workspace / relative
        if not path.is_file():
            raise ExecutionError("not_found", f"{relative} is not a file in the workspace")
        return path

    def _write(self, relative: str, data: bytes) -> None:
        problem = path_problem(relative, self.workspace, self.forbidden_prefixes)
        if problem:
            raise ExecutionError("path_denied", problem)
        if len(data) > MAX_FILE_BYTES:
            raise ExecutionError("too_large", f"content is over {MAX_FILE_BYTES} bytes")
        path = self.workspace / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        write_durably(path, data)  # its temp file is this writer's own: workers never collide


def _file_result(path: str, data: bytes) -> dict[str, Any]:
    """What a file job reports: its path, size and content hash, never the content itself
    (results go into the permanent log, and files may hold secrets)."""
    return {"path": path, "bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}
