"""Serving: rank models for a described dataset with the exported ranker (ONNX Runtime only).

No torch and no polars on this path: a ranking loads the ranker folder, embeds the description
with the shared text encoder, computes every candidate's evidence view with vectorised numpy,
and scores all candidates in one ONNX Runtime call.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from functools import cached_property
from pathlib import Path

import numpy as np

from recommender import cold_prior, head_to_head, languages, paths, query_terms
from recommender.errors import (
    FormatError,
    NoDataError,
    NotFoundError,
    RuntimeUnavailableError,
    UsageError,
)
from recommender.evidence import N_CORE, relative_size
from recommender.features import (
    dataset_text,
    model_numeric,
    model_text,
    name_ngram_ids,
    size_bucket,
)
from recommender.measured import MeasuredResult, oriented
from recommender.model_filters import ModelFilter, normalise_licence
from recommender.normalise import (
    bare_key,
    close_names,
    family_from_name,
    fold_name,
    model_key,
    parameters_from_name,
)
from recommender.table_files import read_rows

RANKER_DIR_NAME = "ranker"
EVIDENCE_PER_RESULT = 3
SCORE_CHUNK = 16384
NEAR_MISSES_CHECKED = 20  # unseen candidates checked for a near-miss name (1–10 ms each on 6,124 names)


def _chunks(n: int, size: int) -> list[tuple[int, int]]:
    return [(s, min(s + size, n)) for s in range(0, max(n, 1), size)]


def user_ranker_dir() -> Path:
    return paths.models_dir() / RANKER_DIR_NAME


def bundled_ranker_dir() -> Path:
    return paths.resources_dir() / RANKER_DIR_NAME


def find_ranker_dir(explicit: str | Path | None = None) -> Path:
    """`--model DIR`, else the one `lensroute train` wrote, else the pretrained one shipped."""
    for candidate in ([Path(explicit)] if explicit else [user_ranker_dir(), bundled_ranker_dir()]):
        if (candidate / "manifest.json").is_file():
            return candidate
    if explicit:
        raise NotFoundError(f"no ranker in {explicit} (it needs manifest.json, scorer.onnx, arrays.npz, vocab.json)")
    raise RuntimeUnavailableError("no trained ranker found; train one with `lensroute train` (the catalogue must hold records)")


@dataclass
class Candidate:
    model: str
    n_parameters: float | None = None
    family: str | None = None
    release_date: str | None = None
    description: str | None = None
    licence: str | None = None
    open_weights: bool | None = None


@dataclass
class RankedModel:
    rank: int
    model: str
    score: float
    known: bool
    evidence: list[dict]
    head_to_head: float | None = None  # win rate against the other reordered candidates
    n_parameters: float | None = None  # recorded, else read from the name (None: unknown)
    licence: str | None = None
    open_weights: bool | None = None
    measured: float | None = None  # the user's own result on the query dataset (`--measured`)

    def as_json(self) -> dict:
        return {"rank": self.rank, "model": self.model, "score": round(self.score, 6), "known": self.known,
                "evidence": self.evidence,
                "head_to_head": None if self.head_to_head is None else round(self.head_to_head, 4),
                "n_parameters": self.n_parameters, "licence": self.licence, "open_weights": self.open_weights,
                "measured": self.measured}


@dataclass
class Ranking:
    query: dict
    model_version: str
    results: list[RankedModel]
    notes: list[str] = field(default_factory=list)

    def as_json(self) -> dict:
        return {"query": self.query, "model_version": self.model_version,
                "results": [r.as_json() for r in self.results], "notes": self.notes}


def read_candidates(path: Path) -> list[Candidate]:
    """CSV or JSONL with a `model` column; optional n_parameters, family, release_date, description,
    licence (or license) and open_weights."""
    rows = read_rows(path, "candidates")
    if not rows or "model" not in rows[0]:
        raise FormatError(f"candidates file {path.name} needs a 'model' column and at least one row")
    out = []
    for number, row in enumerate(rows, start=1):
        name = str(row.get("model") or "").strip()
        if not name:
            raise FormatError(f"{path.name} row {number}: empty model name")
        params = row.get("n_parameters")
        try:
            n_parameters = float(params) if params not in (None, "") else None
        except (TypeError, ValueError):
            raise FormatError(f"{path.name} row {number}: n_parameters {params!r} is not a number") from None
        if n_parameters is not None and not (math.isfinite(n_parameters) and n_parameters > 0):
            raise FormatError(f"{path.name} row {number}: n_parameters {params!r} must be a positive number "
                              "(leave it empty when unknown)")
        out.append(Candidate(name, n_parameters, (row.get("family") or None), (row.get("release_date") or None),
                             (row.get("description") or None), normalise_licence(row.get("licence") or row.get("license")),
                             _openness(row.get("open_weights"), path.name, number)))
    return out


def _openness(value: object, file: str, number: int) -> bool | None:
    """A candidate's `open_weights`: true/false (also yes/no, 1/0); empty is unknown."""
    if value is None or isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("", "null", "none"):
        return None
    if text in ("true", "yes", "1"):
        return True
    if text in ("false", "no", "0"):
        return False
    raise FormatError(f"{file} row {number}: open_weights {value!r} must be true or false (leave it empty when unknown)")


