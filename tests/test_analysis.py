"""Analyses of trained students (lrcbert/analysis.py, Table 5 and the robustness check) and the aggregation
scripts of workflow/scripts (Tables 3-5, Figure 5, sweeps, robustness) on hand-made inputs."""

import json
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from conftest import finetune_teacher, synthetic_sets, tiny_config
from transformers import BertConfig, BertForSequenceClassification

from lrcbert import losses
from lrcbert.analysis import layer_stats, perturbed_predictions
from lrcbert.objective import METHODS

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "workflow" / "scripts"))


# ---------------------------------------------------------------------------------------------- layer statistics
def test_layer_stats_zero_for_the_teacher_itself_and_scale_only_moves_mse():
    torch.manual_seed(1)
    s = tuple(torch.randn(3, 5, 4) for _ in range(3))  # embeddings + 2 student layers, d = 4
    w = torch.randn(8, 4)  # W: 4 -> 8 (out x in, as nn.Linear stores it)
    t = [torch.randn(3, 5, 8) for _ in range(5)]  # embeddings + 4 teacher layers
    phi = [2, 4]
    for i, j in enumerate(phi):
        t[j] = s[i + 1] @ w.T  # the teacher's mapped layers = the projected student
    mask = torch.ones(3, 5, dtype=torch.long)
    mask[2, 3:] = 0
    mse, g = layer_stats(s, t, [w], phi, mask)
    assert mse.shape == g.shape == (3, 2)
    assert torch.allclose(mse, torch.zeros(3, 2), atol=1e-10) and torch.allclose(g, torch.zeros(3, 2), atol=1e-6)
    # teacher = 2 x the projection: g stays 0, MSE = mean of (h W)^2 over the non-padding positions
    t2 = list(t)
    for j in phi:
        t2[j] = 2 * t[j]
    t2[4][2, 3:] += 100.0  # padding positions are ignored
    mse, g = layer_stats(s, t2, [w], phi, mask)
    assert torch.allclose(g, torch.zeros(3, 2), atol=1e-6)
    expected = (s[2][2, :3] @ w.T).pow(2).mean()
    assert mse[2, 1].item() == pytest.approx(expected.item(), rel=1e-5)
    # per example it is the training loss's masked MSE (BERT_M) on that example alone
    one = losses.masked_mse(s[1][:1] @ w.T, t2[2][:1], mask[:1])
    assert mse[0, 0].item() == pytest.approx(one.item(), rel=1e-5)


def test_layer_stats_g_is_eq_2_on_the_flattened_layer_and_per_layer_w_is_used():
    torch.manual_seed(2)
    s = tuple(torch.randn(2, 3, 4) for _ in range(3))
    t = tuple(torch.randn(2, 3, 6) for _ in range(3))
    ws = [torch.randn(6, 4), torch.randn(6, 4)]
    mask = torch.ones(2, 3, dtype=torch.long)
    _, g = layer_stats(s, t, ws, [1, 2], mask)
    h = (s[2][1] @ ws[1].T).flatten()
    expected = 1 - torch.dot(h, t[2][1].flatten()) / (h.norm() * t[2][1].flatten().norm())
    assert g[1, 1].item() == pytest.approx(expected.item(), rel=1e-5)


# ---------------------------------------------------------------------------------------------- perturbations
def tiny_classifier():
    torch.manual_seed(3)
    conf = BertConfig(
        vocab_size=50,
        hidden_size=16,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=32,
        num_labels=3,
        hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0,
    )
    model = BertForSequenceClassification(conf).eval()
    ids = torch.randint(5, 50, (4, 7))
    mask = torch.ones(4, 7, dtype=torch.long)
    mask[1, 4:] = 0
    return model, {"input_ids": ids, "attention_mask": mask, "labels": torch.tensor([0, 1, 2, 1])}


