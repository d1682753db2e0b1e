"""Data-parallel training under torchrun (PyTorch DDP).

    torchrun --standalone --nproc_per_node 2 -m recommender.distributed --db URL --out DIR [--epochs N] [--device cpu|cuda]

Every rank builds the same space from the same catalogue; `training.train` gives each rank every
world-size-th group of one seeded permutation and DDP averages the gradients, so the ranks hold
identical weights after each step. Rank 0 alone writes the checkpoint and the exported ranker.
The backend is gloo on CPU and nccl on CUDA.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
from pathlib import Path

import torch
import torch.distributed as dist


def parameter_checksum(model: torch.nn.Module) -> str:
    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()[:16]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", required=True)
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--epochs", type=int, default=60)
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    from recommender.errors import LensrouteError
    from recommender.paths import training_checkpoint, writable_parent

    try:
        writable_parent(args.out)  # every rank, before the process group: a bad path is one line, not minutes later
    except LensrouteError as exc:
        print(f"lensroute: error: {exc}", file=sys.stderr)
        return exc.exit_code

    backend = "nccl" if args.device == "cuda" else "gloo"
    dist.init_process_group(backend=backend)
    rank, world = dist.get_rank(), dist.get_world_size()
    if args.device == "cuda":
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", 0)))
    try:
        from recommender import head_to_head
        from recommender.evidence import EvidenceIndex
        from recommender.lens_export import export_ranker
        from recommender.pipeline import prepare
        from recommender.store import Store
        from recommender.training import TrainConfig, train

        store = Store.open(args.db)
        space, groups, data = prepare(store)
        metric_higher = data.pop("metric_higher")
        config = TrainConfig(epochs=args.epochs, device=args.device, seed=args.seed)
        checkpoint = training_checkpoint(args.out)
        result = train(space, groups, groups.subset([]), config, checkpoint=checkpoint)
        checksum = parameter_checksum(result.model)
        print(json.dumps({"rank": rank, "world": world, "backend": backend, "rows_seen": result.rows_seen,
                          "seconds": round(result.seconds, 2), "checksum": checksum,
                          "final_loss": result.history[-1]["loss"], "first_loss": result.history[0]["loss"]}), flush=True)
        if rank == 0:
            export_ranker(result.model, space, groups, EvidenceIndex.from_groups(space, groups), args.out,
                          {"train_config": config.as_dict(), "data": data, "distributed": {"world": world, "backend": backend},
                           # no held-out datasets here to choose the weight on: the measured default
                           "head_to_head": head_to_head.Choice.fixed(head_to_head.DEFAULT_WEIGHT,
                                                                     head_to_head.DEFAULT_AGREEMENT).as_manifest()},
                          metric_higher)
            checkpoint.unlink(missing_ok=True)  # exported: nothing left to resume (as `lensroute train` leaves it)
        dist.barrier()
    finally:
        dist.destroy_process_group()
    return 0


if __name__ == "__main__":
    sys.exit(main())
