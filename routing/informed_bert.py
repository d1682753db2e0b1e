"""Informed routing inside the BERT sentence encoder (all-MiniLM-L6-v2).

The same scheme as the decoder (`routing/informed.py`): per unit (each layer's self-attention and
feed-forward block) a Lightweight Feature Forecaster predicts the unit's output from its input, and
a router decides per token whether to execute the unit or take the forecast; keys and values are
always dense. What changes for an encoder is the training signal: there is no next token, so the
routers train on the quantity the model exists for — the cosine between the routed and the dense
sentence embedding — plus the execute-ratio penalty. Padding never takes execution capacity (its
router score is the minimum) and never enters the losses.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from recommender.progress import NEVER_CANCELLED, CancelToken, Progress, no_progress
from routing.bert import BertCore
from routing.informed import RoutedUnits, RoutingConfig, _take_rows, capacity, fresh_routers


class RoutedBert(RoutedUnits, BertCore):
    """A BertCore with a forecaster and a router per unit (2 × layers units)."""

    def __init__(self, core: BertCore, config: RoutingConfig) -> None:
        super().__init__(core.spec)
        self.load_state_dict(core.state_dict())
        self.init_routing(core.spec.hidden, 2 * core.spec.layers, config)

    def attention_unit(self, index, x, k, v, bias):  # type: ignore[no-untyped-def]
        attn = self.layers[index].attention
        return self._route(2 * index, x, lambda: attn.attend(x, k, v, bias),
                           lambda flat, n: attn.attend(_take_rows(x, flat, 1, n), k, v, bias))

    def mlp_unit(self, index, x):  # type: ignore[no-untyped-def]
        ff = self.layers[index].feed_forward
        return self._route(2 * index + 1, x, lambda: ff(x), lambda flat, n: ff(_take_rows(x, flat, 1, n)))

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, token_type_ids: torch.Tensor) -> torch.Tensor:
        self.score_mask = attention_mask > 0  # padding never wins execution capacity
        try:
            return super().forward(input_ids, attention_mask, token_type_ids)
        finally:
            self.score_mask = None


def text_batches(encodings: Sequence[Sequence[int]], config: RoutingConfig,
                 generator: torch.Generator) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    """Endless batches of whole tokenised texts ([CLS] … [SEP], cut to seq_len), right-padded."""
    if not encodings:
        raise ValueError("no calibration texts")
    while True:
        picks = torch.randint(0, len(encodings), (config.batch,), generator=generator).tolist()
        yield pad_batch([list(encodings[i])[: config.seq_len] for i in picks])


def pad_batch(rows: Sequence[Sequence[int]]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(input_ids, attention_mask, token_type_ids) of right-padded token rows."""
    width = max(len(r) for r in rows)
    ids = torch.zeros(len(rows), width, dtype=torch.long)
    mask = torch.zeros_like(ids)
    for i, row in enumerate(rows):
        ids[i, : len(row)] = torch.tensor(list(row), dtype=torch.long)
        mask[i, : len(row)] = 1
    return ids, mask, torch.zeros_like(ids)


def _device(model: nn.Module) -> torch.device:
    return next(model.parameters()).device


def train_forecasters(model: RoutedBert, encodings: Sequence[Sequence[int]], progress: Progress = no_progress,
                      cancel: CancelToken = NEVER_CANCELLED) -> list[float]:
    """Distil every LFF on the dense encoder's unit inputs/outputs (real tokens only)."""
    config = model.config
    generator = torch.Generator().manual_seed(config.seed)
    optimizer = torch.optim.AdamW(model.lff.parameters(), lr=config.lr_lff, weight_decay=0.0)
    model.mode = "dense"
    curve: list[float] = []
    device = _device(model)
    for step, (ids, mask, types) in zip(range(config.lff_steps), text_batches(encodings, config, generator), strict=False):
        cancel.raise_if_cancelled()
        ids, mask, types = ids.to(device), mask.to(device), types.to(device)
        model.capture = []
        with torch.no_grad():
            model(ids, mask, types)
        captured, model.capture = model.capture, None
        real = mask.bool()
        loss = sum(F.mse_loss(model.lff[unit](x[real]), y[real]) / (y[real].pow(2).mean() + 1e-6)
                   for unit, x, y in captured) / len(captured)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        curve.append(float(loss.detach()))
        progress(step + 1, config.lff_steps, f"forecasters: relative error {curve[-1]:.3f}")
    return curve


