"""A run's identity: everything that determines its result, hashed into one ``run_id``.

``identity()`` gives {"run_id", "config_hash", "data", "teacher", "student_init", "suite", "versions"}: the
configuration's hash, the SHA-256 of every data file the run reads (the ``datasets`` fingerprint, prefixed
``hub:``, for hub data), the weights hash of the teacher as loaded and of the student before step 1, the suite's
commit (and whether its tracked files were edited) and the torch / transformers versions. ``run_id`` is the
SHA-256 of the canonical JSON of the other fields. A finished run's ``run.json`` and ``metrics.json`` carry it,
its checkpoints carry the ``run_id``, and a run folder is resumed or reported only by a run of the same identity.
"""

from __future__ import annotations

import hashlib
import json
import os
from importlib import metadata
from pathlib import Path

import torch

from .runinfo import git_commit

CHUNK = 1 << 20
_file_hashes: dict = {}  # (real path, size, mtime_ns) -> hex digest, for this process


def file_sha256(path: str | Path) -> str:
    """SHA-256 of a file's bytes, read in 1 MiB chunks; memoised per process by (path, size, mtime_ns)."""
    real = os.path.realpath(path)
    st = os.stat(real)
    key = (real, st.st_size, st.st_mtime_ns)
    if key not in _file_hashes:
        h = hashlib.sha256()
        with open(real, "rb") as f:
            for chunk in iter(lambda: f.read(CHUNK), b""):
                h.update(chunk)
        _file_hashes[key] = h.hexdigest()
    return _file_hashes[key]


def weights_hash(module: torch.nn.Module) -> str:
    """SHA-256 over a module's state_dict in sorted key order: each entry's name, dtype, shape and bytes."""
    h = hashlib.sha256()
    for name, tensor in sorted(module.state_dict().items()):
        t = tensor.detach().cpu().contiguous()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def _hub_fingerprint(hub_id: str, config: str | None, split: str) -> str:
    import datasets

    args = (config,) if config else ()
    return "hub:" + datasets.load_dataset(hub_id, *args, split=split)._fingerprint


def data_hashes(cfg, task, train: bool = True) -> dict:
    """{"<task>/<split>": hash} of every data file the run reads (``task`` None: the general corpus); the same
    files ``data.validate`` reads (``train``: the training split too), test files only where they exist (hub
    data: the dataset's fingerprint)."""
    from . import data as D
    from .tasks import EVAL_SPLITS, TASKS

    d = cfg.data
    if task is None:
        spec = d.corpus or str(D.data_root(cfg) / "corpus.txt")
        if spec.startswith("hub:"):
            parts = spec[4:].split(":")
            return {"general/train": _hub_fingerprint(parts[0], (parts[1:2] or [None])[0], "train")}
        return {"general/train": file_sha256(spec)}
    wanted = [(task, "train")] if train else []
    for name in EVAL_SPLITS[task.train_task]:
        wanted += [(TASKS[name], "dev"), (TASKS[name], "test")]
    out = {}
    for t, split in wanted:
        if split == "train" and d.train_file:
            out[f"{t.name}/{split}"] = file_sha256(d.train_file)
        elif d.source == "hub":
            out[f"{t.name}/{split}"] = _hub_fingerprint(d.hub_id, t.hub_config, t.hub_split[split])
        else:
            path = D.data_root(cfg) / t.folder / t.files[split]
            if split != "test" or path.is_file():
                out[f"{t.name}/{split}"] = file_sha256(path)
    return out


def suite_version() -> dict:
    """{"commit": the suite's git commit or None, "dirty": whether tracked files differ from it}."""
    commit = git_commit()
    if commit is None:
        return {"commit": None, "dirty": False}
    return {"commit": commit.removesuffix("-dirty"), "dirty": commit.endswith("-dirty")}


def _version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def run_id(fields: dict) -> str:
    """SHA-256 of the canonical JSON (sorted keys, no spaces) of an identity's fields other than ``run_id``."""
    rest = {k: v for k, v in fields.items() if k != "run_id"}
    return hashlib.sha256(json.dumps(rest, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def identity(cfg, task, teacher: torch.nn.Module | None, student_init: str, train: bool = True) -> dict:
    """The identity of a run of ``cfg`` on ``task`` (None: general distillation) with ``teacher`` as loaded (None
    when fine-tuning) and ``student_init`` the weights hash of the student before step 1 (of the model evaluated,
    for ``lrcbert evaluate``, which reads no training split: ``train=False``)."""
    fields = {
        "config_hash": cfg.hash(),
        "data": data_hashes(cfg, task, train),
        "teacher": None if teacher is None else weights_hash(teacher),
        "student_init": student_init,
        "suite": suite_version(),
        "versions": {"torch": _version("torch"), "transformers": _version("transformers")},
    }
    return {"run_id": run_id(fields), **fields}
