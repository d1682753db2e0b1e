"""The indexed space ModelLens trains and serves in: vocabularies, per-model and per-dataset views,
and ranking groups as index arrays.

Row 0 of every table is "unknown": a model or dataset the ranker has never seen is scored through
its other views only, exactly as ID dropout trains it to be.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from recommender import languages
from recommender.features import (
    N_NUMERIC,
    ModelViews,
    Vocabulary,
    dataset_text,
    model_numeric,
    model_text,
    model_views,
)
from recommender.progress import NEVER_CANCELLED, CancelToken, Progress, no_progress

if TYPE_CHECKING:  # training and serving load spaces without polars; only building one needs it
    import polars as pl

    from recommender.frames import Catalogue


@dataclass
class LensSpace:
    model_names: list[str]  # index i+1 ↔ model_names[i]; 0 = unknown
    store_model_ids: np.ndarray  # store id per space index (0 for the unknown row)
    models: ModelViews
    dataset_vocab: Vocabulary  # dataset keys ("name" or "name [subset]")
    dataset_text: np.ndarray  # [n_datasets, 384], row 0 zeros
    dataset_base: list[str]  # base dataset name per dataset key (row 0: "")
    task_vocab: Vocabulary
    metric_vocab: Vocabulary
    family_vocab: Vocabulary
    release_date: list[str | None] = field(default_factory=list)
    n_parameters: np.ndarray = field(default_factory=lambda: np.zeros(0))  # float, NaN unknown
    numeric: np.ndarray = field(default_factory=lambda: np.zeros((0, N_NUMERIC), np.float32))  # see features.model_numeric
    dataset_languages: list[tuple[str, ...]] = field(default_factory=list)  # per dataset key (`recommender.languages`)
    # what the ranking filters check (`recommender.model_filters`); row 0 unknown
    licences: list[str | None] = field(default_factory=list)  # normalised; None = none recorded
    open_weights: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int8))  # 1 open, 0 API only, -1 unknown

    @property
    def n_models(self) -> int:
        return len(self.model_names) + 1

    def model_index(self) -> dict[int, int]:
        return {int(store_id): i for i, store_id in enumerate(self.store_model_ids) if i > 0}


@dataclass
class GroupSet:
    """Ranking groups as arrays: group g ranks members[g] (space model indices) by z[g]."""

    keys: list[tuple[str, str, str]]  # (dataset_key, task, metric)
    base: list[str]
    dataset: np.ndarray  # dataset vocab index per group
    task: np.ndarray
    metric: np.ndarray
    members: list[np.ndarray]
    y: list[np.ndarray]  # signed values (higher is better)
    z: list[np.ndarray]  # y standardised over the members present

    def __len__(self) -> int:
        return len(self.keys)

    def subset(self, index: Sequence[int]) -> GroupSet:
        index = list(index)
        return GroupSet([self.keys[i] for i in index], [self.base[i] for i in index], self.dataset[index],
                        self.task[index], self.metric[index], [self.members[i] for i in index],
                        [self.y[i] for i in index], [self.z[i] for i in index])

    def restrict(self, keep: list[np.ndarray], min_models: int = 2) -> GroupSet:
        """Keep, per group, the members whose mask is True; drop groups left with < min_models or
        no spread. z is recomputed over the members kept, so held-out values never leak into the
        standardisation of what a model trains on."""
        chosen = [g for g, mask in enumerate(keep) if int(mask.sum()) >= min_models and np.std(self.y[g][mask]) > 0]
        out = self.subset(chosen)
        out.members = [self.members[g][keep[g]] for g in chosen]
        out.y = [self.y[g][keep[g]] for g in chosen]
        out.z = [standardise(y) for y in out.y]
        return out


def standardise(y: np.ndarray) -> np.ndarray:
    spread = y.std()
    return (y - y.mean()) / spread if spread > 0 else np.zeros_like(y)


def build_space(catalogue: Catalogue, groups: pl.DataFrame, encode, progress: Progress = no_progress,  # type: ignore[no-untyped-def]
                cancel: CancelToken = NEVER_CANCELLED) -> LensSpace:
    """Vocabularies over everything in the catalogue; text views through `encode(texts)`."""
    from recommender.frames import parse_extra
    from recommender.model_filters import normalise_licence

    models = catalogue.models.sort("model_id")
    extras = [parse_extra(e) for e in models["extra"].to_list()]
    families = models["family"].to_list()
    names = models["name"].to_list()
    texts = [model_text(n, f, p, lic, d, x) for n, f, p, lic, d, x in zip(
        names, families, models["n_parameters"].to_list(), models["licence"].to_list(),
        models["description"].to_list(), extras, strict=True)]
    progress(0, 3, "embedding model descriptions")
    model_vectors = np.vstack([np.zeros((1, 384), np.float32), encode(texts)]) if texts else np.zeros((1, 384), np.float32)
    cancel.raise_if_cancelled()

    from recommender.normalise import family_from_name

    family_vocab = Vocabulary.build([f or family_from_name(n) for n, f in zip(names, families, strict=True)])
    views = model_views(["", *names], [None, *families], [None, *models["n_parameters"].to_list()], model_vectors, family_vocab)
    views.family[0] = 0

    keyed = groups.select("dataset_key", "base_dataset", "task").unique(subset=["dataset_key"], keep="first").sort("dataset_key")
    meta = {r["name"]: r for r in catalogue.datasets.iter_rows(named=True)}
    dataset_keys = keyed["dataset_key"].to_list()
    dataset_texts, dataset_languages = [], [()]
    for key, base, task in keyed.iter_rows():
        row = meta.get(base) or {}
        extra = parse_extra(row.get("extra"))
        dataset_texts.append(dataset_text(key, row.get("task_type") or task, row.get("description"), extra))
        part = key[len(base):] if key.startswith(base) else ""
        dataset_languages.append(tuple(sorted(set(languages.from_codes(_as_list(extra.get("eval_langs"))))
                                              | set(languages.from_text(part)))))
    progress(1, 3, "embedding dataset descriptions")
    dataset_vectors = np.vstack([np.zeros((1, 384), np.float32), encode(dataset_texts)]) if dataset_texts else np.zeros((1, 384), np.float32)
    progress(2, 3, "indexing")
    return LensSpace(
        model_names=names,
        store_model_ids=np.concatenate([[0], models["model_id"].to_numpy()]).astype(np.int64),
        models=views,
        dataset_vocab=Vocabulary(dataset_keys),
        dataset_text=dataset_vectors.astype(np.float32),
        dataset_base=["", *keyed["base_dataset"].to_list()],
        task_vocab=Vocabulary.build(groups["task"].unique().to_list()),
        metric_vocab=Vocabulary.build(groups["metric"].unique().to_list()),
        family_vocab=family_vocab,
        release_date=[None, *models["release_date"].to_list()],
        n_parameters=np.array([np.nan, *[float(p) if p else np.nan for p in models["n_parameters"].to_list()]]),
        numeric=np.array([[0.0] * N_NUMERIC, *[model_numeric(p, x, d) for p, x, d in zip(models["n_parameters"].to_list(), extras,
                                                                                   models["release_date"].to_list(), strict=True)]],
                         dtype=np.float32),
        dataset_languages=dataset_languages,
        licences=[None, *[normalise_licence(x) for x in models["licence"].to_list()]],
        open_weights=np.array([-1, *[_openness(x) for x in extras]], np.int8),
    )


def _openness(extra: dict) -> int:
    value = extra.get("open_weights")
    return -1 if not isinstance(value, bool) else int(value)


def _as_list(value: object) -> list[str]:
    """eval_langs is a list, or per part a dict of lists (MTEB's multilingual tasks)."""
    if isinstance(value, dict):
        return [c for codes in value.values() for c in (codes if isinstance(codes, list) else [codes])]
    return value if isinstance(value, list) else []


def group_set(space: LensSpace, groups: pl.DataFrame) -> GroupSet:
    import polars as pl

    index = space.model_index()
    groups = groups.with_columns(pl.col("model_id").replace_strict(index, default=0).alias("midx"))
    per_group = groups.group_by("group_id", maintain_order=True).agg(
        pl.col("dataset_key").first(), pl.col("base_dataset").first(), pl.col("task").first(), pl.col("metric").first(),
        pl.col("midx"), pl.col("y"), pl.col("z"),
    ).sort("group_id")
    keys = list(zip(per_group["dataset_key"].to_list(), per_group["task"].to_list(), per_group["metric"].to_list(), strict=True))
    return GroupSet(
        keys=keys,
        base=per_group["base_dataset"].to_list(),
        dataset=space.dataset_vocab.indices(per_group["dataset_key"].to_list()),
        task=space.task_vocab.indices(per_group["task"].to_list()),
        metric=space.metric_vocab.indices(per_group["metric"].to_list()),
        members=[np.asarray(m, dtype=np.int64) for m in per_group["midx"].to_list()],
        y=[np.asarray(y, dtype=np.float64) for y in per_group["y"].to_list()],
        z=[np.asarray(z, dtype=np.float64) for z in per_group["z"].to_list()],
    )
