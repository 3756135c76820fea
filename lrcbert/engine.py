"""The one training loop. It fine-tunes teachers, distils students and runs every ablation and baseline:
what differs between those is the ``Objective`` (terms and weights) and the configuration, never this code.

Built on ``accelerate``: the same loop runs on a CPU, one GPU, or several (``accelerate launch`` or
``torchrun``), with bf16/fp16 autocast when ``train.mixed_precision`` asks for it. Each step optionally
applies LRC-BERT's gradient perturbation (paper eq. 7-8) to the student's embedding output.
"""

from __future__ import annotations

import csv
import functools
import hashlib
import logging
import math
import shutil
import signal
import sys
import threading
import time
import warnings
from pathlib import Path

import torch
from accelerate import Accelerator
from accelerate.utils import DistributedDataParallelKwargs, gather_object, set_seed
from tqdm.auto import tqdm

from . import checkpoint, costs, tracking
from .config import ConfigError
from .data import EpochSampler, LengthGroupedSampler, lengths
from .models import embedding_module
from .objective import Objective, combine

logger = logging.getLogger(__name__)

MODEL_INPUTS = ("input_ids", "attention_mask", "token_type_ids")


class TrainingDiverged(RuntimeError):
    """A non-finite loss or gradient, or a loss far above its stage's reference (``train.divergence_factor``); the
    message names the step, the loss, the terms and the last good checkpoint."""


# divergence (train.divergence_factor): a stage's reference is the mean total loss of its first DIVERGENCE_STEPS
# finite steps, taken no lower than DIVERGENCE_FLOOR (so that a stage starting near 0 does not stop on noise)
DIVERGENCE_STEPS = 5
DIVERGENCE_FLOOR = 1.0

# SLURM sends USR1 (if asked) or TERM before a kill; Ctrl-C (INT) is handled the same way
PREEMPT_SIGNALS = (signal.SIGTERM, signal.SIGUSR1, signal.SIGINT)


class EmbeddingTap:
    """A forward hook on the student's embedding block. ``leaf=True`` records the block's output e and hands
    the transformer layers a detached copy that requires grad (so dL/de can be taken without touching the
    parameters); ``replace`` hands them a given tensor instead of the block's output."""

    def __init__(self, module: torch.nn.Module):
        self.leaf, self.replace, self.output, self.input = False, None, None, None
        self.handle = module.register_forward_hook(self._hook)

    def _hook(self, module, args, out):
        if self.replace is not None:
            return self.replace
        self.output = out
        if self.leaf:
            self.input = out.detach().requires_grad_(True)
            return self.input
        return out


def perturbation(grad: torch.Tensor, norm: str = "per_example", eps: float = 1.0) -> torch.Tensor:
    """Eq. (7): the step added to the embedding output, eps * g / |g|_2, with the norm taken over each
    example's l x d slice (``per_example``), over the whole batch (``batch``) or over each token's d values
    (``per_token``, the GLMKD re-implementation's reading). Zero where g is zero."""
    g = grad.float()
    if norm == "per_example":
        n = g.flatten(1).norm(dim=1).view(-1, *([1] * (g.dim() - 1)))
    elif norm == "per_token":
        n = g.norm(dim=-1, keepdim=True)
    else:
        n = g.norm()
    return (eps * g / n.clamp_min(1e-12)).to(grad.dtype)


def _rng_state(device: torch.device):
    """The RNG state that dropout on ``device`` draws from (with the CPU's), for pass 2 to repeat pass 1's masks."""
    return torch.get_rng_state(), (torch.cuda.get_rng_state(device) if device.type == "cuda" else None)


def _set_rng_state(state, device: torch.device) -> None:
    torch.set_rng_state(state[0])
    if state[1] is not None:
        torch.cuda.set_rng_state(state[1], device)


