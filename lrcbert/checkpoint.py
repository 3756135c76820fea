"""Training checkpoints: written atomically, verified by checksum, loaded without unpickling code.

A checkpoint is a folder ``step-00000100`` holding the student and objective weights (safetensors), the
optimiser, scheduler and RNG states (``trainer.pt``, plain tensors and numbers, read with
``weights_only=True``) and ``state.json`` (the step, and the ``run_id`` of the run that wrote it: a checkpoint
resumes only a run of the same identity); ``manifest.json`` lists each file's SHA-256 and is written last.
It is assembled in a temporary folder and renamed into place, so a crash leaves no half checkpoint.
"""

from __future__ import annotations

import hashlib
import json
import random
import shutil
import warnings
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_model, save_model

from .runinfo import atomic_write_json


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def rng_state() -> dict:
    np_state = np.random.get_state()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "numpy": [np_state[0], torch.from_numpy(np_state[1].astype(np.int64)), *np_state[2:]],
        "python": random.getstate(),
    }


def set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    name, keys, *rest = state["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), *rest))
    py = state["python"]
    random.setstate((py[0], tuple(py[1]), py[2]))


class CheckpointError(OSError):
    """A checkpoint could not be written (disk full, quota...); nothing of it is left behind."""


class ForeignCheckpoint(OSError):
    """A checkpoint of another run (another identity) than the one it would resume."""


def run_of(path: Path) -> str | None:
    """The ``run_id`` (lrcbert.identity) of the run that wrote checkpoint ``path``; None if it does not say."""
    try:
        return json.loads((path / "state.json").read_text()).get("run_id")
    except (OSError, ValueError):
        return None


def save(folder: Path, step: int, modules: dict, trainer_state: dict, state: dict, keep: int) -> Path:
    """Write checkpoint ``step`` under ``folder`` and keep only the newest ``keep`` ones. A failed write
    removes its temporary folder and raises CheckpointError (one line); older checkpoints stay."""
    final = folder / f"step-{step:08d}"
    tmp = folder / f".tmp-step-{step:08d}"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir()
        for name, module in modules.items():
            save_model(module, str(tmp / f"{name}.safetensors"))
        torch.save(trainer_state, tmp / "trainer.pt")
        atomic_write_json(tmp / "state.json", {**state, "step": step})
        files = sorted(p.name for p in tmp.iterdir())
        atomic_write_json(tmp / "manifest.json", {name: _sha256(tmp / name) for name in files})
    except (OSError, RuntimeError) as e:  # torch.save reports a failed write as a RuntimeError
        shutil.rmtree(tmp, ignore_errors=True)
        if not isinstance(e, OSError) and "writ" not in str(e):
            raise
        reason = e.strerror if isinstance(e, OSError) and e.strerror else str(e).splitlines()[0]
        raise CheckpointError(
            f"checkpoint {final} not written: {reason}; nothing of it was kept; free space "
            "and run the same command again (it resumes from the last whole checkpoint)"
        ) from None
    shutil.rmtree(final, ignore_errors=True)
    tmp.rename(final)
    for old in sorted(folder.glob("step-*"))[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def verify(path: Path) -> str | None:
    """None if the checkpoint at ``path`` is whole, else what is wrong with it."""
    manifest = path / "manifest.json"
    if not manifest.is_file():
        return "manifest.json missing"
    try:
        expected = json.loads(manifest.read_text())
    except json.JSONDecodeError:
        return "manifest.json unreadable"
    for name, digest in expected.items():
        f = path / name
        if not f.is_file():
            return f"{name} missing"
        if _sha256(f) != digest:
            return f"{name} fails its checksum"
    return None


def latest(folder: Path) -> Path | None:
    """The newest whole checkpoint in ``folder``; broken ones are reported and skipped."""
    for path in sorted(folder.glob("step-*"), reverse=True):
        problem = verify(path)
        if problem is None:
            return path
        warnings.warn(f"checkpoint {path} is unusable ({problem}); trying the previous one", stacklevel=2)
    return None


def load(path: Path, modules: dict) -> tuple[dict, dict]:
    """Load weights into ``modules`` and return (trainer_state, state)."""
    for name, module in modules.items():
        load_model(module, str(path / f"{name}.safetensors"))
    trainer_state = torch.load(path / "trainer.pt", weights_only=True)
    state = json.loads((path / "state.json").read_text())
    return trainer_state, state
