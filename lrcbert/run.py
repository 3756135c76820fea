"""One run from configuration to ``metrics.json``: data, models, objective, the engine, evaluation, record.

Three kinds share this path and the engine: ``finetune`` (a teacher on gold labels), ``distill`` (a student
from a fine-tuned teacher) and ``general`` (a student from a pre-trained encoder on a text corpus).
A run folder holds ``.lrcbert-run`` (the marker: made by lrcbert, for which run), ``config.yaml``, ``losses.csv``,
``checkpoints/``, ``model/``, ``predictions/``, ``run.json`` and, written last, ``metrics.json``. Started again on
the same folder, a run of the same identity (lrcbert.identity: configuration, data, teacher, initial student, suite
version) resumes, or does nothing when it finished; any other run moves the old files to ``.superseded/`` first.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import shutil
import signal
import socket
import time
from pathlib import Path

import torch
import yaml
from accelerate.utils import set_seed
from safetensors.torch import save_model

from . import data as D
from . import tracking
from .diagnostics import prediction_spread, stage_summary
from .engine import Trainer
from .evaluation import (
    compute_metrics,
    dev_predictions_file,
    predict,
    to_predictions,
    write_dev_predictions,
    write_submission,
)
from .identity import file_sha256, identity, weights_hash
from .modelcard import write_card
from .models import (
    build_student,
    build_teacher,
    check_labels,
    count_parameters,
    load_classifier,
    load_pretrained,
    load_tokenizer,
    resolve,
)
from .objective import Objective, load_plugins
from .runinfo import atomic_write_json, atomic_write_text, device_name, git_commit, peak_memory_mb, versions
from .tasks import EVAL_SPLITS, TASKS, get_task

KINDS = ("finetune", "distill", "general")
log = logging.getLogger(__name__)


class RunError(RuntimeError):
    pass


class Preempted(RuntimeError):
    """The run was asked to stop (SIGTERM / SIGUSR1 / SIGINT) and saved a checkpoint; run it again to resume."""


LOCK = ".lock"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _holder_error(out: Path, path: Path, note: str) -> RunError:
    """The error for a run folder whose lock ``path`` another process holds (``note``: what the holder wrote)."""
    try:
        holder = json.loads(note)
    except ValueError:
        return RunError(
            f"run folder {out} is in use by another process (lock {path}); wait for it to finish or stop it"
        )
    who = f"PID {holder.get('pid')} on {holder.get('host')} (since {holder.get('since')})"
    if holder.get("host") == socket.gethostname() and not _pid_alive(int(holder.get("pid", -1))):
        return RunError(
            f"run folder {out} is locked by {who}, which is no longer running, yet the lock {path} "
            "is still held (a stale lock of the file system); delete it if no process uses the folder"
        )
    return RunError(f"run folder {out} is in use by {who}; wait for it to finish or stop it")


def check_lock(out: Path) -> None:
    """Stop at once (RunError naming the holder) if another process holds the lock of run folder ``out``; writes
    nothing (an existing lock file is only tried, and released again)."""
    path = out / LOCK
    if int(os.environ.get("RANK", "0")) != 0 or path.is_symlink() or not path.is_file():
        return
    fd = os.open(path, os.O_RDWR)
    try:
        fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        raise _holder_error(out, path, os.read(fd, 4096).decode("utf-8", "replace").strip()) from None
    finally:
        os.close(fd)  # releases the lock just taken


def lock_folder(out: Path) -> int | None:
    """Make this process the one owner of run folder ``out``; returns the lock's file descriptor.

    A POSIX lock (``fcntl.lockf``: NFS and Lustre pass it to the server) on ``out/.lock``, which names the holder
    (host, PID, start). A second process stops at once naming the holder; it never waits. The system drops the
    lock of a process that died, so a note left by a dead holder is reported and taken over. Only the first
    process of a distributed launch (RANK 0) locks: the others follow it."""
    if int(os.environ.get("RANK", "0")) != 0:
        return None
    out.mkdir(parents=True, exist_ok=True)
    path = out / LOCK
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o644)
    note = os.read(fd, 4096).decode("utf-8", "replace").strip()
    try:
        fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        raise _holder_error(out, path, note) from None
    if note:
        log.warning(f"{out}: the previous holder of this run folder ({note}) is gone; taking it over")
    me = {"host": socket.gethostname(), "pid": os.getpid(), "since": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    os.ftruncate(fd, 0)
    os.pwrite(fd, json.dumps(me).encode(), 0)
    os.fsync(fd)
    return fd


def unlock_folder(fd: int | None) -> None:
    """Release the lock of ``lock_folder`` (its note emptied: a clean exit leaves no holder behind)."""
    if fd is not None:
        os.ftruncate(fd, 0)
        os.close(fd)


def _clean_stale(out: Path) -> None:
    """Remove what interrupted atomic writes left in ``out`` (temporary files of a killed process)."""
    for tmp in [*out.glob(".*.tmp"), *(out / "checkpoints").glob(".tmp-*")]:
        if tmp.is_dir():
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            tmp.unlink(missing_ok=True)


# -- the run folder: only its owner writes it, and only into a folder of its own -------------------------------
MARKER = ".lrcbert-run"  # {"kind", "run_id", "identity"}: this folder is a run folder of lrcbert's, and whose
SUPERSEDED = ".superseded"  # the files of replaced runs, one folder per replacement (UTC time)


def read_marker(out: Path) -> dict | None:
    """What made run folder ``out``: its marker, or for a folder of an earlier suite version without one, what its
    files say (a ``config.yaml`` dump with ``config_hash``: a training run; a ``metrics.json`` of kind evaluate);
    None for a folder lrcbert did not make."""
    if (out / MARKER).is_file():
        try:
            return json.loads((out / MARKER).read_text())
        except ValueError:
            return {"kind": "unknown", "run_id": None}
    try:
        if (out / "config.yaml").is_file() and "config_hash" in (
            yaml.safe_load((out / "config.yaml").read_text()) or {}
        ):
            return {"kind": "training of an earlier suite version", "run_id": None}
        if not (out / "config.yaml").exists() and json.loads((out / "metrics.json").read_text())["kind"] == "evaluate":
            return {"kind": "evaluate", "run_id": None}
    except (OSError, ValueError, KeyError, TypeError, AttributeError, yaml.YAMLError):
        pass
    return None


def check_out(out: Path) -> dict | None:
    """Refuse (RunError, one line; nothing written) an ``--out`` that a run must not write: a file, a folder that
    lrcbert did not make, a run folder holding a symbolic link (a run would write through it, outside the folder).
    ``--out`` itself may be a link to a folder: the folder it names is checked. Returns the folder's marker, None
    for a new or empty folder."""
    if out.is_symlink() and not out.exists():
        raise RunError(f"--out {out} is a symbolic link to {os.readlink(out)}, which does not exist")
    if out.exists() and not out.is_dir():
        raise RunError(f"--out {out} is a file; a run folder was expected (a new, empty or earlier run folder)")
    if not out.exists():
        return None
    names = sorted(p.name for p in out.iterdir() if p.name not in (LOCK, SUPERSEDED))
    marker = read_marker(out) if names else None
    if names and marker is None:
        raise RunError(
            f"--out {out} is a folder that lrcbert did not make (it holds {names[0]} and no {MARKER} marker); "
            "a run never writes over files it did not write: choose a new or empty folder"
        )
    for root, dirs, files in os.walk(out):
        if Path(root) == out and SUPERSEDED in dirs and not (out / SUPERSEDED).is_symlink():
            dirs.remove(SUPERSEDED)  # old runs' files: moved there whole, never written
        for name in sorted(dirs + files):
            link = Path(root) / name
            if link.is_symlink():
                raise RunError(
                    f"run folder {out} holds a symbolic link {link} -> {os.readlink(link)}; a run writes only "
                    "files of its own, never through a link: remove the link or choose another --out"
                )
    return marker


def _differences(old: dict | None, new: dict) -> str:
    if not old:
        return "its identity is not recorded (an earlier suite version)"
    what = [k for k in ("config_hash", "teacher", "student_init", "suite", "versions") if old.get(k) != new[k]]
    data = sorted(k for k in {*old.get("data", {}), *new["data"]} if old.get("data", {}).get(k) != new["data"].get(k))
    names = {"config_hash": "configuration", "student_init": "student initialisation", "suite": "suite version"}
    return "it differs in " + ", ".join([names.get(k, k) for k in what] + [f"data {k}" for k in data])


def model_files(model_dir: Path) -> dict:
    """{file name: SHA-256} of every file of a run's saved ``model/`` (what a finished run checks it still holds)."""
    return {p.name: file_sha256(p) for p in sorted(model_dir.iterdir()) if p.is_file()}


