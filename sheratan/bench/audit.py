"""The audit benchmark: verifying and proving history on a large log, against its anchors.

Workload: ``events`` job events (five per job, ``sheratan.bench.store.encode_jobs``) written
through the ledger into a fresh home. Figures, all from one run:

- ``verify_vs_sha256``: ``audit verify``'s chain check (``sheratan.store.audit.verify``) in MB/s
  against a bare SHA-256 pass over the same segment bytes (target: at least half its speed);
- ``prove_latency``: ``audit prove`` (``sheratan.audit.service.prove``) in ms, median over
  positions spread over the log, the tree cache built and the ledger open, against reading and
  hashing the one line it proves (target: at most 50 ms);
- ``proof_path_vs_log2``: the longest audit path against ceil(log2 n) (target: at most 1).

``info`` holds figures without a target: building the tree cache with the signed checkpoint,
``audit verify --pubkey``'s tree-head pass, and ``audit prove`` as a whole CLI process.
"""

from __future__ import annotations

import hashlib
import json
import math
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgspec

from sheratan.audit import service, signing
from sheratan.bench.figures import environment, figure
from sheratan.bench.store import encode_jobs
from sheratan.home import HOME_FORMAT, MARKER, Home, HomeMarker
from sheratan.store.audit import verify
from sheratan.store.files import write_durably
from sheratan.store.recorders import JsonlApplicationRecorder

#: Rounds of the verify figure (median), each running the anchor and the verifier once.
REPEATS = 3
#: Positions proven for the latency figure.
PROVE_SAMPLES = 41
#: Jobs per save while generating the log.
JOBS_PER_SAVE = 1_000
#: Bytes per read in the SHA-256 anchor.
ANCHOR_CHUNK_BYTES = 4 * 1024 * 1024
PROVE_TARGET_MS = 50.0
VERIFY_TARGET_RATIO = 0.5
REPO_ROOT = Path(__file__).resolve().parents[2]


def run_audit_bench(
    *, events: int, progress: Callable[[str], None] | None = None
) -> dict[str, Any]:
    say = progress or (lambda _message: None)
    with tempfile.TemporaryDirectory(prefix="sheratan-bench-audit-") as folder:
        root = Path(folder)
        home_path = root / "home"
        say(f"generating a log of {events:,} events")
        generate(home_path, events)
        home = Home(home_path)
        try:
            return _measure(home, root, say)
        finally:
            home.close()
            shutil.rmtree(home_path, ignore_errors=True)


