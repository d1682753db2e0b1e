"""The main window: a page list, the pages, a status bar (database, model version, execution
provider), restored geometry/last page/inputs, shortcuts, and `--screenshot DIR`.

Heavy imports (torch, the ranker, ONNX sessions) happen lazily — torch only when training — so
the window appears quickly; the ranker is loaded on first use.
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
import time
from pathlib import Path

from PySide6.QtCore import QSettings, QTimer, Slot
from PySide6.QtGui import QAction, QIcon, QKeySequence
from PySide6.QtWidgets import (
    QApplication,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QMainWindow,
    QMessageBox,
    QStackedWidget,
    QWidget,
)

from app.gui.jobs import Job
from app.gui.local_server import LocalServer
from app.gui.settings import GuiSettings


class AppContext:
    """What the pages share: the store, the ranker and the encoder, each opened once, lazily."""

    def __init__(self, db: str | None = None) -> None:
        self.db = db
        self._store = None
        self._ranker = None
        self._encoder = None
        self._lock = threading.Lock()  # the status bar loads the ranker off the GUI thread
        self.ranker_error: str | None = None

    def store(self):  # type: ignore[no-untyped-def]
        if self._store is None:
            from recommender.store import Store

            self._store = Store.open(self.db)
        return self._store

    def db_label(self) -> str:
        from recommender import paths

        url = paths.database_url(self.db)
        return url.split("@")[-1] if "@" in url else url  # never show a password

    def ranker(self):  # type: ignore[no-untyped-def]
        with self._lock:
            if self._ranker is None:
                from recommender.errors import LensrouteError
                from recommender.ranker import Ranker

                try:
                    self._ranker = Ranker.load()
                    self.ranker_error = None
                except LensrouteError as exc:
                    self.ranker_error = str(exc)
            return self._ranker

    def forget_ranker(self) -> None:
        self._ranker = None

    def encoder(self):  # type: ignore[no-untyped-def]
        if self._encoder is None:
            from recommender.text_encoder import default_encoder

            self._encoder = default_encoder()
        return self._encoder

    def provider(self) -> str:
        from recommender.onnx_session import preferred_provider

        return preferred_provider()


class MainWindow(QMainWindow):
    def __init__(self, context: AppContext | None = None) -> None:
        super().__init__()
        from app.gui.pages.catalogue import CataloguePage
        from app.gui.pages.models import ModelsPage
        from app.gui.pages.recommend import RecommendPage
        from app.gui.pages.records import RecordsPage
        from app.gui.pages.route import RoutePage
        from app.gui.pages.train import TrainPage

        self.setWindowTitle("lensroute")
        self.context = context or AppContext()
        self.settings = GuiSettings.load()
        self.recommend_page, self.route_page = RecommendPage(self.context), RoutePage(self.context)
        self.pages = [CataloguePage(self.context), RecordsPage(self.context), TrainPage(self.context),
                      self.recommend_page, self.route_page, ModelsPage(self.context)]
        self.nav = QListWidget()
        self.nav.setMaximumWidth(170)
        self.stack = QStackedWidget()
        for page in self.pages:
            self.nav.addItem(page.title)
            self.stack.addWidget(page)
        central = QWidget()
        layout = QHBoxLayout(central)
        layout.addWidget(self.nav)
        layout.addWidget(self.stack, 1)
        self.setCentralWidget(central)
        self.status_db = QLabel("")
        self.status_model = QLabel("")
        self.status_provider = QLabel("")
        for label in (self.status_db, self.status_model, self.status_provider):
            self.statusBar().addPermanentWidget(label)
        self.status_job = Job("status", self)
        self.status_job.succeeded.connect(self.on_status)
        self.nav.currentRowChanged.connect(self.show_page)
        self.recommend_page.route_requested.connect(self.route_with)
        for i, page in enumerate(self.pages):  # Ctrl+1 … Ctrl+6 switch pages
            action = QAction(page.title, self)
            action.setShortcut(QKeySequence(f"Ctrl+{i + 1}"))
            action.triggered.connect(self._page_switcher(i))
            self.addAction(action)
        cancel = QAction("Cancel the running job", self)
        cancel.setShortcut(QKeySequence("Esc"))
        cancel.triggered.connect(self.cancel_current)
        self.addAction(cancel)
        quit_action = QAction("Quit", self)
        quit_action.setShortcut(QKeySequence.StandardKey.Quit)
        quit_action.triggered.connect(self.close)
        self.addAction(quit_action)
        self.restore()
        QTimer.singleShot(0, self.refresh_status)

    @Slot(list)
    def route_with(self, models: list[str]) -> None:
        """Recommend → Route: show the Route page and its calibration dialog with these models ticked."""
        self.nav.setCurrentRow(self.pages.index(self.route_page))
        self.route_page.open_calibrate(models)

    def _page_switcher(self, index: int):  # type: ignore[no-untyped-def]
        def switch() -> None:
            self.nav.setCurrentRow(index)

        return switch

    @Slot(int)
    def show_page(self, index: int) -> None:
        if not 0 <= index < len(self.pages):
            return
        self.stack.setCurrentIndex(index)
        self.settings.last_page = index
        page = self.pages[index]
        try:
            if hasattr(page, "refresh") and index in (0, 2, 5):
                page.refresh()
            if page.title == "Recommend":
                page.ensure_ranker()
        except Exception as exc:  # a broken database or model folder: say so, keep the window
            from app.gui.widgets import show_error

            show_error(self, f"{type(exc).__name__}: {exc}")

    @Slot()
    def cancel_current(self) -> None:
        for job in self.stack.currentWidget().findChildren(Job):
            job.cancel()

    @Slot()
    def refresh_status(self) -> None:
        """Database at once; the ranker and the execution provider load off the GUI thread (ONNX
        Runtime sessions and the ranker's arrays take a second the window need not wait for)."""
        self.status_db.setText(f"database: {self.context.db_label()}")
        self.status_model.setText("ranker: loading…")
        context = self.context
        self.status_job.start(lambda progress, cancel: (context.ranker(), context.provider()))

    @Slot(object)
    def on_status(self, loaded: tuple) -> None:  # type: ignore[type-arg]
        ranker, provider = loaded
        self.status_provider.setText(f"execution provider: {provider}")
        self.status_model.setText(f"ranker: {ranker.model_version}" if ranker is not None else "ranker: none trained")

    def restore(self) -> None:
        qsettings = QSettings("lensroute", "lensroute")
        geometry = qsettings.value("geometry")
        if geometry is not None:
            self.restoreGeometry(geometry)
        else:
            self.resize(1280, 820)
        for page in self.pages:
            if hasattr(page, "load_state"):
                page.load_state(self.settings)
        self.nav.setCurrentRow(min(max(self.settings.last_page, 0), len(self.pages) - 1))

    def save(self) -> None:
        QSettings("lensroute", "lensroute").setValue("geometry", self.saveGeometry())
        for page in self.pages:
            if hasattr(page, "save_state"):
                page.save_state(self.settings)
        self.settings.save()

    def closeEvent(self, event) -> None:  # type: ignore[no-untyped-def]
        self.save()
        Job.stop_all()
        LocalServer.stop_all()
        super().closeEvent(event)


def screenshots(window: MainWindow, out: Path, app: QApplication) -> list[Path]:
    """Render every page with its real content to `out/<page>.png`."""
    out.mkdir(parents=True, exist_ok=True)
    written = []
    window.resize(1280, 820)  # the same size on every machine, whatever geometry was saved
    window.show()
    window.refresh_status()
    while window.status_job.running:
        app.processEvents()
        time.sleep(0.02)
    app.processEvents()
    for index, page in enumerate(window.pages):
        window.nav.setCurrentRow(index)
        if page.title == "Records":
            page.load()
        if page.title == "Recommend" and not page.description.toPlainText().strip():
            page.description.setPlainText("Classify the sentiment of Japanese product reviews")
        if page.title == "Recommend":
            page.rank()
        if page.title == "Route" and page.session is not None and not page.question.text().strip():
            page.question.setText("Which planet is known as the Red Planet?")
            page.choices.setText("Venus | Mars | Jupiter")
            page.answer()
        deadline = time.monotonic() + 60
        while any(job.running for job in page.findChildren(Job)) and time.monotonic() < deadline:
            app.processEvents()
            time.sleep(0.02)
        app.processEvents()
        path = out / f"{page.title.lower().replace(' & ', '-').replace(' ', '-')}.png"
        window.grab().save(str(path))
        written.append(path)
        # an error box is not in the grab: name it, so a page that broke does not pass as rendered
        for box in window.findChildren(QMessageBox):
            if box.objectName() == "errorDialog" and box.isVisible():
                print(f"lensroute gui: the {page.title} page showed an error: {box.text()}", file=sys.stderr)
                box.close()
    return written


def no_display() -> bool:
    """On Linux, a window needs X11 or Wayland unless a Qt platform is chosen explicitly."""
    return (sys.platform.startswith("linux") and not os.environ.get("QT_QPA_PLATFORM")
            and not os.environ.get("DISPLAY") and not os.environ.get("WAYLAND_DISPLAY"))


def run_gui(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="lensroute gui")
    parser.add_argument("--db", help="database URL or SQLite path")
    parser.add_argument("--screenshot", metavar="DIR", help="render every page to DIR/<page>.png and exit")
    args = parser.parse_args(argv)
    if no_display():
        if not args.screenshot:
            print("lensroute: error: no display (DISPLAY / WAYLAND_DISPLAY unset): the desktop app needs one; "
                  "the CLI works headless (`lensroute --help`)", file=sys.stderr)
            return 5
        os.environ["QT_QPA_PLATFORM"] = "offscreen"  # screenshots need no screen
    from app.gui.platform_check import missing_xcb_packages, uses_xcb, x_display_error

    if uses_xcb() and not QApplication.instance():  # Qt would print a hint and abort(): say it in one line instead
        missing = missing_xcb_packages()
        if missing:
            print(f"lensroute: error: Qt's X11 platform needs Debian packages that are missing here: {' '.join(missing)} "
                  f"(sudo apt-get install {' '.join(missing)}; installer/setup.sh installs them)", file=sys.stderr)
            return 5
        problem = x_display_error(os.environ.get("DISPLAY", ""))
        if problem:
            print(f"lensroute: error: {problem}; the CLI works headless (`lensroute --help`)", file=sys.stderr)
            return 5
    app = QApplication.instance() or QApplication(sys.argv[:1])
    app.setApplicationName("lensroute")
    app.setDesktopFileName("lensroute")  # ties the window to the launcher `lensroute desktop install` writes
    from recommender import paths

    icon = paths.resources_dir() / "lensroute.svg"
    if icon.is_file():
        app.setWindowIcon(QIcon(str(icon)))
    app.aboutToQuit.connect(Job.stop_all)
    app.aboutToQuit.connect(LocalServer.stop_all)
    from app.gui.theme import follow_system

    follow_system(app)
    window = MainWindow(AppContext(args.db))
    if args.screenshot:
        for path in screenshots(window, Path(args.screenshot), app):
            print(path)
        window.close()
        return 0
    window.show()
    return int(app.exec())
