"""Progress reporting and cooperative cancellation for long work.

Long operations are plain functions taking `progress` and `cancel` (the Orange3 `TaskState`
pattern): the GUI wraps them in one generic Qt job adapter, the CLI in a stderr progress bar, and
tests call them directly. Nothing here knows about either front end.
"""

from __future__ import annotations

import threading
from typing import Protocol

from recommender.errors import Cancelled


class Progress(Protocol):
    """Receives `done` units out of `total` (None when unknown) and a short status message."""

    def __call__(self, done: float, total: float | None = None, message: str = "") -> None: ...


def no_progress(done: float, total: float | None = None, message: str = "") -> None:
    """The default sink: reporting is optional for every caller."""


class CancelToken:
    """A flag the front end sets and the work polls between units of work.

    Start → cancel → restart is one code path: a fresh token per run, and the work leaves the
    store consistent whenever it stops (each unit commits or rolls back whole).
    """

    def __init__(self) -> None:
        self._event = threading.Event()

    def cancel(self) -> None:
        self._event.set()

    @property
    def cancelled(self) -> bool:
        return self._event.is_set()

    def raise_if_cancelled(self) -> None:
        if self._event.is_set():
            raise Cancelled()

    def wait(self, seconds: float) -> bool:
        """Sleep up to `seconds`, waking early on cancel; returns True when cancelled."""
        return self._event.wait(seconds)


class _NeverCancelled(CancelToken):
    def cancel(self) -> None:  # a shared default must never be set by accident
        raise RuntimeError("NEVER_CANCELLED cannot be cancelled; pass a CancelToken()")


NEVER_CANCELLED: CancelToken = _NeverCancelled()


class SubProgress:
    """Maps the progress of one step onto a slice [start, start+span) of a parent's scale."""

    def __init__(self, parent: Progress, start: float, span: float, total: float) -> None:
        self._parent, self._start, self._span, self._total = parent, start, span, total

    def __call__(self, done: float, total: float | None = None, message: str = "") -> None:
        fraction = done / total if total else 0.0
        self._parent(self._start + self._span * min(max(fraction, 0.0), 1.0), self._total, message)
