"""The desktop GUI under QT_QPA_PLATFORM=offscreen with pytest-qt: real store, real ranker, real
local models; every page's main flow plus cancel and error paths."""

from __future__ import annotations

import json
import sys
import threading
import time
from pathlib import Path

import polars as pl
import pytest

pytest.importorskip("PySide6.QtWidgets", reason="Qt cannot load here (Debian Qt libraries missing?)")

from PySide6.QtCore import QItemSelectionModel, Qt
from PySide6.QtWidgets import QMessageBox

from app.gui.jobs import Job, JobError
from recommender.errors import NoDataError
from tests.conftest import RAW


@pytest.fixture
def window(qtbot, tmp_path: Path):  # type: ignore[no-untyped-def]
    from app.gui.main import AppContext, MainWindow

    win = MainWindow(AppContext(f"sqlite:///{tmp_path / 'gui.db'}"))
    qtbot.addWidget(win)
    win.show()
    yield win
    Job.stop_all()


def page(win, title: str):  # type: ignore[no-untyped-def]
    return next(p for p in win.pages if p.title == title)


class Questions:
    """QMessageBox.question answered by the test: every text asked, and the answer it gets."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.asked: list[str] = []
        self.answer = QMessageBox.StandardButton.No
        monkeypatch.setattr(QMessageBox, "question", lambda parent, title, text: self.asked.append(text) or self.answer)


def error_boxes(win) -> list[QMessageBox]:  # type: ignore[no-untyped-def]
    return [b for b in win.findChildren(QMessageBox) if b.objectName() == "errorDialog" and b.isVisible()]


# --- jobs ---------------------------------------------------------------------------------------


def test_job_reports_progress_then_result_and_can_be_cancelled_and_restarted(qtbot) -> None:  # type: ignore[no-untyped-def]
    job = Job("count")
    seen: list[float] = []
    job.progressed.connect(lambda done, total, message: seen.append(done))

    def count(progress, cancel):  # type: ignore[no-untyped-def]
        for i in range(5):
            progress(i + 1, 5, "counting")
        return "finished"

    with qtbot.waitSignal(job.succeeded, timeout=10_000) as blocker:
        assert job.start(count)
    assert blocker.args == ["finished"] and seen[-1] == 5 and not job.running

    started = threading.Event()

    def forever(progress, cancel):  # type: ignore[no-untyped-def]
        started.set()
        while not cancel.wait(0.01):
            pass
        cancel.raise_if_cancelled()

    with qtbot.waitSignal(job.cancelled, timeout=10_000):
        job.start(forever)
        assert not job.start(count)  # one run at a time
        started.wait(5)
        job.cancel()
    with qtbot.waitSignal(job.succeeded, timeout=10_000):  # restart is the same path
        job.start(count)


def test_frame_model_writes_counts_with_separators_and_aligns_numbers_right(qtbot) -> None:  # type: ignore[no-untyped-def]
    from app.gui.widgets import FrameModel

    model = FrameModel(pl.DataFrame({"source": ["mteb"], "records": [82005], "share": [0.676], "ok": [True]}))
    shown = [model.data(model.index(0, c)) for c in range(4)]
    assert shown == ["mteb", "82,005", "0.676", "True"]
    align = [model.data(model.index(0, c), Qt.ItemDataRole.TextAlignmentRole) for c in range(4)]
    right = int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
    assert align[1] == align[2] == right and align[0] == align[3] != right


def test_job_errors_become_one_line_with_details(qtbot) -> None:  # type: ignore[no-untyped-def]
    job = Job("broken")

    def fail(progress, cancel):  # type: ignore[no-untyped-def]
        raise NoDataError("the catalogue is empty; import some records first")

    with qtbot.waitSignal(job.failed, timeout=10_000) as blocker:
        job.start(fail)
    error = blocker.args[0]
    assert isinstance(error, JobError) and error.message == "the catalogue is empty; import some records first"
    assert "Traceback" in error.details
    with qtbot.waitSignal(job.failed, timeout=10_000) as blocker:
        job.start(lambda progress, cancel: 1 / 0)
    assert blocker.args[0].message.startswith("ZeroDivisionError")

    def train_without_torch(progress, cancel):  # type: ignore[no-untyped-def]
        raise ModuleNotFoundError("No module named 'torch'", name="torch")  # as in the frozen app

    with qtbot.waitSignal(job.failed, timeout=10_000) as blocker:
        job.start(train_without_torch)
    assert "full install" in blocker.args[0].message and "\n" not in blocker.args[0].message


# --- window -------------------------------------------------------------------------------------


def test_window_has_every_page_a_status_bar_and_restores_its_state(qtbot, window, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from app.gui.main import AppContext, MainWindow

    assert [p.title for p in window.pages] == ["Catalogue", "Records", "Train & evaluate", "Recommend", "Route",
                                               "Local models"]
    qtbot.waitUntil(lambda: "gui.db" in window.status_db.text(), timeout=5_000)
    # the ranker and the provider load off the GUI thread, then the status bar says what they are
    qtbot.waitUntil(lambda: "ExecutionProvider" in window.status_provider.text(), timeout=30_000)
    assert window.status_model.text() == "ranker: none trained"
    window.nav.setCurrentRow(3)
    page(window, "Recommend").description.setPlainText("Detect toxic comments in Reddit threads")
    window.close()
    again = MainWindow(AppContext(f"sqlite:///{tmp_path / 'gui.db'}"))
    qtbot.addWidget(again)
    assert again.stack.currentIndex() == 3
    assert page(again, "Recommend").description.toPlainText() == "Detect toxic comments in Reddit threads"
    again.close()


def test_catalogue_import_shows_counts_log_and_deletes_a_source(qtbot, window, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    catalogue = page(window, "Catalogue")
    with qtbot.waitSignal(catalogue.job.succeeded, timeout=120_000):
        assert catalogue.start_import([RAW / "aider"])
    frame = catalogue.model.frame
    assert "aider" in frame["source"].to_list() and frame["records"].sum() > 0
    assert "added" in catalogue.log.toPlainText()
    assert "records from" in catalogue.summary.text()

    with qtbot.waitSignal(catalogue.job.succeeded, timeout=120_000):
        assert catalogue.start_import([RAW / "aider"])
    assert "not read again" in catalogue.log.toPlainText()

    with catalogue.context.store().engine.begin() as conn:  # a hand edit the shortcut cannot see
        conn.exec_driver_sql("UPDATE records SET value = value + 1")
    catalogue.force_check.setChecked(True)
    with qtbot.waitSignal(catalogue.job.succeeded, timeout=120_000) as done:
        assert catalogue.start_import([RAW / "aider"])
    assert done.args[0].totals().updated == frame["records"].sum()
    assert "every row compared" in catalogue.log.toPlainText()

    # delete the source again (`lensroute delete --source`), after a confirmation that says how much goes
    questions = Questions(monkeypatch)
    catalogue.table.clearSelection()
    assert not catalogue.delete_selected() and "select the source" in error_boxes(window)[-1].text()
    catalogue.table.selectRow(catalogue.model.frame["source"].to_list().index("aider"))
    assert not catalogue.delete_selected()  # answered No: nothing goes
    n = int(frame["records"].sum())
    assert questions.asked[-1].startswith(f"Delete the {n:,} records of source 'aider'") and "aider" in catalogue.model.frame["source"]
    questions.answer = QMessageBox.StandardButton.Yes
    with qtbot.waitSignal(catalogue.job.succeeded, timeout=60_000):
        assert catalogue.delete_selected()
    assert "aider" not in catalogue.model.frame["source"].to_list()
    assert f"deleted {n:,} records of aider" in catalogue.log.toPlainText()
    assert catalogue.job.name == "delete" and catalogue.job_bar.status.text() == "delete done"  # the bar says which job


def test_catalogue_import_of_a_bad_file_is_logged_not_fatal(qtbot, window, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    bad = tmp_path / "broken.jsonl"
    bad.write_text("{not json\n")
    catalogue = page(window, "Catalogue")
    with qtbot.waitSignal(catalogue.job.running_changed, timeout=60_000, check_params_cb=lambda running: not running):
        catalogue.start_import([bad])
    log = catalogue.log.toPlainText()
    assert "broken.jsonl" in log and ("FAILED" in log or "skipped" in log), log

    partly = tmp_path / "partly.csv"  # the rows it can use go in; the log names why the rest did not, with an example
    partly.write_text("model,dataset,metric,value\nm1,d1,accuracy,0.5\nm2,d1,accuracy,85%\n")
    with qtbot.waitSignal(catalogue.job.succeeded, timeout=60_000):
        assert catalogue.start_import([partly])
    assert "partly.csv: added 1, updated 0, unchanged 0, rejected 1 (1 value not a number, e.g. m2 · d1 · accuracy = '85%')" \
        in catalogue.log.toPlainText()


def test_records_search_filter_sort_and_export(qtbot, window, fixture_store, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from recommender.store.export import records_frame

    records = page(window, "Records")
    frame = records_frame(fixture_store)
    records.set_records(frame.with_columns(pl.lit("x").alias("family")))
    assert records.model.rowCount() == frame.height
    records.filters["source"].setCurrentText("aider")
    assert 0 < records.model.rowCount() < frame.height
    assert set(records.model.frame["source"].to_list()) == {"aider"}
    assert [records.filters[name].itemText(0) for name in ("source", "family")] == ["(all sources)", "(all families)"]
    records.filters["source"].setCurrentIndex(0)  # the filter off again, as its first item says
    assert records.model.rowCount() == frame.height
    records.filters["source"].setCurrentText("aider")
    records.search.setText("gpt-4")
    shown = records.model.frame
    assert shown.height and all("gpt-4" in m.lower() or "gpt-4" in d.lower() for m, d in zip(shown["model"], shown["dataset"], strict=True))
    from PySide6.QtCore import Qt

    records.model.sort(records.model.frame.columns.index("value"), Qt.SortOrder.DescendingOrder)
    values = records.model.frame["value"].to_list()
    assert values == sorted(values, reverse=True)
    records.table.selectRow(0)
    out = tmp_path / "picked.csv"
    assert records.export_to(out) == 1 and pl.read_csv(out).height == 1


@pytest.mark.slow
def test_recommend_ranks_shows_evidence_atlas_and_exports(qtbot, window, fixture_store, ranker_dir: Path,  # type: ignore[no-untyped-def]
                                                          tmp_path: Path, local_pool: list[str], monkeypatch) -> None:
    from recommender.ranker import Ranker
    from recommender.store.lookup import model_info

    window.context._ranker = Ranker.load(ranker_dir, device="cpu")
    window.context._store = fixture_store
    recommend = page(window, "Recommend")
    recommend.description.setPlainText("")
    assert not recommend.rank()
    assert error_boxes(window) and "description is empty" in error_boxes(window)[-1].text()
    recommend.description.setPlainText("Write Python functions from docstrings that pass unit tests")
    recommend.top_k.setValue(5)
    with qtbot.waitSignal(recommend.job.succeeded, timeout=60_000):
        assert recommend.rank()
    assert recommend.model.rowCount() == 5
    assert recommend.model.frame["runs here"].null_count() == 5  # no top coder is installed here, so no pool
    assert not recommend.route_with_ranked() and "none of the ranked models is installed here" in error_boxes(window)[-1].text()
    column = recommend.model.frame.columns.index("model")  # sized to the names, not cut short
    longest = max(recommend.model.frame["model"].to_list(), key=recommend.table.fontMetrics().horizontalAdvance)
    assert recommend.table.columnWidth(column) >= min(recommend.table.fontMetrics().horizontalAdvance(longest), 420)
    index = recommend.model.index(0, 0)
    recommend.show_evidence(index)
    assert recommend.model.frame["model"][0] in recommend.evidence.toPlainText()
    qtbot.waitUntil(lambda: recommend.atlas.atlas is not None, timeout=60_000)
    assert recommend.atlas.highlight(recommend.ranking) >= 1
    # the metric picker follows the task: its measured metrics first, the others after a separator
    items = [recommend.metric.itemText(i) for i in range(recommend.metric.count())]
    recommend.task.setCurrentText("code-editing")
    measured = window.context.ranker().metrics_for("code-editing")[0]
    assert [recommend.metric.itemText(i) for i in range(1, len(measured) + 1)] == measured
    assert "pass_rate_2" in measured and "pass@1" not in measured
    assert sorted(filter(None, (recommend.metric.itemText(i) for i in range(recommend.metric.count())))) == \
        sorted(filter(None, items))
    assert "unknown" not in [recommend.task.itemText(i) for i in range(recommend.task.count())]
    recommend.task.setCurrentText("")
    out = tmp_path / "ranking.json"
    assert recommend.export_to(out)
    assert len(json.loads(out.read_text())["results"]) == 5
    assert recommend.export_to(tmp_path / "ranking.csv") and pl.read_csv(tmp_path / "ranking.csv").height == 5
    assert "head-to-head" in recommend.model.frame.columns

    # a ranked model's details: everything the catalogue knows of it (`lensroute show model`)
    recommend.table.selectRow(1)
    with qtbot.waitSignal(recommend.details_job.succeeded, timeout=60_000):
        assert recommend.show_details()
    name = recommend.model.frame["model"][1]
    assert recommend.details_dialog.isVisible() and name in recommend.details_dialog.header.text()
    assert recommend.details_dialog.model.rowCount() == len(model_info(fixture_store, name).records) > 0
    recommend.details_dialog.close()

    # the selected models head to head (`lensroute compare`); one row alone is refused before any job
    recommend.table.selectRow(0)
    assert not recommend.compare_selected()
    assert any("select two or more models" in box.text() for box in error_boxes(window))
    recommend.table.selectionModel().select(recommend.model.index(2, 0), QItemSelectionModel.SelectionFlag.Select
                                            | QItemSelectionModel.SelectionFlag.Rows)
    with qtbot.waitSignal(recommend.compare_job.succeeded, timeout=60_000):
        assert recommend.compare_selected()
    compared = recommend.compare_dialog
    picked = [recommend.model.frame["model"][0], recommend.model.frame["model"][2]]
    assert compared.isVisible() and sorted(compared.matrix.frame["model"].to_list()) == sorted(picked)
    assert compared.matrix.frame.columns[-2:] == ["vs [1]", "vs [2]"]
    assert compared.datasets.frame.columns[-2:] == ["[1]", "[2]"] and compared.datasets.frame.height <= 10
    compared.close()

    recommend.languages.setText("Klingonese")  # not a language: the job fails with the reason, nothing crashes
    with qtbot.waitSignal(recommend.job.failed, timeout=60_000):
        assert recommend.rank()
    assert error_boxes(window) and "Klingonese" in error_boxes(window)[-1].text()
    recommend.languages.setText("French, de")
    with qtbot.waitSignal(recommend.job.succeeded, timeout=60_000):
        assert recommend.rank()
    assert recommend.ranking.query["languages"] == ["deu", "fra"]

    # your own models to rank, from a file: a known one and one the catalogue has never seen
    known = recommend.ranking.results[0].model
    mine = tmp_path / "mine.csv"
    mine.write_text(f"model,n_parameters\n{known},\nacme/brand-new-coder-7b,7e9\n")
    recommend.candidates.setText(str(mine))
    with qtbot.waitSignal(recommend.job.succeeded, timeout=60_000):
        assert recommend.rank()
    frame = recommend.model.frame
    assert sorted(frame["model"].to_list()) == sorted([known, "acme/brand-new-coder-7b"])
    assert frame.filter(pl.col("model") == "acme/brand-new-coder-7b")["known"].item() == "unseen"
    recommend.table.selectRow(frame["model"].to_list().index("acme/brand-new-coder-7b"))
    with qtbot.waitSignal(recommend.details_job.failed, timeout=60_000):  # only your file names it: said so
        assert recommend.show_details()
    assert any("'acme/brand-new-coder-7b' is not in the catalogue" in box.text() for box in error_boxes(window))
    settings = type(window.settings)()
    recommend.save_state(settings)
    assert settings.candidates == str(mine)  # kept for the next session, like the other fields
    mine.write_text("name\nx\n")  # a bad file fails the job with its reason
    with qtbot.waitSignal(recommend.job.failed, timeout=60_000):
        assert recommend.rank()
    assert "'model' column" in error_boxes(window)[-1].text()
    # a ranked model that is installed here says so: it can join the Route page's pool
    mine.write_text("model\nHuggingFaceTB/SmolLM2-360M-Instruct\nacme/brand-new-coder-7b\n")
    with qtbot.waitSignal(recommend.job.succeeded, timeout=60_000):
        assert recommend.rank()
    frame = recommend.model.frame
    assert dict(zip(frame["model"], frame["runs here"], strict=True)) == {
        "HuggingFaceTB/SmolLM2-360M-Instruct": "tiny-llama", "acme/brand-new-coder-7b": None}
    recommend.show_evidence(recommend.model.index(frame["model"].to_list().index("HuggingFaceTB/SmolLM2-360M-Instruct"), 0))
    assert "installed here as tiny-llama" in recommend.evidence.toPlainText()
    assert recommend.export_to(tmp_path / "mine_ranked.csv")
    assert pl.read_csv(tmp_path / "mine_ranked.csv")["runs here"].to_list().count("tiny-llama") == 1
    # Route with these…: the Route page opens its calibration with the ranked models that run here ticked
    from app.gui.pages.calibrate_dialog import CalibrateDialog

    monkeypatch.setattr(CalibrateDialog, "exec", lambda dialog: CalibrateDialog.DialogCode.Rejected)
    assert recommend.route_with_ranked()
    route = page(window, "Route")
    assert window.stack.currentWidget() is route and route.calibrate_dialog is not None
    assert route.calibrate_dialog.choice().pool == ["tiny-llama"]  # the installed MiniLM was not ranked: unticked
    assert route.calibrate_dialog.models.count() == len(local_pool)
    window.nav.setCurrentRow(window.pages.index(recommend))
    recommend.candidates.setText("")

    # results the user already has: the measured models are listed in their measured order, and say so
    top_k = recommend.top_k.value()
    recommend.top_k.setValue(0)  # all: where the measured models land depends on the votes they sharpen
    with qtbot.waitSignal(recommend.job.succeeded, timeout=60_000):
        assert recommend.rank()
    top = recommend.model.frame["model"].to_list()[:3]
    measured = tmp_path / "measured.jsonl"
    measured.write_text("".join(json.dumps({"model": m, "value": v}) + "\n" for m, v in zip(top, (1, 2, 3), strict=True)))
    recommend.measured.setText(str(measured))
    with qtbot.waitSignal(recommend.job.succeeded, timeout=60_000):
        assert recommend.rank()
    shown = recommend.model.frame.filter(pl.col("measured").is_not_null())
    assert shown["model"].to_list() == top[::-1] and shown["measured"].to_list() == [3.0, 2.0, 1.0]
    recommend.save_state(settings)
    assert settings.measured == str(measured)
    measured.write_text('{"model": "x"}\n')
    with qtbot.waitSignal(recommend.job.failed, timeout=60_000):
        assert recommend.rank()
    assert "'model' and 'value' columns" in error_boxes(window)[-1].text()
    recommend.measured.setText("")
    recommend.top_k.setValue(top_k)

    # only models the user can take: a size budget (a bad one is refused before any job starts)
    from recommender.model_filters import describe_size

    recommend.max_params.setText("lots")
    assert not recommend.rank()
    assert any("Max size 'lots'" in box.text() for box in error_boxes(window))
    recommend.max_params.setText("8B")
    recommend.require_known.setChecked(True)
    with qtbot.waitSignal(recommend.job.succeeded, timeout=60_000):
        assert recommend.rank()
    sizes = recommend.model.frame["params (B)"].to_list()
    assert sizes and all(size is not None and size <= 8 for size in sizes)
    assert "filters (at most 8B parameters)" in recommend.notes.text()
    recommend.show_evidence(recommend.model.index(0, 0))
    assert describe_size(sizes[0] * 1e9) in recommend.evidence.toPlainText()
    recommend.save_state(settings)
    assert (settings.max_params, settings.require_known, settings.open_weights) == ("8B", True, False)
    recommend.max_params.setText("")
    recommend.require_known.setChecked(False)


def test_models_page_lists_provider_and_refuses_a_bad_folder(qtbot, window, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    models = page(window, "Local models")
    window.nav.setCurrentRow(5)
    assert "execution provider" in models.provider.text()
    assert models.model.rowCount() == 0
    assert not models.add_folder(tmp_path)
    assert error_boxes(window) and "lensroute-model.json" in error_boxes(window)[-1].text()
    assert not models.bench()  # nothing to benchmark: a message, not a crash
    assert not models.accelerate() and "select a causal LM to accelerate" in error_boxes(window)[-1].text()


def test_models_page_shows_an_accelerated_copy_and_starts_one(qtbot, window, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from tests.test_accelerate import accelerate_tiny, make_tiny_base

    accelerate_tiny(make_tiny_base(tmp_path))  # the real training and export, small
    models = page(window, "Local models")
    models.refresh()
    frame = models.model.frame
    row = frame.filter(frame["name"] == "tiny-llama-informed-50").row(0, named=True)
    assert row["accelerated"].startswith("tiny-llama at sparsity 0.5: KL ") and "prefill ×" in row["accelerated"]
    assert frame.filter(frame["name"] == "tiny-llama")["accelerated"].item() == ""
    models.on_done({"accelerated": "tiny-llama-informed-50"})  # what the job hands back once installed
    assert models.bench_label.text().startswith("Installed tiny-llama-informed-50: tiny-llama at sparsity 0.5")
    models.table.selectRow(frame["name"].to_list().index("tiny-llama"))
    models.sparsity.setValue(0.0)
    assert not models.accelerate() and "sparsity above 0" in error_boxes(window)[-1].text()
    models.sparsity.setValue(0.25)
    with qtbot.waitSignal(models.job.failed, timeout=60_000):  # the tiny Llama has no torch weights to train from
        assert models.accelerate()
    qtbot.waitUntil(lambda: "only the built-in" in error_boxes(window)[-1].text(), timeout=10_000)


def test_without_torch_the_pages_disable_what_needs_it_and_say_why(qtbot, tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    import importlib.util

    from app.gui.main import AppContext, MainWindow
    from app.gui.pages.calibrate_dialog import CalibrateDialog

    with_torch = MainWindow(AppContext(f"sqlite:///{tmp_path / 'a.db'}"))
    qtbot.addWidget(with_torch)
    assert page(with_torch, "Train & evaluate").train_button.isEnabled()
    assert page(with_torch, "Local models").build_button.isEnabled()
    # as in the frozen app (installer/freeze.sh leaves torch out)
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "torch" else real_find_spec(name, *a))
    win = MainWindow(AppContext(f"sqlite:///{tmp_path / 'b.db'}"))
    qtbot.addWidget(win)
    train, models = page(win, "Train & evaluate"), page(win, "Local models")
    for button in (train.train_button, train.evaluate_button, models.build_button, models.bench_button,
                   models.accelerate_button):
        assert not button.isEnabled() and "full install" in button.toolTip()
    assert "full install" in train.eval_note.text()
    train.on_running(False)  # a finished job must not re-enable them
    assert not train.train_button.isEnabled()
    dialog = CalibrateDialog([("m", "embedding")], "default")
    qtbot.addWidget(dialog)
    kinds = dialog.kind
    assert "mlp" not in [kinds.itemText(i) for i in range(kinds.count())] and kinds.count() == 3
    assert models.add_button.isEnabled() and page(win, "Recommend").rank_button.isEnabled()


@pytest.mark.builtin_models
def test_route_page_answers_with_the_calibrated_pool(qtbot, window, local_pool: list[str], tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from app.gui.pages.calibrate_dialog import CalibrateDialog
    from routing.answering import bundled_questions
    from routing.local_models import installed
    from tests.test_routing import small_mc_set

    route = page(window, "Route")
    route.refresh_routers()
    assert route.session is None and "no pool" in route.pool_label.text()
    assert not route.answer() and error_boxes(window)
    # the dialog offers every installed model, ticked, and the bundled questions
    dialog = CalibrateDialog([(m.name, m.kind) for m in installed()], "default", window)
    qtbot.addWidget(dialog)
    assert dialog.models.count() == len(local_pool) and dialog.choice().data == bundled_questions()
    assert sorted(dialog.choice().pool) == sorted(local_pool) and dialog.choice().name == "default"
    for i in range(dialog.models.count()):
        dialog.models.item(i).setCheckState(Qt.CheckState.Unchecked)
    assert not route.calibrate(dialog.choice())  # an empty pool is a message, not a job
    for i in range(dialog.models.count()):
        dialog.models.item(i).setCheckState(Qt.CheckState.Checked)
    dialog.data.setText(str(small_mc_set(tmp_path, 12)))
    with qtbot.waitSignal(route.job.succeeded, timeout=120_000):
        assert route.calibrate(dialog.choice())
    assert route.session is not None and "tiny-llama" in route.pool_label.text()
    log = route.batch_log.toPlainText()
    assert "12 questions" in log and all(f"{name}" in log for name in local_pool) and "accuracy" in log
    route.question.setText("What is the capital of France?")
    route.choices.setText("Berlin | Paris | | Rome")  # an empty choice is a message, not a job
    assert not route.answer() and "a choice is empty" in error_boxes(window)[-1].text()
    route.choices.setText("Berlin | Paris | Rome")
    with qtbot.waitSignal(route.job.succeeded, timeout=60_000):
        assert route.answer()
    assert route.model.rowCount() == 2 and "✔" in route.model.frame["chosen"].to_list()
    route.knob.setValue(100)  # all the way to cost: the cheapest predicted model
    assert route.session.cost_weight > 0
    with qtbot.waitSignal(route.job.succeeded, timeout=60_000):
        route.run_batch(small_mc_set(tmp_path, 4))
    assert "4 questions routed" in route.batch_log.toPlainText()

    # Follow-up: the questions make one conversation, each answered after the exchanges before it
    route.follow_up.setChecked(True)
    route.choices.setText("")
    assert not route.new_conversation.isEnabled()
    shown: list[str] = []  # the answer line while the reply is written
    route.job.progressed.connect(lambda *_: shown.append(route.answer_text.text()))
    for number, text in enumerate(["w9 w10", "w11"], start=1):
        route.question.setText(text)
        with qtbot.waitSignal(route.job.succeeded, timeout=60_000):
            assert route.answer()
        assert "tiny-llama" in route.answer_text.text() and f"turn {number})" in route.answer_text.text()
    assert shown and all(line.startswith("<b>tiny-llama</b>: ") for line in shown)  # streamed as written
    assert [t.role for t in route.conversation.turns] == ["user", "assistant", "user", "assistant"]
    assert [t.content for t in route.conversation.turns[::2]] == ["w9 w10", "w11"]
    transcript = route.batch_log.toPlainText()
    assert "you: w9 w10\ntiny-llama: " in transcript and "you: w11\ntiny-llama: " in transcript
    # the temperature: greedy at 0 (as shown), sampled above it, from the next reply on, and kept
    from app.gui.settings import GuiSettings

    assert route.temperature.text() == "greedy" and route.sampling().greedy
    route.temperature.setValue(0.8)
    route.question.setText("w12")
    with qtbot.waitSignal(route.job.succeeded, timeout=60_000):
        assert route.answer()
    assert route.conversation.sampling.describe() == "temperature 0.8" and len(route.conversation.turns) == 6
    assert route.new_conversation.isEnabled()
    route.new_conversation.click()
    assert route.conversation is None and route.batch_log.toPlainText().endswith("(new conversation)")
    kept = GuiSettings()
    route.save_state(kept)
    assert kept.route_temperature == pytest.approx(0.8)
    route.temperature.setValue(0)
    route.load_state(kept)
    assert route.temperature.value() == pytest.approx(0.8)
    assert not route.new_conversation.isEnabled()


@pytest.mark.builtin_models
def test_route_page_serves_its_pool_to_other_applications(qtbot, window, local_pool: list[str], tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    import socket

    import httpx

    from app.gui.local_server import LocalServer
    from routing.answering import read_questions
    from routing.calibrate import calibrate
    from tests.test_routing import small_mc_set

    calibrate(local_pool, read_questions(small_mc_set(tmp_path, 12), labelled=True), device="cpu")
    route = page(window, "Route")
    route.refresh_routers()
    assert route.session is not None
    route.serve_port.setValue(0)  # any free port
    route.serve_key.setText("k1")
    assert route.toggle_serving() and route.server.running
    url = route.server.url
    assert f"OpenAI base URL {url}/v1" in route.serve_status.text() and not route.serve_port.isEnabled()
    assert httpx.get(f"{url}/v1/models").status_code == 401  # the key is asked for
    reply = httpx.post(f"{url}/v1/chat/completions", headers={"Authorization": "Bearer k1"}, timeout=120,
                       json={"max_tokens": 3, "messages": [{"role": "user", "content": "w9 w10"}]})
    assert reply.status_code == 200 and reply.json()["model"] == "tiny-llama"
    qtbot.waitUntil(lambda: "served: POST /v1/chat/completions 200" in route.batch_log.toPlainText(), timeout=10_000)
    route.serve_button.click()  # stop
    assert not route.server.running and route.serve_button.text() == "Start serving"
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{url}/health", timeout=5)
    # a port in use is a message, not a crash; quitting stops every server
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        route.serve_port.setValue(taken.getsockname()[1])
        assert not route.toggle_serving() and "choose another port" in error_boxes(window)[-1].text()
    route.serve_port.setValue(0)
    assert route.toggle_serving()
    LocalServer.stop_all()
    assert not route.server.running
    # a follow-up needs a pool member that writes text: an encoder-only pool says so
    calibrate(["all-minilm-l6-v2"], read_questions(small_mc_set(tmp_path, 12), labelled=True), name="enc", device="cpu")
    route.refresh_routers("enc")
    route.follow_up.setChecked(True)
    route.question.setText("Hello?")
    route.choices.setText("")
    assert not route.answer() and "embedding models only" in error_boxes(window)[-1].text()


def test_screenshot_renders_every_page(tmp_path: Path, qtbot) -> None:  # type: ignore[no-untyped-def]
    from app.gui.main import run_gui

    started = time.perf_counter()
    assert run_gui(["--db", f"sqlite:///{tmp_path / 'shots.db'}", "--screenshot", str(tmp_path / "shots")]) == 0
    shots = sorted(p.name for p in (tmp_path / "shots").glob("*.png"))
    assert shots == ["catalogue.png", "local-models.png", "recommend.png", "records.png", "route.png",
                     "train-evaluate.png"]
    assert all((tmp_path / "shots" / s).stat().st_size > 5_000 for s in shots)
    assert time.perf_counter() - started < 120


def test_screenshot_names_a_page_that_showed_an_error(tmp_path: Path, qtbot, monkeypatch, capsys) -> None:  # type: ignore[no-untyped-def]
    from app.gui.main import run_gui
    from recommender import evaluation_log

    assert run_gui(["--db", f"sqlite:///{tmp_path / 'a.db'}", "--screenshot", str(tmp_path / "a")]) == 0
    # an empty home: only the Recommend page, asked to rank, has something to say
    assert [line.split(" page ")[0] for line in capsys.readouterr().err.splitlines() if "showed an error" in line] == [
        "lensroute gui: the Recommend"]

    def broken(*_):  # type: ignore[no-untyped-def]
        raise OSError("disk unreadable")

    monkeypatch.setattr(evaluation_log, "load_reports", broken)  # the Train page reads its tables on show
    assert run_gui(["--db", f"sqlite:///{tmp_path / 'b.db'}", "--screenshot", str(tmp_path / "b")]) == 0
    err = capsys.readouterr().err
    assert "the Train & evaluate page showed an error: OSError: disk unreadable" in err
    assert err.count("showed an error") == 2  # and the Recommend one again


def test_catalogue_crawls_a_source_from_a_local_server(qtbot, window) -> None:  # type: ignore[no-untyped-def]
    from tests.crawl_server import LeaderboardServer
    from tests.test_crawl import serve_evalplus

    catalogue = page(window, "Catalogue")
    with LeaderboardServer(timeout_seconds=1.5, oversize_bytes=3_000_000) as server:
        serve_evalplus(server)
        catalogue.crawl_source.setCurrentText("evalplus")
        catalogue.crawl_url.setText(server.base_url)
        with qtbot.waitSignal(catalogue.job.succeeded, timeout=120_000):
            assert catalogue.crawl()
    assert "evalplus: done" in catalogue.log.toPlainText()
    frame = catalogue.model.frame
    row = frame.filter(pl.col("source") == "evalplus")
    assert row.height == 1 and row["records"][0] > 0 and row["state"][0] == "done" and row["last crawl"][0]
    assert row["why"][0] is None
    with catalogue.context.store().engine.begin() as conn:  # a later run that failed: the table says why
        conn.exec_driver_sql("INSERT INTO crawl_runs (source, base_url, status, error, started_at) VALUES "
                             "('evalplus', 'http://x', 'failed', 'gave up after 6 attempts', '2026-01-01T00:00:00')")
    catalogue.refresh()
    row = catalogue.model.frame.filter(pl.col("source") == "evalplus")
    assert row["state"][0] == "failed" and row["why"][0] == "gave up after 6 attempts"


@pytest.mark.slow
def test_train_page_draws_the_live_curve_and_can_cancel(qtbot, window, fixture_store, encoder: Path) -> None:  # type: ignore[no-untyped-def]
    from recommender.paths import training_checkpoint
    from recommender.ranker import user_ranker_dir

    window.context._store = fixture_store
    train = page(window, "Train & evaluate")
    train.epochs.setValue(3)
    with qtbot.waitSignal(train.job.succeeded, timeout=300_000):
        assert train.train()
    assert len(train.history) == 3  # a point per epoch, read from the live progress
    assert "ranker in use" in train.version.text()
    assert "head-to-head reordering of the top" in train.version.text()  # the weight and γ chosen on validation
    xs, _ = train.loss_line.getData()
    assert list(xs) == [1, 2, 3]
    assert train.versions.rowCount() == 1 and train.versions.frame["in use"][0] == "✔"
    train.epochs.setValue(50)
    with qtbot.waitSignal(train.job.cancelled, timeout=300_000):
        train.train()
        qtbot.waitUntil(lambda: len(train.history) >= 1, timeout=300_000)
        train.job.cancel()
    assert not train.job.running and train.train_button.isEnabled()
    # the interrupted training left its checkpoint: Resume continues it (here to 3 epochs in all)
    assert train.resume_button.isEnabled() and training_checkpoint(user_ranker_dir()).exists()
    cancelled_at = len(train.history)
    with qtbot.waitSignal(train.job.succeeded, timeout=300_000):
        train.epochs.setValue(3)
        assert train.resume()
    assert [h[0] for h in train.history] == list(range(1, 4)) and cancelled_at <= 3  # the curve went on, not over
    assert not training_checkpoint(user_ranker_dir()).exists() and not train.resume_button.isEnabled()
    assert train.versions.rowCount() == 2
    first = train.versions.frame["version"][0]
    with qtbot.waitSignal(train.job.succeeded, timeout=300_000):  # another training archives the first
        train.epochs.setValue(2)
        train.seed.setValue(1)
        train.train()
    assert train.versions.rowCount() == 3 and first in train.versions.frame["version"].to_list()
    train.versions_table.selectRow(train.versions.frame["version"].to_list().index(first))
    assert train.use_selected()
    assert train.versions.frame.filter(pl.col("in use") == "✔")["version"][0] == first


def test_gui_without_a_display_is_one_clear_line(tmp_path: Path) -> None:
    import os
    import subprocess
    import sys

    from tests.conftest import REPO

    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM")}
    done = subprocess.run([sys.executable, "-m", "app", "gui"], capture_output=True, text=True, env=env, cwd=REPO,
                          timeout=120)
    assert done.returncode == 5 and "no display" in done.stderr and "Traceback" not in done.stderr
    shots = subprocess.run([sys.executable, "-m", "app", "gui", "--db", f"sqlite:///{tmp_path / 'd.db'}", "--screenshot",
                            str(tmp_path / "s")], capture_output=True, text=True, env=env, cwd=REPO, timeout=300)
    assert shots.returncode == 0, shots.stderr
    assert len(list((tmp_path / "s").glob("*.png"))) == 6


def test_the_platform_check_runs_only_where_qt_picks_x11() -> None:
    from app.gui.platform_check import uses_xcb

    assert uses_xcb({"DISPLAY": ":0"}) == sys.platform.startswith("linux")
    assert not uses_xcb({"DISPLAY": ":0", "WAYLAND_DISPLAY": "wayland-0"})
    assert not uses_xcb({"DISPLAY": ":0", "QT_QPA_PLATFORM": "offscreen"})
    assert uses_xcb({"QT_QPA_PLATFORM": "xcb:nomitshm"}) and uses_xcb({"QT_QPA_PLATFORM": "xcb;wayland"})
    assert not uses_xcb({"QT_QPA_PLATFORM": "wayland;xcb"}) and not uses_xcb({})


def test_gui_on_an_x_display_it_cannot_use_is_one_clear_line_not_an_abort(tmp_path: Path) -> None:
    """Qt aborts the process when its X11 platform lacks a library or cannot open the display;
    `lensroute gui` checks both first (whichever applies on this machine) and says so in one line."""
    import os
    import subprocess
    import sys

    from app.gui.platform_check import missing_xcb_packages
    from tests.conftest import REPO

    env = {k: v for k, v in os.environ.items() if k not in ("WAYLAND_DISPLAY", "QT_QPA_PLATFORM")}
    env["DISPLAY"] = ":97"  # no X server listens there
    done = subprocess.run([sys.executable, "-m", "app", "gui", "--db", f"sqlite:///{tmp_path / 'd.db'}"],
                          capture_output=True, text=True, env=env, cwd=REPO, timeout=120)
    assert done.returncode == 5 and "Traceback" not in done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("lensroute: error: ")
    missing = missing_xcb_packages()
    expected = ("apt-get install " + " ".join(missing)) if missing else "cannot open the X display ':97'"
    assert expected in lines[0]


def test_colour_scheme_follows_the_system(qtbot) -> None:  # type: ignore[no-untyped-def]
    from PySide6.QtCore import Qt
    from PySide6.QtGui import QPalette
    from PySide6.QtWidgets import QApplication

    from app.gui.theme import apply_scheme

    app = QApplication.instance()
    assert apply_scheme(app, Qt.ColorScheme.Dark) == "dark"
    assert app.palette().color(QPalette.ColorRole.Window).lightness() < 80
    assert apply_scheme(app, Qt.ColorScheme.Light) == "light"
    assert app.palette().color(QPalette.ColorRole.Window).lightness() > 180


def test_training_again_keeps_the_previous_version_and_can_switch_back(tmp_path: Path) -> None:
    import json

    from recommender.ranker_versions import archive_current, list_versions, use_version

    current = tmp_path / "ranker"

    def trained(version: str, created: str) -> None:
        staging = tmp_path / "staging"
        staging.mkdir()
        (staging / "manifest.json").write_text(json.dumps({"model_version": version, "created_at": created,
                                                           "validation": {"best_val_tau_w": 0.5}}))
        if current.exists():
            archive_current(current)
        staging.rename(current)

    trained("v1", "2026-01-01T00:00:00")
    trained("v2", "2026-01-02T00:00:00")
    versions = list_versions(current)
    assert [(v["model_version"], v["in_use"]) for v in versions] == [("v2", True), ("v1", False)]
    use_version(current, "v1")
    assert [(v["model_version"], v["in_use"]) for v in list_versions(current)] == [("v1", True), ("v2", False)]
    with pytest.raises(Exception, match="no archived ranker version"):
        use_version(current, "v9")


@pytest.mark.slow
def test_train_page_evaluates_every_split_and_keeps_the_tables(qtbot, window, fixture_store, encoder: Path) -> None:  # type: ignore[no-untyped-def]
    from app.gui.main import AppContext, MainWindow
    from app.gui.pages.train import ALL_SPLITS, NO_EVALUATION, task_frame

    window.context._store = fixture_store
    train = page(window, "Train & evaluate")
    train.refresh()
    assert train.model.frame.is_empty() and train.eval_note.text() == NO_EVALUATION  # says how to fill the table
    train.epochs.setValue(2)
    train.split.setCurrentText(ALL_SPLITS)
    with qtbot.waitSignal(train.job.succeeded, timeout=600_000):
        assert train.evaluate()
    frame = train.model.frame
    assert NO_EVALUATION not in train.eval_note.text()
    ran = set(frame["split"].to_list())
    skipped = train.eval_note.text()
    # every split either has its table or says why this catalogue cannot make it
    assert all(split in ran or f"{split} skipped" in skipped for split in ("new-dataset", "random", "new-model"))
    assert {"new-dataset", "random"} <= ran
    for split in ran:
        methods = frame.filter(pl.col("split") == split)["method"].to_list()
        assert {"modellens", "type-aware-mean-z", "lightgbm-lambdarank"} <= set(methods)
    tau = frame.filter((pl.col("split") == "new-dataset") & (pl.col("method") == "modellens"))["tau_w"][0]
    assert -1.0 <= tau <= 1.0
    # below it, τw per task type of the selected run (the first when none is selected)
    first = frame["split"][0]
    breakdown = train.task_model.frame
    assert breakdown.columns[:2] == ["task type", "groups"] and "modellens" in breakdown.columns
    assert breakdown["groups"].sum() == train.reports[f"{first}:0"]["n_test_groups"]
    assert train.task_caption.text().startswith(f"τw by task type, split {first} (seed 0)")
    other = next(i for i, split in enumerate(frame["split"].to_list()) if split != first)
    train.table.selectRow(other)
    assert train.task_caption.text().startswith(f"τw by task type, split {frame['split'][other]} (seed 0)")
    assert train.task_model.frame["groups"].sum() == train.reports[f"{frame['split'][other]}:0"]["n_test_groups"]

    again = MainWindow(AppContext(window.context.db))  # a restart shows the same tables
    qtbot.addWidget(again)
    restored = page(again, "Train & evaluate")
    restored.refresh()
    assert restored.model.frame.select("split", "method", "tau_w").equals(frame.select("split", "method", "tau_w"))
    assert restored.task_model.frame.equals(task_frame(train.reports[f"{first}:0"]))
    # a table kept before the breakdown existed says how to get one
    old = {key: {**report, "methods": [{k: v for k, v in m.items() if k != "by_task"} for m in report["methods"]]}
           for key, report in train.reports.items()}
    restored.show_reports(old)
    assert restored.task_model.frame.is_empty() and "evaluate again to see it" in restored.task_caption.text()


def test_train_page_evaluates_over_several_training_runs(qtbot, window, fixture_store, encoder: Path) -> None:  # type: ignore[no-untyped-def]
    window.context._store = fixture_store
    train = page(window, "Train & evaluate")
    train.refresh()
    train.epochs.setValue(1)
    train.seed.setValue(3)
    train.split.setCurrentText("new-dataset")
    train.runs.setValue(2)
    with qtbot.waitSignal(train.job.succeeded, timeout=600_000):
        assert train.evaluate()
    stored = train.reports["new-dataset:3"]
    ours = next(m for m in stored["methods"] if m["method"] == "modellens")
    assert [r["train_seed"] for r in ours["runs"]] == [3, 4]
    assert ours["tau_w"] == pytest.approx(sum(r["tau_w"] for r in ours["runs"]) / 2)
    row = train.model.frame.filter((pl.col("split") == "new-dataset") & (pl.col("method") == "modellens"))
    assert row["note"][0].startswith("mean of 2 training runs (seeds 3, 4)") and row["tau_w_sd"][0] >= 0
    assert "runs" not in train.model.frame.columns  # the per-run list stays in the stored report


@pytest.mark.builtin_models
def test_models_page_benchmarks_the_selected_model_and_shows_the_table(qtbot, window, local_pool: list[str],  # type: ignore[no-untyped-def]
                                                                       shared_data: Path, monkeypatch) -> None:
    import routing.bench_embedding as bench_embedding
    from app.gui.pages.models import ModelsPage
    from routing.informed import RoutingConfig

    real_texts = bench_embedding.calibration_texts
    # the real MiniLM through the page's real path; only the distillation and the text are shortened for the test
    monkeypatch.setattr(bench_embedding, "bert_config", lambda: RoutingConfig(rank=16, router_hidden=16, lff_steps=8,
                                                                               router_steps=8, batch=4, seq_len=32))
    monkeypatch.setattr(bench_embedding, "calibration_texts", lambda split, limit, path=None: real_texts(split, min(limit, 32), path))
    models = page(window, "Local models")
    models.refresh()
    assert set(models.model.frame["name"].to_list()) == set(local_pool)
    with qtbot.waitSignal(models.job.failed, timeout=60_000):  # the tiny Llama has no torch weights to route
        assert models.bench()
    qtbot.waitUntil(lambda: bool(error_boxes(window)), timeout=10_000)
    assert "only the built-in" in error_boxes(window)[-1].text()
    for box in error_boxes(window):
        box.close()
    models.table.selectRow(models.model.frame["name"].to_list().index("all-minilm-l6-v2"))
    models.sparsity.setValue(0.25)
    with qtbot.waitSignal(models.job.succeeded, timeout=300_000):
        assert models.bench()
    frame = models.bench_model.frame
    assert set(frame["method"].to_list()) == {"dense", "informed", "skip", "random", "static"}
    assert set(frame["sparsity"].to_list()) == {0.0, 0.25}
    assert {"cosine", "retrieval_acc"} <= set(frame.columns) and frame["speed-up"].drop_nulls().len() == frame.height
    # kept under the data folder: a fresh page (a restarted app) shows the same table for that model
    from routing.bench import saved_bench_file

    assert saved_bench_file("all-minilm-l6-v2").is_file()
    again = ModelsPage(window.context)
    qtbot.addWidget(again)
    again.refresh()
    again.table.selectRow(again.model.frame["name"].to_list().index("all-minilm-l6-v2"))
    assert again.bench_model.frame.equals(frame) and "saved" in again.bench_label.text()
    again.table.selectRow(again.model.frame["name"].to_list().index("tiny-llama"))
    assert again.bench_model.frame.is_empty() and "none saved for tiny-llama" in again.bench_label.text()

    # Remove… (`lensroute models remove`): only the selected row, after a confirmation naming the routers it breaks
    import numpy as np

    from routing.router_store import save_router
    from routing.routers import CostModel, make_router

    save_router("default", make_router("knn").fit(np.eye(4, dtype=np.float32), np.eye(4)[:, :2]),
                CostModel().fit(np.ones(4), np.ones((4, 2))), {"pool": ["tiny-llama", "all-minilm-l6-v2"]})
    models.refresh()
    questions = Questions(monkeypatch)
    models.table.clearSelection()
    assert not models.remove_selected() and "select the model to remove" in error_boxes(window)[-1].text()
    models.table.selectRow(models.model.frame["name"].to_list().index("tiny-llama"))
    assert not models.remove_selected() and "tiny-llama" in models.model.frame["name"].to_list()  # answered No
    assert questions.asked[-1].startswith("Remove tiny-llama? Its folder") and "stays: lensroute only forgets it" in questions.asked[-1]
    assert "The router default routes over it" in questions.asked[-1]
    questions.answer = QMessageBox.StandardButton.Yes
    assert models.remove_selected()
    assert models.model.frame["name"].to_list() == ["all-minilm-l6-v2"]
