"""Informed routing inside a local decoder: execute a unit for a token, or take its forecast.

Every transformer unit (the attention block and the MLP block of each layer) gets
* a Lightweight Feature Forecaster (LFF): a low-rank MLP d → r → d that predicts the unit's output
  from the unit's (normalised) input, distilled against the frozen dense model; and
* a router d → h → 2 that decides per token: execute the unit, or approximate it with the LFF.

Keys and values are always computed densely, so later tokens can attend to a token whose own
attention was approximated. Routers train with hard Gumbel-softmax (straight-through, annealed
temperature) on the language-model loss computed *with the forecasts substituted*, plus a penalty
that pulls each unit's execute ratio to 1 − sparsity.

Modes of the routed model (`RoutedLlama.mode`):
  dense     every unit executes (the reference)
  train     soft mixture with Gumbel gates (training only)
  topk      capacity-capped: the k = ceil((1 − s)·T) tokens with the largest router margins
            execute, gathered, run, and scattered back over the forecasts — no data-dependent
            shapes and no If, so it exports to ONNX and runs on the CPU and CUDA providers
  random    the same capacity, tokens chosen at random (a baseline)
  static    whole units replaced by their forecasts (a baseline)
Setting `forecast=False` turns the LFF off (execute-or-skip: the skipped output is 0).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

from recommender.progress import NEVER_CANCELLED, CancelToken, Progress, no_progress
from routing.llama import LlamaCore


@dataclass
class RoutingConfig:
    sparsity: float = 0.25
    rank: int = 64
    router_hidden: int = 24
    lff_steps: int = 200
    router_steps: int = 120
    batch: int = 4
    seq_len: int = 128
    lr_lff: float = 3e-3
    lr_router: float = 3e-3
    tau_start: float = 2.0
    tau_end: float = 0.3
    ratio_penalty: float = 10.0
    seed: int = 0

    def as_dict(self) -> dict:
        return asdict(self)


class LFF(nn.Module):
    """Low-rank forecaster of a unit's output from its input."""

    def __init__(self, dim: int, rank: int) -> None:
        super().__init__()
        self.down = nn.Linear(dim, rank)
        self.up = nn.Linear(rank, dim)
        nn.init.zeros_(self.up.weight)
        nn.init.zeros_(self.up.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.up(F.gelu(self.down(x)))


class Router(nn.Module):
    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, 2))

    def margin(self, x: torch.Tensor) -> torch.Tensor:
        """execute logit − approximate logit, per token [B, T]."""
        logits = self.net(x)
        return logits[..., 0] - logits[..., 1]


def _permille(sparsity: float) -> int:
    if not 0.0 <= sparsity < 1.0:
        raise ValueError(f"sparsity must be in [0, 1), got {sparsity}")
    return round(sparsity * 1000)


def capacity(tokens: int, sparsity: float) -> int:
    """Tokens executed per unit: ⌈(1 − s)·T⌉ with s in thousandths; at least one for T ≥ 1."""
    return (tokens * (1000 - _permille(sparsity)) + 999) // 1000


def _flat_index(index: torch.Tensor, tokens: int | torch.SymInt) -> torch.Tensor:
    """[B, k] token positions → [B·k] rows of the [B·T, …] flattened batch."""
    offsets = torch.arange(index.shape[0], device=index.device).unsqueeze(1) * tokens
    return (index + offsets).reshape(-1)


def _take_rows(x: torch.Tensor, flat: torch.Tensor, tokens_dim: int, k: int | torch.SymInt) -> torch.Tensor:
    """The executed tokens' rows of `x` (tokens on `tokens_dim`, every dim between batch and it of
    size 1): one row Gather (ONNX Gather on axis 0), not an element-wise GatherElements."""
    shape = list(x.shape)
    rows = x.reshape(-1, *shape[tokens_dim + 1 :])[flat]
    shape[tokens_dim] = k
    return rows.reshape(shape)


