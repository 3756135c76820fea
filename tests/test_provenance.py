"""Issue 23: a result is always the result of what it says, and a run is never re-reported.

Each test reproduces one finding. 1 changed training data, 2 a teacher retrained at the same path and 3 a forced
rerun (metrics.json removed) retrain from step 0 instead of re-reporting the old model (the old files go to
``.superseded/``); 4 and 5 ``lrcbert evaluate`` never writes into a training run's folder; 6 a folder that is not
a run folder of ours is never written; 9 nothing is written through a symbolic link; 14 ``--task`` is required;
15 a refused start leaves no folder behind; 16 ``--out`` naming a file is one line. And the identity itself: its
schema, its ``run_id``, the teacher's ``model_hash`` that a student's identity names.
"""

import hashlib
import json
import shutil
import subprocess
import sys

import pytest
import yaml
from conftest import finetune_teacher, synthetic_sets, tiny_config
from safetensors.torch import load_file

from lrcbert.cli import build_parser, main
from lrcbert.identity import file_sha256, weights_hash
from lrcbert.models import ModelError
from lrcbert.objective import METHODS
from lrcbert.run import RunError, run

pytestmark = pytest.mark.faults


def small(data, **train):
    """Two steps of fine-tuning the tiny teacher on rte."""
    return tiny_config(data, task="rte", train={"max_steps": 2, "batch_size": 8, **train}, method=METHODS["finetune"])


def student(data, teacher, **train):
    return tiny_config(
        data,
        task="rte",
        model={"teacher": str(teacher / "model"), "teacher_random_init": False},
        train={"max_steps": 2, "batch_size": 8, **train},
    )


def weights(folder):
    return load_file(folder / "model" / "model.safetensors")


def same_weights(a, b) -> bool:
    return a.keys() == b.keys() and all(a[k].equal(b[k]) for k in a)


def superseded(out):
    """The folders the old runs of ``out`` were moved to, oldest first."""
    return sorted((out / ".superseded").iterdir()) if (out / ".superseded").is_dir() else []


def tree(folder) -> dict:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def one_error_line(err: str) -> str:
    lines = [x for x in err.strip().splitlines() if "lrcbert: error:" in x or "Traceback" in x]
    assert len(lines) == 1 and lines[0].startswith("lrcbert: error: "), err
    return lines[0]


@pytest.fixture(scope="module")
def teacher(glue_dir, tmp_path_factory):
    return finetune_teacher(glue_dir, tmp_path_factory.mktemp("teacher"), max_steps=2)


# ---------------------------------------------------------------------------------------------- the identity
def test_a_run_records_its_identity_and_the_hash_of_its_model(teacher, glue_dir):
    record = json.loads((teacher / "run.json").read_text())
    metrics = json.loads((teacher / "metrics.json").read_text())
    ident = record["identity"]
    assert metrics["identity"] == ident and metrics["model_hash"] == record["model_hash"]
    rest = {k: v for k, v in ident.items() if k != "run_id"}
    assert set(rest) == {"config_hash", "data", "teacher", "student_init", "suite", "versions"}
    canonical = json.dumps(rest, sort_keys=True, separators=(",", ":")).encode()
    assert ident["run_id"] == hashlib.sha256(canonical).hexdigest()
    assert ident["data"] == {f"rte/{s}": file_sha256(glue_dir / "RTE" / f"{s}.tsv") for s in ("train", "dev", "test")}
    assert ident["teacher"] is None and ident["config_hash"] == record["config_hash"]
    assert set(ident["suite"]) == {"commit", "dirty"} and set(ident["versions"]) == {"torch", "transformers"}
    from transformers import AutoModelForSequenceClassification

    saved = AutoModelForSequenceClassification.from_pretrained(teacher / "model")
    assert record["model_hash"] == weights_hash(saved) != ident["student_init"]


# ---------------------------------------------------------------------------------------------- finding 1
def test_changed_training_data_retrains_instead_of_reporting_the_old_model(glue_dir, tmp_path, caplog):
    data = tmp_path / "glue"
    shutil.copytree(glue_dir, data)
    out = tmp_path / "run"
    run(small(data), out, "finetune")
    old = weights(out)
    train = data / "RTE" / "train.tsv"
    rows = train.read_text().splitlines()
    flip = {"entailment": "not_entailment", "not_entailment": "entailment"}
    train.write_text(
        "\n".join([rows[0], *("\t".join([*r.split("\t")[:-1], flip[r.split("\t")[-1]]]) for r in rows[1:])])
    )
    result = run(small(data), out, "finetune")  # the same command: its data changed
    assert not same_weights(weights(out), old)  # retrained, not the old model re-reported
    assert result["identity"]["data"]["rte/train"] == file_sha256(train)
    (moved,) = superseded(out)
    assert same_weights(weights(moved), old) and (moved / "metrics.json").is_file()
    assert f"its files were moved to {moved}; training starts from step 0" in caplog.text
    stamp = (out / "metrics.json").stat().st_mtime_ns  # the same identity again: nothing to do
    assert run(small(data), out, "finetune") == result and (out / "metrics.json").stat().st_mtime_ns == stamp
    assert len(superseded(out)) == 1


