"""Server processes for the API benches: a real server on a free loopback port per block."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

CLI = Path(__file__).resolve().parents[2] / "cli.py"
#: Seconds a server may take to come up (and a request to be answered).
WAIT_S = 60.0


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def serve_command(home: Path, *options: str) -> list[str]:
    """``cli.py serve`` of ``home`` (the port is added by ``server_process``)."""
    return [sys.executable, str(CLI), "--home", str(home), "serve", *options]


@contextmanager
def server_process(command: list[str], *, port_option: bool = False) -> Iterator[str]:
    """A server process on a free port until the block ends (SIGTERM, then SIGKILL)."""
    port = free_port()
    args = [*command, "--port", str(port)] if port_option else [*command, str(port)]
    process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + WAIT_S
        while True:
            try:
                httpx.get(f"{url}/health", timeout=1)
                break
            except httpx.TransportError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"bench api: {args[0]} did not come up") from None
                time.sleep(0.05)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
