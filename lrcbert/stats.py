"""Is a difference between two systems real? Paired tests over dev examples and seeds, Holm's correction, and
the number of seeds a difference of a given size needs.

A *system* here is a set of runs (one per seed) of one configuration; each run's per-example dev predictions
(``predictions/dev_<split>.tsv``, lrcbert/evaluation.py) are read into an array ``(seeds, examples)``. Every
quantity compared is a function of the systems' *mean over seeds* of a GLUE metric per split (x100, as the
paper prints), so the same code serves "A beats B on RTE", "A's nine-task average beats B's" and "removing X
hurts more than removing Y".

- ``bootstrap_ci``: a two-level bootstrap through ``scipy.stats.bootstrap``. The dev examples of each split are
  resampled (the same draw for every system and seed: the comparison is *paired* over examples) and, independently,
  each system's seeds are resampled. The interval therefore covers both sources of noise a reader cares about:
  which examples the dev set happens to hold, and which seeds training happened to use.
- ``permutation_p``: ``scipy.stats.permutation_test`` with paired exchange: under the null hypothesis the two
  systems' prediction vectors for an example (all seeds together) are exchangeable, so each example's pair is
  swapped at random.
- ``holm``: Holm's step-down correction of a family of p-values.
- ``seeds_needed``: seeds per system for 80% power of a two-sided two-sample t-test to detect a difference of a
  given size, given the seed standard deviation (the noncentral t distribution of ``scipy.stats.nct``).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

import numpy as np
from scipy import stats as st

# -------------------------------------------------------------------------------------------------- metrics
# Vectorised over a leading axis: ``pred`` and ``gold`` are (..., n). Each returns x100 (the paper's scale).


def accuracy(pred: np.ndarray, gold: np.ndarray) -> np.ndarray:
    return 100.0 * (pred == gold).mean(axis=-1)


def _counts(pred, gold):
    p, g = pred == 1, gold == 1
    tp = (p & g).sum(-1).astype(float)
    fp = (p & ~g).sum(-1).astype(float)
    fn = (~p & g).sum(-1).astype(float)
    tn = (~p & ~g).sum(-1).astype(float)
    return tp, fp, fn, tn


def f1(pred: np.ndarray, gold: np.ndarray) -> np.ndarray:
    """F1 of the positive class (label 1), as GLUE scores MRPC and QQP; 0 when there is no true positive."""
    tp, fp, fn, _ = _counts(pred, gold)
    with np.errstate(invalid="ignore", divide="ignore"):
        out = np.where(tp > 0, 2 * tp / (2 * tp + fp + fn), 0.0)
    return 100.0 * out


def mcc(pred: np.ndarray, gold: np.ndarray) -> np.ndarray:
    """Matthews correlation of binary predictions (CoLA); 0 when a margin is empty (sklearn's convention)."""
    tp, fp, fn, tn = _counts(pred, gold)
    den = np.sqrt((tp + fp) * (tp + fn) * (tn + fp) * (tn + fn))
    with np.errstate(invalid="ignore", divide="ignore"):
        out = np.where(den > 0, (tp * tn - fp * fn) / den, 0.0)
    return 100.0 * out


def spearman(pred: np.ndarray, gold: np.ndarray) -> np.ndarray:
    """Spearman correlation (STS-B): Pearson correlation of the ranks (average ranks for ties)."""
    rp, rg = st.rankdata(pred, axis=-1), st.rankdata(gold, axis=-1)
    rp = rp - rp.mean(-1, keepdims=True)
    rg = rg - rg.mean(-1, keepdims=True)
    den = np.sqrt((rp**2).sum(-1) * (rg**2).sum(-1))
    with np.errstate(invalid="ignore", divide="ignore"):
        out = np.where(den > 0, (rp * rg).sum(-1) / den, 0.0)
    return 100.0 * out


# the headline metric of each evaluation split (the paper's Table 1 columns)
METRICS: dict[str, Callable] = {
    "mnli_m": accuracy,
    "mnli_mm": accuracy,
    "qqp": f1,
    "sst2": accuracy,
    "qnli": accuracy,
    "mrpc": f1,
    "rte": accuracy,
    "cola": mcc,
    "stsb": spearman,
}


# -------------------------------------------------------------------------------------------------- data
class Split:
    """One evaluation split of one comparison: gold labels and, per system, predictions (seeds, examples)."""

    def __init__(self, name: str, gold: np.ndarray, preds: dict[str, np.ndarray]):
        self.name, self.gold, self.preds = name, np.asarray(gold), {k: np.atleast_2d(v) for k, v in preds.items()}
        self.metric = METRICS[name]
        for system, p in self.preds.items():
            if p.shape[1] != len(self.gold):
                raise ValueError(
                    f"{name}: {system} has predictions for {p.shape[1]} examples, gold for {len(self.gold)}"
                )

    def scores(self, system: str, examples=None, seeds=None) -> np.ndarray:
        """Per-seed scores of ``system`` on the chosen examples (all by default)."""
        p = self.preds[system]
        if seeds is not None:
            p = p[seeds]
        if examples is None:
            return self.metric(p, self.gold)
        return self.metric(p[:, examples], self.gold[examples])


def read_predictions(path: str | Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(idx, prediction, gold) of a ``predictions/dev_<split>.tsv`` file, sorted by idx."""
    path = Path(path)
    try:
        table = np.loadtxt(path, delimiter="\t", skiprows=1, ndmin=2)
    except (OSError, ValueError) as e:
        raise ValueError(f"{path}: cannot read per-example predictions ({e})") from None
    if table.shape[1] != 3 or len(table) == 0:
        raise ValueError(f"{path}: expected rows of idx, prediction, gold; got shape {table.shape}")
    table = table[np.argsort(table[:, 0], kind="stable")]
    return table[:, 0].astype(int), table[:, 1], table[:, 2]


def load_split(name: str, runs: dict[str, list[str | Path]]) -> Split:
    """A ``Split`` from run folders: {system: [run folder per seed]}. Every run must hold the same examples."""
    gold, idx, preds = None, None, {}
    for system, folders in runs.items():
        rows = []
        for folder in folders:
            i, p, g = read_predictions(Path(folder) / "predictions" / f"dev_{name}.tsv")
            if idx is None:
                idx, gold = i, g
            elif not np.array_equal(i, idx) or not np.allclose(g, gold):
                raise ValueError(f"{folder}: dev_{name}.tsv holds other examples or gold labels than the other runs")
            rows.append(p)
        preds[system] = np.stack(rows)
    return Split(name, gold, preds)


# -------------------------------------------------------------------------------------------------- tests
Value = Callable[[dict[str, dict[str, float]]], float]


def difference(a: str, b: str, splits: list[str]) -> Value:
    """Mean over ``splits`` of (a's mean-over-seeds score - b's): one split, or an average like Table 1's."""
    return lambda s: float(np.mean([s[a][x] for x in splits]) - np.mean([s[b][x] for x in splits]))


def observed(splits: list[Split], value: Value) -> float:
    return value({sys: {sp.name: float(sp.scores(sys).mean()) for sp in splits} for sys in splits[0].preds})


def per_seed(splits: list[Split], system: str) -> np.ndarray:
    """A system's per-seed average over ``splits`` (the seed-level numbers seed variance is measured on)."""
    return np.mean([sp.scores(system) for sp in splits], axis=0)


def bootstrap_ci(
    splits: list[Split], value: Value, n_resamples: int = 2000, confidence: float = 0.95, seed: int = 0
) -> tuple[float, float, float]:
    """(estimate, low, high): ``value`` on the data and its percentile bootstrap interval, resampling each split's
    examples (paired across systems and seeds) and each system's seeds independently (``scipy.stats.bootstrap``,
    one sample per split and one per system)."""
    systems = list(splits[0].preds)
    # a system's seeds are resampled when it has two or more (scipy needs two observations per sample)
    resampled = [s for s in systems if len(splits[0].preds[s]) >= 2]
    samples = [np.arange(len(sp.gold)) for sp in splits] + [np.arange(len(splits[0].preds[s])) for s in resampled]
    k = len(splits)

    def statistic(*drawn):
        examples, seeds = drawn[:k], {s: None for s in systems}
        seeds.update(zip(resampled, drawn[k:]))
        scores = {
            sys: {sp.name: float(sp.scores(sys, ex, seeds[sys]).mean()) for sp, ex in zip(splits, examples)}
            for sys in systems
        }
        return value(scores)

    estimate = observed(splits, value)
    res = st.bootstrap(
        samples,
        statistic,
        n_resamples=n_resamples,
        confidence_level=confidence,
        method="percentile",
        vectorized=False,
        paired=False,
        random_state=np.random.default_rng(seed),
    )
    low, high = float(res.confidence_interval.low), float(res.confidence_interval.high)
    if not (math.isfinite(low) and math.isfinite(high)):  # a degenerate distribution: every draw the same
        low = high = estimate
    return estimate, low, high


def permutation_p(split: Split, a: str, b: str, n_resamples: int = 2000, seed: int = 0) -> float:
    """Two-sided p-value of "a and b score the same on ``split``": ``scipy.stats.permutation_test``, paired over
    examples (an example's predictions of a and b, all seeds together, swap places at random). Seeds pair by
    position; a system with more seeds is cut to the other's count."""
    k = min(len(split.preds[a]), len(split.preds[b]))
    pa, pb = split.preds[a][:k], split.preds[b][:k]
    n = len(split.gold)
    both = np.concatenate([pa, pb], axis=1)  # (seeds, 2n): a's examples, then b's
    gold2 = np.concatenate([split.gold, split.gold])

    def statistic(x, y):
        return float(split.metric(both[:, x], gold2[x]).mean() - split.metric(both[:, y], gold2[y]).mean())

    if np.array_equal(pa, pb):
        return 1.0
    res = st.permutation_test(
        (np.arange(n), np.arange(n) + n),
        statistic,
        permutation_type="samples",
        alternative="two-sided",
        n_resamples=n_resamples,
        vectorized=False,
        random_state=np.random.default_rng(seed),
    )
    return float(res.pvalue)


def holm(pvalues: list[float], alpha: float = 0.05) -> list[bool]:
    """Holm's step-down procedure: which hypotheses are rejected at family-wise error ``alpha``. The i-th
    smallest p-value (i = 0..m-1) is compared with alpha / (m - i); testing stops at the first that fails."""
    order = sorted(range(len(pvalues)), key=lambda i: pvalues[i])
    reject = [False] * len(pvalues)
    for rank, i in enumerate(order):
        if pvalues[i] > alpha / (len(pvalues) - rank):
            break
        reject[i] = True
    return reject


def power(n: int, delta: float, sd: float, alpha: float = 0.05) -> float:
    """Power of a two-sided two-sample t-test with ``n`` seeds per system against a true difference ``delta``
    when seed scores have standard deviation ``sd``."""
    df = 2 * n - 2
    if df < 1:
        return 0.0
    nc = abs(delta) / (sd * math.sqrt(2.0 / n))
    t = st.t.ppf(1 - alpha / 2, df)
    return float(st.nct.sf(t, df, nc) + st.nct.cdf(-t, df, nc))


def seeds_needed(delta: float, sd: float, target: float = 0.8, alpha: float = 0.05, limit: int = 10_000) -> int | None:
    """Seeds per system for ``target`` power to detect ``delta`` (None: more than ``limit``, or no effect)."""
    if sd <= 0:
        return 2
    if delta == 0:
        return None
    for n in range(2, limit + 1):
        if power(n, delta, sd, alpha) >= target:
            return n
    return None


def pooled_sd(*groups) -> float | None:
    """Pooled sample standard deviation of per-seed scores (None without two seeds in some group)."""
    groups = [np.asarray(g, float) for g in groups if len(g) >= 2]
    if not groups:
        return None
    ss = sum(((g - g.mean()) ** 2).sum() for g in groups)
    return float(math.sqrt(ss / sum(len(g) - 1 for g in groups)))


# -------------------------------------------------------------------------------------------------- verdicts
VERDICT_RULE = (
    "A claim of the form *A > B* is **supported** when the 95% interval of A - B lies above 0, **contradicted** "
    "when it lies below 0, **inconclusive** when it contains 0. A claim that a difference is *small* (|A - B| at "
    "most a margin m) is **supported** when the whole interval lies within [-m, m], **contradicted** when it lies "
    "wholly outside, **inconclusive** otherwise. A claim that a ratio reaches a value r (speed, size) is "
    "**supported** when the interval lies at or above r x (1 - tolerance), **contradicted** when it lies below, "
    "**inconclusive** otherwise."
)


def verdict(kind: str, low: float, high: float, margin: float = 0.0) -> str:
    """The verdict of one claim from its interval [low, high] (rule: ``VERDICT_RULE``). ``kind``: ``greater``
    (A - B > 0), ``small`` (|A - B| <= margin) or ``at_least`` (value >= margin)."""
    if any(x is None or not math.isfinite(x) for x in (low, high)):
        return "inconclusive"
    if kind == "greater":
        return "supported" if low > 0 else "contradicted" if high < 0 else "inconclusive"
    if kind == "small":
        if -margin <= low and high <= margin:
            return "supported"
        return "contradicted" if low > margin or high < -margin else "inconclusive"
    if kind == "at_least":
        return "supported" if low >= margin else "contradicted" if high < margin else "inconclusive"
    raise ValueError(f"unknown claim kind {kind!r}")


# -------------------------------------------------------------------------------------------------- tables
MARK = "†"


def table_significance(
    runs: dict[str, dict[str, list]], reference: str, splits: list[str], n_resamples: int = 4999, alpha: float = 0.05
) -> dict[tuple[str, str], tuple[float, bool]]:
    """For a results table: {(system, split): (p, significant)} of every cell against ``reference`` on the same
    split, p from ``permutation_p`` and significance after Holm's correction over all the table's cells that
    could be tested. ``runs``: {system: {split: [run folders, one per seed]}}; a cell without per-example
    predictions (for either system) is left out of the family."""
    pvalues = {}
    for system, by_split in runs.items():
        if system == reference:
            continue
        for split in splits:
            mine, ref = by_split.get(split) or [], runs.get(reference, {}).get(split) or []
            if not mine or not ref:
                continue
            sp = load_split(split, {system: mine, reference: ref})
            pvalues[(system, split)] = permutation_p(sp, system, reference, n_resamples=n_resamples)
    keys = list(pvalues)
    rejected = holm([pvalues[k] for k in keys], alpha)
    return {k: (pvalues[k], r) for k, r in zip(keys, rejected)}


def significance_note(results: dict, reference_label: str, n_resamples: int = 4999) -> str:
    """The footnote of a table whose cells carry ``MARK``."""
    tested = len(results)
    marked = sum(r for _, r in results.values())
    return (
        f"{MARK}: the difference to {reference_label} on that split is significant at the 5% level after Holm's "
        f"correction over the table's {tested} comparisons ({marked} marked). Test: a two-sided paired "
        f"permutation test over the dev examples (`scipy.stats.permutation_test`, {n_resamples} random "
        "exchanges of the two systems' predictions for an example, all seeds together, seeds paired by "
        "order), on the split's own metric averaged over seeds. Untested cells (no per-example predictions) "
        "carry no mark."
    )


def dev_runs(dev: dict, splits: list[str]) -> dict[str, list[str]]:
    """{split: run folders of the seeds at the chosen lr that wrote per-example predictions} from a
    ``results/dev/{system}.json`` (workflow/scripts/collect_dev.py)."""
    out = {}
    for entry in dev.get("tasks", {}).values():
        for split in entry.get("splits", []):
            if split in splits:
                folders = [
                    s["run"]
                    for _, s in sorted(entry.get("seeds", {}).items())
                    if (Path(s["run"]) / "predictions" / f"dev_{split}.tsv").is_file()
                ]
                if folders:
                    out[split] = folders
    return out
