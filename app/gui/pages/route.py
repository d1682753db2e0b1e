"""Route page: the calibrated pool, the cost–quality knob with its curve, a query box and a batch
runner; each answer shows the chosen model, every member's predicted score and cost, latency. A pool
is calibrated here too ("Calibrate a pool…"), as `lensroute route calibrate` does. With "Follow-up"
ticked the questions make one conversation (as `lensroute route chat`): each is routed on its own
and answered after the exchanges before it, the reply shown as it is written. "Start serving"
puts the pool on the local HTTP API (`lensroute serve`: OpenAI-style chat and embeddings) while
the window is open."""

from __future__ import annotations

import html
import threading
from collections.abc import Collection
from pathlib import Path

import numpy as np
import polars as pl
import pyqtgraph as pg
from PySide6.QtCore import Qt, Slot
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPlainTextEdit,
    QPushButton,
    QSlider,
    QSpinBox,
    QTableView,
    QVBoxLayout,
    QWidget,
)

from app.gui.jobs import Job
from app.gui.local_server import LocalServer
from app.gui.pages.calibrate_dialog import CalibrateDialog, CalibrationChoice
from app.gui.widgets import FrameModel, JobBar, compact_table, fit_columns, show_error

SLIDER_STEPS = 100
MAX_LAMBDA_PER_UNIT = 20.0  # λ at the slider's end, in score per (mean predicted cost)


def pool_frame(result: dict) -> pl.DataFrame:
    chosen = result["chosen"]["model"]
    return pl.DataFrame({
        "model": [m["model"] for m in result["pool"]],
        "chosen": ["✔" if m["model"] == chosen else "" for m in result["pool"]],
        "predicted score": [m["predicted_score"] for m in result["pool"]],
        "predicted cost (s)": [m["predicted_cost"] for m in result["pool"]],
        "eligible": ["yes" if m["eligible"] else "no" for m in result["pool"]],
    })