def _model_changed(out: Path) -> str | None:
    """Why the ``model/`` of a finished run in ``out`` is no longer the one it saved (None: it is)."""
    try:
        saved = json.loads((out / "run.json").read_text())["model_files"]
    except (OSError, ValueError, KeyError, TypeError):
        return "its run.json records no model files (an earlier suite version)"
    now = model_files(out / "model") if (out / "model").is_dir() else {}
    changed = sorted(k for k in {*saved, *now} if saved.get(k) != now.get(k))
    return f"its model/{changed[0]} is not the file the run saved" if changed else None


def folder_state(out: Path, marker: dict | None, ident: dict) -> tuple[str, str]:
    """What to do with run folder ``out`` for a run of identity ``ident``: ("new", ""), ("done", "") for a
    finished run of this identity, ("resume", "") for an interrupted one, or ("supersede", why) when the folder
    holds another run or a finished run whose metrics.json was removed (a forced rerun). Reads only."""
    if marker is None:
        return "new", ""
    if marker.get("kind") == "evaluate":
        raise RunError(
            f"run folder {out} holds an evaluation (lrcbert evaluate), not a training run; choose another --out"
        )
    if marker.get("run_id") != ident["run_id"]:
        return "supersede", f"it holds a run of another identity ({_differences(marker.get('identity'), ident)})"
    try:
        finished = json.loads((out / "run.json").read_text()).get("status") == "finished"
    except (OSError, ValueError):
        finished = False
    if (out / "metrics.json").is_file():
        try:
            same = json.loads((out / "metrics.json").read_text())["identity"]["run_id"] == ident["run_id"]
        except (OSError, ValueError, KeyError, TypeError):
            same = False
        if finished and same:
            changed = _model_changed(out)
            return ("done", "") if changed is None else ("supersede", changed)
        return "supersede", "its metrics.json is not that of a finished run of this identity"
    if finished:
        return "supersede", "its run finished but its metrics.json was removed (a forced rerun)"
    return "resume", ""