def _without_repeats(candidates: list[Candidate], matched: list[int], notes: list[str]) -> tuple[list[Candidate], list[int]]:
    """Each model once: a later line naming a model already listed (the same known model under
    another spelling, or the same new name) is dropped, and the output says so."""
    seen: set[object] = set()
    kept, rows, dropped = [], [], []
    for candidate, row in zip(candidates, matched, strict=True):
        key: object = row if row else model_key(candidate.model)
        if key in seen:
            dropped.append(candidate.model)
            continue
        seen.add(key)
        kept.append(candidate)
        rows.append(row)
    if dropped:
        shown = ", ".join(dropped[:5]) + (f" and {len(dropped) - 5} more" if len(dropped) > 5 else "")
        notes.append(f"{len(dropped)} candidate line(s) named a model already listed and were dropped: {shown}")
    return kept, rows


def _sizes_from_names(candidates: list[Candidate], known: np.ndarray, notes: list[str]) -> list[Candidate]:
    """Never-seen candidates without n_parameters get the size their name states (`acme/coder-7b`
    → 7e9), and the output says so; a name that states none leaves the size unknown. Models the
    catalogue knows keep the size it records."""
    read = []
    out = []
    for candidate, is_known in zip(candidates, known, strict=True):
        if (not is_known and candidate.n_parameters is None
                and (size := parameters_from_name(candidate.model)) is not None):
            candidate = replace(candidate, n_parameters=size)
            read.append(f"{candidate.model} ({size / 1e9:.3g}B)")
        out.append(candidate)
    if read:
        shown = ", ".join(read[:5]) + (f" and {len(read) - 5} more" if len(read) > 5 else "")
        notes.append(f"sizes read from candidate names: {shown}")
    return out


