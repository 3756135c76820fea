"""Whole runs through the CLI and ``lrcbert.run``: fine-tune, distil, general distillation, resume, and the
errors that must stop a run before any training."""

import csv
import json

import pytest
from conftest import finetune_teacher, synthetic_sets, tiny_config

from lrcbert.cli import main
from lrcbert.run import run
from lrcbert.tasks import TASKS


@pytest.fixture(scope="module")
def teacher(glue_dir, tmp_path_factory):
    return finetune_teacher(glue_dir, tmp_path_factory.mktemp("teacher"), epochs=2)


def distill_cfg(glue_dir, teacher, **train):
    return tiny_config(
        glue_dir,
        task="rte",
        model={"teacher": str(teacher / "model"), "teacher_random_init": False},
        train={"epochs": 2, "checkpoint_every": 5, **train},
    )


def test_finetune_writes_a_whole_run(teacher, glue_dir):
    metrics = json.loads((teacher / "metrics.json").read_text())
    assert metrics["splits"]["rte"]["split"] == "dev" and 0 <= metrics["splits"]["rte"]["accuracy"] <= 1
    record = json.loads((teacher / "run.json").read_text())
    for key in ("git_commit", "versions", "seed", "config_hash", "wall_time_s", "peak_memory_mb", "device"):
        assert key in record
    rows = (teacher / "predictions" / "RTE.tsv").read_text().splitlines()
    assert rows[0] == "index\tprediction" and len(rows) == 1 + 16
    assert {r.split("\t")[1] for r in rows[1:]} <= set(TASKS["rte"].labels)
    assert (teacher / "model" / "model.safetensors").is_file()


def test_resume_gives_the_same_metrics_as_an_uninterrupted_run(teacher, glue_dir, tmp_path):
    whole = run(distill_cfg(glue_dir, teacher), tmp_path / "whole", "distill")
    cut = tmp_path / "cut"
    stopped = run(distill_cfg(glue_dir, teacher, stop_after_steps=7), cut, "distill")
    assert stopped["status"] == "stopped" and not (cut / "metrics.json").exists()
    resumed = run(distill_cfg(glue_dir, teacher), cut, "distill")  # resumes from the step-5 checkpoint
    assert resumed["splits"] == whole["splits"]
    with open(cut / "losses.csv") as f, open(tmp_path / "whole" / "losses.csv") as g:
        assert [r["total"] for r in csv.DictReader(f)] == [r["total"] for r in csv.DictReader(g)]


@pytest.mark.faults
def test_finished_run_is_not_redone_and_another_config_replaces_it(teacher, glue_dir, tmp_path):
    cfg = distill_cfg(glue_dir, teacher, max_steps=3)
    run(cfg, tmp_path, "distill")
    stamp = (tmp_path / "metrics.json").stat().st_mtime_ns
    run(cfg, tmp_path, "distill")
    assert (tmp_path / "metrics.json").stat().st_mtime_ns == stamp
    # issue 23: another configuration is another identity; the old run's files are moved aside, not reported
    other = run(distill_cfg(glue_dir, teacher, max_steps=3, lr=1e-4), tmp_path, "distill")
    assert other["config_hash"] != cfg.hash() and other["identity"]["config_hash"] == other["config_hash"]
    (moved,) = (tmp_path / ".superseded").iterdir()
    assert json.loads((moved / "metrics.json").read_text())["config_hash"] == cfg.hash()


