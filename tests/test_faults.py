"""Fault injection: each test makes one thing go wrong on purpose and checks that it is handled.

Run every fault test of the suite (this file and the marked tests elsewhere) with::

    HF_HUB_OFFLINE=1 python -m pytest -m faults

Here: SIGKILL at a random step of fine-tuning, general distillation and task distillation (the rerun resumes and
ends with the uninterrupted run's weights and metrics), a checkpoint with a missing file, non-finite steps skipped
up to ``train.max_bad_steps``, stale and unfinished runs kept out of the tables, and the SLURM early-warning
signal. Elsewhere (marked ``faults``): SIGTERM/SIGUSR1 preemption (test_run), a truncated checkpoint (test_run), a
NaN loss (test_engine), a teacher with another label order, bad data files and labelled test splits
(test_run, test_data), schema-invalid workflow configs (test_workflow).
"""

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml
from conftest import finetune_teacher, tiny_config
from safetensors.torch import load_file

from lrcbert import checkpoint
from lrcbert.run import run

pytestmark = pytest.mark.faults
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "workflow" / "scripts"))
CHECKPOINT_EVERY = 5


@pytest.fixture(scope="module")
def teacher(glue_dir, tmp_path_factory):
    return finetune_teacher(glue_dir, tmp_path_factory.mktemp("teacher"), epochs=1) / "model"


def kind_config(kind, glue_dir, teacher):
    train = {"max_steps": 40, "checkpoint_every": CHECKPOINT_EVERY, "log_every": 1, "batch_size": 4}
    if kind == "finetune":
        return tiny_config(
            glue_dir,
            task="rte",
            train=train,
            method={
                "name": "finetune",
                "stage_split": 0.0,
                "stage1": {"hard": 1.0},
                "stage2": {"hard": 1.0},
                "perturb": False,
            },
        )
    if kind == "general":
        return tiny_config(
            glue_dir,
            train=train,
            data={"corpus": str(glue_dir / "corpus.txt")},
            method={"name": "general", "stage_split": 1.0, "stage1": {"layer": 1.0}, "stage2": {"layer": 1.0}},
        )
    return tiny_config(glue_dir, task="rte", train=train, model={"teacher": str(teacher), "teacher_random_init": False})


def launch(cfg, out: Path, kind: str) -> subprocess.Popen:
    """``lrcbert <kind>`` on ``cfg`` in a child process (one thread, so every run sums in the same order)."""
    cfg_file = out.parent / f"{out.name}.yaml"
    d = cfg.to_dict()
    cfg_file.write_text(yaml.safe_dump(d))
    command = {"finetune": "finetune", "general": "general-distill", "distill": "distill"}[kind]
    args = [sys.executable, "-m", "lrcbert", command, "--config", str(cfg_file), "--out", str(out)]
    if kind != "general":
        args += ["--task", d["task"]]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(ROOT)}
    return subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def logged_step(out: Path) -> int:
    try:
        lines = (out / "losses.csv").read_text().splitlines()
    except FileNotFoundError:
        return 0
    return int(lines[-1].split(",")[0]) if len(lines) > 1 and lines[-1].split(",")[0].isdigit() else 0


