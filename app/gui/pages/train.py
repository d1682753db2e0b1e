"""Train & evaluate page: parameters with defaults, start/cancel, the live loss and validation
curve, the evaluation table (ModelLens and every baseline, the latest run of every split side by
side, kept across restarts) with the selected run's τw per task type, and the model versions."""

from __future__ import annotations

import re

import polars as pl
import pyqtgraph as pg
from PySide6.QtCore import Slot
from PySide6.QtWidgets import (
    QComboBox,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QSpinBox,
    QTableView,
    QVBoxLayout,
    QWidget,
)

from app.gui.jobs import Job
from app.gui.widgets import (
    FrameModel,
    JobBar,
    compact_table,
    disable_without_build_tools,
    fit_columns,
)

EPOCH_LINE = re.compile(r"epoch (\d+): loss ([-\d.]+), val τw ([-\d.]+)")


ALL_SPLITS = "every split"
SPLIT_ORDER = ("new-dataset", "random", "new-model")


def evaluation_frame(reports: dict[str, dict]) -> pl.DataFrame:
    """One row per (split, seed, method): the stored reports of `recommender.evaluation_log`."""
    def order(report: dict) -> tuple[int, int]:
        split = report.get("split", "")
        return (SPLIT_ORDER.index(split) if split in SPLIT_ORDER else len(SPLIT_ORDER), int(report.get("seed", 0)))

    rows = []
    for report in sorted(reports.values(), key=order):
        for method in report["methods"]:
            rows.append({"split": report.get("split"), "seed": report.get("seed"),
                         **{k: v for k, v in method.items()
                            if k not in ("note", "seconds", "by_task", "runs") and not k.startswith("n_groups")},
                         "seconds": method.get("seconds"), "note": method.get("note", ""),
                         "evaluated": report.get("evaluated_at", "")})
    if not rows:
        return pl.DataFrame()
    keys = list(dict.fromkeys(k for row in rows for k in row))
    return pl.DataFrame([{k: row.get(k) for k in keys} for row in rows], infer_schema_length=None)


def task_frame(report: dict | None) -> pl.DataFrame:
    """One row per task type of a stored report (`evaluation_log.task_breakdown`): its group count
    and each method's τw there; empty for reports stored before the breakdown."""
    from recommender.evaluation_log import task_breakdown

    tasks, counts, taus = task_breakdown(report or {})
    if not tasks:
        return pl.DataFrame()
    return pl.DataFrame({"task type": tasks, "groups": counts, **taus},
                        schema={"task type": pl.Utf8, "groups": pl.Int64, **{m: pl.Float64 for m in taus}}, strict=False)


NO_EVALUATION = ("no evaluation yet: pick a split and press Evaluate to see ModelLens against every baseline on it "
                 "(as `lensroute evaluate --split …`)")


