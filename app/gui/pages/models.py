"""Local models page: installed models, build the built-ins, add a folder, the execution provider
(shown honestly: the one ONNX Runtime really uses here), and the informed-routing benchmark."""

from __future__ import annotations

from pathlib import Path

import polars as pl
from PySide6.QtCore import Slot
from PySide6.QtWidgets import (
    QDoubleSpinBox,
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QMessageBox,
    QPushButton,
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
    show_error,
)


def bench_frame(rows: list) -> pl.DataFrame:  # type: ignore[type-arg]
    keys = list(rows[0].quality) if rows else []
    return pl.DataFrame({
        "method": [r.method for r in rows], "sparsity": [r.sparsity for r in rows],
        **{key: [r.quality.get(key) for r in rows] for key in keys},
        "prefill ms": [", ".join(f"{k}: {v:.1f}" for k, v in r.prefill_ms.items()) for r in rows],
        "decode ms/token": [r.decode_ms for r in rows], "speed-up": [r.speedup for r in rows],
        "theoretical": [r.theoretical_speedup for r in rows],
    })


def accelerated_summary(manifest: dict) -> str:
    """What an accelerated copy is, in a table cell (empty for any other model)."""
    info = manifest.get("accelerated")
    if not isinstance(info, dict):
        return ""
    return (f"{info.get('base')} at sparsity {info.get('sparsity')}: KL {info.get('kl')}, top-1 {info.get('top1')}, "
            f"prefill ×{info.get('prefill_speedup')}")