@pytest.mark.faults
def test_teacher_with_other_label_order_stops_before_training(teacher, glue_dir, tmp_path, capsys):
    bad = tmp_path / "bad_teacher"
    import shutil

    shutil.copytree(teacher / "model", bad)
    conf = json.loads((bad / "config.json").read_text())
    conf["id2label"] = {"0": "not_entailment", "1": "entailment"}
    conf["label2id"] = {"not_entailment": 0, "entailment": 1}
    (bad / "config.json").write_text(json.dumps(conf))
    cfg_file = tmp_path / "c.yaml"
    cfg_file.write_text(json.dumps(distill_cfg(glue_dir, teacher).to_dict()))
    argv = ["distill", "--task", "rte", "--config", str(cfg_file), "--set", f"model.teacher={bad}"]
    code = main([*argv, "--out", str(tmp_path / "r")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and [x for x in err if x.startswith("lrcbert: error:")] == err[-1:]
    err = err[-1]
    assert "label order ['not_entailment', 'entailment'] differs from task rte's" in err
    assert not (tmp_path / "r" / "losses.csv").exists() and not (tmp_path / "r" / "metrics.json").exists()


@pytest.mark.faults
def test_cli_rejects_unknown_task_and_key(tmp_path, capsys):
    assert main(["finetune", "--task", "wnli2", "--out", str(tmp_path)]) == 2
    assert "unknown task 'wnli2'" in capsys.readouterr().err
    assert main(["distill", "--task", "rte", "--set", "method.temprature=2", "--out", str(tmp_path)]) == 2
    assert "unknown config key 'method.temprature'" in capsys.readouterr().err


def test_general_distillation_then_task_distillation_from_it(teacher, glue_dir, tmp_path):
    general = tiny_config(
        glue_dir,
        train={"max_steps": 6},
        data={"max_corpus_lines": 100},
        method={"stage_split": 1.0, "stage1": {"layer": 1.0}, "stage2": {"layer": 1.0}},
    )
    result = run(general, tmp_path / "general", "general")
    assert result["splits"] == {}
    with open(tmp_path / "general" / "losses.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 6 and all("soft" not in r and float(r["layer"]) > 0 for r in rows)  # the run's terms only
    cfg = distill_cfg(glue_dir, teacher, max_steps=4)
    cfg.model.student, cfg.model.student_init = str(tmp_path / "general" / "model"), "path"
    out = run(cfg, tmp_path / "task", "distill")
    assert "rte" in out["splits"]


def test_cli_augment_writes_a_trainable_file(glue_dir, tmp_path, capsys):
    out = tmp_path / "aug.tsv"
    args = [
        "augment",
        "--task",
        "cola",
        "--set",
        "data.source=synthetic",
        "--set",
        f"data.path={glue_dir}",
        "--out",
        str(out),
        "--n-aug",
        "2",
        "--p",
        "0",
        "--max-examples",
        "10",
    ]
    assert main(args) == 0
    assert json.loads(capsys.readouterr().out)["written"] == 30
    from lrcbert import data as D
    from lrcbert.config import load_config

    cfg = load_config(base={"data": {"source": "synthetic", "path": str(glue_dir), "train_file": str(out)}})
    ds = D.load_split(cfg, TASKS["cola"], "train")
    assert len(ds) == 30 and ds["text_a"][0] == ds["text_a"][1] == ds["text_a"][2]
    assert main(args[:-4] + ["--p", "1.5"]) == 2
    assert "p" in capsys.readouterr().err


@pytest.mark.faults
def test_sigterm_checkpoints_and_the_rerun_matches(teacher, glue_dir, tmp_path, monkeypatch):
    """A preempted run (SIGTERM mid-training) saves a checkpoint at the end of the step, exits 75, and
    the rerun ends with the metrics of an uninterrupted one."""
    import os
    import signal

    from lrcbert import engine
    from lrcbert.run import Preempted

    whole = run(distill_cfg(glue_dir, teacher, checkpoint_every=0), tmp_path / "whole", "distill")
    step = engine.Trainer.train_step

    def train_step(self, batch):
        if self.step == 4:
            os.kill(os.getpid(), signal.SIGTERM)
        return step(self, batch)

    monkeypatch.setattr(engine.Trainer, "train_step", train_step)
    with pytest.raises(Preempted, match="interrupted by SIGTERM at step 5/24"):
        run(distill_cfg(glue_dir, teacher, checkpoint_every=0), tmp_path / "cut", "distill")
    assert (tmp_path / "cut" / "checkpoints" / "step-00000005" / "manifest.json").is_file()
    assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL  # handlers restored
    monkeypatch.setattr(engine.Trainer, "train_step", step)
    assert (
        run(distill_cfg(glue_dir, teacher, checkpoint_every=0), tmp_path / "cut", "distill")["splits"]
        == whole["splits"]
    )


@pytest.mark.faults
def test_corrupt_newest_checkpoint_falls_back_to_the_previous_one(teacher, glue_dir, tmp_path):
    whole = run(distill_cfg(glue_dir, teacher), tmp_path / "whole", "distill")
    cut = tmp_path / "cut"
    run(distill_cfg(glue_dir, teacher, stop_after_steps=10), cut, "distill")  # checkpoints at 5 and 10
    newest = cut / "checkpoints" / "step-00000010" / "student.safetensors"
    newest.write_bytes(newest.read_bytes()[:100])  # a truncated file
    with pytest.warns(UserWarning, match=r"step-00000010 is unusable \(student.safetensors fails its checksum\)"):
        resumed = run(distill_cfg(glue_dir, teacher), cut, "distill")
    assert resumed["splits"] == whole["splits"]


def test_cli_evaluate_a_saved_classifier(teacher, glue_dir, tmp_path):
    out = tmp_path / "eval"
    assert (
        main(
            [
                "evaluate",
                "--task",
                "rte",
                "--model",
                str(teacher / "model"),
                *synthetic_sets(glue_dir),
                "--out",
                str(out),
            ]
        )
        == 0
    )
    got = json.loads((out / "metrics.json").read_text())["splits"]["rte"]
    assert got["accuracy"] == json.loads((teacher / "metrics.json").read_text())["splits"]["rte"]["accuracy"]
    assert (out / "predictions" / "RTE.tsv").is_file()
