"""Provenance of the results pages (issue 23): a dev score is recomputed from the run's own dev predictions before
it enters a table, a run folder that is gone is planned again and never cited, every name that reaches Markdown or
HTML is escaped, and the runs of one task share the data and the teacher their identities record."""

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import assert_tables_well_formed

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "workflow" / "scripts"))
PAPER = ROOT / "results" / "paper"
SPLITS = ["mnli_m", "mnli_mm", "qqp", "sst2", "qnli", "mrpc", "rte", "cola", "stsb"]
HOSTILE = "Evil | <img src=x onerror=alert(1)> & \\"


def identity(data="d0", teacher="t0", commit="c0", dirty=False) -> dict:
    return {
        "run_id": f"id-{data}-{teacher}-{commit}",
        "config_hash": "h",
        "data": {"rte/train": "train-any", "rte/dev": data, "rte/test": "test0"},
        "teacher": teacher,
        "student_init": "s",
        "suite": {"commit": commit, "dirty": dirty},
        "versions": {},
    }


def write_run(folder: Path, score: float, ident: dict | None = None, model_hash: str | None = None) -> str:
    """A finished RTE run whose dev predictions (100 examples, ``score``% right) give ``score``."""
    (folder / "predictions").mkdir(parents=True, exist_ok=True)
    rows = [f"{i}\t{int(i < score)}\t1" for i in range(100)]
    (folder / "predictions" / "dev_rte.tsv").write_text("idx\tprediction\tgold\n" + "\n".join(rows) + "\n")
    extra = {k: v for k, v in (("identity", ident), ("model_hash", model_hash)) if v}
    split = {"split": "dev", "n": 100, "accuracy": score / 100, "score": score}
    (folder / "metrics.json").write_text(json.dumps({"seed": 1, "splits": {"rte": split}, **extra}))
    (folder / "run.json").write_text(json.dumps({"status": "finished", "params": 1000, **extra}))
    return str(folder)


def layout(runs: dict, teacher_from: str | None = None) -> dict:
    """A one-task (RTE), one-lr distill layout of {seed: folder}."""
    expect = {r: {"teacher_from": teacher_from} for r in runs.values()} if teacher_from else {}
    return {"kind": "distill", "tasks": {"rte": {"0.001": dict(runs)}}, "expect": expect}


def collect(name, lay):
    from collect_dev import collect

    return collect(name, lay, {"rte": ["rte"]})


def table1(tmp_path, devs: dict, labels: dict | None = None) -> str:
    from table1 import build

    files = []
    for name, dev in devs.items():
        f = tmp_path / f"{name}.json"
        f.write_text(json.dumps(dev))
        files.append(str(f))
    systems = {n: {"label": (labels or {}).get(n, n), "paper": None} for n in devs}
    first = next(iter(devs))
    text, _ = build(
        files,
        systems,
        first,
        first,
        SPLITS,
        str(PAPER / "table1_glue_test.csv"),
        str(PAPER / "other_figures.csv"),
        "tsv",
    )
    return text


# ---------------------------------------------------------------------------------------------- finding 7
def test_a_hand_edited_score_is_left_out_and_named(tmp_path):
    good = write_run(tmp_path / "s/seed1", 70.0)
    bad = write_run(tmp_path / "s/seed2", 60.0)
    m = json.loads(Path(bad, "metrics.json").read_text())
    m["splits"]["rte"]["score"] = 99.0  # the hand edit: nothing else changes
    Path(bad, "metrics.json").write_text(json.dumps(m))
    gone = write_run(tmp_path / "s/seed3", 65.0)
    Path(gone, "predictions", "dev_rte.tsv").unlink()
    broken = write_run(tmp_path / "s/seed4", 65.0)
    Path(broken, "predictions", "dev_rte.tsv").write_text("idx\tprediction\tgold\n0\tyes\t1\n")

    dev = collect("lrcbert", layout({"1": good, "2": bad, "3": gone, "4": broken}))
    assert list(dev["tasks"]["rte"]["seeds"]) == ["1"]
    assert dev["excluded"][bad] == (
        f"scores do not match predictions: {bad}/metrics.json has rte score 99.0, "
        f"its predictions {bad}/predictions/dev_rte.tsv give 60"
    )
    assert dev["excluded"][gone] == (
        f"unverifiable: {gone}/predictions/dev_rte.tsv is missing (its dev scores cannot be recomputed)"
    )
    assert dev["excluded"][broken].startswith(f"unverifiable: {broken}/predictions/dev_rte.tsv: unreadable row")
    text = table1(tmp_path, {"lrcbert": dev})
    assert "99.0 (n=" not in text and "| 70.0 (n=1) " in text  # seed 1 alone; 99.0 only in the note
    assert f"- lrcbert: {bad}: scores do not match predictions" in text


