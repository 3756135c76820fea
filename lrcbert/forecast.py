"""``lrcbert forecast``: what a configured grid will cost on this device, before it runs.

The workflow writes the plan (``results/plan.json``, rule ``plan``): every training job with the lrcbert command
its rule runs, and the workflow's data and corpus descriptions. For each job this module derives the run's
configuration exactly as the command would (``assemble.command_config``), its training-set size by the cost model
the workflow's resources use too (``lrcbert.costs``: the sizes generated data will have, a TSV file's rows, GLUE's
published sizes for hub data; ``(1 + n_aug)`` x the task's for an augmented set not yet written) and so its
optimisation steps, by the engine's own rule (``costs.total_steps``). Every job is sized before the first timing, so
a bad plan fails in seconds. Then, once per
distinct architecture (method, teacher and student shapes, batch size, sequence length), it times a few
real ``Trainer.train_step`` calls on random-weight models of those shapes, plus the fixed parts of a run (building
models, tokenising, checkpoints, dev and test evaluation), and multiplies. Weights do not change the time, so
nothing has to be downloaded or trained first.

Device-hours are summed per stage (teacher, general, intermediate, distill, sweep), per result (Table 1, 3, ...)
and in total. Python start-up and imports (a few seconds per job) and the augmentation stage (no training steps)
are not counted. Where finished runs exist, their step counts and wall times are set beside the forecast.
"""

from __future__ import annotations

import functools
import json
import math
import statistics
import tempfile
import time
from pathlib import Path

from . import costs

TIMED_STEPS = 3  # at least this many timed steps per architecture ...
TIMED_SECONDS = 0.5  # ... and until they add up to this much (3 steps of 50 ms are load noise) ...
MAX_TIMED_STEPS = 30  # ... but no more than this many


class ForecastError(ValueError):
    pass


# what `lrcbert status` and `lrcbert forecast` say without a plan (a fresh clone): how to plan the grid one runs
NO_PLAN = (
    "write the plan of the grid you run (rule plan): `snakemake --cores 1 --configfile config/smoke.yaml -- "
    "results/plan.json` for the smoke grid on generated data (a try: the README's workflow command), or "
    "`snakemake --cores 1 -- results/plan.json` for the paper's full grid (over a thousand training jobs)"
)


PLAN_LOG = "logs/forecast/snakemake-plan.log"  # Snakemake's output while ``lrcbert forecast --config`` plans


def write_plan(configs: list[str], plan_path: str, log_path: str = PLAN_LOG) -> None:
    """Write the plan of the workflow configured by ``configs`` (rule plan; run from the repository root), with
    Snakemake's output in ``log_path``: inputs are checked first, a failure is one line naming the log."""
    import subprocess
    import sys

    missing = [c for c in configs if not Path(c).is_file()]
    if missing:
        raise ForecastError(f"--config {missing[0]}: no such file")
    if not any(Path(p).is_file() for p in ("Snakefile", "workflow/Snakefile")):
        raise ForecastError(f"no Snakefile in {Path.cwd()}: run `lrcbert forecast --config ...` in the repository root")
    cmd = [sys.executable, "-m", "snakemake", "--cores", "1", "--forcerun", "plan"]
    cmd += ["--configfile", *configs, "--", plan_path]
    log = Path(log_path)
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "w") as f:
        code = subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL).returncode
    if code:
        reason = _snakemake_error(log.read_text(errors="replace"))
        raise ForecastError(f"writing the plan failed (snakemake exit {code}){reason}; Snakemake's log: {log}")


def _snakemake_error(text: str) -> str:
    """The line of a Snakemake log that says what went wrong (the workflow's own one-line report if any)."""
    lines = [x.strip() for x in text.splitlines() if x.strip()]
    for i, line in enumerate(lines):
        if line.startswith("config key '"):
            return f": {line}"
        if "Error" in line.split(" ")[0] and i + 1 < len(lines):  # e.g. "WorkflowError in file ...:" + its message
            return f": {lines[i + 1]}"
    return ""


def load_plan(path: str | Path) -> dict:
    path = Path(path)
    try:
        plan = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise ForecastError(f"plan {path}: cannot read ({e}); {NO_PLAN}") from None
    if not isinstance(plan.get("jobs"), list):
        raise ForecastError(f"plan {path}: no 'jobs' list")
    return plan