def generate(home: Path, events: int) -> None:
    """``events`` job events (rounded down to whole jobs of five) in a fresh home."""
    home.mkdir(parents=True)
    write_durably(home / MARKER, msgspec.json.encode(HomeMarker(HOME_FORMAT)))
    ledger = Home(home).ledger
    recorder = JsonlApplicationRecorder(ledger)
    jobs = max(1, events // 5)
    for first in range(0, jobs, JOBS_PER_SAVE):
        saves = encode_jobs(min(JOBS_PER_SAVE, jobs - first), first=first, seed=1)
        recorder.insert_events([event for save in saves for event in save])
    ledger.close()


def _measure(home: Home, root: Path, say: Callable[[str], None]) -> dict[str, Any]:
    log_dir, checkpoints = home.ledger.dir, home.ledger.checkpoints_path
    size = home.ledger.last_position()
    log_bytes = sum(p.stat().st_size for p in log_dir.glob("*.jsonl"))
    mb = log_bytes / 1e6

    say("audit verify against a bare SHA-256 pass, interleaved")
    verify_s, anchor_s = [], []
    for _ in range(REPEATS):
        anchor_s.append(_timed(lambda: _sha256_pass(log_dir))[0])
        seconds, result = _timed(lambda: verify(log_dir, checkpoints))
        assert result.ok and result.verified == size, result.problem
        verify_s.append(seconds)
    verify_mb_s, anchor_mb_s = mb / statistics.median(verify_s), mb / statistics.median(anchor_s)

    say("signing a checkpoint (builds the tree cache)")
    private, public = signing.generate(root / "keys", home=home.path, force=False)
    export = root / "checkpoint.json"
    build_s, head = _timed(lambda: service.record_checkpoint(home, private, export, say))
    assert head.tree_size == size

    say("audit prove at positions spread over the log")
    rng = random.Random(7)
    positions = [1, size, *(rng.randint(1, size) for _ in range(PROVE_SAMPLES - 2))]
    prove_ms: list[float] = []
    line_ms: list[float] = []
    paths: list[int] = []
    proof_bytes: list[int] = []
    for position in positions:
        t0 = time.perf_counter()
        proof = service.prove(home, position, None, say)
        prove_ms.append((time.perf_counter() - t0) * 1000)
        paths.append(len(proof.path))
        proof_bytes.append(len(json.dumps(proof.path)) + len(proof.checkpoint.encode()))
        t0 = time.perf_counter()
        hashlib.sha256(next(iter(home.ledger.lines(position, position)))[1]).digest()
        line_ms.append((time.perf_counter() - t0) * 1000)
    log2 = math.ceil(math.log2(size)) if size > 1 else 1

    say("audit verify --pubkey: the tree-head pass over the files")
    signed_s, signed = _timed(lambda: service.verify_signed(home.path, public, export))
    assert signed.ok, signed.problem

    say("audit prove as a CLI process (startup and ledger open included)")
    cli_s, _ = _timed(lambda: _prove_process(home.path, size // 2))

    prove_median = statistics.median(prove_ms)
    return {
        "events": size,
        "log_bytes": log_bytes,
        "figures": {
            "verify_vs_sha256": figure(
                verify_mb_s,
                "MB/s",
                "bare sha256 pass over the same bytes",
                anchor_mb_s,
                f">= {VERIFY_TARGET_RATIO}",
                verify_mb_s / anchor_mb_s >= VERIFY_TARGET_RATIO,
                what="sheratan.store.audit.verify: every line decoded, chained and re-hashed",
                runs_s=verify_s,
                anchor_runs_s=anchor_s,
            ),
            "prove_latency": figure(
                prove_median,
                "ms",
                "read and hash the proven line",
                statistics.median(line_ms),
                f"<= {PROVE_TARGET_MS:.0f} ms",
                prove_median <= PROVE_TARGET_MS,
                what="sheratan.audit.service.prove with the tree cache built, ledger open",
                positions=len(positions),
                max_ms=max(prove_ms),
            ),
            "proof_path_vs_log2": figure(
                max(paths),
                "nodes",
                "ceil(log2 n)",
                log2,
                "<= 1 (O(log n))",
                max(paths) <= log2,
                proof_bytes_max=max(proof_bytes),
                note="proof_bytes_max: the path and the signed checkpoint, without the line",
            ),
        },
        "info": {
            "tree_cache_build": figure(
                build_s,
                "s",
                "bare sha256 pass over the same bytes",
                statistics.median(anchor_s),
                None,
                None,
                what="audit checkpoint --sign on a home without a tree cache",
            ),
            "verify_pubkey_tree_heads": figure(
                mb / signed_s,
                "MB/s",
                "bare sha256 pass over the same bytes",
                anchor_mb_s,
                None,
                None,
                what="the Merkle pass audit verify --pubkey adds to the chain check",
            ),
            "prove_cli_process": figure(
                cli_s * 1000,
                "ms",
                "prove in process",
                prove_median,
                None,
                None,
                what="python cli.py audit prove POS --json: startup, home and ledger open",
            ),
        },
        "environment": environment(("msgspec", "cryptography")),
    }


def _timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def _sha256_pass(log_dir: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(log_dir.glob("*.jsonl")):
        with path.open("rb") as handle:
            while chunk := handle.read(ANCHOR_CHUNK_BYTES):
                digest.update(chunk)
    return digest.hexdigest()


def _prove_process(home: Path, position: int) -> None:
    args = ["audit", "prove", str(position), "--json", "--home", str(home)]
    subprocess.run(
        [sys.executable, str(REPO_ROOT / "cli.py"), *args],
        check=True,
        capture_output=True,
    )
