"""The desktop app's "Serve" switch: `lensroute serve` run inside the window (as LM Studio's local
server is), so other applications on this machine reach the pool the Route page shows while the
user keeps working with it.

The server runs on its own threads (`ThreadingHTTPServer`); its log lines reach the GUI as a
signal of an object made on the GUI thread. Model work is shared with the page's own answering
through one lock (`model_lock`), so a served reply and a page reply never run the same ONNX
session at once. Every server is shut down and joined on quit, as jobs are.
"""

from __future__ import annotations

import contextlib
import threading
import weakref
from collections.abc import Callable
from typing import ClassVar

from PySide6.QtCore import QObject, Signal


class LocalServer(QObject):
    logged = Signal(str)  # one line per request, emitted from the server's threads
    running_changed = Signal(bool)

    _all: ClassVar[weakref.WeakSet[LocalServer]] = weakref.WeakSet()

    def __init__(self, model_lock: threading.Lock, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.model_lock = model_lock
        self.server = None  # routing.http_api.ApiServer while serving
        self.thread: threading.Thread | None = None
        LocalServer._all.add(self)

    @property
    def running(self) -> bool:
        return self.server is not None

    @property
    def url(self) -> str | None:
        return None if self.server is None else self.server.url

    def start(self, session, session_error: str | None, load_ranker: Callable[[], object], *,  # type: ignore[no-untyped-def]
              host: str = "127.0.0.1", port: int = 8000, api_key: str | None = None) -> None:
        """Listen and serve; an address in use raises OSError (the page says so)."""
        from routing.http_api import Api, ApiServer

        if self.server is not None:
            return
        api = Api(session, session_error, load_ranker, api_key, model_lock=self.model_lock)
        self.server = ApiServer((host, port), api, log=self.logged.emit)
        self.thread = threading.Thread(target=self.server.serve_forever, name="lensroute-serve", daemon=True)
        self.thread.start()
        self.running_changed.emit(True)

    def use_session(self, session, session_error: str | None) -> None:  # type: ignore[no-untyped-def]
        """The page switched routers: later requests route with the new one."""
        if self.server is not None:
            self.server.api.session, self.server.api.session_error = session, session_error

    def stop(self) -> None:
        if self.server is None:
            return
        self.server.shutdown()  # waits for serve_forever to return
        self.server.server_close()
        if self.thread is not None:
            self.thread.join(10)
        self.server, self.thread = None, None
        self.running_changed.emit(False)

    @classmethod
    def stop_all(cls) -> None:
        """Shut down every server (on quit: no thread outlives the window)."""
        for server in list(cls._all):
            with contextlib.suppress(RuntimeError):  # the C++ object is already gone
                server.stop()
