"""Issue 12, the run side: no silent wrong result, no lost data. Each test reproduces one finding.

1 readers never write and generated data is named as such; 3 one owner per run folder (two real processes);
4 exact resume after a kill before the first checkpoint; 6 no distillation from a teacher without a trained
head; 8 every split validated before the first step; 9 one-line errors for broken teachers, a full disk,
stale temporary files and Ctrl-C.
"""

import errno
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from conftest import MINILM, finetune_teacher, tiny_config
from safetensors.torch import load_file

from lrcbert import checkpoint, engine
from lrcbert.data import SYNTHETIC_LABEL, DataError
from lrcbert.models import ModelError
from lrcbert.objective import METHODS
from lrcbert.run import lock_folder, run, unlock_folder
from lrcbert.synthetic import MARKER, is_generated, make_synthetic

pytestmark = pytest.mark.faults
ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(ROOT)}


def tree_digest(folder: Path) -> dict:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def user_glue(glue_dir, dest: Path) -> Path:
    """A copy of the generated folder without any mark of generation: a user's own GLUE folder."""
    shutil.copytree(glue_dir, dest)
    (dest / MARKER).unlink()
    return dest


def small(glue_dir, data=None, **train):
    """A few steps of fine-tuning the tiny teacher on rte."""
    return tiny_config(
        glue_dir,
        task="rte",
        train={"max_steps": 3, "batch_size": 8, **train},
        method=METHODS["finetune"],
        **({"data": data} if data else {}),
    )


@pytest.fixture(scope="module")
def teacher(glue_dir, tmp_path_factory):
    return finetune_teacher(glue_dir, tmp_path_factory.mktemp("teacher"), max_steps=6) / "model"


def distill_config(glue_dir, teacher, **train):
    return tiny_config(
        glue_dir,
        task="rte",
        model={"teacher": str(teacher), "teacher_random_init": False},
        train={"max_steps": 12, "log_every": 1, "batch_size": 4, "checkpoint_every": 0, **train},
    )


# ---------------------------------------------------------------------------------------------- finding 1
def test_a_run_never_writes_into_a_user_glue_folder(glue_dir, tmp_path):
    mine = user_glue(glue_dir, tmp_path / "my_glue")
    before = tree_digest(mine)
    with pytest.raises(DataError) as e:
        run(small(mine), tmp_path / "run", "finetune")
    assert str(e.value) == (
        f"data.path {mine} was not made by lrcbert make-synthetic (no {MARKER} marker) but "
        "data.source is 'synthetic'; for a GLUE folder set data.source=tsv"
    )
    assert tree_digest(mine) == before


def test_a_missing_synthetic_folder_is_not_generated_by_a_run(glue_dir, tmp_path):
    with pytest.raises(
        DataError,
        match=r"no such folder; data.source 'synthetic' reads generated data: make it "
        r"first with `lrcbert make-synthetic --out ",
    ):
        run(small(tmp_path / "absent"), tmp_path / "run", "finetune")
    assert not (tmp_path / "absent").exists()


def test_make_synthetic_refuses_a_folder_it_did_not_make(glue_dir, tmp_path, capsys):
    from lrcbert.cli import main

    mine = user_glue(glue_dir, tmp_path / "my_glue")
    before = tree_digest(mine)
    assert main(["make-synthetic", "--out", str(mine), "--train", "8", "--dev", "4", "--test", "2"]) == 2
    err = capsys.readouterr().err.strip()
    assert (
        err.startswith(
            f"lrcbert: error: {mine} (data.path) holds files that lrcbert make-synthetic did not "
            "write (e.g. CoLA/dev.tsv; no README.txt marker)"
        )
        and "\n" not in err
    )
    assert tree_digest(mine) == before


def test_make_synthetic_writes_a_new_an_empty_or_its_own_folder(tmp_path):
    sizes = {"train": 8, "dev": 4, "test": 2}
    make_synthetic(tmp_path / "new", sizes=sizes, corpus_lines=3)
    (tmp_path / "empty" / "CoLA").mkdir(parents=True)  # what Snakemake makes before the job runs
    make_synthetic(tmp_path / "empty", sizes=sizes, corpus_lines=3)
    first = tree_digest(tmp_path / "new")
    make_synthetic(tmp_path / "new", sizes=sizes, corpus_lines=3)  # its own: regenerated, byte for byte
    assert tree_digest(tmp_path / "new") == first == tree_digest(tmp_path / "empty")
    assert is_generated(tmp_path / "new") and (tmp_path / "new" / MARKER).read_text().startswith(
        "GENERATED DATA, NOT GLUE."
    )


