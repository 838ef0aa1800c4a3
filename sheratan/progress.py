"""Progress of long work on stderr, so that nobody waits minutes without a sign of life.

On a terminal: a bar (or a count, when the total is unknown) redrawn in place. Anywhere
else (a file, a pipe, a CI log): one short line about every ``SHERATAN_PROGRESS_EVERY``
seconds (10 by default) with the label, the count, the rate and the time elapsed, so a
captured log shows where the work is without being flooded. Quiet: nothing at all.

The work itself only calls cheap callbacks (``advance(count)``, ``say(message)``) that store
the latest state; a daemon thread renders it. So a step that reports nothing for minutes
(a DuckDB load, a child process) still shows a line under the label of the step.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import TracebackType
from typing import TextIO

from sheratan.inputs import InvalidInputError

#: The environment variable that sets the interval of the lines off a terminal (seconds).
EVERY_ENV = "SHERATAN_PROGRESS_EVERY"
#: Seconds between two lines when stderr is not a terminal.
DEFAULT_EVERY_S = 10.0
#: Seconds between two redraws of the bar on a terminal.
REDRAW_S = 0.2
#: Characters of the bar itself.
BAR_WIDTH = 24

#: ``advance(count)``: how far the work is, as a growing count (jobs, positions, events).
Advance = Callable[[int], None]


def every_from_env() -> float:
    """The interval of the lines off a terminal: ``$SHERATAN_PROGRESS_EVERY`` or 10 s."""
    given = os.environ.get(EVERY_ENV)
    if given is None or not given.strip():
        return DEFAULT_EVERY_S
    try:
        every_s = float(given)
    except ValueError:
        every_s = 0.0
    if not 0 < every_s < float("inf"):
        msg = f"{EVERY_ENV} must be a number of seconds above 0, got {given!r}"
        raise InvalidInputError(msg)
    return every_s


class Progress:
    """One command's progress on ``stream`` (stderr): use it as a context manager around the
    work, then ``say`` what each step is doing and ``counting`` what can be counted."""

    def __init__(
        self,
        stream: TextIO | None = None,
        *,
        quiet: bool = False,
        every_s: float | None = None,
        terminal: bool | None = None,
    ) -> None:
        self.stream = sys.stderr if stream is None else stream
        self.quiet = quiet
        self.terminal = self.stream.isatty() if terminal is None else terminal
        self.every_s = every_from_env() if every_s is None else every_s
        self._lock = threading.Lock()
        self._stopped = threading.Event()
        self._thread: threading.Thread | None = None
        self._began = time.monotonic()
        self._step: str | None = None  # what `say` said last
        self._step_began = self._began
        self._label: str | None = None  # what is being counted, while it is
        self._unit = ""
        self._total: int | None = None
        self._count = 0
        self._count_began = self._began
        self._drawn = False  # a bar is on the terminal's current line
        self._lines = 0  # lines written for the current count off a terminal
        self._written = 0  # the count the last of them showed
        self._moves_only = False

    def __enter__(self) -> Progress:
        if not self.quiet:
            interval = REDRAW_S if self.terminal else self.every_s
            self._thread = threading.Thread(
                target=self._tick, args=(interval,), name="sheratan-progress", daemon=True
            )
            self._thread.start()
        return self

    def __exit__(
        self,
        _type: type[BaseException] | None,
        _value: BaseException | None,
        _traceback: TracebackType | None,
    ) -> None:
        self._stopped.set()
        if self._thread is not None:
            self._thread.join()
        with self._lock:
            self._end_bar()

    # -------------------------------------------------------------------- for the work

    def say(self, message: str) -> None:
        """A step begins: on a terminal its line is written at once; elsewhere the periodic
        lines name it (with its time so far) while it runs, so short steps stay silent."""
        self._begin(message, at_once=self.terminal)

    def announce(self, message: str) -> None:
        """A milestone (one bench of many begins): written at once, terminal or not, then
        named by the periodic lines like a step."""
        self._begin(message, at_once=True)

    def _begin(self, message: str, *, at_once: bool) -> None:
        if self.quiet:
            return
        with self._lock:
            self._step, self._step_began = message, time.monotonic()
            if at_once:
                self._end_bar()
                self._write(f"{message}\n")

    @contextmanager
    def counting(
        self, label: str, total: int | None = None, unit: str = "", *, moves_only: bool = False
    ) -> Iterator[Advance]:
        """``advance(count)`` for the work inside: a bar on a terminal, lines elsewhere.
        ``moves_only``: off a terminal, a line only when the count moved since the last one
        (a follower that may idle for hours logs nothing while it idles)."""
        with self._lock:
            self._label, self._unit, self._total = label, unit, total
            self._count, self._count_began, self._lines = 0, time.monotonic(), 0
            self._written, self._moves_only = 0, moves_only
        finished = False
        try:
            yield self._advance
            finished = True
        finally:
            with self._lock:
                if self.terminal and not self.quiet:
                    self._draw()  # the final count, even when the work was too quick to draw
                elif self._lines:  # (none when quiet)
                    self._write(self._line(done=True, finished=finished))
                self._end_bar()
                self._label = None

    def _advance(self, count: int) -> None:
        self._count = count  # the thread renders it; the work pays one assignment

    # ------------------------------------------------------------------- the rendering

    def _tick(self, interval: float) -> None:
        while not self._stopped.wait(interval):
            with self._lock:
                if self.terminal:
                    self._draw()
                elif self._label is not None:
                    if self._moves_only and self._count == self._written:
                        continue
                    self._lines, self._written = self._lines + 1, self._count
                    self._write(self._line(done=False))
                elif self._step is not None:
                    elapsed = time.monotonic() - self._step_began
                    self._write(f"{self._step} ({_duration(elapsed)} so far)\n")

    def _line(self, *, done: bool, finished: bool = True) -> str:
        """A count line; ``done`` for the last, which says whether the work finished or was
        stopped (Ctrl-C, an error)."""
        elapsed = time.monotonic() - self._count_began
        rate = self._count / elapsed if elapsed > 0 else 0.0
        unit = f" {self._unit}" if self._unit else ""
        of = f"/{self._total:,}" if self._total else ""
        took = f"{_duration(elapsed)} so far"
        if done:
            took = f"{'done in' if finished else 'stopped after'} {_duration(elapsed)}"
        return f"{self._label}: {self._count:,}{of}{unit}, {rate:,.0f}/s, {took}\n"

    def _draw(self) -> None:
        if self._label is None:
            return
        elapsed = time.monotonic() - self._count_began
        rate = self._count / elapsed if elapsed > 0 else 0.0
        if self._total:
            share = min(self._count / self._total, 1.0)
            filled = round(share * BAR_WIDTH)
            bar = f"[{'#' * filled}{'-' * (BAR_WIDTH - filled)}] {share:4.0%} "
            count = f"{self._count:,}/{self._total:,}"
        else:
            bar, count = "", f"{self._count:,}"
        self._write(f"\r{self._label} {bar}{count} {rate:,.0f}/s {_duration(elapsed)}\x1b[K")
        self._drawn = True

    def _end_bar(self) -> None:
        if self._drawn:
            self._draw()
            self._write("\n")
            self._drawn = False

    def _write(self, text: str) -> None:
        try:
            self.stream.write(text)
            self.stream.flush()
        except (OSError, ValueError):  # a closed pipe never stops the work
            pass


def _duration(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.0f} s" if seconds >= 10 else f"{seconds:.1f} s"
    minutes, rest = divmod(int(seconds), 60)
    return f"{minutes} min {rest:02d} s"


def silent() -> Progress:
    """A Progress that shows nothing: for work run without a command around it."""
    return Progress(quiet=True, every_s=DEFAULT_EVERY_S)
