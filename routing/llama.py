"""Our own Llama decoder in torch, loaded from a Hugging Face checkpoint, built for export.

Written out (rather than exporting `transformers`' module) so that every transformer *unit* —
the attention block and the MLP block of each layer — is a separate, replaceable call: informed
routing swaps a unit for its forecaster token by token (`routing.informed`). The same module
exports to one ONNX graph with a KV cache:

    inputs   input_ids [B, T], token_mask [B, T], past_mask [B, P], position_ids [B, T],
             past_key / past_value [L, B, KVH, P, D]
    outputs  logits [B, T, V], present_key / present_value [L, B, KVH, P+T, D]

Prefill passes a one-slot dummy past whose mask is 0 (so P ≥ 1 always and one graph serves both
prefill and decode).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn


@dataclass(frozen=True)
class LlamaSpec:
    vocab: int
    hidden: int
    layers: int
    heads: int
    kv_heads: int
    head_dim: int
    intermediate: int
    rms_eps: float
    rope_theta: float
    tied: bool = True

    @classmethod
    def from_hf_config(cls, config) -> LlamaSpec:  # type: ignore[no-untyped-def]
        rope = getattr(config, "rope_parameters", None) or {}
        theta = rope.get("rope_theta") if isinstance(rope, dict) else None
        return cls(
            vocab=config.vocab_size, hidden=config.hidden_size, layers=config.num_hidden_layers,
            heads=config.num_attention_heads, kv_heads=config.num_key_value_heads,
            head_dim=getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads,
            intermediate=config.intermediate_size, rms_eps=float(config.rms_norm_eps),
            rope_theta=float(theta or getattr(config, "rope_theta", 10000.0)),
            tied=bool(getattr(config, "tie_word_embeddings", True)),
        )

    def as_dict(self) -> dict:
        return asdict(self)


class RMSNorm(nn.Module):
    def __init__(self, dim: int, eps: float) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        variance = x.float().pow(2).mean(-1, keepdim=True)
        return (x.float() * torch.rsqrt(variance + self.eps)).to(x.dtype) * self.weight


def rotate_half(x: torch.Tensor) -> torch.Tensor:
    half = x.shape[-1] // 2
    return torch.cat([-x[..., half:], x[..., :half]], dim=-1)


class Attention(nn.Module):
    def __init__(self, spec: LlamaSpec) -> None:
        super().__init__()
        self.spec = spec
        self.q_proj = nn.Linear(spec.hidden, spec.heads * spec.head_dim, bias=False)
        self.k_proj = nn.Linear(spec.hidden, spec.kv_heads * spec.head_dim, bias=False)
        self.v_proj = nn.Linear(spec.hidden, spec.kv_heads * spec.head_dim, bias=False)
        self.o_proj = nn.Linear(spec.heads * spec.head_dim, spec.hidden, bias=False)

    def keys_values(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """K (rotated) and V for every token: computed densely even when a token's query is skipped."""
        b, t, _ = x.shape
        s = self.spec
        k = self.k_proj(x).view(b, t, s.kv_heads, s.head_dim).transpose(1, 2)
        v = self.v_proj(x).view(b, t, s.kv_heads, s.head_dim).transpose(1, 2)
        return k * cos + rotate_half(k) * sin, v

    def attend(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
               bias: torch.Tensor) -> torch.Tensor:
        """Queries of `x` ([B, Q, d], their rotary cos/sin) over all keys; `bias` [B, 1, Q, K]."""
        b, q_len, _ = x.shape
        s = self.spec
        q = self.q_proj(x).view(b, q_len, s.heads, s.head_dim).transpose(1, 2)
        q = q * cos + rotate_half(q) * sin
        groups = s.heads // s.kv_heads
        k = k.repeat_interleave(groups, dim=1)
        v = v.repeat_interleave(groups, dim=1)
        scores = torch.matmul(q, k.transpose(-1, -2)) / math.sqrt(s.head_dim) + bias
        out = torch.matmul(torch.softmax(scores.float(), dim=-1).to(q.dtype), v)
        return self.o_proj(out.transpose(1, 2).reshape(b, q_len, s.heads * s.head_dim))


class MLP(nn.Module):
    def __init__(self, spec: LlamaSpec) -> None:
        super().__init__()
        self.gate_proj = nn.Linear(spec.hidden, spec.intermediate, bias=False)
        self.up_proj = nn.Linear(spec.hidden, spec.intermediate, bias=False)
        self.down_proj = nn.Linear(spec.intermediate, spec.hidden, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))


class Layer(nn.Module):
    def __init__(self, spec: LlamaSpec) -> None:
        super().__init__()
        self.input_layernorm = RMSNorm(spec.hidden, spec.rms_eps)
        self.self_attn = Attention(spec)
        self.post_attention_layernorm = RMSNorm(spec.hidden, spec.rms_eps)
        self.mlp = MLP(spec)


