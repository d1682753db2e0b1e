"""Export a trained ModelLens to a self-contained ranker folder (ONNX + arrays, no torch needed).

    scorer.onnx      (model-side halves of N models, their evidence, one dataset) → N scores
    model_side.onnx  views of new models → their model-side halves (for candidates the catalogue
                     has never seen)
    arrays.npz       precomputed model-side halves of every known model, the evidence index,
                     dataset description embeddings, the name n-gram table (float16)
    lens.pt          the torch weights (for parity checks, benchmarks and fine-tuning; serving
                     never loads it)
    vocab.json       models, datasets, tasks, metrics, families, languages, licences
    manifest.json    version, training configuration and data fingerprint, parity check

The model half of the first layer is precomputed once here, so ranking every known model for a
new dataset is a handful of matrix products in ONNX Runtime.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import torch
from torch import nn

from recommender.evidence import (
    N_CORE,
    EvidenceIndex,
    base_index,
    dataset_similarity,
    relative_size,
)
from recommender.features import N_NUMERIC
from recommender.languages import LanguageIndex
from recommender.modellens import TEXT_DIM, LensConfig, ModelLens
from recommender.space import GroupSet, LensSpace
from recommender.training import SpaceTensors

FORMAT = 1
SCORER_INPUTS = ("h", "u", "size", "family", "numeric", "evidence", "dataset_id", "dataset_text", "task", "metric")


class _ModelSide(nn.Module):
    def __init__(self, lens: ModelLens) -> None:
        super().__init__()
        self.lens = lens

    def forward(self, ids, name_vec, text, size, family, numeric):  # type: ignore[no-untyped-def]
        return self.lens.model_side(self.lens.model_inputs_named(ids, name_vec, text, size, family, numeric))


class _Scorer(nn.Module):
    def __init__(self, lens: ModelLens) -> None:
        super().__init__()
        self.lens = lens

    def forward(self, h_m, u_m, size, family, numeric, evidence, dataset_id, dataset_text, task, metric):  # type: ignore[no-untyped-def]
        lens = self.lens
        x_g = lens.dataset_inputs(dataset_id, dataset_text, task, metric)
        h_g, v_g = lens.dataset_side(x_g)
        n = h_m.shape[0]
        return lens.combine(h_m, u_m, size, family, h_g.expand(n, -1), v_g.expand(n, -1), task.expand(n), evidence, numeric)


def export_onnx(module: nn.Module, inputs: tuple, path: Path, input_names: list[str], output_names: list[str],
                dynamic_shapes: tuple, optimize: bool = True) -> None:
    """torch.export-based ONNX export (the exporter torch now maintains), one file, no external data.

    `optimize=False` skips the exporter's own graph optimiser: on the 60-unit routed SmolLM2 it
    takes 100+ s and ONNX Runtime's optimiser at load gives the same speed (measured)."""
    import logging
    import warnings

    logging.getLogger("torch.onnx").setLevel(logging.ERROR)
    with warnings.catch_warnings():
        # torch's own internals warn about their own APIs while tracing; nothing for us to act on
        warnings.filterwarnings("ignore", category=FutureWarning)
        warnings.filterwarnings("ignore", category=UserWarning, module="torch")
        program = torch.onnx.export(module, inputs, input_names=input_names, output_names=output_names,
                                    dynamic_shapes=dynamic_shapes, dynamo=True, opset_version=18, verbose=False,
                                    optimize=optimize)
    program.save(str(path), external_data=False)


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def model_numeric_array(space: LensSpace) -> np.ndarray:
    return space.numeric.astype(np.float32)


