"""A distillation method as configuration: named loss terms, their weights over training, and the
trainable pieces they need (the projection W). The training engine only asks an ``Objective`` which
weights hold at a step and what each term is worth for a batch; it never knows which method runs.

Terms (weights come from ``method.stage1`` / ``method.stage2``):
  layer  sum over student layers i of the layer loss between h_i^S W and h_phi(i)^T (eq. 3), COS-NCE
         with in-batch negatives (or, ``method.negatives: sampled``, K negatives sampled from the whole
         training set out of a memory of teacher vectors, ``lrcbert/memory.py``), or MSE for BERT_M;
  soft   eq. (4) on the logits (MSE for regression);
  hard   eq. (5) against the gold label (MSE for regression).
The terms and methods are declared in ``lrcbert.presets`` (one registry, without torch); other methods (the
baselines, a package of yours) come in through the ``lrcbert.methods`` entry points with their own terms and
settings (``method.options``, ``Objective.settings``); ``get_method`` loads those plug-ins on first use, so lrcbert
never imports them at module import time.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from . import losses
from .config import ConfigError, method_settings
from .memory import Memory
from .models import layer_map
from .presets import (  # noqa: F401  (the registry, re-exported)
    METHODS,
    PRESETS,
    TERMS,
    Method,
    Term,
    get_method,
    load_plugins,
    register,
    register_term,
)
from .tasks import Task


def _gather_rows(t: torch.Tensor, gather: bool) -> tuple[torch.Tensor, int]:
    """Under data parallelism with ``gather``: the teacher tensors (no gradient) of every process stacked along
    dim 0, each zero-padded along its other dims to the widest process's (dynamic padding gives the processes
    different lengths; zeros change no cosine), and the offset of this process's rows. Else ``(t, 0)``."""
    dist = torch.distributed
    if not gather or not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return t, 0
    world, rank = dist.get_world_size(), dist.get_rank()
    shape = torch.tensor(t.shape, device=t.device)
    shapes = [torch.zeros_like(shape) for _ in range(world)]
    dist.all_gather(shapes, shape)
    rows = [int(x[0]) for x in shapes]
    if len(set(rows)) != 1:
        raise ValueError(f"gathered COS-NCE needs equal local batches; got {rows}")
    widest = torch.stack(shapes).amax(0).tolist()
    t = _pad_to(t.detach(), widest[1:]).contiguous()
    parts = [torch.empty_like(t) for _ in range(world)]
    dist.all_gather(parts, t)
    return torch.cat(parts), rank * rows[0]


def _pad_to(x: torch.Tensor, sizes: list[int]) -> torch.Tensor:
    """``x`` zero-padded at the end of each dim after the first to ``sizes`` (dims with nothing to pad kept)."""
    pad = []
    for dim in range(x.dim() - 1, 0, -1):
        pad += [0, sizes[dim - 1] - x.shape[dim]]
    return torch.nn.functional.pad(x, pad)


def global_in_batch_cos_nce(s_vec: torch.Tensor, t_vec: torch.Tensor, gather: bool = True) -> torch.Tensor:
    """In-batch COS-NCE (eq. 1-2) of this process's rows. Under data parallelism with ``gather``, each row's
    negatives are the teacher vectors of all other rows of the GLOBAL batch (K = B x world - 1): the teacher
    vectors (no gradient) are gathered from every process and the loss is the mean over the local rows, so
    the processes' average (what DDP's gradient averaging optimises) equals the loss of one process on the
    whole global batch."""
    t_all, offset = _gather_rows(t_vec, gather)
    return losses.in_batch_cos_nce(_pad_to(s_vec, list(t_all.shape[1:])), t_all, offset=offset)


