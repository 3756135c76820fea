"""CoDIR (Sun et al., EMNLP 2020), fine-tuning stage, as its authors' released code runs it (intersun/CoDIR:
``fairseq/criterions/sentence_prediction_crd.py``, ``crd/criterion.py``, ``crd/memory.py``); written here from
the formulas of CRD (Tian et al., ICLR 2020) and the choices that code makes. docs/fidelity.md lists each choice.

Preset ``codir`` (the released code; every choice a ``method`` key):
- representation (``codir_layers: all``, ``codir_pool: cls``): the [CLS] vector of EVERY student layer,
  concatenated into one vector; for the teacher, the [CLS] vectors of every other layer (layers 1, 3, 5, ... as
  the code's ``inner_states[1::2]``), concatenated. Each side is embedded by a linear head (``method.head``, to
  ``method.head_dim`` = 128) and L2-normalised: s_b, t_b.
- memory (``lrcbert.memory.Memory``): one entry per training example for EACH side, initialised uniformly in
  [-1/sqrt(D/3), 1/sqrt(D/3)], updated after the loss as m_i <- normalise(mu m_i + (1 - mu) v_i), mu =
  ``method.bank_momentum`` (0.5).
- negatives: ``method.nce_k`` (100) memory rows per example, drawn from examples of OTHER labels
  (``method.label_aware``; regression has no labels: any other example), never the example itself.
- CRD's NCE loss (``codir_loss: nce``), two-sided (``codir_sides: two``): with rows r_b = (b, n_1 .. n_K),
      P_s[b, k] = exp(s_b . M_T[r_bk] / tau) / Z_s,    P_t[b, k] = exp(t_b . M_S[r_bk] / tau) / Z_t,
  tau = ``method.contrast_temperature`` (0.07), Z_* fixed at the first training step to mean(exp(...)) x N
  (N = the training-set size), and ``crd_nce`` (CRD eq. 18) on each; the loss is their mean. The positive is
  the memory entry of the example itself (read before this step's update), as in CRD.
- total: (1 - beta) CE + beta KD T^2 + w_crd CRD, beta = 0.5, T = 2 (the release's run script defaults), w_crd =
  ``method.stage2.codir``. The release sums CE and KD over the batch and divides the gradient by the batch size,
  while its CRD loss is already a batch mean: the CRD term is in effect divided by the batch size once more
  (``method.crd_batch_scale: true`` reproduces that; false uses the plain batch mean).

Preset ``codir_pooled`` (the suite's earlier reading of the paper): mean-pooled layers, one head pair per mapped
layer pair (``codir_layers: mapped``, ``codir_pool: mean``), one-sided InfoNCE against the teacher memory with the
fresh teacher vector as positive (``codir_loss: info_nce``, ``codir_sides: one``), CE + KD + CoDIR at 1:1:1.

The memories are buffers of the objective: saved in checkpoints; under data parallelism each process applies
the gathered update of all processes (``lrcbert.memory``). The memory is updated once per forward in training
mode, so gradient perturbation (two forwards per step) is refused.
"""

from typing import Literal

import torch
import torch.nn.functional as F
from pydantic.dataclasses import dataclass
from torch import nn

from lrcbert import losses
from lrcbert.config import STRICT, PosInt, Positive, Share
from lrcbert.memory import Memory, gather
from lrcbert.objective import Method, Term

EPS = 1e-7  # CRD's eps in eq. 18


def crd_nce(p: torch.Tensor, n_data: int, eps: float = EPS) -> torch.Tensor:
    """CRD's NCE loss (Tian et al. 2020, eq. 18) for one side. ``p`` (B, K+1): the normalised scores
    exp(a . m / tau) / Z of the positive (column 0) and the K negatives; the noise distribution is uniform over
    the N = ``n_data`` training examples, P_n = 1 / N, so with h(x) = x / (x + K / N):
        L = -(1/B) sum_b [ log h(p_b0) + sum_k log(1 - h(p_bk)) ]
    with eps added to each denominator (and a zero positive raised to eps) as the released code does."""
    k = p.shape[1] - 1
    noise = k / float(n_data)
    pos = torch.where(p[:, 0] == 0, torch.full_like(p[:, 0], eps), p[:, 0])
    log_d1 = torch.log(pos / (pos + noise + eps))
    log_d0 = torch.log(noise / (p[:, 1:] + noise + eps))
    return -(log_d1.sum() + log_d0.sum()) / p.shape[0]


