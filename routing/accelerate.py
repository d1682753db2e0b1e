"""`lensroute models accelerate NAME`: a causal LM made faster by informed routing, installed as a
local model of its own, so it can join a pool beside the dense model it came from.

`lensroute models bench` measures what informed routing costs and gains; this keeps the result.
The forecasters and routers are trained as the bench trains them, at one sparsity, and the
capacity-capped routed graph (no data-dependent shapes, the dense graph's inputs and outputs) is
exported into a model folder with the base model's tokenizer and manifest. Once calibrated in a
pool, the router learns from measured answers whether the faster variant is good enough for a
query, and the cost weight λ trades the two: speed-up for quality, decided per query.

Capacity is ⌈(1 − s)·T⌉ tokens per unit, so a prompt read at once (prefill, scoring answer options)
runs fewer units, while a token decoded alone always runs them all: the gain is in reading. In a
batch, each row's own length sets its capacity, so padding never takes a real token's place and a
row's result does not depend on its batch-mates (the runtime batches answer options).
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from recommender.errors import NotFoundError, RuntimeUnavailableError, UsageError
from recommender.progress import NEVER_CANCELLED, CancelToken, Progress, SubProgress, no_progress
from routing.local_models import MANIFEST, LocalModel, get, installed, local_dir, valid_name

ACCELERATED = "accelerated"  # the manifest key that says a model is an accelerated variant


def default_name(base: str, sparsity: float) -> str:
    return f"{base}-informed-{round(sparsity * 100)}"


def _serving_class():  # type: ignore[no-untyped-def]
    """RoutedLlama whose capacity is counted per row from `token_mask` (made here: torch is
    imported only when a model is accelerated)."""
    from routing.informed import RoutedLlama

    class ServingRoutedLlama(RoutedLlama):
        def forward(self, input_ids, token_mask, past_mask, position_ids, past_key, past_value):  # type: ignore[no-untyped-def]
            self.score_mask = token_mask > 0  # padding never takes a real token's capacity
            try:
                return super().forward(input_ids, token_mask, past_mask, position_ids, past_key, past_value)
            finally:
                self.score_mask = None

    return ServingRoutedLlama


def accelerate_core(base: LocalModel, core, train_ids: list, test_ids: list, config, *, sparsity: float,  # type: ignore[no-untyped-def]
                    name: str, device: str = "cpu", prefill_tokens: int = 512, repeats: int = 5,
                    held_out_windows: int = 8, progress: Progress = no_progress,
                    cancel: CancelToken = NEVER_CANCELLED) -> LocalModel:
    """Train informed routing for `core` (the torch weights of `base`) at `sparsity`, export the
    routed graph beside `base`'s tokenizer as the local model `name`, and measure it: KL and top-1
    agreement with the dense model on held-out text, the graph's parity with torch and its
    prefill speed-up over `base`'s graph (paired medians, same process)."""
    from recommender.lens_export import export_onnx
    from routing.bench import OnnxTimer, _export_routed, configure, prepare_routing, quality

    if not 0 < sparsity < 1:
        raise UsageError("--sparsity must be above 0 and below 1 (0 is the dense model itself)")
    if not valid_name(name):
        raise UsageError(f"{name!r} is not a model name (letters, digits, . _ -; at most 100)")
    if any(m.name == name for m in installed()):
        raise UsageError(f"a local model named {name!r} exists; remove it first (lensroute models remove {name}) "
                         "or give --name")
    config = replace(config, sparsity=sparsity)
    setup = prepare_routing(core, train_ids, test_ids, config, device=device, held_out_windows=held_out_windows,
                            progress=SubProgress(progress, 0, 3, 4), cancel=cancel, model_class=_serving_class(),
                            forecasts=(True,))
    cancel.raise_if_cancelled()
    progress(3, 4, "exporting and measuring the routed graph")
    configure(setup, "informed", sparsity)
    measured = quality(setup.model, setup.dense_logits, setup.windows)
    staging = local_dir() / f".{name}.partial"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    try:
        model = setup.model.to("cpu")
        _export_routed(model, staging / "model.onnx", export_onnx)
        for extra in ("tokenizer.json", "tokenizer_config.json"):
            if (base.path / extra).is_file():
                shutil.copy2(base.path / extra, staging / extra)
        parity = _parity(model, staging / "model.onnx", setup.windows[0])
        timed = _prefill_speedup(OnnxTimer, base, staging / "model.onnx", core.spec, min(prefill_tokens, base.max_length),
                                 repeats)
        manifest = {key: value for key, value in base.manifest.items() if key != "check"}
        manifest.update({
            "name": name,
            "check": {"max_abs_logit_diff_vs_torch": parity},
            ACCELERATED: {
                "base": base.name, "method": "informed", "sparsity": sparsity,
                "kl": round(measured["kl"], 4), "top1": round(measured["top1"], 4),
                "prefill_tokens": timed["tokens"], "prefill_speedup": timed["speedup"],
                "lff_steps": config.lff_steps, "router_steps": config.router_steps, "rank": config.rank,
                "built_at": datetime.now(UTC).isoformat(timespec="seconds"),
            },
        })
        (staging / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
        target = local_dir() / name
        shutil.rmtree(target, ignore_errors=True)
        os.replace(staging, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)  # gone already when it was installed
    progress(4, 4, "done")
    return get(name)


def _parity(model, path: Path, window) -> float:  # type: ignore[no-untyped-def]
    """The exported graph's largest logit difference from the torch model it came from."""
    import torch

    from recommender.onnx_session import create_session
    from routing.informed import _inputs
    from routing.llama import INPUT_NAMES

    inputs = _inputs(model, window[:1].to("cpu"))
    with torch.no_grad():
        expected = model(*inputs)[0].numpy()
    session, _ = create_session(path, device="cpu")
    got = session.run(["logits"], {n: t.numpy() for n, t in zip(INPUT_NAMES, inputs, strict=True)})[0]
    return float(np.abs(got - expected).max())


def _prefill_speedup(timer_class, base: LocalModel, path: Path, spec, tokens: int, repeats: int) -> dict:  # type: ignore[no-untyped-def]
    """Prefill of `tokens` tokens, base graph and routed graph alternately (paired medians)."""
    dense = timer_class(base.path / "model.onnx", spec, "cpu")
    routed = timer_class(path, spec, "cpu")
    dense_ms, routed_ms = [], []
    for _ in range(max(repeats, 1)):
        dense_ms.append(dense.prefill((tokens,), 1)[str(tokens)])
        routed_ms.append(routed.prefill((tokens,), 1)[str(tokens)])
    return {"tokens": tokens, "speedup": round(float(np.median(dense_ms) / np.median(routed_ms)), 3)}


def accelerate(name: str, *, sparsity: float = 0.25, new_name: str | None = None, config=None,  # type: ignore[no-untyped-def]
               calibration: Path | None = None, device: str = "cpu", progress: Progress = no_progress,
               cancel: CancelToken = NEVER_CANCELLED) -> LocalModel:
    """Accelerate an installed causal LM whose torch weights lensroute can load (the built-in
    SmolLM2: its GGUF is de-quantised as the build does), calibrated on the shared routing
    prompts' training split and measured on their test split, as `models bench` is."""
    from routing.bench import calibration_texts
    from routing.builtins import SMOLLM_NAME, load_smollm_torch
    from routing.informed import RoutingConfig
    from routing.llama import from_hf

    base = get(name)
    if base.kind != "causal-lm":
        raise UsageError(f"{name} is an {base.kind} model: informed routing here accelerates causal LMs")
    if ACCELERATED in base.manifest:
        raise UsageError(f"{name} is already an accelerated variant of {base.manifest[ACCELERATED]['base']}")
    if name != SMOLLM_NAME:
        raise RuntimeUnavailableError(f"accelerating needs the model's torch weights; only the built-in {SMOLLM_NAME} "
                                      "has them here")
    progress(0, 4, "loading the dense model")
    try:
        hf, tokenizer = load_smollm_torch()
    except (OSError, ImportError) as exc:
        raise NotFoundError(f"the torch weights of {name} could not be loaded: {exc}") from exc
    core = from_hf(hf)
    train_ids = [tokenizer(t)["input_ids"] for t in calibration_texts("train", 4000, calibration)]
    test_ids = [tokenizer(t)["input_ids"] for t in calibration_texts("test", 1000, calibration)]
    cancel.raise_if_cancelled()
    return accelerate_core(base, core, train_ids, test_ids, config or RoutingConfig(), sparsity=sparsity,
                           name=new_name or default_name(name, sparsity), device=device,
                           progress=SubProgress(progress, 0, 4, 4), cancel=cancel)
