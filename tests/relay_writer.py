"""An outside worker of the WebRelay protocol, as a separate process: for tests.

``python relay_writer.py RELAY_DIR COUNT`` waits for COUNT attempts in ``RELAY_DIR/out``,
answers each with a successful result (its temp file renamed into ``in/``, as the protocol
asks) and removes the attempt file it answered. It imports nothing of Sheratan: it sees only
the files, like a browser-driven LLM would.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

WAIT_S = 60.0


def answer(relay: Path, job_file: Path) -> None:
    job = json.loads(job_file.read_text())
    result = {
        "job_id": job["job_id"],
        "attempt": job["attempt"],
        "ok": True,
        "result": {"echo": job["payload"], "mission": job["mission"], "task": job["task"]},
        "metrics": {"latency_ms": 12.5, "cost": 0.25, "quality": 0.9},
    }
    final = relay / "in" / f"{job['job_id']}.result.json"
    temp = relay / "in" / f".{job['job_id']}.{os.getpid()}.tmp"
    with temp.open("w") as out:
        json.dump(result, out)
        out.flush()
        os.fsync(out.fileno())
    os.replace(temp, final)
    job_file.unlink()


def main() -> None:
    relay, count = Path(sys.argv[1]), int(sys.argv[2])
    answered = 0
    deadline = time.monotonic() + WAIT_S
    while answered < count and time.monotonic() < deadline:
        for job_file in sorted((relay / "out").glob("*.job.json")):
            answer(relay, job_file)
            answered += 1
        time.sleep(0.05)
    print(f"answered {answered}")


if __name__ == "__main__":
    main()
