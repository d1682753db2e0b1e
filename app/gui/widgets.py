"""Small widgets every page shares: the job bar (progress + Cancel + status), the error dialog
with a details expander, and a table model over a polars frame that sorts in polars."""

from __future__ import annotations

from typing import Any

import polars as pl
from PySide6.QtCore import QAbstractTableModel, QModelIndex, QPersistentModelIndex, Qt, Slot
from PySide6.QtWidgets import (
    QAbstractItemView,
    QHBoxLayout,
    QLabel,
    QMessageBox,
    QProgressBar,
    QPushButton,
    QTableView,
    QWidget,
)

from app.gui.jobs import Job, JobError

Index = QModelIndex | QPersistentModelIndex


def show_error(parent: QWidget | None, error: JobError | str, title: str = "lensroute") -> QMessageBox:
    """The one-line cause, with the full details behind "Show Details…" (non-modal: tests and
    users can carry on; the box is returned so tests can read it)."""
    if isinstance(error, str):
        error = JobError(error, "")
    box = QMessageBox(QMessageBox.Icon.Warning, title, error.message, QMessageBox.StandardButton.Ok, parent)
    if error.details:
        box.setDetailedText(error.details)
    box.setObjectName("errorDialog")
    box.setModal(False)
    box.show()
    return box


def disable_without_build_tools(*buttons: QWidget) -> str | None:
    """Disable what needs torch when it is absent (the frozen app), with the reason as the
    tooltip, so the user is told before clicking; returns that reason, or None when torch is here."""
    from recommender.errors import build_tools_missing

    missing = build_tools_missing()
    if missing is None:
        return None
    for button in buttons:
        button.setEnabled(False)
        button.setToolTip(str(missing))
    return str(missing)


def compact_table(view: QTableView) -> QTableView:
    """One line per row and fixed row heights: the view then never measures a million rows."""
    view.setWordWrap(False)
    view.verticalHeader().setDefaultSectionSize(22)
    view.horizontalHeader().setStretchLastSection(True)
    view.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
    return view


def fit_columns(view: QTableView, max_rows: int = 2000, max_width: int = 420) -> None:
    """Size the columns to their contents whenever the model's table is replaced, so a model name
    is not cut to "google/gemi…" beside a wide "known" column. Only the first `max_rows` rows are
    measured (Qt's resize-contents precision), so a table of a million rows costs no more to fit
    than its top `max_rows`."""
    model = view.model()
    view.horizontalHeader().setResizeContentsPrecision(max_rows)

    def fit() -> None:
        view.resizeColumnsToContents()
        header = view.horizontalHeader()
        for column in range(model.columnCount()):
            if header.sectionSize(column) > max_width:
                header.resizeSection(column, max_width)

    model.modelReset.connect(fit)
    fit()


class JobBar(QWidget):
    """Progress bar, Cancel button and status line bound to one `Job`."""

    def __init__(self, job: Job, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.job = job
        self.bar = QProgressBar()
        self.bar.setTextVisible(True)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setEnabled(False)
        self.status = QLabel("")
        self.status.setObjectName("jobStatus")
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.bar, 2)
        layout.addWidget(self.cancel_button)
        layout.addWidget(self.status, 3)
        self.cancel_button.clicked.connect(self.on_cancel)
        job.progressed.connect(self.on_progress)
        job.running_changed.connect(self.on_running)
        job.cancelled.connect(self.on_cancelled)
        job.failed.connect(self.on_failed)
        job.succeeded.connect(self.on_succeeded)

    @Slot()
    def on_cancel(self) -> None:
        self.status.setText("cancelling…")
        self.job.cancel()

    @Slot(float, float, str)
    def on_progress(self, done: float, total: float, message: str) -> None:
        if total > 0:
            self.bar.setRange(0, 1000)
            self.bar.setValue(int(1000 * min(max(done / total, 0.0), 1.0)))
        else:
            self.bar.setRange(0, 0)  # busy indicator when the total is unknown
        self.status.setText(message)

    @Slot(bool)
    def on_running(self, running: bool) -> None:
        self.cancel_button.setEnabled(running)
        if running:
            self.bar.setRange(0, 0)
            self.status.setText(f"{self.job.name}…")

    @Slot()
    def on_cancelled(self) -> None:
        self.bar.setRange(0, 1000)
        self.bar.setValue(0)
        self.status.setText(f"{self.job.name} cancelled")

    @Slot(object)
    def on_failed(self, error: object) -> None:
        self.bar.setRange(0, 1000)
        self.bar.setValue(0)
        self.status.setText(f"{self.job.name} failed")
        show_error(self.window(), error if isinstance(error, JobError) else JobError(str(error), ""))

    @Slot(object)
    def on_succeeded(self, result: object) -> None:
        self.bar.setRange(0, 1000)
        self.bar.setValue(1000)
        self.status.setText(f"{self.job.name} done")


class FrameModel(QAbstractTableModel):
    """A read-only table over a polars frame; sorting re-sorts the frame in polars and swaps it in
    (QSortFilterProxyModel takes minutes on 1M rows; polars takes half a second)."""

    def __init__(self, frame: pl.DataFrame | None = None) -> None:
        super().__init__()
        self.frame = frame if frame is not None else pl.DataFrame()
        self._columns: list[pl.Series] = self.frame.get_columns()

    def set_frame(self, frame: pl.DataFrame) -> None:
        self.beginResetModel()
        self.frame = frame
        self._columns = frame.get_columns()
        self.endResetModel()

    def rowCount(self, parent: Index = QModelIndex()) -> int:  # noqa: B008 (Qt's signature)
        return 0 if parent.isValid() else self.frame.height

    def columnCount(self, parent: Index = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else self.frame.width

    def data(self, index: Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid():
            return None
        column = self._columns[index.column()]
        if role == Qt.ItemDataRole.TextAlignmentRole:  # numbers line up on the right, as in a spreadsheet
            numeric = column.dtype.is_numeric() and column.dtype != pl.Boolean
            return int((Qt.AlignmentFlag.AlignRight if numeric else Qt.AlignmentFlag.AlignLeft) | Qt.AlignmentFlag.AlignVCenter)
        if role not in (Qt.ItemDataRole.DisplayRole, Qt.ItemDataRole.ToolTipRole):
            return None
        value = column[index.row()]
        if value is None:
            return ""
        if isinstance(value, float):
            return f"{value:.4g}"
        if isinstance(value, int) and not isinstance(value, bool):
            return f"{value:,}"  # 82,005 records, as the page headers write them
        return str(value)

    def headerData(self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if role != Qt.ItemDataRole.DisplayRole:
            return None
        if orientation == Qt.Orientation.Horizontal:
            return self.frame.columns[section] if section < self.frame.width else None
        return str(section + 1)

    def sort(self, column: int, order: Qt.SortOrder = Qt.SortOrder.AscendingOrder) -> None:
        if not 0 <= column < self.frame.width:
            return
        self.layoutAboutToBeChanged.emit()
        self.frame = self.frame.sort(self.frame.columns[column], descending=order == Qt.SortOrder.DescendingOrder,
                                     nulls_last=True)
        self._columns = self.frame.get_columns()
        self.layoutChanged.emit()

    def rows(self, rows: list[int]) -> pl.DataFrame:
        return self.frame[sorted(set(rows))] if rows else self.frame.clear()
