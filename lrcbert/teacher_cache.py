"""Teacher outputs computed once per run and reused every epoch (memory-mapped files, hidden states in fp16).

Distillation calls the teacher on every step although its outputs for an example never change: the teacher
runs in eval mode (no dropout) and gradient perturbation only perturbs the student. ``TeacherCache`` runs the
teacher once over the training set, in order, and stores what the objective reads:

  layer_{j}.f16   the hidden states of teacher layer j (each mapped layer phi(i)) at the example's real tokens,
                  ragged: example k's rows are ``offsets[k]:offsets[k+1]`` (no padding stored);
  logits.f32      the logits (N, num_labels);
  meta.json       what was stored, written last (its presence means the cache is whole).

``lookup(batch)`` rebuilds, for the batch's example indices (``batch["idx"]``), an object with ``logits`` and
``hidden_states`` like the teacher's own output, zero at padding positions; the layer loss masks padding, so
the losses equal the uncached run's up to fp16 rounding of the hidden states.

``decide(cfg, ...)`` chooses per run from a size estimate (``train.teacher_cache``: auto | on | off).

With ``train.teacher_cache_dir`` the cache is shared: every teacher layer is stored, in ``<dir>/<key>`` where the key
hashes what the cache is a function of (the teacher's weights, the tokenized training set in order, the precision
and device it ran at, the layers), so every run of one teacher on one training set reads the one cache, built once
(under a file lock, into a temporary folder renamed into place), and a cache of other inputs is never read.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import torch

from .config import ConfigError

# terms whose teacher inputs the cache holds; a method weighting any other teacher term runs uncached
CACHEABLE_TERMS = {"layer", "soft", "hard"}
INPUTS = ("input_ids", "attention_mask", "token_type_ids")


class CacheError(OSError):
    """The cache cannot be written (message names the path and the sizes)."""


def estimate_bytes(n_tokens: int, n_examples: int, hidden_size: int, layers: list[int], num_labels: int) -> int:
    """Bytes of a cache: fp16 hidden states of every real token for each stored layer, fp32 logits."""
    return 2 * n_tokens * hidden_size * len(layers) + 4 * n_examples * max(num_labels, 1) + 8 * (n_examples + 1)


def teacher_terms(method) -> set[str]:
    from .objective import TERMS

    return {
        t
        for stage in ("stage1", "stage2")
        for t, w in getattr(method, stage).items()
        if w and TERMS.get(t, (None, False))[1]
    }


def decide(cfg, train_lengths: list[int], teacher_config, layers: list[int], num_labels: int) -> dict:
    """Whether this run caches the teacher, and why: {"use", "reason", "estimate_bytes"} (recorded in run.json)."""
    mode = cfg.train.teacher_cache
    est = estimate_bytes(sum(train_lengths), len(train_lengths), teacher_config.hidden_size, layers, num_labels)
    other = sorted(teacher_terms(cfg.method) - CACHEABLE_TERMS)
    if mode == "off":
        return {"use": False, "reason": "train.teacher_cache is off", "estimate_bytes": est}
    if other:
        if mode == "on":
            raise ConfigError(
                f"config key 'train.teacher_cache' is 'on' but term(s) {other} need teacher outputs "
                "the cache does not hold"
            )
        return {"use": False, "reason": f"term(s) {other} need uncached teacher outputs", "estimate_bytes": est}
    if mode == "on":
        return {"use": True, "reason": "train.teacher_cache is on", "estimate_bytes": est}
    limit = cfg.train.teacher_cache_max_bytes
    if est <= limit:
        return {
            "use": True,
            "reason": f"estimate {est} B <= train.teacher_cache_max_bytes {limit}",
            "estimate_bytes": est,
        }
    return {"use": False, "reason": f"estimate {est} B > train.teacher_cache_max_bytes {limit}", "estimate_bytes": est}


def check_space(path: Path, needed: int) -> None:
    """Fail early, in one line, when the file system holding ``path`` has less than ``needed`` bytes free."""
    path.mkdir(parents=True, exist_ok=True)
    free = shutil.disk_usage(path).free
    if free < needed:
        raise CacheError(
            f"teacher cache {path}: needs {needed} bytes but only {free} bytes are free "
            "(free space, or set train.teacher_cache=off)"
        )


class TeacherCache:
    """Teacher hidden states (layers ``layers``) and logits of a whole data set, memory-mapped from ``path``."""

    def __init__(self, path: Path):
        self.path = Path(path)
        meta = json.loads((self.path / "meta.json").read_text())
        self.meta = meta
        self.layers = meta["layers"]
        self.offsets = np.load(self.path / "offsets.npy")
        self.position = {int(i): k for k, i in enumerate(np.load(self.path / "idx.npy").tolist())}
        n_tok, d = int(self.offsets[-1]), meta["hidden_size"]
        self.hidden = {
            j: np.memmap(self.path / f"layer_{j}.f16", np.float16, "r", shape=(n_tok, d)) for j in self.layers
        }
        self.logits = np.memmap(
            self.path / "logits.f32", np.float32, "r", shape=(len(self.offsets) - 1, meta["num_labels"])
        )

    @staticmethod
    def is_complete(path: Path, key: str) -> bool:
        meta = Path(path) / "meta.json"
        return meta.is_file() and json.loads(meta.read_text()).get("key") == key

    @classmethod
    @torch.no_grad()
    def build(
        cls, path: Path, key: str, teacher, dataset, collate, layers: list[int], batch_size: int, device, autocast=None
    ) -> TeacherCache:
        """Run ``teacher`` once over ``dataset`` (in order) and write the cache to ``path``."""
        path = Path(path)
        lengths = [len(x) for x in dataset["input_ids"]]
        idx = np.asarray(dataset["idx"], dtype=np.int64)
        if len(set(idx.tolist())) != len(idx):
            raise ValueError("teacher cache: the training set's 'idx' column is not unique")
        cfg = teacher.config
        num_labels = getattr(cfg, "num_labels", 1)
        check_space(path, estimate_bytes(sum(lengths), len(lengths), cfg.hidden_size, layers, num_labels))
        (path / "meta.json").unlink(missing_ok=True)
        offsets = np.zeros(len(lengths) + 1, dtype=np.int64)
        offsets[1:] = np.cumsum(lengths)
        n_tok = int(offsets[-1])
        hidden = {
            j: np.memmap(path / f"layer_{j}.f16", np.float16, "w+", shape=(max(n_tok, 1), cfg.hidden_size))
            for j in layers
        }
        logits = np.memmap(path / "logits.f32", np.float32, "w+", shape=(len(lengths), num_labels))
        teacher.eval()
        loader = torch.utils.data.DataLoader(dataset, batch_size=batch_size, shuffle=False, collate_fn=collate)
        k = 0
        for batch in loader:
            inputs = {n: batch[n].to(device) for n in INPUTS if n in batch}
            with autocast() if autocast else torch.autocast(device.type, enabled=False):
                out = teacher(**inputs, output_hidden_states=bool(layers))
            b = inputs["input_ids"].shape[0]
            if hasattr(out, "logits"):
                logits[k : k + b] = out.logits.float().cpu().numpy()
            for j in layers:
                h = out.hidden_states[j].to(torch.float16).cpu().numpy()
                for r in range(b):
                    hidden[j][offsets[k + r] : offsets[k + r + 1]] = h[r, : lengths[k + r]]
            k += b
        for m in (*hidden.values(), logits):
            m.flush()
        np.save(path / "offsets.npy", offsets)
        np.save(path / "idx.npy", idx)
        meta = {
            "key": key,
            "layers": list(layers),
            "hidden_size": cfg.hidden_size,
            "num_labels": num_labels,
            "examples": len(lengths),
            "tokens": n_tok,
        }
        tmp = path / "meta.json.tmp"
        tmp.write_text(json.dumps(meta))
        tmp.replace(path / "meta.json")
        return cls(path)

    def lookup(self, batch, device) -> SimpleNamespace:
        """Teacher outputs for the batch's examples, shaped as the batch (padding positions zero)."""
        rows = [self.position[int(i)] for i in batch["idx"].tolist()]
        mask = batch["attention_mask"]
        b, l = mask.shape
        hidden = [None] * (max(self.layers, default=0) + 1)
        for j in self.layers:
            h = np.zeros((b, l, self.meta["hidden_size"]), dtype=np.float16)
            for r, k in enumerate(rows):
                n = int(self.offsets[k + 1] - self.offsets[k])
                h[r, :n] = self.hidden[j][self.offsets[k] : self.offsets[k + 1]]
            hidden[j] = torch.from_numpy(h).to(device)
        logits = torch.from_numpy(np.ascontiguousarray(self.logits[rows])).to(device)
        return SimpleNamespace(logits=logits, hidden_states=hidden)


