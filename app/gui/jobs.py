"""One generic adapter that runs a core function `fn(progress, cancel)` off the GUI thread.

The pattern is Orange3's `ConcurrentMixin`: the work is a plain function that reports progress
and polls a cancel token; the signal carrier lives on the GUI thread (it is created there), so its
signals are delivered to GUI-thread slots through queued connections, never to lambdas running in
the worker. Late results of a cancelled job are dropped. Start → cancel → restart is one path: each
start makes a fresh token and a fresh carrier.
"""

from __future__ import annotations

import threading
import traceback
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

from PySide6.QtCore import QObject, QThread, Signal, Slot

from recommender.errors import Cancelled, LensrouteError, missing_build_module
from recommender.progress import CancelToken

Work = Callable[[Callable[..., None], CancelToken], Any]


@dataclass
class JobError:
    """What a failed job tells the user: one line, plus the details for the expander."""

    message: str
    details: str


class _Carrier(QObject):
    progressed = Signal(float, float, str)
    succeeded = Signal(object)
    failed = Signal(object)
    stopped = Signal()


class _Worker(QThread):
    def __init__(self, work: Work, carrier: _Carrier, token: CancelToken) -> None:
        super().__init__()
        self.work, self.carrier, self.token = work, carrier, token

    def run(self) -> None:  # runs in the worker thread: only emits signals, touches no widget
        def progress(done: float, total: float | None = None, message: str = "") -> None:
            self.carrier.progressed.emit(float(done), float(total or 0.0), str(message))

        try:
            result = self.work(progress, self.token)
        except Cancelled:
            self.carrier.stopped.emit()
        except LensrouteError as exc:
            self.carrier.failed.emit(JobError(str(exc), traceback.format_exc()))
        except Exception as exc:  # the GUI must never crash on bad input: report and carry on
            missing = missing_build_module(exc)
            if missing is not None:
                self.carrier.failed.emit(JobError(str(missing), traceback.format_exc()))
                return
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            self.carrier.failed.emit(JobError(f"{type(exc).__name__}: {first}", traceback.format_exc()))
        else:
            if self.token.cancelled:
                self.carrier.stopped.emit()
            else:
                self.carrier.succeeded.emit(result)


class Job(QObject):
    """A restartable background job with progress, cancel, and one result or error per run.

    Signals: `progressed(done, total, message)`, `succeeded(result)`, `failed(JobError)`,
    `cancelled()`, and `running_changed(bool)`; all are emitted on the GUI thread.
    """

    progressed = Signal(float, float, str)
    succeeded = Signal(object)
    failed = Signal(object)
    cancelled = Signal()
    running_changed = Signal(bool)

    _all: ClassVar[weakref.WeakSet[Job]] = weakref.WeakSet()
    _all_lock = threading.Lock()

    def __init__(self, name: str, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.name = name
        self._worker: _Worker | None = None
        self._token: CancelToken | None = None
        self._carrier: _Carrier | None = None
        with Job._all_lock:
            Job._all.add(self)

    @property
    def running(self) -> bool:
        return self._worker is not None

    def start(self, work: Work) -> bool:
        """Start `work` unless this job is already running (returns whether it started)."""
        if self.running:
            return False
        self._token = CancelToken()
        self._carrier = _Carrier()  # created here, on the GUI thread
        self._carrier.progressed.connect(self._on_progress)
        self._carrier.succeeded.connect(self._on_success)
        self._carrier.failed.connect(self._on_failure)
        self._carrier.stopped.connect(self._on_stopped)
        self._worker = _Worker(work, self._carrier, self._token)
        self._worker.start()
        self.running_changed.emit(True)
        return True

    def cancel(self) -> None:
        if self._token is not None:
            self._token.cancel()

    def wait(self, ms: int = 30_000) -> bool:
        """Block until the worker ends (used on quit and in tests)."""
        return self._worker.wait(ms) if self._worker is not None else True

    def _finish(self, carrier: QObject | None) -> bool:
        """Whether the signal came from the current run (a late signal of an old run is dropped)."""
        if carrier is not self._carrier or self._worker is None:
            return False
        self._worker.wait()
        self._worker = None
        self.running_changed.emit(False)
        return True

    @Slot(float, float, str)
    def _on_progress(self, done: float, total: float, message: str) -> None:
        if self.sender() is self._carrier and not (self._token and self._token.cancelled):
            self.progressed.emit(done, total, message)

    @Slot(object)
    def _on_success(self, result: object) -> None:
        if self._finish(self.sender()):
            self.succeeded.emit(result)

    @Slot(object)
    def _on_failure(self, error: object) -> None:
        if self._finish(self.sender()):
            self.failed.emit(error)

    @Slot()
    def _on_stopped(self) -> None:
        if self._finish(self.sender()):
            self.cancelled.emit()

    @classmethod
    def stop_all(cls, ms: int = 10_000) -> None:
        """Cancel and join every running job (on quit: no thread outlives the window)."""
        with cls._all_lock:
            jobs = list(cls._all)
        for job in jobs:
            try:
                job.cancel()
                job.wait(ms)
            except RuntimeError:  # the C++ object is already gone
                pass
