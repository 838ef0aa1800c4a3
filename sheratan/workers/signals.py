"""SIGTERM and Ctrl-C as a stop request for a worker loop (handled: no traceback)."""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any


@contextmanager
def stop_on_signals(stop: threading.Event, wake: Callable[[], object]) -> Iterator[None]:
    """Within the block, SIGTERM and SIGINT set ``stop`` and call ``wake`` (so a loop asleep
    in a wait looks at ``stop`` at once); the previous handlers come back after it."""

    def on_signal(_signum: int, _frame: Any) -> None:
        stop.set()
        wake()

    signals = (signal.SIGTERM, signal.SIGINT)
    previous = {sig: signal.signal(sig, on_signal) for sig in signals}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