# ---------------------------------------------------------------------------------------------- finding 8
def test_a_table_refuses_a_run_folder_that_is_gone(tmp_path):
    run = write_run(tmp_path / "s/seed1", 70.0)
    dev = collect("lrcbert", layout({"1": run}))
    shutil.move(run, tmp_path / "elsewhere")
    with pytest.raises(ValueError, match=re.escape(f"results/dev/lrcbert.json cites run folder {run} (task rte")):
        table1(tmp_path, {"lrcbert": dev})
    assert collect("lrcbert", layout({"1": run}))["excluded"][run] == f"missing: run folder {run} does not exist"


SNAKEMAKE = shutil.which("snakemake") or str(Path(sys.executable).parent / "snakemake")


@pytest.mark.skipif(not Path(SNAKEMAKE).exists(), reason="snakemake is not installed")
def test_a_run_folder_moved_away_is_planned_again(tmp_path):
    """The default target of a finished smoke grid (every output written by hand, then ``--touch``: no training),
    reduced to a few tasks: moving one run folder away makes ``snakemake -n`` plan that run and what is made from
    it, instead of "Nothing to be done"."""
    import os

    import yaml
    from kill_smoke import workflow_copy

    from lrcbert.synthetic import MARKER, MARKER_FIRST_LINE

    wf = workflow_copy(tmp_path / "wf")
    overlay = {
        "tasks": ["mnli", "mrpc", "rte", "cola", "stsb"],
        "analyses": {"enabled": False},
        "systems": {"lrcbert1": {"lr": [1.0e-3], "tasks": ["rte"]}},
        "tables": {"table1": {"systems": ["teacher", "lrcbert1"]}},
    }
    (wf / "overlay.yaml").write_text(yaml.safe_dump(overlay))
    (wf / "data/synthetic").mkdir(parents=True)
    (wf / "data/synthetic" / MARKER).write_text(MARKER_FIRST_LINE + "\n")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "PYTHONPATH": str(ROOT)}
    args = [SNAKEMAKE, "--cores", "1", "--configfile", "config/smoke.yaml", "overlay.yaml"]

    def smk(*more):
        res = subprocess.run([*args, *more], cwd=wf, env=env, capture_output=True, text=True)
        assert res.returncode == 0, res.stderr[-3000:]
        return res.stdout + res.stderr

    for line in smk("-n").splitlines():  # every output of the plan, written by hand
        found = re.match(r"\s+output: (.*)", line)
        for f in found.group(1).split(", ") if found else []:
            path = wf / f
            if path.suffix:
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text("{}")
            else:  # directory() outputs
                path.mkdir(parents=True, exist_ok=True)
    smk("--touch")
    assert "Nothing to be done" in smk("-n")
    shutil.move(wf / "runs/lrcbert1/rte/seed1/lr0.001", tmp_path / "moved")
    plan = smk("-n")
    assert "Nothing to be done" not in plan
    assert re.search(r"task_distill\s+1\b", plan) and re.search(r"table1\s+1\b", plan)


# ---------------------------------------------------------------------------------------------- finding 13
def test_hostile_names_are_escaped_in_table1_claims_and_the_report(tmp_path):
    from claims import render as claims_page
    from report_pages import render as report_page

    dev = collect("evil", layout({"1": write_run(tmp_path / "s/seed1", 70.0)}))
    text = table1(tmp_path, {"evil": dev}, labels={"evil": HOSTILE})
    assert_tables_well_formed(text)
    assert "<img" not in text
    assert "| Evil \\| &lt;img src=x onerror=alert(1)&gt; &amp; \\\\ " in text

    rows = [{"id": "1", "claim": HOSTILE, "evidence": "a | b", "verdict": "inconclusive", "note": "<b>x</b>"}]
    claims, _ = claims_page(rows, "tsv", 10)
    assert_tables_well_formed(claims)
    assert "<img" not in claims and "<b>" not in claims

    page = tmp_path / "table1.md"
    page.write_text(text + "\n<script>alert(1)</script>\n")  # raw HTML from any page is shown, never run
    html = report_page(str(page))
    assert "<img" not in html and "<script>" not in html
    assert ">Evil | &lt;img src=x onerror=alert(1)&gt; &amp; \\</td>" in html  # one cell, shown as written


