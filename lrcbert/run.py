"""One run from configuration to ``metrics.json``: data, models, objective, the engine, evaluation, record.

Three kinds share this path and the engine: ``finetune`` (a teacher on gold labels), ``distill`` (a student
from a fine-tuned teacher) and ``general`` (a student from a pre-trained encoder on a text corpus).
A run folder holds ``config.yaml``, ``losses.csv``, ``checkpoints/``, ``model/``, ``predictions/``,
``run.json`` and, written last, ``metrics.json``; started again on the same folder, a run resumes.
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
from .engine import Trainer
from .evaluation import (
    compute_metrics,
    dev_predictions_file,
    predict,
    to_predictions,
    write_dev_predictions,
    write_submission,
)
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
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    note = os.read(fd, 4096).decode("utf-8", "replace").strip()
    try:
        fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        try:
            holder = json.loads(note)
        except ValueError:
            raise RunError(
                f"run folder {out} is in use by another process (lock {path}); wait for it to finish or stop it"
            ) from None
        who = f"PID {holder.get('pid')} on {holder.get('host')} (since {holder.get('since')})"
        if holder.get("host") == socket.gethostname() and not _pid_alive(int(holder.get("pid", -1))):
            raise RunError(
                f"run folder {out} is locked by {who}, which is no longer running, yet the lock {path} "
                "is still held (a stale lock of the file system); delete it if no process uses the folder"
            ) from None
        raise RunError(f"run folder {out} is in use by {who}; wait for it to finish or stop it") from None
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


def _prepare_folder(cfg, out: Path) -> bool:
    """Record the config in ``out``; True if the run there already finished with this very config."""
    out.mkdir(parents=True, exist_ok=True)
    cfg_file = out / "config.yaml"
    if cfg_file.is_file():
        old = yaml.safe_load(cfg_file.read_text()) or {}
        if old.get("config_hash") != cfg.hash():
            if (out / "checkpoints").exists() or (out / "metrics.json").exists():
                raise RunError(
                    f"run folder {out} holds a run of another configuration "
                    f"(hash {old.get('config_hash')} vs {cfg.hash()}); use another folder or delete it"
                )
        elif (out / "metrics.json").is_file():
            return True
    if int(os.environ.get("RANK", "0")) == 0:  # one writer per folder (the others of a launch only read)
        atomic_write_text(cfg_file, yaml.safe_dump({"config_hash": cfg.hash(), **cfg.to_dict()}, sort_keys=False))
    return False


def evaluate_model(cfg, model, tokenizer, train_task: str, out: Path, splits: dict | None = None) -> dict:
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
        if (name, "test") not in splits:
            results[name]["test_predictions"] = "not written: no test file"
            continue
        test = D.tokenize(splits[(name, "test")], tokenizer, cfg.data.max_length)
        logits, _, idx = predict(model, test, collate, cfg.train.eval_batch_size)
        write_submission(task, to_predictions(task, logits), idx, out / "predictions" / task.submission)
        results[name]["test_predictions"] = f"predictions/{task.submission}"
    return results


def run(cfg, out_dir: str | Path, kind: str) -> dict:
    """Train (or resume) and evaluate one run; returns the content of ``metrics.json`` (or a stop status)."""
    if kind not in KINDS:
        raise RunError(f"unknown run kind {kind!r}; known: {', '.join(KINDS)}")
    tracking.log_with(cfg.train.report_to)  # a tracker that is not installed stops the run here, before any work
    out = Path(out_dir)
    lock = lock_folder(out)
    try:  # Ctrl-C during training is a preemption (Trainer.fit); elsewhere the CLI reports it (exit 130)
        return _run(cfg, out, kind)
    finally:
        unlock_folder(lock)


def _run(cfg, out: Path, kind: str) -> dict:
    if _prepare_folder(cfg, out):
        log.info("%s: already finished with this configuration; nothing to do", out)
        return json.loads((out / "metrics.json").read_text())
    if int(os.environ.get("RANK", "0")) == 0:  # the other processes' writes must not be taken for stale ones
        _clean_stale(out)
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

    trainer = Trainer(cfg, out, student, objective, train_set, collate, teacher)
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
    metrics = {} if task is None else evaluate_model(cfg, student, tokenizer, task.train_task, out, splits)
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
        "git_commit": git_commit(),
        "versions": versions(),
        "status": "finished",
    }
    atomic_write_json(out / "run.json", record)
    result = {
        "task": record["task"],
        "kind": kind,
        "data_source": source,
        "config_hash": cfg.hash(),
        "seed": cfg.train.seed,
        "splits": metrics,
    }
    atomic_write_json(out / "metrics.json", result)  # last: its presence means the run is whole
    return result


def evaluate_checkpoint(cfg, model_path: str, out_dir: str | Path) -> dict:
    """Evaluate a saved classifier (``save_pretrained`` folder or hub id) on ``cfg.task``."""
    from transformers import AutoTokenizer

    task = get_task(cfg.task)
    model = load_classifier(model_path, task, "--model")
    tokenizer = load_pretrained(
        AutoTokenizer, cfg.model.tokenizer or model_path, "model.tokenizer" if cfg.model.tokenizer else "--model"
    )
    out = Path(out_dir)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    metrics = evaluate_model(cfg, model.to(device), tokenizer, task.train_task, out)
    result = {
        "task": cfg.task,
        "kind": "evaluate",
        "model": model_path,
        "data_source": D.data_source(cfg),
        "splits": metrics,
    }
    atomic_write_json(out / "metrics.json", result)
    return result
