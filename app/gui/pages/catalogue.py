"""Catalogue page: sources with record counts and last crawl, a crawl or an import with progress
and Cancel (file dialog or drag-and-drop of files and folders), and a log pane."""

from __future__ import annotations

from pathlib import Path

import polars as pl
from PySide6.QtCore import Qt, Slot
from PySide6.QtGui import QDragEnterEvent, QDropEvent
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QMessageBox,
    QPlainTextEdit,
    QPushButton,
    QTableView,
    QVBoxLayout,
    QWidget,
)

from app.gui.jobs import Job
from app.gui.widgets import FrameModel, JobBar, compact_table, fit_columns, show_error


def sources_frame(store) -> pl.DataFrame:  # type: ignore[no-untyped-def]
    """One row per source: records, last crawl start, its state, and why it failed when it did."""
    from recommender.store.queries import catalogue_stats

    stats = catalogue_stats(store)
    with store.engine.connect() as conn:
        runs = conn.exec_driver_sql(
            "SELECT source, status, started_at, error FROM crawl_runs "
            "WHERE id IN (SELECT MAX(id) FROM crawl_runs GROUP BY source)"
        ).fetchall()
    last = {source: (status, started, error if status == "failed" else None) for source, status, started, error in runs}
    names = sorted(set(stats.sources) | set(last))
    return pl.DataFrame({
        "source": names,
        "records": [stats.sources.get(n, 0) for n in names],
        "last crawl": [last.get(n, (None, None, None))[1] for n in names],
        "state": [last.get(n, ("imported", None, None))[0] for n in names],
        "why": [last.get(n, (None, None, None))[2] for n in names],
    }, schema={"source": pl.Utf8, "records": pl.Int64, "last crawl": pl.Utf8, "state": pl.Utf8, "why": pl.Utf8})