def info_nce(anchor: torch.Tensor, positive: torch.Tensor, negatives: torch.Tensor, tau: float) -> torch.Tensor:
    """InfoNCE (CoDIR paper eq. 3): anchor, positive (B, D), negatives (B, K, D), unit vectors. Mean over b of
    -log(e^{a.p/tau} / (e^{a.p/tau} + sum_k e^{a.n_k/tau}))."""
    pos = (anchor * positive).sum(-1, keepdim=True) / tau
    neg = torch.einsum("bkd,bd->bk", negatives, anchor) / tau
    logits = torch.cat([pos, neg], dim=1)
    return (torch.logsumexp(logits, dim=1) - pos[:, 0]).mean()


def _head(d_in: int, d_out: int, kind: str) -> nn.Module:
    if kind == "mlp":
        return nn.Sequential(nn.Linear(d_in, d_in), nn.ReLU(), nn.Linear(d_in, d_out))
    return nn.Linear(d_in, d_out)


def layer_groups(obj, n_student: int, n_teacher: int) -> list[tuple[list[int], list[int]]]:
    """(student hidden_states indices, teacher hidden_states indices) per embedded vector: ``all`` one group,
    every student layer 1..M against teacher layers 1, 3, 5, ...; ``mapped`` one group per mapped pair (i, phi(i))."""
    if obj.settings.codir_layers == "all":
        return [(list(range(1, n_student + 1)), list(range(1, n_teacher + 1, 2)))]
    return [([i + 1], [j]) for i, j in enumerate(obj.phi)]


def _setup(obj, student_config, teacher_config):
    m = obj.settings
    if obj.method.perturb:
        raise ValueError(
            "the codir term updates its memory once per forward; gradient perturbation runs two "
            "forwards per step: set method.perturb=false"
        )
    obj.codir_groups = layer_groups(obj, student_config.num_hidden_layers, teacher_config.num_hidden_layers)
    obj.codir_s = nn.ModuleList(
        _head(student_config.hidden_size * len(s), m.head_dim, m.head) for s, _ in obj.codir_groups
    )
    obj.codir_t = nn.ModuleList(
        _head(teacher_config.hidden_size * len(t), m.head_dim, m.head) for _, t in obj.codir_groups
    )
    obj.register_buffer("codir_z", torch.full((2, len(obj.codir_groups)), -1.0))  # Z_s, Z_t per group; -1 = unset


def _bind(obj, ids, labels):
    """One memory entry per training example, for the teacher side and (two-sided) the student side."""
    m = obj.settings
    shape = (len(obj.codir_groups), m.head_dim)
    labels = None if obj.regression else labels
    obj.codir_memory_t = Memory(ids, shape, m.bank_momentum, labels, init="random")
    names = obj.codir_memory_t.ddp_ignore("codir_memory_t")
    if m.codir_sides == "two":
        obj.codir_memory_s = Memory(ids, shape, m.bank_momentum, labels, init="random")
        names += obj.codir_memory_s.ddp_ignore("codir_memory_s")
    obj._ddp_params_and_buffers_to_ignore = [*getattr(obj, "_ddp_params_and_buffers_to_ignore", []), *names]


def _embed(heads, hidden, groups, mask, pool):
    out = []
    for head, layers in zip(heads, groups):
        x = torch.cat([losses.layer_vectors(hidden[j].float(), mask, pool) for j in layers], dim=-1)
        out.append(F.normalize(head(x), dim=-1))
    return torch.stack(out, 1)  # (B, G, D)


def _z(obj, side: int, g: int, scores: torch.Tensor, n: int) -> float:
    """Z of CRD: set at the first training step to mean(exp-scores) x N (averaged over processes), then fixed."""
    if obj.codir_z[side, g] < 0:
        with torch.no_grad():
            obj.codir_z[side, g] = gather(scores.detach().mean().reshape(1)).mean() * n
    return float(obj.codir_z[side, g])


