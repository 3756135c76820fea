"""lrcbert/stats.py: metrics against sklearn/scipy, the two-level bootstrap, the paired permutation test, Holm's
correction, power and the verdict rule, on hand-built predictions whose answer is known."""

import numpy as np
import pytest
from scipy import stats as st
from sklearn.metrics import f1_score, matthews_corrcoef

from lrcbert import stats as S


def test_metrics_agree_with_sklearn_and_scipy():
    rng = np.random.default_rng(0)
    gold = rng.integers(0, 2, 200)
    pred = np.where(rng.random(200) < 0.7, gold, 1 - gold)
    assert S.accuracy(pred, gold) == pytest.approx(100 * (pred == gold).mean())
    assert S.f1(pred, gold) == pytest.approx(100 * f1_score(gold, pred))
    assert S.mcc(pred, gold) == pytest.approx(100 * matthews_corrcoef(gold, pred))
    x, y = rng.normal(size=100), rng.normal(size=100)
    x[:10] = x[0]  # ties
    assert S.spearman(x, y) == pytest.approx(100 * st.spearmanr(x, y).statistic)
    # rows are independent runs
    both = np.stack([pred, gold])
    assert S.mcc(both, gold) == pytest.approx([100 * matthews_corrcoef(gold, pred), 100.0])
    assert S.mcc(np.zeros(10, int), gold[:10]) == 0.0  # an empty margin: 0 as sklearn


def _split(name, gold, **systems):
    return S.Split(name, np.array(gold), {k: np.array(v) for k, v in systems.items()})


def test_bootstrap_interval_of_a_known_difference_covers_it():
    # A is right on 80 of 100 examples, B on 60 (A right wherever B is): true difference 20 points
    gold = np.zeros(100, int)
    a = np.where(np.arange(100) < 80, 0, 1)
    b = np.where(np.arange(100) < 60, 0, 1)
    sp = _split("rte", gold, a=[a, a], b=[b, b])
    est, lo, hi = S.bootstrap_ci([sp], S.difference("a", "b", ["rte"]), n_resamples=1000)
    assert est == pytest.approx(20.0)
    assert lo < 20.0 < hi
    # the paired interval: B's correct examples are a subset of A's, so the difference never goes below 0;
    # its width is about that of a binomial proportion of 0.2 on 100 examples (+-7.8 points)
    assert lo > 10 and hi < 30


def test_bootstrap_resamples_seeds_too():
    # no example noise at all (each run is right or wrong on every example), only seed noise:
    # A's seeds score 100, 0; B's score 50 (as 50, 50) -> the interval must open up around 0
    gold = np.zeros(10, int)
    ones, zeros = np.zeros(10, int), np.ones(10, int)
    half = np.array([0] * 5 + [1] * 5)
    sp = _split("sst2", gold, a=[ones, zeros], b=[half, half])
    est, lo, hi = S.bootstrap_ci([sp], S.difference("a", "b", ["sst2"]), n_resamples=500)
    assert est == pytest.approx(0.0)
    assert lo <= -50 + 1e-9 and hi >= 50 - 1e-9  # draws of (seed 1, seed 1) and (seed 2, seed 2)


def test_permutation_p_small_for_a_clear_difference_one_for_identical_runs():
    gold = np.zeros(200, int)
    a = np.zeros(200, int)
    b = np.where(np.arange(200) < 120, 0, 1)
    sp = _split("qnli", gold, a=[a], b=[b])
    assert S.permutation_p(sp, "a", "b", n_resamples=999) < 0.01
    same = _split("qnli", gold, a=[b], b=[b])
    assert S.permutation_p(same, "a", "b") == 1.0


def test_holm_hand_computed():
    # m = 4, alpha 0.05: sorted p 0.01 <= 0.0125 (reject), 0.015 <= 0.0167 (reject), 0.03 > 0.025 (stop)
    assert S.holm([0.03, 0.01, 0.2, 0.015]) == [False, True, False, True]
    # the step-down stops at the first failure even when a later p would pass its own threshold
    assert S.holm([0.04, 0.04]) == [False, False]
    assert S.holm([0.02, 0.04]) == [True, True]


def test_power_and_seeds_needed():
    # a difference of 1 sd: the textbook 17 per group for 80% power (two-sided, alpha 0.05)
    assert S.seeds_needed(1.0, 1.0) == 17
    assert S.power(17, 1.0, 1.0) >= 0.8 > S.power(16, 1.0, 1.0)
    assert S.seeds_needed(0.5, 1.0) == 64
    assert S.seeds_needed(0.0, 1.0) is None
    assert S.pooled_sd([1, 3], [2, 4]) == pytest.approx(np.sqrt(2.0))
    assert S.pooled_sd([1], [2]) is None


