"""GLUE data from three sources behind one interface, tokenised with the model's own tokenizer.

Sources (``data.source``):
  hub        nyu-mll/glue through ``datasets.load_dataset`` (needs network or a filled HF cache);
  tsv        a local folder in the original GLUE layout (``CoLA/train.tsv``, ``MNLI/dev_matched.tsv``, ...);
  synthetic  a generated folder in the same layout, made beforehand by ``lrcbert make-synthetic`` (checked
             by its marker; reading never writes).
Every source yields a ``datasets.Dataset`` with columns ``text_a``, ``text_b`` (pair tasks), ``label``
(int index into ``Task.labels``, float for STS-B, -1 where unknown, i.e. test) and ``idx``.
"""

from __future__ import annotations

import hashlib
import math
from pathlib import Path

import datasets
import torch
from transformers import DataCollatorWithPadding

from .errors import DataError
from .synthetic import MARKER, is_generated
from .tasks import COLA_COLUMNS, EVAL_SPLITS, TASKS, Task

SPLITS = ("train", "dev", "test")


# the columns holding a row's own id (a test file's "index" keys the GLUE submission); other id columns name
# sentences or prompts that recur by design (MRPC's "#1 ID"/"#2 ID", QQP's qid1/qid2, MNLI's promptID)
ID_COLUMNS = ("index", "id")


def _first_repeat(ids: list) -> tuple[int, int] | None:
    """(row of the first id seen before, row where it was first seen), or None if every id is unique. Integer ids
    compare as numbers ("7" and "07" are the same example in a submission)."""
    seen = {}
    for i, v in enumerate(ids):
        key = int(v) if isinstance(v, int) or v.strip().lstrip("-").isdigit() else v.strip()
        if key in seen:
            return i, seen[key]
        seen[key] = i
    return None


def _read_tsv(path: Path, task: Task, split: str) -> tuple[dict, list[int]]:
    """The columns of a GLUE TSV file ({name: values}) and each row's line number. The file must be UTF-8 and
    every row must have exactly the header's fields (tab-separated, no quoting); blank lines are skipped."""
    if not path.is_file():
        raise DataError(f"data file not found: {path} (task {task.name}, split {split})")
    raw = path.read_bytes()
    if not raw.strip():
        raise DataError(
            f"{path}: empty file ({len(raw)} bytes); expected the {task.name} {split} split in the GLUE TSV layout"
        )
    try:
        text = raw.decode("utf-8").removeprefix("\ufeff")
    except UnicodeDecodeError as e:
        line = raw.count(b"\n", 0, e.start) + 1
        col = e.start - (raw.rfind(b"\n", 0, e.start) + 1) + 1
        raise DataError(
            f"{path}: line {line}, byte {col}: 0x{raw[e.start]:02x} is not UTF-8 (data files must be UTF-8 text)"
        ) from None
    lines = [(n, x.removesuffix("\r")) for n, x in enumerate(text.split("\n"), 1) if x.removesuffix("\r")]
    headerless = not task.header and split != "test"
    if headerless:
        columns = list(COLA_COLUMNS)
    else:
        columns, lines = lines[0][1].split("\t"), lines[1:]
    needed = [c for c in (task.text_a, task.text_b) if c] + ([task.label_col] if split != "test" else [])
    missing = [c for c in needed if c not in columns]
    if missing:
        raise DataError(f"{path}: line 1 (header): missing column(s) {missing}; found {columns}")
    rows = []
    for n, line in lines:
        fields = line.split("\t")
        if len(fields) != len(columns):
            raise DataError(
                f"{path}: line {n}: {len(fields)} tab-separated fields, expected {len(columns)} ({', '.join(columns)})"
            )
        rows.append(fields)
    frame = {c: [r[i] for r in rows] for i, c in enumerate(columns)}
    key = next((k for k in ID_COLUMNS if k in frame), None)
    repeat = _first_repeat(frame[key]) if key else None
    if repeat:
        i, first = repeat
        raise DataError(
            f"{path}: line {lines[i][0]}, column {columns.index(key) + 1} ({key}): id {frame[key][i]!r} is "
            f"already the id of line {lines[first][0]}; every example needs its own id"
        )
    return frame, [n for n, _ in lines]


