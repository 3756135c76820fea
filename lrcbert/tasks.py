"""The GLUE tasks the paper evaluates: label sets, text columns, file layout, metric.

One ``Task`` per evaluation split the paper reports. MNLI-m and MNLI-mm share MNLI's training data and
differ only in their dev/test files, so a model trained for ``mnli`` is evaluated on both.
The column names here are those of the original GLUE TSV files; CoLA's train/dev files have no header
(``source, label, original_label, sentence``) and are read with the names below.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Task:
    name: str  # config / CLI name, e.g. "mnli_mm"
    folder: str  # GLUE folder name, e.g. "MNLI"
    train_task: str  # the task whose training data it uses ("mnli" for both MNLI splits)
    text_a: str  # TSV column of the first sentence
    text_b: str | None  # TSV column of the second sentence (pair tasks)
    label_col: str  # TSV column of the label in train/dev
    labels: tuple[str, ...]  # label strings in model-output order (that of nyu-mll/glue); () = regression
    files: dict  # split -> file name inside ``folder``
    metric: str  # headline metric (the one the paper's tables report)
    hub_config: str  # config name of nyu-mll/glue on the Hugging Face hub
    hub_split: dict  # split -> hub split name
    hub_text: tuple[str, str | None]  # hub column names of the two sentences
    submission: str  # file name the GLUE server expects for this split's test predictions
    header: bool = True  # train/dev files have a header row (CoLA's do not)
    hub_labels: tuple[str, ...] = ()  # label names on the hub when they differ from ``labels`` (same order)

    @property
    def is_regression(self) -> bool:
        return not self.labels

    @property
    def num_labels(self) -> int:
        return len(self.labels) or 1


def _std(split_names=("train", "dev", "test")):
    return {s: f"{s}.tsv" for s in split_names}


_HUB = {"train": "train", "dev": "validation", "test": "test"}

TASKS: dict[str, Task] = {
    t.name: t
    for t in [
        Task(
            "cola",
            "CoLA",
            "cola",
            "sentence",
            None,
            "label",
            ("0", "1"),
            _std(),
            "mcc",
            "cola",
            _HUB,
            ("sentence", None),
            "CoLA.tsv",
            header=False,
            hub_labels=("unacceptable", "acceptable"),
        ),
        Task(
            "sst2",
            "SST-2",
            "sst2",
            "sentence",
            None,
            "label",
            ("0", "1"),
            _std(),
            "accuracy",
            "sst2",
            _HUB,
            ("sentence", None),
            "SST-2.tsv",
            hub_labels=("negative", "positive"),
        ),
        Task(
            "mrpc",
            "MRPC",
            "mrpc",
            "#1 String",
            "#2 String",
            "Quality",
            ("0", "1"),
            _std(),
            "f1",
            "mrpc",
            _HUB,
            ("sentence1", "sentence2"),
            "MRPC.tsv",
            hub_labels=("not_equivalent", "equivalent"),
        ),
        Task(
            "stsb",
            "STS-B",
            "stsb",
            "sentence1",
            "sentence2",
            "score",
            (),
            _std(),
            "spearman",
            "stsb",
            _HUB,
            ("sentence1", "sentence2"),
            "STS-B.tsv",
        ),
        Task(
            "qqp",
            "QQP",
            "qqp",
            "question1",
            "question2",
            "is_duplicate",
            ("0", "1"),
            _std(),
            "f1",
            "qqp",
            _HUB,
            ("question1", "question2"),
            "QQP.tsv",
            hub_labels=("not_duplicate", "duplicate"),
        ),
        Task(
            "mnli_m",
            "MNLI",
            "mnli",
            "sentence1",
            "sentence2",
            "gold_label",
            ("entailment", "neutral", "contradiction"),
            {"train": "train.tsv", "dev": "dev_matched.tsv", "test": "test_matched.tsv"},
            "accuracy",
            "mnli",
            {"train": "train", "dev": "validation_matched", "test": "test_matched"},
            ("premise", "hypothesis"),
            "MNLI-m.tsv",
        ),
        Task(
            "mnli_mm",
            "MNLI",
            "mnli",
            "sentence1",
            "sentence2",
            "gold_label",
            ("entailment", "neutral", "contradiction"),
            {"train": "train.tsv", "dev": "dev_mismatched.tsv", "test": "test_mismatched.tsv"},
            "accuracy",
            "mnli",
            {"train": "train", "dev": "validation_mismatched", "test": "test_mismatched"},
            ("premise", "hypothesis"),
            "MNLI-mm.tsv",
        ),
        Task(
            "qnli",
            "QNLI",
            "qnli",
            "question",
            "sentence",
            "label",
            ("entailment", "not_entailment"),
            _std(),
            "accuracy",
            "qnli",
            _HUB,
            ("question", "sentence"),
            "QNLI.tsv",
        ),
        Task(
            "rte",
            "RTE",
            "rte",
            "sentence1",
            "sentence2",
            "label",
            ("entailment", "not_entailment"),
            _std(),
            "accuracy",
            "rte",
            _HUB,
            ("sentence1", "sentence2"),
            "RTE.tsv",
        ),
    ]
}

# Training tasks (a model is trained once per training task; MNLI serves two evaluation splits).
TRAIN_TASKS = ("cola", "sst2", "mrpc", "stsb", "qqp", "mnli", "qnli", "rte")
EVAL_SPLITS = {t: tuple(n for n, k in TASKS.items() if k.train_task == t) for t in TRAIN_TASKS}
COLA_COLUMNS = ("source", "label", "original_label", "sentence")


def get_task(name: str) -> Task:
    """The task named ``name``; ``mnli`` means MNLI-m (its training data serves both MNLI splits)."""
    key = "mnli_m" if name == "mnli" else name
    if key not in TASKS:
        raise ValueError(f"unknown task {name!r}; known tasks: {', '.join(sorted(set(TASKS) | {'mnli'}))}")
    return TASKS[key]