def test_outputs_of_generated_data_say_so_whatever_data_source_says(glue_dir, tmp_path):
    cfg = small(glue_dir, data={"source": "tsv"}, max_steps=2)
    run(cfg, tmp_path / "run", "finetune")
    for name in ("run.json", "metrics.json"):
        assert json.loads((tmp_path / "run" / name).read_text())["data_source"] == SYNTHETIC_LABEL
    assert SYNTHETIC_LABEL == "synthetic (generated, not GLUE)"


# ---------------------------------------------------------------------------------------------- finding 3
HOLD = (
    "import os, sys; from pathlib import Path; from lrcbert.run import lock_folder; "
    "lock_folder(Path(sys.argv[1])); print('locked', os.getpid(), flush=True); {after}"
)


def test_a_second_process_on_a_run_folder_stops_at_once_naming_the_holder(glue_dir, tmp_path):
    out = tmp_path / "run"
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD.format(after="sys.stdin.read()"), str(out)],
        env=ENV,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().split() == ["locked", str(holder.pid)]
        cfg_file = tmp_path / "cfg.yaml"
        cfg_file.write_text(yaml.safe_dump(small(glue_dir).to_dict()))
        second = subprocess.run(
            [
                sys.executable,
                "-m",
                "lrcbert",
                "finetune",
                "--task",
                "rte",
                "--config",
                str(cfg_file),
                "--out",
                str(out),
            ],
            env=ENV,
            capture_output=True,
            text=True,
        )
    finally:
        holder.stdin.close()
        holder.wait()
    assert second.returncode == 2
    err = second.stderr.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"lrcbert: error: run folder {out} is in use by PID {holder.pid} on ")
    assert "; wait for it to finish or stop it" in err[0]
    assert not (out / "config.yaml").exists()  # the second process wrote nothing


def test_a_dead_holder_is_reported_and_taken_over(tmp_path, caplog):
    out = tmp_path / "run"
    dead = subprocess.run(
        [sys.executable, "-c", HOLD.format(after="import os; os._exit(9)"), str(out)],
        env=ENV,
        capture_output=True,
        text=True,
    )
    word, pid = dead.stdout.split()
    assert word == "locked" and dead.returncode == 9
    note = json.loads((out / ".lock").read_text())
    assert note["pid"] == int(pid)
    fd = lock_folder(out)
    try:
        assert f"the previous holder of this run folder ({json.dumps(note)}) is gone; taking it over" in caplog.text
        assert json.loads((out / ".lock").read_text())["pid"] == os.getpid()
    finally:
        unlock_folder(fd)
    assert (out / ".lock").read_text() == ""  # a clean exit leaves no holder behind


# ---------------------------------------------------------------------------------------------- finding 4
def test_a_run_killed_before_its_first_checkpoint_restarts_to_the_same_model(glue_dir, teacher, tmp_path, monkeypatch):
    cfg = distill_config(glue_dir, teacher, teacher_cache="on")
    run(cfg, tmp_path / "whole", "distill")
    real = engine.Trainer.train_step

    def killed_at_step_4(self, batch):
        if self.step == 4:
            raise SystemExit("killed")  # like SIGKILL: no checkpoint, the teacher cache stays whole
        return real(self, batch)

    monkeypatch.setattr(engine.Trainer, "train_step", killed_at_step_4)
    with pytest.raises(SystemExit):
        run(cfg, tmp_path / "cut", "distill")
    assert not list((tmp_path / "cut" / "checkpoints").glob("step-*"))
    assert (tmp_path / "cut" / "teacher_cache" / "meta.json").is_file()
    monkeypatch.setattr(engine.Trainer, "train_step", real)
    run(cfg, tmp_path / "cut", "distill")
    a, b = (load_file(tmp_path / r / "model" / "model.safetensors") for r in ("whole", "cut"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert (tmp_path / "whole" / "losses.csv").read_bytes() == (tmp_path / "cut" / "losses.csv").read_bytes()


# ---------------------------------------------------------------------------------------------- finding 6
def test_distilling_from_a_teacher_that_was_never_fine_tuned_stops(glue_dir, tmp_path):
    cfg = tiny_config(glue_dir, task="rte", model={"teacher": MINILM, "teacher_random_init": False})
    with pytest.raises(ModelError) as e:
        run(cfg, tmp_path / "run", "distill")
    assert str(e.value) == (
        f"model.teacher {MINILM} is not fine-tuned on rte: it has no trained weights for "
        "classifier.bias, classifier.weight (a pre-trained encoder gets an untrained head); "
        "fine-tune it with `lrcbert finetune` and give its model/ folder"
    )
    assert not (tmp_path / "run" / "losses.csv").exists()


# ---------------------------------------------------------------------------------------------- finding 8
@pytest.mark.parametrize(
    "damage, message",
    [
        (lambda d: (d / "RTE" / "dev.tsv").unlink(), "data file not found: {d}/RTE/dev.tsv (task rte, split dev)"),
        (
            lambda d: (d / "RTE" / "test.tsv").write_text("index\tsentence1\tsentence2\n0\ta\n"),
            "{d}/RTE/test.tsv: line 2: 2 tab-separated fields, expected 3 (index, sentence1, sentence2)",
        ),
    ],
)
def test_every_split_is_checked_before_the_first_step(glue_dir, tmp_path, damage, message):
    data = tmp_path / "glue"
    shutil.copytree(glue_dir, data)
    damage(data)
    with pytest.raises(DataError) as e:
        run(small(data), tmp_path / "run", "finetune")
    assert str(e.value) == message.format(d=data)
    assert not (tmp_path / "run" / "losses.csv").exists()


def test_a_missing_test_file_is_allowed_and_said(glue_dir, tmp_path):
    data = tmp_path / "glue"
    shutil.copytree(glue_dir, data)
    (data / "RTE" / "test.tsv").unlink()
    result = run(small(data, max_steps=1), tmp_path / "run", "finetune")
    assert result["splits"]["rte"]["test_predictions"] == "not written: no test file"


# ---------------------------------------------------------------------------------------------- finding 9
def test_a_teacher_path_that_does_not_exist_is_named(glue_dir, tmp_path):
    missing = tmp_path / "runs" / "teacher" / "model"
    cfg = tiny_config(glue_dir, task="rte", model={"teacher": str(missing), "teacher_random_init": False})
    with pytest.raises(ModelError) as e:
        run(cfg, tmp_path / "run", "distill")
    assert str(e.value) == f"model.teacher {missing}: no such folder"


def test_a_truncated_teacher_weights_file_is_named(glue_dir, teacher, tmp_path):
    broken = tmp_path / "teacher"
    shutil.copytree(teacher, broken)
    weights = broken / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])
    with pytest.raises(ModelError) as e:
        run(distill_config(glue_dir, broken), tmp_path / "run", "distill")
    assert str(e.value).startswith(f"model.teacher {broken}: unreadable weights file (truncated or corrupt?): ")
    assert "\n" not in str(e.value)


