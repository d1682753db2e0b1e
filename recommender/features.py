"""The views ModelLens sees of a model and of a dataset, computed the same way in training and at
ranking time (so an unseen model from a candidates file gets exactly the features a catalogued one
would have).

Model views: learned id, hashed character/word n-grams of the name, a frozen embedding of a text
description composed from its metadata, a size bucket, a family. Dataset views: learned id, a
frozen embedding of its description (name + task when it has none), task and metric.
"""

from __future__ import annotations

import math
import re
import zlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np

from recommender.normalise import family_from_name

NAME_BUCKETS = 1 << 15
# log10(parameters) bucket edges: <30M, <100M, <300M, <1B, <3B, <10B, <30B, <100B, >=100B
_SIZE_EDGES = (7.5, 8.0, 8.5, 9.0, 9.5, 10.0, 10.5, 11.0)
N_SIZE_BUCKETS = len(_SIZE_EDGES) + 2  # + unknown (0)
_WORD = re.compile(r"[a-z0-9]+")


def size_bucket(n_parameters: float | int | None) -> int:
    """0 = unknown; 1.. = increasing log-size buckets."""
    if n_parameters is None or not isinstance(n_parameters, int | float) or n_parameters <= 0 or math.isnan(n_parameters):
        return 0
    log = math.log10(n_parameters)
    return 1 + sum(log >= edge for edge in _SIZE_EDGES)


def name_ngram_ids(name: str, buckets: int = NAME_BUCKETS) -> list[int]:
    """Hashed character 3/4-grams and word tokens of a model name (crc32: stable across runs)."""
    lowered = name.lower()
    org, _, bare = lowered.rpartition("/")
    grams = [f"w:{word}" for word in _WORD.findall(bare)]
    if org:
        grams.append(f"org:{org}")
    padded = f"^{bare}$"
    for n in (3, 4):
        grams.extend(f"c{n}:{padded[i:i + n]}" for i in range(len(padded) - n + 1))
    return sorted({zlib.crc32(g.encode()) % buckets for g in grams}) or [0]


LOG_PARAMS_CENTRE, LOG_PARAMS_SCALE = 8.5, 1.5  # ~300M parameters; one unit ≈ 30x


def log_params(n_parameters: float | int | None) -> tuple[float, float]:
    """(standardised log10 parameters, known flag); (0, 0) when the size is unknown."""
    if n_parameters is None or not isinstance(n_parameters, int | float) or n_parameters <= 0 or math.isnan(n_parameters):
        return 0.0, 0.0
    return (math.log10(n_parameters) - LOG_PARAMS_CENTRE) / LOG_PARAMS_SCALE, 1.0


N_SIZE_NUMERIC = 6  # the size columns: what the scorer's first layer sees
RELEASE_COLUMN = 6  # the release time: only the prior's per-task "newer is better" slope sees it
N_NUMERIC = 7
RELEASE_CENTRE, RELEASE_SCALE = 2024.0, 1.5  # years


def release_years(release_date: str | None) -> float:
    """Standardised release time in years; 0, the centre, when the date is unknown or unreadable
    (the prior's recency term then adds nothing). Within one size, newer models tend to do better,
    which name, family and size do not say."""
    if not release_date or not isinstance(release_date, str):
        return 0.0
    parts = release_date.strip()[:10].split("-")
    try:
        year = int(parts[0])
        month = int(parts[1]) if len(parts) > 1 else 7
        day = int(parts[2]) if len(parts) > 2 else 15
    except ValueError:
        return 0.0
    if not (1990 <= year <= 2100 and 1 <= month <= 12 and 1 <= day <= 31):
        return 0.0
    return (year + (month - 1) / 12 + (day - 1) / 365 - RELEASE_CENTRE) / RELEASE_SCALE


def _log_feature(value: object, centre: float, scale: float) -> tuple[float, float]:
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0 or math.isnan(value):
        return 0.0, 0.0
    return (math.log10(value) - centre) / scale, 1.0


def _flatten(extra: dict) -> dict:
    flat: dict[str, object] = {}
    for key, value in extra.items():
        if isinstance(value, dict):
            flat.update({k: v for k, v in value.items() if k not in flat})
        else:
            flat.setdefault(key, value)
    return flat


