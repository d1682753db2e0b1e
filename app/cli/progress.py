"""Progress bar on stderr and Ctrl-C as cooperative cancellation, for the CLI.

The bar is drawn only on a TTY, and never with --quiet or NO_COLOR set; piped output stays
clean. The first Ctrl-C sets the cancel token (the work stops at its next safe point and keeps
what it committed); a second Ctrl-C interrupts at once.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TextIO

from recommender.progress import CancelToken


class ProgressBar:
    def __init__(self, label: str, *, enabled: bool, stream: TextIO | None = None) -> None:
        self.label = label
        self.enabled = enabled
        self.stream = stream or sys.stderr
        self._last_draw = 0.0
        self._drawn = False

    def __call__(self, done: float, total: float | None = None, message: str = "") -> None:
        if not self.enabled:
            return
        now = time.monotonic()
        if now - self._last_draw < 0.1 and not (total and done >= total):
            return
        self._last_draw = now
        width = 30
        if total:
            fraction = min(max(done / total, 0.0), 1.0)
            bar = "#" * int(fraction * width) + "-" * (width - int(fraction * width))
            text = f"\r{self.label} [{bar}] {fraction * 100:5.1f}% {message[:40]:<40}"
        else:
            text = f"\r{self.label} {done:,.0f} {message[:40]:<40}"
        self.stream.write(text)
        self.stream.flush()
        self._drawn = True

    def close(self) -> None:
        if self._drawn:
            self.stream.write("\r" + " " * 100 + "\r")
            self.stream.flush()


def bar_enabled(quiet: bool) -> bool:
    return not quiet and "NO_COLOR" not in os.environ and sys.stderr.isatty()


@contextmanager
def progress_and_cancel(label: str, quiet: bool) -> Iterator[tuple[ProgressBar, CancelToken]]:
    token = CancelToken()
    bar = ProgressBar(label, enabled=bar_enabled(quiet))

    def on_sigint(signum, frame):  # type: ignore[no-untyped-def]
        if token.cancelled:
            signal.signal(signal.SIGINT, signal.default_int_handler)
            raise KeyboardInterrupt
        token.cancel()
        sys.stderr.write("\ncancelling… (Ctrl-C again to stop at once)\n")

    previous = signal.signal(signal.SIGINT, on_sigint)
    try:
        yield bar, token
    finally:
        signal.signal(signal.SIGINT, previous)
        bar.close()