def supersede(out: Path, why: str) -> Path:
    """Move every file of run folder ``out`` (but its lock and earlier superseded runs) to
    ``out/.superseded/<UTC time>/``, with one warning line; returns that folder."""
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    dest = out / SUPERSEDED / stamp
    n = 1
    while dest.exists():
        dest, n = out / SUPERSEDED / f"{stamp}-{n}", n + 1
    dest.mkdir(parents=True)
    for p in sorted(out.iterdir(), key=lambda p: p.name == MARKER):  # the marker last: the folder stays ours
        if p.name not in (LOCK, SUPERSEDED):
            p.rename(dest / p.name)
    log.warning(f"{out}: {why}; its files were moved to {dest}; training starts from step 0")
    return dest


def _prepare_folder(cfg, out: Path, kind: str, ident: dict) -> str:
    """Under the lock: decide again what the folder holds, move another run aside, record this run (marker and
    config). Returns the folder_state."""
    state, why = folder_state(out, check_out(out), ident)
    if state == "done":
        return state
    if state == "supersede":
        supersede(out, why)
    atomic_write_json(out / MARKER, {"kind": kind, "run_id": ident["run_id"], "identity": ident})
    atomic_write_text(
        out / "config.yaml", yaml.safe_dump({"config_hash": cfg.hash(), **cfg.to_dict()}, sort_keys=False)
    )
    _clean_stale(out)
    return state


def evaluate_model(
    cfg, model, tokenizer, train_task: str, out: Path, splits: dict | None = None, spread: dict | None = None
) -> dict:
    """Dev metrics for every evaluation split of ``train_task`` and test-set submission files (``splits``: the
    data sets ``data.validate`` read, or None to read them here)."""
    splits = D.validate(cfg, get_task(train_task), train=False) if splits is None else splits
    collate = D.Collator(tokenizer, cfg.data.max_length, cfg.data.pad_to_max_length)
    results = {}
    for name in EVAL_SPLITS[train_task]:
        task = TASKS[name]
        dev = D.tokenize(splits[(name, "dev")], tokenizer, cfg.data.max_length)
        logits, labels, dev_idx = predict(model, dev, collate, cfg.train.eval_batch_size)
        results[name] = {"split": "dev", "n": len(dev), **compute_metrics(task, to_predictions(task, logits), labels)}
        write_dev_predictions(task, to_predictions(task, logits), labels, dev_idx, out / dev_predictions_file(name))
        if spread is not None:  # run.json's diagnostics: the dev predictions per class against gold
            spread[name] = prediction_spread(task.labels, to_predictions(task, logits), labels)
        if (name, "test") not in splits:
            results[name]["test_predictions"] = "not written: no test file"
            continue
        test = D.tokenize(splits[(name, "test")], tokenizer, cfg.data.max_length)
        logits, _, idx = predict(model, test, collate, cfg.train.eval_batch_size)
        write_submission(task, to_predictions(task, logits), idx, out / "predictions" / task.submission)
        results[name]["test_predictions"] = f"predictions/{task.submission}"
    return results