class TrainPage(QWidget):
    title = "Train & evaluate"

    def __init__(self, context, parent: QWidget | None = None) -> None:  # type: ignore[no-untyped-def]
        super().__init__(parent)
        self.context = context
        self.epochs = QSpinBox()
        self.epochs.setRange(1, 500)
        self.seed = QSpinBox()
        self.seed.setRange(0, 2**31 - 1)
        self.runs = QSpinBox()  # evaluation: ModelLens trained with seeds seed … seed + runs − 1
        self.runs.setRange(1, 10)
        self.runs.setToolTip("Evaluate: train ModelLens this many times (seeds seed, seed+1, …) on the split "
                             "and report their mean and spread")
        self.device = QComboBox()
        self.device.addItems(["cpu", "cuda"])
        self.split = QComboBox()
        self.split.addItems([*SPLIT_ORDER, ALL_SPLITS])
        self.train_button = QPushButton("Train")
        self.resume_button = QPushButton("Resume")  # an interrupted training, from its last finished epoch
        self.resume_button.setToolTip("Continue the interrupted training from its last finished epoch "
                                      "(the same seed; more epochs may be given)")
        self.evaluate_button = QPushButton("Evaluate")
        self.version = QLabel("")
        self.version.setObjectName("modelVersion")
        self.eval_note = QLabel("")
        self.eval_note.setWordWrap(True)
        self.plot = pg.PlotWidget()
        self.plot.setBackground(None)
        self.plot.addLegend()
        self.plot.setLabel("bottom", "epoch")
        for side in ("bottom", "left"):
            self.plot.getAxis(side).enableAutoSIPrefix(False)
        self.loss_line = self.plot.plot([], [], pen=pg.mkPen("#e15759", width=2), name="training loss")
        self.val_line = self.plot.plot([], [], pen=pg.mkPen("#4e79a7", width=2), name="validation τw")
        self.history: list[tuple[int, float, float]] = []
        self.model = FrameModel()
        self.table = compact_table(QTableView())
        self.table.setModel(self.model)
        fit_columns(self.table)
        self.reports: dict[str, dict] = {}
        self.task_caption = QLabel("")
        self.task_model = FrameModel()
        self.task_table = compact_table(QTableView())
        self.task_table.setModel(self.task_model)
        fit_columns(self.task_table)
        self.versions = FrameModel()
        self.versions_table = compact_table(QTableView())
        self.versions_table.setModel(self.versions)
        fit_columns(self.versions_table)
        self.use_button = QPushButton("Use the selected version")
        self.job = Job("training", self)
        from recommender.train_config import TrainConfig

        defaults = TrainConfig()
        self.epochs.setValue(defaults.epochs)
        self.seed.setValue(defaults.seed)
        params = QHBoxLayout()
        for label, widget in (("epochs", self.epochs), ("seed", self.seed), ("device", self.device),
                              ("split", self.split), ("training runs", self.runs)):
            params.addWidget(QLabel(label))
            params.addWidget(widget)
        params.addWidget(self.train_button)
        params.addWidget(self.resume_button)
        params.addWidget(self.evaluate_button)
        params.addStretch(1)
        layout = QVBoxLayout(self)
        layout.addWidget(self.version)
        layout.addLayout(params)
        layout.addWidget(self.plot, 2)
        layout.addWidget(self.table, 2)
        layout.addWidget(self.eval_note)
        layout.addWidget(self.task_caption)
        layout.addWidget(self.task_table, 2)
        versions = QHBoxLayout()
        versions.addWidget(QLabel("Model versions"))
        versions.addStretch(1)
        versions.addWidget(self.use_button)
        layout.addLayout(versions)
        layout.addWidget(self.versions_table, 1)
        layout.addWidget(JobBar(self.job))
        self.train_button.clicked.connect(self.train)
        self.resume_button.clicked.connect(self.resume)
        self.evaluate_button.clicked.connect(self.evaluate)
        self.use_button.clicked.connect(self.use_selected)
        self.table.selectionModel().selectionChanged.connect(self.show_task_breakdown)
        self.job.progressed.connect(self.on_progress)
        self.job.succeeded.connect(self.on_done)
        self.job.running_changed.connect(self.on_running)
        # the frozen app ranks with the ranker it ships and cannot train
        self.cannot_train = disable_without_build_tools(self.train_button, self.evaluate_button)
        if self.cannot_train is not None:
            self.eval_note.setText(self.cannot_train)
        self.resume_button.setEnabled(self.can_resume())

    def config(self):  # type: ignore[no-untyped-def]
        from recommender.train_config import TrainConfig

        base = TrainConfig()
        return TrainConfig(**{**base.as_dict(), "epochs": self.epochs.value(), "seed": self.seed.value(),
                              "device": self.device.currentText()})

    @Slot()
    def train(self) -> bool:
        return self._start_training(resume=False)

    def _start_training(self, resume: bool) -> bool:
        from recommender.pipeline import train_ranker
        from recommender.ranker import user_ranker_dir

        store, config, out = self.context.store(), self.config(), user_ranker_dir()
        if not resume:
            self.history.clear()
            self.loss_line.setData([], [])
            self.val_line.setData([], [])
        return self.job.start(lambda progress, cancel: train_ranker(store, config, out, resume=resume,
                                                                    progress=progress, cancel=cancel))

    @Slot()
    def resume(self) -> bool:
        """Continue the training a cancel (or a closed window) interrupted; the curve keeps its first epochs."""
        return self.can_resume() and self._start_training(resume=True)

    def can_resume(self) -> bool:
        from recommender.paths import training_checkpoint
        from recommender.ranker import user_ranker_dir

        return self.cannot_train is None and not self.job.running and training_checkpoint(user_ranker_dir()).exists()

    @Slot()
    def evaluate(self) -> bool:
        from recommender.pipeline import evaluate_splits

        store, config, chosen = self.context.store(), self.config(), self.split.currentText()
        splits = list(SPLIT_ORDER) if chosen == ALL_SPLITS else [chosen]
        runs = self.runs.value()
        seeds = list(range(config.seed, config.seed + runs)) if runs > 1 else None
        return self.job.start(lambda progress, cancel: evaluate_splits(store, splits, config, train_seeds=seeds,
                                                                       progress=progress, cancel=cancel))

    @Slot(float, float, str)
    def on_progress(self, done: float, total: float, message: str) -> None:
        match = EPOCH_LINE.search(message)
        if match:
            epoch, loss, tau = int(match.group(1)), float(match.group(2)), float(match.group(3))
            self.history = [h for h in self.history if h[0] < epoch] + [(epoch, loss, tau)]
            self.loss_line.setData([h[0] for h in self.history], [h[1] for h in self.history])
            self.val_line.setData([h[0] for h in self.history], [h[2] for h in self.history])

    @Slot(object)
    def on_done(self, result) -> None:  # type: ignore[no-untyped-def]
        if isinstance(result, dict) and "model_version" in result:
            self.context.forget_ranker()
            self.refresh()
        elif hasattr(result, "reports"):
            from recommender.evaluation_log import save_reports

            stored, problem = save_reports(result.reports, self.context.db_label())
            self.show_reports(stored)
            notes = [f"{split} skipped: {why}" for split, why in result.skipped.items()]
            self.eval_note.setText("; ".join([*notes, *([problem] if problem else [])]))

    @Slot(bool)
    def on_running(self, running: bool) -> None:
        self.train_button.setEnabled(not running and self.cannot_train is None)
        self.evaluate_button.setEnabled(not running and self.cannot_train is None)
        self.resume_button.setEnabled(self.can_resume())

    def show_reports(self, reports: dict[str, dict]) -> None:
        self.reports = reports
        self.model.set_frame(evaluation_frame(reports))
        self.show_task_breakdown()

    @Slot()
    def show_task_breakdown(self) -> None:
        """τw per task type of the run of the selected row (the first run when none is selected)."""
        frame = self.model.frame
        if frame.is_empty():
            self.task_model.set_frame(pl.DataFrame())
            self.task_caption.setText("")
            return
        rows = self.table.selectionModel().selectedRows()
        row = rows[0].row() if rows else 0
        split, seed = frame["split"][row], frame["seed"][row]
        from recommender.evaluation_log import entry_key

        breakdown = task_frame(self.reports.get(entry_key(str(split), int(seed or 0))))
        self.task_model.set_frame(breakdown)
        self.task_caption.setText(
            f"τw by task type, split {split} (seed {seed}): select a row above for another run" if not breakdown.is_empty()
            else f"split {split} (seed {seed}): evaluated before the per-task breakdown; evaluate again to see it")

    def refresh_versions(self) -> None:
        from recommender.ranker import user_ranker_dir
        from recommender.ranker_versions import list_versions

        rows = list_versions(user_ranker_dir())
        self.versions.set_frame(pl.DataFrame({
            "version": [r["model_version"] for r in rows], "trained": [r["created_at"] for r in rows],
            "validation τw": [r["best_val_tau_w"] for r in rows], "records": [r["records"] for r in rows],
            "in use": ["✔" if r["in_use"] else "" for r in rows]},
            schema={"version": pl.Utf8, "trained": pl.Utf8, "validation τw": pl.Float64, "records": pl.Int64, "in use": pl.Utf8}))

    @Slot()
    def use_selected(self) -> bool:
        from app.gui.widgets import show_error
        from recommender.errors import LensrouteError
        from recommender.ranker import user_ranker_dir
        from recommender.ranker_versions import use_version

        rows = self.versions_table.selectionModel().selectedRows()
        if not rows or self.job.running:
            show_error(self, "select an archived version first (and wait for training to finish)")
            return False
        frame = self.versions.frame
        if frame["in use"][rows[0].row()]:
            return True
        try:
            use_version(user_ranker_dir(), str(frame["version"][rows[0].row()]))
        except LensrouteError as exc:
            show_error(self, str(exc))
            return False
        self.context.forget_ranker()
        self.refresh()
        return True

    @Slot()
    def refresh(self) -> None:
        from recommender.evaluation_log import load_reports

        self.refresh_versions()
        if not self.job.running:
            self.show_reports(load_reports())
            if self.model.frame.is_empty() and not self.eval_note.text():
                self.eval_note.setText(NO_EVALUATION)
        ranker = self.context.ranker()
        if ranker is not None:
            from recommender.head_to_head import describe_choice

            choice = describe_choice(ranker.manifest.get("head_to_head"))
            self.version.setText(f"ranker in use: {ranker.model_version} ({ranker.folder})" + (f"\n{choice}" if choice else ""))
        else:
            self.version.setText(f"no ranker: {self.context.ranker_error}")
        if ranker is not None and not self.job.running:  # the curve of the run that made this ranker
            history = ranker.manifest.get("validation", {}).get("history") or []
            self.history = [(int(h["epoch"]) + 1, float(h["loss"]), float(h["val_tau_w"])) for h in history
                            if {"epoch", "loss", "val_tau_w"} <= set(h)]
            self.loss_line.setData([h[0] for h in self.history], [h[1] for h in self.history])
            self.val_line.setData([h[0] for h in self.history], [h[2] for h in self.history])