class RoutedUnits:
    """Per-unit forecasters and routers, and the execute-or-approximate step, for any core whose
    units are called as `_route(unit, unit_input, run_all, run_some)` (RoutedLlama, RoutedBert)."""

    lff: nn.ModuleList
    routers: nn.ModuleList

    def init_routing(self, dim: int, units: int, config: RoutingConfig) -> None:
        self.config = config
        self.lff = nn.ModuleList(LFF(dim, config.rank) for _ in range(units))
        self.routers = nn.ModuleList(Router(dim, config.router_hidden) for _ in range(units))
        self.mode = "dense"
        self.forecast = True
        self.sparsity = config.sparsity
        self.static_units: set[int] = set()
        self.tau = config.tau_start
        self.gates: list[torch.Tensor] = []
        self.capture: list[tuple[int, torch.Tensor, torch.Tensor]] | None = None
        self.score_mask: torch.Tensor | None = None
        # fixed random probes: "random routing" scores tokens by a hash-like projection, so the
        # choice is arbitrary yet reproducible and exportable (no RandomUniform in the graph)
        probes = torch.randn(units, dim, generator=torch.Generator().manual_seed(config.seed + 3))
        self.register_buffer("random_probes", probes, persistent=False)  # type: ignore[attr-defined]
        for p in self.base_parameters():
            p.requires_grad_(False)

    def base_parameters(self) -> Iterator[nn.Parameter]:
        routing = {id(p) for p in self.lff.parameters()} | {id(p) for p in self.routers.parameters()}
        return (p for p in self.parameters() if id(p) not in routing)  # type: ignore[attr-defined]

    # -- one unit ----------------------------------------------------------------------------------

    def _route(self, unit: int, normed: torch.Tensor, run_all, run_some) -> torch.Tensor:  # type: ignore[no-untyped-def]
        mode = self.mode
        if mode == "dense":
            out = run_all()
            if self.capture is not None:
                self.capture.append((unit, normed.detach(), out.detach()))
            return out
        forecast = self.lff[unit](normed) if self.forecast else torch.zeros_like(normed)
        if mode == "static":
            return forecast if unit in self.static_units else run_all()
        if mode == "train":
            margin = self.routers[unit].margin(normed)
            logits = torch.stack([margin, torch.zeros_like(margin)], dim=-1)
            gate = F.gumbel_softmax(logits, tau=self.tau, hard=True)[..., 0]
            self.gates.append(gate)
            return gate.unsqueeze(-1) * run_all() + (1 - gate.unsqueeze(-1)) * forecast
        t = normed.shape[1]
        k = capacity(t, self.sparsity) if not isinstance(t, torch.SymInt) else _sym_capacity(t, self.sparsity)
        if mode == "random":
            scores = torch.frac((normed @ self.random_probes[unit]) * 1000.0)
        else:
            scores = self.routers[unit].margin(normed)
        if self.score_mask is not None:  # padding (an encoder's batch) never takes capacity
            scores = scores.masked_fill(~self.score_mask, torch.finfo(scores.dtype).min)
        b, d = normed.shape[0], normed.shape[-1]
        if isinstance(k, torch.SymInt):
            # k padding slots that always lose: the exporter then sees k ≤ T + k without having to
            # prove ⌈(1 − s)·T⌉ ≤ T (which its range analysis cannot); the chosen rows are all < T
            scores = torch.cat([scores, torch.full((b, k), torch.finfo(scores.dtype).min, dtype=scores.dtype, device=scores.device)], 1)
        index = torch.topk(scores, k, dim=1).indices  # [B, k], best first
        flat = _flat_index(index, t)
        executed = run_some(flat, k)  # [B, k, d]
        if self.score_mask is not None:
            # per-text capacity ⌈(1 − s)·length⌉: a text's embedding must not depend on how much
            # padding its batch-mates add (slots past its own capacity keep the forecast)
            lengths = self.score_mask.sum(1, keepdim=True)
            own = (lengths * (1000 - _permille(self.sparsity)) + 999) // 1000
            valid = (torch.arange(index.shape[1], device=index.device).unsqueeze(0) < own).unsqueeze(-1)
            executed = torch.where(valid, executed, _take_rows(forecast, flat, 1, k))
        # rows written back over the forecasts: one ScatterND of whole rows
        out = torch.index_put(forecast.reshape(b * t, d), (flat,), executed.reshape(b * k, d))
        return out.reshape(b, t, d)


