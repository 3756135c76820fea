"""run.json's diagnostics (issue 22): the dev predictions per class against gold, and per stage the steps, the
learning rate and each loss term, checked against values computed by hand and against the run's own files."""

import csv
import json

import pytest
from conftest import finetune_teacher, tiny_config

from lrcbert.diagnostics import prediction_spread, stage_summary
from lrcbert.run import run


def test_prediction_spread_counts_by_hand():
    got = prediction_spread(("entailment", "not_entailment"), [0, 0, 0, 1], [0, 1, 1, 1])
    assert got == {
        "predicted": {"entailment": 3, "not_entailment": 1},
        "gold": {"entailment": 1, "not_entailment": 3},
        "largest_predicted_share": 0.75,
        "largest_gold_share": 0.75,
    }
    assert prediction_spread((), [0.5, 1.2], [0.1, 2.0]) is None  # regression: no classes


def test_stage_summary_splits_where_the_engine_does(tmp_path):
    path = tmp_path / "losses.csv"
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, ["step", "epoch", "lr", "total", "layer", "hard", "w_layer", "w_hard", "bad_steps"])
        w.writeheader()
        for step in range(1, 11):  # 10 steps, stage_split 0.25: stage 1 = steps 1..3 (ceil(2.5))
            stage1 = step <= 3
            w.writerow(
                {
                    "step": step,
                    "epoch": step / 10,
                    "lr": 0.1 * step,
                    "total": float(step),
                    "layer": 2.0 * step,
                    "hard": "" if stage1 else 1.0,
                    "w_layer": 1.0,
                    "w_hard": 0.0 if stage1 else 3.0,
                    "bad_steps": 0,
                }
            )
    s = stage_summary(path, 10, 0.25)
    assert s["stage1"]["steps"] == [1, 3] and s["stage2"]["steps"] == [4, 10]
    assert s["stage1"]["lr"] == pytest.approx({"first": 0.1, "max": 0.3, "mean": 0.2, "last": 0.3})
    assert s["stage2"]["start"]["layer"] == 8.0 and s["stage2"]["end"]["layer"] == 20.0  # first / last tenth: 1 row
    assert "hard" not in s["stage1"]["start"] and s["stage2"]["weights"] == {"layer": 1.0, "hard": 3.0}


def test_a_run_records_its_diagnostics(glue_dir, tmp_path):
    t = finetune_teacher(glue_dir, tmp_path / "t", max_steps=3)
    cfg = tiny_config(
        glue_dir,
        task="rte",
        model={"teacher": str(t / "model"), "teacher_random_init": False},
        train={"max_steps": 5, "batch_size": 8},
        method={"stage_split": 0.6},
    )
    run(cfg, tmp_path / "s", "distill")
    d = json.loads((tmp_path / "s" / "run.json").read_text())["diagnostics"]
    spread = d["dev_predictions"]["rte"]
    with open(tmp_path / "s" / "predictions" / "dev_rte.tsv", newline="") as f:
        rows = list(csv.DictReader(f, delimiter="\t"))
    assert sum(spread["predicted"].values()) == sum(spread["gold"].values()) == len(rows)
    assert spread["predicted"]["entailment"] == sum(r["prediction"] == "0" for r in rows)
    assert d["stages"]["stage1"]["steps"] == [1, 3] and d["stages"]["stage2"]["steps"] == [4, 5]
    assert set(d["stages"]["stage2"]["start"]) >= {"total", "layer", "soft", "hard"}