def run(cfg, out_dir: str | Path, kind: str) -> dict:
    """Train (or resume) and evaluate one run; returns the content of ``metrics.json`` (or a stop status).

    Nothing is written before the whole setup is accepted (configuration, models, data); the run folder and its
    lock are made only then. A folder holding a finished run of the same identity is left as it is; one holding
    an interrupted run of the same identity is resumed; one holding another run, or a finished run whose
    metrics.json was removed, has its files moved to ``.superseded/`` and the run starts from step 0."""
    if kind not in KINDS:
        raise RunError(f"unknown run kind {kind!r}; known: {', '.join(KINDS)}")
    tracking.log_with(cfg.train.report_to)  # a tracker that is not installed stops the run here, before any work
    out = Path(out_dir)
    marker = check_out(out)  # a file, a folder not ours, a link inside: refused before any work
    check_lock(out)  # another process owns the folder: stop at once
    return _run(cfg, out, kind, marker)


def _run(cfg, out: Path, kind: str, marker: dict | None) -> dict:
    start = time.time()
    log.info("%s run, method %s, config hash %s, seed %d: %s", kind, cfg.method.name, cfg.hash(), cfg.train.seed, out)
    load_plugins()  # baseline terms and attention implementations, before any model is built
    set_seed(cfg.train.seed)  # model initialisation (student, W, new heads) is seeded too
    task = None if kind == "general" else get_task(cfg.task)
    tokenizer = load_tokenizer(cfg)
    # models first: a teacher that does not fit the task fails here, before any data work
    teacher = None
    if kind == "finetune":
        student = build_teacher(cfg, task, finetuned=False)
    else:
        teacher = build_teacher(cfg, task, finetuned=(kind == "distill"))
        student = build_student(cfg, task, teacher.config, teacher)
        if task is not None:
            check_labels(student.config, task, f"student {cfg.model.student or '(new)'}")
    student_init = weights_hash(student)  # the student before step 1 (seeded above)
    objective = Objective(
        cfg.method, task, student.config, teacher.config if teacher is not None else None, cfg.data.max_length
    )
    if cfg.method.projection_init == "student":
        try:
            objective.load_projection(Path(resolve(cfg.model.student)) / "objective.safetensors")
        except ValueError as e:
            raise RunError(str(e)) from None
        log.info("W starts from %s/objective.safetensors (method.projection_init=student)", cfg.model.student)
    splits = D.validate(cfg, task)  # every split the run reads, before the first step
    source = D.data_source(cfg, general=task is None)
    train_set = D.tokenize(splits[(task.name if task else "general", "train")], tokenizer, cfg.data.max_length)
    collate = D.Collator(tokenizer, cfg.data.max_length, cfg.data.pad_to_max_length)
    try:  # per-example state of the objective (memories), before a checkpoint may be loaded into it
        objective.bind_data(train_set["idx"], None if task is None else train_set["label"])
    except ValueError as e:
        raise RunError(str(e)) from None
    ident = identity(cfg, task, teacher, student_init)
    state, _ = folder_state(out, marker, ident)  # read only: "done" needs no trainer
    trainer = None
    if state != "done":  # the trainer checks the training set against the batch, before the folder is made
        trainer = Trainer(cfg, out, student, objective, train_set, collate, teacher, run_id=ident["run_id"])
    lock = lock_folder(out)  # everything accepted: the folder and its lock are made now (by RANK 0)
    try:
        if lock is not None:  # the one writer of the folder (the other processes of a launch follow it)
            state = _prepare_folder(cfg, out, kind, ident)
        if state == "done":
            log.info("%s: already finished with this identity (run %s); nothing to do", out, ident["run_id"][:12])
            return json.loads((out / "metrics.json").read_text())
        if trainer is None:  # finished by nobody after all (its files were moved aside meanwhile)
            trainer = Trainer(cfg, out, student, objective, train_set, collate, teacher, run_id=ident["run_id"])
        trainer.accelerator.wait_for_everyone()  # the folder is ready before any process reads a checkpoint
        return _train(cfg, out, kind, trainer, task, tokenizer, splits, source, ident, start)
    finally:
        unlock_folder(lock)


