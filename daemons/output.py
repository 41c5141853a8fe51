"""What the command-line tools print, made to behave in a pipe."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable


def emit(lines: Iterable[str]) -> None:
    """Print ``lines``; when the reader stops early (``| head``), stop quietly, as a pipe
    expects: no traceback, and no second failure when Python flushes stdout at exit."""
    try:
        for line in lines:
            sys.stdout.write(line + "\n")
        sys.stdout.flush()
    except BrokenPipeError:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)


def table(header: tuple[str, ...], rows: Iterable[tuple[str, ...]], right: frozenset[int] = frozenset()) -> list[str]:
    """Rows as aligned columns under ``header``; columns in ``right`` (numbers) right-aligned."""
    cells = [header, *rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    def line(row: tuple[str, ...]) -> str:
        return "  ".join(c.rjust(w) if i in right else c.ljust(w)
                         for i, (c, w) in enumerate(zip(row, widths, strict=True))).rstrip()

    return [line(row) for row in cells]


class Progress:
    """Progress of long CLI work on stderr: a bar redrawn in place on a terminal, else a line
    every few seconds (a log, a pipe)."""

    def __init__(self, label: str, total: int, every: float = 5.0) -> None:
        import time

        self.label, self.total, self.every = label, max(total, 0), every
        self.tty = sys.stderr.isatty()
        self._clock = time.monotonic
        self._started = self._last = self._clock()
        self.done = 0

    def update(self, done: int) -> None:
        self.done = done
        now = self._clock()
        if self.tty:
            width = 30
            filled = width * done // self.total if self.total else width
            sys.stderr.write(f"\r{self.label} [{'#' * filled}{'.' * (width - filled)}] {done:,}/{self.total:,}")
            sys.stderr.flush()
        elif now - self._last >= self.every:
            self._last = now
            sys.stderr.write(f"{self.label}: {done:,}/{self.total:,}, {now - self._started:.0f} s\n")

    def close(self) -> None:
        if self.tty:
            sys.stderr.write("\n")
            sys.stderr.flush()
