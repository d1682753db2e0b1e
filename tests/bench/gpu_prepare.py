"""Prepare the inputs of `gpu_bench.py` for a lent GPU machine that cannot reach the internet and
lacks some of our dependencies (onnxruntime-gpu, gguf, polars, SQLAlchemy).

    .venv/bin/python tests/bench/gpu_prepare.py --ort-wheel WHEEL | --ort-site ORT.tar.xz [--out .devcarry] [--chunk-mb 56]

WHEEL: onnxruntime-gpu for the device's Python 3.12 and CUDA 13, fetched here with
    pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
        --platform manylinux_2_28_x86_64 -d DIR onnxruntime-gpu==1.31.1
It is unpacked without what the run never loads (the TensorRT provider, the transformers,
quantization and tools subpackages) and packed again as tar.xz: 256 MB as a wheel, 202 MB so.

Writes into OUT (ignored by git):
  payload/tokens.npz        SmolLM token ids of the routing prompts (train and test splits)
  payload/space.pkl         the catalogue's prepared LensSpace and ranking groups (LENSROUTE_HOME's)
  payload/ranker/           the trained ranker folder (without lens.pt)
  payload/SmolLM2-*.gguf    the quantised weights (the only compact copy of them)
  payload/wheels/           the gguf package
then the payload as one tar.xz split into p1 … pA, and the onnxruntime-gpu tar.xz (the wheel
unpacked: CUDA 13, Python 3.12) split into p(A+1) … pN, each at most CHUNK_MB, so every device call
carries one folder under the 64 MiB limit; `manifest` says A and N. tests/bench/gpu_run.sh makes
the calls: the benchmark starts once the payload is there, while onnxruntime-gpu still travels.
"""

from __future__ import annotations

import argparse
import pickle
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))


def token_ids(out: Path) -> None:
    from transformers import AutoTokenizer

    from routing.bench import calibration_texts
    from routing.builtins import SMOLLM_GGUF, smollm_package_dir

    tokenizer = AutoTokenizer.from_pretrained(str(smollm_package_dir()), gguf_file=SMOLLM_GGUF)
    arrays = {}
    for split, limit in (("train", 4000), ("test", 1000)):
        ids = [tokenizer(t)["input_ids"] for t in calibration_texts(split, limit)]
        arrays[f"{split}_flat"] = np.array([t for row in ids for t in row], np.int32)
        arrays[f"{split}_lengths"] = np.array([len(row) for row in ids], np.int32)
    np.savez_compressed(out / "tokens.npz", **arrays)


def space(out: Path) -> None:
    from recommender.pipeline import prepare
    from recommender.store import Store

    store = Store.open()
    prepared_space, groups, data = prepare(store)
    with (out / "space.pkl").open("wb") as f:
        pickle.dump({"space": prepared_space, "groups": groups, "data": data}, f, protocol=pickle.HIGHEST_PROTOCOL)


def split_into_parts(blob: Path, out: Path, first: int, chunk_mb: int) -> int:
    """Cut blob into equal parts p{first}, p{first+1}, … of at most chunk_mb MiB; the number made."""
    size = blob.stat().st_size
    count = -(-size // (chunk_mb * 1024 * 1024))
    each = -(-size // count)
    with blob.open("rb") as f:
        for k in range(count):
            (out / f"p{first + k}").mkdir()
            (out / f"p{first + k}" / "part").write_bytes(f.read(each))
    return count


def ort_site_from_wheel(wheel: Path, out: Path) -> Path:
    """The wheel unpacked, trimmed to what the run loads, as one tar.xz (smaller than the wheel)."""
    import zipfile

    site = out / "ort-site"
    with zipfile.ZipFile(wheel) as archive:
        archive.extractall(site)
    for unused in ("onnxruntime/transformers", "onnxruntime/quantization", "onnxruntime/tools"):
        shutil.rmtree(site / unused, ignore_errors=True)
    for library in site.glob("onnxruntime/capi/libonnxruntime_providers_tensorrt.so"):
        library.unlink()
    target = out / "ort-site.tar.xz"
    with target.open("wb") as f:
        tar = subprocess.Popen(["tar", "-C", str(site), "-cf", "-", "."], stdout=subprocess.PIPE)
        subprocess.run(["xz", "-9e", "-T0"], stdin=tar.stdout, stdout=f, check=True)
        if tar.wait():
            raise SystemExit("tar of onnxruntime-gpu failed")
    shutil.rmtree(site)
    return target


def main() -> None:
    parser = argparse.ArgumentParser()
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--ort-wheel", type=Path, help="the onnxruntime-gpu wheel (cp312, CUDA 13)")
    source.add_argument("--ort-site", type=Path, help="tar.xz of the unpacked onnxruntime-gpu wheel")
    parser.add_argument("--out", type=Path, default=REPO / ".devcarry")
    parser.add_argument("--chunk-mb", type=int, default=56)
    args = parser.parse_args()
    from recommender.ranker import find_ranker_dir
    from routing.builtins import SMOLLM_GGUF, smollm_package_dir

    payload = args.out / "payload"
    shutil.rmtree(args.out, ignore_errors=True)
    (payload / "wheels").mkdir(parents=True)
    token_ids(payload)
    space(payload)
    shutil.copytree(find_ranker_dir(None), payload / "ranker", ignore=shutil.ignore_patterns("lens.pt"))
    shutil.copy(smollm_package_dir() / SMOLLM_GGUF, payload / SMOLLM_GGUF)
    subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary=:all:", "-d",
                    str(payload / "wheels"), "gguf==0.19.0"], check=True)
    blob = args.out / "payload.tar.xz"
    with blob.open("wb") as f:
        tar = subprocess.Popen(["tar", "-C", str(args.out), "-cf", "-", "payload"], stdout=subprocess.PIPE)
        subprocess.run(["xz", "-6", "-T0"], stdin=tar.stdout, stdout=f, check=True)
        if tar.wait():
            raise SystemExit("tar of the payload failed")
    shutil.rmtree(payload)
    payload_parts = split_into_parts(blob, args.out, 1, args.chunk_mb)
    blob.unlink()
    ort_site = args.ort_site or ort_site_from_wheel(args.ort_wheel, args.out)
    ort_parts = split_into_parts(ort_site, args.out, payload_parts + 1, args.chunk_mb)
    if args.ort_wheel:
        ort_site.unlink()
    total = payload_parts + ort_parts
    (args.out / "manifest").write_text(f"payload_parts={payload_parts}\nparts={total}\n")
    print(f"{total} parts in {args.out}: the payload in p1..p{payload_parts}, onnxruntime-gpu in p{payload_parts + 1}..p{total}")


if __name__ == "__main__":
    main()