def per_position_cos_nce(h_s: torch.Tensor, h_t: torch.Tensor, mask: torch.Tensor, gather: bool = True):
    """In-batch COS-NCE over per-position distances (``method.representation: per_position``): padding positions
    zeroed on both sides, the teacher layers gathered across processes like ``global_in_batch_cos_nce``'s vectors."""
    m = mask.to(h_s.dtype).unsqueeze(-1)
    t_all, offset = _gather_rows(h_t * m, gather)
    length = t_all.shape[1]
    s, mask = _pad_to(h_s * m, [length, h_s.shape[2]]), _pad_to(mask, [length])
    return losses.in_batch_cos_nce_from_distances(losses.per_position_distances(s, t_all, mask), offset)


def _vector_width(obj: Objective, d: int) -> int:
    """Width of a layer vector of width-d hidden states: flatten pads to data.max_length tokens."""
    return d * obj.max_length if obj.method.representation == "flatten" else d


def _padded(v: torch.Tensor, width: int) -> torch.Tensor:
    """A flattened layer vector zero-padded to the memory's width (zeros change no cosine)."""
    if v.shape[1] > width:
        raise ValueError(f"layer vector of width {v.shape[1]} exceeds the memory's {width} (data.max_length)")
    return torch.nn.functional.pad(v, (0, width - v.shape[1]))


def sampled_cos_nce(obj: Objective, k: int, s_vec: torch.Tensor, t_vec: torch.Tensor, idx: torch.Tensor):
    """COS-NCE of mapped layer ``k`` with ``method.num_negatives`` negatives per example sampled from the whole
    training set (``method.negatives: sampled``): the teacher vectors of this batch (of every process) are
    written into the teacher memory first, then each example's K negatives are drawn among the OTHER examples
    whose teacher vectors the memory holds (all of them after the first epoch; before, those seen so far)."""
    memory = obj.teacher_memory[k]
    width = memory.vectors.shape[1]
    s_vec, t_vec = _padded(s_vec, width), _padded(t_vec.detach(), width)
    memory.update(idx, t_vec)
    # the two forwards of a perturbed step (eq. 7-8) see the same loss: the same batch keeps its draw
    last = obj.negative_draws.get(k)
    if last is not None and torch.equal(last[0], idx):
        rows = last[1]
    else:
        rows = memory.sample(idx, obj.method.num_negatives)
        obj.negative_draws[k] = (idx.clone(), rows)
    return losses.cos_nce(s_vec, t_vec, memory.vectors[rows])


def layer_term(obj: Objective, s_out, t_out, batch) -> torch.Tensor:
    mask = batch["attention_mask"]
    total = 0.0
    for i, j in enumerate(obj.phi):
        h_s = obj.project(i, s_out.hidden_states[i + 1].float())
        h_t = t_out.hidden_states[j].float()
        if obj.method.layer_loss == "mse":
            total = total + losses.masked_mse(h_s, h_t, mask)
            continue
        rep = obj.method.representation
        if rep == "per_position":
            total = total + per_position_cos_nce(h_s, h_t, mask, obj.method.gather_negatives)
            continue
        s_vec, t_vec = losses.layer_vectors(h_s, mask, rep), losses.layer_vectors(h_t, mask, rep)
        if obj.method.negatives == "sampled":
            total = total + sampled_cos_nce(obj, i, s_vec, t_vec, batch["idx"])
        else:
            total = total + global_in_batch_cos_nce(s_vec, t_vec, obj.method.gather_negatives)
    return total


def bind_layer(obj: Objective, ids, labels) -> None:
    """``method.negatives: sampled``: a memory of teacher layer vectors, one entry per training example and mapped
    layer, filled as examples are seen (a frozen teacher's vectors never change: plain overwrite)."""
    m = obj.method
    if m.layer_loss == "mse" or m.negatives != "sampled":
        return
    width = _vector_width(obj, obj.teacher_width)
    need = 4 * len(ids) * width * len(obj.phi)
    if need > m.memory_max_bytes:
        raise ValueError(
            f"method.negatives=sampled: the teacher memory needs {need / 1e9:.2f} GB "
            f"({len(ids)} examples x {len(obj.phi)} layers x {width} floats), above "
            f"method.memory_max_bytes={m.memory_max_bytes}; use method.representation=cls or mean, "
            "or raise the limit"
        )
    obj.teacher_memory = nn.ModuleList(Memory(ids, (width,), 0.0, init="empty", normalize=False) for _ in obj.phi)
    obj.negative_draws = {}  # layer -> (idx, rows) of the last draw (not state: a step redraws after resume)
    obj._ddp_params_and_buffers_to_ignore = [
        *getattr(obj, "_ddp_params_and_buffers_to_ignore", []),
        *(n for k, mem in enumerate(obj.teacher_memory) for n in mem.ddp_ignore(f"teacher_memory.{k}")),
    ]