def job_config(job: dict):
    from .assemble import command_config

    return command_config(job["command"], job.get("method"), job.get("task"), (), job["sets"])


def steps(cfg, n_train: int, world: int = 1) -> int:
    """Optimisation steps of a run on ``n_train`` examples in ``world`` processes: the engine's own rule."""
    t = cfg.train
    return costs.total_steps(n_train, t.batch_size, t.epochs, t.max_steps, world)


def described_data(cfg, plan: dict | None = None) -> tuple[dict, dict | None]:
    """(data, corpus) descriptions for the cost model (lrcbert.costs): the workflow's own, from the plan, else the
    job's configuration (its ``data`` keys; no corpus description)."""
    if plan and isinstance(plan.get("data"), dict):
        return plan["data"], plan.get("corpus") or {}
    d = cfg.data
    keys = ("source", "path", "max_train_examples", "max_eval_examples")
    return {k: getattr(d, k) for k in keys}, None


def train_size(cfg, job: dict, corpus_lines: int | None = None, plan: dict | None = None) -> tuple[int, str]:
    """(training examples, where the number comes from) of a job, by the cost model (lrcbert.costs) the workflow's
    resources use too: a written file's rows, else the sizes the plan's data description gives. ``corpus_lines``:
    the corpus size to assume while the corpus is not written (``--corpus-lines``; else the plan's)."""
    from .tasks import EVAL_SPLITS, get_task

    d = cfg.data
    data, corpus = described_data(cfg, plan)
    if job.get("task") is None:  # general distillation: corpus lines
        if d.corpus and Path(d.corpus).is_file():
            n = costs.text_lines(d.corpus)
            return (min(n, d.max_corpus_lines) if d.max_corpus_lines else n), "corpus file"
        if d.max_corpus_lines:
            return int(d.max_corpus_lines), "data.max_corpus_lines (corpus not written yet)"
        if corpus_lines:
            return int(corpus_lines), f"--corpus-lines {corpus_lines} (an assumption: corpus not written yet)"
        if corpus is not None:
            return costs.corpus_lines(data, corpus), "the workflow's corpus size (corpus not written yet)"
        raise ForecastError(
            f"job {job['run']}: the corpus size is unknown before the corpus {d.corpus} is written; write it first "
            "(snakemake <corpus file>), set corpus.max_lines, or pass --corpus-lines"
        )
    task = get_task(job["task"])
    if not d.train_file:
        return costs.split_size(data, EVAL_SPLITS[task.train_task][0], "train")
    limit = d.max_train_examples
    if Path(d.train_file).is_file():
        n, where = costs.tsv_rows(d.train_file, header=task.header), "augmented set on disk"
    else:  # an augmented set not written yet: (1 + n_aug) x the task's
        factor = int(job.get("augment_factor") or 1)
        n = factor * costs.train_examples({**data, "max_train_examples": None}, task.train_task)
        where = f"{factor} x the task's training set (augmented set not written yet)"
    return (min(n, limit) if limit else n), where


def eval_size(cfg, job: dict, plan: dict | None = None) -> int:
    """Examples a finished run predicts: dev and test of every evaluation split of its task."""
    from .tasks import get_task

    if job.get("task") is None:
        return 0
    return costs.eval_examples(described_data(cfg, plan)[0], get_task(job["task"]).train_task)


def teacher_model(job: dict):
    """The ``model`` section the job's pre-trained teacher is built from (its ``teacher_sets``, merged key by key as
    lrcbert merges any ``--set``), or None when the plan gives none."""
    sets = job.get("teacher_sets")
    return _teacher_model(tuple(sets)) if sets else None


@functools.cache
def _teacher_model(sets: tuple):  # every job of a plan names the same teacher: load its configuration once
    from .config import load_config

    return load_config(overrides=list(sets)).model


