"""Informed routing in the sentence encoder, on a tiny random BERT made here (fast), plus the
real all-MiniLM-L6-v2 weights for the parity of our BERT with transformers."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch


@pytest.fixture(scope="module")
def tiny_bert():  # type: ignore[no-untyped-def]
    """A tiny BERT whose units matter (a larger init than the default, as for the tiny Llama)."""
    from transformers import BertConfig, BertModel

    from routing.bert import from_hf

    torch.manual_seed(0)
    config = BertConfig(vocab_size=300, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64,
                        max_position_embeddings=128, initializer_range=0.2)
    hf = BertModel(config, add_pooling_layer=False).eval()
    return hf, from_hf(hf)


def structured_texts(n: int = 60, seed: int = 0) -> list[list[int]]:
    """Token sequences with structure (repeated phrases), [CLS]=1 … [SEP]=2, varied lengths."""
    rng = np.random.default_rng(seed)
    phrases = [list(rng.integers(5, 300, 6)) for _ in range(15)]
    return [[1, *[t for i in rng.integers(0, 15, rng.integers(2, 6)) for t in phrases[i]], 2] for _ in range(n)]


def pad(rows: list[list[int]]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    from routing.informed_bert import pad_batch

    return pad_batch(rows)


def test_our_bert_matches_transformers_with_padding(tiny_bert) -> None:  # type: ignore[no-untyped-def]
    hf, core = tiny_bert
    ids, mask, types = pad(structured_texts(4))
    with torch.no_grad():
        hidden = hf(input_ids=ids, attention_mask=mask, token_type_ids=types).last_hidden_state
        m = mask.unsqueeze(-1).float()
        reference = torch.nn.functional.normalize((hidden * m).sum(1) / m.sum(1), dim=1)
        assert (core(ids, mask, types) - reference).abs().max() < 1e-5


@pytest.fixture(scope="module")
def trained_bert(tiny_bert):  # type: ignore[no-untyped-def]
    from routing.informed import RoutingConfig
    from routing.informed_bert import RoutedBert, train_forecasters, train_routers

    _, core = tiny_bert
    config = RoutingConfig(sparsity=0.25, rank=8, router_hidden=8, lff_steps=150, router_steps=60, batch=8, seq_len=32)
    model = RoutedBert(core, config)
    data = structured_texts(80)
    curve = train_forecasters(model, data)
    informed = train_routers(model, data)
    state = {k: v.clone() for k, v in model.routers.state_dict().items()}
    return model.eval(), data, curve, informed, state


def test_encoder_forecasters_learn_and_routers_meet_the_target(trained_bert) -> None:  # type: ignore[no-untyped-def]
    _, _, curve, history, _ = trained_bert
    assert np.mean(curve[-10:]) < 0.7 * np.mean(curve[:10])
    assert abs(np.mean([h["execute_ratio"] for h in history[-5:]]) - 0.75) < 0.15


def test_encoder_topk_is_dense_at_zero_sparsity_and_padding_takes_no_capacity(trained_bert, tiny_bert) -> None:  # type: ignore[no-untyped-def]
    model, data, _, _, _ = trained_bert
    _, core = tiny_bert
    ids, mask, types = pad(data[:6])
    with torch.no_grad():
        dense = core(ids, mask, types)
        model.mode, model.sparsity = "topk", 0.0
        assert (model(ids, mask, types) - dense).abs().max() < 1e-5
        # the same text alone and inside a padded batch: padding must not steal execution slots
        model.sparsity = 0.25
        shortest = int(mask.sum(1).argmin())
        alone = model(*pad([data[shortest]]))
        batched = model(ids, mask, types)[shortest : shortest + 1]
    assert (alone - batched).abs().max() < 1e-5 or bool((mask.sum(1) == mask.shape[1]).all())


def test_encoder_forecasts_beat_skipping_at_equal_sparsity(trained_bert) -> None:  # type: ignore[no-untyped-def]
    from routing.informed_bert import train_routers

    model, data, _, _, informed_state = trained_bert
    held_out = structured_texts(40, seed=9)
    ids, mask, types = pad(held_out)
    with torch.no_grad():
        model.mode = "dense"
        dense = model(ids, mask, types)
        model.mode, model.forecast, model.sparsity = "topk", True, 0.5
        informed = float((model(ids, mask, types) * dense).sum(-1).mean())
    train_routers(model, data, forecast=False)
    with torch.no_grad():
        model.mode, model.forecast = "topk", False
        skip = float((model(ids, mask, types) * dense).sum(-1).mean())
    model.routers.load_state_dict(informed_state)
    model.forecast = True
    assert 1 - informed < 0.7 * (1 - skip), (informed, skip)


def test_routed_encoder_exports_and_matches_torch(trained_bert, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    import onnx

    from recommender.onnx_session import create_session
    from routing.bench_embedding import export_encoder

    model, data, _, _, _ = trained_bert
    model.mode, model.sparsity, model.forecast = "topk", 0.25, True
    path = tmp_path / "routed-encoder.onnx"
    export_encoder(model, path)
    ops = {node.op_type for node in onnx.load(str(path)).graph.node}
    assert {"TopK", "Gather", "ScatterND"} <= ops and not ops & {"If", "Loop", "NonZero"}
    session, _ = create_session(path, device="cpu")
    for rows in (data[:1], data[:5]):
        ids, mask, types = pad(rows)
        with torch.no_grad():
            expected = model(ids, mask, types).numpy()
        got = session.run(None, {"input_ids": ids.numpy(), "attention_mask": mask.numpy(), "token_type_ids": types.numpy()})[0]
        assert np.abs(got - expected).max() < 1e-4


def test_encoder_bench_rows_follow_the_json_contract(tiny_bert) -> None:  # type: ignore[no-untyped-def]
    from routing.bench import METHODS
    from routing.bench_embedding import bench_encoder
    from routing.informed import RoutingConfig

    _, core = tiny_bert
    data = structured_texts(40)
    config = RoutingConfig(rank=8, router_hidden=8, lff_steps=10, router_steps=5, batch=4, seq_len=32)
    retrieval = (structured_texts(8, seed=3), structured_texts(8, seed=4))
    rows = [r.as_json() for r in bench_encoder("tiny-bert", core, data, structured_texts(10, seed=5), retrieval, config,
                                               sparsities=(0.0, 0.5), device="cpu", lengths=(16, 48), repeats=2)]
    assert [(r["method"], r["sparsity"]) for r in rows] == [("dense", 0.0)] + [(m, 0.5) for m in METHODS[1:]]
    for row in rows:
        assert set(row) == {"model", "method", "sparsity", "provider", "quality", "prefill_ms", "decode_ms", "speedup",
                            "theoretical_speedup"}
        assert set(row["quality"]) == {"cosine", "retrieval_acc"} and row["decode_ms"] is None
        assert set(row["prefill_ms"]) == {"16", "48"} and row["speedup"] > 0
    assert rows[0]["quality"]["cosine"] == 1.0 and rows[0]["speedup"] == 1.0
    assert all(r["theoretical_speedup"] > 1.0 for r in rows[1:])


@pytest.mark.builtin_models
def test_our_bert_matches_the_real_minilm() -> None:
    from transformers import AutoModel, AutoTokenizer

    from recommender.text_encoder import minilm_weights_dir
    from routing.bert import from_hf

    source = minilm_weights_dir()
    hf = AutoModel.from_pretrained(str(source)).eval()
    tokenizer = AutoTokenizer.from_pretrained(str(source))
    batch = tokenizer(["Which planet is known as the Red Planet?", "Mars"], padding=True, return_tensors="pt")
    with torch.no_grad():
        hidden = hf(**batch).last_hidden_state
        m = batch["attention_mask"].unsqueeze(-1).float()
        reference = torch.nn.functional.normalize((hidden * m).sum(1) / m.sum(1), dim=1)
        ours = from_hf(hf)(batch["input_ids"], batch["attention_mask"], batch["token_type_ids"])
    assert (ours - reference).abs().max() < 1e-5
