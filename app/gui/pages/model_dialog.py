"""The Recommend page's model details: what the catalogue knows of one ranked model — size,
licence, openness, aliases and every result — as `lensroute show model NAME` prints it.

The evidence panel cites the three closest results; before taking a model a user wants all of
them, and its metadata, without leaving the page.
"""

from __future__ import annotations

import polars as pl
from PySide6.QtWidgets import QDialog, QDialogButtonBox, QLabel, QTableView, QVBoxLayout, QWidget

from app.gui.widgets import FrameModel, compact_table, fit_columns

COLUMNS = {"dataset": pl.Utf8, "metric": pl.Utf8, "value": pl.Float64, "split": pl.Utf8, "subset": pl.Utf8,
           "source": pl.Utf8, "variant": pl.Utf8}


def records_frame(info) -> pl.DataFrame:  # type: ignore[no-untyped-def]
    return pl.DataFrame({name: [r[name] for r in info.records] for name in COLUMNS}, schema=COLUMNS)


def summary(info) -> str:  # type: ignore[no-untyped-def]
    facts = info.facts()
    sources = ", ".join(f"{name} {count:,}" for name, count in info.sources.items())
    lines = [f"<b>{info.name}</b>", " · ".join(facts) or "no metadata recorded",
             f"{len(info.records):,} results" + (f" ({sources})" if sources else "")]
    if info.aliases:
        lines.append(f"also known as: {', '.join(info.aliases)}")
    return "<br>".join(lines)


class ModelDialog(QDialog):
    def __init__(self, info, parent: QWidget | None = None) -> None:  # type: ignore[no-untyped-def]
        super().__init__(parent)
        self.setObjectName("modelDialog")
        self.setWindowTitle(info.name)
        self.header = QLabel(summary(info))
        self.header.setWordWrap(True)
        self.description = QLabel(info.description or "")
        self.description.setWordWrap(True)
        self.description.setVisible(bool(info.description))
        self.model = FrameModel(records_frame(info))
        self.table = compact_table(QTableView())
        self.table.setModel(self.model)
        self.table.setSortingEnabled(True)
        fit_columns(self.table)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(self.header)
        layout.addWidget(self.description)
        layout.addWidget(self.table, 1)
        layout.addWidget(buttons)
        self.resize(820, 520)
