"""The verdict page and the significance markers of the tables, on constructed runs whose answer is known:
per-example dev predictions written by lrcbert's own writer, dev JSONs in collect_dev's layout."""

import json
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "workflow" / "scripts"))

from lrcbert import stats as S  # noqa: E402
from lrcbert.evaluation import write_dev_predictions  # noqa: E402
from lrcbert.tasks import TASKS  # noqa: E402

N = 200
GOLD = np.zeros(N, int)


def right_on(k):
    """Predictions right on the first ``k`` of the N examples (gold is all 0)."""
    return np.where(np.arange(N) < k, 0, 1)


def make_system(tmp, name, task_preds: dict, seeds=(1, 2)):
    """A dev JSON (collect_dev layout) whose runs hold the given predictions: {split: [preds per seed]}."""
    tasks = {}
    for split, per_seed in task_preds.items():
        task = "mnli" if split.startswith("mnli") else split
        entry = tasks.setdefault(
            task,
            {
                "splits": ["mnli_m", "mnli_mm"] if task == "mnli" else [split],
                "selected_lr": "0.001",
                "lr_scores": {},
                "seeds": {},
            },
        )
        for seed, preds in zip(seeds, per_seed):
            run = tmp / name / task / f"seed{seed}"
            write_dev_predictions(TASKS[split], preds, GOLD, np.arange(N), run / "predictions" / f"dev_{split}.tsv")
            s = entry["seeds"].setdefault(str(seed), {"run": str(run), "scores": {}, "params": 1, "predictions": {}})
            s["scores"][split] = float(S.METRICS[split](preds, GOLD))
    dev = {"system": name, "kind": "distill", "tasks": tasks, "excluded": {}}
    path = tmp / f"{name}.json"
    path.write_text(json.dumps(dev))
    return str(path)


@pytest.fixture()
def table(tmp_path):
    """LRC-BERT right on 180/200 on RTE and SST-2; 'far' on 100 (clearly worse), 'same' identical to LRC-BERT,
    'near' on 178 (a 2-example difference: never significant)."""
    good, bad, near = right_on(180), right_on(100), right_on(178)
    files = [
        make_system(tmp_path, "lrcbert", {"rte": [good, good], "sst2": [good, good]}),
        make_system(tmp_path, "far", {"rte": [bad, bad], "sst2": [good, good]}),
        make_system(tmp_path, "same", {"rte": [good, good], "sst2": [good, good]}),
        make_system(tmp_path, "near", {"rte": [near, near], "sst2": [near, near]}),
    ]
    return files


def test_holm_markers_on_a_constructed_table(table):
    devs = {json.loads(Path(f).read_text())["system"]: json.loads(Path(f).read_text()) for f in table}
    sig = S.table_significance(
        {n: S.dev_runs(d, ["rte", "sst2"]) for n, d in devs.items()}, "lrcbert", ["rte", "sst2"], n_resamples=999
    )
    assert set(sig) == {(n, s) for n in ("far", "same", "near") for s in ("rte", "sst2")}  # 6 comparisons
    assert [k for k, (_, r) in sig.items() if r] == [("far", "rte")]
    assert sig[("same", "rte")][0] == 1.0
    assert sig[("far", "rte")][0] < 0.05 / 6  # it passes Holm's strictest threshold


def test_ablation_table_marks_the_significant_cell_and_states_the_test(table, tmp_path):
    from ablation_tables import build

    paper = tmp_path / "paper.csv"
    paper.write_text("variant,rte,sst2\nLRC-BERT,60,80\nfar,50,70\n")
    systems = {
        "lrcbert": {"label": "LRC-BERT", "paper": "LRC-BERT"},
        "far": {"label": "FAR", "paper": "far"},
        "same": {"label": "SAME", "paper": None},
        "near": {"label": "NEAR", "paper": None},
    }
    text, frame = build(table, systems, "lrcbert", ["rte", "sst2"], str(paper), "Table X", "tsv")
    far_row = next(line for line in text.splitlines() if line.startswith("| FAR"))
    assert f"50.0 ± 0.0 (n=2) {S.MARK} [paper 50.0]" in far_row  # RTE: marked
    assert "90.0 ± 0.0 (n=2) [paper 70.0]" in far_row  # SST-2: equal, not marked
    assert S.MARK not in next(line for line in text.splitlines() if line.startswith("| NEAR"))
    assert "Holm's correction over the table's 6 comparisons (1 marked)" in text
    assert "permutation test" in text


