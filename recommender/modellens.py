"""The ModelLens scorer (torch): one latent space for models, datasets, tasks and metrics.

score(m, g) = MLP(W_m x_m + W_g x_g + W_e e_mg)   residual, from every view of both sides
            + w · e_mg                             direct path for the evidence view
            + u_m · v_g                            low-rank interaction (collaborative signal)
            + prior[size(m), task(g)] + prior[family(m), task(g)]
            + slope[task(g)] · log-size(m)                               size/family prior head

x_m concatenates the model's learned id (dropped to UNK with p≈0.1 while training, so a model
never seen still has a meaningful score), hashed name n-grams, a projection of the frozen text
embedding of its metadata, its size bucket and family; x_g the dataset's learned id (also dropped),
its description embedding, task and metric. The first layer is split in a model half and a
dataset half: serving precomputes the model half for every model, so ranking a new dataset is a
few small matrix products. e_mg is the evidence view (`recommender.evidence`): the model's
results on the datasets most similar to g. A learnable temperature sharpens the listwise and
pairwise losses.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn

from recommender.evidence import N_CORE
from recommender.evidence import N_FEATURES as N_EVIDENCE
from recommender.features import N_SIZE_BUCKETS, N_SIZE_NUMERIC, NAME_BUCKETS, RELEASE_COLUMN

TEXT_DIM = 384


@dataclass(frozen=True)
class LensConfig:
    n_models: int  # including the UNK row 0
    n_datasets: int
    n_tasks: int
    n_metrics: int
    n_families: int
    dim: int = 64
    name_dim: int = 32  # hashed name n-grams: 32k buckets × 32 keeps the shipped table at 2 MB
    hidden: int = 128
    rank: int = 32
    dropout: float = 0.1
    n_evidence: int = N_EVIDENCE
    size_slope_init: float = 0.5

    def as_dict(self) -> dict:
        return asdict(self)


class ModelLens(nn.Module):
    def __init__(self, config: LensConfig) -> None:
        super().__init__()
        c = self.config = config
        self.model_id = nn.Embedding(c.n_models, c.dim)
        self.name_ngrams = nn.EmbeddingBag(NAME_BUCKETS, c.name_dim, mode="mean")
        self.model_text = nn.Linear(TEXT_DIM, c.dim)
        self.size = nn.Embedding(N_SIZE_BUCKETS, 16)
        self.family = nn.Embedding(c.n_families, 16)
        self.dataset_id = nn.Embedding(c.n_datasets, c.dim)
        self.dataset_text = nn.Linear(TEXT_DIM, c.dim)
        self.task = nn.Embedding(c.n_tasks, 16)
        self.metric = nn.Embedding(c.n_metrics, 16)
        model_in, dataset_in = 2 * c.dim + c.name_dim + 32 + N_SIZE_NUMERIC, 2 * c.dim + 32
        self.first_model = nn.Linear(model_in, c.hidden)
        self.first_dataset = nn.Linear(dataset_in, c.hidden, bias=False)
        self.head = nn.Sequential(nn.ReLU(), nn.Dropout(c.dropout), nn.Linear(c.hidden, c.hidden // 2), nn.ReLU(),
                                  nn.Linear(c.hidden // 2, 1))
        self.evidence_hidden = nn.Linear(c.n_evidence, c.hidden, bias=False)
        self.evidence_out = nn.Linear(c.n_evidence, 1)
        self.model_factor = nn.Linear(model_in, c.rank, bias=False)
        self.dataset_factor = nn.Linear(dataset_in, c.rank, bias=False)
        self.prior_size = nn.Embedding(N_SIZE_BUCKETS * c.n_tasks, 1)
        self.prior_slope = nn.Embedding(c.n_tasks, 1)  # per task: how much size helps, on log10(parameters)
        self.prior_family = nn.Embedding(c.n_families * c.n_tasks, 1)
        # per task: how much newer helps, per standardised year. Only here, not in the first layer:
        # as an input it lowered the new-model validation τw (0.412 against 0.424, five runs)
        self.prior_recency = nn.Embedding(c.n_tasks, 1)
        self.log_temperature = nn.Parameter(torch.zeros(()))
        for table in (self.model_id, self.dataset_id):
            nn.init.normal_(table.weight, std=0.02)
        for table in (self.prior_size, self.prior_family, self.prior_recency):
            nn.init.zeros_(table.weight)
        # start from "bigger is better" (one standardised unit ≈ 30x parameters): the newest,
        # never-seen models are where this matters, and the data then corrects it per task
        nn.init.constant_(self.prior_slope.weight, c.size_slope_init)

    # -- the two halves ---------------------------------------------------------------------------

    def model_inputs(self, ids: torch.Tensor, ngram_ids: torch.Tensor, ngram_offsets: torch.Tensor,
                     text: torch.Tensor, size: torch.Tensor, family: torch.Tensor, numeric: torch.Tensor) -> torch.Tensor:
        """`numeric` is [N, N_NUMERIC] (features.model_numeric); column 0 is standardised log10(parameters)."""
        return self.model_inputs_named(ids, self.name_ngrams(ngram_ids, ngram_offsets), text, size, family, numeric)

    def model_inputs_named(self, ids: torch.Tensor, name_vector: torch.Tensor, text: torch.Tensor, size: torch.Tensor,
                           family: torch.Tensor, numeric: torch.Tensor) -> torch.Tensor:
        """`model_inputs` with the mean of the name's n-gram rows already taken, as the ranker takes it (no EmbeddingBag in ONNX)."""
        return torch.cat([self.model_id(ids), name_vector, self.model_text(text), self.size(size), self.family(family),
                          numeric[:, :N_SIZE_NUMERIC]], dim=-1)

    def dataset_inputs(self, ids: torch.Tensor, text: torch.Tensor, task: torch.Tensor, metric: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.dataset_id(ids), self.dataset_text(text), self.task(task), self.metric(metric)], dim=-1)

    def model_side(self, x_m: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(first-layer model half incl. bias, interaction factor) — what serving precomputes."""
        return self.first_model(x_m), self.model_factor(x_m)

    def dataset_side(self, x_g: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.first_dataset(x_g), self.dataset_factor(x_g)

    def combine(self, h_m: torch.Tensor, u_m: torch.Tensor, size: torch.Tensor, family: torch.Tensor,
                h_g: torch.Tensor, v_g: torch.Tensor, task: torch.Tensor, evidence: torch.Tensor,
                numeric: torch.Tensor) -> torch.Tensor:
        """Raw scores for aligned rows (model row i with dataset row i); `numeric` as in model_inputs."""
        residual = self.head(h_m + h_g + self.evidence_hidden(evidence)).squeeze(-1) + self.evidence_out(evidence).squeeze(-1)
        interaction = (u_m * v_g).sum(-1)
        n_tasks = self.config.n_tasks
        prior = (self.prior_size(size * n_tasks + task) + self.prior_family(family * n_tasks + task)).squeeze(-1)
        prior = (prior + self.prior_slope(task).squeeze(-1) * numeric[:, 0]
                 + self.prior_recency(task).squeeze(-1) * numeric[:, RELEASE_COLUMN])
        return residual + interaction + prior

    @property
    def temperature(self) -> torch.Tensor:
        return torch.exp(self.log_temperature)

    def forward(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, ...]:
        """Training forward over a packed batch (the path DDP wraps): (raw, temperature-scaled), and
        with `batch["cold"]` also the same rows scored as if every model were new (unknown id, no
        results to cite) — the cold-start pass that trains the metadata views on their own.

        `batch` holds the unique models of the batch (`m_*`), its groups (`g_*`), and per row the
        index of its model (`row_model`) and group (`row_group`).
        """
        x_g = self.dataset_inputs(batch["g_id"], batch["g_text"], batch["g_task"], batch["g_metric"])
        h_g, v_g = self.dataset_side(x_g)
        outputs = []
        passes = [(batch["m_id"], batch["row_evidence"])]
        if "cold" in batch:
            cold_evidence = batch["row_evidence"].clone()
            cold_evidence[:, :N_CORE] = 0.0  # no results to cite; the size context stays
            passes.append((torch.zeros_like(batch["m_id"]), cold_evidence))
        rm, rg = batch["row_model"], batch["row_group"]
        for ids, evidence in passes:
            x_m = self.model_inputs(ids, batch["m_ngram_ids"], batch["m_ngram_offsets"], batch["m_text"],
                                    batch["m_size"], batch["m_family"], batch["m_numeric"])
            h_m, u_m = self.model_side(x_m)
            raw = self.combine(h_m[rm], u_m[rm], batch["m_size"][rm], batch["m_family"][rm], h_g[rg], v_g[rg],
                               batch["g_task"][rg], evidence, batch["m_numeric"][rm])
            outputs += [raw, raw / self.temperature]
        return tuple(outputs)
