"""What a finished run did, for ``run.json`` ("diagnostics"): how its dev predictions spread over the classes
against the gold labels (a student that answers one class for nearly every example has collapsed, whatever its
accuracy), and per stage of its method the steps, the learning rate the stage received and each loss term's mean
at the stage's start and end (read back from ``losses.csv``)."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import numpy as np


def prediction_spread(label_names, predictions, gold) -> dict | None:
    """Counts per class of the predictions and of the gold labels, and the largest share of each (classification;
    None for regression, ``label_names`` empty)."""
    if not label_names:
        return None
    pred, gold = np.asarray(predictions).astype(int), np.asarray(gold).astype(int)
    n = max(len(gold), 1)
    count = lambda a: {name: int((a == k).sum()) for k, name in enumerate(label_names)}  # noqa: E731
    predicted, truth = count(pred), count(gold)
    return {
        "predicted": predicted,
        "gold": truth,
        "largest_predicted_share": max(predicted.values()) / n,
        "largest_gold_share": max(truth.values()) / n,
    }


def _mean(rows, key):
    values = [float(r[key]) for r in rows if r.get(key) not in (None, "")]
    return sum(values) / len(values) if values else None


def stage_summary(losses_csv: str | Path, total_steps: int, stage_split: float) -> dict:
    """Per stage ("stage1": steps before ``ceil(stage_split * total_steps)``, "stage2": the rest, as the engine and
    the objective split them): its steps, the learning rate it received (first, max, mean, last logged) and the
    mean of each logged loss column over the stage's first and last tenth of logged rows."""
    with open(losses_csv, newline="") as f:
        rows = list(csv.DictReader(f))
    boundary = int(math.ceil(stage_split * total_steps))
    stages = {
        "stage1": [r for r in rows if int(r["step"]) <= boundary],
        "stage2": [r for r in rows if int(r["step"]) > boundary],
    }
    skip = {"step", "epoch", "lr", "bad_steps"}
    out = {}
    for name, part in stages.items():
        if not part:
            continue
        lrs = [float(r["lr"]) for r in part]
        tenth = max(1, len(part) // 10)
        terms = [k for k in part[0] if k not in skip and not k.startswith("w_") and _mean(part, k) is not None]
        out[name] = {
            "steps": [int(part[0]["step"]), int(part[-1]["step"])],
            "lr": {"first": lrs[0], "max": max(lrs), "mean": sum(lrs) / len(lrs), "last": lrs[-1]},
            "weights": {k[2:]: _mean(part, k) for k in part[0] if k.startswith("w_") and _mean(part, k)},
            "start": {k: _mean(part[:tenth], k) for k in terms},
            "end": {k: _mean(part[-tenth:], k) for k in terms},
        }
    return out
