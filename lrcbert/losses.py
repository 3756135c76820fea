"""LRC-BERT's losses as pure functions of tensors (paper eq. 1-5), plus the layer-representation helpers.

Nothing here holds state or knows about models: the objective (``objective.py``) picks the tensors and
weights, these functions only compute.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

EPS = 1e-8


def angular_distance(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Eq. (2): g(x, y) = 1 - x.y / (|x| |y|), in [0, 2], over the last dimension (broadcasting)."""
    return 1.0 - F.cosine_similarity(x, y, dim=-1, eps=EPS)


def cos_nce_from_distances(g_pos: torch.Tensor, g_neg: torch.Tensor) -> torch.Tensor:
    """Eq. (1) given the angular distances: ``g_pos`` = g(z_t, z_s) of shape (B,), ``g_neg`` = g(n_i, z_s)
    of shape (B, K). Returns the batch mean of sum_i (2 - (g_neg_i - g_pos)) / (2K) + g_pos."""
    k = g_neg.shape[-1]
    per_sample = (2.0 - (g_neg - g_pos.unsqueeze(-1))).sum(-1) / (2 * k) + g_pos
    return per_sample.mean()


def cos_nce(student: torch.Tensor, teacher: torch.Tensor, negatives: torch.Tensor) -> torch.Tensor:
    """COS-NCE, paper eq. (1)-(2).

    student, teacher: (B, D) representations of the same samples (z^S, z^T);
    negatives: (B, K, D) teacher representations of K other samples for each sample (n_1^T .. n_K^T).
    Returns the mean over the batch of
        sum_i (2 - (g(n_i, z_s) - g(z_t, z_s))) / (2K) + g(z_t, z_s),
    which is 0 when z_s points along z_t and every negative points opposite, and 4 in the reverse case.
    """
    if negatives.dim() != 3 or negatives.shape[0] != student.shape[0] or negatives.shape[1] < 1:
        raise ValueError(f"negatives must have shape (B, K>=1, D); got {tuple(negatives.shape)}")
    g_pos = angular_distance(teacher, student)
    g_neg = angular_distance(negatives, student.unsqueeze(1))
    return cos_nce_from_distances(g_pos, g_neg)


def in_batch_cos_nce(student: torch.Tensor, teacher: torch.Tensor, offset: int = 0) -> torch.Tensor:
    """COS-NCE with in-batch negatives: sample b's negatives are the teacher vectors of the other B - 1
    samples. Equal to ``cos_nce(student, teacher, negatives)`` with those negatives gathered explicitly,
    but computed from one (B, B) cosine matrix instead of materialising (B, B-1, D).

    ``teacher`` may hold more rows than ``student`` (G >= B, e.g. the global batch of several processes):
    student row b's positive is then teacher row ``offset + b`` and its K = G - 1 negatives all other rows."""
    s = F.normalize(student, dim=-1, eps=EPS)
    t = F.normalize(teacher, dim=-1, eps=EPS)
    return in_batch_cos_nce_from_distances(1.0 - s @ t.T, offset)  # g[b, j] = g(t_j, s_b)


def in_batch_cos_nce_from_distances(g: torch.Tensor, offset: int = 0) -> torch.Tensor:
    """Eq. (1) with in-batch negatives, given the (B, G) matrix ``g[b, j]`` = g(t_j, s_b): student row b's positive
    is column ``offset + b``, its K = G - 1 negatives every other column."""
    b, n = g.shape
    if n < 2:
        raise ValueError("in-batch COS-NCE needs a batch of at least 2 samples")
    if not 0 <= offset <= n - b:
        raise ValueError(f"offset {offset} does not place {b} student rows among {n} teacher rows")
    pos = torch.zeros(b, n, dtype=torch.bool, device=g.device)
    pos[torch.arange(b, device=g.device), offset + torch.arange(b, device=g.device)] = True
    return cos_nce_from_distances(g[pos], g[~pos].view(b, n - 1))


