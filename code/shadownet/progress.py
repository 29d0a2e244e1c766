"""Progress for long passes: a bar on a terminal, plain lines otherwise (logs stay greppable)."""

from __future__ import annotations

import sys
import time
from typing import TextIO


class Progress:
    """Call ``update(n)`` as work completes and ``close()`` at the end."""

    def __init__(self, total: int, label: str, stream: TextIO | None = None, interval: float = 5.0,
                 initial: int = 0):
        self.total, self.label, self.done = total, label, initial
        self._initial = initial
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty()
        self.interval = 0.2 if self.tty else interval
        self.start = self._last = time.monotonic()

    def update(self, n: int = 1) -> None:
        self.done += n
        now = time.monotonic()
        if now - self._last >= self.interval:
            self._last = now
            self._emit(now)

    def close(self) -> None:
        self._emit(time.monotonic())
        if self.tty:
            self.stream.write("\n")
        self.stream.flush()

    def _emit(self, now: float) -> None:
        rate = (self.done - self._initial) / max(now - self.start, 1e-9)
        fraction = self.done / self.total if self.total else 1.0
        if self.tty:
            filled = int(30 * fraction)
            bar = "#" * filled + "-" * (30 - filled)
            self.stream.write(f"\r{self.label} [{bar}] {self.done}/{self.total} {rate:,.0f}/s ")
        else:
            self.stream.write(
                f"{self.label}: {self.done}/{self.total} ({100 * fraction:.1f}%) {rate:.0f} images/s\n"
            )
        self.stream.flush()


class StepDisplay:
    """Training's output: log lines, and on a terminal a step bar redrawn under them.

    ``progress(step)`` is called after each step (the first call gives the step a resumed run starts
    from); ``log(line)`` prints a line: to stdout for log scrapers, or above the bar on a terminal.
    """

    def __init__(self, total: int, stream: TextIO | None = None):
        self.total = total
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty()
        self.bar: Progress | None = None

    def progress(self, step: int) -> None:
        if self.bar is None:
            self.bar = Progress(self.total, "train", stream=self.stream, initial=step)
        else:
            self.bar.update(step - self.bar.done)

    def log(self, line: str) -> None:
        if self.bar:
            print("\r\033[K" + line, file=self.stream, flush=True)
        else:
            print(line, flush=True)

    def close(self) -> None:
        if self.bar:
            self.bar.close()