# ---------------------------------------------------------------------------------------------- finding 2
def test_a_teacher_retrained_at_the_same_path_retrains_its_students(glue_dir, tmp_path):
    t, s = tmp_path / "teacher", tmp_path / "student"
    finetune_teacher(glue_dir, t, max_steps=2)
    run(student(glue_dir, t), s, "distill")
    first = weights(s)
    assert (
        json.loads((s / "run.json").read_text())["identity"]["teacher"]
        == json.loads((t / "run.json").read_text())["model_hash"]
    )
    shutil.rmtree(t)
    finetune_teacher(glue_dir, t, max_steps=2, seed=1)  # another teacher at the same path
    result = run(student(glue_dir, t), s, "distill")
    assert result["identity"]["teacher"] == json.loads((t / "run.json").read_text())["model_hash"]
    assert not same_weights(weights(s), first) and len(superseded(s)) == 1


# ---------------------------------------------------------------------------------------------- finding 3
def test_a_forced_rerun_trains_from_step_0(glue_dir, tmp_path, capsys):
    cfg_file, out = tmp_path / "cfg.yaml", tmp_path / "run"
    cfg_file.write_text(yaml.safe_dump(small(glue_dir, checkpoint_every=1).to_dict()))
    argv = ["finetune", "--task", "rte", "--config", str(cfg_file), "--out", str(out)]
    assert main(argv) == 0
    (out / "metrics.json").unlink()  # what `snakemake --forcerun` does before it runs the job again
    capsys.readouterr()
    assert main(argv) == 0
    err = capsys.readouterr().err
    assert "resuming from" not in err and "metrics.json was removed (a forced rerun)" in err
    (moved,) = superseded(out)
    assert json.loads((moved / "run.json").read_text())["status"] == "finished"
    assert json.loads((out / "run.json").read_text())["steps"] == 2
    assert [r.split(",")[0] for r in (out / "losses.csv").read_text().splitlines()[1:]] == ["1", "2"]


# ---------------------------------------------------------------------------------------------- findings 4, 5
HOLD = (
    "import fcntl, json, os, sys; fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT); "
    "fcntl.lockf(fd, fcntl.LOCK_EX); os.write(fd, json.dumps({'host': os.uname()[1], 'pid': os.getpid(), "
    "'since': 'now'}).encode()); print('locked', flush=True); sys.stdin.read()"
)


def evaluate(model, glue_dir, out):
    return main(["evaluate", "--task", "rte", "--model", str(model), *synthetic_sets(glue_dir), "--out", str(out)])


def test_evaluate_takes_the_lock_and_never_writes_into_a_training_run(teacher, glue_dir, tmp_path, capsys):
    busy = tmp_path / "busy"
    busy.mkdir()
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(busy / ".lock")], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        assert evaluate(teacher / "model", glue_dir, busy) == 2
    finally:
        holder.stdin.close()
        holder.wait()
    assert f"run folder {busy} is in use by PID {holder.pid} on " in one_error_line(capsys.readouterr().err)
    assert sorted(p.name for p in busy.iterdir()) == [".lock"]

    cut = tmp_path / "cut"  # an interrupted training run
    assert run(small(glue_dir, stop_after_steps=1), cut, "finetune")["status"] == "stopped"
    assert evaluate(teacher / "model", glue_dir, cut) == 2
    assert one_error_line(capsys.readouterr().err) == (
        f"lrcbert: error: run folder {cut} holds a training run (finetune); lrcbert evaluate writes a folder of "
        "its own: choose another --out"
    )
    assert not (cut / "metrics.json").exists()
    result = run(small(glue_dir), cut, "finetune")  # the interrupted run resumes and finishes
    assert json.loads((cut / "run.json").read_text())["steps"] == 2 and "splits" in result


def test_evaluate_refuses_a_finished_training_run(teacher, glue_dir, capsys):
    before = tree(teacher)
    assert evaluate(teacher / "model", glue_dir, teacher) == 2
    assert one_error_line(capsys.readouterr().err) == (
        f"lrcbert: error: run folder {teacher} holds a training run (finetune); lrcbert evaluate writes a folder of "
        "its own: choose another --out"
    )
    assert tree(teacher) == before


def test_evaluate_writes_its_own_folder_again(teacher, glue_dir, tmp_path, capsys):
    out = tmp_path / "eval"
    assert evaluate(teacher / "model", glue_dir, out) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["model_hash"] == json.loads((teacher / "run.json").read_text())["model_hash"]
    assert evaluate(teacher / "model", glue_dir, out) == 0  # its own folder: evaluated again
    with pytest.raises(RunError, match=f"run folder {out} holds an evaluation"):  # and never trained into
        run(small(glue_dir), out, "finetune")


