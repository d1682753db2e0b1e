"""The tooling of a GPU run (tests/bench/gpu_prepare.py, gpu_run.sh): what travels in parts must
come back byte for byte, and each part must fit one call's carry. The run itself needs a lent GPU
machine and is never part of the suite."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import numpy as np
import pytest

from tests.bench.gpu_prepare import split_into_parts

REPO = Path(__file__).resolve().parents[1]


def _blob(path: Path, size: int) -> bytes:
    data = np.random.default_rng(0).integers(0, 256, size, dtype=np.uint8).tobytes()
    path.write_bytes(data)
    return data


def test_parts_are_equal_at_most_the_chunk_and_join_back(tmp_path: Path) -> None:
    data = _blob(tmp_path / "blob", 5 * 1024 * 1024 // 2 + 7)  # 2.5 MiB and a little
    out = tmp_path / "carry"
    out.mkdir()
    made = split_into_parts(tmp_path / "blob", out, 3, 1)
    assert made == 3
    sizes = [(out / f"p{k}" / "part").stat().st_size for k in (3, 4, 5)]
    assert max(sizes) <= 1024 * 1024 and max(sizes) - min(sizes) <= 7
    assert b"".join((out / f"p{k}" / "part").read_bytes() for k in (3, 4, 5)) == data
    assert not (out / "p6").exists() and not (out / "p2").exists()


def _path_without_xz(folder: Path) -> str:
    """A PATH with the tools gpu_run.sh uses but no xz (a bare machine may lack it)."""
    folder.mkdir()
    for tool in ("bash", "cat", "cp", "ls", "mkdir", "sed", "seq", "stat", "tail", "tar", "wc", "cut"):
        (folder / tool).symlink_to(shutil.which(tool))
    (folder / "python3").symlink_to(sys.executable)
    return str(folder)


@pytest.mark.parametrize("xz", [True, False], ids=["xz", "python-lzma"])
def test_gpu_run_receives_parts_into_its_folder_and_unpacks_the_payload(tmp_path: Path, xz: bool) -> None:
    """recv copies each carried part; joined, they are the xz'd tar, which start's first step unpacks
    (with xz where it is installed, else with Python's lzma)."""
    tree = tmp_path / "tree"
    (tree / ".devcarry").mkdir(parents=True)
    payload = tmp_path / "src" / "payload"
    payload.mkdir(parents=True)
    content = _blob(payload / "tokens.npz", 300_000)
    archive = tmp_path / "payload.tar.xz"
    with tarfile.open(archive, "w:xz", preset=1) as tar:
        tar.add(payload, arcname="payload")
    count = split_into_parts(archive, tree / ".devcarry", 1, 1)
    root = tmp_path / "root"
    env = {**os.environ, "GPU_RUN_ROOT": str(root), "OUT": str(tmp_path / "out")}
    if not xz:
        env["PATH"] = _path_without_xz(tmp_path / "bin")
    script = REPO / "tests" / "bench" / "gpu_run.sh"
    for k in range(1, count + 1):
        said = subprocess.run([shutil.which("bash"), str(script), "recv", str(k)], cwd=tree, env=env, capture_output=True, text=True, check=True)
        assert f"part {k}: " in said.stdout and f"{k} parts here" in said.stdout
    joined = b"".join((root / "parts" / str(k)).read_bytes() for k in range(1, count + 1))
    assert hashlib.sha256(joined).digest() == hashlib.sha256(archive.read_bytes()).digest()
    (tree / ".devcarry" / "manifest").write_text(f"payload_parts={count}\nparts={count}\n")
    subprocess.run([shutil.which("bash"), str(script), "unpack_payload"], cwd=tree, env=env, check=True)
    assert (root / "payload" / "tokens.npz").read_bytes() == content
