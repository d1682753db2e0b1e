"""`lensroute models accelerate`: informed routing kept as a local model of its own — trained,
exported, measured, installed, and usable in a pool beside the dense model it came from."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from recommender.errors import RuntimeUnavailableError, UsageError
from tests.test_routing import run_cli, small_mc_set


@pytest.fixture
def tiny_base(tmp_path: Path):  # type: ignore[no-untyped-def]
    return make_tiny_base(tmp_path)


def make_tiny_base(tmp_path: Path):  # type: ignore[no-untyped-def]
    """A tiny Llama whose units matter (init std 0.2), installed as `tiny-llama`, with a
    calibration stream that has structure (repeated phrases) for the forecasters to learn."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from routing.llama import from_hf
    from routing.local_models import add
    from tests.test_local_runtime import TINY_CHAT, tiny_model_folder

    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=300, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                         num_key_value_heads=2, max_position_embeddings=256, tie_word_embeddings=True, initializer_range=0.2)
    core = from_hf(LlamaForCausalLM(config).eval())
    base = add(tiny_model_folder(core, tmp_path, chat=TINY_CHAT))
    rng = np.random.default_rng(0)
    phrases = [list(rng.integers(2, 300, 12)) for _ in range(20)]
    data = [[int(t) for i in rng.integers(0, 20, 30) for t in phrases[i]] for _ in range(6)]
    return base, core, data


def accelerate_tiny(tiny_base, **options):  # type: ignore[no-untyped-def]
    from routing.accelerate import accelerate_core
    from routing.informed import RoutingConfig

    base, core, data = tiny_base
    config = RoutingConfig(rank=8, router_hidden=8, lff_steps=60, router_steps=30, batch=4, seq_len=32)
    return accelerate_core(base, core, data[:4], data[4:], config, **{"sparsity": 0.5, "name": "tiny-llama-informed-50",
                                                                     "prefill_tokens": 48, "repeats": 2,
                                                                     "held_out_windows": 2, **options})


def test_an_accelerated_model_is_installed_measured_and_answers(tiny_base) -> None:  # type: ignore[no-untyped-def]
    from routing.local_models import get, installed, removal_effect, remove
    from routing.runtime import open_model

    model = accelerate_tiny(tiny_base)
    assert model.name == "tiny-llama-informed-50" and model.kind == "causal-lm"
    assert {m.name for m in installed()} >= {"tiny-llama", "tiny-llama-informed-50"}
    info = model.manifest["accelerated"]
    assert info["base"] == "tiny-llama" and info["method"] == "informed" and info["sparsity"] == 0.5
    assert info["kl"] > 0 and 0 < info["top1"] <= 1 and info["prefill_tokens"] == 48 and info["prefill_speedup"] > 0
    assert model.manifest["check"]["max_abs_logit_diff_vs_torch"] < 1e-4  # the exported graph is the trained model
    assert model.manifest["chat"] == get("tiny-llama").manifest["chat"]  # it reads conversations as its base does
    assert (model.path / "tokenizer.json").read_bytes() == (get("tiny-llama").path / "tokenizer.json").read_bytes()

    fast, dense = open_model(model, device="cpu"), open_model(get("tiny-llama"), device="cpu")
    prompt = " ".join(f"w{i}" for i in range(5, 45))  # long enough that half its tokens are approximated
    assert fast.generate_reply(prompt, 4).completion_tokens == 4
    assert not np.allclose(fast.forward(*_row(fast, prompt)), dense.forward(*_row(dense, prompt)), atol=1e-3)
    # batched option scoring: each row's capacity counts its own tokens, so padding changes nothing
    options = ["w7", "w8 w9 w10 w11 w12 w13 w14 w15", "w20 w21 w22"]
    together = fast.score_options(prompt, options, batch_size=8)
    alone = np.array([fast.score_options(prompt, [option])[0] for option in options])
    assert together == pytest.approx(alone, abs=1e-4)

    listed = {m["name"]: m for m in json.loads(run_cli("models", "list", "--json").stdout)}
    assert listed["tiny-llama-informed-50"]["accelerated"]["base"] == "tiny-llama" and listed["tiny-llama"]["accelerated"] is None
    assert "informed routing of tiny-llama at sparsity 0.5: KL" in run_cli("models", "list").stdout
    assert "models accelerate" in removal_effect(model.name)
    assert remove(model.name) == model.path and not model.path.exists()


def _row(runtime, text: str):  # type: ignore[no-untyped-def]
    encoded = runtime.tokenize([text])
    return encoded.ids, encoded.mask


def test_bad_requests_to_accelerate_are_one_line_errors(tiny_base) -> None:  # type: ignore[no-untyped-def]
    from routing.accelerate import accelerate

    with pytest.raises(UsageError, match="above 0 and below 1"):
        accelerate_tiny(tiny_base, sparsity=0.0)
    with pytest.raises(UsageError, match="not a model name"):
        accelerate_tiny(tiny_base, name="bad name!")
    with pytest.raises(UsageError, match="exists; remove it first"):
        accelerate_tiny(tiny_base, name="tiny-llama")
    with pytest.raises(RuntimeUnavailableError, match="only the built-in smollm2-135m-instruct"):
        accelerate("tiny-llama")  # no torch weights to train from
    missing = run_cli("models", "accelerate", "no-such-model")
    assert missing.returncode == 3 and "no local model named 'no-such-model'" in missing.stderr
    assert len(missing.stderr.strip().splitlines()) == 1
    bad = run_cli("models", "accelerate", "tiny-llama", "--sparsity", "1.5")
    assert bad.returncode == 2 and "--sparsity" in bad.stderr
    # a copy still being staged (a crash between its manifest and its move) is not an installed model
    import shutil

    from routing.local_models import MANIFEST, installed, local_dir

    staged = local_dir() / ".tiny-llama-informed-50.partial"
    shutil.copytree(tiny_base[0].path, staged)
    manifest = json.loads((staged / MANIFEST).read_text())
    (staged / MANIFEST).write_text(json.dumps({**manifest, "name": "tiny-llama-informed-50"}))
    assert "tiny-llama-informed-50" not in {m.name for m in installed()}


@pytest.mark.builtin_models
def test_an_accelerated_model_joins_a_pool_beside_its_base(tiny_base, encoder: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from routing.answering import Question, read_questions
    from routing.calibrate import calibrate
    from routing.router_store import load_router
    from routing.serve import RoutingSession

    model = accelerate_tiny(tiny_base)
    summary = calibrate(["tiny-llama", model.name], read_questions(small_mc_set(tmp_path, 12), labelled=True),
                        device="cpu")
    assert summary["pool"] == ["tiny-llama", model.name]
    session = RoutingSession(load_router(), device="cpu")
    decision, answer = session.answer(Question("w5 w6 w7?", []), 3)
    assert answer.model in ("tiny-llama", model.name) and answer.completion_tokens == 3
    assert {m["model"] for m in session.as_json(Question("q", []), decision, answer)["pool"]} == {"tiny-llama", model.name}
