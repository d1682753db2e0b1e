"""What a few results the user measured on their dataset are worth (`lensroute rank --measured`).

    .venv/bin/python tests/bench/bench_measured.py [--db URL] [--seed 0] [--reveal 3,5,8]

On the new-dataset split (the datasets are unknown to the scorer, as a user's is), K members of
every validation and test group are "measured": their true results are revealed, the head-to-head
votes are sharpened by agreement with them (`head_to_head.measured_weights`) at each γ of a grid,
and τ_w is computed over the group's *other* members only, against the same ranking without the
measured results (γ 0). The weight and scorer agreement are the ones `evaluate` chooses on
validation; γ is read off the validation rows, the test rows are for the record. Every figure is
measured in this run.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

GRID = (0.0, 16.0, 32.0, 64.0, 128.0)


def hidden_tau(results, groups, scores, weights, reveal: int, choice, strength: float, seed: int) -> tuple[float, int]:  # type: ignore[no-untyped-def]
    """Mean τ_w over the unrevealed members of every group with at least `reveal` + 3 members."""
    from recommender import head_to_head
    from recommender.metrics import weighted_kendall_tau

    rng = np.random.default_rng(seed)
    taus = []
    for members, z, s, w in zip(groups.members, groups.z, scores, weights, strict=True):
        if len(members) < reveal + 3:
            continue
        shown = rng.choice(len(members), reveal, replace=False)
        hidden = np.setdiff1d(np.arange(len(members)), shown)
        rates = head_to_head.rates_for_top(results, members, s, np.ones(len(members), bool), w,
                                           agreement=choice.agreement, measured=(members[shown], z[shown]),
                                           measured_strength=strength)  # the ranker's path, γ from the grid
        ranked = head_to_head.rerank(s, rates, choice.weight)
        taus.append(weighted_kendall_tau(z[hidden], ranked[hidden]))
    return float(np.nanmean(taus)), len(taus)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", help="catalogue URL (default: the lensroute home's)")
    parser.add_argument("--seed", type=int, default=0, help="split and training seed")
    parser.add_argument("--reveal", default="3,5,8", help="measured models per group, comma-separated")
    args = parser.parse_args()

    from recommender import head_to_head
    from recommender.evaluation import _validation_scores, choose_head_to_head
    from recommender.evidence import dataset_similarity
    from recommender.pipeline import prepare
    from recommender.splits import make_split
    from recommender.store import Store
    from recommender.training import SpaceTensors, TrainConfig, score_groups, train

    with Store.open(args.db) as store:
        space, groups, _ = prepare(store)
    split = make_split(space, groups, "new-dataset", seed=args.seed)
    result = train(space, split.train, split.val, TrainConfig(seed=args.seed), unknown_datasets=True)
    tensors = SpaceTensors(space, next(result.model.parameters()).device)
    choice = choose_head_to_head(space, split, result, tensors)
    print(f"new-dataset split seed {args.seed}: {len(split.val)} validation and {len(split.test)} test groups; "
          f"head-to-head weight {choice.weight:g}, agreement γ {choice.agreement:g} (chosen on validation)")
    test_evidence = result.evidence.group_features(space, dataset_similarity(space), split.test)
    scored = {"validation": (split.val, _validation_scores(space, split, result, tensors)),
              "test": (split.test, score_groups(result.model, tensors, split.test, split.test.members, test_evidence,
                                                None, True))}
    print(f"{'part':<11}{'measured':>9}{'groups':>8}" + "".join(f"{f'γ {g:g}':>9}" for g in GRID))
    for part, (part_groups, scores) in scored.items():
        results, weights = head_to_head.group_queries(space, result.evidence, part_groups)
        for reveal in (int(k) for k in args.reveal.split(",")):
            row = [hidden_tau(results, part_groups, scores, weights, reveal, choice, g, seed=args.seed) for g in GRID]
            print(f"{part:<11}{reveal:>9}{row[0][1]:>8}" + "".join(f"{tau:>9.4f}" for tau, _ in row), flush=True)
    print(f"(τ_w over the unmeasured members; γ 0 is the ranking without the measured results; the ranker uses "
          f"γ {head_to_head.MEASURED_AGREEMENT:g})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