# ---------------------------------------------------------------------------------------------- finding 6
def test_a_folder_that_is_not_a_run_folder_is_never_written(glue_dir, tmp_path, capsys):
    exp = tmp_path / "exp"
    exp.mkdir()
    (exp / "config.yaml").write_text(yaml.safe_dump(small(glue_dir).to_dict()))
    before = tree(exp)
    assert main(["finetune", "--task", "rte", "--config", str(exp / "config.yaml"), "--out", str(exp)]) == 2
    assert one_error_line(capsys.readouterr().err) == (
        f"lrcbert: error: --out {exp} is a folder that lrcbert did not make (it holds config.yaml and no "
        ".lrcbert-run marker); a run never writes over files it did not write: choose a new or empty folder"
    )
    assert tree(exp) == before and sorted(p.name for p in exp.iterdir()) == ["config.yaml"]


# ---------------------------------------------------------------------------------------------- finding 9
def test_nothing_is_written_through_a_symbolic_link_in_a_run_folder(glue_dir, tmp_path):
    out, precious = tmp_path / "run", tmp_path / "precious"
    run(small(glue_dir, stop_after_steps=1), out, "finetune")
    precious.mkdir()
    (precious / "model.safetensors").write_bytes(b"my own weights")
    (out / "model").symlink_to(precious)
    with pytest.raises(RunError) as e:
        run(small(glue_dir), out, "finetune")
    assert str(e.value) == (
        f"run folder {out} holds a symbolic link {out / 'model'} -> {precious}; a run writes only files of its own, "
        "never through a link: remove the link or choose another --out"
    )
    assert (precious / "model.safetensors").read_bytes() == b"my own weights"
    assert not (out / "metrics.json").exists()


# ---------------------------------------------------------------------------------------------- finding 14
@pytest.mark.parametrize("command", ["finetune", "distill", "evaluate"])
def test_task_is_required(command, capsys):
    argv = [command, "--out", "x"] + (["--model", "m"] if command == "evaluate" else [])
    with pytest.raises(SystemExit) as e:
        build_parser().parse_args(argv)
    assert e.value.code == 2 and "the following arguments are required: --task" in capsys.readouterr().err
    assert build_parser().parse_args(["general-distill", "--out", "x"]).command == "general-distill"


# ---------------------------------------------------------------------------------------------- finding 15
def test_a_refused_start_leaves_no_folder_behind(glue_dir, tmp_path):
    cfg = tiny_config(glue_dir, task="rte", model={"student_init": "teacher_layers"})  # width 16 vs 32
    with pytest.raises(ModelError, match="model.student_arch.hidden_size=16 differs from the teacher's 32"):
        run(cfg, tmp_path / "run", "distill")
    assert not (tmp_path / "run").exists()


# ---------------------------------------------------------------------------------------------- finding 16
def test_out_naming_a_file_is_one_line(tmp_path, capsys):
    path = tmp_path / "results.txt"
    path.write_text("mine")
    assert main(["finetune", "--task", "rte", "--out", str(path)]) == 2
    assert one_error_line(capsys.readouterr().err) == (
        f"lrcbert: error: --out {path} is a file; a run folder was expected (a new, empty or earlier run folder)"
    )
    assert path.read_text() == "mine"


def test_a_checkpoint_names_its_run_and_resumes_only_into_it(glue_dir, tmp_path):
    out = tmp_path / "run"
    run(small(glue_dir, stop_after_steps=1), out, "finetune")
    marker = json.loads((out / ".lrcbert-run").read_text())
    (ckpt,) = (out / "checkpoints").glob("step-*")
    assert json.loads((ckpt / "state.json").read_text())["run_id"] == marker["run_id"]
    result = run(small(glue_dir, lr=5e-4), out, "finetune")  # another configuration: not resumed, moved aside
    (moved,) = superseded(out)
    assert (moved / "checkpoints" / ckpt.name).is_dir() and result["identity"]["run_id"] != marker["run_id"]
    assert json.loads((out / "run.json").read_text())["steps"] == 2


def test_out_may_be_a_link_to_a_folder_but_not_a_dangling_one(tmp_path):
    from lrcbert.run import check_out

    (tmp_path / "scratch").mkdir()
    (tmp_path / "run").symlink_to(tmp_path / "scratch")
    assert check_out(tmp_path / "run") is None  # an empty folder behind the link: writable
    (tmp_path / "gone").symlink_to(tmp_path / "nowhere")
    with pytest.raises(RunError, match=f"--out {tmp_path / 'gone'} is a symbolic link to {tmp_path / 'nowhere'}, "):
        check_out(tmp_path / "gone")
