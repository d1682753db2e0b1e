"""`lensroute models bench all-minilm-l6-v2`: informed routing in the sentence encoder, measured.

Quality on held-out text (routing-table test prompts): mean cosine of each routed sentence
embedding to the dense one, and retrieval accuracy — each question of the bundled multiple-choice
set retrieves, among every question's correct answer, its own (dense accuracy is the reference).
Speed: every variant exported to ONNX (capacity-capped top-k graphs, as for the decoder) and timed
for batches of 8 texts of T ∈ {128, 256} tokens, next to the dense graph timed beside it, and the
theoretical (FLOP) speed-up. An encoder has no decoding step: `decode_ms` is null.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from recommender.errors import RuntimeUnavailableError
from recommender.progress import NEVER_CANCELLED, CancelToken, Progress, SubProgress, no_progress
from routing.bench import SPARSITIES, BenchRow, _median_ms, calibration_texts, configure, variants

INPUTS = ["input_ids", "attention_mask", "token_type_ids"]


def bert_config():  # type: ignore[no-untyped-def]
    from routing.informed import RoutingConfig

    return RoutingConfig(rank=64, router_hidden=24, lff_steps=300, router_steps=150, batch=16, seq_len=128)


@dataclass
class EncoderSetup:
    model: object
    routers: dict
    errors: list[float]
    held_out: list[list[int]]
    retrieval: tuple[list[list[int]], list[list[int]]]
    dense: np.ndarray
    dense_retrieval: float


def _embed(model, encodings: list[list[int]], batch: int = 32) -> np.ndarray:  # type: ignore[no-untyped-def]
    import torch

    from routing.informed_bert import pad_batch

    with torch.no_grad():
        return np.concatenate([model(*pad_batch(encodings[s : s + batch])).numpy() for s in range(0, len(encodings), batch)])


def retrieval_accuracy(model, questions: list[list[int]], answers: list[list[int]]) -> float:  # type: ignore[no-untyped-def]
    q, a = _embed(model, questions), _embed(model, answers)
    return float(np.mean(np.argmax(q @ a.T, axis=1) == np.arange(len(q))))


def retrieval_pairs(tokenize) -> tuple[list[list[int]], list[list[int]]]:  # type: ignore[no-untyped-def]
    from routing.answering import bundled_questions, read_questions

    questions = read_questions(bundled_questions(), labelled=True)
    return ([tokenize(q.question) for q in questions],
            [tokenize(q.choices[q.answer]) for q in questions if q.answer is not None])


def measure_quality(setup: EncoderSetup, method: str, sparsity: float) -> dict:
    if method == "dense":
        return {"cosine": 1.0, "retrieval_acc": round(setup.dense_retrieval, 4)}
    configure(setup, method, sparsity)
    routed = _embed(setup.model, setup.held_out)
    return {"cosine": round(float(np.mean(np.sum(routed * setup.dense, axis=1))), 6),
            "retrieval_acc": round(retrieval_accuracy(setup.model, *setup.retrieval), 4)}


def prepare(core, train: list[list[int]], held_out: list[list[int]], retrieval, config, *,  # type: ignore[no-untyped-def]
            progress: Progress = no_progress, cancel: CancelToken = NEVER_CANCELLED) -> EncoderSetup:
    import torch

    from routing.informed_bert import RoutedBert, train_forecasters, train_routers, unit_errors

    torch.manual_seed(config.seed)
    model = RoutedBert(core, config)
    model.train()
    train_forecasters(model, train, SubProgress(progress, 0, 1, 3), cancel)
    routers = {}
    for forecast in (True, False):
        train_routers(model, train, forecast=forecast, progress=SubProgress(progress, 1 + (not forecast), 1, 3), cancel=cancel)
        routers[forecast] = {k: v.clone() for k, v in model.routers.state_dict().items()}
    model.eval()
    errors = unit_errors(model, train)
    model.mode = "dense"
    dense = _embed(model, held_out)
    return EncoderSetup(model, routers, errors, held_out, retrieval, dense, retrieval_accuracy(model, *retrieval))


class EncoderTimer:
    def __init__(self, path: Path, vocab: int, device: str) -> None:
        from recommender.onnx_session import create_session

        self.session, info = create_session(path, device=device)
        self.provider = info.provider
        self.vocab = vocab

    def prefill(self, lengths: tuple[int, ...], repeats: int, batch: int = 8) -> dict:
        out = {}
        for t in lengths:
            ids = np.random.default_rng(t).integers(min(1000, self.vocab // 2), self.vocab, (batch, t))
            feeds = {"input_ids": ids, "attention_mask": np.ones_like(ids), "token_type_ids": np.zeros_like(ids)}
            out[str(t)] = round(_median_ms(lambda feeds=feeds: self.session.run(None, feeds), repeats), 2)
        return out


def export_encoder(model, path: Path) -> None:  # type: ignore[no-untyped-def]
    import torch

    from recommender.lens_export import export_onnx

    batch, tokens = torch.export.Dim("batch"), torch.export.Dim("tokens", max=model.spec.max_positions)
    shape = {0: batch, 1: tokens}
    example = (torch.randint(0, model.spec.vocab, (2, 9)), torch.ones(2, 9, dtype=torch.long), torch.zeros(2, 9, dtype=torch.long))
    with torch.no_grad():
        export_onnx(model, example, path, INPUTS, ["sentence_embedding"], (shape, shape, shape), optimize=False)


def bench_encoder(name: str, core, train: list[list[int]], held_out: list[list[int]], retrieval, config, *,  # type: ignore[no-untyped-def]
                  sparsities: tuple[float, ...] = SPARSITIES, device: str = "auto", lengths: tuple[int, ...] = (128, 256),
                  repeats: int = 5, progress: Progress = no_progress, cancel: CancelToken = NEVER_CANCELLED) -> list[BenchRow]:
    from routing.informed_bert import theoretical_speedup

    setup = prepare(core, train, held_out, retrieval, config, progress=SubProgress(progress, 1, 3, 5), cancel=cancel)
    rows: list[BenchRow] = []
    longest = str(max(lengths))
    with tempfile.TemporaryDirectory(prefix="lensroute-bench-") as tmp:
        configure(setup, "dense", 0.0)
        export_encoder(setup.model, Path(tmp) / "dense.onnx")
        dense = EncoderTimer(Path(tmp) / "dense.onnx", core.spec.vocab, device)
        todo = variants(sparsities)
        for step, (method, sparsity) in enumerate(todo):
            cancel.raise_if_cancelled()
            progress(4 + step / len(todo), 5, f"{method} at sparsity {sparsity}")
            measured = measure_quality(setup, method, sparsity)
            if method == "dense":
                timer, path = dense, None
            else:
                configure(setup, method, sparsity)
                path = Path(tmp) / "variant.onnx"
                export_encoder(setup.model, path)
                timer = EncoderTimer(path, core.spec.vocab, device)
            prefill = timer.prefill(lengths, repeats)
            baseline = dense.prefill((max(lengths),), repeats) if method != "dense" else prefill
            del timer
            if path is not None:
                path.unlink(missing_ok=True)
            theory = 1.0 if method == "dense" else theoretical_speedup(core, config, max(lengths), sparsity, method)
            rows.append(BenchRow(name, method, sparsity, dense.provider, measured, prefill, None,
                                 round(baseline[longest] / prefill[longest], 3), round(theory, 3)))
    progress(5, 5, "done")
    return rows


def bench_embedding(name: str, *, sparsities: tuple[float, ...] = SPARSITIES, device: str = "auto", config=None,  # type: ignore[no-untyped-def]
                    calibration: Path | None = None, repeats: int = 5, progress: Progress = no_progress,
                    cancel: CancelToken = NEVER_CANCELLED) -> list[BenchRow]:
    from recommender.text_encoder import ENCODER_NAME, MAX_LENGTH, minilm_weights_dir

    if name != ENCODER_NAME:
        raise RuntimeUnavailableError(f"informed routing needs the torch weights; only the built-in {ENCODER_NAME} has them here")
    from transformers import AutoModel, AutoTokenizer

    from routing.bert import from_hf

    progress(0, 5, "loading the dense encoder")
    source = minilm_weights_dir()
    core = from_hf(AutoModel.from_pretrained(str(source)).eval())
    tokenizer = AutoTokenizer.from_pretrained(str(source))

    def tokenize(text: str) -> list[int]:
        return tokenizer(text, truncation=True, max_length=MAX_LENGTH)["input_ids"]

    train = [tokenize(t) for t in calibration_texts("train", 3000, calibration)]
    held_out = [tokenize(t) for t in calibration_texts("test", 256, calibration)]
    cancel.raise_if_cancelled()
    return bench_encoder(name, core, train, held_out, retrieval_pairs(tokenize), config or bert_config(),
                         sparsities=sparsities, device=device, repeats=repeats, progress=progress, cancel=cancel)