@pytest.mark.parametrize("kind", ["finetune", "general", "distill"])
def test_sigkill_at_a_random_step_loses_only_the_steps_since_the_last_checkpoint(kind, glue_dir, teacher, tmp_path):
    cfg = kind_config(kind, glue_dir, teacher)
    kill_at = random.Random(f"kill-{kind}").randint(CHECKPOINT_EVERY + 1, 30)
    reference = launch(cfg, tmp_path / "whole", kind)  # uninterrupted, at the same time
    victim = launch(cfg, tmp_path / "cut", kind)
    while logged_step(tmp_path / "cut") < kill_at and victim.poll() is None:
        time.sleep(0.01)
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    assert victim.returncode == -signal.SIGKILL, f"the run ended before step {kill_at}: {victim.stdout.read()}"
    done = logged_step(tmp_path / "cut")
    saved = checkpoint.latest(tmp_path / "cut" / "checkpoints")
    assert saved is not None
    saved_step = json.loads((saved / "state.json").read_text())["step"]
    assert 0 <= done - saved_step <= CHECKPOINT_EVERY, (done, saved_step)  # at most one interval is lost
    assert not (tmp_path / "cut" / "metrics.json").exists()

    resumed = launch(cfg, tmp_path / "cut", kind)
    log = resumed.communicate()[0]
    assert resumed.returncode == 0, log[-2000:]
    assert f"at step {saved_step}/40" in log
    assert reference.wait() == 0, reference.stdout.read()[-2000:]
    whole = json.loads((tmp_path / "whole" / "metrics.json").read_text())
    cut = json.loads((tmp_path / "cut" / "metrics.json").read_text())
    assert cut["splits"] == whole["splits"] and cut["config_hash"] == whole["config_hash"]
    a = load_file(tmp_path / "whole" / "model" / "model.safetensors")
    b = load_file(tmp_path / "cut" / "model" / "model.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_sigusr1_makes_the_cli_checkpoint_and_exit_75_and_the_rerun_resumes(glue_dir, teacher, tmp_path):
    """SLURM's early warning (USR1) or a preemption (TERM): checkpoint at the end of the step, exit 75
    (EX_TEMPFAIL, which Snakemake's retries and SLURM's requeue turn into a rerun), then resume."""
    cfg = kind_config("finetune", glue_dir, teacher)
    reference = launch(cfg, tmp_path / "whole", "finetune")
    victim = launch(cfg, tmp_path / "cut", "finetune")
    while logged_step(tmp_path / "cut") < 7 and victim.poll() is None:
        time.sleep(0.01)
    victim.send_signal(signal.SIGUSR1)
    log = victim.communicate()[0]
    assert victim.returncode == 75, log[-2000:]
    assert "interrupted by SIGUSR1 at step" in log
    step = int(log.split("interrupted by SIGUSR1")[1].split("at step ")[1].split("/")[0])
    assert (tmp_path / "cut" / "checkpoints" / f"step-{step:08d}" / "manifest.json").is_file()  # no step lost
    resumed = launch(cfg, tmp_path / "cut", "finetune")
    log = resumed.communicate()[0]
    assert resumed.returncode == 0 and f"at step {step}/40" in log, log[-2000:]
    assert reference.wait() == 0
    whole = json.loads((tmp_path / "whole" / "metrics.json").read_text())
    assert json.loads((tmp_path / "cut" / "metrics.json").read_text())["splits"] == whole["splits"]


def test_a_checkpoint_with_a_missing_file_is_skipped_with_a_warning(glue_dir, teacher, tmp_path):
    cfg = kind_config("distill", glue_dir, teacher)
    whole = run(cfg, tmp_path / "whole", "distill")
    cfg_cut = kind_config("distill", glue_dir, teacher)
    cfg_cut.train.stop_after_steps = 2 * CHECKPOINT_EVERY
    run(cfg_cut, tmp_path / "cut", "distill")
    newest = tmp_path / "cut" / "checkpoints" / f"step-{2 * CHECKPOINT_EVERY:08d}"
    (newest / "trainer.pt").unlink()
    with pytest.warns(UserWarning, match=rf"step-{2 * CHECKPOINT_EVERY:08d} is unusable \(trainer.pt"):
        resumed = run(cfg, tmp_path / "cut", "distill")
    assert resumed["splits"] == whole["splits"]


def test_non_finite_steps_are_skipped_up_to_max_bad_steps_then_the_run_stops(glue_dir, teacher, tmp_path, monkeypatch):
    from lrcbert import engine

    poisoned = {3, 6}  # steps (1-based) whose loss is made NaN

    original = engine.combine

    def combine(terms, weights):
        total = original(terms, weights)
        return total * float("nan") if combine.trainer.step + 1 in poisoned else total

    real_init = engine.Trainer.__init__

    def init(self, *args, **kwargs):
        real_init(self, *args, **kwargs)
        combine.trainer = self

    monkeypatch.setattr(engine, "combine", combine)
    monkeypatch.setattr(engine.Trainer, "__init__", init)

    cfg = kind_config("distill", glue_dir, teacher)
    cfg.train.max_bad_steps = 2
    result = run(cfg, tmp_path / "tolerant", "distill")
    record = json.loads((tmp_path / "tolerant" / "run.json").read_text())
    assert record["bad_steps_skipped"] == 2 and record["steps"] == 40 and "splits" in result
    rows = (tmp_path / "tolerant" / "losses.csv").read_text().splitlines()
    header = rows[0].split(",")
    bad = [int(r.split(",")[header.index("bad_steps")]) for r in rows[1:]]
    assert bad[:8] == [0, 0, 1, 1, 1, 2, 2, 2]

    cfg = kind_config("distill", glue_dir, teacher)
    cfg.train.max_bad_steps = 1
    with pytest.raises(engine.TrainingDiverged, match=r"step 6: loss is nan .* last good checkpoint: .*step-00000005"):
        run(cfg, tmp_path / "strict", "distill")


def test_a_skipped_step_leaves_the_weights_unchanged(glue_dir, teacher, tmp_path, monkeypatch):
    from lrcbert import engine

    monkeypatch.setattr(engine, "combine", lambda terms, weights: sum(terms.values()) * float("inf"))
    cfg = kind_config("distill", glue_dir, teacher)
    cfg.train.max_bad_steps = 5
    cfg.train.max_steps = 3
    result = run(cfg, tmp_path / "run", "distill")
    assert json.loads((tmp_path / "run" / "run.json").read_text())["bad_steps_skipped"] == 3
    assert "splits" in result
    trained = load_file(tmp_path / "run" / "model" / "model.safetensors")
    # no update happened: the saved student equals a fresh student built from the same seed
    from accelerate.utils import set_seed

    from lrcbert.models import build_student, build_teacher
    from lrcbert.tasks import get_task

    set_seed(cfg.train.seed)
    t = build_teacher(cfg, get_task("rte"), finetuned=True)
    fresh = build_student(cfg, get_task("rte"), t.config).state_dict()
    assert all(torch.equal(trained[k], fresh[k]) for k in trained)


# ------------------------------------------------------------------------------------------ aggregation
def _finished_run(folder: Path, cfg, score: float, status="finished"):
    folder.mkdir(parents=True)
    (folder / "metrics.json").write_text(
        json.dumps({"config_hash": cfg.hash(), "seed": cfg.train.seed, "splits": {"rte": {"score": score}}})
    )
    (folder / "run.json").write_text(json.dumps({"status": status, "config_hash": cfg.hash(), "params": 10}))


def test_tables_count_only_finished_runs_of_the_current_config_and_list_the_rest(tmp_path, monkeypatch):
    from collect_dev import collect

    from lrcbert.assemble import command_config
    from lrcbert.results import excluded_note

    monkeypatch.chdir(tmp_path)
    Path("selected.json").write_text(json.dumps({"model": "teacher/model"}))
    sets = ["train.lr=0.001", "data.source=tsv", "data.path=data"]
    layout = {"kind": "distill", "tasks": {"rte": {"0.001": {}}}, "expect": {}}
    current = {
        s: command_config("distill", "lrcbert", "rte", (), [*sets, f"train.seed={s}", "model.teacher=teacher/model"])
        for s in (1, 2, 3, 4)
    }
    old = command_config(
        "distill",
        "lrcbert",
        "rte",
        (),
        [*sets, "train.seed=3", "model.teacher=teacher/model", "method.temperature=4.0"],
    )
    _finished_run(Path("r1"), current[1], 70.0)
    _finished_run(Path("r2"), current[2], 60.0, status="stopped")  # a record that does not say finished
    _finished_run(Path("r3"), old, 99.0)  # finished under an older config
    for seed in (1, 2, 3, 4):  # r4 never ran
        layout["tasks"]["rte"]["0.001"][str(seed)] = f"r{seed}"
        layout["expect"][f"r{seed}"] = {
            "command": "distill",
            "method": "lrcbert",
            "task": "rte",
            "sets": [*sets, f"train.seed={seed}"],
            "teacher_from": "selected.json",
        }
    dev = collect("lrcbert", layout, {"rte": ["rte"]})
    assert list(dev["tasks"]["rte"]["seeds"]) == ["1"]  # only the good run is averaged
    assert dev["tasks"]["rte"]["lr_scores"]["0.001"]["mean"] == 70.0
    why = dev["excluded"]
    assert why["r2"].startswith("unfinished") and why["r3"].startswith("stale") and why["r4"].startswith("missing")
    assert old.hash() in why["r3"] and current[3].hash() in why["r3"]
    note = excluded_note([dev])
    assert "Runs left out" in note and all(f"- lrcbert: r{i}: " in note for i in (2, 3, 4))  # paths escaped, no code


# ------------------------------------------------------------------------------------------ SLURM
def test_slurm_profile_asks_for_the_early_warning_signal_and_requeues():
    # preempted runs are requeued by SLURM (with_gpu.py, exit 75); Snakemake retries nothing, so that a run that
    # fails for a real reason fails once (tests/test_slurm.py runs both on a real cluster)
    profile = yaml.safe_load((ROOT / "profiles" / "slurm" / "config.yaml").read_text())
    assert profile["retries"] == 0 and profile["slurm-requeue"] is True
    extra = profile["default-resources"]["slurm_extra"]
    assert "--signal=USR1@" in extra
    from lrcbert.engine import PREEMPT_SIGNALS

    assert signal.SIGUSR1 in PREEMPT_SIGNALS and signal.SIGTERM in PREEMPT_SIGNALS