def shared_key(teacher_hash: str, dataset, layers: list[int], precision: str, device_type: str) -> str:
    """The content address of a shared cache: SHA-256 over the teacher's weights hash, the training set's tokens,
    token types and example ids in order (so the data, the tokenizer, data.max_length and any subset), the layers,
    the precision and the device type the teacher runs at, and the cache's format."""
    h = hashlib.sha256(json.dumps([teacher_hash, sorted(layers), precision, device_type, "v1"]).encode())
    for name in ("idx", *INPUTS):
        if name in dataset.column_names and name != "attention_mask":
            for row in dataset[name]:
                h.update(np.asarray(row, dtype=np.int64).tobytes())
                h.update(b"|")
    return h.hexdigest()


def open_shared(root: Path, key: str, build) -> TeacherCache:
    """The shared cache ``root/key``: opened when whole, else built by ``build(path)`` into a temporary folder
    renamed into place, under a lock, so that concurrent runs build it once and never read half a cache."""
    from filelock import FileLock

    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    final = root / key
    with FileLock(str(root / f".{key}.lock")):
        if not TeacherCache.is_complete(final, key):
            tmp = root / f".tmp-{key}-{os.getpid()}"
            shutil.rmtree(tmp, ignore_errors=True)
            try:
                build(tmp)
                shutil.rmtree(final, ignore_errors=True)
                tmp.rename(final)
            finally:
                shutil.rmtree(tmp, ignore_errors=True)
    return TeacherCache(final)