def architectures(cfg, job: dict) -> tuple[dict, dict | None]:
    """(student, teacher) BertConfig keyword arguments of a job (teacher None when fine-tuning)."""
    from transformers import AutoConfig, BertConfig

    from .models import resolve

    tm = teacher_model(job) or cfg.model
    teacher_path = tm.teacher
    overrides = tm.teacher_overrides if tm.teacher_random_init else {}
    try:
        base = AutoConfig.from_pretrained(resolve(teacher_path)).to_dict()
    except Exception:  # noqa: BLE001 - not downloaded yet: BERT-base's shape (transformers' defaults)
        base = BertConfig().to_dict()
    keys = (
        "num_hidden_layers",
        "hidden_size",
        "intermediate_size",
        "num_attention_heads",
        "vocab_size",
        "max_position_embeddings",
        "type_vocab_size",
    )
    teacher = {k: base[k] for k in keys if k in base}
    teacher.update({k: v for k, v in overrides.items() if k in keys})
    if job["command"] == "finetune":
        return teacher, None
    student = {**teacher, **(cfg.model.student_arch or {})}
    return student, teacher


def _timing_set(cfg, job, tokenizer, n: int):
    """``n`` tokenised training examples of the job (its own data when on disk, else generated lengths)."""
    from . import data as D
    from .bench import sample_lengths, synthetic_set
    from .tasks import get_task

    try:
        raw = D.load_corpus(cfg) if job.get("task") is None else D.load_split(cfg, get_task(job["task"]), "train")
        raw = raw.shuffle(seed=0).select(range(min(n, len(raw))))
        start = time.perf_counter()
        ds = D.tokenize(raw, tokenizer, cfg.data.max_length)
        per_example = (time.perf_counter() - start) / len(raw)
        if len(ds) >= n:
            return ds, per_example
    except Exception:  # noqa: BLE001 - no data on disk: GLUE-like lengths
        pass
    lengths = [min(x, cfg.data.max_length) for x in sample_lengths(n)]
    return synthetic_set(lengths, tokenizer.vocab_size), 0.0


def _tokenizer(cfg, job: dict):
    """The pre-trained teacher's tokenizer (a distillation job gets its teacher only at job time); when that is not
    downloaded yet, the uncased BERT tokenizer shipped offline (``offline:minilm``: the same vocabulary)."""
    from transformers import AutoTokenizer

    from .models import OFFLINE_MINILM, resolve

    tm = teacher_model(job)
    name = cfg.model.tokenizer or (tm.teacher if tm else cfg.model.teacher)
    try:
        return AutoTokenizer.from_pretrained(resolve(name))
    except (OSError, ValueError):
        return AutoTokenizer.from_pretrained(resolve(OFFLINE_MINILM))


def stage_steps(split: float, n_steps: int) -> dict:
    """How many of a run's ``n_steps`` fall in each stage: step s is in stage 1 while s < split x n_steps (the
    objective's rule)."""
    n1 = min(n_steps, max(0, math.ceil(split * n_steps)))
    return {"stage1": n1, "stage2": n_steps - n1}


def time_steps(trainer, repeats: int) -> tuple[dict, dict]:
    """Time ``trainer.train_step`` in each stage of the method (its loss terms and weights differ), with the step
    counter pinned inside the stage: at least ``repeats`` steps and TIMED_SECONDS of them per stage, at most
    MAX_TIMED_STEPS, after one warm-up step. Returns the warm-up step's extra seconds (``wall``, ``cpu``) and, per
    stage, the mean step time in wall-clock and in CPU time of the process (``time.process_time``: on a CPU, not
    slowed by other load). The mean, not the median: a run's training time is the sum of its steps, slow ones
    included."""
    import torch

    split = trainer.cfg.method.stage_split
    total, trainer.total_steps = trainer.total_steps, 1_000_000  # stages from the step counter: 0 and the last
    pinned = {"stage1": 0, "stage2": trainer.total_steps - 1}
    used = [s for s, on in (("stage1", split > 0), ("stage2", split < 1)) if on]

    def batches():  # the timing set again and again, until enough steps were timed
        while True:
            yield from trainer.loader

    def one(batch) -> tuple[float, float]:
        wall, cpu = time.perf_counter(), time.process_time()
        trainer.train_step(batch)
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        return time.perf_counter() - wall, time.process_time() - cpu

    stream = batches()
    trainer.step = pinned[used[0]]
    first = one(next(stream))
    stages = {}
    for stage in used:
        walls, cpus = [], []
        for batch in stream:
            trainer.step = pinned[stage]
            w, c = one(batch)
            walls.append(w)
            cpus.append(c)
            if len(walls) >= repeats and (sum(walls) >= TIMED_SECONDS or len(walls) >= MAX_TIMED_STEPS):
                break
        stages[stage] = {"wall": statistics.fmean(walls), "cpu": statistics.fmean(cpus), "n": len(walls)}
    trainer.total_steps = total
    extra = {k: max(0.0, v - stages[used[0]][k]) for k, v in zip(("wall", "cpu"), first)}
    return extra, stages


