"""One prepared run on a lent GPU machine: every figure the issues ask for on CUDA, each next to a
baseline measured in the same process on the same machine.

    python3 tests/bench/gpu_bench.py --payload DIR --out DIR [--budget-s 480]

DIR holds what `gpu_prepare.py` packed (token ids, prepared catalogue space, ranker, the SmolLM
GGUF). Sections, each saved to OUT/gpu_bench.json as soon as it ends, so a late failure keeps the
earlier ones:
  ranking    50,000-model ranking: ORT CUDA with IOBinding vs ORT CPU (same ranker, same queries)
  training   recommender training rows/s: torch CUDA vs torch CPU, same epochs and seed
  routing    SmolLM2 informed routing trained on CUDA; quality (KL, top-1) of every method at
             every sparsity; prefill/decode timings in torch CUDA for every method, and in ONNX
             Runtime (CUDA with IOBinding, and CPU) for dense and informed routing
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import statistics
import sys
import tempfile
import time
import traceback
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

import torch  # noqa: E402  (loads the CUDA libraries onnxruntime-gpu needs, before any session)

STARTED = time.perf_counter()
DEVICE = "cuda"  # set from --device
ROUTING: dict = {}  # the routing section's trained model, for the ONNX section


def elapsed() -> float:
    return time.perf_counter() - STARTED


def log(message: str) -> None:
    print(f"[{elapsed():6.1f}s] {message}", flush=True)


# --- ranking ---------------------------------------------------------------------------------------


def ranking_section(payload: Path, results: dict) -> None:
    from recommender.ranker import Ranker
    from tests.bench.bench_ranker import DESCRIPTION, scale_ranker

    rng = np.random.default_rng(0)
    queries = [rng.normal(size=384).astype(np.float32) for _ in range(30)]  # stand-ins for description embeddings
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "ranker"
        scale_ranker(payload / "ranker", folder, 50_000)
        out = {}
        tops = {}
        for device in dict.fromkeys((DEVICE, "cpu")):
            ranker = Ranker.load(folder, device=device)
            def once(i: int, ranker=ranker):  # type: ignore[no-untyped-def]
                return ranker.rank(DESCRIPTION.format(i=i), task="Retrieval", metric="ndcg_at_10", top_k=50,
                                   all_models=True, query_vector=queries[i % len(queries)])
            once(0)
            times = []
            for i in range(len(queries)):
                started = time.perf_counter()
                ranking = once(i)
                times.append((time.perf_counter() - started) * 1000)
            tops[device] = [r.model for r in ranking.results]
            # the scorer alone (what IOBinding changes), on the same evidence and query
            out[device] = {"provider": ranker.session_info.provider, "rank_median_ms": round(statistics.median(times), 2),
                           "rank_p90_ms": round(sorted(times)[int(0.9 * len(times))], 2),
                           "candidates": ranking.query["candidates"]}
            log(f"ranking {device}: {out[device]}")
        out["cpu_over_device"] = round(out["cpu"]["rank_median_ms"] / out[DEVICE]["rank_median_ms"], 2)
        out["top50_overlap"] = len(set(tops[DEVICE]) & set(tops["cpu"]))
        out["identical_top10"] = tops[DEVICE][:10] == tops["cpu"][:10]
        results["ranking"] = out


def scorer_section(payload: Path, results: dict) -> None:
    """The scorer call alone over 50,000 rows: numpy in/out vs IOBinding (GPU.md's probe shape)."""
    import onnxruntime as ort

    from recommender.onnx_session import create_session
    from recommender.ranker import Ranker

    with tempfile.TemporaryDirectory() as tmp:
        from tests.bench.bench_ranker import scale_ranker

        folder = Path(tmp) / "ranker"
        scale_ranker(payload / "ranker", folder, 50_000)
        ranker = Ranker.load(folder, device="cuda")
        width = next(i.shape[1] for i in ranker.scorer.get_inputs() if i.name == "evidence")
        evidence = np.random.default_rng(0).normal(size=(len(ranker.h), width)).astype(np.float32)
        fixed = {"dataset_id": np.array([0], np.int64), "dataset_text": np.zeros((1, 384), np.float32),
                 "task": np.array([1], np.int64), "metric": np.array([1], np.int64)}
        feeds = {"h": ranker.h, "u": ranker.u, "size": ranker.size, "family": ranker.family, "numeric": ranker.numeric,
                 "evidence": evidence, **fixed}
        out = {}
        for device in ("cuda", "cpu"):
            session, _ = create_session(folder / "scorer.onnx", device=device)
            session.run(None, feeds)
            times = []
            for _ in range(20):
                started = time.perf_counter()
                session.run(None, feeds)
                times.append((time.perf_counter() - started) * 1000)
            out[f"{device}_numpy_io_ms"] = round(statistics.median(times), 3)
        device_arrays = ranker._device_arrays
        binding_times = []
        ev = ort.OrtValue.ortvalue_from_numpy(evidence, "cuda", 0)
        for _ in range(21):
            binding = ranker.scorer.io_binding()
            for name, value in device_arrays.items():
                binding.bind_ortvalue_input(name, value)
            binding.bind_ortvalue_input("evidence", ev)
            for name, value in fixed.items():
                binding.bind_cpu_input(name, value)
            binding.bind_output("score", "cuda")
            started = time.perf_counter()
            ranker.scorer.run_with_iobinding(binding)
            binding_times.append((time.perf_counter() - started) * 1000)
        out["cuda_iobinding_all_on_device_ms"] = round(statistics.median(binding_times[1:]), 3)
        results["scorer_50k"] = out
        log(f"scorer: {out}")


# --- training --------------------------------------------------------------------------------------


def training_section(payload: Path, results: dict, epochs: int) -> None:
    from dataclasses import replace

    from recommender.splits import make_split
    from recommender.training import TrainConfig, train

    with (payload / "space.pkl").open("rb") as f:
        saved = pickle.load(f)
    space, groups = saved["space"], saved["groups"]
    split = make_split(space, groups, "new-dataset", seed=0, test_share=0.10)
    out: dict = {"data": {k: v for k, v in saved["data"].items() if k != "metric_higher"}, "epochs": epochs}
    for device in dict.fromkeys((DEVICE, "cpu")):
        config = replace(TrainConfig(), epochs=epochs, patience=epochs + 1, device=device)
        result = train(space, split.train, split.val, config, unknown_datasets=True)
        out[device] = {"rows_seen": result.rows_seen, "seconds": round(result.seconds, 2),
                       "rows_per_second": round(result.rows_seen / result.seconds), "best_val_tau_w": round(result.best_val_tau, 4)}
        log(f"training {device}: {out[device]}")
    out["device_over_cpu"] = round(out[DEVICE]["rows_per_second"] / out["cpu"]["rows_per_second"], 2)
    results["training"] = out


# --- informed routing ----------------------------------------------------------------------------------


def load_tokens(payload: Path) -> tuple[list, list]:
    with np.load(payload / "tokens.npz") as data:
        def split(name: str) -> list:
            flat, lengths = data[f"{name}_flat"], data[f"{name}_lengths"]
            return [row.tolist() for row in np.split(flat, np.cumsum(lengths)[:-1])]
        return split("train"), split("test")


def routing_section(payload: Path, results: dict, args: argparse.Namespace) -> None:
    from transformers import AutoModelForCausalLM

    from routing.bench import (
        _theory,
        configure,
        measure_quality,
        prepare_routing,
        time_torch,
        variants,
    )
    from routing.builtins import SMOLLM_GGUF, SMOLLM_NAME
    from routing.informed import RoutingConfig
    from routing.llama import from_hf

    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True
    hf = AutoModelForCausalLM.from_pretrained(str(payload), gguf_file=SMOLLM_GGUF).eval()
    device = args.device
    core = from_hf(hf).to(device)
    del hf
    log("SmolLM loaded on CUDA")
    train_ids, test_ids = load_tokens(payload)
    config = RoutingConfig(lff_steps=args.lff_steps, router_steps=args.router_steps, batch=args.batch, seq_len=args.seq_len)
    started = time.perf_counter()
    setup = prepare_routing(core, train_ids, test_ids, config, device=device, held_out_windows=args.held_out_windows)
    train_seconds = time.perf_counter() - started
    out: dict = {"model": SMOLLM_NAME, "config": config.as_dict(), "train_seconds": round(train_seconds, 1),
                 "router_history_tail": {k: v[-3:] for k, v in setup.history.items() if k != "lff"},
                 "lff_curve": [round(x, 4) for x in setup.history["lff"][:: max(1, len(setup.history["lff"]) // 10)]],
                 "rows": []}
    log(f"routing trained in {train_seconds:.0f}s")
    lengths = (128, 512)
    dense_torch = None
    for method, sparsity in variants(tuple(args.sparsities)):
        quality = measure_quality(setup, method, sparsity)
        configure(setup, method, sparsity)
        prefill, decode = time_torch(setup.model, lengths, 16, 10)
        batched, _ = time_torch(setup.model, (512,), 1, 5, batch=args.torch_batch)
        if method == "dense":
            dense_torch = (prefill, batched)
        row = {"model": SMOLLM_NAME, "method": method, "sparsity": sparsity, "provider": f"torch-{device}", "quality": quality,
               "prefill_ms": prefill, f"prefill_ms_batch{args.torch_batch}_T512": batched["512"], "decode_ms": decode,
               "speedup": round(dense_torch[0]["512"] / prefill["512"], 3),
               f"speedup_batch{args.torch_batch}": round(dense_torch[1]["512"] / batched["512"], 3),
               "theoretical_speedup": 1.0 if method == "dense" else round(_theory(setup.model, config, 512, sparsity, method, setup.errors), 3)}
        out["rows"].append(row)
        log(f"{method} {sparsity}: {quality} prefill {prefill} b16 {batched} decode {decode}")
    results["routing"] = out
    ROUTING.update(setup=setup, core=core, config=config, rows=out["rows"])


def routing_onnx_section(results: dict, out_dir: Path, args: argparse.Namespace) -> None:
    """The routed graphs exported from the routing section's trained model, run on ONNX Runtime."""
    if not ROUTING:
        raise RuntimeError("the routing section did not finish, so there is no trained model to export")
    setup, core, config, device = ROUTING["setup"], ROUTING["core"], ROUTING["config"], args.device
    onnx_rows: list[dict] = []
    with tempfile.TemporaryDirectory() as tmp:
        dense_ms: dict = {}
        for method, sparsity in args.onnx_variants:
            if elapsed() > args.budget_s:
                log("budget spent: skipping the remaining ONNX variants")
                break
            try:
                onnx_rows.extend(onnx_variant_rows(setup, core, config, method, sparsity, Path(tmp), ROUTING["rows"], dense_ms, device))
            except Exception as exc:  # one variant failing to export or run must not lose the others
                onnx_rows.append({"method": method, "sparsity": sparsity, "error": f"{type(exc).__name__}: {str(exc)[:400]}"})
                traceback.print_exc()
            for extra in Path(tmp).iterdir():
                extra.unlink()
            results["routing_onnx"] = onnx_rows
            save(results, out_dir)


def onnx_variant_rows(setup, core, config, method: str, sparsity: float, tmp: Path, torch_rows: list,  # type: ignore[no-untyped-def]
                      dense_ms: dict, device: str) -> list[dict]:
    """Export one variant, time it on the device's provider and on the CPU one, and compare their
    logits on one prompt (the same graph must compute the same function on both providers)."""
    from routing.bench import OnnxTimer, _theory, export_variant
    from routing.builtins import SMOLLM_NAME

    lengths = (128, 512)
    started = time.perf_counter()
    path = export_variant(setup, core, method, sparsity, tmp)
    export_s = time.perf_counter() - started
    rows, logits = [], {}
    for where in dict.fromkeys((device, "cpu")):
        timer = OnnxTimer(path, core.spec, where)
        repeats = 10 if timer.where == "cuda" else 3
        prefill = timer.prefill(lengths, repeats)
        decode = timer.decode(lengths[0], 16, repeats)
        batched = timer.prefill((512,), max(2, repeats // 2), batch=args_batch(device))["512"]
        logits[timer.provider] = timer._run(timer._prefill_feeds(128, 1))[0].numpy()
        if method == "dense":
            dense_ms[timer.provider] = (prefill, batched)
        base, base_batched = dense_ms.get(timer.provider, (prefill, batched))
        rows.append({"model": SMOLLM_NAME, "method": method, "sparsity": sparsity, "provider": timer.provider,
                     "quality": next(r["quality"] for r in torch_rows if r["method"] == method and r["sparsity"] == sparsity),
                     "prefill_ms": prefill, "decode_ms": decode, f"prefill_ms_batch{args_batch(device)}_T512": batched,
                     "speedup": round(base["512"] / prefill["512"], 3),
                     f"speedup_batch{args_batch(device)}": round(base_batched / batched, 3),
                     "theoretical_speedup": 1.0 if method == "dense" else round(_theory(setup.model, config, 512, sparsity, method, setup.errors), 3),
                     "export_s": round(export_s, 1)})
        log(f"onnx {method} {sparsity} {timer.provider}: prefill {prefill} b{args_batch(device)} {batched} decode {decode}")
    if len(logits) == 2:
        a, b = logits.values()
        parity = {"max_abs_logit_diff": float(np.abs(a - b).max()), "logit_scale": float(np.abs(b).max()),
                  "top1_agreement": float((a.argmax(-1) == b.argmax(-1)).mean())}
        for row in rows:
            row["cuda_vs_cpu"] = parity
        log(f"onnx {method} {sparsity} CUDA vs CPU: {parity}")
    return rows


def args_batch(device: str) -> int:
    """Batch of the batched prefill timing: a GPU needs a batch to fill it; the CPU does not."""
    return 16 if device == "cuda" else 2


def onnxruntime_section(results: dict, args: argparse.Namespace) -> None:
    """Import onnxruntime-gpu, waiting first for it to be unpacked when it travels in later calls
    (the torch sections run meanwhile). The image's own CPU-only onnxruntime must not be the one
    imported, so the GPU build's folder goes first on the path and the import is checked."""
    import importlib

    if args.ort_flag:
        log(f"waiting for {args.ort_flag}")
        while not args.ort_flag.exists():
            time.sleep(1)
    if args.ort_site:
        if "onnxruntime" in sys.modules:
            raise RuntimeError("onnxruntime was imported before the GPU build arrived")
        sys.path.insert(0, str(args.ort_site))
        importlib.invalidate_caches()
    import onnxruntime as ort

    results.update(onnxruntime=ort.__version__, onnxruntime_path=str(Path(ort.__file__).parent),
                   ort_providers=ort.get_available_providers())
    log(f"onnxruntime {ort.__version__} from {Path(ort.__file__).parent}: {ort.get_available_providers()}")


def save(results: dict, out_dir: Path) -> None:
    results["elapsed_s"] = round(elapsed(), 1)
    (out_dir / "gpu_bench.json").write_text(json.dumps(results, indent=2, default=str) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--payload", type=Path, required=True)
    parser.add_argument("--out", type=Path, default=Path(os.environ.get("OUT", ".")))
    parser.add_argument("--budget-s", type=float, default=480)
    parser.add_argument("--sections", default="training,routing,onnxruntime,ranking,scorer,routing_onnx")
    parser.add_argument("--ort-site", type=Path, help="where onnxruntime-gpu is unpacked (it may arrive while the torch sections run)")
    parser.add_argument("--ort-flag", type=Path, help="a file that appears once --ort-site is complete")
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--lff-steps", type=int, default=300)
    parser.add_argument("--router-steps", type=int, default=200)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--seq-len", type=int, default=256)
    parser.add_argument("--sparsities", type=float, nargs="+", default=[0.125, 0.25, 0.375, 0.5])
    parser.add_argument("--torch-batch", type=int, default=16)
    parser.add_argument("--held-out-windows", type=int, default=16)
    parser.add_argument("--onnx-variants", default="dense:0,informed:0.25,informed:0.5")
    parser.add_argument("--device", default="cuda", help="cpu only for a dry run of this script")
    args = parser.parse_args()
    args.onnx_variants = [(m, float(s)) for m, s in (v.split(":") for v in args.onnx_variants.split(",") if v)]
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "pid").write_text(f"{os.getpid()}\n")  # gpu_run.sh waits on it
    global DEVICE
    DEVICE = args.device
    results: dict = {"device": torch.cuda.get_device_name() if torch.cuda.is_available() else "no CUDA device",
                     "torch": torch.__version__, "cpu_count": os.cpu_count(), "errors": {}}
    log(json.dumps(results))
    sections = {
        "onnxruntime": lambda: onnxruntime_section(results, args),
        "ranking": lambda: ranking_section(args.payload, results),
        "scorer": lambda: scorer_section(args.payload, results),
        "training": lambda: training_section(args.payload, results, args.epochs),
        "routing": lambda: routing_section(args.payload, results, args),
        "routing_onnx": lambda: routing_onnx_section(results, args.out, args),
    }
    for name in args.sections.split(","):
        log(f"section {name}")
        try:
            sections[name]()
        except Exception as exc:  # one broken section must not lose the others' figures
            results["errors"][name] = f"{type(exc).__name__}: {exc}"
            traceback.print_exc()
        save(results, args.out)
    log("done")


if __name__ == "__main__":
    main()
