"""Dev metrics (official GLUE metric per task), per-example dev predictions (what paired significance tests
need) and test predictions in the GLUE server's format."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from .runinfo import atomic_write_text
from .tasks import Task

_INPUTS = ("input_ids", "attention_mask", "token_type_ids")


@torch.no_grad()
def predict(
    model, dataset, collate, batch_size: int, device=None, by_length: bool = True
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(logits, labels, idx) of ``model`` over ``dataset`` in order. With ``by_length`` the examples run in
    batches sorted by length (little padding with a dynamically padding collator); the outputs are put
    back in the data set's order."""
    device = device or next(model.parameters()).device
    if by_length and len(dataset) > batch_size and "input_ids" in dataset.column_names:
        order = np.argsort([len(x) for x in dataset["input_ids"]], kind="stable")
        inverse = np.empty_like(order)
        inverse[order] = np.arange(len(order))
        out = predict(model, dataset.select(order.tolist()), collate, batch_size, device, by_length=False)
        return tuple(x[inverse] for x in out)
    model.eval()
    loader = torch.utils.data.DataLoader(dataset, batch_size=batch_size, shuffle=False, collate_fn=collate)
    logits, labels, idx = [], [], []
    for batch in loader:
        out = model(**{k: batch[k].to(device) for k in _INPUTS if k in batch})
        logits.append(out.logits.float().cpu())
        labels.append(batch["labels"])
        idx.append(batch["idx"])
    return torch.cat(logits).numpy(), torch.cat(labels).numpy(), torch.cat(idx).numpy()


def to_predictions(task: Task, logits: np.ndarray) -> np.ndarray:
    return logits.reshape(-1) if task.is_regression else logits.argmax(-1)


def compute_metrics(task: Task, predictions: np.ndarray, references: np.ndarray) -> dict:
    """The official GLUE metric(s) for ``task`` (scikit-learn and SciPy, as GLUE's own scoring and the metric
    scripts of Hugging Face ``evaluate`` compute them): Matthews correlation and accuracy for CoLA, Pearson and
    Spearman for STS-B, F1 of the positive class and accuracy for MRPC and QQP, accuracy otherwise. The headline
    number the paper's tables use is repeated under ``score`` (x100, as the paper prints)."""
    from scipy.stats import pearsonr, spearmanr
    from sklearn.metrics import accuracy_score, f1_score, matthews_corrcoef

    pred, gold = np.asarray(predictions), np.asarray(references)
    if len(pred) != len(gold) or not len(gold):
        raise ValueError(f"{task.name}: {len(pred)} predictions for {len(gold)} references")
    if task.is_regression:  # in float64: float32 sums lose nearly constant predictions' variance
        pred, gold = pred.astype(np.float64), gold.astype(np.float64)
        out = {"pearson": float(pearsonr(pred, gold)[0]), "spearman": float(spearmanr(pred, gold)[0])}
    else:
        out = {"accuracy": float(accuracy_score(gold, pred))}
        if task.metric == "mcc":
            out["mcc"] = float(matthews_corrcoef(gold, pred))
        elif task.metric == "f1":
            out["f1"] = float(f1_score(gold, pred))
    out["score"] = 100.0 * out[task.metric]
    return out


def write_submission(task: Task, predictions: np.ndarray, idx: np.ndarray, path: str | Path) -> None:
    """Test predictions as the GLUE server wants them: ``index<TAB>prediction``, label names for the
    NLI tasks, 0/1 for the others, scores clipped to [0, 5] for STS-B."""
    rows = ["index\tprediction"]
    for i, p in zip(idx.tolist(), predictions.tolist()):
        if task.is_regression:
            value = f"{min(5.0, max(0.0, p)):.3f}"
        else:
            value = task.labels[int(p)]
        rows.append(f"{i}\t{value}")
    atomic_write_text(path, "\n".join(rows) + "\n")


def write_dev_predictions(
    task: Task, predictions: np.ndarray, labels: np.ndarray, idx: np.ndarray, path: str | Path
) -> None:
    """Per-example dev predictions, ``idx<TAB>prediction<TAB>gold``: the class index (or, for STS-B, the raw
    score, with every digit) next to the gold label, in the data set's order. Paired tests between runs
    (lrcbert/stats.py) match examples by ``idx``."""
    rows = ["idx\tprediction\tgold"]
    for i, p, g in zip(idx.tolist(), predictions.tolist(), labels.tolist()):
        # STS-B: every digit (repr round-trips), so the tables recompute the run's very score from this file
        rows.append(f"{i}\t{float(p)!r}\t{float(g)!r}" if task.is_regression else f"{i}\t{int(p)}\t{int(g)}")
    atomic_write_text(path, "\n".join(rows) + "\n")


def dev_predictions_file(split: str) -> str:
    """A run folder's per-example dev predictions of evaluation split ``split`` (relative path)."""
    return f"predictions/dev_{split}.tsv"


def scores_from_predictions(task: Task, path: str | Path) -> dict:
    """``compute_metrics`` recomputed from a run's dev predictions file (``write_dev_predictions``'s format: its
    predictions against the gold labels it holds), with ``n``, the number of examples. A file that is not in that
    format raises ValueError naming it."""
    lines = Path(path).read_text(encoding="utf-8").splitlines()
    if not lines or lines[0].split("\t") != ["idx", "prediction", "gold"]:
        raise ValueError(f"{path}: not a dev predictions file (header 'idx<TAB>prediction<TAB>gold')")
    kind = float if task.is_regression else int
    try:
        rows = [(kind(p), kind(g)) for _, p, g in (line.split("\t") for line in lines[1:])]
    except ValueError as e:
        raise ValueError(f"{path}: unreadable row ({e})") from None
    pred, gold = (np.asarray(x) for x in zip(*rows)) if rows else (np.zeros(0), np.zeros(0))
    return {"n": len(rows), **compute_metrics(task, pred, gold)}