def test_verdicts_obvious_identical_reversed():
    gold = np.zeros(300, int)
    good = np.zeros(300, int)
    bad = np.where(np.arange(300) < 150, 0, 1)
    obvious = _split("rte", gold, a=[good, good], b=[bad, bad])
    identical = _split("rte", gold, a=[bad, bad], b=[bad, bad])
    reversed_ = _split("rte", gold, a=[bad, bad], b=[good, good])
    for sp, want in ((obvious, "supported"), (identical, "inconclusive"), (reversed_, "contradicted")):
        _, lo, hi = S.bootstrap_ci([sp], S.difference("a", "b", ["rte"]), n_resamples=500)
        assert S.verdict("greater", lo, hi) == want
    assert S.verdict("small", -0.5, 0.8, margin=1.0) == "supported"
    assert S.verdict("small", 1.5, 3.0, margin=1.0) == "contradicted"
    assert S.verdict("small", -0.5, 3.0, margin=1.0) == "inconclusive"
    assert S.verdict("at_least", 9.0, 11.0, margin=8.6) == "supported"
    assert S.verdict("at_least", 2.0, 3.0, margin=8.6) == "contradicted"


def test_predictions_file_round_trip(tmp_path):
    from lrcbert.evaluation import write_dev_predictions
    from lrcbert.tasks import TASKS

    for run, preds in (("r1", [1, 0, 1]), ("r2", [1, 1, 1])):
        write_dev_predictions(
            TASKS["rte"],
            np.array(preds),
            np.array([1, 0, 0]),
            np.array([2, 0, 1]),
            tmp_path / run / "predictions" / "dev_rte.tsv",
        )
    sp = S.load_split("rte", {"a": [tmp_path / "r1", tmp_path / "r2"]})
    # sorted by idx: idx 0, 1, 2 -> gold 0, 0, 1
    assert sp.gold.tolist() == [0, 0, 1]
    assert sp.preds["a"].tolist() == [[0, 1, 1], [1, 1, 1]]
    write_dev_predictions(
        TASKS["stsb"],
        np.array([0.5, 4.25]),
        np.array([1.0, 4.0]),
        np.array([0, 1]),
        tmp_path / "s" / "predictions" / "dev_stsb.tsv",
    )
    idx, p, g = S.read_predictions(tmp_path / "s" / "predictions" / "dev_stsb.tsv")
    assert p.tolist() == [0.5, 4.25] and g.tolist() == [1.0, 4.0]


def test_glue_metrics_of_a_run_by_hand():
    """lrcbert.evaluation.compute_metrics (what every run's metrics.json holds), on cases computed by hand."""
    from lrcbert.evaluation import compute_metrics
    from lrcbert.tasks import get_task

    # MRPC: TP 2, FP 1, FN 1 -> precision = recall = F1 = 2/3; 3 of 5 right
    out = compute_metrics(get_task("mrpc"), np.array([1, 1, 0, 0, 1]), np.array([1, 0, 0, 1, 1]))
    assert out == pytest.approx({"f1": 2 / 3, "accuracy": 0.6, "score": 200 / 3})
    # CoLA: TP 2, TN 2, FP 0, FN 1 -> MCC = (2*2 - 0*1) / sqrt(2*3*2*3) = 2/3
    out = compute_metrics(get_task("cola"), np.array([1, 1, 0, 0, 0]), np.array([1, 1, 0, 0, 1]))
    assert out == pytest.approx({"mcc": 2 / 3, "accuracy": 0.8, "score": 200 / 3})
    # STS-B: values that are their own ranks, d = (0, 1, -1, 0) -> rho = 1 - 6*2 / (4*15) = 0.8 (= Pearson here)
    out = compute_metrics(get_task("stsb"), np.array([1.0, 2, 3, 4]), np.array([1.0, 3, 2, 4]))
    assert out == pytest.approx({"pearson": 0.8, "spearman": 0.8, "score": 80.0})
    out = compute_metrics(get_task("rte"), np.array([0, 1, 1, 1]), np.array([0, 1, 0, 1]))
    assert out == pytest.approx({"accuracy": 0.75, "score": 75.0})
    with pytest.raises(ValueError, match="3 predictions for 4 references"):
        compute_metrics(get_task("rte"), np.array([0, 1, 1]), np.array([0, 1, 0, 1]))
