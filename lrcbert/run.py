"""One run from configuration to ``metrics.json``: data, models, objective, the engine, evaluation, record.

Three kinds share this path and the engine: ``finetune`` (a teacher on gold labels), ``distill`` (a student
from a fine-tuned teacher) and ``general`` (a student from a pre-trained encoder on a text corpus).
A run folder holds ``config.yaml``, ``losses.csv``, ``checkpoints/``, ``model/``, ``predictions/``,
``run.json`` and, written last, ``metrics.json``; started again on the same folder, a run resumes.
"""
from __future__ import annotations

import json
import time
from pathlib import Path

import torch
import yaml
from accelerate.utils import set_seed
from safetensors.torch import save_model

from . import data as D
from .engine import Trainer
from .evaluation import (compute_metrics, dev_predictions_file, predict, to_predictions, write_dev_predictions,
                         write_submission)
from .models import build_student, build_teacher, check_labels, count_parameters, load_tokenizer, resolve
from .objective import Objective, load_plugins
from .runinfo import atomic_write_json, atomic_write_text, device_name, git_commit, peak_memory_mb, versions
from .tasks import EVAL_SPLITS, TASKS, get_task

KINDS = ("finetune", "distill", "general")


class RunError(RuntimeError):
    pass


class Preempted(RuntimeError):
    """The run was asked to stop (SIGTERM / SIGUSR1) and saved a checkpoint; run it again to resume."""


def _prepare_folder(cfg, out: Path) -> bool:
    """Record the config in ``out``; True if the run there already finished with this very config."""
    out.mkdir(parents=True, exist_ok=True)
    cfg_file = out / "config.yaml"
    if cfg_file.is_file():
        old = yaml.safe_load(cfg_file.read_text()) or {}
        if old.get("config_hash") != cfg.hash():
            if (out / "checkpoints").exists() or (out / "metrics.json").exists():
                raise RunError(f"run folder {out} holds a run of another configuration "
                               f"(hash {old.get('config_hash')} vs {cfg.hash()}); use another folder or delete it")
        elif (out / "metrics.json").is_file():
            return True
    atomic_write_text(cfg_file, yaml.safe_dump({"config_hash": cfg.hash(), **cfg.to_dict()}, sort_keys=False))
    return False


def evaluate_model(cfg, model, tokenizer, train_task: str, out: Path) -> dict:
    """Dev metrics for every evaluation split of ``train_task`` and test-set submission files."""
    collate = D.Collator(tokenizer, cfg.data.max_length, cfg.data.pad_to_max_length)
    results = {}
    for name in EVAL_SPLITS[train_task]:
        task = TASKS[name]
        dev = D.tokenize(D.load_split(cfg, task, "dev"), tokenizer, cfg.data.max_length)
        logits, labels, dev_idx = predict(model, dev, collate, cfg.train.eval_batch_size)
        results[name] = {"split": "dev", "n": len(dev), **compute_metrics(task, to_predictions(task, logits), labels)}
        write_dev_predictions(task, to_predictions(task, logits), labels, dev_idx, out / dev_predictions_file(name))
        try:
            test = D.load_split(cfg, task, "test")
        except D.DataError as e:
            results[name]["test_predictions"] = f"not written: {e}"
            continue
        test = D.tokenize(test, tokenizer, cfg.data.max_length)
        logits, _, idx = predict(model, test, collate, cfg.train.eval_batch_size)
        write_submission(task, to_predictions(task, logits), idx, out / "predictions" / task.submission)
        results[name]["test_predictions"] = f"predictions/{task.submission}"
    return results


def run(cfg, out_dir: str | Path, kind: str) -> dict:
    """Train (or resume) and evaluate one run; returns the content of ``metrics.json`` (or a stop status)."""
    if kind not in KINDS:
        raise RunError(f"unknown run kind {kind!r}; known: {', '.join(KINDS)}")
    out = Path(out_dir)
    if _prepare_folder(cfg, out):
        print(f"{out}: already finished with this configuration; nothing to do")
        return json.loads((out / "metrics.json").read_text())
    start = time.time()
    load_plugins()                  # baseline terms and attention implementations, before any model is built
    set_seed(cfg.train.seed)        # model initialisation (student, W, new heads) is seeded too
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
    objective = Objective(cfg.method, task, student.config, teacher.config if teacher is not None else None)
    if cfg.method.projection_init == "student":
        try:
            objective.load_projection(Path(resolve(cfg.model.student)) / "objective.safetensors")
        except ValueError as e:
            raise RunError(str(e)) from None
        print(f"W starts from {cfg.model.student}/objective.safetensors (method.projection_init=student)")
    train_raw = D.load_corpus(cfg) if task is None else D.load_split(cfg, task, "train")
    train_set = D.tokenize(train_raw, tokenizer, cfg.data.max_length)
    collate = D.Collator(tokenizer, cfg.data.max_length, cfg.data.pad_to_max_length)

    trainer = Trainer(cfg, out, student, objective, train_set, collate, teacher)
    status = trainer.fit()
    if status == "preempted":
        raise Preempted(f"interrupted by signal {trainer.signal} at step {trainer.step}/{trainer.total_steps}; "
                        f"checkpoint written to {out / 'checkpoints'}; run the same command again to resume")
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
    metrics = {} if task is None else evaluate_model(cfg, student, tokenizer, task.train_task, out)
    device = trainer.accelerator.device
    record = {"kind": kind, "task": cfg.task if task else "general", "method": cfg.method.name,
              "config_hash": cfg.hash(), "seed": cfg.train.seed, "steps": trainer.step,
              "bad_steps_skipped": trainer.bad_steps,
              "params": count_parameters(student), "params_without_embeddings": count_parameters(student, False),
              "wall_time_s": round(time.time() - start, 2), "peak_memory_mb": round(peak_memory_mb(device), 1),
              "device": device_name(device), "processes": trainer.accelerator.num_processes, "teacher_cache": trainer.cache_choice,
              "git_commit": git_commit(), "versions": versions(), "status": "finished"}
    atomic_write_json(out / "run.json", record)
    result = {"task": record["task"], "kind": kind, "config_hash": cfg.hash(), "seed": cfg.train.seed,
              "splits": metrics}
    atomic_write_json(out / "metrics.json", result)     # last: its presence means the run is whole
    return result


def evaluate_checkpoint(cfg, model_path: str, out_dir: str | Path) -> dict:
    """Evaluate a saved classifier (``save_pretrained`` folder or hub id) on ``cfg.task``."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer
    task = get_task(cfg.task)
    model = AutoModelForSequenceClassification.from_pretrained(resolve(model_path))
    check_labels(model.config, task, f"model {model_path}")
    tokenizer = AutoTokenizer.from_pretrained(resolve(cfg.model.tokenizer or model_path))
    out = Path(out_dir)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    metrics = evaluate_model(cfg, model.to(device), tokenizer, task.train_task, out)
    result = {"task": cfg.task, "kind": "evaluate", "model": model_path, "splits": metrics}
    atomic_write_json(out / "metrics.json", result)
    return result