def lr_factor(step: int, total: int, warmup: float, schedule: str = "linear", boundary: int = 0) -> float:
    """Learning-rate multiplier at ``step``: linear warm-up over the first ``warmup`` fraction of the span,
    then linear decay to 0 (``linear``) or flat (``constant``). ``linear_per_stage`` runs the linear
    schedule separately over each stage of a two-stage method ([0, boundary) and [boundary, total)),
    so stage 2 does not start with a learning rate already decayed by stage 1."""
    start, end = 0, total
    if schedule == "linear_per_stage" and 0 < boundary < total:
        start, end = (0, boundary) if step < boundary else (boundary, total)
    span, s = end - start, step - start
    warm = int(warmup * span)
    if s < warm:
        return s / max(1, warm)
    if schedule == "constant":
        return 1.0
    return max(0.0, (span - s) / max(1, span - warm))


def step_seed(seed: int, step: int) -> int:
    """The seed of every random stream (dropout, numpy, python) during training step ``step``: a hash of
    (seed, step) alone, never what ran earlier in the process, so a resumed run (from a checkpoint, or from
    scratch after a kill before the first one) draws exactly what an uninterrupted run draws."""
    digest = hashlib.sha256(f"lrcbert-step:{int(seed)}:{int(step)}".encode()).digest()
    return int.from_bytes(digest[:4], "little")


def _inputs(batch) -> dict:
    return {k: batch[k] for k in MODEL_INPUTS if k in batch}