def _labels_from_strings(values, task: Task, path, line_numbers=None, column=None) -> list:
    """Label indices (floats for STS-B); the first bad value is reported with its line and column."""
    where = (
        (lambda i: f"line {line_numbers[i]}, column {column} ({task.label_col})")
        if line_numbers
        else (lambda i: f"row {i + 1}")
    )
    if task.is_regression:
        out = []
        for i, v in enumerate(values):
            try:
                x = float(v)
            except ValueError:
                x = math.nan
            if not (math.isfinite(x) and 0.0 <= x <= 5.0):
                raise DataError(f"{path}: {where(i)}: score {v!r} is not a number in [0, 5]")
            out.append(x)
        return out
    index = {label: i for i, label in enumerate(task.labels)}
    for i, v in enumerate(values):
        if v not in index:
            raise DataError(
                f"{path}: {where(i)}: label {v!r} is outside the label set {list(task.labels)} of {task.name}"
            )
    return [index[v] for v in values]


def _from_tsv(root: Path, task: Task, split: str, file_override: str | None = None) -> datasets.Dataset:
    path = Path(file_override) if file_override else root / task.folder / task.files[split]
    frame, line_numbers = _read_tsv(path, task, split)
    columns = list(frame)
    cols = {"text_a": frame[task.text_a]}
    if task.text_b:
        cols["text_b"] = frame[task.text_b]
    if split == "test":
        if task.label_col in frame and any(frame[task.label_col]):
            raise DataError(
                f"{path}: the test split carries labels in column {task.label_col!r}; "
                "test files must be unlabelled (is this a dev file?)"
            )
        cols["label"] = [-1.0 if task.is_regression else -1] * len(line_numbers)
        key = next((k for k in ("index", "id") if k in frame), None)
        ids = frame[key] if key else [str(i) for i in range(len(line_numbers))]
        for i, v in enumerate(ids):
            if not v.strip().lstrip("-").isdigit():
                raise DataError(
                    f"{path}: line {line_numbers[i]}, column {columns.index(key) + 1} ({key}): "
                    f"{v!r} is not an integer id"
                )
        cols["idx"] = [int(i) for i in ids]
    else:
        cols["label"] = _labels_from_strings(
            frame[task.label_col], task, path, line_numbers, columns.index(task.label_col) + 1
        )
        cols["idx"] = list(range(len(line_numbers)))
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
    repeat = _first_repeat(cols["idx"])
    if repeat:
        i, first = repeat
        raise DataError(
            f"{hub_id}/{task.hub_config} ({task.hub_split[split]}): row {i + 1}: idx {cols['idx'][i]} is already "
            f"the idx of row {first + 1}; every example needs its own id"
        )
    return datasets.Dataset.from_dict(cols)


def data_root(cfg) -> Path | None:
    """The GLUE folder a tsv or synthetic source reads; it never writes there. A synthetic source must find the
    marker of ``lrcbert make-synthetic`` (generation is that explicit step, never a side effect of reading)."""
    d = cfg.data
    if d.source == "hub":
        return Path(d.path) if d.path else None
    if d.source == "synthetic":
        path = Path(d.path or "data/synthetic")
        if not path.is_dir():
            raise DataError(
                f"data.path {path}: no such folder; data.source 'synthetic' reads generated data: "
                f"make it first with `lrcbert make-synthetic --out {path}`"
            )
        if not is_generated(path):
            raise DataError(
                f"data.path {path} was not made by lrcbert make-synthetic (no {MARKER} marker) but "
                "data.source is 'synthetic'; for a GLUE folder set data.source=tsv"
            )
        return path
    if not d.path:
        raise DataError("data.path is required when data.source is 'tsv' (a folder in the GLUE layout)")
    if not Path(d.path).is_dir():
        raise DataError(f"data.path {d.path}: no such folder (data.source 'tsv')")
    return Path(d.path)


SYNTHETIC_LABEL = "synthetic (generated, not GLUE)"