class RoutePage(QWidget):
    title = "Route"

    def __init__(self, context, parent: QWidget | None = None) -> None:  # type: ignore[no-untyped-def]
        super().__init__(parent)
        self.context = context
        self.session = None
        self.router_name = QComboBox()
        self.router_name.setEditable(True)
        self.pool_label = QLabel("")
        self.pool_label.setObjectName("poolLabel")
        self.pool_label.setWordWrap(True)
        self.calibrate_button = QPushButton("Calibrate a pool…")
        self.calibrate_dialog: CalibrateDialog | None = None
        self.knob = QSlider(Qt.Orientation.Horizontal)
        self.knob.setRange(0, SLIDER_STEPS)
        self.knob_label = QLabel("quality only")
        self.curve = pg.PlotWidget()
        self.curve.setBackground(None)
        self.curve.setLabel("bottom", "mean predicted cost (s)")
        self.curve.setLabel("left", "mean predicted score")
        for side in ("bottom", "left"):  # plain numbers: "550 (x0.001)" reads worse than 0.55
            self.curve.getAxis(side).enableAutoSIPrefix(False)
        self.curve_line = self.curve.plot([], [], pen=pg.mkPen("#4e79a7", width=2), symbol="o", symbolSize=4)
        self.curve_here = pg.ScatterPlotItem(size=12, brush=pg.mkBrush(220, 20, 60))
        self.curve.addItem(self.curve_here)
        self.question = QLineEdit()
        self.question.setPlaceholderText("a question")
        self.choices = QLineEdit()
        self.choices.setPlaceholderText("choices separated by | (empty: a free-text answer)")
        self.answer_button = QPushButton("Route and answer")
        self.answer_button.setShortcut("Ctrl+Return")
        self.batch_button = QPushButton("Run a batch file…")
        self.follow_up = QCheckBox("Follow-up")
        self.follow_up.setToolTip("answer each question after the exchanges before it, as one conversation")
        self.temperature = QDoubleSpinBox()
        self.temperature.setRange(0.0, 2.0)
        self.temperature.setSingleStep(0.1)
        self.temperature.setDecimals(2)
        self.temperature.setPrefix("temperature ")
        self.temperature.setSpecialValueText("greedy")  # shown at 0
        self.temperature.setToolTip("how free-text replies are written: greedy (the same reply every time) or "
                                    "sampled, more varied the higher the temperature")
        self.new_conversation = QPushButton("New conversation")
        self.new_conversation.setEnabled(False)
        self.conversation = None  # routing.conversation.Conversation over the current session, once asked
        self.streamed: list[str] = []  # the reply being written (appended by the worker, read here)
        self.answer_text = QLabel("")
        self.answer_text.setObjectName("answerText")
        self.answer_text.setWordWrap(True)
        self.model = FrameModel()
        self.table = compact_table(QTableView())
        self.table.setModel(self.model)
        fit_columns(self.table)
        self.batch_log = QPlainTextEdit()
        self.batch_log.setReadOnly(True)
        self.job = Job("route", self)
        self.model_lock = threading.Lock()  # the page's answers and the served ones share the models
        self.server = LocalServer(self.model_lock, self)
        self.serve_port = QSpinBox()
        self.serve_port.setRange(0, 65535)
        self.serve_port.setValue(8000)
        self.serve_port.setToolTip("0: any free port")
        self.serve_key = QLineEdit()
        self.serve_key.setPlaceholderText("API key (optional)")
        self.serve_key.setEchoMode(QLineEdit.EchoMode.Password)
        self.serve_button = QPushButton("Start serving")
        self.serve_status = QLabel("other applications on this machine can use this pool through lensroute's "
                                   "OpenAI-style API")
        self.serve_status.setObjectName("serveStatus")
        self.serve_status.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)

        top = QHBoxLayout()
        top.addWidget(QLabel("Router"))
        top.addWidget(self.router_name)
        top.addWidget(self.pool_label, 1)
        top.addWidget(self.calibrate_button)
        knob = QHBoxLayout()
        knob.addWidget(QLabel("quality"))
        knob.addWidget(self.knob, 1)
        knob.addWidget(QLabel("cost"))
        knob.addWidget(self.knob_label)
        ask = QHBoxLayout()
        ask.addWidget(self.question, 3)
        ask.addWidget(self.choices, 2)
        ask.addWidget(self.follow_up)
        ask.addWidget(self.temperature)
        ask.addWidget(self.answer_button)
        ask.addWidget(self.new_conversation)
        ask.addWidget(self.batch_button)
        serve = QHBoxLayout()
        serve.addWidget(QLabel("Serve on port"))
        serve.addWidget(self.serve_port)
        serve.addWidget(self.serve_key)
        serve.addWidget(self.serve_button)
        serve.addWidget(self.serve_status, 1)
        layout = QVBoxLayout(self)
        layout.addLayout(top)
        layout.addLayout(knob)
        layout.addWidget(self.curve, 2)
        layout.addLayout(serve)
        layout.addLayout(ask)
        layout.addWidget(self.answer_text)
        layout.addWidget(self.table, 2)
        layout.addWidget(self.batch_log, 1)
        layout.addWidget(JobBar(self.job))

        self.router_name.currentTextChanged.connect(self.load_router)
        self.knob.valueChanged.connect(self.on_knob)
        self.answer_button.clicked.connect(self.answer)
        self.batch_button.clicked.connect(self.choose_batch)
        self.calibrate_button.clicked.connect(lambda: self.open_calibrate())  # not clicked's `checked` as `ticked`
        self.new_conversation.clicked.connect(self.forget_conversation)
        self.serve_button.clicked.connect(self.toggle_serving)
        self.server.logged.connect(self.on_served)
        self.server.running_changed.connect(self.on_serving)
        self.job.succeeded.connect(self.on_result)
        self.job.running_changed.connect(self.on_running)
        self.job.progressed.connect(self.on_progress)
        self.job.cancelled.connect(self.on_cancelled)

    def load_state(self, settings) -> None:  # type: ignore[no-untyped-def]
        self.refresh_routers(settings.router_name)
        self.knob.setValue(round(settings.cost_weight))
        self.question.setText(settings.route_question)
        self.temperature.setValue(min(max(settings.route_temperature, 0.0), 2.0))
        self.serve_port.setValue(settings.serve_port if 0 <= settings.serve_port <= 65535 else 8000)

    def save_state(self, settings) -> None:  # type: ignore[no-untyped-def]
        settings.router_name = self.router_name.currentText()
        settings.cost_weight = float(self.knob.value())
        settings.route_question = self.question.text()
        settings.route_temperature = self.temperature.value()
        settings.serve_port = self.serve_port.value()

    def refresh_routers(self, wanted: str = "default") -> None:
        from routing.router_store import saved_names

        names = saved_names()
        self.router_name.blockSignals(True)
        self.router_name.clear()
        self.router_name.addItems(names)
        self.router_name.setEditText(wanted if wanted in names or not names else names[0])
        self.router_name.blockSignals(False)
        self.load_router(self.router_name.currentText())

    @Slot(str)
    def load_router(self, name: str) -> None:
        from recommender.errors import LensrouteError
        from routing.router_store import load_router
        from routing.serve import RoutingSession

        self.session = None
        self.forget_conversation()
        try:
            saved = load_router(name or "default")
            self.session = RoutingSession(saved, cost_weight=0.0, encoder=self.context.encoder())
        except LensrouteError as exc:
            self.pool_label.setText(f"no pool: {exc} (or here: Calibrate a pool…)")
            self.server.use_session(None, str(exc))
            return
        self.server.use_session(self.session, None)
        cv = saved.meta.get("cross_validated", {})
        quality = f" — cross-validated accuracy {cv['router']:.3f} (best single {cv['best_single']:.3f})" if cv.get("folds") else ""
        self.pool_label.setText(f"pool: {', '.join(saved.pool)} ({saved.meta.get('kind')}, {saved.meta.get('questions')} "
                                f"calibration questions){quality}")
        self.draw_curve()

    def cost_weight(self) -> float:
        """The slider's λ, scaled by the pool's mean predicted cost so the knob spans the pool."""
        if self.session is None:
            return 0.0
        scale = float(np.mean(self.session.saved.cost_model.predict(np.array([200.0])))) or 1.0
        return self.knob.value() / SLIDER_STEPS * MAX_LAMBDA_PER_UNIT / scale

    def draw_curve(self) -> None:
        """The cost–quality curve the router predicts on its calibration queries, λ swept."""
        if self.session is None:
            return
        router = self.session.saved.router
        x = getattr(router, "x", None)
        if x is None:
            self.curve_line.setData([], [])
            return
        quality = router.predict(x[: min(len(x), 2000)])
        cost = np.broadcast_to(self.session.saved.cost_model.predict(np.array([200.0]))[0], quality.shape)
        from routing.routers import decide

        points = []
        for step in range(SLIDER_STEPS + 1):
            lam = step / SLIDER_STEPS * MAX_LAMBDA_PER_UNIT / (float(cost.mean()) or 1.0)
            chosen = decide(quality, cost, None, lam)
            rows = np.arange(len(quality))
            points.append((float(cost[rows, chosen].mean()), float(quality[rows, chosen].mean())))
        self.curve_points = points
        xs, ys = zip(*points, strict=True)
        self.curve_line.setData(list(xs), list(ys))
        self.on_knob(self.knob.value())

    @Slot(int)
    def on_knob(self, value: int) -> None:
        self.knob_label.setText("quality only" if value == 0 else f"λ = {self.cost_weight():.3g}")
        if self.session is not None:
            self.session.cost_weight = self.cost_weight()
        points = getattr(self, "curve_points", None)
        if points:
            self.curve_here.setData(pos=[points[value]])

    def sampling(self):  # type: ignore[no-untyped-def]
        """The decoding the page asks for: greedy at temperature 0, else sampled (no seed: a
        question asked again may get another reply, as in a chat app)."""
        from routing.sampling import Sampling

        return Sampling(temperature=round(self.temperature.value(), 2))

    def question_object(self):  # type: ignore[no-untyped-def]
        from routing.answering import Question

        text = self.choices.text().strip()
        return Question(self.question.text().strip(), [c.strip() for c in text.split("|")] if text else [])

    @Slot()
    def open_calibrate(self, ticked: Collection[str] | None = None) -> None:
        """The calibration dialog over every installed model, `ticked` ones ticked (default: all)."""
        from routing.local_models import installed

        models = [(m.name, m.kind) for m in installed()]
        if not models:
            show_error(self, "no local models installed: build the built-ins on the Local models page "
                             "(or `lensroute models build-builtin`)")
            return
        self.calibrate_dialog = CalibrateDialog(models, self.router_name.currentText(), self, ticked)
        if self.calibrate_dialog.exec() == CalibrateDialog.DialogCode.Accepted:
            self.calibrate(self.calibrate_dialog.choice())

    def calibrate(self, choice: CalibrationChoice) -> bool:
        """Run every pool model on the labelled questions and train the router, as a job (progress,
        Cancel); the new router becomes the page's pool. A cancelled calibration saves nothing."""
        if not choice.pool:
            show_error(self, "tick at least one installed model for the pool")
            return False
        encoder = self.context.encoder()

        def work(progress, cancel):  # type: ignore[no-untyped-def]
            from routing.answering import read_questions
            from routing.calibrate import calibrate

            questions = read_questions(choice.data, labelled=True)
            return {"calibrated": calibrate(choice.pool, questions, kind=choice.kind, name=choice.name,
                                            data_file=choice.data, embed=encoder.encode, progress=progress,
                                            cancel=cancel)}

        self.batch_log.appendPlainText(f"calibrating {', '.join(choice.pool)} on {choice.data} ({choice.kind})")
        return self.job.start(work)

    def on_calibrated(self, summary: dict) -> None:
        from routing.calibrate import describe

        self.batch_log.appendPlainText("\n".join(describe(summary)))
        self.refresh_routers(summary["router"])

    @Slot()
    def answer(self) -> bool:
        from routing.answering import choices_problem

        if self.session is None:
            show_error(self, "no calibrated router: calibrate a pool first (Calibrate a pool…)")
            return False
        question = self.question_object()
        if not question.question:
            show_error(self, "the question is empty")
            return False
        if problem := choices_problem(question.choices):
            show_error(self, problem)
            return False
        session = self.session
        if self.follow_up.isChecked():
            return self.follow_up_answer(question)

        lock, sampling = self.model_lock, self.sampling()

        def work(progress, cancel):  # type: ignore[no-untyped-def]
            with lock:
                decision, answer = session.answer(question, sampling=sampling)
            return [session.as_json(question, decision, answer)]

        return self.job.start(work)

    def follow_up_answer(self, question) -> bool:  # type: ignore[no-untyped-def]
        """The question as the next message of the conversation; the reply streams into the
        answer line (Cancel stops it and keeps what was written, as `route chat` does)."""
        from recommender.errors import LensrouteError
        from routing.conversation import Conversation

        if self.conversation is None:
            try:
                self.conversation = Conversation(self.session)
            except LensrouteError as exc:  # a pool of embedding models only
                show_error(self, str(exc))
                return False
        conversation, streamed, lock = self.conversation, [], self.model_lock
        conversation.sampling = self.sampling()  # a change of temperature holds from the next reply on
        self.streamed = streamed
        self.batch_log.appendPlainText(f"you: {question.question}")

        def work(progress, cancel):  # type: ignore[no-untyped-def]
            def routed(model: str) -> None:
                streamed.append(f"<b>{html.escape(model)}</b>: ")
                progress(0, None, f"{model} is writing…")

            def heard(piece: str) -> None:
                streamed.append(html.escape(piece))
                progress(len(streamed), None, "writing…")

            with lock:
                return {"conversation": conversation.ask(question.question, heard, cancel, on_routed=routed,
                                                         choices=question.choices)}

        return self.job.start(work)

    @Slot()
    def toggle_serving(self) -> bool:
        """Start the local HTTP API over this page's pool (or stop it); returns whether it serves."""
        if self.server.running:
            self.server.stop()
            return False

        def load_ranker():  # type: ignore[no-untyped-def]
            from recommender.ranker import Ranker

            return Ranker.load()  # its own: /v1/rank must not share the Recommend page's ranker across threads

        try:
            self.server.start(self.session, None if self.session else "no calibrated router (Calibrate a pool…)",
                              load_ranker, port=self.serve_port.value(), api_key=self.serve_key.text().strip() or None)
        except OSError as exc:
            show_error(self, f"cannot listen on 127.0.0.1:{self.serve_port.value()} ({exc.strerror or exc}): "
                             "choose another port")
            return False
        return True

    @Slot(bool)
    def on_serving(self, serving: bool) -> None:
        self.serve_button.setText("Stop serving" if serving else "Start serving")
        self.serve_port.setEnabled(not serving)
        self.serve_key.setEnabled(not serving)
        if serving:
            key = "; send the API key as the client's api_key" if self.serve_key.text().strip() else ""
            self.serve_status.setText(f"serving on {self.server.url} — OpenAI base URL {self.server.url}/v1{key}")
            self.batch_log.appendPlainText(f"serving on {self.server.url}")
        else:
            self.serve_status.setText("stopped serving")
            self.batch_log.appendPlainText("stopped serving")

    @Slot(str)
    def on_served(self, line: str) -> None:
        self.batch_log.appendPlainText(f"served: {line}")

    @Slot()
    def forget_conversation(self) -> None:
        if self.conversation is not None and self.conversation.turns:
            self.batch_log.appendPlainText("(new conversation)")
        self.conversation = None
        self.new_conversation.setEnabled(False)

    @Slot(float, float, str)
    def on_progress(self, done: float, total: float, message: str) -> None:
        if self.streamed:
            self.answer_text.setText("".join(self.streamed))

    @Slot()
    def on_cancelled(self) -> None:
        """A stopped reply stays in the conversation with what was written."""
        if self.streamed and self.conversation is not None and self.conversation.turns:
            self.batch_log.appendPlainText(f"{self.conversation.turns[-1].content} (stopped)")
            self.new_conversation.setEnabled(True)
        self.streamed = []

    @Slot()
    def choose_batch(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Questions (JSONL)", "", "JSONL (*.jsonl);;All files (*)")
        if path:
            self.run_batch(Path(path))

    def run_batch(self, path: Path) -> bool:
        if self.session is None:
            show_error(self, "no calibrated router: calibrate a pool first")
            return False
        session, lock, sampling = self.session, self.model_lock, self.sampling()

        def work(progress, cancel):  # type: ignore[no-untyped-def]
            from routing.answering import read_questions

            questions = read_questions(path, labelled=False)
            results = []
            for i, question in enumerate(questions):
                cancel.raise_if_cancelled()
                with lock:
                    decision, answer = session.answer(question, sampling=sampling)
                results.append(session.as_json(question, decision, answer))
                progress(i + 1, len(questions), results[-1]["chosen"]["model"])
            return results

        self.batch_log.appendPlainText(f"batch {path}")
        return self.job.start(work)

    @Slot(object)
    def on_result(self, results: list | dict) -> None:  # type: ignore[type-arg]
        if isinstance(results, dict) and "conversation" in results:
            self.on_reply(results["conversation"])
            return
        if isinstance(results, dict):
            self.on_calibrated(results["calibrated"])
            return
        last = results[-1]
        chosen = last["chosen"]
        self.answer_text.setText(f"<b>{html.escape(chosen['model'])}</b>: {html.escape(str(chosen['answer']))}  "
                                 f"(answer {chosen['answer_ms']:.0f} ms, routing {last['routing_ms']:.1f} ms)"
                                 + ("".join(f"<br>note: {html.escape(n)}" for n in last["notes"])))
        self.model.set_frame(pool_frame(last))
        if len(results) > 1:
            from routing.serve import batch_summary

            self.batch_log.appendPlainText(batch_summary(results))

    def on_reply(self, result: dict) -> None:
        self.streamed = []
        ending = {"length": ", cut at the reply's length", "cancelled": ", stopped"}.get(result["finish_reason"], "")
        self.answer_text.setText(f"<b>{html.escape(result['model'])}</b>: {html.escape(result['reply'])}  "
                                 f"(answer {result['answer_ms']:.0f} ms, routing {result['routing_ms']:.1f} ms{ending}; "
                                 f"turn {result['turns'] // 2})" + "".join(f"<br>note: {html.escape(n)}" for n in result["notes"]))
        self.model.set_frame(pool_frame({"chosen": {"model": result["model"]}, "pool": result["pool"]}))
        self.batch_log.appendPlainText(f"{result['model']}: {result['reply']}")
        self.new_conversation.setEnabled(True)

    @Slot(bool)
    def on_running(self, running: bool) -> None:
        self.answer_button.setEnabled(not running)
        self.batch_button.setEnabled(not running)
        self.calibrate_button.setEnabled(not running)
        self.new_conversation.setEnabled(not running and self.conversation is not None and bool(self.conversation.turns))
