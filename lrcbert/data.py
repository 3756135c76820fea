"""GLUE data from three sources behind one interface, tokenised with the model's own tokenizer.

Sources (``data.source``):
  hub        nyu-mll/glue through ``datasets.load_dataset`` (needs network or a filled HF cache);
  tsv        a local folder in the original GLUE layout (``CoLA/train.tsv``, ``MNLI/dev_matched.tsv``, ...);
  synthetic  a generated folder in the same layout (``lrcbert make-synthetic``), made on first use.
Every source yields a ``datasets.Dataset`` with columns ``text_a``, ``text_b`` (pair tasks), ``label``
(int index into ``Task.labels``, float for STS-B, -1 where unknown, i.e. test) and ``idx``.
"""
from __future__ import annotations

import csv
import hashlib
import math
from pathlib import Path

import datasets
import pandas as pd
import torch
from transformers import DataCollatorWithPadding

from .tasks import COLA_COLUMNS, Task

SPLITS = ("train", "dev", "test")


class DataError(ValueError):
    """Missing or malformed data (message names the file, column or value)."""


def _read_tsv(path: Path, task: Task, split: str) -> pd.DataFrame:
    if not path.is_file():
        raise DataError(f"data file not found: {path} (task {task.name}, split {split})")
    headerless = not task.header and split != "test"
    frame = pd.read_csv(path, sep="\t", quoting=csv.QUOTE_NONE, dtype=str, keep_default_na=False,
                        header=None if headerless else 0, names=list(COLA_COLUMNS) if headerless else None,
                        on_bad_lines="error", encoding="utf-8")
    needed = [c for c in (task.text_a, task.text_b) if c] + ([task.label_col] if split != "test" else [])
    missing = [c for c in needed if c not in frame.columns]
    if missing:
        raise DataError(f"{path}: missing column(s) {missing}; found {list(frame.columns)}")
    return frame


def _labels_from_strings(values, task: Task, path) -> list:
    if task.is_regression:
        out = []
        for i, v in enumerate(values):
            try:
                x = float(v)
            except ValueError:
                x = math.nan
            if not math.isfinite(x):
                raise DataError(f"{path}: row {i + 1}: score {v!r} is not a number")
            out.append(x)
        return out
    index = {label: i for i, label in enumerate(task.labels)}
    bad = sorted({v for v in values if v not in index})
    if bad:
        raise DataError(f"{path}: label(s) {bad[:5]} outside the label set {list(task.labels)} of {task.name}")
    return [index[v] for v in values]


def _from_tsv(root: Path, task: Task, split: str, file_override: str | None = None) -> datasets.Dataset:
    path = Path(file_override) if file_override else root / task.folder / task.files[split]
    frame = _read_tsv(path, task, split)
    cols = {"text_a": frame[task.text_a].tolist()}
    if task.text_b:
        cols["text_b"] = frame[task.text_b].tolist()
    if split == "test":
        if task.label_col in frame.columns and frame[task.label_col].str.len().gt(0).any():
            raise DataError(f"{path}: the test split carries labels in column {task.label_col!r}; "
                            "test files must be unlabelled (is this a dev file?)")
        cols["label"] = [-1.0 if task.is_regression else -1] * len(frame)
        ids = frame["index"] if "index" in frame.columns else frame.get("id", pd.Series(range(len(frame))))
        cols["idx"] = [int(i) for i in ids]
    else:
        cols["label"] = _labels_from_strings(frame[task.label_col].tolist(), task, path)
        cols["idx"] = list(range(len(frame)))
    return datasets.Dataset.from_dict(cols)


def _from_hub(hub_id: str, task: Task, split: str) -> datasets.Dataset:
    ds = datasets.load_dataset(hub_id, task.hub_config, split=task.hub_split[split])
    a, b = task.hub_text
    cols = {"text_a": ds[a]}
    if b:
        cols["text_b"] = ds[b]
    labels = ds["label"]
    if not task.is_regression and split != "test":
        names = ds.features["label"].names
        expected = list(task.hub_labels or task.labels)
        if [n.lower() for n in names] != [n.lower() for n in expected]:
            raise DataError(f"{hub_id}/{task.hub_config}: label order {names} differs from {expected}")
    cols["label"] = labels
    cols["idx"] = ds["idx"]
    return datasets.Dataset.from_dict(cols)


def ensure_synthetic(path: str | Path, seed: int) -> Path:
    """Generate the synthetic GLUE folder at ``path`` unless it is already there (marked by README.txt)."""
    from .synthetic import make_synthetic
    path = Path(path)
    if not (path / "README.txt").is_file():
        make_synthetic(path, seed=seed)
    return path


def data_root(cfg) -> Path | None:
    d = cfg.data
    if d.source == "synthetic":
        return ensure_synthetic(d.path or "data/synthetic", d.synthetic_seed)
    return Path(d.path) if d.path else None


def load_split(cfg, task: Task, split: str) -> datasets.Dataset:
    """Examples of ``task``'s ``split`` (train | dev | test) from the configured source."""
    if split not in SPLITS:
        raise DataError(f"unknown split {split!r}; known: {', '.join(SPLITS)}")
    d = cfg.data
    if split == "train" and d.train_file:
        ds = _from_tsv(Path("."), task, split, d.train_file)
    elif d.source == "hub":
        ds = _from_hub(d.hub_id, task, split)
    else:
        ds = _from_tsv(data_root(cfg), task, split)
    limit = d.max_train_examples if split == "train" else d.max_eval_examples
    if limit is not None and len(ds) > limit:
        ds = ds.select(range(limit))
    if len(ds) == 0:
        raise DataError(f"no examples in task {task.name}, split {split}")
    return ds