# ---------------------------------------------------------------------------------------------- identities
def test_runs_of_a_task_share_data_and_teacher_and_the_suite_mix_is_stated(tmp_path):
    teacher = write_run(tmp_path / "t", 80.0, identity(), model_hash="t0")
    selected = tmp_path / "selected.json"
    selected.write_text(json.dumps({"run": teacher, "model": f"{teacher}/model"}))
    ok = write_run(tmp_path / "s/seed1", 70.0, identity())
    other_suite = write_run(tmp_path / "s/seed2", 72.0, identity(commit="c1", dirty=True))
    old = write_run(tmp_path / "s/seed3", 71.0)  # an older suite: no identity
    other_data = write_run(tmp_path / "s/seed4", 90.0, identity(data="d1"))
    other_teacher = write_run(tmp_path / "s/seed5", 90.0, identity(teacher="t1"))
    runs = {"1": ok, "2": other_suite, "3": old, "4": other_data, "5": other_teacher}

    dev = collect("lrcbert", layout(runs, str(selected)))
    seeds = dev["tasks"]["rte"]["seeds"]
    assert sorted(seeds) == ["1", "2", "3"]
    assert seeds["1"]["identity"] == "id-d0-t0-c0" and seeds["3"]["identity"] is None
    assert dev["excluded"][other_data] == (
        f"other data: its rte/dev has hash d1, the selected teacher run {teacher} read d0"
    )
    assert dev["excluded"][other_teacher] == (
        f"another teacher: it was distilled from weights t1, the selected teacher run {teacher} saved t0"
    )
    text = table1(tmp_path, {"lrcbert": dev})
    assert (
        "**Runs from 3 suite versions** (their numbers may differ for that reason alone): c0: 1 run; "
        "c1 (edited): 1 run; no identity (a suite older than run identities): 1 run." in text
    )
    one = collect("lrcbert", layout({"1": ok}, str(selected)))
    assert "All 1 runs above were made by one suite version: c0." in table1(tmp_path, {"lrcbert": one})


def test_teacher_selection_ignores_a_candidate_whose_score_its_predictions_do_not_give(tmp_path, capsys):
    from select_teacher import select

    good, edited = tmp_path / "lr0.001", tmp_path / "lr0.003"
    write_run(good, 60.0)
    write_run(edited, 55.0)
    record = json.loads((edited / "metrics.json").read_text())
    record["splits"]["rte"]["score"] = 99.0  # a hand edit: the best candidate on paper
    (edited / "metrics.json").write_text(json.dumps(record))
    chosen = select("rte", [str(good / "metrics.json"), str(edited / "metrics.json")])
    assert chosen["run"] == str(good) and chosen["candidates"] == {"0.001": 60.0}
    assert f"left out {edited}: scores do not match predictions" in capsys.readouterr().out


def test_an_sts_b_score_is_recomputed_exactly_from_nearly_constant_predictions(tmp_path):
    # a barely trained regression head predicts nearly one value: 6 significant digits (the old format) erased the
    # differences and the recomputed Pearson r disagreed with the run's own (the smoke DAG's tiny STS-B teacher)
    import numpy as np

    from lrcbert.evaluation import compute_metrics, scores_from_predictions, write_dev_predictions
    from lrcbert.tasks import TASKS

    rng = np.random.default_rng(0)
    task = TASKS["stsb"]
    pred = (2.5 + 1e-6 * rng.standard_normal(64)).astype(np.float32)
    gold = rng.uniform(0, 5, 64).astype(np.float32)
    path = tmp_path / "dev_stsb.tsv"
    write_dev_predictions(task, pred, gold, np.arange(64), path)
    got, want = scores_from_predictions(task, path), compute_metrics(task, pred, gold)
    assert got["pearson"] == pytest.approx(want["pearson"], rel=1e-6)
    assert got["spearman"] == pytest.approx(want["spearman"], rel=1e-6)
