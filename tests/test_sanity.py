"""Sanity guards (issue 23): a diverging loss stops the run (finding 10), duplicate example ids are refused
(finding 11) and a dev or test split that repeats the training split is refused (finding 12); each guard has a key
that allows what it refuses, and bad values of those keys are refused like any other."""

import json
import re
import shutil
import types

import pytest
from conftest import tiny_config

from lrcbert import data as D
from lrcbert.cli import main
from lrcbert.config import load_config
from lrcbert.engine import Trainer, TrainingDiverged
from lrcbert.objective import METHODS
from lrcbert.run import run
from lrcbert.tasks import get_task


def finetune_cfg(glue_dir, **train):
    """Fine-tuning the tiny teacher on rte for a few steps."""
    return tiny_config(glue_dir, task="rte", train={"max_steps": 10, **train}, method=METHODS["finetune"])


def cli(cfg, out, *sets, kind="finetune"):
    """``lrcbert KIND`` on ``cfg`` (written to a file) with ``--set`` overrides; returns the exit status."""
    path = out.parent / f"{out.name}.yaml"
    path.write_text(json.dumps(cfg.to_dict()))
    args = [kind, "--config", str(path), "--task", cfg.task, "--out", str(out)]
    return main([*args, *(w for s in sets for w in ("--set", s))])


def error_line(capsys) -> str:
    lines = [x for x in capsys.readouterr().err.strip().splitlines() if x.startswith("lrcbert")]
    assert len(lines) == 1, lines
    return lines[0]


# ---------------------------------------------------------------------------------------------- finding 10
def test_a_diverging_loss_stops_the_run_in_one_line_without_metrics(glue_dir, tmp_path, capsys):
    """train.lr=1000 took the loss 0.69 -> 3771 -> 1e6 and still wrote a dev score."""
    out = tmp_path / "run"
    assert cli(finetune_cfg(glue_dir), out, "train.lr=1000") == 2
    assert re.fullmatch(
        r"lrcbert: error: training diverged at step 3: total loss (\d+) > train\.divergence_factor 20 x 1 "
        r"\(stage2 reference: mean total loss 0\.69\d* of steps 1-2, floor 1\) \(terms: hard=\1\); last good "
        r"checkpoint: none; lower train\.lr, or set train\.divergence_factor=0 to turn this check off",
        error_line(capsys),
    )
    assert not (out / "metrics.json").exists() and not (out / "run.json").exists()


def test_divergence_factor_0_turns_the_check_off(glue_dir, tmp_path):
    result = run(finetune_cfg(glue_dir, lr=1000.0, divergence_factor=0.0), tmp_path / "run", "finetune")
    assert "rte" in result["splits"]  # what the user asked for explicitly: the run goes on


def fake_trainer(tmp_path, stage_split=0.5, total=20, factor=20.0):
    """The state ``Trainer._check_divergence`` reads, without a model."""
    t = types.SimpleNamespace(
        cfg=types.SimpleNamespace(method=types.SimpleNamespace(stage_split=stage_split)),
        total_steps=total,
        step=0,
        ckpt_dir=tmp_path,
        divergence={"factor": factor, "steps": 5, "floor": 1.0, "stages": {}},
    )
    t._diverged = lambda what, terms, hint="": Trainer._diverged(t, what, terms, hint)
    return t


def feed(t, losses):
    for loss in losses:
        Trainer._check_divergence(t, loss, {})
        t.step += 1


def test_each_stage_has_its_own_reference_from_its_first_five_steps(tmp_path):
    t = fake_trainer(tmp_path)
    feed(t, [4.0, 2.0, 3.0, 3.0, 3.0, 60.0, 1.0, 0.5, 0.5, 0.5])  # 60 <= 20 x 3 (the mean of steps 1-5)
    assert t.divergence["stages"] == {
        "stage1": {"first_step": 1, "losses": [4.0, 2.0, 3.0, 3.0, 3.0], "reference": 3.0}
    }
    feed(t, [300.0] * 5)  # stage 2 (steps 11-20) weighs other terms: a reference of its own
    assert t.divergence["stages"]["stage2"] == {"first_step": 11, "losses": [300.0] * 5, "reference": 300.0}
    with pytest.raises(TrainingDiverged, match=r"^training diverged at step 16: total loss 6001 > "):
        feed(t, [6001.0])