def _decay_groups(modules, weight_decay: float):
    decay, no_decay = [], []
    for module in modules:
        for name, p in module.named_parameters():
            if p.requires_grad:
                (no_decay if p.dim() < 2 or "LayerNorm" in name or name.endswith("bias") else decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


class Trainer:
    """Trains ``student`` (and the objective's own parameters) on ``train_set`` under ``objective``."""

    def __init__(
        self, cfg, run_dir: Path, student, objective: Objective, train_set, collate, teacher=None, run_id=None
    ):
        self.cfg, self.run_dir = cfg, Path(run_dir)
        self.run_id = run_id  # the run's identity (lrcbert.identity): its checkpoints carry it, resumes check it
        t = cfg.train
        # some parameters get no gradient in some steps (the head during stage 1, W under the hard loss only)
        ddp = DistributedDataParallelKwargs(find_unused_parameters=True)
        # step_scheduler_with_optimizer=False: the schedule below counts global steps (one per step of every
        # process); accelerate would otherwise step it once per process, decaying the lr N times too fast
        self.accelerator = Accelerator(
            mixed_precision=t.mixed_precision,
            cpu=not torch.cuda.is_available(),
            kwargs_handlers=[ddp],
            step_scheduler_with_optimizer=False,
            log_with=tracking.log_with(t.report_to),
            project_dir=str(self.run_dir),
        )
        set_seed(t.seed)
        world = self.accelerator.num_processes
        if len(train_set) < t.batch_size * world:
            raise ConfigError(
                f"training set has {len(train_set)} examples, fewer than one global batch "
                f"(train.batch_size {t.batch_size} x {world} processes)"
            )
        if t.length_grouped:
            self.sampler = LengthGroupedSampler(lengths(train_set), t.batch_size, t.seed, t.length_group_size)
        else:
            self.sampler = EpochSampler(len(train_set), t.seed)
        self.train_set, self.collate = train_set, collate
        # the loader gets its own generator: drawing its base seed from the global RNG at each new iterator
        # would shift the dropout stream of a resumed run against an uninterrupted one
        loader = torch.utils.data.DataLoader(
            train_set,
            batch_size=t.batch_size,
            sampler=self.sampler,
            collate_fn=collate,
            drop_last=True,
            num_workers=t.num_workers,
            generator=torch.Generator().manual_seed(t.seed),
        )
        self.steps_per_epoch = costs.steps_per_epoch(len(train_set), t.batch_size, world)
        self.total_steps = costs.total_steps(len(train_set), t.batch_size, t.epochs, t.max_steps, world)
        # fused AdamW: one kernel over all parameters (on a CPU about 7x faster than the default foreach path)
        optimizer = torch.optim.AdamW(_decay_groups([student, objective], t.weight_decay), lr=t.lr, fused=True)
        boundary = int(math.ceil(cfg.method.stage_split * self.total_steps))
        scheduler = torch.optim.lr_scheduler.LambdaLR(
            optimizer,
            functools.partial(
                lr_factor, total=self.total_steps, warmup=t.warmup, schedule=t.lr_schedule, boundary=boundary
            ),
        )
        (self.student, self.optimizer, self.loader, self.scheduler) = self.accelerator.prepare(
            student, optimizer, loader, scheduler
        )
        # the objective holds W (if any); it is wrapped for data parallelism only when it has parameters
        has_params = any(p.requires_grad for p in objective.parameters())
        self.objective = self.accelerator.prepare(objective) if has_params else objective.to(self.accelerator.device)
        self.teacher = teacher.to(self.accelerator.device).eval() if teacher is not None else None
        if t.compile:
            for model in (self.accelerator.unwrap_model(self.student), self.teacher):
                if model is not None:
                    model.compile()
        self.cache, self.cache_choice = None, None
        self.tap = EmbeddingTap(embedding_module(self.accelerator.unwrap_model(self.student)))
        self.ckpt_dir = self.run_dir / "checkpoints"
        self.step = 0
        self.train_seconds = 0.0  # time inside train_step, summed over the run's steps (resumes included)
        self.train_cpu_seconds = 0.0  # the same steps in CPU time of the process (not slowed by other load)
        self.bad_steps = 0  # non-finite steps skipped so far (train.max_bad_steps)
        # the divergence rule and each stage's reference (checkpointed; run.json may record it):
        # stages: {"stage1": {"first_step": 1, "losses": [the stage's first finite total losses], "reference": mean}}
        self.divergence = {
            "factor": t.divergence_factor,
            "steps": DIVERGENCE_STEPS,
            "floor": DIVERGENCE_FLOOR,
            "stages": {},
        }

    # -- checkpoints -------------------------------------------------------------------------------------
    def _modules(self) -> dict:
        unwrap = self.accelerator.unwrap_model
        return {"student": unwrap(self.student), "objective": unwrap(self.objective)}

    def save_checkpoint(self) -> Path | None:
        self.accelerator.wait_for_everyone()
        path = None
        # every process's RNG state (dropout streams differ between processes), so a resume continues each one
        rng_ranks = gather_object([checkpoint.rng_state()]) if self.accelerator.num_processes > 1 else None
        if self.accelerator.is_main_process:
            trainer_state = {
                "optimizer": self.optimizer.state_dict(),
                "scheduler": self.scheduler.state_dict(),
                "rng": checkpoint.rng_state(),
            }
            if rng_ranks is not None:
                trainer_state["rng_ranks"] = rng_ranks
            path = checkpoint.save(
                self.ckpt_dir,
                self.step,
                self._modules(),
                trainer_state,
                {
                    "total_steps": self.total_steps,
                    "bad_steps": self.bad_steps,
                    "train_seconds": self.train_seconds,
                    "train_cpu_seconds": self.train_cpu_seconds,
                    "run_id": self.run_id,
                    "divergence": self.divergence["stages"],
                },
                self.cfg.train.keep_checkpoints,
            )
        self.accelerator.wait_for_everyone()
        return path

    def resume(self) -> bool:
        path = checkpoint.latest(self.ckpt_dir)
        if path is None:
            return False
        if self.run_id is not None and checkpoint.run_of(path) != self.run_id:
            raise checkpoint.ForeignCheckpoint(
                f"checkpoint {path} belongs to run {checkpoint.run_of(path)}, not to this run {self.run_id}; "
                "a checkpoint resumes only a run of its own identity"
            )
        trainer_state, state = checkpoint.load(path, self._modules())
        self.optimizer.load_state_dict(trainer_state["optimizer"])
        self.scheduler.load_state_dict(trainer_state["scheduler"])
        ranks = trainer_state.get("rng_ranks")
        same_world = ranks is not None and len(ranks) == self.accelerator.num_processes
        checkpoint.set_rng_state(ranks[self.accelerator.process_index] if same_world else trainer_state["rng"])
        self.step = int(state["step"])
        self.bad_steps = int(state.get("bad_steps", 0))
        self.train_seconds = float(state.get("train_seconds", 0.0))
        self.train_cpu_seconds = float(state.get("train_cpu_seconds", 0.0))
        self.divergence["stages"] = state.get("divergence", {})  # older checkpoints: references start afresh
        if self.accelerator.is_main_process:
            logger.info(f"resuming from {path} at step {self.step}/{self.total_steps}")
        return True

    # -- one step ------------------------------------------------------------------------------------------
    def _losses(self, model, objective, batch, weights, t_out):
        s_out = model(**_inputs(batch), **self.objective_module.outputs(weights))
        terms = objective(s_out, t_out, batch, weights)
        return terms, combine(terms, weights)

    def prepare_teacher_cache(self):
        """Decide (``train.teacher_cache``) and, if chosen, build or reopen the run's teacher cache."""
        from .teacher_cache import TeacherCache, decide

        if self.teacher is None:
            return None
        obj = self.objective_module
        num_labels = getattr(self.teacher.config, "num_labels", 1)
        shared = self.cfg.train.teacher_cache_dir
        # a shared cache holds every teacher layer: it serves every student, whatever its layer map
        layers = sorted({*range(1, self.teacher.config.num_hidden_layers + 1), *obj.phi}) if shared else obj.phi
        self.cache_choice = decide(self.cfg, lengths(self.train_set), self.teacher.config, layers, num_labels)
        if not self.cache_choice["use"]:
            return self.cache_choice

        def build(path, key):
            TeacherCache.build(
                path,
                key,
                self.teacher,
                self.train_set,
                self.collate,
                layers,
                self.cfg.train.eval_batch_size,
                self.accelerator.device,
                self.accelerator.autocast,
            )

        if shared:
            from .identity import weights_hash
            from .teacher_cache import open_shared, shared_key

            precision, device = self.cfg.train.mixed_precision, self.accelerator.device.type
            key = shared_key(weights_hash(self.teacher), self.train_set, layers, precision, device)
            path = Path(shared) / key
            if self.accelerator.is_main_process:
                open_shared(shared, key, lambda tmp: build(tmp, key))
            self.cache_choice["shared"] = str(path)
        else:
            path, key = self.run_dir / "teacher_cache", self.run_id or self.cfg.hash()
            if self.accelerator.is_main_process and not TeacherCache.is_complete(path, key):
                build(path, key)
        self.accelerator.wait_for_everyone()
        self.cache = TeacherCache(path)
        return self.cache_choice

    def teacher_outputs(self, batch, weights):
        """The teacher's outputs for ``batch``: from the cache when there is one, else a forward pass."""
        if self.teacher is None or not self.objective_module.needs_teacher(weights):
            return None
        if self.cache is not None:
            return self.cache.lookup(batch, self.accelerator.device)
        with torch.no_grad(), self.accelerator.autocast():
            return self.teacher(**_inputs(batch), **self.objective_module.outputs(weights))

    def train_step(self, batch) -> dict:
        m = self.cfg.method
        weights = self.objective_module.weights(self.step, self.total_steps)
        t_out = self.teacher_outputs(batch, weights)
        record = {}
        with self.accelerator.autocast():
            if m.perturb:
                # pass 1 (outside any DDP wrapper): L_total and g = dL_total / d emb^S, no parameter gradients
                rng = _rng_state(self.accelerator.device) if m.perturb_dropout == "same" else None
                self.tap.leaf = True
                terms, total = self._losses(
                    self.accelerator.unwrap_model(self.student), self.objective_module, batch, weights, t_out
                )
                self.tap.leaf = False
                (grad,) = torch.autograd.grad(total, self.tap.input)
                record["loss_clean"] = total.item()
                # pass 2: the transformer layers and head again from emb^S + g / |g|; only L'_total updates.
                # method.perturb_grad=constant: the step is detached, no gradient flows through g / |g|.
                # method.perturb_dropout: fresh dropout masks (the RNG runs on) or pass 1's (RNG rewound)
                if rng is not None:
                    _set_rng_state(rng, self.accelerator.device)
                self.tap.replace = self.tap.output + perturbation(grad, m.perturb_norm, m.perturb_eps).detach()
                try:
                    terms, total = self._losses(self.student, self.objective, batch, weights, t_out)
                finally:
                    self.tap.replace = None
            else:
                terms, total = self._losses(self.student, self.objective, batch, weights, t_out)
        bad = None if torch.isfinite(total) else f"loss is {total.item()}"
        if bad is None:
            self.accelerator.backward(total)
            params = [p for g in self.optimizer.param_groups for p in g["params"]]
            if self.cfg.train.grad_clip > 0:
                norm = self.accelerator.clip_grad_norm_(params, self.cfg.train.grad_clip)
            else:
                norm = torch.norm(torch.stack([p.grad.norm() for p in params if p.grad is not None]))
            if not torch.isfinite(torch.as_tensor(norm)):
                bad = f"gradient norm is {float(norm)}"
        if bad is not None:
            self.bad_steps += 1
            if self.bad_steps > self.cfg.train.max_bad_steps:
                self._diverged(bad, terms)
            logger.warning(
                f"step {self.step + 1}: {bad}; skipped without an update "
                f"({self.bad_steps} of train.max_bad_steps={self.cfg.train.max_bad_steps})"
            )
            with warnings.catch_warnings():  # the schedule steps without an optimizer step, on purpose
                warnings.simplefilter("ignore", UserWarning)
                self.scheduler.step()  # so that it stays aligned with the step count
        else:
            self.optimizer.step()
            self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        record.update({t: v.item() for t, v in terms.items()})
        record["total"] = total.item()
        if self.accelerator.num_processes > 1:
            # the losses of the global batch: the mean over the processes (their local batches are equally large,
            # so for per-example losses this is what one process on the whole global batch would log)
            keys = list(record)
            values = torch.tensor([record[k] for k in keys], dtype=torch.float64, device=self.accelerator.device)
            record = dict(zip(keys, self.accelerator.reduce(values, "mean").tolist()))
        if bad is None:  # the global batch's loss: every process takes the same decision
            self._check_divergence(record["total"], terms)
        record["bad_steps"] = self.bad_steps
        record.update({f"w_{t}": w for t, w in weights.items()})
        return record

    def _check_divergence(self, loss: float, terms: dict) -> None:
        """Stop the run (TrainingDiverged) when the finite total ``loss`` of this step exceeds
        ``train.divergence_factor`` x max(reference, DIVERGENCE_FLOOR); the reference of a stage is the mean total
        loss of its first DIVERGENCE_STEPS steps (of those seen so far while fewer), each stage its own, since
        stage 1 and stage 2 weigh different terms. A factor of 0 turns the check off (references are still kept)."""
        d = self.divergence
        stage = "stage1" if self.step < self.cfg.method.stage_split * self.total_steps else "stage2"
        ref = d["stages"].setdefault(stage, {"first_step": self.step + 1, "losses": [], "reference": None})
        base = max(ref["reference"], d["floor"]) if ref["losses"] else None
        if base is not None and d["factor"] > 0 and loss > d["factor"] * base:
            first, n = ref["first_step"], len(ref["losses"])
            steps = f"step {first}" if n == 1 else f"steps {first}-{first + n - 1}"
            self._diverged(
                f"total loss {loss:.4g} > train.divergence_factor {d['factor']:g} x {base:.4g} ({stage} reference: "
                f"mean total loss {ref['reference']:.4g} of {steps}, floor {d['floor']:g})",
                terms,
                "; lower train.lr, or set train.divergence_factor=0 to turn this check off",
            )
        if len(ref["losses"]) < d["steps"]:
            ref["losses"].append(loss)
            ref["reference"] = sum(ref["losses"]) / len(ref["losses"])

    def _diverged(self, what: str, terms: dict, hint: str = ""):
        last = checkpoint.latest(self.ckpt_dir)
        values = ", ".join(f"{k}={v.item():.4g}" for k, v in terms.items())
        raise TrainingDiverged(
            f"training diverged at step {self.step + 1}: {what} (terms: {values}); "
            f"last good checkpoint: {last or 'none'}{hint}"
        )

    @property
    def objective_module(self) -> Objective:
        return self.accelerator.unwrap_model(self.objective)

    # -- the loop ------------------------------------------------------------------------------------------
    def _log_writer(self, resumed: bool):
        path = self.run_dir / "losses.csv"
        used = self.objective_module.used  # the columns of the terms this run weighs (in the registry's order)
        columns = ["step", "epoch", "lr", "total", "loss_clean", *used, *(f"w_{t}" for t in used), "bad_steps"]
        rows = []
        if resumed and path.is_file():  # drop rows logged after the checkpoint we resumed from
            with open(path, newline="") as f:
                rows = [r for r in csv.DictReader(f) if int(r["step"]) <= self.step]
        f = open(path, "w", newline="")
        writer = csv.DictWriter(f, fieldnames=columns, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
        f.flush()
        return f, writer

    def _on_signal(self, signum, frame):
        self.signal = signum

    def fit(self) -> str:
        """Train to ``total_steps`` (resuming from the newest checkpoint if there is one). Returns
        ``"finished"``; ``"stopped"`` when ``train.stop_after_steps`` cut the run short; ``"preempted"`` when
        SIGTERM or SIGUSR1 arrived, after writing a checkpoint at the end of the current step."""
        self.signal = None
        handlers = {}
        if threading.current_thread() is threading.main_thread():
            handlers = {s: signal.signal(s, self._on_signal) for s in PREEMPT_SIGNALS}
        try:
            return self._fit()
        finally:
            for s, h in handlers.items():
                signal.signal(s, h)

    def _fit(self) -> str:
        t = self.cfg.train
        resumed = self.resume()
        tracking.start(self.accelerator, self.cfg, self.run_dir.name, self.step)  # train.report_to
        if self.cache_choice is None:
            self.prepare_teacher_cache()
        main = self.accelerator.is_main_process
        log_file, log = self._log_writer(resumed) if main else (None, None)
        world = self.accelerator.num_processes
        bar = tqdm(
            total=self.total_steps,
            initial=self.step,
            disable=not main,
            desc="train",
            dynamic_ncols=True,
            mininterval=0.5 if sys.stderr.isatty() else 30,
        )  # a log file gets a line per 30 s
        status = "finished"
        try:
            self.student.train()
            self.objective.train()
            while self.step < self.total_steps and status == "finished":
                epoch, done = divmod(self.step, self.steps_per_epoch)
                self.sampler.position(epoch, skip=done * t.batch_size * world)
                for batch in self.loader:
                    set_seed(step_seed(t.seed, self.step))
                    started, cpu_started = time.perf_counter(), time.process_time()
                    record = self.train_step(batch)
                    self.train_seconds += time.perf_counter() - started
                    self.train_cpu_seconds += time.process_time() - cpu_started
                    self.step += 1
                    bar.update(1)
                    if main and (self.step % t.log_every == 0 or self.step == self.total_steps):
                        log.writerow(
                            {
                                "step": self.step,
                                "epoch": round(self.step / self.steps_per_epoch, 4),
                                "lr": self.scheduler.get_last_lr()[0],
                                **record,
                            }
                        )
                        self.accelerator.log(
                            tracking.step_scalars(record, self.scheduler.get_last_lr()[0]), step=self.step
                        )
                        log_file.flush()
                        bar.set_postfix(loss=f"{record['total']:.4f}")
                    if self.step >= self.total_steps:
                        break
                    if t.checkpoint_every and self.step % t.checkpoint_every == 0:
                        self.save_checkpoint()
                    if self.signal is not None or (t.stop_after_steps and self.step >= t.stop_after_steps):
                        self.save_checkpoint()
                        status = "stopped" if self.signal is None else "preempted"
                        break
            if status == "finished":
                self.save_checkpoint()
                # a run's own cache is only needed while it trains; a shared one serves the next runs
                if self.cache is not None and self.accelerator.is_main_process and not self.cfg.train.teacher_cache_dir:
                    shutil.rmtree(self.cache.path, ignore_errors=True)
        finally:
            bar.close()
            if log_file:
                log_file.close()
        return status

    def trained(self):
        """(student, objective) without any distributed wrapper, in eval mode."""
        return self.accelerator.unwrap_model(self.student).eval(), self.objective_module.eval()