@pytest.mark.parametrize("direction", ["random", "gradient"])
def test_perturbation_has_norm_eps_per_example_and_eps_0_changes_nothing(direction):
    model, batch = tiny_classifier()
    seen = []
    handle = model.bert.encoder.layer[0].register_forward_pre_hook(
        lambda m, args, kwargs: seen.append((args[0] if args else kwargs["hidden_states"]).detach()), with_kwargs=True
    )
    preds, norms = perturbed_predictions(
        model, batch, [0.0, 0.5, 3.0], direction, generator=torch.Generator().manual_seed(0)
    )
    handle.remove()
    clean = seen[0]
    moved = {eps: seen[-3 + k] - clean for k, eps in enumerate([0.0, 0.5, 3.0])}
    for eps, d in moved.items():
        assert d.flatten(1).norm(dim=1).tolist() == pytest.approx([eps] * 4, abs=1e-4)
    if direction == "random":
        assert moved[3.0][1, 4:].abs().max().item() == 0.0  # padding positions are left alone
    with torch.no_grad():
        logits = model(**{k: batch[k] for k in ("input_ids", "attention_mask")}).logits
    assert torch.equal(preds[0.0], logits.argmax(-1))
    assert norms.tolist() == pytest.approx(
        (clean * batch["attention_mask"].unsqueeze(-1)).flatten(1).norm(dim=1).tolist()
    )


def test_gradient_direction_raises_each_examples_loss_to_first_order():
    model, batch = tiny_classifier()
    emb = model.bert.embeddings
    inputs = {k: batch[k] for k in ("input_ids", "attention_mask")}
    eps = 1e-2
    captured = {}

    def grab(m, args, out):
        captured.setdefault("e", out.detach())

    h = emb.register_forward_hook(grab)
    perturbed_predictions(model, batch, [eps], "gradient")
    h.remove()
    e = captured["e"].clone().requires_grad_(True)
    h = emb.register_forward_hook(lambda m, a, o: e)
    loss = F.cross_entropy(model(**inputs).logits, batch["labels"], reduction="none")
    (grad,) = torch.autograd.grad(loss.sum(), e)
    step = eps * grad / grad.flatten(1).norm(dim=1).view(-1, 1, 1)
    h.remove()
    h = emb.register_forward_hook(lambda m, a, o: e.detach() + step)
    with torch.no_grad():
        after = F.cross_entropy(model(**inputs).logits, batch["labels"], reduction="none")
    h.remove()
    assert (after > loss.detach()).all()


# ---------------------------------------------------------------------------------------------- whole runs
@pytest.fixture(scope="module")
def runs(glue_dir, tmp_path_factory):
    from lrcbert.run import run

    root = tmp_path_factory.mktemp("analysis")
    finetune_teacher(glue_dir, root / "teacher", task="mnli", max_steps=2)
    out = {}
    for name in ("lrcbert", "bert_m"):
        cfg = tiny_config(
            glue_dir,
            task="mnli",
            model={"teacher": str(root / "teacher" / "model"), "teacher_random_init": False},
            method={**METHODS[name], "name": name, "stage_split": 0.5},
            train={"max_steps": 4},
        )
        run(cfg, root / name, "distill")
        out[name] = root / name
    return root, out


def test_cli_case_stats_and_robustness_agree_with_the_runs_own_evaluation(runs, glue_dir, capsys):
    from lrcbert.cli import main

    root, folders = runs
    sets = synthetic_sets(glue_dir, f"model.teacher={root / 'teacher' / 'model'}")
    args = [a for n, f in folders.items() for a in ("--run", f"{n}={f}")]
    assert main(["case-stats", "--task", "mnli", *args, "--out", str(root / "cases.json"), *sets]) == 0
    assert main(["robustness", "--task", "mnli", *args, "--eps", "0", "2", "--out", str(root / "rob.json"), *sets]) == 0
    cases, rob = json.loads((root / "cases.json").read_text()), json.loads((root / "rob.json").read_text())
    for name, folder in folders.items():
        metrics = json.loads((folder / "metrics.json").read_text())["splits"]["mnli_m"]
        rec = cases["runs"][name]
        assert len(rec["prediction"]) == len(cases["label"]) == metrics["n"] == rob["runs"][name]["n"]
        acc = 100.0 * sum(p == y for p, y in zip(rec["prediction"], cases["label"])) / len(cases["label"])
        assert acc == pytest.approx(metrics["score"])
        for d in ("random", "gradient"):
            assert rob["runs"][name]["accuracy"][d]["0.0"] == pytest.approx(metrics["score"])
        assert rob["runs"][name]["accuracy"]["gradient"]["2.0"] <= metrics["score"] + 1e-9
        assert len(rec["mse"][0]) == len(rec["phi"]) == 2 and rec["phi"] == [2, 4]
        assert all(0.0 <= g <= 2.0 for g in rec["g_mean"]) and all(m >= 0 for m in rec["mse_mean"])
        assert rec["mse_mean"][0] == pytest.approx(sum(rec["mse"][0]) / 2)
    assert cases["runs"]["bert_m"]["layer_loss"] == "mse" and cases["runs"]["lrcbert"]["layer_loss"] == "cos_nce"