def test_a_stage_that_starts_near_zero_is_measured_against_the_floor(tmp_path):
    t = fake_trainer(tmp_path, stage_split=1.0)
    feed(t, [0.01] * 5 + [19.9])  # a reference of 0.01 would stop here at 0.2: the floor of 1 keeps it at 20
    with pytest.raises(TrainingDiverged) as e:
        feed(t, [20.5])
    assert str(e.value) == (
        "training diverged at step 7: total loss 20.5 > train.divergence_factor 20 x 1 (stage1 reference: mean "
        "total loss 0.01 of steps 1-5, floor 1) (terms: ); last good checkpoint: none; lower train.lr, or set "
        "train.divergence_factor=0 to turn this check off"
    )


def test_the_divergence_reference_survives_a_resume(glue_dir, tmp_path):
    """Stopped after step 2 (the reference is steps 1-2), the resumed run stops at the uninterrupted run's step 3
    with its message: the reference comes back from the checkpoint, it is not taken afresh from step 3."""
    with pytest.raises(TrainingDiverged) as whole:
        run(finetune_cfg(glue_dir, lr=1000.0), tmp_path / "whole", "finetune")
    cut = tmp_path / "cut"
    assert run(finetune_cfg(glue_dir, lr=1000.0, stop_after_steps=2), cut, "finetune")["status"] == "stopped"
    with pytest.raises(TrainingDiverged) as resumed:
        run(finetune_cfg(glue_dir, lr=1000.0), cut, "finetune")
    assert str(whole.value).endswith("last good checkpoint: none; lower train.lr, or set " + HINT_TAIL)
    assert str(resumed.value) == str(whole.value).replace("none", str(cut / "checkpoints" / "step-00000002"), 1)


HINT_TAIL = "train.divergence_factor=0 to turn this check off"


def test_lrcbert_two_stage_run_keeps_both_references_and_resumes_them_bitwise(glue_dir, tmp_path):
    """The LRC-BERT objective with perturbation (stage 1 COS-NCE, stage 2 soft + hard CE) trains through the default
    check, and a run stopped in stage 1 ends with the uninterrupted run's references, bit for bit."""
    teacher = tmp_path / "teacher"
    run(finetune_cfg(glue_dir, lr=5e-4, max_steps=6), teacher, "finetune")

    def distill(**train):
        model = {"teacher": str(teacher / "model"), "teacher_random_init": False}
        return tiny_config(glue_dir, task="rte", model=model, train={"max_steps": 10, "batch_size": 8, **train})

    run(distill(), tmp_path / "whole", "distill")
    assert run(distill(stop_after_steps=3), tmp_path / "cut", "distill")["status"] == "stopped"
    run(distill(), tmp_path / "cut", "distill")
    states = [
        json.loads((tmp_path / r / "checkpoints" / "step-00000010" / "state.json").read_text())["divergence"]
        for r in ("whole", "cut")
    ]
    assert states[0] == states[1]
    assert [(s, v["first_step"], len(v["losses"])) for s, v in states[0].items()] == [
        ("stage1", 1, 5),
        ("stage2", 9, 2),
    ]


# ---------------------------------------------------------------------------------------------- finding 11
def copy_glue(glue_dir, tmp_path):
    data = tmp_path / "glue"
    shutil.copytree(glue_dir, data)
    return data