class Ranker:
    def __init__(self, folder: Path, device: str = "auto") -> None:
        from recommender.onnx_session import create_session

        self.folder = folder
        try:
            self.manifest = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
            vocab = json.loads((folder / "vocab.json").read_text(encoding="utf-8"))
            with np.load(folder / "arrays.npz") as data:
                arrays = {k: data[k] for k in data.files}
        except (OSError, ValueError, KeyError) as exc:
            raise RuntimeUnavailableError(f"the ranker in {folder} is unreadable ({exc}); retrain with `lensroute train`") from exc
        if self.manifest.get("kind") != "lensroute-ranker":
            raise RuntimeUnavailableError(f"{folder} does not hold a lensroute ranker")
        self.model_version = str(self.manifest.get("model_version", "unknown"))
        self.models: list[str] = vocab["models"]
        self.datasets: list[str] = vocab["datasets"]
        self.tasks: list[str] = vocab["tasks"]
        self.metrics: list[str] = vocab["metrics"]
        self.families: list[str] = vocab["families"]
        self.dataset_bases: list[str] = vocab["dataset_bases"]
        as_ = np.asarray  # no copy when the stored dtype is already right
        self.h = as_(arrays["h"], np.float32)
        self.u = as_(arrays["u"], np.float32)
        self.size = as_(arrays["size"], np.int64)
        self.family = as_(arrays["family"], np.int64)
        self.numeric = as_(arrays["numeric"], np.float32)
        self.n_parameters = as_(arrays["n_parameters"], np.float64)
        self.trained = as_(arrays["trained"], bool)
        # Only models with results keep their precomputed halves (others are scored as new models
        # from their views), compacted so that ranking every model needs no copy of the matrix.
        self.known_rows = np.flatnonzero(self.trained)
        self.compact = np.full(len(self.trained), -1, np.int64)
        self.compact[self.known_rows] = np.arange(len(self.known_rows))
        for name in ("h", "u", "size", "family", "numeric", "n_parameters"):
            setattr(self, name, np.ascontiguousarray(getattr(self, name)[self.known_rows]))
        # never-seen candidates are reordered among themselves by size (see cold_prior); a ranker
        # exported before the prior existed gets the default weight and its models' median size
        prior = self.manifest.get("cold_size_prior") or {}
        self.cold_weight = float(prior.get("weight", cold_prior.DEFAULT_WEIGHT))
        self.cold_median = float(prior.get("median_log10_parameters", cold_prior.median_log_size(self.n_parameters)))
        self.dataset_text = as_(arrays["dataset_text"], np.float32)
        self.dataset_base = as_(arrays["dataset_base"], np.int64)
        self.group_dataset, self.group_task, self.group_metric = arrays["group_dataset"], arrays["group_task"], arrays["group_metric"]
        self.name_table = arrays["name_table"].astype(np.float32)
        self.metric_higher = arrays["metric_higher"]
        # what the ranking filters check; a ranker exported before filters existed has neither
        self.openness = as_(arrays["open_weights"], np.int8) if "open_weights" in arrays else None
        self.licence_of: list[str | None] | None = vocab.get("licences")
        if self.openness is not None and len(self.openness) != len(self.trained):
            self.openness = None  # not this folder's models (a hand-made copy): as if never exported
        if self.licence_of is not None and len(self.licence_of) != len(self.models):
            self.licence_of = None
        from recommender.evidence import EvidenceIndex

        self.evidence = EvidenceIndex(as_(arrays["ev_model"], np.int64), as_(arrays["ev_dataset"], np.int64),
                                      as_(arrays["ev_base"], np.int64), as_(arrays["ev_task"], np.int64),
                                      as_(arrays["ev_z"], np.float32), as_(arrays["ev_pct"], np.float32),
                                      as_(arrays["ev_starts"], np.int64), np.zeros(0, np.int64), as_(arrays["ev_y"], np.float32))
        self.ev_metric = as_(arrays["ev_metric"], np.int64)
        # a ranker exported before head-to-head has no group per result: (dataset, metric) is one
        group_key = (as_(arrays["ev_group"], np.int64) if "ev_group" in arrays
                     else self.evidence.dataset * (int(self.ev_metric.max(initial=0)) + 1) + self.ev_metric)
        self._group_key = group_key
        self.results = head_to_head.Results.from_rows(self.evidence.model, group_key, self.evidence.z,
                                                      self.evidence.dataset, self.evidence.task, self.evidence.base)
        self.languages = (languages.LanguageIndex.from_csr(vocab.get("languages", []), as_(arrays["dataset_lang_ptr"], np.int64),
                                                         as_(arrays["dataset_lang_ids"], np.int64))
                          if "dataset_lang_ptr" in arrays else None)
        chosen = self.manifest.get("head_to_head") or {}
        self.h2h_weight = float(chosen.get("weight", 0.0))
        self.h2h_agreement = float(chosen.get("agreement", 0.0))  # rankers before agreement: 0
        del arrays
        self._normed = self.dataset_text / np.maximum(np.linalg.norm(self.dataset_text, axis=1, keepdims=True), 1e-9)
        self._by_key = {model_key(name): i + 1 for i, name in enumerate(self.models)}
        # a bare candidate name (`qwen2.5-7b-instruct`) matches `org/name` when one organisation has it
        # (among trained models: a bare entry without results must not hide `org/name` with results)
        trained_keys = {k: i for k, i in self._by_key.items() if self.trained[i]}
        bare_counts = Counter(bare_key(k) for k in trained_keys)
        self._by_bare = {bare_key(k): i for k, i in trained_keys.items() if bare_counts[bare_key(k)] == 1}
        self._datasets = {name: i + 1 for i, name in enumerate(self.datasets)}
        self.scorer, self.session_info = create_session(folder / "scorer.onnx", device=device, memory_arena=False)
        self.model_side, _ = create_session(folder / "model_side.onnx", device="cpu")
        self._encoder = None
        self._device_arrays = self._to_device() if self.session_info.provider == "CUDAExecutionProvider" else None

    def _to_device(self) -> dict:
        """The known models' matrices as device-resident OrtValues: each query then copies only
        its evidence and a handful of scalars to the GPU (IOBinding)."""
        import onnxruntime as ort

        return {name: ort.OrtValue.ortvalue_from_numpy(np.ascontiguousarray(getattr(self, name)), "cuda", 0)
                for name in ("h", "u", "size", "family", "numeric")}

    def _score_on_device(self, evidence: np.ndarray, fixed: dict) -> np.ndarray:
        binding = self.scorer.io_binding()
        for name, value in self._device_arrays.items():  # type: ignore[union-attr]
            binding.bind_ortvalue_input(name, value)
        binding.bind_cpu_input("evidence", np.ascontiguousarray(evidence, dtype=np.float32))
        for name, value in fixed.items():
            binding.bind_cpu_input(name, value)
        binding.bind_output("score", "cpu")
        self.scorer.run_with_iobinding(binding)
        return binding.copy_outputs_to_cpu()[0]

    @classmethod
    def load(cls, folder: str | Path | None = None, device: str = "auto") -> Ranker:
        return cls(find_ranker_dir(folder), device)

    @property
    def encoder(self):  # type: ignore[no-untyped-def]
        if self._encoder is None:
            from recommender.text_encoder import default_encoder

            self._encoder = default_encoder()
        return self._encoder

    def _match(self, name: str) -> int:
        """The known-model row of a candidate name (0: unknown); bare names only when unambiguous."""
        key = model_key(name)
        exact = self._by_key.get(key, 0)
        if (exact and self.trained[exact]) or "/" in key:
            return exact
        return self._by_bare.get(key, exact)

    @cached_property
    def result_group(self) -> np.ndarray:
        """Per evidence row, its results group (`self.results`' numbering); only `compare` needs it."""
        return np.unique(self._group_key, return_inverse=True)[1]

    def match_known(self, name: str) -> int:
        """The row of a model the ranker has results for (0: none), under any spelling it resolves."""
        row = self._match(name)
        return row if row and self.trained[row] else 0

    # -- resolving the query ------------------------------------------------------------------------

    def _name_similarity(self, kind: str) -> query_terms.Similarity:
        def similarity(wanted: str, known: Sequence[str]) -> np.ndarray:
            vectors = self.encoder.encode([f"{kind}: {wanted}", *[f"{kind}: {k}" for k in known]])
            return vectors[1:] @ vectors[0]

        return similarity

    @cached_property
    def _datasets_by_spelling(self) -> dict[str, list[int]]:
        rows: dict[str, list[int]] = {}
        for name, row in self._datasets.items():
            rows.setdefault(fold_name(name), []).append(row)
        return rows

    def _dataset_row(self, dataset: str | None, notes: list[str]) -> int:
        """The catalogued dataset a `--dataset` name means (0: none): as written, else the one
        whose name folds the same (`nfcorpus`, `NF Corpus` for NFCorpus)."""
        if not dataset:
            return 0
        row = self._datasets.get(dataset, 0)
        if not row:
            spelt = self._datasets_by_spelling.get(fold_name(dataset), [])
            row = spelt[0] if len(spelt) == 1 else 0
            notes.append(f"dataset {dataset!r} read as {self.datasets[row - 1]!r}" if row else
                         f"dataset {dataset!r} is not in the catalogue: ranked as a new dataset from its description")
        return row

    @property
    def task_names(self) -> list[str]:
        """The tasks a user can ask for (the catalogue's `unknown` placeholder is none of them)."""
        return [t for t in self.tasks if t not in query_terms.PLACEHOLDER_TASKS]

    def metrics_for(self, task: str | None) -> tuple[list[str], list[str]]:
        """(metrics measured on datasets of this task, the others), each most used first; with no
        known task, every metric as measured."""
        if task in self.tasks:
            measured, elsewhere = self._measured_metrics(self.tasks.index(task) + 1)
        else:
            measured, elsewhere = self._measured_metrics(0)[1], []
        return [self.metrics[i] for i in measured], [self.metrics[i] for i in elsewhere]

    def _measured_metrics(self, task_idx: int) -> tuple[list[int], list[int]]:
        """The metrics (0-based) measured on datasets of this task, and the others; each most
        results groups first."""
        def by_use(groups: np.ndarray) -> list[int]:
            counts = np.bincount(self.group_metric[groups], minlength=len(self.metrics) + 1)[1:]
            return [int(i) for i in np.argsort(-counts, kind="stable") if counts[i] > 0]

        measured = by_use(self.group_task == task_idx)
        taken = set(measured)
        return measured, [i for i in by_use(np.ones(len(self.group_metric), bool)) if i not in taken]

    def _resolve(self, description: str, dataset: str | None, task: str | None, metric: str | None,
                 query_vector: np.ndarray | None = None) -> tuple[dict, list[str], np.ndarray]:
        notes: list[str] = []
        dataset_idx = self._dataset_row(dataset, notes)
        if dataset and dataset_idx:
            dataset = self.datasets[dataset_idx - 1]
        text = dataset_text(dataset or "user dataset", task, description, {}) if description.strip() else None
        if text is None and not dataset_idx:
            if dataset:
                close = close_names(dataset, self.datasets, 3)
                hint = f" (did you mean {', '.join(repr(c) for c in close)}?)" if close else ""
                raise NotFoundError(f"dataset {dataset!r} is not in the ranker's catalogue{hint}; describe it with --description TEXT")
            raise UsageError("describe the dataset (--description TEXT) or name a catalogued one (--dataset NAME)")
        if query_vector is None:
            query_vector = self.encoder.encode([text])[0] if text else self.dataset_text[dataset_idx]
        sims = self._normed @ (query_vector / max(float(np.linalg.norm(query_vector)), 1e-9))
        sims[0] = -1.0
        nearest = int(np.argmax(sims)) if dataset_idx == 0 else dataset_idx

        def groups_of(d: int) -> np.ndarray:
            return np.flatnonzero(self.group_dataset == d)

        def closest_task() -> int:
            return int(self.group_task[groups_of(nearest)[0]])

        closest_task_note = f"the task of the closest known dataset {self.datasets[nearest - 1]!r}"
        if task:
            task_reading = query_terms.read_task(task, self.tasks, self._name_similarity("task"))
            task_idx = closest_task() if task_reading.index is None else task_reading.index + 1
            note = query_terms.describe("task", task, task_reading, self.tasks[task_idx - 1], closest_task_note)
            notes.extend([note] if note else [])
        else:
            task_idx = closest_task()
            notes.append(f"no task given: using {self.tasks[task_idx - 1]!r}, {closest_task_note}")
        task_name = self.tasks[task_idx - 1]
        same_task = [g for g in np.argsort(-sims[self.group_dataset]) if self.group_task[g] == task_idx]
        default_metric = int(self.group_metric[same_task[0]]) if same_task else int(self.group_metric[groups_of(nearest)[0]])
        default_note = f"the metric of the closest {task_name!r} dataset"
        if metric:
            measured, elsewhere = self._measured_metrics(task_idx)
            metric_reading = query_terms.read_metric(metric, self.metrics, measured, elsewhere,
                                                     self._name_similarity("metric"))
            metric_idx = default_metric if metric_reading.index is None else metric_reading.index + 1
            note = query_terms.describe("metric", metric, metric_reading, self.metrics[metric_idx - 1], default_note)
            notes.extend([note] if note else [])
            if metric_reading.index is not None and metric_reading.index not in measured:
                notes.append(f"metric {self.metrics[metric_idx - 1]!r} was never measured on a {task_name!r} dataset in "
                             "the ranker's catalogue, so its scores extrapolate")
        else:
            metric_idx = default_metric
            notes.append(f"no metric given: using {self.metrics[metric_idx - 1]!r}, {default_note}")
        resolved = {"description": description, "dataset": dataset, "task": self.tasks[task_idx - 1],
                    "metric": self.metrics[metric_idx - 1], "dataset_known": bool(dataset_idx)}
        resolved["_ids"] = (dataset_idx, task_idx, metric_idx, query_vector)
        return resolved, notes, sims

    # -- candidates -----------------------------------------------------------------------------------

    @cached_property
    def _names_with_results(self) -> list[tuple[str, str]]:
        """(folded name, name) of every model with results."""
        return [(fold_name(name), name) for name, trained in zip(self.models, self.trained[1:], strict=True) if trained]

    def close_known(self, name: str, most: int = 1) -> list[str]:
        """`close_names` among models with results, over those sharing the first three letters of
        the name's last part: a typo seldom starts wrong, and it makes a check ~1 ms, not ~35."""
        stem = fold_name(name.rsplit("/", 1)[-1])[:3]
        return close_names(name, [known for folded, known in self._names_with_results if stem in folded], most)

    def _note_near_misses(self, candidates: list[Candidate], known: np.ndarray, notes: list[str]) -> None:
        """A candidate the ranker has never seen whose name is close to one it has results for is
        most often a typo or another spelling (`bge m3`); it would be ranked from its name alone
        without a word. Checked for short lists only: a file of thousands is a list of new models."""
        unseen = [c.model for c, is_known in zip(candidates, known, strict=True) if not is_known]
        if not unseen or len(unseen) > NEAR_MISSES_CHECKED:
            return
        hits = [f"{name!r} (did you mean {close[0]!r}?)" for name in unseen
                if (close := self.close_known(name))]
        if hits:
            notes.append(f"never-seen candidates named like catalogued models, ranked from their names alone: {', '.join(hits)}")

    def _new_model_sides(self, candidates: list[Candidate]) -> tuple[np.ndarray, ...]:
        names = [c.model for c in candidates]
        name_vectors = np.stack([self.name_table[name_ngram_ids(n)].mean(0) for n in names]).astype(np.float32)
        texts = self.encoder.encode([model_text(c.model, c.family, c.n_parameters, None, c.description, {}) for c in candidates])
        families = np.array([(self.families.index(f) + 1) if f in self.families else 0
                             for f in ((c.family or family_from_name(c.model)) for c in candidates)], dtype=np.int64)
        sizes = np.array([size_bucket(c.n_parameters) for c in candidates], dtype=np.int64)
        numeric = np.array([model_numeric(c.n_parameters, {}, c.release_date) for c in candidates], np.float32)
        numeric = numeric[:, : self.numeric.shape[1]]  # a ranker exported before the release-time column
        h, u = self.model_side.run(None, {"model_id": np.zeros(len(candidates), np.int64), "name_vector": name_vectors,
                                          "text": texts, "size": sizes, "family": families, "numeric": numeric})
        return h, u, sizes, families, numeric

    # -- ranking ----------------------------------------------------------------------------------------

    def rank(self, description: str, *, dataset: str | None = None, task: str | None = None, metric: str | None = None,
             top_k: int = 10, candidates: list[Candidate] | None = None, all_models: bool = False,
             query_vector: np.ndarray | None = None, language: Sequence[str] = (),
             constraint: ModelFilter | None = None, measured: Sequence[MeasuredResult] = ()) -> Ranking:
        """`query_vector` replaces the embedding of the description (benchmarks, callers that
        embedded it already); task and metric names must then be given. `language`: the
        `--language` values (names or ISO 639 codes); without them the languages of a named
        catalogue dataset, else those the description names. `constraint` drops the candidates
        the user cannot take (size, licence, open weights) before anything is scored. `measured`:
        results the user has on this dataset (`recommender.measured`), in the query's metric."""
        if top_k < 0:
            raise UsageError("--top-k must be 0 (all) or a positive number")
        query, notes, sims = self._resolve(description or "", dataset, task, metric, query_vector)
        dataset_idx, task_idx, metric_idx, query_vector = query.pop("_ids")
        query["languages"] = list(self._query_languages(description or "", dataset_idx, language, notes))
        exclude = int(self.dataset_base[dataset_idx]) if dataset_idx else None
        measured_rows, measured_values = self._measured_rows(measured, notes)
        measured_z = oriented(measured_values, bool(self.metric_higher[metric_idx - 1]))  # higher is better
        if candidates is None:
            names = None
            if all_models:
                rows = self.known_rows
                notes.append(f"candidates: all {len(rows):,} models with results in the catalogue")
            else:
                rows = np.union1d(self._default_candidates(task_idx, sims, max(top_k, 10), notes), measured_rows)
            rows, known, _ = self._filtered(constraint, rows, np.ones(len(rows), bool), None, notes)
            if rows is self.known_rows:
                h, u, size, family, numeric = self.h, self.u, self.size, self.family, self.numeric  # no copies
            else:
                at = self.compact[rows]
                h, u, size, family, numeric = self.h[at], self.u[at], self.size[at], self.family[at], self.numeric[at]
            evidence = self.evidence.query_features(sims, task_idx, exclude, rows)
        else:
            candidates, matched = _without_repeats(candidates, [self._match(c.model) for c in candidates], notes)
            known = np.array([m > 0 and self.trained[m] for m in matched], bool)
            self._note_near_misses(candidates, known, notes)
            candidates = _sizes_from_names(candidates, known, notes)
            rows = np.array([m if k else 0 for m, k in zip(matched, known, strict=True)], np.int64)
            rows, known, candidates = self._filtered(constraint, rows, known, candidates, notes)
            names = [c.model for c in candidates]
            at = np.where(known, self.compact[rows], 0)
            h, u = self.h[at], self.u[at]
            size, family, numeric = self.size[at], self.family[at], self.numeric[at]
            evidence = self.evidence.query_features(sims, task_idx, exclude, rows)
            new = np.flatnonzero(~known)
            if len(new):
                nh, nu, ns, nf, nl = self._new_model_sides([candidates[i] for i in new])
                h[new], u[new], size[new], family[new], numeric[new] = nh, nu, ns, nf, nl
                evidence[new, :N_CORE] = 0.0
        evidence[:, N_CORE:] = relative_size(self._candidate_sizes(rows, candidates))
        fixed = {"dataset_id": np.array([dataset_idx], np.int64), "dataset_text": query_vector[None].astype(np.float32),
                 "task": np.array([task_idx], np.int64), "metric": np.array([metric_idx], np.int64)}
        if self._device_arrays is not None and h is self.h:
            scores = self._score_on_device(evidence, fixed)
        else:
            scores = np.concatenate([  # in chunks: bounded intermediate buffers for any catalogue size
                self.scorer.run(None, {"h": h[s:e], "u": u[s:e], "size": size[s:e], "family": family[s:e],
                                       "numeric": numeric[s:e], "evidence": evidence[s:e], **fixed})[0]
                for s, e in _chunks(len(rows), SCORE_CHUNK)
            ])
        if candidates is not None and not known.all():
            sizes = cold_prior.imputed_log_sizes(self._candidate_sizes(rows, candidates), self.cold_median)
            scores = cold_prior.blend(scores, ~known, sizes, self.cold_weight)
        rates = np.full(len(rows), np.nan)
        if self.h2h_weight:
            shares = self.languages.sharing(query["languages"]) if self.languages is not None else None
            rates = head_to_head.rates_for_top(self.results, rows, scores, known,
                                               self.results.weights(sims, task_idx, exclude, shares),
                                               agreement=self.h2h_agreement,
                                               measured=(measured_rows, measured_z))
            scores = head_to_head.rerank(scores, rates, self.h2h_weight)
            if (reordered := int((~np.isnan(rates)).sum())) >= 2:
                notes.append(f"the top {reordered} known candidates reordered by how they did "
                             f"head-to-head on datasets like this one (weight {self.h2h_weight:g}"
                             + (f", votes sharpened by agreement with the scorer, γ {self.h2h_agreement:g})"
                                if self.h2h_agreement else ")"))
        scores, shown_measured = self._in_measured_order(rows, known, scores, measured_rows, measured_values,
                                                         measured_z, notes)
        order = np.argsort(-scores, kind="stable")
        if top_k:
            order = order[:top_k]
        shown = [candidates[j] for j in order] if candidates is not None else None
        sizes, licences, openness = self._facts(rows[order], known[order], shown)
        results = [RankedModel(i + 1, names[j] if names is not None else self.models[rows[j] - 1], float(scores[j]), bool(known[j]),
                               self._evidence_for(int(rows[j]), sims, exclude) if known[j] else [],
                               None if np.isnan(rates[j]) else float(rates[j]),
                               None if np.isnan(sizes[i]) else float(sizes[i]), licences[i],
                               None if openness[i] < 0 else bool(openness[i]), shown_measured.get(j))
                   for i, j in enumerate(order)]
        query["top_k"] = top_k
        query["candidates"] = len(rows)
        query["measured"] = len(measured_rows)
        query["filters"] = (constraint or ModelFilter()).as_json()
        return Ranking(query, self.model_version, results, notes)

    def _measured_rows(self, measured: Sequence[MeasuredResult], notes: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """The catalogue rows of the measured models with results (they alone can be compared with
        the training datasets) and their values; the others are named in a note."""
        rows, values, unmatched = [], [], []
        for result in measured:
            row = self.match_known(result.model)
            if row and row not in rows:
                rows.append(row)
                values.append(result.value)
            elif not row:
                unmatched.append(result.model)
        if unmatched:
            shown = ", ".join(unmatched[:5]) + (f" and {len(unmatched) - 5} more" if len(unmatched) > 5 else "")
            notes.append(f"measured results of models without results in the catalogue are not compared: {shown}")
        if measured and len(rows) < head_to_head.MIN_MEASURED:
            notes.append(f"measured results sharpen the head-to-head votes from {head_to_head.MIN_MEASURED} catalogued models on "
                         f"(got {len(rows)}); they only order the measured models here")
        elif rows and not self.h2h_weight:
            notes.append("this ranker has no head-to-head weight: measured results only order the measured models")
        elif rows:
            notes.append(f"head-to-head votes sharpened by agreement with your {len(rows)} measured results "
                         f"(γ {head_to_head.MEASURED_AGREEMENT:g})")
        return np.array(rows, np.int64), np.array(values, np.float64)

    @staticmethod
    def _in_measured_order(rows: np.ndarray, known: np.ndarray, scores: np.ndarray, measured_rows: np.ndarray,
                           measured_values: np.ndarray, measured_z: np.ndarray, notes: list[str]
                           ) -> tuple[np.ndarray, dict[int, float]]:
        """The measured candidates reordered among themselves by their measured results
        (`measured_z`: higher is better; `head_to_head.reorder` keeps everyone else's place), and
        per candidate position its measured value. A measurement outranks any prediction of it."""
        if not len(measured_rows):
            return scores, {}
        at = np.flatnonzero(known & np.isin(rows, measured_rows))  # vectorised: 50,000 candidates may stand here
        index_of = {row: k for k, row in enumerate(measured_rows.tolist())}
        order = np.array([index_of[row] for row in rows[at].tolist()], np.int64)  # into the measured lists
        if len(at) >= 2:
            scores = head_to_head.reorder(scores, at, measured_z[order])
            notes.append(f"the {len(at)} measured candidates are listed in their measured order")
        return scores, {int(i): float(measured_values[k]) for i, k in zip(at, order, strict=True)}

    def _facts(self, rows: np.ndarray, known: np.ndarray, candidates: list[Candidate] | None
               ) -> tuple[np.ndarray, list[str | None], np.ndarray]:
        """What the filters check, per candidate: parameters (recorded or given, else read from
        the name; NaN unknown), normalised licence (None unknown), open weights (1 / 0 / -1).
        A candidates file's values win over the catalogue's: the user may know better."""
        sizes = self._candidate_sizes(rows, candidates)
        names = [c.model for c in candidates] if candidates is not None else [self.models[r - 1] for r in rows.tolist()]
        for i in np.flatnonzero(np.isnan(sizes)):
            if (size := parameters_from_name(names[i])) is not None:
                sizes[i] = size
        licences: list[str | None] = []
        openness = np.full(len(rows), -1, np.int8)
        for i, (row, is_known) in enumerate(zip(rows.tolist(), known.tolist(), strict=True)):
            given = candidates[i] if candidates is not None else None
            stored = self.licence_of[row - 1] if is_known and self.licence_of is not None else None
            licences.append(given.licence if given is not None and given.licence else stored)
            if given is not None and given.open_weights is not None:
                openness[i] = int(given.open_weights)
            elif is_known and self.openness is not None:
                openness[i] = self.openness[row]
        return sizes, licences, openness

    def _filtered(self, constraint: ModelFilter | None, rows: np.ndarray, known: np.ndarray,
                  candidates: list[Candidate] | None, notes: list[str]) -> tuple[np.ndarray, np.ndarray, list[Candidate] | None]:
        if constraint is None or not constraint.active:
            return rows, known, candidates
        missing = (constraint.licences and self.licence_of is None) or (constraint.open_weights and self.openness is None)
        if known.any() and missing:
            raise NoDataError("this ranker was exported before licences and open weights were kept; retrain it with "
                              "`lensroute train` to filter by them")
        outcome = constraint.keep(*self._facts(rows, known, candidates))
        said = outcome.notes(constraint)
        notes.extend(said)
        keep = outcome.keep
        if not keep.any():
            raise NoDataError(f"no candidate passes the {said[0]}")
        kept = [c for c, k in zip(candidates, keep.tolist(), strict=True) if k] if candidates is not None else None
        return rows[keep], known[keep], kept

    def votes(self, description: str, *, dataset: str | None = None, task: str | None = None, metric: str | None = None,
              language: Sequence[str] = ()) -> tuple[dict, list[str], np.ndarray, np.ndarray]:
        """(query, notes, similarity to every dataset, vote of every results group): how
        head-to-head weighs the evidence for this query, for callers that compare named models."""
        query, notes, sims = self._resolve(description or "", dataset, task, metric)
        dataset_idx, task_idx, _, _ = query.pop("_ids")
        query["languages"] = list(self._query_languages(description or "", dataset_idx, language, notes))
        exclude = int(self.dataset_base[dataset_idx]) if dataset_idx else None
        shares = self.languages.sharing(query["languages"]) if self.languages is not None else None
        return query, notes, sims, self.results.weights(sims, task_idx, exclude, shares)

    def _query_languages(self, description: str, dataset_idx: int, given: Sequence[str], notes: list[str]) -> tuple[str, ...]:
        if given:
            return languages.parse_option(given)
        if dataset_idx and self.languages is not None and (known := self.languages.of(dataset_idx)):
            return known
        read = languages.from_text(description)
        if read:
            notes.append(f"languages read from the description: {', '.join(read)} (--language sets them)")
        return read

    def _default_candidates(self, task_idx: int, sims: np.ndarray, wanted: int, notes: list[str]) -> np.ndarray:
        """Models evaluated on datasets of the query's task type; the scorer was trained to order
        models within a leaderboard, not to compare an LLM with a sentence embedder, so models
        with no result of that kind are not candidates unless a candidates file names them."""
        same_task = np.unique(self.evidence.model[self.evidence.task == task_idx])
        if len(same_task) >= wanted:
            notes.append(f"candidates: the {len(same_task):,} models with results on {self.tasks[task_idx - 1]!r} "
                         "datasets (a candidates file, --candidates FILE, ranks others)")
            return same_task
        nearest = np.argsort(-sims)[:50]
        widened = np.unique(self.evidence.model[np.isin(self.evidence.dataset, nearest)])
        notes.append(f"candidates: the {len(widened):,} models with results on the 50 datasets closest to the "
                     "description (few have results on this task type)")
        return widened

    def _candidate_sizes(self, rows: np.ndarray, candidates: list[Candidate] | None) -> np.ndarray:
        at = self.compact[rows]
        sizes = np.where(at >= 0, self.n_parameters[np.maximum(at, 0)], np.nan)
        if candidates is not None:
            for i, candidate in enumerate(candidates):
                if candidate.n_parameters:
                    sizes[i] = candidate.n_parameters
        return sizes

    def _evidence_for(self, row: int, sims: np.ndarray, exclude_base: int | None) -> list[dict]:
        lo, hi = self.evidence.starts[row], self.evidence.starts[row + 1]
        datasets = self.evidence.dataset[lo:hi]
        usable = np.ones(hi - lo, bool) if exclude_base is None else self.evidence.base[lo:hi] != exclude_base
        order = [i for i in np.argsort(-sims[datasets], kind="stable") if usable[i]][:EVIDENCE_PER_RESULT]
        out = []
        for i in order:
            metric = int(self.ev_metric[lo + i])
            y = float(self.evidence.y[lo + i])
            value = y if self.metric_higher[metric - 1] else -y
            out.append({"dataset": self.datasets[int(datasets[i]) - 1], "metric": self.metrics[metric - 1],
                        "value": None if math.isnan(value) else round(value, 6),
                        "similarity": round(float(sims[datasets[i]]), 4)})
        return out