def test_cli_analysis_errors_are_one_line(runs, tmp_path, capsys):
    from lrcbert.cli import main

    assert (
        main(
            ["robustness", "--task", "mnli", "--run", "x=/no/such/run", "--eps", "1", "--out", str(tmp_path / "r.json")]
        )
        == 2
    )
    err = capsys.readouterr().err.strip()
    assert err.startswith("lrcbert: error:") and "/no/such/run" in err and "\n" not in err
    assert main(["case-stats", "--task", "mnli", "--run", "nofolder", "--out", str(tmp_path / "c.json")]) == 2
    assert "NAME=FOLDER" in capsys.readouterr().err


# ---------------------------------------------------------------------------------------------- aggregation
def dev(system, task_scores: dict, lr="0.001"):
    """A collect_dev result: {task: {split: [score per seed]}}."""
    tasks = {}
    for task, splits in task_scores.items():
        n = len(next(iter(splits.values())))
        seeds = {
            str(i + 1): {
                "run": f"runs/{system}/{task}/seed{i + 1}/lr{lr}",
                "scores": {s: v[i] for s, v in splits.items()},
            }
            for i in range(n)
        }
        tasks[task] = {"splits": list(splits), "selected_lr": lr, "seeds": seeds}
    return {"system": system, "tasks": tasks}


def test_table3_cells_paper_values_and_change_relative_to_lrcbert(tmp_path, monkeypatch):
    from ablation_tables import build

    monkeypatch.chdir(tmp_path)  # the run folders the dev results cite exist (a table refuses one that is gone)
    for name, scores in (
        ("lrcbert", {"mnli": {"mnli_m": [80.0, 82.0], "mnli_mm": [81.0, 81.0]}, "cola": {"cola": [40.0, 44.0]}}),
        ("lrcbert_c", {"mnli": {"mnli_m": [70.0, 74.0], "mnli_mm": [75.0, 75.0]}, "cola": {"cola": [30.0, 30.0]}}),
    ):
        result = dev(name, scores)
        (tmp_path / f"{name}.json").write_text(json.dumps(result))
        for entry in result["tasks"].values():
            for seed in entry["seeds"].values():
                Path(seed["run"]).mkdir(parents=True, exist_ok=True)
    systems = {
        "lrcbert": {"label": "LRC-BERT", "paper": "LRC-BERT"},
        "lrcbert_c": {"label": "LRC-BERT_C", "paper": "LRC-BERT_C"},
    }
    text, frame = build(
        [str(tmp_path / "lrcbert.json"), str(tmp_path / "lrcbert_c.json")],
        systems,
        "lrcbert",
        ["mnli_m", "mnli_mm", "cola"],
        str(ROOT / "results/paper/table3_loss_ablation_dev.csv"),
        "Table 3",
        "tsv",
    )
    assert "| LRC-BERT_C | COS-NCE (transformer-layer loss) | 72.0 ± 2.8 (n=2) [paper 78.0] | -9.0 [paper -5.4]" in text
    assert "30.0 ± 0.0 (n=2) [paper 37.0] | -12.0 [paper -13.0]" in text
    row = frame[(frame.system == "lrcbert_c") & (frame.split == "mnli_mm")].iloc[0]
    assert row["delta"] == pytest.approx(-6.0) and row["paper_delta"] == pytest.approx(-5.3)


def test_table5_selection_rule():
    from table5 import select

    cases = {
        "idx": [10, 11, 12, 13, 14],
        "label": [0, 1, 2, 0, 1],
        "runs": {
            "ref": {"prediction": [0, 1, 2, 1, 1]},
            "m": {"prediction": [1, 0, 2, 1, 2], "mse_mean": [0.5, 0.9, 5.0, 9.0, 0.9]},
        },
    }
    # eligible: positions 0, 1, 4 (ref right, m wrong); 3 has the largest MSE but ref is wrong; 2: m right
    assert select(cases, "ref", "m", 2) == [1, 4]  # 0.9 tie: lower dev index first
    assert select(cases, "ref", "m", 5) == [1, 4, 0]


