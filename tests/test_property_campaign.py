"""Property (issue 23): in a campaign (a teacher fine-tuned on a task, a student distilled from its saved model),
change ONE input and run the same two commands again. Whatever the change (one label in a data file, one weight of
the teacher's saved model, one config key, the suite version):

- every result (metrics.json, model/) is exactly the result of its current inputs: it equals, bit for bit, the
  result of the same command run in a fresh folder (a model is never re-reported from other inputs), and its
  recorded identity names the current data files and teacher weights;
- a run the change does not reach stays byte-identical (nothing is retrained or rewritten for nothing);
- a run the change reaches gets a new identity, and its old files are kept in ``.superseded/``.
"""

import json
import os
import shutil
from pathlib import Path

import pytest
import torch
from conftest import tiny_config
from hypothesis import HealthCheck, Phase, example, given, settings
from hypothesis import strategies as st
from safetensors.torch import load_file, save_file

from lrcbert import identity as identity_module
from lrcbert.identity import file_sha256
from lrcbert.objective import METHODS
from lrcbert.run import run

pytestmark = pytest.mark.faults
TEACHER_LRS = (5e-4, 1e-3)
STUDENT_LRS = (1e-3, 3e-3)


def teacher_cfg(data, lr):
    return tiny_config(data, task="rte", train={"max_steps": 2, "batch_size": 8, "lr": lr}, method=METHODS["finetune"])


def student_cfg(data, teacher_run, lr):
    return tiny_config(
        data,
        task="rte",
        model={"teacher": str(teacher_run / "model"), "teacher_random_init": False},
        train={"max_steps": 2, "batch_size": 8, "lr": lr},
    )


def campaign(root, inputs):
    """The campaign's two commands, run in folder ``root`` (glue/, teacher/, student/: relative paths, so that the
    same campaign in another folder has the same configuration) with ``inputs``; returns their results."""
    here = os.getcwd()
    os.chdir(root)
    try:
        t = run(teacher_cfg(Path("glue"), inputs["teacher_lr"]), "teacher", "finetune")
        s = run(student_cfg(Path("glue"), Path("teacher"), inputs["student_lr"]), "student", "distill")
    finally:
        os.chdir(here)
    return t, s


def tree(folder):
    """Every file of a run folder but the lock (emptied by each owner) and the superseded runs."""
    return {
        str(p.relative_to(folder)): p.read_bytes()
        for p in sorted(folder.rglob("*"))
        if p.is_file() and p.name != ".lock" and ".superseded" not in p.relative_to(folder).parts
    }


@pytest.fixture(scope="module")
def base(glue_dir, tmp_path_factory):
    """One finished campaign, copied for each example."""
    root = tmp_path_factory.mktemp("campaign")
    shutil.copytree(glue_dir, root / "glue")
    campaign(root, {"teacher_lr": TEACHER_LRS[0], "student_lr": STUDENT_LRS[0]})
    return root


def flip_label(path, row):
    """Change one label of a GLUE rte file (data row ``row``, entailment <-> not_entailment)."""
    lines = path.read_bytes().split(b"\n")
    k = 1 + row % (len([x for x in lines if x]) - 1)
    fields = lines[k].split(b"\t")
    fields[-1] = fields[-1][4:] if fields[-1].startswith(b"not_") else b"not_" + fields[-1]
    lines[k] = b"\t".join(fields)
    path.write_bytes(b"\n".join(lines))


def nudge_weight(model_dir, index):
    """Change one weight of a saved model (the teacher replaced at the same path)."""
    state = load_file(model_dir / "model.safetensors")
    names = sorted(k for k in state if state[k].is_floating_point())
    name = names[index % len(names)]
    flat = state[name].view(-1)
    flat[index % flat.numel()] += 0.5
    save_file(state, str(model_dir / "model.safetensors"), metadata={"format": "pt"})


CHANGES = st.one_of(
    st.tuples(st.just("data"), st.sampled_from(["train", "dev"]), st.integers(0, 10_000)),
    st.tuples(st.just("teacher_weight"), st.integers(0, 10_000)),
    st.tuples(st.just("config"), st.sampled_from(["teacher_lr", "student_lr"])),
    st.tuples(st.just("suite"), st.text("0123456789abcdef", min_size=7, max_size=7)),
)


