"""Local model runtime and informed routing, on tiny random models made here plus the real built-ins."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from recommender.errors import FormatError, NotFoundError
from tests.conftest import REPO


@pytest.fixture(scope="module")
def tiny_core():  # type: ignore[no-untyped-def]
    from transformers import LlamaConfig, LlamaForCausalLM

    from routing.llama import from_hf

    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=300, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                         num_key_value_heads=2, max_position_embeddings=256, tie_word_embeddings=True)
    hf = LlamaForCausalLM(config).eval()
    return hf, from_hf(hf)


def test_our_llama_matches_transformers_with_padding_and_cache(tiny_core) -> None:  # type: ignore[no-untyped-def]
    from routing.llama import prefill_inputs

    hf, core = tiny_core
    ids = torch.randint(0, 300, (2, 9))
    pad = torch.ones(2, 9, dtype=torch.long)
    pad[1, :3] = 0  # left padding
    with torch.no_grad():
        reference = hf(input_ids=ids, attention_mask=pad).logits
        logits, keys, values = core(*prefill_inputs(ids, pad, core))
        assert (reference[0] - logits[0]).abs().max() < 1e-5
        assert (reference[1, 3:] - logits[1, 3:]).abs().max() < 1e-5
        step = torch.randint(0, 300, (2, 1))
        full = hf(input_ids=torch.cat([ids, step], 1), attention_mask=torch.cat([pad, torch.ones(2, 1, dtype=torch.long)], 1)).logits[:, -1]
        past_mask = torch.cat([torch.zeros(2, 1, dtype=torch.long), pad], 1)
        cached = core(step, torch.ones(2, 1, dtype=torch.long), past_mask, pad.sum(-1, keepdim=True), keys, values)[0][:, -1]
    assert (full - cached).abs().max() < 1e-5


# a ChatML-like chat format in the tiny vocabulary (each marker is one whitespace-split token)
TINY_CHAT = {"start": "", "roles": {"system": ["w2 ", " w3 "], "user": ["w4 ", " w3 "], "assistant": ["w5 ", " w3 "]},
             "default_system": None, "generation": "w5 "}


def tiny_model_folder(core, tmp_path: Path, name: str = "tiny-llama", chat: dict | None = None) -> Path:  # type: ignore[no-untyped-def]
    """A complete local model folder: ONNX with KV cache, a real tokenizer trimmed to the vocab
    (and, given `chat`, a multi-turn chat format in its manifest)."""
    from tokenizers import Tokenizer, models, pre_tokenizers

    from routing.builtins import export_llama

    folder = tmp_path / name
    folder.mkdir()
    export_llama(core, folder)
    vocab = {f"w{i}": i for i in range(core.spec.vocab)}
    tokenizer = Tokenizer(models.WordLevel(vocab, unk_token="w0"))
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer.save(str(folder / "tokenizer.json"))
    (folder / "lensroute-model.json").write_text(json.dumps({
        "name": name, "kind": "causal-lm", "max_length": 64, "vocab_size": core.spec.vocab,
        "spec": core.spec.as_dict(), "eos_token_ids": [1], **({"chat": chat} if chat else {})}))
    return folder


def test_local_model_folder_runs_scoring_and_generation(tiny_core, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from routing.local_models import add, get, installed, remove
    from routing.runtime import open_model

    _, core = tiny_core
    folder = tiny_model_folder(core, tmp_path)
    model = add(folder)
    assert [m.name for m in installed()] == ["tiny-llama"]
    runtime = open_model(get("tiny-llama"), device="cpu")
    scores = runtime.score_options("w5 w6 w7", ["w8", "w9 w10", "w11"])
    assert scores.shape == (3,) and np.isfinite(scores).all()
    # option scores agree with the torch model's log-likelihoods
    with torch.no_grad():
        from routing.llama import prefill_inputs

        ids = torch.tensor([[5, 6, 7, 9, 10]])
        logits = core(*prefill_inputs(ids, torch.ones_like(ids), core))[0].log_softmax(-1)
        expected = float(logits[0, 2, 9] + logits[0, 3, 10])
    assert scores[1] == pytest.approx(expected, abs=1e-4)
    text = runtime.generate("w5 w6", max_new_tokens=4)
    assert isinstance(text, str)
    long = runtime.tokenize([" ".join(["w3"] * 100)])
    assert long.truncated == [True] and long.ids.shape[1] == 64  # truncated to max_length, and said so
    assert remove("tiny-llama") == model.path and not installed()


def test_a_conversation_is_rendered_in_the_chat_format_and_cut_oldest_first(tiny_core, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from routing.chat_format import Turn
    from routing.local_models import LocalModel
    from routing.runtime import open_model

    _, core = tiny_core

    def runtime(name: str, chat: dict | None):  # type: ignore[no-untyped-def]
        folder = tiny_model_folder(core, tmp_path, name, chat)
        return open_model(LocalModel(name, "causal-lm", folder, json.loads((folder / "lensroute-model.json").read_text())),
                          device="cpu")

    chatty = runtime("chatty", TINY_CHAT)
    system, earlier = Turn("system", "w10"), [Turn("user", "w11 w12"), Turn("assistant", "w13")]
    assert chatty.conversation_prompt([system, *earlier], "w14") == "w2 w10 w3 w4 w11 w12 w3 w5 w13 w3 w4 w14 w3 w5 "
    # without a chat format in its manifest a model answers the last message alone, as before
    assert runtime("plain", None).conversation_prompt([system, *earlier], "w14") == "w14"

    # 64 tokens, 8 reserved for the reply: each exchange below is 10 tokens, so the oldest go first,
    # a reply never stays without its question, and the system turn stays
    exchanges = [Turn(role, f"w{20 + i} w{21 + i} w{22 + i}") for i in range(5) for role in ("user", "assistant")]
    kept, dropped = chatty.fitting_context([system, *exchanges], "w40", reserve=8)
    assert kept[0] == system and kept[1].role == "user" and kept[1:] == exchanges[-len(kept) + 1 :]
    assert dropped == 10 - (len(kept) - 1) and dropped % 2 == 0 and dropped > 0
    assert chatty.count_tokens([chatty.conversation_prompt(kept, "w40")]) <= 64 - 8
    assert chatty.fitting_context(earlier, "w40", reserve=8) == (earlier, 0)  # what fits is kept whole
    # a budget over half the length reserves half, so a big max_tokens does not cost the conversation
    assert chatty.fitting_context(earlier, "w40", reserve=1000) == (earlier, 0)
    # the reply stops at the model's length ("length"), however large its budget
    reply = chatty.generate_reply(" ".join(f"w{10 + i % 50}" for i in range(60)), max_new_tokens=100)
    produced = chatty.count_tokens([reply.text])
    assert produced <= 64 - 60 and (reply.finish_reason == "length") == (produced == 64 - 60)
    # its usage: the 60 tokens read, and every token generated (the end token too, when it came)
    assert reply.prompt_tokens == 60 and reply.completion_tokens == produced + (reply.finish_reason == "stop")


def test_bad_model_folders_are_clear_errors(tiny_core, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from routing.local_models import add

    _, core = tiny_core
    with pytest.raises(NotFoundError):
        add(tmp_path / "missing")
    bare = tmp_path / "bare"
    bare.mkdir()
    with pytest.raises(FormatError, match=r"lensroute-model\.json"):
        add(bare)
    folder = tiny_model_folder(core, tmp_path, "broken")
    (folder / "model.onnx").write_bytes(b"garbage")
    with pytest.raises(Exception, match="cannot load ONNX model"):
        add(folder)
    folder = tiny_model_folder(core, tmp_path, "mismatch")
    from tokenizers import Tokenizer, models

    Tokenizer(models.WordLevel({f"t{i}": i for i in range(1000)}, unk_token="t0")).save(str(folder / "tokenizer.json"))
    with pytest.raises(FormatError, match="do not belong together"):
        add(folder)


def test_cuda_asked_for_but_missing_falls_back_and_says_so(tiny_core, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:  # type: ignore[no-untyped-def]
    import logging

    import onnxruntime as ort

    from recommender.onnx_session import create_session

    _, core = tiny_core
    folder = tiny_model_folder(core, tmp_path)
    if "CUDAExecutionProvider" in ort.get_available_providers() and any(Path("/dev").glob("nvidia[0-9]*")):
        pytest.skip("a GPU is present here")
    with caplog.at_level(logging.WARNING, logger="lensroute.onnx"):
        _, info = create_session(folder / "model.onnx", device="cuda")
    assert info.provider == "CPUExecutionProvider"
    assert "CUDA not used" in caplog.text


# --- informed routing ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def routing_core():  # type: ignore[no-untyped-def]
    """A tiny Llama whose units matter: at the default init (std 0.02) every unit's output is so
    small next to the residual stream that dropping any of them changes nothing measurable."""
    from transformers import LlamaConfig, LlamaForCausalLM

    from routing.llama import from_hf

    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=300, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                         num_key_value_heads=2, max_position_embeddings=256, tie_word_embeddings=True, initializer_range=0.2)
    return from_hf(LlamaForCausalLM(config).eval())


@pytest.fixture(scope="module")
def trained_routed(routing_core):  # type: ignore[no-untyped-def]
    from routing.informed import RoutedLlama, RoutingConfig, train_forecasters, train_routers

    core = routing_core
    config = RoutingConfig(sparsity=0.25, rank=8, router_hidden=8, lff_steps=150, router_steps=40, batch=4, seq_len=32)
    model = RoutedLlama(core, config)
    rng = np.random.default_rng(0)
    # a stream with structure (repeated phrases) so forecasts and routing have something to learn
    phrases = [list(rng.integers(2, 300, 12)) for _ in range(20)]
    data = [[t for i in rng.integers(0, 20, 30) for t in phrases[i]] for _ in range(6)]
    curve = train_forecasters(model, data)
    history = train_routers(model, data)
    return model.eval(), data, curve, history


def test_forecasters_learn_and_routers_meet_the_execute_target(trained_routed) -> None:  # type: ignore[no-untyped-def]
    _, _, curve, history = trained_routed
    assert np.mean(curve[-10:]) < np.mean(curve[:10])
    assert abs(np.mean([h["execute_ratio"] for h in history[-5:]]) - 0.75) < 0.15


def test_topk_routing_is_dense_at_zero_sparsity_and_executes_the_capacity(trained_routed, routing_core) -> None:  # type: ignore[no-untyped-def]
    from routing.informed import capacity
    from routing.llama import prefill_inputs

    model, _, _, _ = trained_routed
    core = routing_core
    ids = torch.randint(0, 300, (1, 20))
    inputs = prefill_inputs(ids, torch.ones_like(ids), core)
    with torch.no_grad():
        dense = core(*inputs)[0]
        model.mode, model.sparsity = "topk", 0.0
        assert (model(*inputs)[0] - dense).abs().max() < 1e-5
        model.sparsity = 0.25
        routed = model(*inputs)[0]
    assert capacity(20, 0.25) == 15 and capacity(1, 0.9) == 1
    assert (routed - dense).abs().max() > 0


def test_forecasts_beat_skipping_at_equal_sparsity(trained_routed) -> None:  # type: ignore[no-untyped-def]
    """Informed routing (forecast substituted) against execute-or-skip, each with its own trained
    routers, at the same capacity. (Informed vs random routing is measured on the real SmolLM2 by
    `lensroute models bench`: a random tiny model has no tokens that are easier than others.)"""
    from routing.bench import quality
    from routing.informed import _inputs, batches, train_routers

    model, data, _, _ = trained_routed
    windows = [w for _, w in zip(range(4), batches(data, model.config, torch.Generator().manual_seed(5)), strict=False)]
    model.mode = "dense"
    with torch.no_grad():
        dense = [model(*_inputs(model, w))[0] for w in windows]
    model.mode, model.forecast, model.sparsity = "topk", True, 0.5
    informed = quality(model, dense, windows)
    state = {k: v.clone() for k, v in model.routers.state_dict().items()}
    train_routers(model, data, forecast=False)
    model.mode, model.forecast = "topk", False
    skip = quality(model, dense, windows)
    model.routers.load_state_dict(state)
    model.forecast = True
    assert informed["kl"] < 0.9 * skip["kl"]


def test_routed_graph_exports_without_data_dependent_shapes_and_matches_torch(trained_routed, routing_core, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    import onnx

    from recommender.lens_export import export_onnx
    from recommender.onnx_session import create_session
    from routing.bench import _export_routed
    from routing.llama import INPUT_NAMES, prefill_inputs

    model, _, _, _ = trained_routed
    core = routing_core
    model.mode, model.sparsity, model.forecast = "topk", 0.25, True
    path = tmp_path / "routed.onnx"
    _export_routed(model, path, export_onnx)
    ops = {node.op_type for node in onnx.load(str(path)).graph.node}
    assert {"TopK", "Gather", "ScatterND"} <= ops and not ops & {"If", "Loop", "NonZero", "GatherElements", "ScatterElements"}
    session, _ = create_session(path, device="cpu")
    for tokens in (7, 33):
        ids = torch.randint(0, 300, (1, tokens))
        inputs = prefill_inputs(ids, torch.ones_like(ids), core)
        with torch.no_grad():
            expected = model(*inputs)[0].numpy()
        got = session.run(["logits"], {n: t.numpy() for n, t in zip(INPUT_NAMES, inputs, strict=True)})[0]
        assert np.abs(got - expected).max() < 1e-4


def test_theoretical_speedup_grows_with_sparsity(tiny_core) -> None:  # type: ignore[no-untyped-def]
    from routing.informed import RoutingConfig, theoretical_speedup

    _, core = tiny_core
    config = RoutingConfig(rank=8, router_hidden=8)
    values = [theoretical_speedup(core, config, 512, s) for s in (0.0, 0.25, 0.5)]
    assert values[0] < 1.0 < values[1] < values[2]  # at s = 0 the forecasters and routers are pure cost


# --- the real built-ins (slow, still run in CI) ---------------------------------------------------


@pytest.mark.builtin_models
@pytest.mark.slow
def test_real_smollm_builtin_exports_and_answers(tmp_path: Path) -> None:
    from routing.builtins import build_smollm
    from routing.local_models import LocalModel
    from routing.runtime import open_model

    manifest = build_smollm(tmp_path / "smollm")
    assert manifest["check"]["max_abs_logit_diff_vs_torch"] < 1e-3
    runtime = open_model(LocalModel(manifest["name"], "causal-lm", tmp_path / "smollm", manifest), device="cpu")
    answer = runtime.generate(runtime.chat_prompt("What is the capital of France?"), max_new_tokens=12)
    assert "Paris" in answer
    # the chat template became plain strings (checked against the template when built): a
    # follow-up question is answered in the light of the conversation before it
    from routing.chat_format import Turn

    assert runtime.chat is not None and runtime.chat.default_system.startswith("You are a helpful AI assistant")
    assert runtime.conversation_prompt([], "Hi") == runtime.chat_prompt("Hi")  # one turn: the prompt as before
    context = [Turn("user", "Tell me about France."), Turn("assistant", "France is a country in Western Europe.")]
    assert "Paris" in runtime.generate(runtime.conversation_prompt(context, "What is its capital city?"), max_new_tokens=12)
    scores = runtime.score_options(runtime.chat_prompt("Which planet is known as the Red Planet?"), ["Mars", "Venus", "Saturn"])
    assert int(np.argmax(scores)) == 0


@pytest.mark.builtin_models
def test_real_minilm_builtin_matches_torch(encoder: Path) -> None:
    manifest = json.loads((encoder / "lensroute-model.json").read_text())
    assert manifest["check"]["min_cosine_to_torch"] >= 0.9999


def test_models_cli_lists_json_and_rejects_bad_folders(tmp_path: Path) -> None:
    env = {**os.environ}
    listed = subprocess.run([sys.executable, "-m", "app", "models", "list", "--json"], capture_output=True, text=True,
                            env=env, cwd=REPO)
    assert listed.returncode == 0 and json.loads(listed.stdout) == []
    bad = subprocess.run([sys.executable, "-m", "app", "models", "add", str(tmp_path)], capture_output=True, text=True,
                         env=env, cwd=REPO)
    assert bad.returncode == 2 and "lensroute-model.json" in bad.stderr and "Traceback" not in bad.stderr


def test_bench_rows_cover_every_method_and_sparsity_with_the_json_contract(routing_core) -> None:  # type: ignore[no-untyped-def]
    from routing.bench import METHODS, bench_core
    from routing.informed import RoutingConfig

    rng = np.random.default_rng(1)
    phrases = [list(rng.integers(2, 300, 12)) for _ in range(20)]
    data = [[t for i in rng.integers(0, 20, 30) for t in phrases[i]] for _ in range(6)]
    config = RoutingConfig(rank=8, router_hidden=8, lff_steps=20, router_steps=10, batch=2, seq_len=32)
    rows = [r.as_json() for r in bench_core("tiny", routing_core, data[:4], data[4:], config, sparsities=(0.0, 0.5),
                                            device="cpu", lengths=(16, 48), decode_tokens=2, repeats=2, held_out_windows=2)]
    assert [(r["method"], r["sparsity"]) for r in rows] == [("dense", 0.0)] + [(m, 0.5) for m in METHODS[1:]]
    for row in rows:
        assert set(row) == {"model", "method", "sparsity", "provider", "quality", "prefill_ms", "decode_ms", "speedup",
                            "theoretical_speedup"}
        assert row["provider"] == "CPUExecutionProvider" and set(row["prefill_ms"]) == {"16", "48"}
        assert row["decode_ms"] > 0 and row["speedup"] > 0 and set(row["quality"]) == {"kl", "top1"}
    assert rows[0]["quality"] == {"kl": 0.0, "top1": 1.0} and rows[0]["speedup"] == 1.0
    assert all(r["quality"]["kl"] > 0 for r in rows[1:])  # half the tokens approximated changes the output
    by_method = {r["method"]: r for r in rows}
    assert by_method["skip"]["theoretical_speedup"] > by_method["informed"]["theoretical_speedup"]  # no forecasts to compute
