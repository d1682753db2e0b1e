"""Decoding benchmark: what sampling costs per token against greedy decoding, on the built-in
SmolLM2-135M (ONNX Runtime, CPU unless --device says otherwise).

    .venv/bin/python tests/bench/bench_decoding.py [--tokens 64] [--repeats 5] [--device cpu]

Greedy is the baseline, run in the same process; each figure is the median time per written token
over --repeats replies (a reply that ends early counts its own tokens); every figure is measured
in this run.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

PROMPT = "Write a short story about a lighthouse keeper who finds a message in a bottle."


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tokens", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()

    from routing.local_models import get
    from routing.runtime import open_model
    from routing.sampling import Sampling

    runtime = open_model(get("smollm2-135m-instruct"), device=args.device)
    prompt = runtime.chat_prompt(PROMPT)
    methods = {
        "greedy": Sampling(),
        "temperature 0.8": Sampling(temperature=0.8, seed=0),
        "temperature 0.8, top-p 0.95": Sampling(temperature=0.8, top_p=0.95, seed=0),
        "temperature 0.8, top-k 40": Sampling(temperature=0.8, top_k=40, seed=0),
        "greedy, frequency penalty 0.5": Sampling(frequency_penalty=0.5),
    }
    runtime.generate_reply(prompt, 4)  # warm-up
    per_token: dict[str, list[float]] = {name: [] for name in methods}
    for repeat in range(args.repeats):  # methods interleaved: this machine's drift hits each alike
        for name, sampling in methods.items():
            started = time.perf_counter()
            reply = runtime.generate_reply(prompt, args.tokens, sampling=sampling, draw=repeat)
            per_token[name].append((time.perf_counter() - started) * 1000 / max(reply.completion_tokens, 1))
    rows = {name: round(statistics.median(times), 3) for name, times in per_token.items()}
    base = rows["greedy"]
    for name, ms in rows.items():
        print(f"{name:<32} {ms:8.3f} ms/token   ×{ms / base:.3f} of greedy", file=sys.stderr)
    print(json.dumps({"model": runtime.model.name, "device": args.device, "tokens": args.tokens,
                      "ms_per_token": rows, "ratio_to_greedy": {k: round(v / base, 3) for k, v in rows.items()}}))


if __name__ == "__main__":
    main()
