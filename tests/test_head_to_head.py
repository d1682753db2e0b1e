"""Head-to-head reordering: who beat whom where, how votes are weighted, what the blend changes."""

from __future__ import annotations

import numpy as np
import pytest

from recommender import head_to_head
from recommender.head_to_head import Results


def _results(groups: list[tuple[int, int, int, dict[int, float]]]) -> Results:
    """groups: (dataset, task, base, {model: z})."""
    model, group, z, dataset, task, base = [], [], [], [], [], []
    for g, (d, t, b, values) in enumerate(groups):
        for m, value in values.items():
            model.append(m)
            group.append(g)
            z.append(value)
            dataset.append(d)
            task.append(t)
            base.append(b)
    return Results.from_rows(np.array(model), np.array(group), np.array(z), np.array(dataset), np.array(task), np.array(base))


def _sims(near: int, n: int = 4) -> np.ndarray:
    sims = np.full(n, 0.2, np.float32)
    sims[near] = 1.0
    return sims


def test_the_votes_of_datasets_like_the_query_decide() -> None:
    results = _results([(1, 1, 1, {1: 1.0, 2: 0.0, 3: -1.0}),   # on dataset 1: A > B > C
                        (2, 1, 2, {1: -1.0, 2: 0.0, 3: 1.0})])  # on dataset 2: C > B > A
    candidates = np.array([1, 2, 3])
    like_one = results.win_rates(candidates, results.weights(_sims(1), task=1, exclude_base=None))
    like_two = results.win_rates(candidates, results.weights(_sims(2), task=1, exclude_base=None))
    assert list(np.argsort(-like_one)) == [0, 1, 2]
    assert list(np.argsort(-like_two)) == [2, 1, 0]
    # the query's own dataset has no vote: like dataset 1, but it *is* dataset 1's base
    own = results.win_rates(candidates, results.weights(_sims(1), task=1, exclude_base=1))
    assert list(np.argsort(-own)) == [2, 1, 0]
    # a group of another task type counts less: the same-task one decides
    other_task = _results([(1, 2, 1, {1: 1.0, 2: -1.0}), (2, 1, 2, {1: -1.0, 2: 1.0})])
    even = np.full(4, 0.9, np.float32)
    assert list(np.argsort(-other_task.win_rates(np.array([1, 2]), other_task.weights(even, 1, None)))) == [1, 0]


def test_head_to_head_is_blind_to_who_else_was_there() -> None:
    """A was only measured among strong models (low z), B among weak ones (high z); where they
    met, A won. Their average z says B; head-to-head says A."""
    results = _results([(1, 1, 1, {1: 0.5, 2: -0.5}),
                        (1, 1, 2, {2: 2.0, 5: -1.0, 6: -1.0}),
                        (1, 1, 3, {1: -1.5, 7: 1.0, 8: 1.0})])
    weights = results.weights(_sims(1, 2), task=1, exclude_base=None)
    rates = results.win_rates(np.array([1, 2]), weights)
    assert rates[0] > 0.5 > rates[1]
    mean_z = {m: results.z[results.model == m].mean() for m in (1, 2)}
    assert mean_z[2] > mean_z[1]


def test_models_that_never_met_tie_and_unknown_candidates_count_as_no_one() -> None:
    results = _results([(1, 1, 1, {1: 1.0, 2: -1.0}), (1, 1, 2, {3: 1.0, 4: -1.0})])
    weights = results.weights(_sims(1, 2), 1, None)
    rates = results.win_rates(np.array([1, 3, 0]), weights)  # 1 and 3 never met; 0 is a never-seen model
    assert np.allclose(rates, 0.5)
    assert np.allclose(results.win_rates(np.array([1]), weights), 0.5)
    met = results.win_rates(np.array([1, 2, 0]), weights)
    assert met[0] > 0.5 > met[1] and met[2] == 0.5


