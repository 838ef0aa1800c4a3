"""A real ``sheratan serve`` on 127.0.0.1 and a free port, for the API tests."""

from __future__ import annotations

import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
from process_helpers import WAIT_S, start_cli, stop

from sheratan.api.tokens import read_token


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class Server:
    url: str
    home: Path
    process: subprocess.Popen[str]

    @property
    def token(self) -> str:
        return read_token(self.home)

    def client(self, token: str | None = None) -> httpx.Client:
        """A client with the home's token (or ``token``; "" for none)."""
        given = self.token if token is None else token
        headers = {"Authorization": f"Bearer {given}"} if given else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=WAIT_S)


@contextmanager
def serving(home: Path, *more: str) -> Iterator[Server]:
    """``cli.py serve`` on a free port until the block ends (SIGTERM, also on failure)."""
    port = free_port()
    process = start_cli(home, "serve", "--host", "127.0.0.1", "--port", str(port), *more)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + WAIT_S
        while True:
            assert process.poll() is None, process.communicate()
            try:
                if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "the server did not come up"
            time.sleep(0.05)
        yield Server(url, home, process)
    finally:
        if process.poll() is None:
            stop(process, signal.SIGTERM)