def rotary(spec: LlamaSpec, positions: torch.Tensor, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
    """cos/sin [B, 1, T, D] for integer positions [B, T]."""
    inv_freq = 1.0 / (spec.rope_theta ** (torch.arange(0, spec.head_dim, 2, dtype=torch.float32, device=positions.device) / spec.head_dim))
    freqs = positions.float().unsqueeze(-1) * inv_freq
    emb = torch.cat([freqs, freqs], dim=-1)
    return emb.cos().to(dtype).unsqueeze(1), emb.sin().to(dtype).unsqueeze(1)


def attention_bias(attention_mask: torch.Tensor, positions: torch.Tensor, past: int | torch.Tensor,
                   dtype: torch.dtype) -> torch.Tensor:
    """[B, 1, T, P+T] additive mask: causal by absolute slot, and padding from attention_mask."""
    _, total = attention_mask.shape
    t = positions.shape[1]
    query_slot = torch.arange(t, device=positions.device) + past
    key_slot = torch.arange(total, device=positions.device)
    causal = key_slot.unsqueeze(0) <= query_slot.unsqueeze(1)  # [T, K]
    allowed = causal.unsqueeze(0) & attention_mask.bool().unsqueeze(1)  # [B, T, K]
    return torch.where(allowed, torch.zeros((), dtype=dtype), torch.full((), torch.finfo(dtype).min / 2, dtype=dtype)).unsqueeze(1)


class LlamaCore(nn.Module):
    """A Llama causal LM whose forward takes and returns the stacked KV cache."""

    def __init__(self, spec: LlamaSpec) -> None:
        super().__init__()
        self.spec = spec
        self.embed_tokens = nn.Embedding(spec.vocab, spec.hidden)
        self.layers = nn.ModuleList(Layer(spec) for _ in range(spec.layers))
        self.norm = RMSNorm(spec.hidden, spec.rms_eps)
        self.lm_head = nn.Linear(spec.hidden, spec.vocab, bias=False)
        if spec.tied:
            self.lm_head.weight = self.embed_tokens.weight

    # units, overridable by informed routing ----------------------------------------------------

    def attention_unit(self, index: int, x: torch.Tensor, normed: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor,
                       k: torch.Tensor, v: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        return self.layers[index].self_attn.attend(normed, cos, sin, k, v, bias)

    def mlp_unit(self, index: int, x: torch.Tensor, normed: torch.Tensor) -> torch.Tensor:
        return self.layers[index].mlp(normed)

    def hidden_states(self, input_ids: torch.Tensor, token_mask: torch.Tensor, past_mask: torch.Tensor,
                      position_ids: torch.Tensor, past_key: torch.Tensor,
                      past_value: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        # two masks rather than one of length P+T: torch.export cannot express "P + T" between inputs
        attention_mask = torch.cat([past_mask, token_mask], dim=1)
        x = self.embed_tokens(input_ids)
        cos, sin = rotary(self.spec, position_ids, x.dtype)
        past = past_key.shape[3]
        bias = attention_bias(attention_mask, position_ids, past, x.dtype)
        keys, values = [], []
        for i, layer in enumerate(self.layers):
            normed = layer.input_layernorm(x)
            k_new, v_new = layer.self_attn.keys_values(normed, cos, sin)
            k = torch.cat([past_key[i], k_new], dim=2)
            v = torch.cat([past_value[i], v_new], dim=2)
            keys.append(k)
            values.append(v)
            x = x + self.attention_unit(i, x, normed, cos, sin, k, v, bias)
            x = x + self.mlp_unit(i, x, layer.post_attention_layernorm(x))
        return self.norm(x), torch.stack(keys), torch.stack(values)

    def forward(self, input_ids: torch.Tensor, token_mask: torch.Tensor, past_mask: torch.Tensor,
                position_ids: torch.Tensor, past_key: torch.Tensor,
                past_value: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        hidden, keys, values = self.hidden_states(input_ids, token_mask, past_mask, position_ids, past_key, past_value)
        return self.lm_head(hidden), keys, values

    def empty_past(self, batch: int, dtype: torch.dtype = torch.float32) -> tuple[torch.Tensor, torch.Tensor]:
        """The one-slot dummy past of prefill (masked out by a 0 in attention_mask)."""
        s = self.spec
        shape = (s.layers, batch, s.kv_heads, 1, s.head_dim)
        device = self.embed_tokens.weight.device
        return torch.zeros(shape, dtype=dtype, device=device), torch.zeros(shape, dtype=dtype, device=device)


def from_hf(model) -> LlamaCore:  # type: ignore[no-untyped-def]
    """Copy a transformers LlamaForCausalLM's weights into a LlamaCore."""
    spec = LlamaSpec.from_hf_config(model.config)
    core = LlamaCore(spec)
    state = {k.removeprefix("model."): v for k, v in model.state_dict().items()}
    missing, unexpected = core.load_state_dict(state, strict=False)
    missing = [m for m in missing if not (spec.tied and m == "lm_head.weight")]
    if missing or [u for u in unexpected if "rotary_emb" not in u]:
        raise ValueError(f"checkpoint does not fit the Llama layout: missing {missing[:3]}, unexpected {unexpected[:3]}")
    if spec.tied:
        core.lm_head.weight = core.embed_tokens.weight
    return core.eval()


def prefill_inputs(input_ids: torch.Tensor, pad_mask: torch.Tensor, core: LlamaCore) -> tuple[torch.Tensor, ...]:
    """Graph inputs for a prefill of left- or right-padded `input_ids` with `pad_mask` (1 = token)."""
    batch = input_ids.shape[0]
    positions = (pad_mask.cumsum(-1) - 1).clamp(min=0)
    past_key, past_value = core.empty_past(batch)
    return input_ids, pad_mask, torch.zeros(batch, 1, dtype=pad_mask.dtype, device=pad_mask.device), positions, past_key, past_value


INPUT_NAMES = ["input_ids", "token_mask", "past_mask", "position_ids", "past_key", "past_value"]
OUTPUT_NAMES = ["logits", "present_key", "present_value"]