def rewrite_column(path, column, value):
    """Set ``column`` of every data row of a TSV with a header to ``value(row number)``."""
    lines = path.read_text(encoding="utf-8").splitlines()
    c = lines[0].split("\t").index(column)
    rows = [line.split("\t") for line in lines[1:]]
    for i, r in enumerate(rows):
        r[c] = value(i)
    path.write_text("\n".join([lines[0]] + ["\t".join(r) for r in rows]) + "\n", encoding="utf-8")


def test_duplicate_test_ids_are_refused_before_step_1(glue_dir, tmp_path, capsys):
    """Every test id 0 used to give a GLUE submission with index 0 on every row."""
    data = copy_glue(glue_dir, tmp_path)
    rewrite_column(data / "RTE" / "test.tsv", "index", lambda i: "0")
    out = tmp_path / "run"
    assert cli(finetune_cfg(data), out) == 2
    assert error_line(capsys) == (
        f"lrcbert: error: {data}/RTE/test.tsv: line 3, column 1 (index): id '0' is already the id of line 2; "
        "every example needs its own id"
    )
    assert not (out / "losses.csv").exists() and not (out / "metrics.json").exists()


def test_duplicate_ids_are_refused_in_train_and_dev_but_sentence_ids_may_repeat(glue_dir, tmp_path):
    data = copy_glue(glue_dir, tmp_path)
    # MRPC's "#1 ID"/"#2 ID" and QQP's qid1/qid2 name sentences, which recur across pairs: not refused
    rewrite_column(data / "MRPC" / "train.tsv", "#1 ID", lambda i: "1089874")
    rewrite_column(data / "QQP" / "train.tsv", "qid1", lambda i: "7")
    for task in ("mrpc", "qqp"):
        D.validate(tiny_config(data, task=task), get_task(task))
    rewrite_column(data / "RTE" / "dev.tsv", "index", lambda i: str(i % 40))  # row 41 repeats row 1
    with pytest.raises(D.DataError) as e:
        D.validate(tiny_config(data, task="rte"), get_task("rte"))
    assert str(e.value) == (
        f"{data}/RTE/dev.tsv: line 42, column 1 (index): id '0' is already the id of line 2; "
        "every example needs its own id"
    )
    rewrite_column(data / "QQP" / "test.tsv", "id", lambda i: "07" if i == 5 else str(i))  # 07 is 7
    with pytest.raises(D.DataError, match=r"QQP/test.tsv: line 9, column 1 \(id\): id '7' is already the id of line 7"):
        D.validate(tiny_config(data, task="qqp"), get_task("qqp"))


# ---------------------------------------------------------------------------------------------- finding 12
def test_a_dev_split_equal_to_train_is_refused_unless_allowed(glue_dir, tmp_path, capsys):
    data = copy_glue(glue_dir, tmp_path)
    shutil.copy(data / "RTE" / "train.tsv", data / "RTE" / "dev.tsv")
    first = D.load_split(finetune_cfg(data), get_task("rte"), "dev")[0]
    out = tmp_path / "run"
    assert cli(finetune_cfg(data), out) == 2
    assert error_line(capsys) == (
        f"lrcbert: error: {data}/RTE/dev.tsv: 96 of its 96 examples (100.0%) are also in the training split "
        f"{data}/RTE/train.tsv (same text, case and whitespace aside; e.g. "
        f"{(first['text_a'] + ' | ' + first['text_b'])[:80]!r}), above "
        "data.max_overlap=0.1; is it a copy of the training file? (set data.max_overlap to allow more)"
    )
    assert not (out / "losses.csv").exists() and not (out / "metrics.json").exists()
    splits = D.validate(tiny_config(data, task="rte", data={"max_overlap": 1.0}), get_task("rte"))
    assert D.overlap_report(splits)["rte/dev"] == {"examples": 96, "in_train": 96, "share": 1.0}