def train_routers(model: RoutedBert, encodings: Sequence[Sequence[int]], *, forecast: bool = True,
                  progress: Progress = no_progress, cancel: CancelToken = NEVER_CANCELLED) -> list[dict]:
    """Hard Gumbel-softmax routers on 1 − cos(routed, dense embedding) plus the ratio penalty."""
    config = model.config
    generator = torch.Generator().manual_seed(config.seed + 1)
    optimizer = fresh_routers(model)
    target = 1.0 - config.sparsity
    history = []
    device = _device(model)
    for step, (ids, mask, types) in zip(range(config.router_steps), text_batches(encodings, config, generator), strict=False):
        cancel.raise_if_cancelled()
        ids, mask, types = ids.to(device), mask.to(device), types.to(device)
        model.mode = "dense"
        with torch.no_grad():
            reference = model(ids, mask, types)
        model.mode, model.forecast = "train", forecast
        model.tau = config.tau_start * (config.tau_end / config.tau_start) ** (step / max(config.router_steps - 1, 1))
        model.gates = []
        routed = model(ids, mask, types)
        distance = (1.0 - (routed * reference).sum(-1)).mean()
        real = mask.to(routed.dtype)
        ratios = torch.stack([(g * real).sum() / real.sum() for g in model.gates])
        loss = distance + config.ratio_penalty * ((ratios - target) ** 2).mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        history.append({"step": step, "cosine": float(1.0 - distance.detach()), "execute_ratio": float(ratios.mean().detach())})
        progress(step + 1, config.router_steps, f"routers ({'informed' if forecast else 'skip'}): cosine "
                                                f"{history[-1]['cosine']:.4f}, execute {history[-1]['execute_ratio']:.2f}")
    model.mode, model.gates = "topk", []
    return history


def unit_errors(model: RoutedBert, encodings: Sequence[Sequence[int]], batches: int = 4) -> list[float]:
    """Relative forecast error per unit (ranks units for static dropping)."""
    generator = torch.Generator().manual_seed(model.config.seed + 7)
    model.mode = "dense"
    errors = [0.0] * len(model.lff)
    device = _device(model)
    for _, (ids, mask, types) in zip(range(batches), text_batches(encodings, model.config, generator), strict=False):
        model.capture = []
        with torch.no_grad():
            model(ids.to(device), mask.to(device), types.to(device))
            real = mask.to(device).bool()
            for unit, x, y in model.capture:
                errors[unit] += float(F.mse_loss(model.lff[unit](x[real]), y[real]) / (y[real].pow(2).mean() + 1e-6)) / batches
        model.capture = None
    return errors


def unit_flops(core: BertCore, tokens: int) -> dict[str, float]:
    """Multiply-accumulates ×2 of one layer's parts for `tokens` tokens attending over all of them."""
    s = core.spec
    d = s.hidden
    return {"kv": 2 * tokens * 2 * d * d, "attention": 2 * tokens * (2 * d * d + 2 * tokens * d),
            "mlp": 2 * tokens * 2 * d * s.intermediate}


def theoretical_speedup(core: BertCore, config: RoutingConfig, tokens: int, sparsity: float, method: str = "informed",
                        errors: list[float] | None = None) -> float:
    """Dense FLOPs over routed FLOPs (forecasters and routers on every token, K/V dense)."""
    s = core.spec
    f = unit_flops(core, tokens)
    dense = s.layers * (f["kv"] + f["attention"] + f["mlp"])
    lff = 2 * tokens * 2 * s.hidden * config.rank
    router = 2 * tokens * (s.hidden * config.router_hidden + 2 * config.router_hidden)
    if method == "static":
        dropped = round(sparsity * 2 * s.layers)
        per_unit = (f["attention"] + f["mlp"]) / 2
        return dense / (dense - dropped * per_unit + dropped * lff)
    executed = capacity(tokens, sparsity) / tokens
    extra = 2 * (router + (lff if method != "skip" else 0))
    return dense / (s.layers * (f["kv"] + executed * (f["attention"] + f["mlp"]) + extra))