def data_source(cfg, general: bool = False) -> str:
    """What the run's data really is, for run.json and metrics.json: generated data is named as such whatever
    ``data.source`` says (a folder or corpus carrying the ``make-synthetic`` marker)."""
    d = cfg.data
    folders = []
    if general:
        spec = d.corpus or ""
        if d.corpus is None and d.source == "synthetic":
            folders.append(Path(d.path or "data/synthetic"))
        elif not spec.startswith("hub:"):
            folders.append(Path(spec).parent)
    else:
        if d.source != "hub":
            folders.append(Path(d.path or "data/synthetic"))
        if d.train_file:
            folders.append(Path(d.train_file).parent)
    if any(is_generated(f) for f in folders):
        return SYNTHETIC_LABEL
    if general:
        return f"corpus {d.corpus}"
    return f"hub {d.hub_id}" if d.source == "hub" else f"tsv {d.path}"


def load_split(cfg, task: Task, split: str) -> datasets.Dataset:
    """Examples of ``task``'s ``split`` (train | dev | test) from the configured source."""
    if split not in SPLITS:
        raise DataError(f"unknown split {split!r}; known: {', '.join(SPLITS)}")
    d = cfg.data
    if split == "train" and d.train_file:
        where, ds = d.train_file, _from_tsv(Path("."), task, split, d.train_file)
    elif d.source == "hub":
        where, ds = f"{d.hub_id}/{task.hub_config}", _from_hub(d.hub_id, task, split)
    else:
        root = data_root(cfg)
        where, ds = root / task.folder / task.files[split], _from_tsv(root, task, split)
    limit = d.max_train_examples if split == "train" else d.max_eval_examples
    if limit is not None and len(ds) > limit:
        ds = ds.select(range(limit))
    if len(ds) == 0:
        raise DataError(f"{where}: no examples (task {task.name}, split {split})")
    return ds


def validate(cfg, task: Task | None, train: bool = True) -> dict:
    """Read every split the run will read, before its first step: the training split (or the corpus), the dev
    split of every evaluation split and the test split where its file exists (test is optional, but a test file
    that is there must parse). Returns {(task name, split): Dataset}; raises DataError naming file and line, also
    for a dev or test split whose share of examples found in the training split exceeds ``data.max_overlap``."""
    if task is None:
        return {("general", "train"): load_corpus(cfg)}
    out = {(task.name, "train"): load_split(cfg, task, "train")} if train else {}
    for name in EVAL_SPLITS[task.train_task]:
        other = TASKS[name]
        out[(name, "dev")] = load_split(cfg, other, "dev")
        if cfg.data.source == "hub" or (data_root(cfg) / other.folder / other.files["test"]).is_file():
            out[(name, "test")] = load_split(cfg, other, "test")
    for (name, split), (n, shared, first) in _overlaps(out).items():
        if shared / n > cfg.data.max_overlap:
            ds = out[(name, split)]
            example = " | ".join(ds[first][c] for c in ("text_a", "text_b") if c in ds.column_names)
            raise DataError(
                f"{_location(cfg, TASKS[name], split)}: {shared} of its {n} examples ({shared / n:.1%}) are also in "
                f"the training split {_location(cfg, task, 'train')} (same text, case and whitespace aside; e.g. "
                f"{example[:80]!r}), above data.max_overlap={cfg.data.max_overlap:g}; is it a copy of the "
                "training file? (set data.max_overlap to allow more)"
            )
    return out


def _location(cfg, task: Task, split: str) -> str:
    """Where ``load_split`` reads ``task``'s ``split`` from (for messages)."""
    d = cfg.data
    if split == "train" and d.train_file:
        return d.train_file
    if d.source == "hub":
        return f"{d.hub_id}/{task.hub_config} ({task.hub_split[split]})"
    return str(data_root(cfg) / task.folder / task.files[split])


def _text_keys(ds: datasets.Dataset) -> list[tuple[str, ...]]:
    """Each example's text (both sentences of a pair), case and whitespace aside: what makes two examples one."""
    columns = [ds[c] for c in ("text_a", "text_b") if c in ds.column_names]
    return [tuple(" ".join(x.split()).casefold() for x in texts) for texts in zip(*columns)]