def test_a_full_disk_during_a_checkpoint_leaves_nothing_behind_and_the_rerun_finishes(glue_dir, tmp_path, monkeypatch):
    cfg = small(glue_dir, max_steps=6, checkpoint_every=2)
    real, calls = checkpoint.save_model, []

    def disk_fills_at_the_second_checkpoint(module, path, *a, **kw):
        calls.append(path)
        if "step-00000004" in path:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), path)
        return real(module, path, *a, **kw)

    monkeypatch.setattr(checkpoint, "save_model", disk_fills_at_the_second_checkpoint)
    out = tmp_path / "run"
    with pytest.raises(checkpoint.CheckpointError) as e:
        run(cfg, out, "finetune")
    assert str(e.value) == (
        f"checkpoint {out}/checkpoints/step-00000004 not written: No space left on device; "
        "nothing of it was kept; free space and run the same command again (it resumes from "
        "the last whole checkpoint)"
    )
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == ["step-00000002"]
    monkeypatch.setattr(checkpoint, "save_model", real)
    (out / "checkpoints" / ".tmp-step-00000003").mkdir()  # what a kill in the middle of a write leaves
    (out / ".metrics.json.x1y2.tmp").write_text("{")
    assert run(cfg, out, "finetune")["splits"]["rte"]["n"] == 48
    assert not [p for p in out.rglob("*") if ".tmp" in p.name]


def test_ctrl_c_checkpoints_at_the_step_boundary_in_one_line(glue_dir, tmp_path):
    out = tmp_path / "run"
    cfg_file = tmp_path / "cfg.yaml"
    cfg_file.write_text(yaml.safe_dump(small(glue_dir, max_steps=400, batch_size=4).to_dict()))
    proc = subprocess.Popen(
        [sys.executable, "-m", "lrcbert", "finetune", "--task", "rte", "--config", str(cfg_file), "--out", str(out)],
        env=ENV,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        while not ((out / "losses.csv").is_file() and len((out / "losses.csv").read_text().splitlines()) > 2):
            if proc.poll() is not None:
                break
            subprocess.run(["sleep", "0.2"])
        proc.send_signal(signal.SIGINT)
        err = proc.communicate()[1]
    finally:
        if proc.poll() is None:
            proc.kill()
    last = err.strip().splitlines()[-1]
    assert proc.returncode == 75, err[-2000:]
    assert "Traceback" not in err
    assert last.startswith("lrcbert: interrupted by SIGINT at step ") and last.endswith(
        "; run the same command again to resume"
    )
    step = int(last.split("at step ")[1].split("/")[0])
    assert (out / "checkpoints" / f"step-{step:08d}" / "manifest.json").is_file()