def model_numeric(n_parameters: float | int | None, extra: dict, release_date: str | None = None) -> list[float]:
    """Standardised log sizes with known flags: parameters, embedding width, context length (for
    embedding models width and context mark the large LLM-based generation apart); then the
    release time (`release_years`)."""
    flat = _flatten(extra)
    return [*log_params(n_parameters), *_log_feature(flat.get("embed_dim"), 2.9, 0.4),
            *_log_feature(flat.get("max_tokens"), 3.2, 0.8), release_years(release_date)]


def _human_size(n: float) -> str:
    for unit, scale in (("trillion", 1e12), ("billion", 1e9), ("million", 1e6), ("thousand", 1e3)):
        if n >= scale:
            return f"{n / scale:.3g} {unit}"
    return str(int(n))


def _listed(values: object, limit: int = 12) -> str:
    if isinstance(values, list | tuple):
        return ", ".join(str(v) for v in values[:limit])
    return str(values)


def model_text(name: str, family: str | None, n_parameters: float | None, licence: str | None,
               description: str | None, extra: dict) -> str:
    """A description of a model in words, from whatever metadata exists (the frozen text view)."""
    parts = [name]
    if description:
        parts.append(description)
    if family:
        parts.append(f"Family: {family}.")
    if n_parameters:
        parts.append(f"{_human_size(float(n_parameters))} parameters.")
    flat = _flatten(extra)
    for key, label in (("model_type", "Type"), ("adapted_from", "Adapted from"), ("embed_dim", "Embedding dimension"),
                       ("max_tokens", "Context tokens"), ("open_weights", "Open weights"), ("architecture", "Architecture"), ("pipeline_tag", "Pipeline"),
                       ("modalities", "Modalities"), ("languages", "Languages"), ("framework", "Framework"),
                       ("display_name", "Also known as"), ("library_name", "Library")):
        if flat.get(key):
            parts.append(f"{label}: {_listed(flat[key])}.")
    if licence:
        parts.append(f"Licence: {licence}.")
    return " ".join(parts)


def dataset_text(name: str, task: str | None, description: str | None, extra: dict) -> str:
    parts = [f"{name}. {task or 'unknown'} task."]
    if description:
        parts.append(description.strip())
    for key, label in (("domains", "Domains"), ("eval_langs", "Languages"), ("modalities", "Modalities"),
                       ("task_subtypes", "Subtypes"), ("category", "Category")):
        if extra.get(key):
            parts.append(f"{label}: {_listed(extra[key])}.")
    return " ".join(parts)


@dataclass
class Vocabulary:
    """String → index with 0 reserved for unknown (new datasets, new models, unseen tasks)."""

    items: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._index = {item: i + 1 for i, item in enumerate(self.items)}

    @classmethod
    def build(cls, values: Iterable[str | None]) -> Vocabulary:
        return cls(sorted({v for v in values if v}))

    def __len__(self) -> int:
        return len(self.items) + 1

    def index(self, value: str | None) -> int:
        return self._index.get(value, 0) if value else 0

    def indices(self, values: Sequence[str | None]) -> np.ndarray:
        return np.array([self.index(v) for v in values], dtype=np.int64)


@dataclass
class ModelViews:
    """Per-model arrays, row i = model i of the catalogue model table (row 0 = the UNK model)."""

    names: list[str]
    size: np.ndarray  # int64 [N]
    family: np.ndarray  # int64 [N]
    ngram_ids: np.ndarray  # int64 [total]
    ngram_offsets: np.ndarray  # int64 [N]
    text: np.ndarray  # float32 [N, 384]


def ngram_bags(names: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    ids: list[int] = []
    offsets = []
    for name in names:
        offsets.append(len(ids))
        ids.extend(name_ngram_ids(name))
    return np.array(ids, dtype=np.int64), np.array(offsets, dtype=np.int64)


def model_views(names: Sequence[str], families: Sequence[str | None], sizes: Sequence[float | None],
                texts: np.ndarray, family_vocab: Vocabulary) -> ModelViews:
    ids, offsets = ngram_bags(names)
    resolved = [f or family_from_name(n) for n, f in zip(names, families, strict=True)]
    return ModelViews(
        names=list(names),
        size=np.array([size_bucket(s) for s in sizes], dtype=np.int64),
        family=family_vocab.indices(resolved),
        ngram_ids=ids,
        ngram_offsets=offsets,
        text=texts.astype(np.float32),
    )
