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
