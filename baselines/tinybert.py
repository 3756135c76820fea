"""TinyBERT-4 (Jiao et al. 2019) on lrcbert's engine: general distillation, then task distillation in two
stages, all with the shared augmentation module ``lrcbert.augment``.

Methods (presets):
  tinybert_general       general distillation on the corpus: embedding MSE + hidden-state MSE + attention MSE;
  tinybert_intermediate  task stage 1 on the augmented training set: the same three intermediate losses;
  tinybert               task stage 2 on the augmented training set: soft cross-entropy on the logits.
The workflow chains them (config/config.yaml, system ``tinybert4``: ``students.tinybert4`` general distillation,
``augment_tasks: all``, ``augment_train: true``).

Losses (TinyBERT eq. 7-12), with M student and N teacher layers and g(m) = m * N / M (lrcbert's layer map):
  embedding  MSE(E^S W, E^T)                       (the embedding outputs, hidden_states[0]);
  hidden     sum_m MSE(H_m^S W, H_g(m)^T);
  attention  sum_m (1/h) sum_heads MSE(A_m^S, A_g(m)^T);
  soft_ce    -sum softmax(z^T / t) . log_softmax(z^S / t), t = ``method.temperature`` (1 here; MSE for STS-B).
W is one trainable (d_S x d_T) matrix shared by embeddings and every layer (lrcbert's ``method.projection:
shared``). Task stage 1 goes on with the W of general distillation (``method.projection_init: student``, as
TinyBERT's released code keeps its ``fit_dense`` layer in the student checkpoint); it therefore needs a
general-distilled student (set ``method.projection_init: new`` to start W afresh). By default every MSE ignores
padding: only non-padding tokens, and for attention only (query, key) pairs of two non-padding tokens, count.

As released (``TinyBERT/task_distill.py`` main loop, docs/fidelity.md), the presets set
``method.options.attention_target: scores`` (the unnormalised Q K^T / sqrt(d_k) the code compares; ``probs`` is the
paper's A = softmax(Q K^T / sqrt(d_k)), taken before attention dropout), ``method.projection_bias: true``
(``fit_dense`` is an ``nn.Linear`` with bias) and ``method.soft_reduction: mean`` (its ``soft_cross_entropy``
averages over batch and classes); for STS-B the prediction stage is the MSE against the gold score, as released.
``method.options.tinybert_padding``: ``masked`` (default: padding never counts; with dynamic padding the released
choice would make the loss depend on the batch's longest example) or ``all`` (the released MSEs over every
position of the padded batch; with ``data.pad_to_max_length: true`` this is the released computation).
Both come from the attention implementation ``eager_scores`` registered here with transformers'
``AttentionInterface``: eager attention that returns the raw scores as its attention weights, so
``output_attentions=True`` yields the scores and this module takes the masked softmax itself. The TinyBERT
intermediate presets set ``model.attn_implementation: eager_scores``; any other implementation is refused with an error.
"""

from typing import Literal

import torch
import torch.nn.functional as F
from pydantic.dataclasses import dataclass
from transformers import AttentionInterface
from transformers.masking_utils import ALL_MASK_ATTENTION_FUNCTIONS, AttentionMaskInterface

from lrcbert import losses
from lrcbert.config import STRICT, ConfigError
from lrcbert.objective import Method, Term

ATTN = "eager_scores"


def eager_scores(module, query, key, value, attention_mask, scaling=None, dropout=0.0, **kwargs):
    """Eager attention (as transformers' BERT computes it) returning the raw scores Q K^T * scaling, (B, h, l, l),
    as its attention weights."""
    if scaling is None:
        scaling = query.size(-1) ** -0.5
    scores = torch.matmul(query, key.transpose(2, 3)) * scaling
    w = scores
    if attention_mask is not None:
        if attention_mask.dtype == torch.bool:
            w = w.masked_fill(~attention_mask, torch.finfo(w.dtype).min)
        else:
            w = w + attention_mask
    p = F.dropout(F.softmax(w, dim=-1), p=dropout, training=module.training)
    return torch.matmul(p, value).transpose(1, 2).contiguous(), scores


AttentionInterface.register(ATTN, eager_scores)
AttentionMaskInterface.register(ATTN, ALL_MASK_ATTENTION_FUNCTIONS["eager"])  # the same (additive) mask as eager


def attention_loss(
    att_s: torch.Tensor, att_t: torch.Tensor, mask: torch.Tensor, target: str = "probs", padding: str = "masked"
) -> torch.Tensor:
    """TinyBERT eq. (8) for one layer pair, (A^S - A^T)^2 averaged. ``att_*``: raw scores (B, h, l, l);
    ``target="probs"`` compares the softmax over the non-padding keys, ``"scores"`` the scores themselves.
    ``padding="masked"``: the mean over heads and (query, key) pairs of two non-padding tokens; ``"all"``: the
    released code's ``MSELoss()`` over every entry of the padded batch, entries at padding keys set to zero
    (its ``torch.where(att <= -1e2, 0, att)`` of the masked scores)."""
    keys = mask[:, None, None, :].to(torch.bool)  # (B, 1, 1, l)
    pair = keys & mask[:, None, :, None].to(torch.bool) if padding == "masked" else keys.expand_as(att_s)
    if target == "probs":
        att_s = F.softmax(att_s.float().masked_fill(~keys, float("-inf")), dim=-1)
        att_t = F.softmax(att_t.float().masked_fill(~keys, float("-inf")), dim=-1)
    diff = torch.where(pair, att_s.float() - att_t.float(), torch.zeros((), device=att_s.device)) ** 2
    if padding == "all":
        return diff.mean()
    return diff.sum() / (pair.sum() * att_s.shape[1]).clamp_min(1)