def per_position_distances(student: torch.Tensor, teacher: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """The per-position reading of eq. (2) (``method.representation: per_position``, the reading of the other public
    re-implementation, aitsc/GLMKD): g between sample b's student layer and sample j's teacher layer is the mean,
    over the non-padding positions p of sample b, of 1 - cos(s_{b,p}, t_{j,p}).

    student (B, l, d), teacher (G, l, d) with padding positions already zeroed (a zero vector has cosine 0),
    mask (B, l) of the student rows. Returns (B, G). Because eq. (1) is linear in g, COS-NCE over these distances
    equals the mean over positions of a COS-NCE computed position by position."""
    s = F.normalize(student, dim=-1, eps=EPS)
    t = F.normalize(teacher, dim=-1, eps=EPS)
    cos = torch.einsum("bpd,gpd->bgp", s, t)
    m = mask.to(cos.dtype).unsqueeze(1)
    return 1.0 - (cos * m).sum(-1) / m.sum(-1).clamp_min(1.0)


def layer_vectors(hidden: torch.Tensor, mask: torch.Tensor, representation: str = "flatten") -> torch.Tensor:
    """Turn a layer output (B, l, d) into one vector per sample (B, D) as ``method.representation`` says.

    flatten: the whole l x d matrix with padding positions zeroed (so padding never changes a cosine);
    cls: the first token; mean: the mean over non-padding tokens."""
    m = mask.to(hidden.dtype).unsqueeze(-1)
    if representation == "flatten":
        return (hidden * m).flatten(1)
    if representation == "cls":
        return hidden[:, 0]
    if representation == "mean":
        return (hidden * m).sum(1) / m.sum(1).clamp_min(1.0)
    raise ValueError(f"unknown representation {representation!r}")


def masked_mse(student: torch.Tensor, teacher: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean squared error over the non-padding positions of (B, l, d) layer outputs (BERT_M's layer loss)."""
    m = mask.to(student.dtype).unsqueeze(-1)
    return ((student - teacher) ** 2 * m).sum() / (m.sum() * student.shape[-1]).clamp_min(1.0)


def soft_loss(
    student_logits: torch.Tensor,
    teacher_logits: torch.Tensor,
    tau: float,
    t2: bool = False,
    regression: bool = False,
    reduction: str = "batchmean",
) -> torch.Tensor:
    """Eq. (4): KL(softmax(y_t / tau) || softmax(y_s / tau)), averaged over the batch (x tau^2 if ``t2``);
    ``reduction="mean"`` also divides by the number of classes (torch's ``KLDivLoss(reduction="mean")``, which
    PKD's released code uses). For regression (STS-B) the MSE between student and teacher predictions."""
    if regression:
        return F.mse_loss(student_logits.view(-1), teacher_logits.view(-1))
    if reduction not in ("batchmean", "mean"):
        raise ValueError(f"unknown soft-loss reduction {reduction!r}")
    log_p_s = F.log_softmax(student_logits / tau, dim=-1)
    log_p_t = F.log_softmax(teacher_logits / tau, dim=-1)
    kl = F.kl_div(log_p_s, log_p_t, log_target=True, reduction="batchmean")
    if reduction == "mean":  # per element, written out: torch announces that its "mean" will change
        kl = kl / student_logits.shape[-1]
    return kl * tau * tau if t2 else kl


def hard_loss(
    student_logits: torch.Tensor,
    labels: torch.Tensor,
    tau: float = 1.0,
    target: str = "one_hot",
    regression: bool = False,
) -> torch.Tensor:
    """Eq. (5): cross-entropy of softmax(y_s) against the gold label, averaged over the batch.

    target="one_hot" uses the one-hot label (the paper's text); "tempered" uses softmax(one_hot / tau),
    which is what eq. (5) prints. For regression, the MSE between prediction and gold score."""
    if regression:
        return F.mse_loss(student_logits.view(-1), labels.to(student_logits.dtype).view(-1))
    if target == "one_hot":
        return F.cross_entropy(student_logits, labels)
    if target == "tempered":
        q = F.softmax(F.one_hot(labels, student_logits.shape[-1]).to(student_logits.dtype) / tau, dim=-1)
        return -(q * F.log_softmax(student_logits, dim=-1)).sum(-1).mean()
    raise ValueError(f"unknown hard target {target!r}")