def test_figure5_smoothing_restarts_at_the_stage_boundary():
    import pandas as pd
    from figure5 import boundary, ema

    assert ema([1.0, 1.0, 1.0], 0.9) == pytest.approx([1.0, 1.0, 1.0])  # bias-corrected: no warm-up dip
    assert ema([2.0, 4.0], 0.5) == pytest.approx([2.0, (0.25 * 2 + 0.5 * 4) / 0.75])
    assert ema([1.0, 1.0, 5.0, 5.0], 0.9, restart=2)[2:] == pytest.approx([5.0, 5.0])
    frame = pd.DataFrame(
        {"step": [1, 2, 3, 4], "w_layer": [1.0] * 4, "w_soft": [None, None, 1.0, 1.0], "w_hard": [None, None, 3.0, 3.0]}
    )
    assert boundary(frame) == 3


def test_sweep_points_from_config():
    """The weight sweep, one weight at a time around 1:1:3 over {1, 2, 3, 4}: 10 distinct points."""
    import yaml

    cfg = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())["analyses"]["sweeps"]
    values, base = cfg["weights"]["values"], cfg["weights"]["base"]
    points = set()
    for term in ("layer", "soft", "hard"):
        for v in values:
            points.add(tuple(v if t == term else base[t] for t in ("layer", "soft", "hard")))
    assert len(points) == 10 and (1, 1, 3) in points
    assert [round(x * 100) for x in cfg["stage_split"]] == list(range(0, 100, 5))


def test_paper_columns_of_tables_3_and_4():
    import pandas as pd
    from ablation_tables import paper_column

    t3 = pd.read_csv(ROOT / "results/paper/table3_loss_ablation_dev.csv").columns
    t4 = pd.read_csv(ROOT / "results/paper/table4_two_stage_dev.csv").columns
    assert [paper_column(t3, s) for s in ("mnli_m", "mnli_mm", "mrpc", "cola")] == [
        "mnli_m",
        "mnli_mm",
        "mrpc",
        "cola_mcc",
    ]
    assert paper_column(t4, "mnli_m") == "mnli_m_acc" and paper_column(t4, "mnli_mm") is None


def test_sweep_point_chooses_its_lr_on_dev_and_marks_the_papers_choice(tmp_path):
    from sweeps import build

    def metrics(folder, score):
        folder.mkdir(parents=True)
        (folder / "metrics.json").write_text(
            json.dumps({"splits": {s: {"score": score} for s in ("mnli_m", "mnli_mm")}})
        )
        return str(folder)

    layout, points = {}, {}
    for point, a, b in (("w1-1-3", (70.0, 72.0), (80.0, 60.0)), ("w2-1-3", (50.0, 50.0), (55.0, 57.0))):
        layout[point] = {
            lr: {str(seed): metrics(tmp_path / point / lr / str(seed), v) for seed, v in zip((1, 2), vals)}
            for lr, vals in (("0.001", a), ("0.003", b))
        }
        points[point] = {"method.stage2": {"layer": float(point[1]), "soft": 1.0, "hard": 3.0}}
    text, frame = build(
        "weights",
        layout,
        points,
        ["mnli_m", "mnli_mm"],
        "lrcbert",
        {"mode": "one_at_a_time", "base": {"layer": 1, "soft": 1, "hard": 3}},
        "tsv",
    )
    first, second = frame.iloc[0], frame.iloc[1]
    assert first["lr"] == "0.001" and first["selection_mean"] == pytest.approx(71.0)  # 71 beats 70 (0.003)
    assert second["lr"] == "0.003" and second["selection_mean"] == pytest.approx(56.0)
    assert "| 1 (paper's choice) |" in text and "**71.0 ± 1.4 (n=2)**" in text


def test_robustness_table_means_over_seeds():
    from robustness import build

    res = {
        "split": "mnli_m",
        "eps": [0.0, 1.0],
        "directions": ["gradient"],
        "runs": {
            "seed1": {"embedding_norm_mean": 10.0, "accuracy": {"gradient": {"0.0": 80.0, "1.0": 60.0}}},
            "seed2": {"embedding_norm_mean": 12.0, "accuracy": {"gradient": {"0.0": 82.0, "1.0": 50.0}}},
        },
    }
    text, frame = build({"lrcbert": res}, {"lrcbert": {"label": "LRC-BERT"}}, "tsv")
    assert "| gradient direction (FGM) | LRC-BERT | 81.0 ± 1.4 (n=2) | 55.0 ± 7.1 (n=2) |" in text
    assert "11.0 (LRC-BERT)" in text
