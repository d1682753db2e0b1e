"""Training ModelLens: listwise Plackett–Luce + pairwise BPR + pointwise z-score regression.

Groups are sampled whole (large leaderboards are subsampled to `max_group` members per epoch, a
different random subset each epoch), AdamW with gradient clipping, early stopping on the
validation weighted Kendall τ, a checkpoint every epoch that `resume` continues from, fixed seeds.
Runs data-parallel under `torchrun` (DDP; gloo on CPU, nccl on CUDA): each rank takes every
world-size-th group of the same seeded permutation; all ranks evaluate the same validation set
on the same weights, and rank 0's validation τ is broadcast, so they take one early-stopping
decision. The checkpoint (rank 0 writes it) keeps every rank's RNG state, so a resumed run,
data-parallel or not, is the run that was interrupted.
"""

from __future__ import annotations

import copy
import hashlib
import json
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from recommender.errors import Cancelled, FormatError, RuntimeUnavailableError
from recommender.evidence import N_CORE, EvidenceIndex, dataset_similarity
from recommender.metrics import weighted_kendall_tau
from recommender.modellens import LensConfig, ModelLens
from recommender.progress import NEVER_CANCELLED, CancelToken, Progress, no_progress
from recommender.space import GroupSet, LensSpace
from recommender.train_config import TrainConfig


@dataclass
class TrainResult:
    model: ModelLens
    evidence: EvidenceIndex | None = None
    history: list[dict] = field(default_factory=list)
    best_epoch: int = 0
    best_val_tau: float = float("nan")
    rows_seen: int = 0
    seconds: float = 0.0  # this process's training time (after a resume: only what was left)
    resumed_rows: int = 0  # rows_seen that a resumed checkpoint had already counted
    resumed_epochs: int = 0  # epochs a resumed checkpoint had already finished

    @property
    def rows_trained(self) -> int:
        """Rows this process trained on: a resumed run's earlier epochs took time it did not measure."""
        return self.rows_seen - self.resumed_rows

    @property
    def rows_per_second(self) -> float:
        return self.rows_trained / max(self.seconds, 1e-9)


def seed_everything(seed: int) -> None:
    """Seeds alone do not make a run repeatable: some multi-threaded CPU kernels (the backward of
    the name n-gram EmbeddingBag, scatter-adds) sum in a thread-dependent order, which moved the
    new-model τ_w by up to 0.01 between identical runs (measured). Deterministic algorithms cost
    nothing measurable here; on CUDA an op without a deterministic kernel warns instead of failing."""
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # deterministic cuBLAS, read at CUDA init
    torch.use_deterministic_algorithms(True, warn_only=True)
    torch.manual_seed(seed)
    np.random.seed(seed)
    import random

    random.seed(seed)


def resolve_device(name: str) -> torch.device:
    if name == "cuda":
        if not torch.cuda.is_available():
            raise RuntimeUnavailableError("--device cuda was asked for but torch sees no CUDA device")
        return torch.device("cuda")
    if name not in ("cpu", "auto"):
        raise RuntimeUnavailableError(f"unknown device {name!r} (cpu or cuda)")
    return torch.device("cuda" if name == "auto" and torch.cuda.is_available() else "cpu")