def _codir_term(obj, s_out, t_out, batch):
    m, mask = obj.settings, batch["attention_mask"]
    if not hasattr(obj, "codir_memory_t"):
        raise ValueError("the codir term needs the training set's example indices: call Objective.bind_data first")
    mem_t, mem_s = obj.codir_memory_t, getattr(obj, "codir_memory_s", None)
    s = _embed(obj.codir_s, s_out.hidden_states, [g[0] for g in obj.codir_groups], mask, m.codir_pool)
    t = _embed(obj.codir_t, t_out.hidden_states, [g[1] for g in obj.codir_groups], mask, m.codir_pool)
    idx, n, tau = batch["idx"], len(mem_t), m.contrast_temperature
    labels = batch["labels"] if m.label_aware and not obj.regression else None
    neg = mem_t.sample(idx, m.nce_k, labels)  # (B, K)
    if m.codir_loss == "nce":
        rows = torch.cat([mem_t.positions(idx).unsqueeze(1), neg], dim=1)  # (B, K+1): the positive first
    total = 0.0
    for g in range(s.shape[1]):
        sides = [(0, s[:, g], t[:, g], mem_t)] + ([(1, t[:, g], s[:, g], mem_s)] if m.codir_sides == "two" else [])
        part = 0.0
        for side, anchor, positive, memory in sides:
            if m.codir_loss == "nce":
                scores = torch.exp(torch.einsum("bkd,bd->bk", memory.vectors[rows, g], anchor) / tau)
                part = part + crd_nce(scores / _z(obj, side, g, scores, n), n)
            else:
                part = part + info_nce(anchor, positive, memory.vectors[neg, g], tau)
        total = total + part / len(sides)
    loss = total / s.shape[1]
    if m.crd_batch_scale:
        loss = loss / s.shape[0]
    if obj.training:
        mem_t.update(idx, t.detach())
        if mem_s is not None:
            mem_s.update(idx, s.detach())
    return loss


TERMS = {"codir": Term(_codir_term, True, True, setup=_setup, bind=_bind)}  # needs labels: a task


@dataclass(config=STRICT)
class Settings:
    """CoDIR's own keys (``method.options``); the defaults are the release's."""

    contrast_temperature: Positive = 0.07  # tau of the NCE / InfoNCE scores
    bank_momentum: Share = 0.5  # memory: an entry becomes normalise(m * old + (1 - m) * new)
    label_aware: bool = True  # negatives only from samples of other labels
    head: Literal["linear", "mlp"] = "linear"  # the projection heads
    head_dim: PosInt = 128  # width of the projected representations
    nce_k: PosInt = 100  # negatives sampled per example from the memory
    codir_layers: Literal["all", "mapped"] = "all"  # [CLS] of all layers concatenated, or per mapped pair
    codir_pool: Literal["cls", "mean"] = "cls"  # the vector of a layer
    codir_loss: Literal["nce", "info_nce"] = "nce"  # CRD's NCE loss (eq. 18) or InfoNCE
    codir_sides: Literal["two", "one"] = "two"  # student and teacher anchors, or the student anchor only
    crd_batch_scale: bool = True  # divide the CRD term by the batch size, as the release does


RELEASED = {"hard": 0.5, "soft": 0.5, "codir": 1.0}  # (1 - beta) CE + beta KD T^2 + w_crd CRD, beta = 0.5
POOLED = {"codir": 1.0, "soft": 1.0, "hard": 1.0}
METHODS = [
    Method(
        "codir",
        {
            "stage_split": 0.0,
            "stage1": dict(RELEASED),
            "stage2": dict(RELEASED),
            "temperature": 2.0,
            "soft_t2": True,
            "perturb": False,
        },
        terms=TERMS,
        settings=Settings,
    ),
    Method(
        "codir_pooled",
        {
            "stage_split": 0.0,
            "stage1": dict(POOLED),
            "stage2": dict(POOLED),
            "temperature": 1.0,
            "soft_t2": False,
            "perturb": False,
            "options": {
                "codir_layers": "mapped",
                "codir_pool": "mean",
                "codir_loss": "info_nce",
                "codir_sides": "one",
                "crd_batch_scale": False,
            },
        },
        terms=TERMS,
        settings=Settings,
    ),
]