def _overlaps(splits: dict) -> dict:
    """{(task name, split): (examples, how many of them the training split holds, row of the first one)} for
    every dev and test split of ``splits``; {} without a training split."""
    train = [ds for (_, split), ds in splits.items() if split == "train"]
    if not train:
        return {}
    seen = set(_text_keys(train[0]))
    out = {}
    for (name, split), ds in splits.items():
        if split != "train":
            hits = [i for i, k in enumerate(_text_keys(ds)) if k in seen]
            out[(name, split)] = (len(ds), len(hits), hits[0] if hits else None)
    return out


def overlap_report(splits: dict) -> dict:
    """How much of each dev and test split the training split holds, for ``run.json``: {"rte/dev": {"examples":
    277, "in_train": 0, "share": 0.0}, ...} (``splits``: what ``validate`` returned; {} without a training
    split). Examples are the same when their text is, case and whitespace aside; ids are not compared."""
    return {
        f"{name}/{split}": {"examples": n, "in_train": shared, "share": shared / n}
        for (name, split), (n, shared, _) in _overlaps(splits).items()
    }


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
        lines = (
            ds[d.corpus_text_column]
            if d.max_corpus_lines is None
            else ds.select(range(min(d.max_corpus_lines, len(ds))))[d.corpus_text_column]
        )
    else:
        path = Path(spec)
        if not path.is_file():
            raise DataError(f"corpus file not found: {path}")
        raw = path.read_bytes()
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as e:
            line = raw.count(b"\n", 0, e.start) + 1
            raise DataError(
                f"{path}: line {line}: byte 0x{raw[e.start]:02x} is not UTF-8 (the corpus must be UTF-8 text)"
            ) from None
        lines = [x.strip() for x in text.splitlines() if x.strip()]
        lines = lines[: d.max_corpus_lines] if d.max_corpus_lines else lines
    if not lines:
        raise DataError(f"corpus {spec} is empty")
    return datasets.Dataset.from_dict(
        {"text_a": list(lines), "label": [-1] * len(lines), "idx": list(range(len(lines)))}
    )


def tokenize(ds: datasets.Dataset, tokenizer, max_length: int) -> datasets.Dataset:
    """Token ids for each example (no padding here: the collator pads each batch)."""
    pair = "text_b" in ds.column_names

    def enc(batch):
        return tokenizer(batch["text_a"], batch["text_b"] if pair else None, truncation=True, max_length=max_length)

    drop = [c for c in ("text_a", "text_b") if c in ds.column_names]
    # an explicit fingerprint: by default datasets hashes the whole tokenizer, about 2 s per call
    key = f"{ds._fingerprint}-{getattr(tokenizer, 'name_or_path', '')}-{len(tokenizer)}-{max_length}"
    fingerprint = hashlib.sha256(key.encode()).hexdigest()[:16]
    return ds.map(enc, batched=True, remove_columns=drop, desc="tokenise", new_fingerprint=fingerprint)


class Collator:
    """Pads a list of tokenised examples to the longest one (or to ``max_length``), as tensors."""

    def __init__(self, tokenizer, max_length: int, pad_to_max_length: bool):
        self.pad = DataCollatorWithPadding(
            tokenizer,
            padding="max_length" if pad_to_max_length else "longest",
            max_length=max_length if pad_to_max_length else None,
        )

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
        return iter(order[self.skip :])

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
            chunk = sorted(perm[start : start + mega], key=lambda i: -self.lengths[i])
            batches += [chunk[i : i + self.batch_size] for i in range(0, len(chunk), self.batch_size)]
        full = [b for b in batches if len(b) == self.batch_size]
        rest = [i for b in batches if len(b) < self.batch_size for i in b]
        shuffled = [full[k] for k in torch.randperm(len(full), generator=g).tolist()]
        return [i for b in shuffled for i in b] + rest

    def __iter__(self):
        return iter(self.order()[self.skip :])