def measure(cfg, job: dict, repeats: int = TIMED_STEPS) -> dict:
    """Seconds per training step, per evaluated example, per checkpoint and of a run's set-up, for ``job``'s
    architecture, timed here on random-weight models."""
    import torch
    from accelerate.state import AcceleratorState
    from transformers import BertConfig, BertForSequenceClassification

    from . import data as D
    from .engine import Trainer
    from .evaluation import predict
    from .objective import Objective
    from .tasks import get_task

    student_arch, teacher_arch = architectures(cfg, job)
    task = get_task(job["task"]) if job.get("task") else None
    labels = (1 if task.is_regression else len(task.labels)) if task else 2
    t0 = time.perf_counter()
    tokenizer = _tokenizer(cfg, job)
    torch.manual_seed(0)

    def model(arch):
        conf = BertConfig(num_labels=labels, **arch)
        conf._attn_implementation = cfg.model.attn_implementation  # e.g. TinyBERT's attention term needs eager
        return BertForSequenceClassification(conf)

    student = model(student_arch)
    teacher = model(teacher_arch) if teacher_arch else None
    objective = Objective(
        cfg.method, task, student.config, teacher.config if teacher is not None else None, cfg.data.max_length
    )
    bs = cfg.train.batch_size
    train_set, tok_s = _timing_set(cfg, job, tokenizer, bs * (repeats + 1))
    # per-example state (CoDIR's memories, sampled negatives), as run.py binds it: here over the timing set
    objective.bind_data(train_set["idx"], None if task is None else train_set["label"])
    collate = D.Collator(tokenizer, cfg.data.max_length, cfg.data.pad_to_max_length)
    AcceleratorState._reset_state()
    with tempfile.TemporaryDirectory(prefix="lrcbert-forecast-") as tmp:
        trainer = Trainer(cfg, Path(tmp), student, objective, train_set, collate, teacher)
        setup_s = time.perf_counter() - t0
        if teacher is not None:  # the run's choice (train.teacher_cache): cached teacher outputs are cheaper
            trainer.prepare_teacher_cache()
        first_extra, stages = time_steps(trainer, repeats)
        start = time.perf_counter()
        trainer.save_checkpoint()
        ckpt_s = time.perf_counter() - start
        start = time.perf_counter()
        eval_set = train_set.select(range(min(len(train_set), cfg.train.eval_batch_size)))
        predict(trainer.accelerator.unwrap_model(trainer.student), eval_set, collate, cfg.train.eval_batch_size)
        eval_s = (time.perf_counter() - start) / len(eval_set)
        start = time.perf_counter()
        trainer.accelerator.unwrap_model(trainer.student).save_pretrained(Path(tmp) / "model")
        setup_s += time.perf_counter() - start
    return {
        "stage_step_s": {s: v["wall"] for s, v in stages.items()},
        "stage_step_cpu_s": {s: v["cpu"] for s, v in stages.items()},
        "stage_split": cfg.method.stage_split,
        "setup_s": setup_s + first_extra["wall"],
        "first_step_extra_s": first_extra["wall"],
        "first_step_extra_cpu_s": first_extra["cpu"],
        "timed_steps": {s: v["n"] for s, v in stages.items()},
        "tokenize_s_per_example": tok_s,
        "checkpoint_s": ckpt_s,
        "eval_s_per_example": eval_s,
        "student": student_arch,
        "teacher": teacher_arch,
    }


def signature(cfg, job: dict, by_shape: bool = False) -> str:
    """What a step's time depends on: method, shapes, batch, length, precision (``by_shape``: the method left out,
    so that one timing stands for every method of the same shapes: quicker, approximate)."""
    student, teacher = architectures(cfg, job)
    shape = lambda a: (
        "x".join(str(a.get(k)) for k in ("num_hidden_layers", "hidden_size", "intermediate_size")) if a else "-"
    )
    method = "any method" if by_shape and cfg.method.name != "finetune" else cfg.method.name
    return (
        f"{method}|teacher {shape(teacher)}|student {shape(student)}|"
        f"batch {cfg.train.batch_size}|len {cfg.data.max_length}|{cfg.train.mixed_precision}"
    )


