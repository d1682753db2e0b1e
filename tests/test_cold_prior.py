"""The size prior for never-seen models: what it changes, what it leaves alone, how its weight is chosen."""

from __future__ import annotations

import numpy as np

from recommender import cold_prior


def test_blend_reorders_only_the_unknown_candidates_by_size() -> None:
    scores = np.array([3.0, 0.9, 1.0, 1.1, -2.0], np.float32)
    unknown = np.array([False, True, True, True, False])
    sizes = np.array([9.0, 10.5, 9.5, 8.0, 7.0])  # the first unknown is the biggest
    out = cold_prior.blend(scores, unknown, sizes, 3.0)
    assert out.dtype == scores.dtype
    assert out[0] == scores[0] and out[4] == scores[4]  # known models untouched
    assert np.isclose(out[unknown].mean(), scores[unknown].mean())  # unknowns keep their level
    assert list(np.argsort(-out[unknown])) == [0, 1, 2]  # now by size
    assert list(np.argsort(-cold_prior.blend(scores, unknown, sizes, 0.0)[unknown])) == [2, 1, 0]


def test_blend_leaves_too_few_or_flat_unknowns_alone() -> None:
    scores = np.array([1.0, 2.0, 3.0])
    assert cold_prior.blend(scores, np.array([False, True, False]), np.array([1.0, 2.0, 3.0]), 1.0) is scores
    assert cold_prior.blend(scores, np.array([True, True, False]), np.array([9.0, 9.0, 1.0]), 1.0) is scores


def test_unknown_sizes_count_as_the_median_known_size() -> None:
    n_parameters = np.array([1e8, np.nan, 1e10, 0.0, 1e9])
    median = cold_prior.median_log_size(n_parameters)
    assert median == 9.0
    assert list(cold_prior.imputed_log_sizes(n_parameters, median)) == [8.0, 9.0, 10.0, 9.0, 9.0]
    assert cold_prior.median_log_size(np.array([np.nan])) == 0.0


def test_the_weight_is_the_one_that_ranks_validation_best() -> None:
    rng = np.random.default_rng(0)
    groups = []
    for _ in range(20):
        size = rng.normal(9, 1, 8)
        groups.append((rng.normal(0, 1, 8), size))  # scores: noise
    unknown = [np.ones(8, bool)] * 20
    by_size = [size for _, size in groups]
    weight, tried = cold_prior.choose_weight([s for s, _ in groups], by_size, unknown, by_size)
    assert weight == max(cold_prior.WEIGHT_GRID) and tried[weight] > tried[0.0]  # truth follows size
    against = [-size for size in by_size]
    weight, tried = cold_prior.choose_weight([s for s, _ in groups], against, unknown, by_size)
    assert weight == 0.0 and set(tried) == set(cold_prior.WEIGHT_GRID)