class CataloguePage(QWidget):
    title = "Catalogue"

    def __init__(self, context, parent: QWidget | None = None) -> None:  # type: ignore[no-untyped-def]
        super().__init__(parent)
        self.context = context
        self.setAcceptDrops(True)
        self.summary = QLabel("")
        self.summary.setObjectName("catalogueSummary")
        self.model = FrameModel()
        self.table = compact_table(QTableView())
        self.table.setModel(self.model)
        fit_columns(self.table)
        self.table.setSortingEnabled(True)
        self.import_files_button = QPushButton("Import files…")
        self.import_folder_button = QPushButton("Import folder…")
        self.refresh_button = QPushButton("Refresh")
        self.delete_button = QPushButton("Delete source…")
        self.delete_button.setToolTip("delete the selected source's records (undo a wrong import); "
                                      "importing its files again puts them back")
        self.force_check = QCheckBox("Read unchanged files again")
        self.force_check.setToolTip("compare every row, even of files unchanged since their last import "
                                    "(after editing the database by hand, say)")
        self.crawl_source = QComboBox()
        self.crawl_source.setToolTip("a live source to crawl (polite, resumable, incremental)")
        from recommender.crawl.runner import source_names

        self.crawl_source.addItems(source_names())
        self.crawl_url = QLineEdit()
        self.crawl_url.setPlaceholderText("base URL (empty: the source's own)")
        self.crawl_button = QPushButton("Crawl")
        self.log = QPlainTextEdit()
        self.log.setReadOnly(True)
        self.log.setObjectName("catalogueLog")
        self.job = Job("import", self)
        self.job_bar = JobBar(self.job)
        buttons = QHBoxLayout()
        for button in (self.import_files_button, self.import_folder_button, self.force_check, self.refresh_button,
                       self.delete_button):
            buttons.addWidget(button)
        buttons.addStretch(1)
        crawling = QHBoxLayout()  # a row of its own: the URL field needs room to show what it wants
        crawling.addWidget(QLabel("Crawl"))
        crawling.addWidget(self.crawl_source)
        crawling.addWidget(self.crawl_url, 1)
        crawling.addWidget(self.crawl_button)
        layout = QVBoxLayout(self)
        layout.addWidget(self.summary)
        layout.addLayout(buttons)
        layout.addLayout(crawling)
        layout.addWidget(self.table, 3)
        layout.addWidget(self.job_bar)
        layout.addWidget(QLabel("Log (drop files or folders anywhere on this page to import them)"))
        layout.addWidget(self.log, 1)
        self.import_files_button.clicked.connect(self.choose_files)
        self.import_folder_button.clicked.connect(self.choose_folder)
        self.refresh_button.clicked.connect(self.refresh)
        self.delete_button.clicked.connect(self.delete_selected)
        self.crawl_button.clicked.connect(self.crawl)
        self.job.succeeded.connect(self.on_imported)
        self.job.cancelled.connect(self.on_cancelled)
        self.job.running_changed.connect(self.on_running)

    @Slot()
    def refresh(self) -> None:
        frame = sources_frame(self.context.store())
        self.model.set_frame(frame)
        self.summary.setText(f"{int(frame['records'].sum()):,} records from {frame.height} sources — {self.context.db_label()}")

    @Slot()
    def choose_files(self) -> None:
        files, _ = QFileDialog.getOpenFileNames(self, "Import leaderboard files")
        if files:
            self.start_import([Path(f) for f in files])

    @Slot()
    def choose_folder(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Import a folder of leaderboard files")
        if folder:
            self.start_import([Path(folder)])

    def start_import(self, targets: list[Path]) -> bool:
        from recommender.ingest import import_paths

        store, force = self.context.store(), self.force_check.isChecked()
        self.log.appendPlainText(f"importing {', '.join(str(t) for t in targets)}" + (" (every row compared)" if force else ""))
        return self._start("import", lambda progress, cancel: import_paths(store, targets, force=force, progress=progress,
                                                                           cancel=cancel))

    @Slot()
    def crawl(self) -> bool:
        from recommender.crawl.runner import crawl

        store, source, base_url = self.context.store(), self.crawl_source.currentText(), self.crawl_url.text().strip() or None
        self.log.appendPlainText(f"crawling {source}" + (f" from {base_url}" if base_url else ""))
        return self._start("crawl", lambda progress, cancel: crawl(store, source, base_url=base_url, progress=progress,
                                                                   cancel=cancel))

    @Slot()
    def delete_selected(self) -> bool:
        """`lensroute delete --source` for the selected row, after a confirmation that says how much goes."""
        from recommender.errors import LensrouteError
        from recommender.store.removal import remove_records

        rows = self.table.selectionModel().selectedRows()
        if not rows:
            show_error(self, "select the source whose records should go first")
            return False
        source, store = str(self.model.frame["source"][rows[0].row()]), self.context.store()
        try:
            planned = remove_records(store, source, dry_run=True)
        except LensrouteError as exc:
            show_error(self, str(exc))
            return False
        asked = QMessageBox.question(
            self, "Delete source", f"Delete the {planned.records:,} records of source {source!r} "
            f"({planned.models:,} models, {planned.datasets:,} datasets) and the {planned.history:,} superseded values "
            "kept for them? Models and datasets stay; importing the same files again puts the records back.")
        if asked != QMessageBox.StandardButton.Yes:
            return False
        self.log.appendPlainText(f"deleting the records of {source}")
        return self._start("delete", lambda progress, cancel: remove_records(store, source))

    def _start(self, name: str, work) -> bool:  # type: ignore[no-untyped-def]
        """The page's one job runs imports, crawls and deletes; its bar says which ("crawl failed")."""
        if self.job.running:
            return False
        self.job.name = name
        return self.job.start(work)

    @Slot(object)
    def on_imported(self, report) -> None:  # type: ignore[no-untyped-def]
        from recommender.store.removal import Removal

        if isinstance(report, Removal):
            self.log.appendPlainText(f"deleted {report.records:,} records of {report.source} and {report.history:,} "
                                     "superseded values; train again for rankings to forget them")
            self.refresh()
            return
        if hasattr(report, "base_url"):  # a crawl
            c = report.counts
            self.log.appendPlainText(f"{report.source}: {report.status}; {report.units} units, added {c.added:,}, "
                                     f"updated {c.updated:,}, unchanged {c.unchanged:,}; {report.requests} requests "
                                     f"({report.retries} retried, {report.not_modified} not modified)"
                                     + (f" — {report.error}" if report.error else ""))
            self.refresh()
            return
        for unit in report.units:
            if unit.ok:
                c = unit.counts
                self.log.appendPlainText(f"  {unit.label}: added {c.added:,}, updated {c.updated:,}, "
                                         f"unchanged {c.unchanged:,}, rejected {c.rejected.total:,}"
                                         + (f" ({c.rejected.describe()})" if c.rejected.reasons else "")
                                         + (" (same bytes as its last import: not read again)" if unit.not_read else ""))
            else:
                self.log.appendPlainText(f"  {unit.label}: FAILED ({unit.error}) — rolled back")
        for skipped in report.skipped:
            self.log.appendPlainText(f"  skipped {skipped}")
        totals = report.totals()
        self.log.appendPlainText(f"done: {totals.added:,} added, {len(report.failed)} file(s) failed")
        self.refresh()

    @Slot()
    def on_cancelled(self) -> None:
        self.log.appendPlainText("cancelled: what was stored before the cancel is kept (a crawl resumes from its cursor)")
        self.refresh()

    @Slot(bool)
    def on_running(self, running: bool) -> None:
        for button in (self.import_files_button, self.import_folder_button, self.crawl_button, self.delete_button):
            button.setEnabled(not running)

    def dragEnterEvent(self, event: QDragEnterEvent) -> None:
        if event.mimeData().hasUrls():
            event.acceptProposedAction()

    def dropEvent(self, event: QDropEvent) -> None:
        paths = [Path(url.toLocalFile()) for url in event.mimeData().urls() if url.isLocalFile()]
        if paths:
            self.start_import(paths)
            event.setDropAction(Qt.DropAction.CopyAction)
            event.accept()