def soft_cross_entropy(
    student_logits, teacher_logits, tau: float = 1.0, regression: bool = False, reduction: str = "batchmean"
) -> torch.Tensor:
    """TinyBERT eq. (10): -sum_c softmax(z^T / tau)_c log softmax(z^S / tau)_c, averaged over the batch
    (the KL of eq. 4 plus the teacher's entropy); ``reduction="mean"`` averages over batch and classes, as the
    released ``soft_cross_entropy`` (``(-p_t * log p_s).mean()``) does. For regression the MSE between the
    student's prediction and ``teacher_logits`` (the caller passes what the prediction is compared with)."""
    if regression:
        return F.mse_loss(student_logits.view(-1), teacher_logits.view(-1).to(student_logits.dtype))
    p_t = F.softmax(teacher_logits / tau, dim=-1)
    ce = -(p_t * F.log_softmax(student_logits / tau, dim=-1))
    return ce.mean() if reduction == "mean" else ce.sum(-1).mean()


def _mse_mask(obj, batch):
    """Which positions the hidden MSEs count: real tokens, or (``tinybert_padding: all``) every position."""
    mask = batch["attention_mask"]
    return mask if obj.settings.tinybert_padding == "masked" else torch.ones_like(mask)


def _embedding_term(obj, s_out, t_out, batch):
    return losses.masked_mse(
        obj.project(0, s_out.hidden_states[0].float()), t_out.hidden_states[0].float(), _mse_mask(obj, batch)
    )


def _hidden_term(obj, s_out, t_out, batch):
    total = 0.0
    for i, j in enumerate(obj.phi):
        total = total + losses.masked_mse(
            obj.project(i, s_out.hidden_states[i + 1].float()), t_out.hidden_states[j].float(), _mse_mask(obj, batch)
        )
    return total


def _attention_term(obj, s_out, t_out, batch):
    if s_out.attentions is None or t_out.attentions is None:
        raise ConfigError(f"the attention term needs attention weights: set model.attn_implementation={ATTN}")
    total = 0.0
    for i, j in enumerate(obj.phi):
        total = total + attention_loss(
            s_out.attentions[i],
            t_out.attentions[j - 1],
            batch["attention_mask"],
            obj.settings.attention_target,
            obj.settings.tinybert_padding,
        )
    return total


def _soft_ce_term(obj, s_out, t_out, batch):
    # regression: the released code's prediction stage compares the student with the GOLD score, not the teacher
    target = batch["labels"] if obj.regression else t_out.logits.float()
    return soft_cross_entropy(
        s_out.logits.float(), target, obj.method.temperature, obj.regression, obj.method.soft_reduction
    )


def _setup_projection(obj, student_config, teacher_config):
    obj.add_projection(student_config, teacher_config)


def _setup_attention(obj, student_config, teacher_config):
    for who, conf in (("student", student_config), ("teacher", teacher_config)):
        if getattr(conf, "_attn_implementation", None) != ATTN:
            raise ConfigError(
                f"the attention term needs model.attn_implementation={ATTN} (the {who} uses "
                f"{getattr(conf, '_attn_implementation', None)!r})"
            )
    if student_config.num_attention_heads != teacher_config.num_attention_heads:
        raise ConfigError(
            f"the attention term compares heads one to one: student has "
            f"{student_config.num_attention_heads}, teacher {teacher_config.num_attention_heads}"
        )


TERMS = {
    "tiny_emb": Term(_embedding_term, True, True, needs_logits=False, setup=_setup_projection),
    "tiny_hidden": Term(_hidden_term, True, True, needs_logits=False, setup=_setup_projection),
    "tiny_attn": Term(_attention_term, True, False, needs_attentions=True, needs_logits=False, setup=_setup_attention),
    "soft_ce": Term(_soft_ce_term, True, False),
}


@dataclass(config=STRICT)
class Settings:
    """TinyBERT's own keys (``method.options``)."""

    attention_target: Literal["probs", "scores"] = "probs"  # the attention loss on softmax output or logits
    tinybert_padding: Literal["masked", "all"] = "masked"  # the MSEs over real tokens, or every padded position


INTERMEDIATE = {"tiny_emb": 1.0, "tiny_hidden": 1.0, "tiny_attn": 1.0}
_model = {"model": {"attn_implementation": ATTN}}
# as released: W with a bias (fit_dense), attention scores, the prediction loss averaged over batch x classes
_common = {
    "projection": "shared",
    "projection_bias": True,
    "soft_reduction": "mean",
    "perturb": False,
    "options": {"attention_target": "scores"},
}
_stage = {"stage_split": 1.0, "stage1": dict(INTERMEDIATE), "stage2": dict(INTERMEDIATE)}
_own = {"terms": TERMS, "settings": Settings}
METHODS = [
    Method("tinybert_general", {**_stage, **_common}, _model, kind="general", **_own),
    Method("tinybert_intermediate", {**_stage, "projection_init": "student", **_common}, _model, **_own),
    Method(
        "tinybert",
        {"stage_split": 0.0, "stage1": {"soft_ce": 1.0}, "stage2": {"soft_ce": 1.0}, "temperature": 1.0, **_common},
        **_own,
    ),
]