def metric_load_s() -> float:
    """Seconds of the first GLUE metric computation of a process (its imports; once per evaluated run)."""
    import numpy as np

    from .evaluation import compute_metrics
    from .tasks import get_task

    start = time.perf_counter()
    compute_metrics(get_task("rte"), np.array([0, 1]), np.array([0, 1]))
    return time.perf_counter() - start


def forecast(
    plan: dict,
    log=print,
    corpus_lines: int | None = None,
    repeats: int = TIMED_STEPS,
    time_batch: int | None = None,
    by_shape: bool = False,
) -> dict:
    """Per job: steps and forecast seconds; per architecture: the timings; totals per stage, result and
    overall. ``time_batch``: time the steps at this batch size when the job's is larger, and scale the step time by
    batch / time_batch (an approximation for compute-bound devices; exact when None)."""
    import torch

    from .runinfo import device_name

    # first every job's configuration, sizes and steps (a bad input fails here, in seconds, before any timing)
    world = int(plan.get("processes") or 1)
    sized = []
    for job in plan["jobs"]:
        try:
            cfg = job_config(job)
        except (ValueError, OSError) as e:
            raise ForecastError(f"job {job.get('run')}: {e}") from None
        n, where = train_size(cfg, job, corpus_lines, plan)
        sized.append(
            (job, cfg, n, where, steps(cfg, n, world), eval_size(cfg, job, plan), signature(cfg, job, by_shape))
        )
    import datasets
    from transformers.utils import logging as hf_logging

    datasets.disable_progress_bars()  # no "tokenise" or "Writing model shards" bars between the forecast's lines
    hf_logging.disable_progress_bar()
    if plan.get("threads"):  # time the steps with the CPU threads each job gets (resources.threads)
        torch.set_num_threads(int(plan["threads"]))
    jobs, timings = [], {}
    metric_s = metric_load_s()
    for job, cfg, n, where, n_steps, n_eval, key in sized:
        if key not in timings:
            log(f"forecast: timing {key}", flush=True)
            bs = cfg.train.batch_size
            if time_batch and bs > time_batch:
                small = job_config(
                    {
                        **job,
                        "sets": [*job["sets"], f"train.batch_size={time_batch}", f"train.eval_batch_size={time_batch}"],
                    }
                )
                t = measure(small, job, repeats)
                scale = bs / time_batch
                t.update(
                    stage_step_s={s: v * scale for s, v in t["stage_step_s"].items()},
                    stage_step_cpu_s={s: v * scale for s, v in t["stage_step_cpu_s"].items()},
                    timed_batch=time_batch,
                )
                timings[key] = t
            else:
                timings[key] = measure(cfg, job, repeats)
        t = timings[key]
        ckpts = (n_steps // cfg.train.checkpoint_every if cfg.train.checkpoint_every else 0) + 1
        per_stage = stage_steps(t["stage_split"], n_steps)
        train_s = sum(k * t["stage_step_s"].get(s, 0.0) for s, k in per_stage.items())
        train_cpu_s = sum(k * t["stage_step_cpu_s"].get(s, 0.0) for s, k in per_stage.items())
        seconds = (
            t["setup_s"]
            + n * t["tokenize_s_per_example"]
            + train_s
            + ckpts * t["checkpoint_s"]
            + n_eval * t["eval_s_per_example"]
            + (metric_s if n_eval else 0.0)
        )
        jobs.append(
            {
                "run": job["run"],
                "stage": job["stage"],
                "system": job["system"],
                "task": job.get("task"),
                "table": (job.get("tables") or ["other"])[0],
                "train_examples": n,
                "train_size_from": where,
                "steps": n_steps,
                "signature": key,
                "seconds": seconds,
                # what the engine times as run.json's train_time_s: every step, the first one's warm-up too
                "train_seconds": train_s + t["first_step_extra_s"],
                "train_cpu_seconds": train_cpu_s + t["first_step_extra_cpu_s"],
            }
        )
    device = device_name(torch.device("cuda" if torch.cuda.is_available() else "cpu"))
    return {
        "device": device,
        "threads": torch.get_num_threads(),
        "repeats": repeats,
        "time_batch": time_batch,
        "by_shape": by_shape,
        "jobs": jobs,
        "timings": timings,
        "metric_load_s": metric_s,
        "hours": _totals(jobs),
        "check": check_against_runs(jobs),
    }


def _totals(jobs: list[dict]) -> dict:
    out = {"stage": {}, "table": {}, "total": sum(j["seconds"] for j in jobs) / 3600}
    for j in jobs:
        for what in ("stage", "table"):
            out[what][j[what]] = out[what].get(j[what], 0.0) + j["seconds"] / 3600
    return out


def check_against_runs(jobs: list[dict]) -> dict:
    """The forecast beside the finished runs of the plan: steps (must be equal) and wall times."""
    rows = []
    for j in jobs:
        record = Path(j["run"]) / "run.json"
        if record.is_file():
            r = json.loads(record.read_text())
            if r.get("status") == "finished":
                rows.append(
                    {
                        "run": j["run"],
                        "forecast_steps": j["steps"],
                        "steps": r.get("steps"),
                        "forecast_s": j["seconds"],
                        "wall_time_s": r.get("wall_time_s"),
                        "forecast_train_s": j["train_seconds"],
                        "train_time_s": r.get("train_time_s"),
                        "forecast_train_cpu_s": j.get("train_cpu_seconds"),
                        "train_cpu_s": r.get("train_cpu_s"),
                    }
                )
    if not rows:
        return {"runs": 0}
    return {
        "runs": len(rows),
        "steps_equal": sum(r["forecast_steps"] == r["steps"] for r in rows),
        "forecast_s": sum(r["forecast_s"] for r in rows),
        "measured_s": sum(r["wall_time_s"] or 0 for r in rows),
        # training time alone (the steps): runs recorded before train_time_s existed are left out of both sums
        "train_runs": sum(r["train_time_s"] is not None for r in rows),
        "forecast_train_s": sum(r["forecast_train_s"] for r in rows if r["train_time_s"] is not None),
        "measured_train_s": sum(r["train_time_s"] for r in rows if r["train_time_s"] is not None),
        # the same in CPU time of the process (run.json train_cpu_s): on a CPU shared with other jobs, the
        # comparison that their load does not shift (a one-thread run's CPU time is its wall time on an idle core)
        "cpu_runs": sum(r["train_cpu_s"] is not None for r in rows),
        "forecast_train_cpu_s": sum(r["forecast_train_cpu_s"] or 0 for r in rows if r["train_cpu_s"] is not None),
        "measured_train_cpu_s": sum(r["train_cpu_s"] for r in rows if r["train_cpu_s"] is not None),
        "mismatches": [r for r in rows if r["forecast_steps"] != r["steps"]][:20],
    }


def markdown(result: dict) -> str:
    from .markdown import md_table

    h = result["hours"]
    fmt = lambda x: f"{x:.3g}"
    lines = [
        "# Cost forecast",
        "",
        f"Forecast by `lrcbert forecast` on **{result['device']}** ({result['threads']} threads): timed "
        f"training steps of each architecture on random-weight models (per stage of the method, the mean of at "
        f"least {result['repeats']} steps and {TIMED_SECONDS:g} s of them, at most {MAX_TIMED_STEPS}, after one "
        "warm-up step), times the steps each job of the plan needs in each stage, plus each run's fixed parts "
        "(set-up, the "
        "first step's extra time, tokenising, checkpoints, dev and test predictions). Not counted: Python "
        "start-up of each job, the "
        "augmentation stage, downloads, waiting in a queue. Device-hours of one device running one job at a "
        "time."
        + (
            f" Steps of a batch larger than {result['time_batch']} were timed at batch "
            f"{result['time_batch']} and scaled linearly to the job's batch (an approximation)."
            if result.get("time_batch")
            else ""
        )
        + (
            " One timing per shape stands for every method of that shape (`--by-shape`: approximate)."
            if result.get("by_shape")
            else ""
        ),
        "",
        f"**Total: {fmt(h['total'])} device-hours** for {len(result['jobs'])} training jobs "
        f"({sum(j['steps'] for j in result['jobs']):,} steps).",
        "",
        "Per stage:",
        "",
        md_table(
            [
                (
                    k,
                    sum(1 for j in result["jobs"] if j["stage"] == k),
                    f"{sum(j['steps'] for j in result['jobs'] if j['stage'] == k):,}",
                    fmt(v),
                )
                for k, v in h["stage"].items()
            ],
            ["stage", "jobs", "steps", "device-hours"],
            tablefmt="github",
        ),
        "",
        "Per result (a job counts for the first result it feeds; shared stages count for their first user):",
        "",
        md_table(
            [(k, sum(1 for j in result["jobs"] if j["table"] == k), fmt(v)) for k, v in h["table"].items()],
            ["result", "jobs", "device-hours"],
            tablefmt="github",
        ),
        "",
        "Timed architectures (seconds):",
        "",
        md_table(
            [
                (
                    # the signature's parts, one column each (a '|' inside a cell would split the table)
                    *(
                        x.split(" ", 1)[1] if x.startswith(("teacher ", "student ", "batch ", "len ")) else x
                        for x in k.split("|")
                    ),
                    *(
                        fmt(t["stage_step_s"][s]) if s in t.get("stage_step_s", {}) else "-"
                        for s in ("stage1", "stage2")
                    ),
                    fmt(t["setup_s"]),
                    fmt(t["checkpoint_s"]),
                    fmt(1000 * t["eval_s_per_example"]),
                )
                for k, t in result["timings"].items()
            ],
            [
                "method",
                "teacher (layers x hidden x ffn)",
                "student",
                "batch",
                "length",
                "mixed precision",
                "s / step, stage 1",
                "s / step, stage 2",
                "set-up s",
                "checkpoint s",
                "eval ms / example",
            ],
            tablefmt="github",
        ),
        "",
    ]
    sources = sorted({j["train_size_from"] for j in result["jobs"]})
    lines += ["Training-set sizes from: " + "; ".join(sources) + ".", ""]
    c = result["check"]
    if c.get("runs"):
        lines += [
            "**Check against the finished runs of this plan**: "
            f"{c['steps_equal']} of {c['runs']} runs took exactly the forecast number of steps; their measured "
            f"wall time (run.json `wall_time_s`) sums to {c['measured_s']:.1f} s, the forecast for them to "
            f"{c['forecast_s']:.1f} s (ratio {c['forecast_s'] / c['measured_s']:.2f}; the wall time also holds "
            "what the forecast leaves out, and the load of the machine while they ran)."
        ]
        if c.get("train_runs"):
            lines += [
                "",
                f"Training time alone (the steps; run.json `train_time_s`, {c['train_runs']} runs): measured "
                f"{c['measured_train_s']:.1f} s, forecast {c['forecast_train_s']:.1f} s (ratio "
                f"{c['forecast_train_s'] / max(c['measured_train_s'], 1e-9):.2f}; jobs that shared the machine "
                "ran slower than one job alone, which is what the forecast times).",
            ]
        if c.get("cpu_runs") and result["device"].lower().startswith("cpu"):
            lines += [
                "",
                f"The same in CPU time of each process (run.json `train_cpu_s`, {c['cpu_runs']} runs; other jobs' "
                f"load does not count): measured {c['measured_train_cpu_s']:.1f} s, forecast "
                f"{c['forecast_train_cpu_s']:.1f} s (ratio "
                f"{c['forecast_train_cpu_s'] / max(c['measured_train_cpu_s'], 1e-9):.2f}).",
            ]
        lines += [""]
    return "\n".join(lines)


def main(
    plan_path: str,
    out_md: str | None,
    out_json: str | None,
    corpus_lines: int | None = None,
    repeats: int = TIMED_STEPS,
    time_batch: int | None = None,
    by_shape: bool = False,
) -> dict:
    from .runinfo import atomic_write_json, atomic_write_text

    result = forecast(
        load_plan(plan_path), corpus_lines=corpus_lines, repeats=repeats, time_batch=time_batch, by_shape=by_shape
    )
    text = markdown(result)
    if out_md:
        atomic_write_text(out_md, text)
    if out_json:
        atomic_write_json(out_json, result)
    print(text)
    return {"device_hours": result["hours"]["total"], "jobs": len(result["jobs"])}
