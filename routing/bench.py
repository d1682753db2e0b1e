"""`lensroute models bench NAME`: quality versus sparsity and measured speed of informed routing.

For a causal LM (SmolLM2): forecasters are distilled once, then routers are trained for informed
routing (forecast substituted) and for execute-or-skip (forecast = 0); one router per mode serves
every sparsity through the capacity-capped top-k (it ranks tokens; capacity sets how many run).
Quality is measured in torch on held-out text (KL(dense ‖ routed) of next-token distributions and
top-1 agreement); speed by exporting each variant to ONNX and timing prefill (T = 128, 512) and
decode (ms per token with the KV cache) on the chosen execution provider.

Calibration text is the prompts of `../shared/data/routing/*.parquet` train splits (test splits
are the held-out text), or a file given with --calibration.
"""

from __future__ import annotations

import json
import os
import statistics
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from recommender.errors import NoDataError, RuntimeUnavailableError
from recommender.progress import NEVER_CANCELLED, CancelToken, Progress, SubProgress, no_progress
from routing.local_models import get

SPARSITIES = (0.0, 0.125, 0.25, 0.375, 0.5)
METHODS = ("dense", "informed", "skip", "random", "static")


def shared_routing_dir() -> Path:
    configured = os.environ.get("LENSROUTE_SHARED_DATA")
    root = Path(configured) if configured else Path(__file__).resolve().parents[2] / "shared" / "data"
    return root / "routing"


def calibration_texts(split: str, limit: int, path: Path | None = None) -> list[str]:
    """Real natural text: routing-table prompts of one split (train for calibration, test held out)."""
    if path is not None:
        lines = [line.strip() for line in path.read_text(encoding="utf-8-sig").splitlines() if line.strip()]
        texts = [json.loads(line).get("text", "") if line.startswith("{") else line for line in lines]
        return [t for t in texts if t][:limit]
    folder = shared_routing_dir()
    files = sorted(folder.glob("*.parquet"))
    if not files:
        raise NoDataError(f"no calibration text: {folder} has no routing tables; pass --calibration FILE")
    import polars as pl

    frame = pl.concat([pl.read_parquet(f, columns=["prompt", "split"]) for f in files])
    prompts = frame.filter(pl.col("split") == split)["prompt"].unique(maintain_order=True).to_list()
    prompts.sort()  # deterministic order regardless of file layout
    rng = np.random.default_rng(0)
    picked = [prompts[i] for i in rng.permutation(len(prompts))[:limit]]
    if not picked:
        raise NoDataError(f"the routing tables hold no {split!r} prompts")
    return picked


@dataclass
class BenchRow:
    model: str
    method: str
    sparsity: float
    provider: str
    quality: dict
    prefill_ms: dict
    decode_ms: float | None
    speedup: float | None
    theoretical_speedup: float

    def as_json(self) -> dict:
        return {"model": self.model, "method": self.method, "sparsity": self.sparsity, "provider": self.provider,
                "quality": self.quality, "prefill_ms": self.prefill_ms, "decode_ms": self.decode_ms,
                "speedup": self.speedup, "theoretical_speedup": self.theoretical_speedup}


def _median_ms(fn, repeats: int, sync=None) -> float:  # type: ignore[no-untyped-def]
    fn()  # warm-up
    if sync:
        sync()
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        fn()
        if sync:
            sync()
        times.append(time.perf_counter() - started)
    return statistics.median(times) * 1000


