"""BERT-PKD-4, PKD-skip (Sun et al. 2019): patient knowledge distillation on lrcbert's engine.

Loss: (1 - alpha) CE + alpha KL(T) T^2 + beta * sum over mapped layers of the MSE between the L2-normalised
[CLS] vectors of student layer i and teacher layer phi(i), for the student's intermediate layers 1..M-1 (the last
layer is covered by the logits). phi is lrcbert's layer map (``method.layer_map``, default i * N / M), so a
4-layer student of a 12-layer teacher learns from teacher layers 3, 6, 9 (PKD-skip). The student has the
teacher's width; PKD initialises it with the teacher's first M layers, which config.yaml states as
``model.student_layers: [1, 2, 3, 4]``.

``method.options.pkd_reduction``: ``mean`` (default) averages the squared difference over batch, layer pairs and hidden
dimension, as PKD's released code does (``src/KD_loss.py`` ``patience_loss``: one ``F.mse_loss`` over the stacked
(B, M-1, d) [CLS] tensors; hence beta of 100-1000); ``sum`` sums over the hidden dimension and the layer pairs and
averages over the batch (the paper's eq. 5; TextBrewer's ``pkd_loss``).

The KD term follows the released ``distillation_loss``: ``nn.KLDivLoss(reduction="mean")`` x T^2, i.e. averaged
over batch AND classes (``method.soft_reduction: mean``; ``batchmean`` is the usual per-example KL).

The PKD grid: ``GRID`` below (T, alpha, beta); the default preset uses the released PKD-skip run's T = 10,
alpha = 0.7, beta = 500 (``src/argument_parser.py``, ``kd.cls``). A grid point is a system with
``set: {method: {temperature: T, stage2: {soft: alpha, hard: 1 - alpha, pkd: beta}}}`` (docs/configuration.md).
"""

from typing import Literal

import torch
import torch.nn.functional as F
from pydantic.dataclasses import dataclass

from lrcbert.config import STRICT, ConfigError
from lrcbert.objective import Method, Term

GRID = {"temperature": (5, 10, 20), "alpha": (0.2, 0.5, 0.7), "beta": (10, 100, 500, 1000)}
T, ALPHA, BETA = 10.0, 0.7, 500.0


def pkd_loss(student_cls: list[torch.Tensor], teacher_cls: list[torch.Tensor], reduction: str = "mean") -> torch.Tensor:
    """PKD's patient loss (Sun et al. 2019, eq. 5) on the [CLS] vectors (B, d) of the layer pairs:
    || s / |s|_2 - t / |t|_2 ||^2. ``reduction="sum"``: summed over d and the pairs, averaged over the batch (the
    paper); ``"mean"``: averaged over batch, pairs and d (the released code's single MSE)."""
    diff = torch.stack(
        [
            (F.normalize(s.float(), dim=-1) - F.normalize(t.float(), dim=-1)) ** 2
            for s, t in zip(student_cls, teacher_cls)
        ],
        dim=1,
    )  # (B, pairs, d)
    return diff.mean() if reduction == "mean" else diff.sum((1, 2)).mean()


def _pkd_term(obj, s_out, t_out, batch) -> torch.Tensor:
    pairs = list(enumerate(obj.phi))[:-1] or list(
        enumerate(obj.phi)
    )  # skip the last layer (a 1-layer student keeps it)
    return pkd_loss(
        [s_out.hidden_states[i + 1][:, 0] for i, _ in pairs],
        [t_out.hidden_states[j][:, 0] for _, j in pairs],
        obj.settings.pkd_reduction,
    )


def _setup(obj, student_config, teacher_config):
    if student_config.hidden_size != teacher_config.hidden_size:
        raise ConfigError(
            f"the pkd term compares [CLS] vectors directly: student width {student_config.hidden_size} "
            f"!= teacher width {teacher_config.hidden_size}"
        )


TERMS = {"pkd": Term(_pkd_term, True, True, needs_logits=False, setup=_setup)}


@dataclass(config=STRICT)
class Settings:
    """PKD's own key (``method.options``)."""

    pkd_reduction: Literal["mean", "sum"] = "mean"  # the [CLS] MSE averaged over elements, or summed over d


WEIGHTS = {"soft": ALPHA, "hard": 1.0 - ALPHA, "pkd": BETA}
METHOD = Method(
    "pkd",
    {
        "stage_split": 0.0,
        "stage1": dict(WEIGHTS),
        "stage2": dict(WEIGHTS),
        "temperature": T,
        "soft_t2": True,
        "soft_reduction": "mean",
        "perturb": False,
    },
    {"model": {"student_init": "teacher_layers"}},
    terms=TERMS,
    settings=Settings,
)