def test_claim_verdicts_from_runs(table, tmp_path):
    from claims import Evidence

    ev = Evidence(table, {n: {"label": n, "paper": n} for n in ("lrcbert", "far", "same", "near")}, n_resamples=500)
    obvious = ev.compare(["lrcbert", "far"], ["rte"], S.difference("lrcbert", "far", ["rte"]), "greater", paper=5.0)
    assert obvious["verdict"] == "supported" and obvious["estimate"] == pytest.approx(40.0)
    assert obvious["low"] <= 40.0 <= obvious["high"]
    same = ev.compare(["lrcbert", "same"], ["rte"], S.difference("lrcbert", "same", ["rte"]), "greater", paper=5.0)
    assert same["verdict"] == "inconclusive" and same["estimate"] == 0.0
    # identical seeds: no seed variance, so 2 seeds per system already give the t-test all the power it needs
    assert same["seeds_needed"].startswith("2 ")
    reversed_ = ev.compare(["far", "lrcbert"], ["rte"], S.difference("far", "lrcbert", ["rte"]), "greater", paper=5.0)
    assert reversed_["verdict"] == "contradicted"
    missing = ev.compare(["lrcbert", "far"], ["cola"], S.difference("lrcbert", "far", ["cola"]), "greater")
    assert missing["verdict"] == "inconclusive" and "cola" in missing["note"]


def test_seeds_needed_uses_the_measured_seed_variance(tmp_path):
    from claims import Evidence

    # A's seeds score 90 and 80 on RTE, B's 85 and 85: seed sd pooled = sqrt(50 / 2) = 5
    files = [
        make_system(tmp_path, "a", {"rte": [right_on(180), right_on(160)]}),
        make_system(tmp_path, "b", {"rte": [right_on(170), right_on(170)]}),
    ]
    ev = Evidence(files, {"a": {}, "b": {}}, n_resamples=300)
    r = ev.compare(["a", "b"], ["rte"], S.difference("a", "b", ["rte"]), "greater", paper=5.0)
    assert r["verdict"] == "inconclusive"
    assert r["seeds_needed"].startswith(f"{S.seeds_needed(5.0, 5.0)} ") and "seed sd 5.00" in r["seeds_needed"]
    assert S.seeds_needed(5.0, 5.0) == 17  # a difference of one sd: 17 seeds per system


def test_claims_page_lists_every_claim_with_a_verdict(tmp_path):
    """Every claim of the issue gets a row, on a grid where only RTE and MNLI ran: LRC-BERT clearly ahead of
    DistilBERT on RTE (supported), level with the ablations (inconclusive), the rest not measured."""
    import pandas as pd
    from claims import Evidence, claims, render

    good, bad = right_on(180), right_on(100)
    names = {
        "teacher": "BERT-base (teacher)",
        "distilbert4": "DistilBERT",
        "pkd4": "BERT-PKD",
        "tinybert4": "TinyBERT",
        "lrcbert1": "LRC-BERT1",
        "lrcbert": "LRC-BERT",
        "lrcbert_c": "LRC-BERT_C",
        "lrcbert_s": "LRC-BERT_S",
        "lrcbert_h": "LRC-BERT_H",
        "lrcbert_2": "LRC-BERT_2",
        "bert_m": "BERT_M",
    }
    files = [
        make_system(
            tmp_path, n, {"rte": [bad if n == "distilbert4" else good] * 2, "mnli_m": [good] * 2, "mnli_mm": [good] * 2}
        )
        for n in names
    ]
    ev = Evidence(files, {n: {"label": p, "paper": p} for n, p in names.items()}, n_resamples=200)
    paper = {
        k: pd.read_csv(ROOT / "results/paper" / f)
        for k, f in (
            ("table1", "table1_glue_test.csv"),
            ("table3", "table3_loss_ablation_dev.csv"),
            ("table4", "table4_two_stage_dev.csv"),
        )
    }
    figures = pd.read_csv(ROOT / "results/paper/other_figures.csv")
    timing = {
        "models": {
            "teacher": {"params": 109e6, "all_seconds": [10.0, 10.2, 9.9]},
            "student": {"params": 14.5e6, "all_seconds": [1.0, 1.05, 0.98]},
        }
    }
    rows = claims(
        ev, paper, figures, timing, {}, {"a": [0.5, 0.6], "b": [0.3, 0.35]}, {"table3_splits": ["mnli_m", "mnli_mm"]}
    )
    by_id = {r["id"]: r for r in rows}
    for cid in ("1a", "1b", "1c", "2", "3a", "3b", "4a", "4b", "4c", "4d", "4e", "5", "6", "7a", "7b", "8a", "8b"):
        assert cid in by_id and by_id[cid]["verdict"] in ("supported", "contradicted", "inconclusive"), cid
    assert by_id["1a.rte"]["verdict"] == "supported" and by_id["1a.rte"]["estimate"] == pytest.approx(40.0)
    assert by_id["1a"]["verdict"] == "inconclusive"  # eight splits were not run
    assert by_id["4a"]["verdict"] == "inconclusive" and by_id["4a"]["estimate"] == 0.0
    assert by_id["7a"]["verdict"] == "supported"  # loss without perturbation higher in every draw
    assert by_id["8b"]["estimate"] == pytest.approx(109 / 14.5) and by_id["8b"]["verdict"] == "supported"
    text, frame = render(rows, "tsv", 200)
    assert "**Rule.**" in text and "paired over examples" in text and len(frame) == len(rows)