def test_rerank_reorders_only_the_rated_candidates_and_keeps_the_score_values() -> None:
    scores = np.array([5.0, 4.0, 3.0, 2.0, 1.0], np.float32)
    rates = np.array([0.1, 0.5, 0.9, np.nan, np.nan])
    out = head_to_head.rerank(scores, rates, 10.0)
    assert out.dtype == scores.dtype
    assert sorted(out[:3]) == sorted(scores[:3])
    assert list(np.argsort(-out[:3])) == [2, 1, 0]
    assert list(out[3:]) == [2.0, 1.0]
    assert list(head_to_head.rerank(scores, rates, 0.0)) == list(scores)
    # top_positions: the best eligible candidates, in score order
    eligible = np.array([True, False, True, True, True])
    assert list(head_to_head.top_positions(scores, eligible, 2)) == [0, 2]


def test_the_weight_is_the_one_that_ranks_validation_best() -> None:
    rng = np.random.default_rng(0)
    scores, rates, truth = [], [], []
    for _ in range(15):
        t = rng.normal(size=10)
        truth.append(t)
        scores.append(t + rng.normal(scale=2.0, size=10))  # a weak scorer
        rates.append(0.5 + 0.1 * t)  # informative win rates
    weight, tried = head_to_head.choose_weight(scores, rates, truth)
    assert weight == max(head_to_head.WEIGHT_GRID)
    assert tried[weight] > tried[0.0]
    weight, _ = head_to_head.choose_weight(scores, [0.5 - 0.1 * t for t in truth], truth)
    assert weight == 0.0  # misleading rates: leave the scorer alone


def test_agreement_is_the_shrunk_correlation_with_the_predicted_order() -> None:
    results = _results([(1, 1, 1, {1: 1.0, 2: 0.0, 3: -1.0}),    # agrees with the prediction 1 > 2 > 3
                        (2, 1, 2, {1: -1.0, 2: 0.0, 3: 1.0}),    # reverses it
                        (3, 1, 3, {1: 1.0, 2: -1.0}),            # two candidates: too few to correlate
                        (4, 1, 4, {1: 1.0, 2: 1.0, 3: 1.0}),     # all tied: no order to agree with
                        (5, 1, 5, {1: 1.0, 2: 0.0, 3: -1.0})])   # agrees, but has no vote
    weights = np.array([1.0, 1.0, 1.0, 1.0, 0.0])
    r = results.agreement(np.array([1, 2, 3]), np.array([3.0, 2.0, 1.0]), weights)
    shrink = 3 / (3 + head_to_head.AGREEMENT_SHRINK)
    assert np.allclose(r, [shrink, -shrink, 0.0, 0.0, 0.0])
    # written out for one group: Pearson's r between prediction and z over the shared candidates
    rng = np.random.default_rng(3)
    z, predicted = rng.normal(size=6), rng.normal(size=6)
    one = _results([(1, 1, 1, dict(zip(range(1, 7), z.tolist(), strict=True)))])
    expected = np.corrcoef(predicted, z.astype(np.float32))[0, 1] * 6 / (6 + head_to_head.AGREEMENT_SHRINK)
    assert np.isclose(one.agreement(np.arange(1, 7), predicted, np.ones(1))[0], expected, atol=1e-6)


def test_agreement_lets_the_datasets_that_behave_like_the_prediction_decide() -> None:
    """Two equally similar datasets disagree about A and B; the third candidate C is placed last
    by the scorer, as only the first dataset places it. Sharpened by agreement, that dataset's
    verdict on A and B wins."""
    results = _results([(1, 1, 1, {1: 1.0, 2: 0.5, 3: -1.5}),    # A > B > C, like the scorer's C-last
                        (2, 1, 2, {1: -0.5, 2: 1.0, 3: 1.5})])   # C > B > A
    candidates, scores = np.array([1, 2, 3]), np.array([2.0, 2.0, 0.0])
    votes = results.weights(np.full(3, 0.9, np.float32), task=1, exclude_base=None)
    plain = head_to_head.rates_for_top(results, candidates, scores, np.ones(3, bool), votes)
    sharp = head_to_head.rates_for_top(results, candidates, scores, np.ones(3, bool), votes, agreement=4.0)
    assert np.isclose(plain[0], plain[1])  # one vote each way: A and B tie
    assert sharp[0] > sharp[1]  # the agreeing dataset's A > B decides
    assert head_to_head.agreeing_weights(results, candidates, scores, votes, 0.0) is votes