class OnnxTimer:
    """Prefill and decode timings of one exported graph, through IOBinding with every input and
    output on the session's device: on CUDA no host copy of the logits or the KV cache is timed
    (the way the runtime serves)."""

    def __init__(self, path: Path, spec, device: str) -> None:  # type: ignore[no-untyped-def]
        from recommender.onnx_session import create_session

        self.session, info = create_session(path, device=device)
        self.provider = info.provider
        self.where = "cuda" if self.provider == "CUDAExecutionProvider" else "cpu"
        self.spec = spec

    def _value(self, array: np.ndarray):  # type: ignore[no-untyped-def]
        import onnxruntime as ort

        return ort.OrtValue.ortvalue_from_numpy(np.ascontiguousarray(array), self.where, 0)

    def _run(self, feeds: dict) -> list:
        from routing.llama import OUTPUT_NAMES

        binding = self.session.io_binding()
        for name, value in feeds.items():
            binding.bind_ortvalue_input(name, value)
        for name in OUTPUT_NAMES:
            binding.bind_output(name, self.where)
        self.session.run_with_iobinding(binding)
        return binding.get_outputs()

    def _prefill_feeds(self, tokens: int, batch: int) -> dict:
        spec = self.spec
        ids = np.random.default_rng(tokens).integers(3, spec.vocab, (batch, tokens))
        empty = np.zeros((spec.layers, batch, spec.kv_heads, 1, spec.head_dim), np.float32)
        return {k: self._value(v) for k, v in {
            "input_ids": ids, "token_mask": np.ones((batch, tokens), np.int64), "past_mask": np.zeros((batch, 1), np.int64),
            "position_ids": np.tile(np.arange(tokens), (batch, 1)), "past_key": empty, "past_value": empty}.items()}

    def prefill(self, lengths: tuple[int, ...], repeats: int, batch: int = 1) -> dict:
        out = {}
        for t in lengths:
            feeds = self._prefill_feeds(t, batch)
            out[str(t)] = round(_median_ms(lambda feeds=feeds: self._run(feeds), repeats), 2)
        return out

    def decode(self, context: int, tokens: int, repeats: int, batch: int = 1) -> float:
        """ms per generated token after a prefill of `context` tokens (KV cache on the device)."""
        _, key, value = self._run(self._prefill_feeds(context, batch))

        def decode() -> None:
            k, v = key, value
            past_mask = np.concatenate([np.zeros((batch, 1), np.int64), np.ones((batch, context), np.int64)], axis=1)
            for step in range(tokens):
                _, k, v = self._run({"input_ids": self._value(np.full((batch, 1), 5, np.int64)),
                                     "token_mask": self._value(np.ones((batch, 1), np.int64)), "past_mask": self._value(past_mask),
                                     "position_ids": self._value(np.full((batch, 1), context + step, np.int64)),
                                     "past_key": k, "past_value": v})
                past_mask = np.concatenate([past_mask, np.ones((batch, 1), np.int64)], axis=1)

        return round(_median_ms(decode, max(2, repeats // 2)) / tokens, 3)


def time_onnx(path: Path, spec, device: str, lengths: tuple[int, ...], decode_tokens: int, repeats: int,  # type: ignore[no-untyped-def]
              batch: int = 1) -> tuple[dict, float, str]:
    """(prefill ms per length, decode ms per token, provider) of one exported graph."""
    timer = OnnxTimer(path, spec, device)
    return timer.prefill(lengths, repeats, batch), timer.decode(lengths[0], decode_tokens, repeats, batch), timer.provider


def time_torch(model, lengths: tuple[int, ...], decode_tokens: int, repeats: int, batch: int = 1) -> tuple[dict, float]:  # type: ignore[no-untyped-def]
    """(prefill ms per length, decode ms per token) of the model in its current mode, eagerly in
    torch on the model's device (CUDA timings synchronise before reading the clock)."""
    import torch

    from routing.informed import model_device
    from routing.llama import prefill_inputs

    device = model_device(model)
    sync = torch.cuda.synchronize if device.type == "cuda" else None
    generator = torch.Generator().manual_seed(0)
    spec = model.spec

    def prefill_of(tokens: int) -> tuple[torch.Tensor, ...]:
        ids = torch.randint(3, spec.vocab, (batch, tokens), generator=generator).to(device)
        return prefill_inputs(ids, torch.ones_like(ids), model)

    prefill = {}
    with torch.no_grad():
        for t in lengths:
            inputs = prefill_of(t)
            prefill[str(t)] = round(_median_ms(lambda inputs=inputs: model(*inputs), repeats, sync), 2)
        _, key, value = model(*prefill_of(lengths[0]))

        def decode() -> None:
            k, v = key, value
            past_mask = torch.cat([torch.zeros(batch, 1, dtype=torch.long), torch.ones(batch, lengths[0], dtype=torch.long)], 1).to(device)
            one = torch.ones(batch, 1, dtype=torch.long, device=device)
            for step in range(decode_tokens):
                _, k, v = model(one * 5, one, past_mask, one * (lengths[0] + step), k, v)
                past_mask = torch.cat([past_mask, one], 1)

        decode_ms = _median_ms(decode, max(2, repeats // 2), sync) / decode_tokens
    return prefill, round(decode_ms, 3)


def quality(model, dense_logits: list, windows: list) -> dict:  # type: ignore[no-untyped-def]
    """Mean KL(dense ‖ routed) per token and top-1 agreement, over held-out windows."""
    import torch

    from routing.informed import _inputs, model_device

    device = model_device(model)
    kls, agree, total = 0.0, 0, 0
    with torch.no_grad():
        for window, reference in zip(windows, dense_logits, strict=True):
            routed = model(*_inputs(model, window.to(device)))[0].float()
            p = reference.log_softmax(-1)
            q = routed.log_softmax(-1)
            kls += float((p.exp() * (p - q)).sum(-1).sum())
            agree += int((reference.argmax(-1) == routed.argmax(-1)).sum())
            total += reference.shape[0] * reference.shape[1]
    return {"kl": round(kls / total, 6), "top1": round(agree / total, 4)}


@dataclass
class RoutingSetup:
    """A dense model with trained forecasters and both routers (informed, skip), plus held-out
    windows and their dense logits: everything the variants are measured against."""

    model: object
    routers: dict
    errors: list[float]
    windows: list
    dense_logits: list
    history: dict


def prepare_routing(core, train_ids: list, test_ids: list, config, *, device: str = "cpu",  # type: ignore[no-untyped-def]
                    held_out_windows: int = 8, progress: Progress = no_progress,
                    cancel: CancelToken = NEVER_CANCELLED, model_class=None,
                    forecasts: tuple[bool, ...] = (True, False)) -> RoutingSetup:
    """Train the forecasters, then routers for each of `forecasts` (True: informed routing,
    False: execute-or-skip), and hold out windows of `test_ids` with the dense model's logits."""
    import torch

    from routing.informed import (
        RoutedLlama,
        _inputs,
        batches,
        train_forecasters,
        train_routers,
        unit_errors,
    )

    torch.manual_seed(config.seed)
    model = (model_class or RoutedLlama)(core, config).to(device)
    model.train()
    stages = 1 + len(forecasts)
    curve = train_forecasters(model, train_ids, SubProgress(progress, 0, 1, stages), cancel)
    routers, history = {}, {"lff": curve}
    for stage, forecast in enumerate(forecasts, start=1):
        history["informed" if forecast else "skip"] = train_routers(
            model, train_ids, forecast=forecast, progress=SubProgress(progress, stage, 1, stages), cancel=cancel)
        routers[forecast] = {k: v.clone() for k, v in model.routers.state_dict().items()}
    model.eval()
    errors = unit_errors(model, train_ids)
    generator = torch.Generator().manual_seed(config.seed + 11)
    windows = [w for _, w in zip(range(held_out_windows), batches(test_ids, config, generator), strict=False)]
    model.mode = "dense"
    with torch.no_grad():
        dense_logits = [model(*_inputs(model, w.to(device)))[0].float() for w in windows]
    return RoutingSetup(model, routers, errors, windows, dense_logits, history)


def variants(sparsities: tuple[float, ...]) -> list[tuple[str, float]]:
    return [("dense", 0.0)] + [(m, s) for s in sparsities if s > 0 for m in METHODS[1:]]


def configure(setup, method: str, sparsity: float) -> None:  # type: ignore[no-untyped-def]
    """Put the routed model of a setup (decoder or encoder) into one variant: method at sparsity."""
    from routing.informed import choose_static_units

    model = setup.model
    model.sparsity, model.forecast = sparsity, method != "skip"  # type: ignore[attr-defined]
    model.mode = {"dense": "dense", "informed": "topk", "skip": "topk", "random": "random", "static": "static"}[method]  # type: ignore[attr-defined]
    if method in ("informed", "skip"):
        model.routers.load_state_dict(setup.routers[method == "informed"])  # type: ignore[attr-defined]
    model.static_units = choose_static_units(setup.errors, sparsity) if method == "static" else set()  # type: ignore[attr-defined]


def measure_quality(setup: RoutingSetup, method: str, sparsity: float) -> dict:
    if method == "dense":
        return {"kl": 0.0, "top1": 1.0}
    configure(setup, method, sparsity)
    return quality(setup.model, setup.dense_logits, setup.windows)


def export_variant(setup: RoutingSetup, core, method: str, sparsity: float, folder: Path) -> Path:  # type: ignore[no-untyped-def]
    """The variant as an ONNX file in `folder` (exported from a CPU copy of the weights)."""
    from recommender.lens_export import export_onnx
    from routing.builtins import export_llama
    from routing.informed import model_device

    device = model_device(setup.model)  # type: ignore[arg-type]
    if method == "dense":
        export_llama(core.to("cpu"), folder)
        core.to(device)
        return folder / "model.onnx"
    configure(setup, method, sparsity)
    path = folder / "variant.onnx"
    setup.model.to("cpu")  # type: ignore[attr-defined]
    try:
        _export_routed(setup.model, path, export_onnx)
    finally:
        setup.model.to(device)  # type: ignore[attr-defined]
    return path


def bench_causal_lm(name: str, *, sparsities: tuple[float, ...] = SPARSITIES, device: str = "auto",
                    config=None, calibration: Path | None = None, lengths: tuple[int, ...] = (128, 512),  # type: ignore[no-untyped-def]
                    decode_tokens: int = 16, repeats: int = 5, held_out_windows: int = 8,
                    progress: Progress = no_progress, cancel: CancelToken = NEVER_CANCELLED) -> list[BenchRow]:
    from routing.builtins import SMOLLM_NAME, load_smollm_torch
    from routing.informed import RoutingConfig
    from routing.llama import from_hf

    local = get(name)
    if local.kind != "causal-lm":
        raise RuntimeUnavailableError(f"{name} is an {local.kind} model; this bench is for causal LMs")
    if name != SMOLLM_NAME:
        raise RuntimeUnavailableError(f"informed routing needs the torch weights; only the built-in {SMOLLM_NAME} has them here")
    progress(0, 5, "loading the dense model")
    hf, tokenizer = load_smollm_torch()
    core = from_hf(hf)
    train_ids = [tokenizer(t)["input_ids"] for t in calibration_texts("train", 4000, calibration)]
    test_ids = [tokenizer(t)["input_ids"] for t in calibration_texts("test", 1000, None if calibration is None else calibration)]
    cancel.raise_if_cancelled()
    return bench_core(name, core, train_ids, test_ids, config or RoutingConfig(), sparsities=sparsities, device=device,
                      lengths=lengths, decode_tokens=decode_tokens, repeats=repeats, held_out_windows=held_out_windows,
                      progress=progress, cancel=cancel)


def bench_core(name: str, core, train_ids: list, test_ids: list, config, *, sparsities: tuple[float, ...] = SPARSITIES,  # type: ignore[no-untyped-def]
               device: str = "auto", lengths: tuple[int, ...] = (128, 512), decode_tokens: int = 16, repeats: int = 5,
               held_out_windows: int = 8, progress: Progress = no_progress, cancel: CancelToken = NEVER_CANCELLED) -> list[BenchRow]:
    """Train forecasters and routers on `train_ids`, then measure every method at every sparsity."""
    setup = prepare_routing(core, train_ids, test_ids, config, held_out_windows=held_out_windows,
                            progress=SubProgress(progress, 1, 3, 5), cancel=cancel)
    rows: list[BenchRow] = []
    longest = str(max(lengths))
    with tempfile.TemporaryDirectory(prefix="lensroute-bench-") as tmp:
        todo = variants(sparsities)
        dense_dir = Path(tmp) / "dense"
        dense_dir.mkdir()
        dense = OnnxTimer(export_variant(setup, core, "dense", 0.0, dense_dir), core.spec, device)
        for step, (method, sparsity) in enumerate(todo):
            cancel.raise_if_cancelled()
            progress(4 + step / len(todo), 5, f"{method} at sparsity {sparsity}")
            measured = measure_quality(setup, method, sparsity)
            if method == "dense":
                timer, path = dense, None
            else:
                path = export_variant(setup, core, method, sparsity, Path(tmp))
                timer = OnnxTimer(path, core.spec, device)
            prefill = timer.prefill(lengths, repeats)
            decode_ms = timer.decode(lengths[0], decode_tokens, repeats)
            # the dense graph timed again right beside each variant: the speed-up is a paired
            # ratio, so drifting machine load between variants does not bias it
            baseline = dense.prefill((max(lengths),), repeats) if method != "dense" else prefill
            del timer
            if path is not None:
                path.unlink(missing_ok=True)
            theory = 1.0 if method == "dense" else _theory(core, config, max(lengths), sparsity, method, setup.errors)
            rows.append(BenchRow(name, method, sparsity, dense.provider, measured, prefill, decode_ms,
                                 round(baseline[longest] / prefill[longest], 3), round(theory, 3)))
    progress(5, 5, "done")
    return rows


def _theory(core, config, tokens: int, sparsity: float, method: str, errors: list[float]) -> float:  # type: ignore[no-untyped-def]
    from routing.informed import theoretical_speedup, unit_flops

    if method == "static":
        s = core.spec
        f = unit_flops(core, tokens, tokens // 2 + 1)
        dense = s.layers * (f["kv"] + f["attention"] + f["mlp"]) + f["head"]
        dropped = round(sparsity * 2 * s.layers)
        per_unit = (f["attention"] + f["mlp"]) / 2  # attention and MLP units alternate; average
        return dense / (dense - dropped * per_unit + dropped * 2 * tokens * 2 * s.hidden * config.rank)
    return theoretical_speedup(core, config, tokens, sparsity, forecast=method != "skip")


def _export_routed(model, path: Path, export_onnx) -> None:  # type: ignore[no-untyped-def]
    import torch

    from routing.llama import INPUT_NAMES, OUTPUT_NAMES

    spec = model.spec
    batch, tokens, past = torch.export.Dim("batch"), torch.export.Dim("tokens"), torch.export.Dim("past")
    example = (torch.randint(0, spec.vocab, (2, 8)), torch.ones(2, 8, dtype=torch.long), torch.ones(2, 3, dtype=torch.long),
               torch.arange(3, 11).repeat(2, 1), torch.zeros(spec.layers, 2, spec.kv_heads, 3, spec.head_dim),
               torch.zeros(spec.layers, 2, spec.kv_heads, 3, spec.head_dim))
    shapes = ({0: batch, 1: tokens}, {0: batch, 1: tokens}, {0: batch, 1: past}, {0: batch, 1: tokens},
              {1: batch, 3: past}, {1: batch, 3: past})
    with torch.no_grad():
        export_onnx(model, example, path, INPUT_NAMES, OUTPUT_NAMES, shapes, optimize=False)


def saved_bench_file(name: str) -> Path:
    """Where a local model's last benchmark is kept: under the data folder, not inside the model's
    own folder, which may be read-only (a model added from a shared mount)."""
    from recommender import paths

    return paths.home_dir() / "benchmarks" / f"{name}.json"


def save_rows(rows: list[BenchRow], name: str) -> Path:
    """The model's last benchmark (the CLI and the GUI both write and show it)."""
    out = saved_bench_file(name)
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_name(out.name + ".partial")
    partial.write_text(json.dumps([r.as_json() for r in rows], indent=2) + "\n", encoding="utf-8")
    partial.replace(out)
    return out


def load_rows(name: str) -> list[BenchRow] | None:
    """The rows `save_rows` wrote, or None when there are none or they cannot be read (a benchmark
    is a record to show, never worth an error)."""
    try:
        return [BenchRow(**row) for row in json.loads(saved_bench_file(name).read_text(encoding="utf-8"))]
    except (OSError, ValueError, TypeError):
        return None


__all__ = ["METHODS", "SPARSITIES", "BenchRow", "OnnxTimer", "RoutingSetup", "bench_causal_lm", "calibration_texts", "load_rows", "prepare_routing", "save_rows", "saved_bench_file",
           "time_onnx", "time_torch"]
