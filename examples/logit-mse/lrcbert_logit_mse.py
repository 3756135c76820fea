"""Logit-MSE distillation: the student regresses the teacher's logits (Ba & Caruana 2014), plus the gold-label
cross-entropy, for the whole run. A complete lrcbert method: one loss term, its settings, one preset."""

from typing import Annotated

import torch
from pydantic import Field
from pydantic.dataclasses import dataclass

from lrcbert.config import STRICT
from lrcbert.presets import Method, Term


@dataclass(config=STRICT)  # strict: unknown keys, wrong types and values out of range are refused
class Settings:
    """The keys of ``method.options`` for this method."""

    logit_scale: Annotated[float, Field(gt=0, le=100)] = 1.0  # both logits divided by this before the MSE
    center: bool = False  # subtract each example's mean logit first (logits are defined up to a constant)


def logit_mse(obj, s_out, t_out, batch) -> torch.Tensor:
    """Mean squared difference of the scaled (optionally centred) logits: pure, from the model outputs."""
    o = obj.settings
    s, t = s_out.logits.float() / o.logit_scale, t_out.logits.float().detach() / o.logit_scale
    if o.center:
        s, t = s - s.mean(-1, keepdim=True), t - t.mean(-1, keepdim=True)
    return torch.nn.functional.mse_loss(s, t)


WEIGHTS = {"logit_mse": 1.0, "hard": 1.0}  # "hard" is lrcbert's own cross-entropy term
METHOD = Method(
    "logit_mse",
    {"stage_split": 0.0, "stage1": WEIGHTS, "stage2": WEIGHTS, "perturb": False},  # method keys that differ
    terms={"logit_mse": Term(logit_mse, needs_teacher=True, needs_hidden=False)},
    settings=Settings,
    kind="task",  # run by `lrcbert distill` (a general-distillation method says "general")
)