def test_measured_results_let_the_datasets_that_agree_with_them_decide() -> None:
    """Two equally similar datasets disagree about A and B. The user measured A, B and D on their
    dataset with A ahead: the dataset that agrees with that gets the votes, and with them A ahead
    of B among the candidates A, B, C. Fewer than three measured models change nothing."""
    results = _results([(1, 1, 1, {1: 1.0, 2: 0.0, 3: 0.5, 4: -1.0}),    # A > C > B > D: like the user's
                        (2, 1, 2, {1: -1.0, 2: 1.0, 3: 0.5, 4: 0.0})])   # B > C > D > A
    candidates, scores = np.array([1, 2, 3]), np.array([1.0, 1.0, 0.0])
    votes = results.weights(np.full(3, 0.9, np.float32), task=1, exclude_base=None)
    measured, values = np.array([1, 2, 4]), np.array([0.9, 0.7, 0.5])  # A > B > D, as the first dataset
    sharpened = head_to_head.measured_weights(results, measured, values, votes)
    assert sharpened[0] > votes[0] and sharpened[1] < votes[1]
    plain = head_to_head.rates_for_top(results, candidates, scores, np.ones(3, bool), votes)
    mine = head_to_head.rates_for_top(results, candidates, scores, np.ones(3, bool), votes, measured=(measured, values))
    assert np.isclose(plain[0], plain[1]) and mine[0] > mine[1]
    assert head_to_head.measured_weights(results, measured[:2], values[:2], votes) is votes
    assert head_to_head.measured_weights(results, measured, values, votes, strength=0.0) is votes
    # the votes follow the measured order, not the values' scale
    rescaled = head_to_head.measured_weights(results, measured, values * 100 - 3, votes)
    assert np.allclose(rescaled, sharpened)


def test_weight_and_agreement_are_chosen_together_on_validation() -> None:
    rng = np.random.default_rng(1)
    truth = [rng.normal(size=8) for _ in range(12)]
    scores = [t + rng.normal(scale=2.0, size=8) for t in truth]
    # rates that only help at γ 2: the choice must find that pair, and report every τ tried
    rates = {0.0: [0.5 - 0.1 * t for t in truth], 2.0: [0.5 + 0.1 * t for t in truth], 4.0: [0.5 - 0.1 * t for t in truth]}
    choice = head_to_head.choose(scores, rates.__getitem__, truth, agreements=(0.0, 2.0, 4.0))
    assert (choice.agreement, choice.weight) == (2.0, max(head_to_head.WEIGHT_GRID))
    entry = choice.as_manifest()
    assert entry["agreement"] == 2.0 and entry["top"] == head_to_head.RERANK_TOP
    assert entry["val_tau_w_by_weight"] == entry["val_tau_w_by_agreement"]["2.0"]
    assert set(entry["val_tau_w_by_agreement"]) == {"0.0", "2.0", "4.0"}
    # every γ equally useless: weight 0 at the first γ
    flat = head_to_head.choose(scores, lambda _: [0.5 - 0.1 * t for t in truth], truth)
    assert (flat.weight, flat.agreement) == (0.0, head_to_head.AGREEMENT_GRID[0])


