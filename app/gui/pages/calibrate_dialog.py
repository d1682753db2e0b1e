"""The Route page's "Calibrate a pool…" dialog: which installed models, which labelled questions,
which router, under what name — what `lensroute route calibrate` takes on its command line.

Without it a fresh install's Route page could only say "run the CLI"; the dialog only gathers the
choices, the page runs the calibration as a cancellable job.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path

from PySide6.QtCore import Qt, Slot
from PySide6.QtWidgets import (
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QWidget,
)


@dataclass(frozen=True)
class CalibrationChoice:
    pool: list[str]
    data: Path
    kind: str
    name: str


class CalibrateDialog(QDialog):
    def __init__(self, installed: list[tuple[str, str]], router_name: str, parent: QWidget | None = None,
                 ticked: Collection[str] | None = None) -> None:
        """`installed`: (name, kind) of every local model; those in `ticked` (default: all) are
        ticked to begin with (the Recommend page ticks the ranked models that run here)."""
        super().__init__(parent)
        from routing.answering import bundled_questions
        from routing.routers import ROUTERS

        self.setWindowTitle("Calibrate a pool")
        self.models = QListWidget()
        for name, kind in installed:
            item = QListWidgetItem(f"{name}  ({kind})")
            item.setData(Qt.ItemDataRole.UserRole, name)
            item.setCheckState(Qt.CheckState.Checked if ticked is None or name in ticked else Qt.CheckState.Unchecked)
            self.models.addItem(item)
        self.data = QLineEdit(str(bundled_questions()))
        browse = QPushButton("Browse…")
        from recommender.errors import build_tools_missing

        self.kind = QComboBox()
        # the MLP router trains with torch, which the frozen app leaves out
        self.kind.addItems([r for r in ROUTERS if r != "mlp" or build_tools_missing() is None])
        self.name = QLineEdit(router_name or "default")
        data_row = QHBoxLayout()
        data_row.addWidget(self.data, 1)
        data_row.addWidget(browse)
        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        self.buttons.button(QDialogButtonBox.StandardButton.Ok).setText("Calibrate")
        form = QFormLayout(self)
        form.addRow("pool (installed models)", self.models)
        form.addRow('questions (JSONL: {"question", "choices", "answer"})', data_row)
        form.addRow("router", self.kind)
        form.addRow("save as", self.name)
        form.addRow(self.buttons)
        browse.clicked.connect(self.browse)
        self.buttons.accepted.connect(self.accept)
        self.buttons.rejected.connect(self.reject)

    @Slot()
    def browse(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Labelled questions (JSONL)", self.data.text(),
                                              "JSONL (*.jsonl);;All files (*)")
        if path:
            self.data.setText(path)

    def choice(self) -> CalibrationChoice:
        pool = [self.models.item(i).data(Qt.ItemDataRole.UserRole) for i in range(self.models.count())
                if self.models.item(i).checkState() == Qt.CheckState.Checked]
        return CalibrationChoice(pool, Path(self.data.text().strip()).expanduser(), self.kind.currentText(),
                                 self.name.text().strip() or "default")