@settings(
    max_examples=2,  # and the four explicit examples: one of each kind of change
    deadline=None,
    phases=(Phase.explicit, Phase.reuse, Phase.generate),  # no shrinking: each example trains four tiny runs
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(change=CHANGES)
@example(change=("data", "train", 7))
@example(change=("teacher_weight", 3))
@example(change=("config", "student_lr"))
@example(change=("suite", "0badc0d"))
def test_one_changed_input_changes_exactly_the_results_it_reaches(base, tmp_path_factory, change):
    with pytest.MonkeyPatch.context() as monkeypatch:  # undone after each example
        check_one_change(base, tmp_path_factory, monkeypatch, change)


def check_one_change(base, tmp_path_factory, monkeypatch, change):
    root = tmp_path_factory.mktemp("changed")
    shutil.copytree(base, root, dirs_exist_ok=True)
    before = {name: tree(root / name) for name in ("teacher", "student")}
    inputs = {"teacher_lr": TEACHER_LRS[0], "student_lr": STUDENT_LRS[0]}
    kind = change[0]
    if kind == "data":
        flip_label(root / "glue" / "RTE" / f"{change[1]}.tsv", change[2])
        reached = {"teacher", "student"}  # both read the file (train: to learn, dev: to evaluate)
    elif kind == "teacher_weight":
        nudge_weight(root / "teacher" / "model", change[1])
        # the teacher's folder no longer holds the model its run saved: the teacher is trained again (to the same
        # weights: its inputs did not change), and its student, distilled from those weights, stays as it is
        reached = {"teacher"}
    elif kind == "config":
        other = {"teacher_lr": TEACHER_LRS[1], "student_lr": STUDENT_LRS[1]}
        inputs[change[1]] = other[change[1]]
        reached = {"teacher", "student"} if change[1] == "teacher_lr" else {"student"}
    else:
        real = identity_module.suite_version()
        monkeypatch.setattr(identity_module, "suite_version", lambda: {"commit": change[1], "dirty": real["dirty"]})
        reached = {"teacher", "student"}

    results = dict(zip(("teacher", "student"), campaign(root, inputs)))

    # the reference: the same commands, fresh folders, the same (changed) inputs
    fresh = tmp_path_factory.mktemp("fresh")
    (fresh / "glue").symlink_to(root / "glue")
    refs = dict(zip(("teacher", "student"), campaign(fresh, inputs)))

    for name in ("teacher", "student"):
        folder, got, ref = root / name, results[name], refs[name]
        ident = got["identity"]
        assert json.loads((folder / "metrics.json").read_text()) == got
        # exactly the result of its current inputs
        assert ident == ref["identity"], name  # the same inputs give the same identity, wherever the folder is
        assert got["splits"] == ref["splits"], name
        assert got["model_hash"] == ref["model_hash"], name
        assert (folder / "model" / "model.safetensors").read_bytes() == (
            fresh / name / "model" / "model.safetensors"
        ).read_bytes(), name
        assert ident["data"] == {
            f"rte/{s}": file_sha256(root / "glue" / "RTE" / f"{s}.tsv") for s in ("train", "dev", "test")
        }
        if name == "student":
            teacher_now = load_file(root / "teacher" / "model" / "model.safetensors")
            from transformers import AutoModelForSequenceClassification

            loaded = AutoModelForSequenceClassification.from_pretrained(root / "teacher" / "model")
            assert all(torch.equal(loaded.state_dict()[k], v) for k, v in teacher_now.items())
            assert ident["teacher"] == identity_module.weights_hash(loaded)
        if name in reached:
            old = json.loads(before[name]["metrics.json"])
            assert (ident["run_id"] == old["identity"]["run_id"]) == (kind == "teacher_weight"), name
            moved = sorted((folder / ".superseded").iterdir())
            assert len(moved) == 1 and (moved[0] / "metrics.json").read_bytes() == before[name]["metrics.json"]
        else:
            assert tree(folder) == before[name], f"{name} was rewritten by a change that does not reach it"
