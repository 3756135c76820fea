"""ACKD (Guo et al., Findings of ACL 2023), **a reconstruction from the abstract only**: the paper's full text was
not available, so every detail below is this suite's reading of the abstract, and every table that shows ACKD
says "(reconstruction)".

What the abstract states: (1) a contrastive distillation loss (CDL) on BERT's hidden-state features that
explicitly supervises the student to learn discriminative features: the student's feature of a sample is pulled
to the teacher's feature of the same sample and pushed from the teacher's features of other samples; (2) sample
adaptive reweighting (SAR): hard samples, whose features are less discriminative (similar to other samples'
features although their meaning differs), get more weight; (3) SAR inside CDL gives the adaptive contrastive
distillation loss, used together with the usual distillation.

Our reading, as implemented:
- features: for each mapped layer pair (student layer i, teacher layer phi(i)), the mean over non-padding
  tokens (``method.representation``, preset ``mean``) of the student layer output projected by W to the
  teacher's width (lrcbert's projection) and of the teacher layer output;
- CDL: in-batch InfoNCE with cosine similarity and temperature ``method.options.contrast_temperature`` (0.1): anchor
  the student feature s_b, positive the teacher feature t_b, negatives the teacher features t_j of the other
  samples in the batch: l_b = -log p_b, p_b = exp(cos(s_b, t_b)/tau) / sum_j exp(cos(s_b, t_j)/tau);
- hardness: h_b = 1 - p_b, the probability mass the student's feature gives to other samples (high when the
  student cannot tell sample b from the others);
- SAR weights: w_b = B * softmax_b(h_b / ``method.options.sar_temperature``), computed without gradient (mean 1 over
  the batch, increasing in h_b); the adaptive loss is mean_b w_b l_b, averaged over the layer pairs;
- full objective: adaptive CDL + KD on logits + CE (lrcbert's ``soft``/``hard``), weights 1 : 1 : 1, for the
  whole run, from the general-distilled student (as LRC-BERT).
"""

import torch
import torch.nn.functional as F
from pydantic.dataclasses import dataclass

from lrcbert import losses
from lrcbert.config import STRICT, Positive
from lrcbert.objective import Method, Term


def sar_weights(hardness: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """Sample adaptive reweighting (our reading): B * softmax(h / temperature), no gradient; mean 1, strictly
    increasing in the hardness h."""
    h = hardness.detach().float()
    return h.shape[0] * F.softmax(h / temperature, dim=0)


def adaptive_contrastive_loss(
    student: torch.Tensor, teacher: torch.Tensor, tau: float = 0.1, sar_temperature: float = 1.0
) -> tuple[torch.Tensor, torch.Tensor]:
    """ACKD's adaptive CDL (reconstruction) for one layer: student, teacher (B, D) features of the same samples.
    Returns (mean_b w_b l_b, w) with l_b the in-batch InfoNCE of sample b and w the SAR weights."""
    if student.shape[0] < 2:
        raise ValueError("the contrastive distillation loss needs a batch of at least 2 samples")
    logits = F.normalize(student.float(), dim=-1) @ F.normalize(teacher.float(), dim=-1).T / tau
    log_p = F.log_softmax(logits, dim=1).diagonal()
    w = sar_weights(1.0 - log_p.exp(), sar_temperature)
    return (w * -log_p).mean(), w


def _ackd_term(obj, s_out, t_out, batch):
    rep, o, mask = obj.method.representation, obj.settings, batch["attention_mask"]
    total = 0.0
    for i, j in enumerate(obj.phi):
        s = losses.layer_vectors(obj.project(i, s_out.hidden_states[i + 1].float()), mask, rep)
        t = losses.layer_vectors(t_out.hidden_states[j].float(), mask, rep)
        total = total + adaptive_contrastive_loss(s, t, o.contrast_temperature, o.sar_temperature)[0]
    return total / max(1, len(obj.phi))


def _setup(obj, student_config, teacher_config):
    obj.add_projection(student_config, teacher_config)


TERMS = {"ackd": Term(_ackd_term, True, True, needs_logits=False, setup=_setup)}


@dataclass(config=STRICT)
class Settings:
    """ACKD's own keys (``method.options``)."""

    contrast_temperature: Positive = 0.07  # tau of the in-batch InfoNCE (the preset: 0.1)
    sar_temperature: Positive = 1.0  # sharpness of sample adaptive reweighting (weights ~ exp(h / t))


WEIGHTS = {"ackd": 1.0, "soft": 1.0, "hard": 1.0}
METHOD = Method(
    "ackd",
    {
        "stage_split": 0.0,
        "stage1": dict(WEIGHTS),
        "stage2": dict(WEIGHTS),
        "temperature": 1.0,
        "perturb": False,
        "representation": "mean",
        "options": {"contrast_temperature": 0.1},
    },
    terms=TERMS,
    settings=Settings,
)