def load_corpus(cfg) -> datasets.Dataset:
    """The general-distillation corpus: a text file (one passage a line) or ``hub:ID[:CONFIG]``."""
    d = cfg.data
    spec = d.corpus or (str(data_root(cfg) / "corpus.txt") if d.source == "synthetic" else None)
    if not spec:
        raise DataError("config key 'data.corpus' is required for general distillation")
    if spec.startswith("hub:"):
        parts = spec[4:].split(":")
        ds = datasets.load_dataset(parts[0], *(parts[1:2]), split="train")
        if d.corpus_text_column not in ds.column_names:
            raise DataError(f"corpus {spec}: no column {d.corpus_text_column!r}; found {ds.column_names}")
        lines = ds[d.corpus_text_column] if d.max_corpus_lines is None else \
            ds.select(range(min(d.max_corpus_lines, len(ds))))[d.corpus_text_column]
    else:
        path = Path(spec)
        if not path.is_file():
            raise DataError(f"corpus file not found: {path}")
        lines = [x.strip() for x in path.read_text(encoding="utf-8").splitlines() if x.strip()]
        lines = lines[: d.max_corpus_lines] if d.max_corpus_lines else lines
    if not lines:
        raise DataError(f"corpus {spec} is empty")
    return datasets.Dataset.from_dict({"text_a": list(lines), "label": [-1] * len(lines),
                                       "idx": list(range(len(lines)))})


def tokenize(ds: datasets.Dataset, tokenizer, max_length: int) -> datasets.Dataset:
    """Token ids for each example (no padding here: the collator pads each batch)."""
    pair = "text_b" in ds.column_names

    def enc(batch):
        return tokenizer(batch["text_a"], batch["text_b"] if pair else None, truncation=True,
                         max_length=max_length)

    drop = [c for c in ("text_a", "text_b") if c in ds.column_names]
    # an explicit fingerprint: by default datasets hashes the whole tokenizer, about 2 s per call
    key = f"{ds._fingerprint}-{getattr(tokenizer, 'name_or_path', '')}-{len(tokenizer)}-{max_length}"
    fingerprint = hashlib.sha256(key.encode()).hexdigest()[:16]
    return ds.map(enc, batched=True, remove_columns=drop, desc="tokenise", new_fingerprint=fingerprint)


class Collator:
    """Pads a list of tokenised examples to the longest one (or to ``max_length``), as tensors."""

    def __init__(self, tokenizer, max_length: int, pad_to_max_length: bool):
        self.pad = DataCollatorWithPadding(tokenizer, padding="max_length" if pad_to_max_length else "longest",
                                           max_length=max_length if pad_to_max_length else None)

    def __call__(self, features):
        labels = [f.pop("label") for f in features]
        idx = [f.pop("idx") for f in features]
        batch = self.pad(features)
        kind = torch.float32 if isinstance(labels[0], float) else torch.long
        batch["labels"] = torch.tensor(labels, dtype=kind)
        batch["idx"] = torch.tensor(idx, dtype=torch.long)
        return batch


class EpochSampler(torch.utils.data.Sampler):
    """A fresh permutation per epoch from (seed, epoch), so a resumed run sees the same order; ``skip`` drops
    the first samples of the epoch (those consumed before an interruption). The method is deliberately not
    called ``set_epoch``: accelerate calls that with its own iteration count and would undo a resume."""

    def __init__(self, n: int, seed: int, shuffle: bool = True):
        self.n, self.seed, self.shuffle, self.epoch, self.skip = n, seed, shuffle, 0, 0

    def position(self, epoch: int, skip: int = 0):
        self.epoch, self.skip = epoch, skip

    def __iter__(self):
        if self.shuffle:
            g = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch)
            order = torch.randperm(self.n, generator=g).tolist()
        else:
            order = list(range(self.n))
        return iter(order[self.skip:])

    def __len__(self):
        return self.n - self.skip


def lengths(ds: datasets.Dataset) -> list[int]:
    """Tokens per example of a tokenised data set (before padding)."""
    return [len(x) for x in ds["input_ids"]]


class LengthGroupedSampler(EpochSampler):
    """Batches of similar lengths, so that dynamic padding pads little (as transformers' LengthGroupedSampler).

    Per epoch: the same permutation as ``EpochSampler`` (seed, epoch), cut into mega-batches of ``group``
    batches; each mega-batch is sorted by length (longest first) and cut into batches; the full batches are
    then put in a random order from the same generator, the incomplete one last (``drop_last`` drops it).
    Deterministic from (seed, epoch), so ``position(epoch, skip)`` resumes it like ``EpochSampler``."""

    def __init__(self, lengths: list[int], batch_size: int, seed: int, group: int = 50):
        super().__init__(len(lengths), seed, shuffle=True)
        self.lengths, self.batch_size, self.group = list(lengths), batch_size, group

    def order(self) -> list[int]:
        g = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch)
        perm = torch.randperm(self.n, generator=g).tolist()
        mega = self.batch_size * self.group
        batches = []
        for start in range(0, self.n, mega):
            chunk = sorted(perm[start:start + mega], key=lambda i: -self.lengths[i])
            batches += [chunk[i:i + self.batch_size] for i in range(0, len(chunk), self.batch_size)]
        full = [b for b in batches if len(b) == self.batch_size]
        rest = [i for b in batches if len(b) < self.batch_size for i in b]
        shuffled = [full[k] for k in torch.randperm(len(full), generator=g).tolist()]
        return [i for b in shuffled for i in b] + rest

    def __iter__(self):
        return iter(self.order()[self.skip:])
