"""Recommend page: describe a dataset, get the ranked models (score, known/unseen, evidence on
click) from the catalogue or from your own list of models (a candidates file, as `rank
--candidates`), only those the user can take (size budget, licences, open weights: `rank
--max-params/--licence/--open-weights`), export them, and see the atlas — the learned model space in 2-D with the query and its
Top-K highlighted (pyqtgraph: zoom and pan with the mouse, names on hover)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import polars as pl
import pyqtgraph as pg
from PySide6.QtCore import Qt, Signal, Slot
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QCompleter,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPlainTextEdit,
    QPushButton,
    QSpinBox,
    QSplitter,
    QTableView,
    QTextEdit,
    QVBoxLayout,
    QWidget,
)

from app.gui.jobs import Job
from app.gui.widgets import FrameModel, JobBar, compact_table, fit_columns, show_error
from recommender.errors import LensrouteError
from recommender.model_filters import describe_facts, filter_from

FAMILY_COLOURS = ["#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1", "#ff9da7",
                  "#9c755f", "#bab0ac"]


def ranking_frame(ranking, runs_here: dict[str, str] | None = None) -> pl.DataFrame:  # type: ignore[no-untyped-def]
    """The ranking as a table; `runs_here` maps a ranked model to the installed local model that
    is it (`lensroute pool`'s "runs here as"), so the user sees which picks can be routed to now."""
    runs_here = runs_here or {}
    return pl.DataFrame({
        "rank": [r.rank for r in ranking.results],
        "model": [r.model for r in ranking.results],
        "score": [r.score for r in ranking.results],
        "known": ["known" if r.known else "unseen" for r in ranking.results],
        "head-to-head": [r.head_to_head for r in ranking.results],
        "measured": [r.measured for r in ranking.results],
        "params (B)": [None if r.n_parameters is None else r.n_parameters / 1e9 for r in ranking.results],
        "licence": [r.licence for r in ranking.results],
        "weights": [None if r.open_weights is None else ("open" if r.open_weights else "API only") for r in ranking.results],
        "evidence": [len(r.evidence) for r in ranking.results],
        "runs here": [runs_here.get(r.model) for r in ranking.results],
    }, schema={"rank": pl.Int64, "model": pl.Utf8, "score": pl.Float64, "known": pl.Utf8, "head-to-head": pl.Float64,
               "measured": pl.Float64, "params (B)": pl.Float64, "licence": pl.Utf8, "weights": pl.Utf8, "evidence": pl.Int64, "runs here": pl.Utf8})


class AtlasView(pg.PlotWidget):
    """Models (coloured by family) and datasets (grey) in 2-D; the query and its Top-K on top."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setBackground(None)
        self.showGrid(x=False, y=False)
        self.getPlotItem().hideAxis("left")
        self.getPlotItem().hideAxis("bottom")
        self.models = pg.ScatterPlotItem(size=5, pen=None, hoverable=True, tip=self._tip)
        self.datasets = pg.ScatterPlotItem(size=6, pen=None, symbol="t", brush=pg.mkBrush(150, 150, 150, 120),
                                           hoverable=True, tip=self._tip)
        self.top = pg.ScatterPlotItem(size=11, pen=pg.mkPen("k", width=1.5), brush=pg.mkBrush(255, 215, 0, 230),
                                      hoverable=True, tip=self._tip)
        self.query = pg.ScatterPlotItem(size=18, symbol="star", pen=pg.mkPen("k"), brush=pg.mkBrush(220, 20, 60),
                                        tip=self._tip, hoverable=True)
        for item in (self.datasets, self.models, self.top, self.query):
            self.addItem(item)
        self.atlas = None

    @staticmethod
    def _tip(x: float, y: float, data: object) -> str:
        return str(data)

    def set_atlas(self, atlas) -> None:  # type: ignore[no-untyped-def]
        self.atlas = atlas
        families = sorted(set(atlas.families))
        colour = {f: FAMILY_COLOURS[i % len(FAMILY_COLOURS)] for i, f in enumerate(families)}
        self.models.setData(pos=atlas.model_xy, data=[f"{m} ({f})" for m, f in zip(atlas.models, atlas.families, strict=True)],
                            brush=[pg.mkBrush(colour[f]) for f in atlas.families])
        self.datasets.setData(pos=atlas.dataset_xy, data=[f"dataset {d} ({t})" for d, t in zip(atlas.datasets, atlas.tasks, strict=True)])
        self.top.setData(pos=np.zeros((0, 2)))
        self.query.setData(pos=np.zeros((0, 2)))

    def highlight(self, ranking) -> int:  # type: ignore[no-untyped-def]
        """Mark the ranking's known Top-K and place the query at their mean; returns how many."""
        if self.atlas is None:
            return 0
        placed = [(r.model, self.atlas.position(r.model)) for r in ranking.results]
        placed = [(m, p) for m, p in placed if p is not None]
        if not placed:
            self.top.setData(pos=np.zeros((0, 2)))
            self.query.setData(pos=np.zeros((0, 2)))
            return 0
        xy = np.array([p for _, p in placed])
        self.top.setData(pos=xy, data=[f"Top-K: {m}" for m, _ in placed])
        self.query.setData(pos=xy.mean(0, keepdims=True),
                           data=["your task (placed at the mean of its Top-K known models)"])
        return len(placed)


class RecommendPage(QWidget):
    route_requested = Signal(list)  # local model names, best ranked first: calibrate a pool of them
    title = "Recommend"

    def __init__(self, context, parent: QWidget | None = None) -> None:  # type: ignore[no-untyped-def]
        super().__init__(parent)
        self.context = context
        self.ranking = None
        self.runs_here: dict[str, str] = {}  # ranked model → installed local model that is it
        self._ranker_terms = None  # the loaded ranker, once the pickers are filled from it
        self.description = QPlainTextEdit()
        self.description.setPlaceholderText("Describe your dataset: what the inputs are, what is predicted, the language…")
        self.description.setMaximumHeight(90)
        self.dataset = QLineEdit()
        self.dataset.setPlaceholderText("optional: a dataset name the catalogue knows")
        self.languages = QLineEdit()
        self.languages.setPlaceholderText("e.g. French, de (default: read from the description)")
        self.task = QComboBox()
        self.metric = QComboBox()
        for combo in (self.task, self.metric):
            combo.setEditable(True)
            combo.setInsertPolicy(QComboBox.InsertPolicy.NoInsert)
        self.top_k = QSpinBox()
        self.top_k.setRange(0, 100_000)
        self.top_k.setSpecialValueText("all")
        self.candidates = QLineEdit()
        self.candidates.setPlaceholderText("optional: a CSV or JSONL file of models to rank (column 'model'; optional "
                                           "n_parameters, family, release_date, description, licence, open_weights); empty: the catalogue's")
        self.candidates.setClearButtonEnabled(True)
        self.candidates_button = QPushButton("Choose…")
        self.measured = QLineEdit()
        self.measured.setPlaceholderText("optional: a CSV or JSONL file of results you already have on this dataset "
                                         "(columns 'model', 'value', in the metric above)")
        self.measured.setClearButtonEnabled(True)
        self.measured_button = QPushButton("Choose…")
        self.max_params = QLineEdit()
        self.max_params.setPlaceholderText("any size; e.g. 350M, 7B")
        self.licences = QLineEdit()
        self.licences.setPlaceholderText("any licence; e.g. apache-2.0, mit")
        self.open_weights = QCheckBox("Open weights only")
        self.open_weights.setToolTip("leave out models recorded as API only")
        self.require_known = QCheckBox("Only models known to pass")
        self.require_known.setToolTip("also leave out models whose size, licence or openness is not recorded")
        self.rank_button = QPushButton("Rank models")
        self.rank_button.setShortcut("Ctrl+Return")
        self.export_button = QPushButton("Export…")
        self.details_button = QPushButton("Details…")
        self.details_button.setToolTip("everything the catalogue knows of the chosen model (double-click a row)")
        self.details_dialog = None
        self.compare_button = QPushButton("Compare…")
        self.compare_button.setToolTip("the selected models head to head on datasets like yours (Ctrl+click to select several)")
        self.compare_dialog = None
        self.route_button = QPushButton("Route with these…")
        self.route_button.setToolTip("calibrate a routing pool of the ranked models installed here (the 'runs here' "
                                     "column); the Route page opens with them ticked")
        self.notes = QLabel("")
        self.notes.setWordWrap(True)
        self.notes.setObjectName("rankNotes")
        self.model = FrameModel()
        self.table = compact_table(QTableView())
        self.table.setModel(self.model)
        fit_columns(self.table)
        self.table.setSortingEnabled(True)
        self.evidence = QTextEdit()
        self.evidence.setReadOnly(True)
        self.evidence.setPlaceholderText("click a model to see the results that back its rank")
        self.atlas = AtlasView()
        self.job = Job("rank", self)
        self.atlas_job = Job("atlas", self)
        self.details_job = Job("details", self)
        self.compare_job = Job("compare", self)

        form = QFormLayout()
        form.addRow("Description", self.description)
        row = QHBoxLayout()
        for label, widget in (("Dataset", self.dataset), ("Languages", self.languages), ("Task", self.task), ("Metric", self.metric),
                              ("Top-K", self.top_k)):
            row.addWidget(QLabel(label))
            row.addWidget(widget, 1)
        row.addWidget(self.rank_button)
        form.addRow(row)
        candidates_row = QHBoxLayout()
        candidates_row.addWidget(self.candidates, 1)
        candidates_row.addWidget(self.candidates_button)
        form.addRow("Candidates", candidates_row)
        measured_row = QHBoxLayout()
        measured_row.addWidget(self.measured, 1)
        measured_row.addWidget(self.measured_button)
        form.addRow("Measured", measured_row)
        filters_row = QHBoxLayout()
        for label, widget in (("Max size", self.max_params), ("Licences", self.licences)):
            filters_row.addWidget(QLabel(label))
            filters_row.addWidget(widget, 1)
        filters_row.addWidget(self.open_weights)
        filters_row.addWidget(self.require_known)
        form.addRow("Filters", filters_row)
        left = QSplitter(Qt.Orientation.Vertical)
        left.addWidget(self.table)
        left.addWidget(self.evidence)
        split = QSplitter(Qt.Orientation.Horizontal)
        split.addWidget(left)
        split.addWidget(self.atlas)
        split.setSizes([600, 500])
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(self.notes)
        actions = QHBoxLayout()  # what to do with the ranking: above it, so the query row keeps its room
        for button in (self.details_button, self.compare_button, self.route_button):
            actions.addWidget(button)
        actions.addStretch(1)
        actions.addWidget(self.export_button)
        layout.addLayout(actions)
        layout.addWidget(split, 1)
        layout.addWidget(JobBar(self.job))

        self.rank_button.clicked.connect(self.rank)
        self.export_button.clicked.connect(self.choose_export)
        self.candidates_button.clicked.connect(self.choose_candidates)
        self.measured_button.clicked.connect(self.choose_measured)
        self.table.clicked.connect(self.show_evidence)
        self.table.doubleClicked.connect(self.show_details)
        self.details_button.clicked.connect(self.show_details)
        self.details_job.succeeded.connect(self.on_details)
        self.details_job.failed.connect(lambda error: show_error(self, error))
        self.compare_button.clicked.connect(self.compare_selected)
        self.route_button.clicked.connect(self.route_with_ranked)
        self.compare_job.succeeded.connect(self.on_compared)
        self.compare_job.failed.connect(lambda error: show_error(self, error))
        self.job.succeeded.connect(self.on_ranked)
        self.job.running_changed.connect(self.on_running)
        self.atlas_job.succeeded.connect(self.on_atlas)
        self.task.currentTextChanged.connect(self.fill_metrics)

    def load_state(self, settings) -> None:  # type: ignore[no-untyped-def]
        self.description.setPlainText(settings.description)
        self.dataset.setText(settings.dataset)
        self.languages.setText(settings.languages)
        self.task.setEditText(settings.task)
        self.metric.setEditText(settings.metric)
        self.top_k.setValue(settings.top_k)
        self.candidates.setText(settings.candidates)
        self.measured.setText(settings.measured)
        self.max_params.setText(settings.max_params)
        self.licences.setText(settings.licences)
        self.open_weights.setChecked(settings.open_weights)
        self.require_known.setChecked(settings.require_known)

    def save_state(self, settings) -> None:  # type: ignore[no-untyped-def]
        settings.description = self.description.toPlainText()
        settings.dataset, settings.task, settings.metric = self.dataset.text(), self.task.currentText(), self.metric.currentText()
        settings.languages = self.languages.text()
        settings.top_k = self.top_k.value()
        settings.candidates = self.candidates.text()
        settings.measured = self.measured.text()
        settings.max_params, settings.licences = self.max_params.text(), self.licences.text()
        settings.open_weights, settings.require_known = self.open_weights.isChecked(), self.require_known.isChecked()

    def ensure_ranker(self) -> None:
        """Load the ranker and build the atlas off the GUI thread, then fill the task/metric pickers."""
        if self.task.count() or self.atlas_job.running:
            return
        from recommender.atlas import build_atlas

        context = self.context

        def load(progress, cancel):  # type: ignore[no-untyped-def]
            ranker = context.ranker()
            return None if ranker is None else (ranker, build_atlas(ranker))

        self.atlas_job.start(load)

    @Slot(object)
    def on_atlas(self, loaded) -> None:  # type: ignore[no-untyped-def]
        if loaded is None:
            return
        ranker, atlas = loaded
        self._ranker_terms = ranker
        self._fill(self.task, ranker.task_names)
        self.fill_metrics()
        self.atlas.set_atlas(atlas)
        if self.ranking is not None:
            self.atlas.highlight(self.ranking)

    @staticmethod
    def _fill(combo: QComboBox, values: Sequence[str], more: Sequence[str] = ()) -> None:
        """Offer `values`, then after a separator `more`, keeping whatever the user typed."""
        text = combo.currentText()
        combo.blockSignals(True)
        combo.clear()
        combo.addItem("")
        combo.addItems(list(values))
        if more:
            combo.insertSeparator(combo.count())
            combo.addItems(list(more))
        completer = QCompleter([*values, *more], combo)
        completer.setCaseSensitivity(Qt.CaseSensitivity.CaseInsensitive)
        completer.setFilterMode(Qt.MatchFlag.MatchContains)
        combo.setCompleter(completer)
        combo.setEditText(text)
        combo.blockSignals(False)

    @Slot()
    def fill_metrics(self) -> None:
        """The metric picker follows the task: metrics measured on datasets of that task first
        (most used first), the rest after a separator, since they would only extrapolate."""
        if self._ranker_terms is not None:
            self._fill(self.metric, *self._ranker_terms.metrics_for(self.task.currentText().strip() or None))

    @Slot()
    def rank(self) -> bool:
        text = self.description.toPlainText().strip()
        if not text:
            show_error(self, "describe the dataset first: the description is empty")
            return False
        ranker = self.context.ranker()
        if ranker is None:
            show_error(self, self.context.ranker_error or "no trained ranker")
            return False
        self.ensure_ranker()
        dataset, task, metric = self.dataset.text().strip() or None, self.task.currentText().strip() or None, \
            self.metric.currentText().strip() or None
        top_k = self.top_k.value()
        language = [self.languages.text()] if self.languages.text().strip() else []
        file = Path(self.candidates.text().strip()).expanduser() if self.candidates.text().strip() else None
        mine = Path(self.measured.text().strip()).expanduser() if self.measured.text().strip() else None
        try:
            constraint = self.constraint()
        except LensrouteError as exc:
            show_error(self, str(exc))
            return False

        def work(progress, cancel):  # type: ignore[no-untyped-def]
            from recommender.measured import read_measured
            from recommender.ranker import read_candidates
            from routing.pool import runs_here

            candidates = read_candidates(file) if file else None  # a bad file fails the job with its reason
            measured = read_measured(mine) if mine else []
            ranking = ranker.rank(text, dataset=dataset, task=task, metric=metric, top_k=top_k, language=language,
                                  candidates=candidates, constraint=constraint, measured=measured)
            return ranking, runs_here([r.model for r in ranking.results])

        return self.job.start(work)

    def constraint(self):  # type: ignore[no-untyped-def]
        """The filters as the CLI reads them (`rank --max-params/--licence/--open-weights/--require-known`)."""
        return filter_from(self.max_params.text().strip() or None, [self.licences.text()] if self.licences.text().strip() else [],
                           self.open_weights.isChecked(), self.require_known.isChecked(),
                           size_label="Max size", licence_label="Licences")

    @Slot()
    def choose_candidates(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Models to rank", "", "Candidates (*.csv *.jsonl *.ndjson *.json);;All files (*)")
        if path:
            self.candidates.setText(path)

    @Slot()
    def choose_measured(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Results you have", "", "Results (*.csv *.jsonl *.ndjson *.json);;All files (*)")
        if path:
            self.measured.setText(path)

    @Slot(object)
    def on_ranked(self, ranked) -> None:  # type: ignore[no-untyped-def]
        ranking, self.runs_here = ranked
        self.ranking = ranking
        self.model.set_frame(ranking_frame(ranking, self.runs_here))
        self.notes.setText("  ·  ".join(ranking.notes))
        self.evidence.clear()
        self.atlas.highlight(ranking)

    @Slot(bool)
    def on_running(self, running: bool) -> None:
        self.rank_button.setEnabled(not running)

    @Slot()
    def show_evidence(self, index=None) -> None:  # type: ignore[no-untyped-def]
        if self.ranking is None or index is None:
            return
        model = self.model.frame["model"][index.row()]
        result = next(r for r in self.ranking.results if r.model == model)
        lines = [f"<b>{model}</b> — score {result.score:.4f}, {'known' if result.known else 'unseen (ranked from its views)'}"]
        if facts := describe_facts(result.n_parameters, result.licence, result.open_weights):
            lines.append(" · ".join(facts))
        if model in self.runs_here:
            lines.append(f"installed here as <b>{self.runs_here[model]}</b>: a pool member for the Route page")
        if result.head_to_head is not None:
            lines.append(f"won {result.head_to_head:.0%} of its weighted meetings with the other top candidates "
                         "on datasets like this one")
        lines += [f"{e['dataset']} · {e['metric']} = {e['value']}" for e in result.evidence] or ["no results on close datasets"]
        self.evidence.setHtml("<br>".join(lines))

    @Slot()
    def show_details(self, index=None) -> bool:  # type: ignore[no-untyped-def]
        """Open the chosen model's details (`lensroute show model`), read off the GUI thread."""
        index = index if index is not None and index.isValid() else self.table.currentIndex()
        if self.ranking is None or not index.isValid():
            show_error(self, "choose a model in the ranking first")
            return False
        name = self.model.frame["model"][index.row()]
        context = self.context

        def work(progress, cancel):  # type: ignore[no-untyped-def]
            from recommender.store.lookup import model_info

            return model_info(context.store(), name)  # a model only your candidates file names: not found, said so

        return self.details_job.start(work)

    @Slot(object)
    def on_details(self, info) -> None:  # type: ignore[no-untyped-def]
        from app.gui.pages.model_dialog import ModelDialog

        self.details_dialog = ModelDialog(info, self)
        self.details_dialog.show()

    @Slot()
    def compare_selected(self) -> bool:
        """`lensroute compare` on the selected rows, asked as the shown ranking was asked."""
        rows = sorted({index.row() for index in self.table.selectionModel().selectedRows()})
        if self.ranking is None or len(rows) < 2:
            show_error(self, "select two or more models in the ranking to compare (Ctrl+click)")
            return False
        names = [self.model.frame["model"][r] for r in rows]
        ranker, query = self.context.ranker(), self.ranking.query

        def work(progress, cancel):  # type: ignore[no-untyped-def]
            from recommender.compare import compare

            return compare(ranker, query["description"], names, dataset=query.get("dataset"), task=query["task"],
                           metric=query["metric"], language=query.get("languages") or ())

        return self.compare_job.start(work)

    @Slot(object)
    def on_compared(self, result) -> None:  # type: ignore[no-untyped-def]
        from app.gui.pages.compare_dialog import CompareDialog

        self.compare_dialog = CompareDialog(result, self)
        self.compare_dialog.show()

    @Slot()
    def route_with_ranked(self) -> bool:
        """Hand the ranked models that run here to the Route page as a pool to calibrate: the step
        from "which models would do best" to "send each query to the best of them"."""
        if self.ranking is None:
            show_error(self, "rank models first: the pool is made of the ranked models installed here")
            return False
        local = [self.runs_here[r.model] for r in self.ranking.results if r.model in self.runs_here]
        if not local:
            show_error(self, "none of the ranked models is installed here: add or build local models on the Local "
                             "models page, or rank with a larger Top-K or a candidates file that names them")
            return False
        self.route_requested.emit(local)
        return True

    @Slot()
    def choose_export(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Export the ranking", "ranking.csv", "CSV (*.csv);;JSON (*.json)")
        if path:
            self.export_to(Path(path))

    def export_to(self, path: Path) -> bool:
        if self.ranking is None:
            show_error(self, "nothing to export yet: rank models first")
            return False
        try:
            if path.suffix.lower() == ".json":
                path.write_text(json.dumps(self.ranking.as_json(), indent=2), encoding="utf-8")
            else:
                ranking_frame(self.ranking, self.runs_here).write_csv(path)
        except OSError as exc:
            show_error(self, f"cannot write {path}: {exc.strerror or exc}")
            return False
        return True