class SpaceTensors:
    """The space's views as tensors on one device (gathered per batch)."""

    def __init__(self, space: LensSpace, device: torch.device) -> None:
        views = space.models
        self.device = device
        self.size = torch.as_tensor(views.size, device=device)
        self.family = torch.as_tensor(views.family, device=device)
        self.text = torch.as_tensor(views.text, device=device)
        self.ngram_ids = views.ngram_ids
        self.ngram_offsets = views.ngram_offsets
        self.dataset_text = torch.as_tensor(space.dataset_text, device=device)
        self.numeric = torch.as_tensor(space.numeric, device=device)
        self._lengths = np.diff(np.append(views.ngram_offsets, len(views.ngram_ids)))

    def batch(self, models: np.ndarray, model_ids: np.ndarray, datasets: np.ndarray, dataset_ids: np.ndarray,
              task: np.ndarray, metric: np.ndarray, row_model: np.ndarray, row_group: np.ndarray,
              row_evidence: np.ndarray) -> dict[str, torch.Tensor]:
        dev = self.device
        index = torch.as_tensor(models, device=dev)
        ngram_ids, offsets = self.ngram_bags(models)
        return {
            "m_id": torch.as_tensor(model_ids, device=dev), "m_ngram_ids": ngram_ids, "m_ngram_offsets": offsets,
            "m_text": self.text[index], "m_size": self.size[index], "m_family": self.family[index],
            "m_numeric": self.numeric[index],
            "g_id": torch.as_tensor(dataset_ids, device=dev), "g_text": self.dataset_text[torch.as_tensor(datasets, device=dev)],
            "g_task": torch.as_tensor(task, device=dev), "g_metric": torch.as_tensor(metric, device=dev),
            "row_model": torch.as_tensor(row_model, device=dev), "row_group": torch.as_tensor(row_group, device=dev),
            "row_evidence": torch.as_tensor(row_evidence, dtype=torch.float32, device=dev),
        }

    def ngram_bags(self, rows: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        starts, lengths = self.ngram_offsets[rows], self._lengths[rows]
        ids = np.concatenate([self.ngram_ids[s : s + n] for s, n in zip(starts, lengths, strict=True)]) if len(rows) else np.zeros(0, np.int64)
        offsets = np.concatenate([[0], np.cumsum(lengths)[:-1]]) if len(rows) else np.zeros(0, np.int64)
        return torch.as_tensor(ids, device=self.device), torch.as_tensor(offsets, device=self.device)


def model_side(model: ModelLens, tensors: SpaceTensors, rows: np.ndarray, id_rows: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    """First-layer halves for space rows `rows`; `id_rows` says which learned id each row uses
    (0 = unknown: dropout while training, new models at evaluation)."""
    ngram_ids, offsets = tensors.ngram_bags(rows)
    index = torch.as_tensor(rows, device=tensors.device)
    x_m = model.model_inputs(torch.as_tensor(id_rows, device=tensors.device), ngram_ids, offsets,
                             tensors.text[index], tensors.size[index], tensors.family[index], tensors.numeric[index])
    return model.model_side(x_m)


def dataset_side(model: ModelLens, tensors: SpaceTensors, dataset: np.ndarray, dataset_ids: np.ndarray,
                 task: np.ndarray, metric: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    dev = tensors.device
    x_g = model.dataset_inputs(torch.as_tensor(dataset_ids, device=dev), tensors.dataset_text[torch.as_tensor(dataset, device=dev)],
                               torch.as_tensor(task, device=dev), torch.as_tensor(metric, device=dev))
    return model.dataset_side(x_g)


def score_groups(model: ModelLens, tensors: SpaceTensors, groups: GroupSet, members: list[np.ndarray],
                 evidence: list[np.ndarray], unknown_models: set[int] | None = None,
                 unknown_datasets: bool = False) -> list[np.ndarray]:
    """Predicted raw scores for `members[g]` in each group (inference mode); `evidence[g]` holds
    the evidence features of those members."""
    model.eval()
    out = []
    with torch.no_grad():
        dataset_ids = np.zeros(len(groups), np.int64) if unknown_datasets else groups.dataset
        h_g, v_g = dataset_side(model, tensors, groups.dataset, dataset_ids, groups.task, groups.metric)
        for g, rows in enumerate(members):
            ids = rows.copy()
            if unknown_models:
                ids[np.isin(rows, list(unknown_models))] = 0
            h_m, u_m = model_side(model, tensors, rows, ids)
            index = torch.as_tensor(rows, device=tensors.device)
            n = len(rows)
            task = torch.full((n,), int(groups.task[g]), device=tensors.device)
            scores = model.combine(h_m, u_m, tensors.size[torch.as_tensor(rows, device=tensors.device)],
                                   tensors.family[torch.as_tensor(rows, device=tensors.device)],
                                   h_g[g].expand(n, -1), v_g[g].expand(n, -1), task,
                                   torch.as_tensor(evidence[g], dtype=torch.float32, device=tensors.device),
                                   tensors.numeric[index])
            out.append(scores.float().cpu().numpy())
    return out


def validation_tau(model: ModelLens, tensors: SpaceTensors, val: GroupSet, evidence: list[np.ndarray],
                   unknown_models: set[int] | None, unknown_datasets: bool) -> float:
    if not len(val):
        return float("nan")
    predicted = score_groups(model, tensors, val, val.members, evidence, unknown_models, unknown_datasets)
    taus = [weighted_kendall_tau(val.z[g], predicted[g]) for g in range(len(val))]
    return float(np.nanmean(taus))


def _losses(raw: torch.Tensor, scaled: torch.Tensor, z: torch.Tensor, segments: list[tuple[int, int]],
            config: TrainConfig, rng: np.random.Generator) -> tuple[torch.Tensor, dict[str, float]]:
    # listwise: Plackett–Luce over each whole (sampled) group, padded into one tensor
    longest = max(e - s for s, e in segments)
    order = torch.zeros((len(segments), longest), dtype=torch.long, device=raw.device)
    valid = torch.zeros((len(segments), longest), dtype=torch.bool, device=raw.device)
    for i, (s, e) in enumerate(segments):
        ranked = s + torch.argsort(z[s:e], descending=True)
        order[i, : e - s] = ranked
        valid[i, : e - s] = True
    padded = torch.where(valid, scaled[order], torch.full_like(order, -1e4, dtype=scaled.dtype))
    tail = torch.flip(torch.logcumsumexp(torch.flip(padded, [1]), dim=1), [1])
    listwise = ((tail - padded) * valid).sum(1) / valid.sum(1)
    loss_list = listwise.mean()
    # pairwise: BPR on random ordered pairs within each group
    firsts, seconds = [], []
    for s, e in segments:
        n = e - s
        a = rng.integers(0, n, size=config.bpr_pairs) + s
        b = rng.integers(0, n, size=config.bpr_pairs) + s
        firsts.append(a)
        seconds.append(b)
    a = torch.as_tensor(np.concatenate(firsts), device=raw.device)
    b = torch.as_tensor(np.concatenate(seconds), device=raw.device)
    diff = z[a] - z[b]
    keep = diff.abs() > 1e-6
    sign = torch.sign(diff[keep])
    loss_pair = -F.logsigmoid(sign * (scaled[a[keep]] - scaled[b[keep]])).mean() if bool(keep.any()) else raw.sum() * 0
    # pointwise: regress the raw score on the z-score
    loss_point = F.mse_loss(raw, z)
    total = config.w_listwise * loss_list + config.w_pairwise * loss_pair + config.w_pointwise * loss_point
    return total, {"listwise": float(loss_list.detach()), "pairwise": float(loss_pair.detach()), "pointwise": float(loss_point.detach())}


# what may differ between an interrupted run and the run that resumes it
_RESUMABLE_CHANGES = {"epochs", "patience", "device"}


def _read_checkpoint(path: Path, device: torch.device, lens_config: LensConfig, config: TrainConfig, groups: str) -> dict:
    """A checkpoint this run can continue, or a one-line reason it cannot (unreadable, or written by
    another configuration or catalogue: its weights would not fit, or would be silently wrong)."""
    try:
        saved = torch.load(path, map_location=device, weights_only=False)
        written_lens, written_config = saved["lens_config"], saved["train_config"]
    except Exception as exc:  # a truncated or foreign file: torch raises several kinds
        raise FormatError(f"the checkpoint {path} cannot be read ({type(exc).__name__}); train without --resume "
                          "to start over") from exc
    changed = sorted(k for k, v in config.as_dict().items() if k not in _RESUMABLE_CHANGES and written_config.get(k) != v)
    if written_lens != lens_config.as_dict() or saved.get("groups", groups) != groups or changed:
        what = f"with other training settings ({', '.join(changed)})" if changed else "for another catalogue"
        raise FormatError(f"the checkpoint {path} was written {what}; train without --resume to start over")
    return saved


def groups_fingerprint(*parts: GroupSet) -> str:
    """What the groups trained and validated on hold (members and z): a checkpoint continues only on
    the same, since a catalogue can change without changing the model's shape (a new result)."""
    digest = hashlib.sha256()
    for groups in parts:
        for members, z in zip(groups.members, groups.z, strict=True):
            digest.update(np.asarray(members, np.int64).tobytes())
            digest.update(np.asarray(z, np.float32).tobytes())
        digest.update(b"|")
    return digest.hexdigest()[:16]


def _rng_state(device: torch.device) -> dict:
    return {"torch_rng": torch.get_rng_state(),
            **({"cuda_rng": torch.cuda.get_rng_state_all()} if device.type == "cuda" else {})}


def _restore_rng(state: dict) -> None:
    """Dropout draws continue where they stopped, so resuming is the same as never stopping."""
    if "torch_rng" in state:
        torch.set_rng_state(state["torch_rng"].cpu())  # map_location may have moved it to the device
    if "cuda_rng" in state and torch.cuda.is_available() and len(state["cuda_rng"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all([s.cpu() for s in state["cuda_rng"]])


def gather_from_ranks(value: object, world: int) -> list:
    """Every rank's `value`, in rank order, on every rank (one collective call: all ranks must make
    it): under DDP each rank draws its own dropout and counts its own rows."""
    if world == 1:
        return [value]
    gathered: list = [None] * world
    torch.distributed.all_gather_object(gathered, value)
    return gathered


def _resume_state(saved: dict, rank: int, world: int, path: Path) -> tuple[dict, int]:
    """This rank's RNG state and rows seen; a checkpoint of another world size is refused, since
    the groups each rank takes (and so every step) depend on it."""
    written = saved.get("world", 1)
    if written != world:
        raise FormatError(f"the checkpoint {path} was written by a run of {written} process(es), this one has {world}; "
                          f"resume with the same number (torchrun --nproc_per_node {written}), or train without --resume "
                          "to start over")
    if "ranks" in saved:
        mine = saved["ranks"][rank]
        return mine, mine["rows_seen"]
    return saved, saved["rows_seen"]  # a single-process checkpoint written before per-rank states


def _mean_over_ranks(losses: list[float], device: torch.device, world: int) -> float:
    """The epoch's mean loss over every rank's batches, so the history (which rank 0 writes and a
    resume hands to every rank) is the run's, not one rank's share of it."""
    if world == 1:
        return float(np.mean(losses)) if losses else float("nan")
    total = torch.tensor([float(np.sum(losses)), float(len(losses))], dtype=torch.float64, device=device)
    torch.distributed.all_reduce(total)
    return float(total[0] / total[1]) if float(total[1]) else float("nan")


def _distributed() -> tuple[int, int]:
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return 0, 1


def train(
    space: LensSpace,
    train_groups: GroupSet,
    val_groups: GroupSet,
    config: TrainConfig,
    *,
    evidence: EvidenceIndex | None = None,
    unknown_models: set[int] | None = None,
    unknown_datasets: bool = False,
    checkpoint: Path | None = None,
    resume: bool = False,
    progress: Progress = no_progress,
    cancel: CancelToken = NEVER_CANCELLED,
) -> TrainResult:
    """Train on `train_groups`; early-stop on `val_groups` (whose models/datasets are scored as
    unknown when the split holds them out, mirroring the test condition). With no `val_groups` (a
    refit on everything) every epoch runs and the last one's weights are the result."""
    if not len(train_groups):
        raise RuntimeUnavailableError("nothing to train on: no ranking group survived the split")
    seed_everything(config.seed)
    device = resolve_device(config.device)
    rank, world = _distributed()
    lens_config = LensConfig(space.n_models, len(space.dataset_vocab), len(space.task_vocab), len(space.metric_vocab),
                             len(space.family_vocab), dim=config.dim, hidden=config.hidden, rank=config.rank)
    model = ModelLens(lens_config).to(device)
    engine: nn.Module = model
    if world > 1:
        engine = torch.nn.parallel.DistributedDataParallel(model)
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    tensors = SpaceTensors(space, device)
    evidence = evidence or EvidenceIndex.from_groups(space, train_groups)
    similarity = dataset_similarity(space)
    train_evidence = evidence.group_features(space, similarity, train_groups)
    val_evidence = evidence.group_features(space, similarity, val_groups)
    result = TrainResult(model, evidence=evidence)
    start_epoch, best_state, bad_epochs = 0, None, 0
    validating = len(val_groups) > 0  # a refit on everything has no held-out groups
    fingerprint = groups_fingerprint(train_groups, val_groups) if checkpoint is not None else ""
    if resume and checkpoint is not None and checkpoint.exists():
        saved = _read_checkpoint(checkpoint, device, lens_config, config, fingerprint)
        model.load_state_dict(saved["model"])
        optimizer.load_state_dict(saved["optimizer"])
        start_epoch, result.history = saved["epoch"] + 1, saved["history"]
        result.best_epoch, result.best_val_tau = saved["best_epoch"], saved["best_val_tau"]
        best_state, bad_epochs = saved["best_state"], saved["bad_epochs"]
        mine, result.rows_seen = _resume_state(saved, rank, world, checkpoint)
        result.resumed_rows, result.resumed_epochs = result.rows_seen, start_epoch
        _restore_rng(mine)
        if bad_epochs >= config.patience:
            start_epoch = config.epochs  # it had stopped early: nothing left to run
    started = time.perf_counter()
    for epoch in range(start_epoch, config.epochs):
        rng = np.random.default_rng(config.seed * 100_003 + epoch)
        order = rng.permutation(len(train_groups))
        # equal shares, so every rank takes the same number of steps (DDP all-reduces each one);
        # the few groups left over differ every epoch
        order = order[: len(order) - len(order) % world][rank::world]
        model.train()
        epoch_losses: list[float] = []
        for start in range(0, len(order), config.batch_groups):
            cancel.raise_if_cancelled()
            batch = order[start : start + config.batch_groups]
            rows, zs, evs, segments = [], [], [], []
            for g in batch:
                members, z, ev = train_groups.members[g], train_groups.z[g], train_evidence[g]
                if len(members) > config.max_group:
                    pick = rng.choice(len(members), size=config.max_group, replace=False)
                    members, z, ev = members[pick], z[pick], ev[pick]
                    z = (z - z.mean()) / (z.std() or 1.0)
                segments.append((sum(len(r) for r in rows), sum(len(r) for r in rows) + len(members)))
                rows.append(members)
                zs.append(z)
                evs.append(ev)
            flat = np.concatenate(rows)
            unique, inverse = np.unique(flat, return_inverse=True)
            id_rows = unique.copy()
            dropped = rng.random(len(unique)) < config.id_dropout
            id_rows[dropped] = 0
            row_evidence = np.concatenate(evs)
            # a dropped id stands for a model never seen: it has no results to cite either
            row_evidence[dropped[inverse], :N_CORE] = 0.0
            dataset_ids = train_groups.dataset[batch].copy()
            dataset_ids[rng.random(len(batch)) < config.dataset_id_dropout] = 0
            group_of_row = np.concatenate([np.full(e - s, i) for i, (s, e) in enumerate(segments)])
            packed = tensors.batch(unique, id_rows, train_groups.dataset[batch], dataset_ids, train_groups.task[batch],
                                   train_groups.metric[batch], inverse, group_of_row, row_evidence)
            if config.cold_weight > 0:
                packed["cold"] = torch.ones(1, device=device)
            outputs = engine(packed)
            raw, scaled = outputs[0], outputs[1]
            z_t = torch.as_tensor(np.concatenate(zs), dtype=raw.dtype, device=device)
            loss, _parts = _losses(raw, scaled, z_t, segments, config, rng)
            if config.cold_weight > 0:
                cold_loss, _ = _losses(outputs[2], outputs[3], z_t, segments, config, rng)
                loss = loss + config.cold_weight * cold_loss
            optimizer.zero_grad(set_to_none=True)
            loss.backward()  # under DDP the gradients are averaged across ranks here
            torch.nn.utils.clip_grad_norm_(model.parameters(), config.clip)
            optimizer.step()
            epoch_losses.append(float(loss.detach()))
            result.rows_seen += len(flat)
        tau = validation_tau(model, tensors, val_groups, val_evidence, unknown_models, unknown_datasets)
        if world > 1 and validating:  # one decision for all ranks, or one stops while another waits on it
            shared = torch.tensor([tau], dtype=torch.float64, device=device)
            torch.distributed.broadcast(shared, src=0)
            tau = float(shared[0])
        entry = {"epoch": epoch, "loss": _mean_over_ranks(epoch_losses, device, world), "val_tau_w": tau}
        result.history.append(entry)
        improved = not math.isnan(tau) and (math.isnan(result.best_val_tau) or tau > result.best_val_tau + 1e-4)
        if not validating:
            result.best_epoch = epoch  # nothing to stop on or to pick by: the last epoch is the result
        elif improved or best_state is None:
            result.best_val_tau, result.best_epoch, bad_epochs = tau, epoch, 0
            best_state = copy.deepcopy(model.state_dict())
        else:
            bad_epochs += 1
        progress(epoch + 1, config.epochs, f"epoch {epoch + 1}: loss {entry['loss']:.3f}, val τw {tau:.3f}")
        if checkpoint is not None:
            ranks = gather_from_ranks({**_rng_state(device), "rows_seen": result.rows_seen}, world)
            if rank == 0:
                partial = checkpoint.with_suffix(".partial")
                torch.save({"model": model.state_dict(), "optimizer": optimizer.state_dict(), "epoch": epoch,
                            "history": result.history, "best_epoch": result.best_epoch,
                            "best_val_tau": result.best_val_tau, "best_state": best_state, "bad_epochs": bad_epochs,
                            "groups": fingerprint, "world": world, "ranks": ranks,
                            "lens_config": lens_config.as_dict(), "train_config": config.as_dict()}, partial)
                os.replace(partial, checkpoint)  # whole or not at all: an interrupt mid-write keeps the last one
        if bad_epochs >= config.patience:
            break
    del engine
    if best_state is not None:
        model.load_state_dict(best_state)
    result.seconds = time.perf_counter() - started
    model.eval()
    return result


def history_json(result: TrainResult) -> str:
    return json.dumps(result.history)


__all__ = ["Cancelled", "TrainConfig", "TrainResult", "gather_from_ranks", "score_groups", "train"]