def test_a_test_split_from_the_training_texts_is_refused_up_to_case_and_whitespace(glue_dir, tmp_path):
    data = copy_glue(glue_dir, tmp_path)
    train = (data / "RTE" / "train.tsv").read_text(encoding="utf-8").splitlines()[1:]
    shout = lambda text: " ".join(text.upper().split()) + "  "  # noqa: E731
    leaked = [f"{i}\t{shout(r.split(chr(9))[1])}\t{shout(r.split(chr(9))[2])}" for i, r in enumerate(train[:4])]
    test = (data / "RTE" / "test.tsv").read_text(encoding="utf-8").splitlines()
    rows = [f"{i}\t{r.split(chr(9), 1)[1]}" for i, r in enumerate(test[1:], start=4)]
    (data / "RTE" / "test.tsv").write_text("\n".join([test[0], *leaked, *rows]) + "\n", encoding="utf-8")
    with pytest.raises(D.DataError, match=r"RTE/test.tsv: 4 of its 20 examples \(20.0%\) are also in the training"):
        D.validate(tiny_config(data, task="rte"), get_task("rte"))
    splits = D.validate(tiny_config(data, task="rte", data={"max_overlap": 0.2}), get_task("rte"))
    assert D.overlap_report(splits) == {
        "rte/dev": {"examples": 48, "in_train": 0, "share": 0.0},
        "rte/test": {"examples": 20, "in_train": 4, "share": 0.2},
    }


def test_the_overlap_report_of_every_task_of_the_generated_data(glue_dir):
    """What run.json records; MNLI's two evaluation splits share one training split."""
    report = D.overlap_report(D.validate(tiny_config(glue_dir, task="mnli"), get_task("mnli")))
    assert list(report) == ["mnli_m/dev", "mnli_m/test", "mnli_mm/dev", "mnli_mm/test"]
    assert all(r["share"] <= 0.1 and r["examples"] in (48, 16) for r in report.values())
    assert D.overlap_report({("general", "train"): D.load_corpus(tiny_config(glue_dir))}) == {}


# ---------------------------------------------------------------------------------------------- the keys
@pytest.mark.parametrize(
    "override, message",
    [
        ("train.divergence_factor=-1", "config key 'train.divergence_factor' must be >= 0.0, got -1"),
        ("train.divergence_factor=abc", "config key 'train.divergence_factor' must be a number, got 'abc'"),
        ("train.divergence_factor=nan", "config key 'train.divergence_factor' must be a number, got 'nan'"),
        ("train.divergence_factor=.inf", "config key 'train.divergence_factor' must be a finite number, got inf"),
        ("data.max_overlap=2", "config key 'data.max_overlap' must be <= 1.0, got 2"),
        ("data.max_overlap=-0.1", "config key 'data.max_overlap' must be >= 0.0, got -0.1"),
    ],
)
def test_bad_values_of_the_guard_keys_are_refused_in_one_line(override, message, tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["finetune", "--task", "rte", "--out", str(out), "--set", override]) == 2
    assert error_line(capsys) == f"lrcbert: error: --set {override}: {message}"
    assert not out.exists()


def test_the_guard_keys_leave_the_config_hash_alone():
    """They stop a run or refuse its data, never change what it computes: a run stopped as diverged resumes
    under train.divergence_factor=0 in its own folder."""
    base = load_config().hash()
    assert load_config(overrides=["train.divergence_factor=0", "data.max_overlap=1"]).hash() == base


def test_run_json_records_the_divergence_rule_and_the_overlap(glue_dir, tmp_path):
    import json

    from conftest import finetune_teacher

    out = finetune_teacher(glue_dir, tmp_path / "t", max_steps=3)
    record = json.loads((out / "run.json").read_text())
    assert record["divergence"]["factor"] == 20.0
    losses = record["divergence"]["stages"]["stage2"]["losses"]  # finetune: one stage (stage_split 0)
    assert len(losses) == 3 and record["divergence"]["stages"]["stage2"]["reference"] == sum(losses) / 3
    assert set(record["overlap"]) == {"rte/dev", "rte/test"}
    assert all(v["examples"] > 0 and 0 <= v["share"] <= 0.1 for v in record["overlap"].values())