class RoutedLlama(RoutedUnits, LlamaCore):
    """A LlamaCore with a forecaster and a router per unit (2 × layers units)."""

    def __init__(self, core: LlamaCore, config: RoutingConfig) -> None:
        super().__init__(core.spec)
        self.load_state_dict(core.state_dict())
        if core.spec.tied:
            self.lm_head.weight = self.embed_tokens.weight
        self.init_routing(core.spec.hidden, 2 * core.spec.layers, config)

    def attention_unit(self, index, x, normed, cos, sin, k, v, bias):  # type: ignore[no-untyped-def]
        attn = self.layers[index].self_attn
        return self._route(
            2 * index, normed,
            lambda: attn.attend(normed, cos, sin, k, v, bias),
            lambda flat, n: attn.attend(_take_rows(normed, flat, 1, n), _take_rows(cos, flat, 2, n),
                                        _take_rows(sin, flat, 2, n), k, v, _take_rows(bias, flat, 2, n)),
        )

    def mlp_unit(self, index, x, normed):  # type: ignore[no-untyped-def]
        mlp = self.layers[index].mlp
        return self._route(2 * index + 1, normed, lambda: mlp(normed), lambda flat, n: mlp(_take_rows(normed, flat, 1, n)))


def _sym_capacity(t, sparsity: float):  # type: ignore[no-untyped-def]
    """`capacity` kept symbolic in T for torch.export: one floor division of a sum, whose bounds
    the exporter's range analysis follows (k ≥ 1, so no 0/1 specialisation)."""
    return (t * (1000 - _permille(sparsity)) + 999) // 1000


# --- training -------------------------------------------------------------------------------------


def batches(token_ids: Sequence[Sequence[int]], config: RoutingConfig, generator: torch.Generator) -> Iterator[torch.Tensor]:
    """Endless random windows of `seq_len` tokens from the concatenated calibration stream."""
    stream = torch.tensor([t for ids in token_ids for t in ids], dtype=torch.long)
    if len(stream) <= config.seq_len + 1:
        raise ValueError(f"calibration text too short: {len(stream)} tokens for windows of {config.seq_len}")
    while True:
        starts = torch.randint(0, len(stream) - config.seq_len - 1, (config.batch,), generator=generator)
        yield torch.stack([stream[s : s + config.seq_len + 1] for s in starts.tolist()])


def _inputs(model: RoutedLlama, window: torch.Tensor) -> tuple[torch.Tensor, ...]:
    ids = window[:, :-1]
    b, t = ids.shape
    past_key, past_value = model.empty_past(b)
    device = ids.device
    return (ids, torch.ones(b, t, dtype=torch.long, device=device), torch.zeros(b, 1, dtype=torch.long, device=device),
            torch.arange(t, device=device).expand(b, t), past_key, past_value)


def model_device(model: nn.Module) -> torch.device:
    return next(model.parameters()).device


def train_forecasters(model: RoutedLlama, token_ids: Sequence[Sequence[int]], progress: Progress = no_progress,
                      cancel: CancelToken = NEVER_CANCELLED) -> list[float]:
    """Distil every LFF on the dense model's unit inputs/outputs (all tokens); returns the loss curve."""
    config = model.config
    generator = torch.Generator().manual_seed(config.seed)
    optimizer = torch.optim.AdamW(model.lff.parameters(), lr=config.lr_lff, weight_decay=0.0)
    model.mode = "dense"
    curve = []
    device = model_device(model)
    for step, window in zip(range(config.lff_steps), batches(token_ids, config, generator), strict=False):
        cancel.raise_if_cancelled()
        window = window.to(device)
        model.capture = []
        with torch.no_grad():
            model(*_inputs(model, window))
        captured, model.capture = model.capture, None
        loss = sum(F.mse_loss(model.lff[unit](x), y) / (y.pow(2).mean() + 1e-6) for unit, x, y in captured) / len(captured)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        curve.append(float(loss.detach()))
        progress(step + 1, config.lff_steps, f"forecasters: relative error {curve[-1]:.3f}")
    return curve


def fresh_routers(model: RoutedUnits) -> torch.optim.Optimizer:
    """Routers re-initialised (seeded) with their optimiser: each mode (informed, skip) trains its
    own from the same start."""
    torch.manual_seed(model.config.seed)
    for router in model.routers:
        for layer in router.net:
            if isinstance(layer, nn.Linear):
                layer.reset_parameters()
    return torch.optim.AdamW(model.routers.parameters(), lr=model.config.lr_router, weight_decay=0.0)


