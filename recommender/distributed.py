"""Data-parallel training under torchrun (PyTorch DDP).

    torchrun --standalone --nproc_per_node 2 -m recommender.distributed --db URL --out DIR [--epochs N] [--device cpu|cuda] [--resume]

The same training as `lensroute train` (`pipeline.fit_ranker`: a validation run that stops early
on held-out datasets, then a refit on everything for the epochs it chose), data-parallel: every
rank builds the same space from the same catalogue; `training.train` gives each rank every
world-size-th group of one seeded permutation and DDP averages the gradients, so the ranks hold
identical weights after each step and make the same early-stopping decision. Rank 0 alone
writes the checkpoint (with every rank's RNG state) and the exported ranker. Ctrl-C stops every
rank; `--resume` with the same number of processes continues from the last finished epoch and
ends with the weights an uninterrupted run gives (the checkpoint lives beside `--out`, so the
ranks must share that folder: one machine). The backend is gloo on CPU and nccl on CUDA.
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
    parser.add_argument("--resume", action="store_true", help="continue an interrupted run from its last finished epoch")
    args = parser.parse_args(argv)
    from recommender.errors import LensrouteError
    from recommender.paths import nothing_to_resume, writable_parent

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
        from recommender.pipeline import export_fitted, fit_ranker
        from recommender.store import Store
        from recommender.training import TrainConfig, gather_from_ranks

        if args.resume and rank == 0 and (note := nothing_to_resume(args.out)):
            print(note, file=sys.stderr)
        config = TrainConfig(epochs=args.epochs, device=args.device, seed=args.seed)
        fitted = fit_ranker(Store.open(args.db), config, args.out, resume=args.resume, choose=rank == 0)
        final = fitted.final
        report = json.dumps({"rank": rank, "world": world, "backend": backend, "rows_seen": final.rows_seen,
                             "seconds": round(final.seconds, 2), "checksum": parameter_checksum(final.model),
                             "best_epoch": fitted.validation.best_epoch, "epochs_run": len(fitted.validation.history),
                             "final_loss": final.history[-1]["loss"], "first_loss": final.history[0]["loss"]})
        # one write per line: the ranks share stdout, and print's separate newline write (unbuffered
        # under torchrun) let two ranks' lines run together
        sys.stdout.write(report + "\n")
        sys.stdout.flush()
        # the manifest's training figures are rank 0's share; what every rank trained on is here
        by_rank = gather_from_ranks(fitted.validation.rows_seen + final.rows_seen, world)
        if rank == 0:
            export_fitted(fitted, config, args.out, {"distributed": {"world": world, "backend": backend,
                                                                     "rows_seen_by_rank": by_rank}})
        dist.barrier()
    except KeyboardInterrupt:  # Ctrl-C reaches every rank (and torchrun, which passes it on)
        if rank == 0:
            print("lensroute: training cancelled; run it again with --resume to continue from the last finished epoch",
                  file=sys.stderr)
        return 130
    except LensrouteError as exc:  # e.g. a checkpoint it cannot continue: one line, from rank 0
        if rank == 0:
            print(f"lensroute: error: {exc}", file=sys.stderr)
        return exc.exit_code
    finally:
        dist.destroy_process_group()
    return 0


if __name__ == "__main__":
    sys.exit(main())