class ModelsPage(QWidget):
    title = "Local models"

    def __init__(self, context, parent: QWidget | None = None) -> None:  # type: ignore[no-untyped-def]
        super().__init__(parent)
        self.context = context
        self.provider = QLabel("")
        self.provider.setObjectName("providerLabel")
        self.model = FrameModel()
        self.table = compact_table(QTableView())
        self.table.setModel(self.model)
        fit_columns(self.table)
        self.build_button = QPushButton("Build the built-ins")
        self.add_button = QPushButton("Add a model folder…")
        self.remove_button = QPushButton("Remove…")
        self.remove_button.setToolTip("remove the selected model (`lensroute models remove`), after a confirmation")
        self.sparsity = QDoubleSpinBox()
        self.sparsity.setRange(0.0, 0.9)
        self.sparsity.setSingleStep(0.125)
        self.sparsity.setDecimals(3)
        self.bench_button = QPushButton("Benchmark informed routing")
        self.accelerate_button = QPushButton("Install an accelerated copy")
        self.accelerate_button.setToolTip("train informed routing at this sparsity and install the routed model as a "
                                          "model of its own (`lensroute models accelerate`), to put in a pool beside "
                                          "its base")
        self.bench_label = QLabel("Informed routing benchmark (quality vs sparsity, measured speed)")
        self.bench_label.setObjectName("benchLabel")
        self.bench_model = FrameModel()
        self.bench_table = compact_table(QTableView())
        self.bench_table.setModel(self.bench_model)
        fit_columns(self.bench_table)
        self.job = Job("local models", self)
        buttons = QHBoxLayout()
        for w in (self.build_button, self.add_button, self.remove_button, QLabel("sparsity"), self.sparsity,
                  self.bench_button, self.accelerate_button):
            buttons.addWidget(w)
        buttons.addStretch(1)
        layout = QVBoxLayout(self)
        layout.addWidget(self.provider)
        layout.addLayout(buttons)
        layout.addWidget(self.table, 2)
        layout.addWidget(self.bench_label)
        layout.addWidget(self.bench_table, 2)
        layout.addWidget(JobBar(self.job))
        self.build_button.clicked.connect(self.build_builtins)
        self.add_button.clicked.connect(self.choose_folder)
        self.remove_button.clicked.connect(self.remove_selected)
        self.bench_button.clicked.connect(self.bench)
        self.accelerate_button.clicked.connect(self.accelerate)
        self.job.succeeded.connect(self.on_done)
        self.table.selectionModel().selectionChanged.connect(self.show_saved_bench)
        disable_without_build_tools(self.build_button, self.bench_button, self.accelerate_button)  # the frozen app runs ONNX models only

    def load_state(self, settings) -> None:  # type: ignore[no-untyped-def]
        self.sparsity.setValue(settings.sparsity)

    def save_state(self, settings) -> None:  # type: ignore[no-untyped-def]
        settings.sparsity = self.sparsity.value()

    @Slot()
    def refresh(self) -> None:
        from routing.local_models import installed

        provider = self.context.provider()
        self.provider.setText(f"ONNX Runtime execution provider here: {provider}")
        models = installed()
        self.model.set_frame(pl.DataFrame({
            "name": [m.name for m in models], "kind": [m.kind for m in models],
            "path": [str(m.path) for m in models], "provider": [provider] * len(models),
            "accelerated": [accelerated_summary(m.manifest) for m in models],
        }, schema={"name": pl.Utf8, "kind": pl.Utf8, "path": pl.Utf8, "provider": pl.Utf8, "accelerated": pl.Utf8}))
        self.show_saved_bench()

    @Slot()
    def show_saved_bench(self, *_: object, name: str | None = None) -> None:
        """The selected model's last benchmark (saved by this page or by `lensroute models bench`
        under the data folder), so a restart does not lose minutes of measurement."""
        from routing.bench import load_rows, saved_bench_file

        if name is None and (selected := self.selected()) is not None:
            name = selected[0]
        rows = load_rows(name) if name else None
        if not rows:
            self.bench_model.set_frame(pl.DataFrame())
            self.bench_label.setText("Informed routing benchmark (quality vs sparsity, measured speed)"
                                     + (f": none saved for {name} yet" if name else ""))
            return
        import datetime as dt

        saved = dt.datetime.fromtimestamp(saved_bench_file(name).stat().st_mtime).strftime("%Y-%m-%d %H:%M")
        self.bench_model.set_frame(bench_frame(rows))
        self.bench_label.setText(f"Informed routing benchmark of {name} on {rows[0].provider} "
                                 f"(saved {saved}): quality vs sparsity, measured speed")

    @Slot()
    def build_builtins(self) -> bool:
        from routing.builtins import BUILTINS

        def work(progress, cancel):  # type: ignore[no-untyped-def]
            for i, (name, build) in enumerate(BUILTINS.items()):
                cancel.raise_if_cancelled()
                progress(i, len(BUILTINS), f"building {name}")
                build()
            return "built"

        return self.job.start(work)

    @Slot()
    def choose_folder(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "A model folder (model.onnx, tokenizer.json, lensroute-model.json)")
        if folder:
            self.add_folder(Path(folder))

    def add_folder(self, folder: Path) -> bool:
        from recommender.errors import LensrouteError
        from routing.local_models import add

        try:
            add(folder)
        except LensrouteError as exc:
            show_error(self, str(exc))
            return False
        self.refresh()
        return True

    @Slot()
    def remove_selected(self) -> bool:
        """`lensroute models remove` for the selected row (never a guessed one), after a confirmation
        that says what goes and which calibrated routers would lose a pool member."""
        from recommender.errors import LensrouteError
        from routing.local_models import removal_effect, remove
        from routing.router_store import routing_over

        rows = self.table.selectionModel().selectedRows()
        if not rows:
            show_error(self, "select the model to remove first")
            return False
        name = str(self.model.frame["name"][rows[0].row()])
        try:
            effect = removal_effect(name)
        except LensrouteError as exc:
            show_error(self, str(exc))
            return False
        routers = routing_over(name)
        warning = (f" The router{'s' if len(routers) > 1 else ''} {', '.join(routers)} route{'' if len(routers) > 1 else 's'} "
                   "over it and cannot answer until it is back or a new pool is calibrated.") if routers else ""
        asked = QMessageBox.question(self, "Remove model", f"Remove {name}? {effect}.{warning}")
        if asked != QMessageBox.StandardButton.Yes:
            return False
        try:
            remove(name)
        except (LensrouteError, OSError) as exc:
            show_error(self, f"cannot remove {name}: {exc}")
            return False
        self.refresh()
        return True

    def selected(self) -> tuple[str, str] | None:
        """(name, kind) of the selected model, else the first causal LM, else the first model."""
        frame = self.model.frame
        if not frame.height:
            return None
        rows = self.table.selectionModel().selectedRows() if self.table.selectionModel() else []
        if rows:
            i = rows[0].row()
        else:
            kinds = frame["kind"].to_list()
            i = kinds.index("causal-lm") if "causal-lm" in kinds else 0
        return str(frame["name"][i]), str(frame["kind"][i])

    @Slot()
    def bench(self) -> bool:
        from routing.bench import bench_causal_lm
        from routing.bench_embedding import bench_embedding

        picked = self.selected()
        if picked is None:
            show_error(self, "no local model installed to benchmark: build the built-ins first")
            return False
        name, kind = picked
        run = bench_embedding if kind == "embedding" else bench_causal_lm
        sparsities = tuple(sorted({0.0, round(self.sparsity.value(), 3)}))

        def work(progress, cancel):  # type: ignore[no-untyped-def]
            from routing.bench import save_rows

            rows = run(name, sparsities=sparsities, progress=progress, cancel=cancel)
            save_rows(rows, name)
            return rows

        return self.job.start(work)

    @Slot()
    def accelerate(self) -> bool:
        """An informed-routing copy of the selected causal LM at the chosen sparsity, installed."""
        picked = self.selected()
        sparsity = round(self.sparsity.value(), 3)
        if picked is None or picked[1] != "causal-lm":
            show_error(self, "select a causal LM to accelerate (build the built-ins for smollm2-135m-instruct)")
            return False
        if sparsity <= 0:
            show_error(self, "set a sparsity above 0: at 0 the copy would be the model itself")
            return False
        name = picked[0]

        def work(progress, cancel):  # type: ignore[no-untyped-def]
            from routing.accelerate import accelerate

            return {"accelerated": accelerate(name, sparsity=sparsity, progress=progress, cancel=cancel).name}

        return self.job.start(work)

    @Slot(object)
    def on_done(self, result) -> None:  # type: ignore[no-untyped-def]
        self.refresh()
        if isinstance(result, list) and result:  # the benchmark just run and saved, whichever row is selected now
            self.show_saved_bench(name=result[0].model)
        if isinstance(result, dict) and "accelerated" in result:  # a copy just installed: say what it is
            from routing.local_models import get

            copy = get(result["accelerated"])
            self.bench_label.setText(f"Installed {copy.name}: {accelerated_summary(copy.manifest)} — calibrate a pool "
                                     "with it beside its base on the Route page")
