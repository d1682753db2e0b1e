"""The Recommend page's "Compare…": the selected models head to head on datasets like the
query's, as `lensroute compare` prints it — who won what share of their meetings, and the
datasets that count most with every model's value on them."""

from __future__ import annotations

import polars as pl
from PySide6.QtWidgets import QDialog, QDialogButtonBox, QLabel, QTableView, QVBoxLayout, QWidget

from app.gui.widgets import FrameModel, compact_table, fit_columns


def tags(result) -> dict[str, str]:  # type: ignore[no-untyped-def]
    return {m["model"]: f"[{i + 1}]" for i, m in enumerate(result.models)}


def matrix_frame(result) -> pl.DataFrame:  # type: ignore[no-untyped-def]
    """One row per model: its rank, score, pooled share of wins, and its share against each other."""
    tag = tags(result)
    share = {(p["model"], p["versus"]): p["win_rate"] for p in result.pairs}
    columns: dict[str, list] = {"": [tag[m["model"]] for m in result.models], "model": [m["model"] for m in result.models],
                                "rank": [m["rank"] for m in result.models], "score": [m["score"] for m in result.models],
                                "wins": [m["win_rate"] for m in result.models]}
    for other in tag:
        columns[f"vs {tag[other]}"] = [share.get((m["model"], other)) for m in result.models]
    schema = {"": pl.Utf8, "model": pl.Utf8, "rank": pl.Int64, "score": pl.Float64, "wins": pl.Float64,
              **{f"vs {tag[o]}": pl.Float64 for o in tag}}
    return pl.DataFrame(columns, schema=schema)


def datasets_frame(result) -> pl.DataFrame:  # type: ignore[no-untyped-def]
    tag = tags(result)
    columns: dict[str, list] = {"dataset": [d["dataset"] for d in result.datasets], "metric": [d["metric"] for d in result.datasets],
                                "similarity": [d["similarity"] for d in result.datasets]}
    for model in tag:
        columns[tag[model]] = [d["values"].get(model) for d in result.datasets]
    schema = {"dataset": pl.Utf8, "metric": pl.Utf8, "similarity": pl.Float64, **{tag[m]: pl.Float64 for m in tag}}
    return pl.DataFrame(columns, schema=schema)


class CompareDialog(QDialog):
    def __init__(self, result, parent: QWidget | None = None) -> None:  # type: ignore[no-untyped-def]
        super().__init__(parent)
        self.setObjectName("compareDialog")
        query = result.query
        self.setWindowTitle(f"Compare {len(result.models)} models")
        tag = tags(result)
        meetings = ", ".join(f"{tag[a]}–{tag[b]} {n:,}" for a, b, n in result.meetings())
        self.header = QLabel(f"For {query['task']} / {query['metric']}: each cell is the share of the two models' "
                             f"weighted meetings the row's model won. Meetings (results groups both were measured in): "
                             f"{meetings}." + "".join(f"<br>note: {n}" for n in result.notes))
        self.header.setWordWrap(True)
        self.matrix = FrameModel(matrix_frame(result))
        self.datasets = FrameModel(datasets_frame(result))
        layout = QVBoxLayout(self)
        layout.addWidget(self.header)
        for model in (self.matrix, self.datasets):
            view = compact_table(QTableView())
            view.setModel(model)
            view.horizontalHeader().setStretchLastSection(False)  # one column per model: none should take the rest
            fit_columns(view)
            layout.addWidget(view, 1)
        layout.insertWidget(2, QLabel(f"Where they met: the {len(result.datasets)} of {result.shared_groups:,} shared "
                                      "results groups that count most (similar description, same task type and language)"))
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        buttons.rejected.connect(self.reject)
        layout.addWidget(buttons)
        self.resize(860, 560)
