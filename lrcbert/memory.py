"""A memory of per-example vectors: one entry per training example, for contrastive losses whose negatives come
from the whole training set rather than the batch (CoDIR's CRD memory; LRC-BERT's ``method.negatives: sampled``).

Entries are addressed by the example's ``idx`` (the collator puts it in ``batch["idx"]``); ``positions`` turns
those into rows. Everything the memory holds is a persistent buffer, so it is written into every checkpoint with
the objective that owns it and a resumed run continues with the very same memory.

Update (CRD, Tian et al. 2020): entry <- m * entry + (1 - m) * v, L2-normalised when ``normalize`` (CRD), plain
overwrite when m = 0 (a frozen teacher's vectors never change, so writing them twice is harmless).

Data parallelism: ``update`` first gathers (idx, vectors) from every process, so each process applies the same
update to its own copy and the copies stay identical without any broadcast (the buffers are listed in
``ddp_ignore`` so that DDP does not re-broadcast an N-row tensor from process 0 at every forward). Sampling uses
the global torch RNG, which checkpoints restore.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


def gather(t: torch.Tensor) -> torch.Tensor:
    """Concatenate ``t`` (equal shapes on every process) from all processes in rank order; ``t`` itself when
    not distributed."""
    dist = torch.distributed
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return t
    parts = [torch.empty_like(t) for _ in range(dist.get_world_size())]
    dist.all_gather(parts, t.contiguous())
    return torch.cat(parts)


class Memory(nn.Module):
    """``vectors`` (N, *shape) for the N training examples ``ids`` (their ``idx`` values), their ``labels``
    (-1 when unknown) and ``filled`` (which entries hold a written vector; all of them after ``init="random"``)."""

    def __init__(
        self, ids, shape: tuple[int, ...], momentum: float, labels=None, init: str = "empty", normalize: bool = True
    ):
        super().__init__()
        ids = torch.as_tensor(list(ids), dtype=torch.long)
        order = torch.argsort(ids)
        sorted_ids = ids[order]
        if len(ids) == 0 or (sorted_ids[1:] == sorted_ids[:-1]).any():
            raise ValueError("memory: the training set's idx column must be non-empty and unique")
        self.momentum, self.normalize = float(momentum), normalize
        n = len(ids)
        lab = (
            torch.full((n,), -1, dtype=torch.long)
            if labels is None
            else torch.as_tensor(list(labels)).to(torch.long)[order]
        )
        self.register_buffer("ids", sorted_ids)
        self.register_buffer("labels", lab)
        if init == "random":  # CRD's initialisation: uniform in [-s, s], s = 1 / sqrt(dim / 3)
            dim = shape[-1]
            s = 1.0 / math.sqrt(dim / 3)
            self.register_buffer("vectors", torch.rand(n, *shape) * 2 * s - s)
            self.register_buffer("filled", torch.ones(n, dtype=torch.bool))
        elif init == "empty":
            self.register_buffer("vectors", torch.zeros(n, *shape))
            self.register_buffer("filled", torch.zeros(n, dtype=torch.bool))
        else:
            raise ValueError(f"unknown memory init {init!r}")

    def __len__(self) -> int:
        return self.ids.shape[0]

    def ddp_ignore(self, prefix: str) -> list[str]:
        """Qualified names of the buffers DDP must not broadcast (``prefix``: this module's name in the wrapped one)."""
        return [f"{prefix}.{name}" for name, _ in self.named_buffers()]

    def positions(self, idx: torch.Tensor) -> torch.Tensor:
        """Rows of the examples ``idx``; an idx the memory does not hold is an error."""
        idx = idx.to(self.ids.device).long()
        pos = torch.searchsorted(self.ids, idx).clamp_max(len(self) - 1)
        if not torch.equal(self.ids[pos], idx):
            missing = idx[self.ids[pos] != idx][:5].tolist()
            raise ValueError(f"memory: example idx {missing} not in the training set the memory was built for")
        return pos

    @torch.no_grad()
    def update(self, idx: torch.Tensor, vectors: torch.Tensor) -> None:
        """Write the vectors of examples ``idx`` (gathered from every process first) with momentum."""
        idx, vectors = gather(idx.to(self.ids.device).long()), gather(vectors.detach().to(self.vectors.dtype))
        pos = self.positions(idx)
        if self.momentum:
            old = torch.where(self.filled[pos].view(-1, *[1] * (vectors.dim() - 1)), self.vectors[pos], vectors)
            vectors = self.momentum * old + (1 - self.momentum) * vectors
        if self.normalize:
            vectors = F.normalize(vectors, dim=-1)
        self.vectors[pos] = vectors
        self.filled[pos] = True

    def sample(self, idx: torch.Tensor, k: int, labels: torch.Tensor | None = None) -> torch.Tensor:
        """(B, k) rows of negatives for the examples ``idx``: drawn uniformly among the filled entries of OTHER
        examples (an example is never its own negative) and, when ``labels`` is given, only among entries of
        another label. Without replacement (as CoDIR's released ``np.random.choice(..., replace=False)``) unless a
        row has fewer than k candidates, then with replacement (CoDIR's ``replace`` flag does the same)."""
        pos = self.positions(idx)
        cand = self.filled.unsqueeze(0).expand(len(pos), -1).clone()
        cand[torch.arange(len(pos)), pos] = False
        if labels is not None:
            cand &= self.labels.unsqueeze(0) != labels.to(self.labels.device).long().unsqueeze(1)
        counts = cand.sum(1)
        if (counts == 0).any():
            b = int((counts == 0).nonzero()[0])
            raise ValueError(
                f"memory: example idx {int(idx[b])} has no candidate negative "
                f"({'no other label' if labels is not None else 'no other example'} in memory)"
            )
        return torch.multinomial(cand.float(), k, replacement=bool((counts < k).any()))
