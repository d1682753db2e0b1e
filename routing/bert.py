"""Our own BERT encoder (post-LayerNorm, as all-MiniLM-L6-v2) with mean-pooled, normalised
sentence embeddings, built from a transformers BertModel's weights.

Written out so every layer's two units — self-attention and the feed-forward block — are
separate calls that informed routing can wrap (`routing/informed_bert.py`). Inputs:
input_ids [B, T], attention_mask [B, T] (1 = token, right padding), token_type_ids [B, T].
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn


@dataclass(frozen=True)
class BertSpec:
    vocab: int
    hidden: int
    layers: int
    heads: int
    intermediate: int
    max_positions: int
    type_vocab: int
    eps: float

    @classmethod
    def from_hf_config(cls, config) -> BertSpec:  # type: ignore[no-untyped-def]
        return cls(config.vocab_size, config.hidden_size, config.num_hidden_layers, config.num_attention_heads,
                   config.intermediate_size, config.max_position_embeddings, config.type_vocab_size, config.layer_norm_eps)

    @property
    def head_dim(self) -> int:
        return self.hidden // self.heads

    def as_dict(self) -> dict:
        return asdict(self)


class SelfAttention(nn.Module):
    def __init__(self, spec: BertSpec) -> None:
        super().__init__()
        self.spec = spec
        self.query = nn.Linear(spec.hidden, spec.hidden)
        self.key = nn.Linear(spec.hidden, spec.hidden)
        self.value = nn.Linear(spec.hidden, spec.hidden)
        self.output = nn.Linear(spec.hidden, spec.hidden)

    def keys_values(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """[B, H, T, D] keys and values of every token (always dense)."""
        b, t, _ = x.shape
        shape = (b, t, self.spec.heads, self.spec.head_dim)
        return self.key(x).view(shape).transpose(1, 2), self.value(x).view(shape).transpose(1, 2)

    def attend(self, x: torch.Tensor, k: torch.Tensor, v: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        """The unit's output (before the residual) for the query tokens `x` [B, n, d] over all keys."""
        b, n, _ = x.shape
        q = self.query(x).view(b, n, self.spec.heads, self.spec.head_dim).transpose(1, 2)
        scores = q @ k.transpose(-1, -2) / math.sqrt(self.spec.head_dim) + bias
        out = (scores.softmax(-1) @ v).transpose(1, 2).reshape(b, n, self.spec.hidden)
        return self.output(out)


class FeedForward(nn.Module):
    def __init__(self, spec: BertSpec) -> None:
        super().__init__()
        self.up = nn.Linear(spec.hidden, spec.intermediate)
        self.down = nn.Linear(spec.intermediate, spec.hidden)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.down(F.gelu(self.up(x)))


class BertLayer(nn.Module):
    def __init__(self, spec: BertSpec) -> None:
        super().__init__()
        self.attention = SelfAttention(spec)
        self.attention_norm = nn.LayerNorm(spec.hidden, eps=spec.eps)
        self.feed_forward = FeedForward(spec)
        self.output_norm = nn.LayerNorm(spec.hidden, eps=spec.eps)


class BertCore(nn.Module):
    def __init__(self, spec: BertSpec) -> None:
        super().__init__()
        self.spec = spec
        self.word = nn.Embedding(spec.vocab, spec.hidden)
        self.position = nn.Embedding(spec.max_positions, spec.hidden)
        self.token_type = nn.Embedding(spec.type_vocab, spec.hidden)
        self.embed_norm = nn.LayerNorm(spec.hidden, eps=spec.eps)
        self.layers = nn.ModuleList(BertLayer(spec) for _ in range(spec.layers))

    # units: the parts informed routing may approximate per token (overridden by RoutedBert)
    def attention_unit(self, index: int, x: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
                       bias: torch.Tensor) -> torch.Tensor:
        return self.layers[index].attention.attend(x, k, v, bias)

    def mlp_unit(self, index: int, x: torch.Tensor) -> torch.Tensor:
        return self.layers[index].feed_forward(x)

    def hidden_states(self, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                      token_type_ids: torch.Tensor) -> torch.Tensor:
        t = input_ids.shape[1]
        positions = torch.arange(t, device=input_ids.device).unsqueeze(0)
        x = self.embed_norm(self.word(input_ids) + self.position(positions) + self.token_type(token_type_ids))
        bias = (1.0 - attention_mask[:, None, None, :].to(x.dtype)) * torch.finfo(x.dtype).min  # [B, 1, 1, T]
        for i, layer in enumerate(self.layers):
            k, v = layer.attention.keys_values(x)
            x = layer.attention_norm(x + self.attention_unit(i, x, k, v, bias))
            x = layer.output_norm(x + self.mlp_unit(i, x))
        return x

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, token_type_ids: torch.Tensor) -> torch.Tensor:
        """Mean-pooled, L2-normalised sentence embeddings [B, d]."""
        hidden = self.hidden_states(input_ids, attention_mask, token_type_ids)
        mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
        return F.normalize(pooled, p=2, dim=1)


def from_hf(model) -> BertCore:  # type: ignore[no-untyped-def]
    """A BertCore with the weights of a transformers BertModel."""
    spec = BertSpec.from_hf_config(model.config)
    core = BertCore(spec)
    sd = model.state_dict()
    mapped = {
        "word.weight": sd["embeddings.word_embeddings.weight"],
        "position.weight": sd["embeddings.position_embeddings.weight"],
        "token_type.weight": sd["embeddings.token_type_embeddings.weight"],
        "embed_norm.weight": sd["embeddings.LayerNorm.weight"], "embed_norm.bias": sd["embeddings.LayerNorm.bias"],
    }
    for i in range(spec.layers):
        p = f"encoder.layer.{i}."
        for ours, theirs in (("attention.query", "attention.self.query"), ("attention.key", "attention.self.key"),
                             ("attention.value", "attention.self.value"), ("attention.output", "attention.output.dense"),
                             ("attention_norm", "attention.output.LayerNorm"), ("feed_forward.up", "intermediate.dense"),
                             ("feed_forward.down", "output.dense"), ("output_norm", "output.LayerNorm")):
            for part in ("weight", "bias"):
                mapped[f"layers.{i}.{ours}.{part}"] = sd[p + theirs + "." + part]
    core.load_state_dict(mapped)
    return core.eval()
