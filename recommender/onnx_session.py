"""The one ONNX Runtime session factory of the program.

CUDA is used when it is asked for (or `auto`) and actually works; otherwise the CPU provider, and
one log line says which provider a session got and, when CUDA was asked for, why it is not used.
`onnxruntime-gpu` runs on CPU too; on a machine without a GPU the CUDA provider is not even tried
in `auto` mode, so no noisy library-loading errors reach the user.
"""

from __future__ import annotations

import glob
import logging
import os
from dataclasses import dataclass
from pathlib import Path

from recommender.errors import RuntimeUnavailableError

log = logging.getLogger("lensroute.onnx")
DEVICES = ("auto", "cpu", "cuda")


@dataclass(frozen=True)
class SessionInfo:
    provider: str  # CUDAExecutionProvider | CPUExecutionProvider
    note: str  # why this provider, in words


def _gpu_present() -> bool:
    return bool(glob.glob("/dev/nvidia[0-9]*")) or bool(os.environ.get("LENSROUTE_FORCE_CUDA_PROBE"))


def preferred_provider(device: str = "auto") -> str:
    """The execution provider a session would get, without loading a model (for listings)."""
    import onnxruntime as ort

    cuda = "CUDAExecutionProvider" in ort.get_available_providers()
    if device == "cuda" or (device == "auto" and _gpu_present()):
        return "CUDAExecutionProvider" if cuda else "CPUExecutionProvider"
    return "CPUExecutionProvider"


def cpu_threads() -> int:
    configured = os.environ.get("LENSROUTE_THREADS")
    if configured and configured.isdigit():
        return max(1, int(configured))
    return max(1, os.cpu_count() or 1)


def create_session(path: str | Path, device: str = "auto", threads: int | None = None,  # type: ignore[no-untyped-def]
                   memory_arena: bool = True):
    """(InferenceSession, SessionInfo) for an ONNX file; raises RuntimeUnavailableError with a
    one-line reason for a missing or corrupt file."""
    import onnxruntime as ort

    if device not in DEVICES:
        raise RuntimeUnavailableError(f"unknown device {device!r}; use one of {', '.join(DEVICES)}")
    path = Path(path)
    if not path.is_file():
        raise RuntimeUnavailableError(f"ONNX file not found: {path}")
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads or cpu_threads()
    options.inter_op_num_threads = 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3
    # Without the arena, memory for large one-off batches is returned after the call instead of
    # being kept for reuse: right for sessions whose batch size varies wildly (the ranker).
    options.enable_cpu_mem_arena = memory_arena

    want_cuda = device == "cuda" or (device == "auto" and _gpu_present())
    reason = ""
    if want_cuda:
        if "CUDAExecutionProvider" not in ort.get_available_providers():
            reason = "this onnxruntime build has no CUDA provider"
        else:
            try:
                # torch (when installed) loads the CUDA libraries onnxruntime-gpu needs.
                if hasattr(ort, "preload_dlls"):
                    ort.preload_dlls()
                session = ort.InferenceSession(str(path), options, providers=["CUDAExecutionProvider", "CPUExecutionProvider"])
                if session.get_providers()[0] == "CUDAExecutionProvider":
                    info = SessionInfo("CUDAExecutionProvider", "CUDA")
                    log.info("onnxruntime: %s uses CUDAExecutionProvider", path.name)
                    return session, info
                reason = "the CUDA provider could not start (no usable GPU or CUDA libraries)"
            except Exception as exc:  # onnxruntime raises plain RuntimeError/Fail here
                reason = f"the CUDA provider failed: {str(exc).splitlines()[0][:160]}"
    elif device == "auto":
        reason = "no GPU found"
    try:
        session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    except Exception as exc:
        raise RuntimeUnavailableError(f"cannot load ONNX model {path}: {str(exc).splitlines()[0][:200]}") from exc
    note = f"CPU ({reason})" if reason else "CPU"
    level = logging.WARNING if device == "cuda" else logging.INFO
    log.log(level, "onnxruntime: %s uses CPUExecutionProvider%s", path.name, f"; CUDA not used: {reason}" if reason else "")
    return session, SessionInfo("CPUExecutionProvider", note)