def test_languages_from_metadata_text_and_the_option() -> None:
    from recommender import languages
    from recommender.errors import UsageError

    assert languages.from_codes(["fas-Arab", "zho-Hans", "cmn-Hans", "eng-Latn", ""]) == ("cmn", "eng", "fas")
    assert languages.from_text("Retrieve passages from French legal documents and Japanese reviews") == ("fra", "jpn")
    assert languages.from_text("global-mmlu-lite [Arabic]") == ("ara",)
    assert languages.from_text("polish the answers of a Malayalam chatbot") == ("mal",)  # not Malay, not Polish
    assert languages.from_text("Polish news") == ("pol",)
    assert languages.parse_option(["French, de", "fas", "Norwegian"]) == ("deu", "fas", "fra", "nno", "nob")
    with pytest.raises(UsageError, match="Klingonese"):
        languages.parse_option(["Klingonese"])


def test_language_index_says_which_datasets_share_a_language() -> None:
    from recommender.languages import LanguageIndex

    index = LanguageIndex([(), ("eng",), ("eng", "fra"), ("jpn",)])
    assert index.of(2) == ("eng", "fra")
    assert list(index.sharing(["fra", "kor"])) == [False, False, True, False]
    assert index.sharing(["kor"]) is None and index.sharing([]) is None
    again = LanguageIndex.from_csr(*index.to_csr())
    assert again.codes == index.codes and (again.table == index.table).all()


def test_a_shared_language_counts_more() -> None:
    results = _results([(1, 1, 1, {1: 1.0, 2: -1.0}),   # dataset 1 (the query's language): A > B
                        (2, 1, 2, {1: -1.0, 2: 1.0}),   # dataset 2: B > A
                        (3, 1, 3, {1: -1.0, 2: 1.0})])  # dataset 3: B > A
    even = np.full(4, 0.9, np.float32)
    candidates = np.array([1, 2])
    assert np.argmax(results.win_rates(candidates, results.weights(even, 1, None))) == 1
    shares = np.array([False, True, False, False])
    assert np.argmax(results.win_rates(candidates, results.weights(even, 1, None, shares))) == 0


def test_win_rates_equal_a_pair_by_pair_count() -> None:
    """The vectorised form (one comparison per pair, ties from the meeting counts) against the
    definition written out: per pair, weighted wins (a tie half) over weighted meetings."""
    rng = np.random.default_rng(3)
    groups = []
    for g in range(40):
        members = rng.choice(np.arange(1, 16), size=rng.integers(2, 10), replace=False)
        values = np.round(rng.normal(size=len(members)), 1)  # rounded: ties happen
        groups.append((g % 7, g % 3, g, dict(zip(members.tolist(), values.tolist(), strict=True))))
    results = _results(groups)
    sims = rng.uniform(0.2, 1.0, 7).astype(np.float32)
    weights = results.weights(sims, task=1, exclude_base=5)
    candidates = np.array([3, 1, 4, 15, 9, 2, 6, 0, 12])
    expected = []
    for a, i in enumerate(candidates):
        rates = []
        for b, j in enumerate(candidates):
            if a == b:
                continue
            wins = met = 0.0
            for g, (_, _, _, values) in enumerate(groups):
                if i in values and j in values and i != j:
                    met += weights[g]
                    wins += weights[g] * (1.0 if values[i] > values[j] else 0.5 if values[i] == values[j] else 0.0)
            rates.append((wins + 0.5 * head_to_head.PRIOR) / (met + head_to_head.PRIOR))
        expected.append(np.mean(rates))
    assert np.allclose(results.win_rates(candidates, weights), expected, atol=1e-5)


def test_the_choice_is_described_in_one_line_or_not_at_all() -> None:
    entry = {"weight": 2.0, "agreement": 4.0, "top": 100, "val_tau_w_by_weight": {"0.0": 0.6557, "2.0": 0.6778}}
    assert head_to_head.describe_choice(entry) == ("head-to-head reordering of the top 100: weight 2, agreement γ 4 "
                                                   "(validation τw 0.678; scorer alone 0.656)")
    assert head_to_head.describe_choice({"weight": 2.5, "agreement": 4.0, "val_tau_w_by_weight": {}}) is None  # torchrun
    assert head_to_head.describe_choice(None) is None