def train_routers(model: RoutedLlama, token_ids: Sequence[Sequence[int]], *, forecast: bool = True,
                  progress: Progress = no_progress, cancel: CancelToken = NEVER_CANCELLED) -> list[dict]:
    """Hard Gumbel-softmax routers on the LM loss with forecasts substituted, plus the ratio penalty."""
    config = model.config
    generator = torch.Generator().manual_seed(config.seed + 1)
    optimizer = fresh_routers(model)
    model.mode, model.forecast = "train", forecast
    target = 1.0 - config.sparsity
    history = []
    device = model_device(model)
    for step, window in zip(range(config.router_steps), batches(token_ids, config, generator), strict=False):
        cancel.raise_if_cancelled()
        window = window.to(device)
        model.tau = config.tau_start * (config.tau_end / config.tau_start) ** (step / max(config.router_steps - 1, 1))
        model.gates = []
        logits, _, _ = model(*_inputs(model, window))
        lm = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), window[:, 1:].reshape(-1))
        ratios = torch.stack([g.mean() for g in model.gates])
        penalty = ((ratios - target) ** 2).mean()
        loss = lm + config.ratio_penalty * penalty
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        history.append({"step": step, "lm": float(lm.detach()), "execute_ratio": float(ratios.mean().detach())})
        progress(step + 1, config.router_steps, f"routers ({'informed' if forecast else 'skip'}): LM {history[-1]['lm']:.3f}, "
                                                f"execute {history[-1]['execute_ratio']:.2f}")
    model.mode, model.gates = "topk", []
    return history


def unit_errors(model: RoutedLlama, token_ids: Sequence[Sequence[int]], windows: int = 4) -> list[float]:
    """Relative forecast error per unit on calibration windows (ranks units for static dropping)."""
    generator = torch.Generator().manual_seed(model.config.seed + 7)
    model.mode = "dense"
    errors = [0.0] * len(model.lff)
    device = model_device(model)
    for _, window in zip(range(windows), batches(token_ids, model.config, generator), strict=False):
        window = window.to(device)
        model.capture = []
        with torch.no_grad():
            model(*_inputs(model, window))
            for unit, x, y in model.capture:
                errors[unit] += float(F.mse_loss(model.lff[unit](x), y) / (y.pow(2).mean() + 1e-6)) / windows
        model.capture = None
    return errors


def choose_static_units(errors: list[float], sparsity: float) -> set[int]:
    """The units whose forecasts are best, as many as the sparsity asks for."""
    n = round(sparsity * len(errors))
    return set(sorted(range(len(errors)), key=lambda u: errors[u])[:n])


# --- cost ---------------------------------------------------------------------------------------------


def unit_flops(core: LlamaCore, tokens: int, context: int) -> dict[str, float]:
    """Multiply-accumulates ×2 per token for each part of one layer, for `tokens` new tokens that
    attend over `context` keys; attention scores and values counted for the query side."""
    s = core.spec
    d, q_dim, kv_dim = s.hidden, s.heads * s.head_dim, s.kv_heads * s.head_dim
    return {
        "kv": 2 * tokens * d * 2 * kv_dim,
        "attention": 2 * tokens * (d * q_dim + q_dim * d + 2 * context * q_dim),
        "mlp": 2 * tokens * 3 * d * s.intermediate,
        "head": 2 * tokens * d * s.vocab,
    }


def theoretical_speedup(core: LlamaCore, config: RoutingConfig, tokens: int, sparsity: float, forecast: bool = True) -> float:
    """Dense FLOPs over routed FLOPs (forecasters and routers on every token, K/V dense)."""
    s = core.spec
    f = unit_flops(core, tokens, tokens // 2 + 1)
    dense = s.layers * (f["kv"] + f["attention"] + f["mlp"]) + f["head"]
    executed = capacity(tokens, sparsity) / tokens
    extra_per_unit = 2 * tokens * (2 * s.hidden * config.rank * forecast + s.hidden * config.router_hidden + 2 * config.router_hidden)
    routed = s.layers * (f["kv"] + executed * (f["attention"] + f["mlp"]) + 2 * extra_per_unit) + f["head"]
    return dense / routed
