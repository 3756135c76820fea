"""The cost model's sizes and step rule, shared by the engine, ``lrcbert forecast`` and the workflow's resources
(workflow/rules/resources.smk), so that all three count the same examples and the same steps. Imports nothing
heavy (no torch, no datasets): the workflow reads it while it parses.

A description of the data is the workflow's ``data`` section (``source``, ``path``, ``synthetic``,
``max_train_examples``, ``max_eval_examples``) and ``corpus`` section (``source``, ``max_lines``); the plan
(``results/plan.json``) carries both, so the forecast sizes a job exactly as the workflow does:

  hub        GLUE's published sizes (``GLUE_SIZES``);
  tsv        the row count of the file on disk (GLUE's published size while it is not there);
  synthetic  the sizes ``data.synthetic`` gives ``lrcbert make-synthetic`` (``train``, ``dev``, ``test``).
"""

from __future__ import annotations

import math
from pathlib import Path

from .tasks import EVAL_SPLITS, TASKS

# Published GLUE sizes (train, dev, test) per evaluation split (the nyu-mll/glue data set's splits)
GLUE_SIZES = {
    "mnli_m": (392702, 9815, 9796),
    "mnli_mm": (392702, 9832, 9847),
    "qqp": (363846, 40430, 390965),
    "sst2": (67349, 872, 1821),
    "qnli": (104743, 5463, 5463),
    "mrpc": (3668, 408, 1725),
    "rte": (2490, 277, 3000),
    "cola": (8551, 1043, 1063),
    "stsb": (5749, 1500, 1379),
}
# Lines (paragraphs of at least corpus.min_chars = 40 characters) of English Wikipedia, the general-distillation
# corpus when corpus.max_lines is null. Source: BERT (Devlin et al., 2019, section 3.1) counts 2,500 M words of
# English Wikipedia text; at about 100 words per paragraph that is 25 M paragraphs. (6.4 M, the number once used
# here, is the number of articles of the 20231101.en dump, not of its lines.) A written corpus is counted instead.
WIKI_LINES = 25_000_000
# what `lrcbert make-synthetic` writes when data.synthetic leaves a size out (lrcbert.synthetic.DEFAULT_SIZES)
SYNTHETIC_DEFAULTS = {"train": 512, "dev": 128, "test": 64, "corpus_lines": 2000}
SPLIT_INDEX = {"train": 0, "dev": 1, "test": 2}


def steps_per_epoch(n_train: int, batch_size: int, world: int = 1) -> int:
    """Optimisation steps of one epoch: full global batches only (the loader drops the last partial one)."""
    return n_train // (batch_size * world)


def total_steps(n_train: int, batch_size: int, epochs: float, max_steps: int | None = None, world: int = 1) -> int:
    """The engine's rule for a run's optimisation steps: ``train.max_steps``, else ``ceil(epochs x steps per
    epoch)``, at least 1."""
    return max_steps or max(1, math.ceil(epochs * steps_per_epoch(n_train, batch_size, world)))


def tsv_rows(path: str | Path, header: bool = True) -> int:
    """Rows of a GLUE TSV file (blank lines skipped, as lrcbert.data reads it)."""
    with open(path, encoding="utf-8", errors="replace") as f:
        rows = sum(1 for line in f if line.strip())
    return max(0, rows - header)


def text_lines(path: str | Path) -> int:
    """Non-blank lines of a text file (a corpus, as lrcbert.data reads it)."""
    with open(path, encoding="utf-8", errors="replace") as f:
        return sum(1 for line in f if line.strip())


def split_size(data: dict, split_name: str, split: str) -> tuple[int, str]:
    """(examples, where the number comes from) of an evaluation split's ``split`` (train, dev, test) under the
    data description ``data``, capped by ``max_train_examples`` (train) or ``max_eval_examples`` (dev, test)."""
    source, sizes = data.get("source", "hub"), data.get("synthetic") or {}
    task = TASKS[split_name]
    path = Path(str(data.get("path") or "")) / task.folder / task.files[split]
    if source == "synthetic" and sizes.get(split):
        n, where = int(sizes[split]), "data.synthetic (the sizes make-synthetic writes)"
    elif source in ("tsv", "synthetic") and path.is_file():  # a folder on disk (generated beforehand, or GLUE's)
        n, where = tsv_rows(path, header=task.header or split == "test"), "data on disk"
    elif source == "synthetic":
        n, where = SYNTHETIC_DEFAULTS[split], "make-synthetic's default sizes"
    else:
        n, where = GLUE_SIZES[split_name][SPLIT_INDEX[split]], "published GLUE size (data not downloaded yet)"
    limit = data.get("max_train_examples" if split == "train" else "max_eval_examples")
    return (min(n, int(limit)) if limit else n), where


def split_examples(data: dict, split_name: str, split: str) -> int:
    return split_size(data, split_name, split)[0]


def train_examples(data: dict, task: str) -> int:
    """Training examples of ``task`` (a training task: mnli, rte, ...) under the data description ``data``."""
    return split_examples(data, EVAL_SPLITS[task][0], "train")


def eval_examples(data: dict, task: str) -> int:
    """Examples a finished run of ``task`` predicts: dev and test of each of its evaluation splits."""
    return sum(split_examples(data, name, split) for name in EVAL_SPLITS[task] for split in ("dev", "test"))


def corpus_lines(data: dict, corpus: dict) -> int:
    """Lines of the general-distillation corpus: the generated corpus's ``data.synthetic.corpus_lines``, else
    ``corpus.max_lines``, else English Wikipedia's (``WIKI_LINES``)."""
    if corpus.get("source") == "synthetic":
        return int((data.get("synthetic") or {}).get("corpus_lines") or SYNTHETIC_DEFAULTS["corpus_lines"])
    return int(corpus.get("max_lines") or WIKI_LINES)
