"""Decoding options (`routing.sampling`): greedy by default, temperature / top-k / top-p sampling
and OpenAI's penalties, each checked on known distributions and on a real ONNX decoder."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from recommender.errors import UsageError
from routing.sampling import GREEDY, Sampling, _nucleus

THREE = np.log(np.array([0.5, 0.3, 0.2]))  # a vocabulary of three with known probabilities


def shares(sampling: Sampling, logits: np.ndarray = THREE, draws: int = 20000) -> np.ndarray:
    picker = sampling.picker()
    picked = [picker.pick(logits) for _ in range(draws)]
    return np.bincount(picked, minlength=logits.size) / draws


def test_sampling_draws_from_the_tempered_distribution() -> None:
    assert shares(Sampling(temperature=1.0, seed=0)) == pytest.approx([0.5, 0.3, 0.2], abs=0.015)
    cooled = np.array([0.5, 0.3, 0.2]) ** 2 / (0.5**2 + 0.3**2 + 0.2**2)  # temperature 0.5 squares the odds
    assert shares(Sampling(temperature=0.5, seed=0)) == pytest.approx(cooled, abs=0.015)
    assert shares(Sampling(temperature=2.0, seed=0))[0] < 0.45  # hotter: flatter


def test_top_k_and_top_p_keep_only_the_likeliest_tokens() -> None:
    assert shares(Sampling(temperature=1.0, top_k=2, seed=0)) == pytest.approx([0.625, 0.375, 0.0], abs=0.015)
    # top_p 0.6: token 0 (0.5) does not reach it, so token 1 crosses it and is kept; token 2 never
    assert shares(Sampling(temperature=1.0, top_p=0.6, seed=0)) == pytest.approx([0.625, 0.375, 0.0], abs=0.015)
    assert shares(Sampling(temperature=1.0, top_p=0.5, seed=0))[0] == 1.0  # token 0 alone reaches 0.5
    assert shares(Sampling(temperature=1.0, top_k=1, seed=0))[0] == 1.0  # the best token only: greedy


def test_the_nucleus_found_from_the_head_equals_the_nucleus_of_the_full_sort() -> None:
    rng = np.random.default_rng(0)
    for trial in range(300):
        probs = np.exp(rng.normal(size=int(rng.integers(2, 3000))) * rng.uniform(0.1, 6))
        probs /= probs.sum()
        top_p = float(rng.uniform(0.01, 1.0))
        order = np.argsort(-probs, kind="stable")
        full = order[: int(np.searchsorted(np.cumsum(probs[order]), top_p)) + 1]
        assert set(_nucleus(probs, top_p).tolist()) == set(full.tolist()), trial


def test_a_seed_repeats_a_reply_and_draws_differ() -> None:
    logits = np.random.default_rng(1).normal(size=300)  # a flat-ish vocabulary: replies rarely agree by chance

    def reply(sampling: Sampling, draw: int = 0) -> list[int]:
        picker = sampling.picker(draw)
        return [picker.pick(logits) for _ in range(12)]

    seeded = Sampling(temperature=1.0, seed=42)
    assert reply(seeded) == reply(seeded)
    assert reply(seeded) != reply(seeded, draw=1)  # OpenAI's n: the second reply is not the first again
    assert reply(seeded) != reply(Sampling(temperature=1.0, seed=43))
    assert reply(Sampling(temperature=1.0, seed=-5)) == reply(Sampling(temperature=1.0, seed=-5))  # any whole number


def test_penalties_lower_the_tokens_the_reply_has_used() -> None:
    logits = np.array([3.0, 2.5, 0.0])

    def greedy(**penalty: float) -> list[int]:
        picker = Sampling(**penalty).picker()
        return [picker.pick(logits) for _ in range(5)]

    assert greedy() == [0, 0, 0, 0, 0]
    assert greedy(frequency_penalty=1.0) == [0, 1, 0, 1, 0]  # 3 − 1·uses vs 2.5 − 1·uses
    assert greedy(presence_penalty=1.0) == [0, 1, 0, 0, 0]  # once used, both lose 1 for good
    assert greedy(frequency_penalty=-1.0) == [0, 0, 0, 0, 0]  # a negative penalty favours repeats
    assert logits.tolist() == [3.0, 2.5, 0.0]  # the caller's logits are not changed


@pytest.mark.parametrize(("options", "words"), [
    ({"temperature": 2.5}, "temperature must be a number from 0 to 2"),
    ({"temperature": float("nan")}, "temperature must be"),
    ({"temperature": True}, "temperature must be"),
    ({"top_p": 0}, "top_p must be a number above 0"),
    ({"top_p": 1.5}, "top_p must be"),
    ({"top_k": -1}, "top_k must be a whole number"),
    ({"top_k": 2.5}, "top_k must be"),
    ({"frequency_penalty": 3}, "frequency_penalty must be a number from -2 to 2"),
    ({"presence_penalty": "high"}, "presence_penalty must be"),
    ({"seed": 1.5}, "seed must be a whole number"),
])
def test_options_out_of_range_are_one_line_errors(options: dict, words: str) -> None:
    with pytest.raises(UsageError, match=words):
        Sampling(**options)


def test_the_decoding_is_described_in_one_line() -> None:
    assert GREEDY.describe() == "greedy" and GREEDY.greedy and not GREEDY.penalised
    assert Sampling(temperature=0.7, top_p=0.9, top_k=40, seed=3, frequency_penalty=0.5).describe() == \
        "temperature 0.7, top-p 0.9, top-k 40, seed 3, frequency penalty 0.5"


def test_the_onnx_decoder_samples_repeatably_and_greedy_stays_greedy(tmp_path: Path) -> None:
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from routing.llama import from_hf
    from routing.local_models import add, get
    from routing.runtime import open_model
    from tests.test_local_runtime import tiny_model_folder

    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=300, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                         num_key_value_heads=2, max_position_embeddings=256, tie_word_embeddings=True)
    add(tiny_model_folder(from_hf(LlamaForCausalLM(config).eval()), tmp_path))
    runtime = open_model(get("tiny-llama"), device="cpu")
    prompt = "w5 w6 w7"

    def text(sampling: Sampling = GREEDY, draw: int = 0) -> str:
        return runtime.generate_reply(prompt, 10, sampling=sampling, draw=draw).text

    greedy = text()
    assert text(Sampling(temperature=1.0, top_k=1, seed=9)) == greedy  # sampling from the best token alone
    sampled = Sampling(temperature=1.0, seed=9)
    assert text(sampled) == text(sampled) != greedy  # repeatable, and not the greedy reply
    assert text(sampled, draw=1) != text(sampled)
    # a strong frequency penalty: no token twice (the random model's greedy reply repeats itself)
    assert len(set(greedy.split())) < len(greedy.split())
    penalised = text(Sampling(frequency_penalty=2.0)).split()
    assert len(penalised) == 10 and len(set(penalised)) == len(penalised)