def soft_term(obj: Objective, s_out, t_out, batch) -> torch.Tensor:
    m = obj.method
    return losses.soft_loss(
        s_out.logits.float(), t_out.logits.float(), m.temperature, m.soft_t2, obj.regression, m.soft_reduction
    )


def hard_term(obj: Objective, s_out, t_out, batch) -> torch.Tensor:
    m = obj.method
    return losses.hard_loss(s_out.logits.float(), batch["labels"], m.temperature, m.hard_target, obj.regression)


# LRC-BERT's own terms (declared in lrcbert.presets) get their functions
TERMS.update(
    layer=TERMS["layer"]._replace(fn=layer_term, bind=bind_layer),
    soft=TERMS["soft"]._replace(fn=soft_term),
    hard=TERMS["hard"]._replace(fn=hard_term),
)


def read_projection(path) -> list[torch.Tensor]:
    """The W matrices (out x in) saved with a run's objective (``objective.safetensors``), in layer order."""
    from safetensors.torch import load_file

    state = load_file(str(path))
    keys = (k for k in state if k.startswith("proj.") and k.endswith(".weight"))
    return [state[k] for k in sorted(keys, key=lambda k: int(k.split(".")[1]))]


class Objective(nn.Module):
    """The loss of one method for one task; holds W so that it trains with the student."""

    def __init__(self, method, task: Task | None, student_config, teacher_config=None, max_length: int = 128):
        super().__init__()
        load_plugins()
        self.method = method
        self.settings = method_settings(method)  # the method's own typed settings (method.options), or None
        self.max_length = max_length  # data.max_length: the width of a flattened layer vector in a memory
        self.teacher_width = teacher_config.hidden_size if teacher_config is not None else None
        self.regression = bool(task and task.is_regression)
        for stage in ("stage1", "stage2"):
            unknown = set(getattr(method, stage)) - set(TERMS)
            if unknown:
                raise ConfigError(
                    f"config key 'method.{stage}' names unknown term(s) {sorted(unknown)}; known: {sorted(TERMS)}"
                )
            if task is None and any(w and TERMS[t].needs_logits for t, w in getattr(method, stage).items()):
                raise ConfigError(
                    f"method.{stage}: general distillation has no labels or logits; only terms "
                    f"without them may be weighted ({sorted(t for t in TERMS if not TERMS[t].needs_logits)})"
                )
        stages = [s for s, used in (("stage1", method.stage_split > 0), ("stage2", method.stage_split < 1)) if used]
        self.used = [t for t in TERMS if any(self._weight(s, t) for s in stages)]
        self.uses_layers = "layer" in self.used
        self.phi: list[int] = []
        if teacher_config is not None and any(TERMS[t].needs_hidden or TERMS[t].needs_attentions for t in self.used):
            self.phi = layer_map(student_config.num_hidden_layers, teacher_config.num_hidden_layers, method.layer_map)
        if self.uses_layers:
            self.add_projection(student_config, teacher_config)
        for t in self.used:
            if TERMS[t].setup is not None:
                TERMS[t].setup(self, student_config, teacher_config)

    def bind_data(self, ids, labels=None) -> None:
        """Give the terms that keep per-example state (memories) the training set: its example ``idx`` values
        and labels (None for a corpus). Called once, before training and before a checkpoint is loaded."""
        for t in self.used:
            if TERMS[t].bind is not None:
                TERMS[t].bind(self, list(ids), None if labels is None else list(labels))

    def add_projection(self, student_config, teacher_config) -> None:
        """W (eq. 3): student width -> teacher width, shared by all mapped layers or one per layer."""
        if hasattr(self, "proj"):
            return
        n = 1 if self.method.projection == "shared" else len(self.phi)
        self.proj = nn.ModuleList(
            nn.Linear(student_config.hidden_size, teacher_config.hidden_size, bias=self.method.projection_bias)
            for _ in range(n)
        )

    def load_projection(self, path) -> None:
        """Start W from the one saved with an earlier run (``method.projection_init: student``; ``path`` is that
        run's ``objective.safetensors``). TinyBERT's task stage 1 goes on with the projection of its general
        distillation; a W of another shape, or none at all, is refused."""
        if not hasattr(self, "proj"):
            raise ConfigError(f"method.projection_init=student, but method {self.method.name!r} has no W to load")
        if not Path(path).is_file():
            raise ConfigError(
                f"method.projection_init=student: no saved W at {path} (the run in model.student "
                "trained none); set method.projection_init=new"
            )
        saved = read_projection(path)
        have, need = [tuple(w.shape) for w in saved], [tuple(lin.weight.shape) for lin in self.proj]
        if have != need:
            raise ConfigError(
                f"method.projection_init=student: W in {path} has shapes {have}, this run needs "
                f"{need} (method.projection and the student/teacher widths must match)"
            )
        from safetensors.torch import load_file

        state = load_file(str(path))
        biases = [state.get(f"proj.{k}.bias") for k in range(len(saved))]
        if any((b is None) != (lin.bias is None) for b, lin in zip(biases, self.proj)):
            raise ConfigError(
                f"method.projection_init=student: W in {path} and this run disagree on a bias "
                "(method.projection_bias must match the run W comes from)"
            )
        with torch.no_grad():
            for lin, w, b in zip(self.proj, saved, biases):
                lin.weight.copy_(w)
                if b is not None:
                    lin.bias.copy_(b)

    def _weight(self, stage: str, term: str) -> float:
        return float(getattr(self.method, stage).get(term, 0.0))

    def project(self, i: int, h: torch.Tensor) -> torch.Tensor:
        """h_i^S W (eq. 3): the shared W, or layer i's own."""
        w = self.proj[0 if len(self.proj) == 1 else i]
        return w(h.to(w.weight.dtype))

    def weights(self, step: int, total_steps: int) -> dict[str, float]:
        """alpha, beta, gamma (and any registered term's weight) at ``step`` of ``total_steps``:
        stage 1 for the first ``stage_split`` of the steps, stage 2 after."""
        stage = "stage1" if step < self.method.stage_split * total_steps else "stage2"
        return {t: self._weight(stage, t) for t in TERMS if self._weight(stage, t) != 0.0}

    def needs_teacher(self, weights: dict) -> bool:
        return any(TERMS[t].needs_teacher for t in weights)

    def needs_hidden(self, weights: dict) -> bool:
        return any(TERMS[t].needs_hidden for t in weights)

    def outputs(self, weights: dict) -> dict:
        """What the model calls must return for the terms of ``weights`` (keyword arguments of a forward)."""
        out = {"output_hidden_states": self.needs_hidden(weights)}
        if any(TERMS[t].needs_attentions for t in weights):
            out["output_attentions"] = True
        return out

    def forward(self, s_out, t_out, batch, weights: dict) -> dict[str, torch.Tensor]:
        """The value of every term with a non-zero weight (unweighted)."""
        return {t: TERMS[t].fn(self, s_out, t_out, batch) for t in weights}


def combine(terms: dict[str, torch.Tensor], weights: dict[str, float]) -> torch.Tensor:
    """Eq. (6): L_total = sum of weight x term."""
    return sum(weights[t] * v for t, v in terms.items())