def _train(cfg, out: Path, kind: str, trainer, task, tokenizer, splits, source, ident, start) -> dict:
    status = trainer.fit()
    if status == "preempted":
        raise Preempted(
            f"interrupted by {signal.Signals(trainer.signal).name} at step {trainer.step}/{trainer.total_steps}; "
            f"checkpoint written to {out / 'checkpoints'}; run the same command again to resume"
        )
    if status != "finished":
        return {"status": status, "step": trainer.step}
    student, objective = trainer.trained()
    if not trainer.accelerator.is_main_process:
        return {"status": "finished"}

    model_dir = out / "model"
    student.save_pretrained(model_dir)
    tokenizer.save_pretrained(model_dir)
    if any(True for _ in objective.parameters()):
        save_model(objective, str(model_dir / "objective.safetensors"))
    spread = {}
    metrics = {} if task is None else evaluate_model(cfg, student, tokenizer, task.train_task, out, splits, spread)
    write_card(model_dir, cfg, kind, metrics)  # README.md: the Hugging Face model card
    tracking.finish(trainer.accelerator, metrics, trainer.step)  # dev metrics to train.report_to's tracker
    device = trainer.accelerator.device
    record = {
        "kind": kind,
        "task": cfg.task if task else "general",
        "data_source": source,
        "method": cfg.method.name,
        "config_hash": cfg.hash(),
        "seed": cfg.train.seed,
        "steps": trainer.step,
        "bad_steps_skipped": trainer.bad_steps,
        "train_time_s": round(trainer.train_seconds, 2),
        "train_cpu_s": round(trainer.train_cpu_seconds, 2),
        "params": count_parameters(student),
        "params_without_embeddings": count_parameters(student, False),
        "wall_time_s": round(time.time() - start, 2),
        "peak_memory_mb": round(peak_memory_mb(device), 1),
        "device": device_name(device),
        "processes": trainer.accelerator.num_processes,
        "teacher_cache": trainer.cache_choice,
        "divergence": trainer.divergence,  # the rule and each stage's reference loss (train.divergence_factor)
        "overlap": D.overlap_report(splits),  # the share of each dev / test split that the training split holds
        "diagnostics": {  # what the run did: dev predictions per class, lr and losses per stage
            "dev_predictions": spread,
            "stages": stage_summary(out / "losses.csv", trainer.total_steps, cfg.method.stage_split),
        },
        "git_commit": git_commit(),
        "versions": versions(),
        "identity": ident,
        "model_hash": weights_hash(student),
        "model_files": model_files(model_dir),
        "status": "finished",
    }
    atomic_write_json(out / "run.json", record)
    result = {
        "task": record["task"],
        "kind": kind,
        "data_source": source,
        "config_hash": cfg.hash(),
        "seed": cfg.train.seed,
        "identity": ident,
        "model_hash": record["model_hash"],
        "splits": metrics,
    }
    atomic_write_json(out / "metrics.json", result)  # last: its presence means the run is whole
    return result


def _evaluation_folder(out: Path) -> None:
    """Refuse an ``lrcbert evaluate --out`` that is not new, empty or an earlier evaluation's folder."""
    marker = check_out(out)
    if marker is not None and marker.get("kind") != "evaluate":
        raise RunError(
            f"run folder {out} holds a training run ({marker.get('kind')}); lrcbert evaluate writes a folder of its "
            "own: choose another --out"
        )


def evaluate_checkpoint(cfg, model_path: str, out_dir: str | Path) -> dict:
    """Evaluate a saved classifier (``save_pretrained`` folder or hub id) on ``cfg.task`` into a folder of its own:
    a new or empty folder, or an earlier evaluation's, never a training run's (nor one another process holds)."""
    from transformers import AutoTokenizer

    out = Path(out_dir)
    _evaluation_folder(out)
    check_lock(out)
    task = get_task(cfg.task)
    model = load_classifier(model_path, task, "--model")
    tokenizer = load_pretrained(
        AutoTokenizer, cfg.model.tokenizer or model_path, "model.tokenizer" if cfg.model.tokenizer else "--model"
    )
    splits = D.validate(cfg, task, train=False)
    model_hash = weights_hash(model)
    ident = identity(cfg, task, None, model_hash, train=False)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    lock = lock_folder(out)
    try:
        _evaluation_folder(out)  # again, as the owner
        atomic_write_json(out / MARKER, {"kind": "evaluate", "run_id": ident["run_id"], "identity": ident})
        _clean_stale(out)
        metrics = evaluate_model(cfg, model.to(device), tokenizer, task.train_task, out, splits)
        result = {
            "task": cfg.task,
            "kind": "evaluate",
            "model": model_path,
            "data_source": D.data_source(cfg),
            "identity": ident,
            "model_hash": model_hash,
            "splits": metrics,
        }
        atomic_write_json(out / "metrics.json", result)
    finally:
        unlock_folder(lock)
    return result