def known_model_sides(lens: ModelLens, space: LensSpace, trained: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Model halves for every space row; rows without training results use the unknown id."""
    tensors = SpaceTensors(space, torch.device("cpu"))
    from recommender.training import model_side

    rows = np.arange(space.n_models)
    ids = np.where(trained, rows, 0)
    out_h, out_u = [], []
    with torch.no_grad():
        lens.eval()
        for start in range(0, len(rows), 4096):
            h, u = model_side(lens, tensors, rows[start : start + 4096], ids[start : start + 4096])
            out_h.append(h.numpy())
            out_u.append(u.numpy())
    return np.vstack(out_h).astype(np.float32), np.vstack(out_u).astype(np.float32)


def export_ranker(lens: ModelLens, space: LensSpace, groups: GroupSet, evidence: EvidenceIndex, out: Path,
                  metadata: dict, metric_higher: dict[str, bool]) -> dict:
    """Write the ranker folder atomically (a temporary sibling renamed into place)."""
    lens = lens.cpu().eval()
    staging = out.with_name(out.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    config = lens.config
    trained = np.zeros(space.n_models, bool)
    trained[np.unique(np.concatenate(groups.members))] = True
    trained[0] = False
    h, u = known_model_sides(lens, space, trained)

    with torch.no_grad():
        n = 3
        rows = torch.export.Dim("n")
        side_inputs = (torch.zeros(n, dtype=torch.long), torch.zeros(n, config.name_dim), torch.zeros(n, TEXT_DIM),
                       torch.zeros(n, dtype=torch.long), torch.zeros(n, dtype=torch.long), torch.zeros(n, N_NUMERIC))
        # wrappers made in eval mode: the exporter restores the wrapper's mode (recursively) afterwards
        export_onnx(_ModelSide(lens).eval(), side_inputs, staging / "model_side.onnx",
                    ["model_id", "name_vector", "text", "size", "family", "numeric"], ["h", "u"], tuple({0: rows} for _ in side_inputs))
        scorer_inputs = (torch.zeros(n, config.hidden), torch.zeros(n, config.rank), torch.zeros(n, dtype=torch.long),
                         torch.zeros(n, dtype=torch.long), torch.zeros(n, N_NUMERIC), torch.zeros(n, config.n_evidence),
                         torch.zeros(1, dtype=torch.long), torch.zeros(1, TEXT_DIM), torch.zeros(1, dtype=torch.long),
                         torch.zeros(1, dtype=torch.long))
        export_onnx(_Scorer(lens).eval(), scorer_inputs, staging / "scorer.onnx", list(SCORER_INPUTS), ["score"],
                    ({0: rows}, {0: rows}, {0: rows}, {0: rows}, {0: rows}, {0: rows}, None, None, None, None))

    languages = LanguageIndex.of_space(space) or LanguageIndex([()] * len(space.dataset_vocab))
    language_codes, language_pointers, language_ids = languages.to_csr()
    np.savez_compressed(
        staging / "arrays.npz",
        dataset_lang_ptr=language_pointers, dataset_lang_ids=language_ids,
        h=h, u=u, size=space.models.size, family=space.models.family, trained=trained, numeric=model_numeric_array(space), n_parameters=space.n_parameters,
        dataset_text=space.dataset_text.astype(np.float16), dataset_base=base_index(space),
        group_dataset=groups.dataset, group_task=groups.task, group_metric=groups.metric,
        ev_model=evidence.model.astype(np.int32), ev_dataset=evidence.dataset.astype(np.int32),
        ev_base=evidence.base.astype(np.int32), ev_task=evidence.task.astype(np.int16), ev_z=evidence.z,
        ev_pct=evidence.pct, ev_starts=evidence.starts, ev_metric=groups.metric[evidence.group].astype(np.int16),
        ev_group=evidence.group.astype(np.int32),
        ev_y=evidence.y, name_table=lens.name_ngrams.weight.detach().numpy().astype(np.float16),
        metric_higher=np.array([metric_higher.get(m, True) for m in space.metric_vocab.items], bool),
        open_weights=_per_model(space.open_weights, space.n_models, -1).astype(np.int8),
    )
    torch.save({"lens_config": config.as_dict(), "state_dict": lens.state_dict()}, staging / "lens.pt")
    vocab = {"models": space.model_names, "datasets": space.dataset_vocab.items, "dataset_bases": space.dataset_base[1:],
             "tasks": space.task_vocab.items, "metrics": space.metric_vocab.items, "families": space.family_vocab.items,
             "languages": language_codes, "licences": _per_model(space.licences, space.n_models, None)[1:]}
    (staging / "vocab.json").write_text(json.dumps(vocab), encoding="utf-8")
    parity = check_parity(lens, space, staging, h, u, groups, evidence)
    manifest = {
        "format": FORMAT,
        "kind": "lensroute-ranker",
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "lens_config": config.as_dict(),
        "parity": parity,
        **metadata,
    }
    manifest["model_version"] = metadata.get("model_version") or hashlib.sha256(
        json.dumps(manifest, sort_keys=True, default=str).encode()).hexdigest()[:12]
    manifest["files"] = {p.name: _sha256(p) for p in sorted(staging.iterdir())}
    (staging / "manifest.json").write_text(json.dumps(manifest, indent=2, default=str) + "\n", encoding="utf-8")
    if out.exists():
        from recommender.ranker_versions import archive_current

        archive_current(out)  # the replaced ranker stays available as a version
    os.replace(staging, out)
    return manifest


def load_lens(path: Path) -> ModelLens:
    """The torch scorer of an exported ranker (`lens.pt`), for parity checks and benchmarks."""
    saved = torch.load(path, weights_only=False)
    lens = ModelLens(LensConfig(**saved["lens_config"]))
    lens.load_state_dict(saved["state_dict"])
    return lens.eval()


def _per_model(values, n_models: int, unknown):  # type: ignore[no-untyped-def]
    """A per-model view as stored, or all unknown for a space built without it."""
    if len(values) == n_models:
        return values
    return np.full(n_models, unknown) if unknown is not None else [None] * n_models


def check_parity(lens: ModelLens, space: LensSpace, folder: Path, h: np.ndarray, u: np.ndarray, groups: GroupSet,
                 evidence: EvidenceIndex, n_datasets: int = 5) -> dict:
    """ONNX scorer vs the torch model on every model for a few datasets: max |Δ| and top-50."""
    from recommender.onnx_session import create_session

    session, _ = create_session(folder / "scorer.onnx", device="cpu")
    similarity = dataset_similarity(space)
    rows = np.arange(space.n_models)
    worst, same_top = 0.0, True
    picks = np.linspace(0, len(groups) - 1, num=min(n_datasets, len(groups))).astype(int)
    for g in picks:
        ds, task, metric = int(groups.dataset[g]), int(groups.task[g]), int(groups.metric[g])
        ev = evidence.query_features(similarity[ds], task, int(base_index(space)[ds]), rows)
        ev[:, N_CORE:] = relative_size(space.n_parameters[rows])
        feeds = {"h": h, "u": u, "size": space.models.size, "family": space.models.family, "numeric": model_numeric_array(space), "evidence": ev,
                 "dataset_id": np.array([ds]), "dataset_text": space.dataset_text[ds][None].astype(np.float32),
                 "task": np.array([task]), "metric": np.array([metric])}
        onnx_scores = session.run(None, feeds)[0]
        with torch.no_grad():
            torch_scores = _Scorer(lens).eval()(*(torch.as_tensor(feeds[k]) for k in SCORER_INPUTS)).numpy()
        worst = max(worst, float(np.max(np.abs(onnx_scores - torch_scores))))
        same_top &= bool(np.array_equal(np.argsort(-onnx_scores, kind="stable")[:50], np.argsort(-torch_scores, kind="stable")[:50]))
    return {"max_abs_diff": worst, "identical_top50": same_top, "datasets_checked": len(picks)}
