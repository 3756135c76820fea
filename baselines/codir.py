"""CoDIR (Sun et al. 2020), fine-tuning stage, on lrcbert's engine.

For each mapped layer pair (student layer i, teacher layer phi(i)), each sample's layer output is mean-pooled
over its non-padding tokens, projected by a trainable head (one per layer and side: ``method.head`` linear or a
2-layer MLP, to ``method.head_dim``) and L2-normalised. InfoNCE (temperature ``method.contrast_temperature``,
0.07) then pulls the student vector s_b to the teacher vector t_b of the same sample and pushes it from the
teacher vectors of other samples held in a memory bank:
    L = mean_b -log( exp(s_b.t_b / tau) / (exp(s_b.t_b / tau) + sum_{k in N(b)} exp(s_b.m_k / tau)) ),
averaged over the layer pairs. N(b): bank entries of *other* samples (an entry holding sample b itself is never a
negative) and, with ``method.label_aware`` (default, classification only), only of samples of another label.
The full objective adds KD on the logits and CE (lrcbert's ``soft`` and ``hard`` terms); weights in METHODS.

Memory bank: the ``method.bank_size`` most recently seen training samples (a ring buffer of their projected,
normalised teacher vectors, labels and sample ids); a sample already in the bank is updated in place,
m <- normalise(mu m + (1 - mu) t) with mu = ``method.bank_momentum`` (CRD's memory update). The bank is a set
of buffers of the objective, so it is saved in every checkpoint and a resumed run continues with the same bank.
It is updated once per forward in training mode (the gradient-perturbation pass would update it twice, so the
CoDIR preset leaves perturbation off). With several processes, DDP broadcasts buffers from process 0 at each
forward, so every process draws its negatives from process 0's bank (still never the anchor: entries are matched
by sample id).
"""
import torch
import torch.nn.functional as F
from torch import nn

from lrcbert import losses
from lrcbert.objective import Term


def info_nce(anchor: torch.Tensor, positive: torch.Tensor, negatives: torch.Tensor, neg_mask: torch.Tensor,
             tau: float) -> torch.Tensor:
    """InfoNCE (CoDIR eq. 3 / CRD): anchor, positive (B, D) unit vectors, negatives (K, D) unit vectors, neg_mask
    (B, K) True where entry k is a negative of sample b. Mean over b of
    -log(e^{a.p/tau} / (e^{a.p/tau} + sum_{k: mask} e^{a.n_k/tau}))."""
    pos = (anchor * positive).sum(-1, keepdim=True) / tau
    neg = (anchor @ negatives.T / tau).masked_fill(~neg_mask, float("-inf"))
    logits = torch.cat([pos, neg], dim=1)
    return (torch.logsumexp(logits, dim=1) - pos[:, 0]).mean()


def negative_mask(ids: torch.Tensor, labels: torch.Tensor | None, bank_ids: torch.Tensor, bank_labels: torch.Tensor,
                  label_aware: bool) -> torch.Tensor:
    """(B, K): bank entry k is a negative of batch sample b: it is filled (id >= 0), holds another sample
    (id differs) and, when ``label_aware``, a sample of another label."""
    mask = (bank_ids[None, :] >= 0) & (bank_ids[None, :] != ids[:, None])
    if label_aware and labels is not None:
        mask &= bank_labels[None, :] != labels[:, None]
    return mask


class MemoryBank(nn.Module):
    """Ring buffer of (vectors (K, L, D), sample ids, labels); all state in persistent buffers."""

    def __init__(self, size: int, layers: int, dim: int, momentum: float):
        super().__init__()
        self.momentum = momentum
        self.register_buffer("vectors", torch.zeros(size, layers, dim))
        self.register_buffer("ids", torch.full((size,), -1, dtype=torch.long))
        self.register_buffer("labels", torch.full((size,), -1, dtype=torch.long))
        self.register_buffer("pointer", torch.zeros((), dtype=torch.long))

    @torch.no_grad()
    def update(self, vectors: torch.Tensor, ids: torch.Tensor, labels: torch.Tensor) -> None:
        size = self.ids.shape[0]
        match = self.ids[None, :] == ids[:, None]                            # (B, K)
        seen = match.any(1)
        if seen.any():
            slot = match[seen].float().argmax(1)
            mixed = self.momentum * self.vectors[slot] + (1 - self.momentum) * vectors[seen].to(self.vectors.dtype)
            self.vectors[slot] = F.normalize(mixed, dim=-1)
        new = (~seen).nonzero().flatten()[-size:]
        if len(new):
            slot = (self.pointer + torch.arange(len(new), device=ids.device)) % size
            self.vectors[slot] = vectors[new].to(self.vectors.dtype)
            self.ids[slot], self.labels[slot] = ids[new], labels[new]
            self.pointer.fill_(int((self.pointer + len(new)) % size))


def _head(d_in: int, d_out: int, kind: str) -> nn.Module:
    if kind == "mlp":
        return nn.Sequential(nn.Linear(d_in, d_in), nn.ReLU(), nn.Linear(d_in, d_out))
    return nn.Linear(d_in, d_out)


def _setup(obj, student_config, teacher_config):
    m = obj.method
    n = len(obj.phi)
    obj.codir_s = nn.ModuleList(_head(student_config.hidden_size, m.head_dim, m.head) for _ in range(n))
    obj.codir_t = nn.ModuleList(_head(teacher_config.hidden_size, m.head_dim, m.head) for _ in range(n))
    obj.codir_bank = MemoryBank(m.bank_size, n, m.head_dim, m.bank_momentum)


def _codir_term(obj, s_out, t_out, batch):
    m, mask = obj.method, batch["attention_mask"]
    bank = obj.codir_bank
    labels = None if obj.regression else batch["labels"].long()
    neg = negative_mask(batch["idx"], labels, bank.ids, bank.labels, m.label_aware)
    negatives = bank.vectors.clone()        # the bank is updated in place below; the graph keeps this copy
    total, teacher_vectors = 0.0, []
    for k, (i, j) in enumerate(enumerate(obj.phi)):
        s = F.normalize(obj.codir_s[k](losses.layer_vectors(s_out.hidden_states[i + 1].float(), mask, "mean")), dim=-1)
        t = F.normalize(obj.codir_t[k](losses.layer_vectors(t_out.hidden_states[j].float(), mask, "mean")), dim=-1)
        total = total + info_nce(s, t, negatives[:, k], neg, m.contrast_temperature)
        teacher_vectors.append(t.detach())
    if obj.training:
        bank.update(torch.stack(teacher_vectors, 1), batch["idx"],
                    torch.zeros_like(batch["idx"]) if labels is None else labels)
    return total / max(1, len(obj.phi))


TERMS = {"codir": Term(_codir_term, True, True, setup=_setup)}   # needs labels: a task
WEIGHTS = {"codir": 1.0, "soft": 1.0, "hard": 1.0}
METHODS = {
    "codir": ({"stage_split": 0.0, "stage1": dict(WEIGHTS), "stage2": dict(WEIGHTS), "temperature": 1.0,
               "perturb": False, "contrast_temperature": 0.07}, {}),
}
