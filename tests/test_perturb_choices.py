"""What the gradient perturbation and the ablation presets run, as stated in docs/method.md "Where the paper is
ambiguous": the second pass's dropout masks (method.perturb_dropout), g/|g| as a constant (method.perturb_grad)
and which presets keep the perturbation on."""

import copy

import pytest
import torch
from conftest import tiny_config
from test_engine import loss_with_embeddings, setup, toy_set

from lrcbert import data as D
from lrcbert.config import ConfigError, load_config
from lrcbert.engine import Trainer
from lrcbert.models import build_student, build_teacher
from lrcbert.objective import METHODS, Objective, get_method
from lrcbert.tasks import get_task


def dropout_trainer(tokenizer, tmp_path, **method):
    cfg = tiny_config(dropout=True, method={"stage_split": 0.0, "perturb_eps": 0.0, **method})
    task = get_task("sst2")
    torch.manual_seed(0)
    teacher = build_teacher(cfg, task, finetuned=False)
    student = build_student(cfg, task, teacher.config)
    objective = Objective(cfg.method, task, student.config, teacher.config)
    collate = D.Collator(tokenizer, cfg.data.max_length, cfg.data.pad_to_max_length)
    return Trainer(cfg, tmp_path, student, objective, toy_set(tokenizer), collate, teacher)


@pytest.mark.parametrize("mode", ["fresh", "same"])
def test_second_pass_dropout_masks(tokenizer, tmp_path, mode):
    """With eps = 0 pass 2 sees pass 1's input: its loss equals the clean loss exactly when the dropout masks
    repeat (``same``) and differs when they are drawn anew (``fresh``, the default)."""
    tr = dropout_trainer(tokenizer, tmp_path, perturb_dropout=mode)
    assert tr.cfg.method.perturb_dropout == mode and tr.student.training
    record = tr.train_step(next(iter(tr.loader)))
    if mode == "same":
        assert record["total"] == record["loss_clean"]
    else:
        assert abs(record["total"] - record["loss_clean"]) > 1e-4


def test_dropout_default_is_fresh_and_same_is_deterministic(tokenizer, tmp_path):
    assert load_config().method.perturb_dropout == "fresh"
    runs = []
    for i in range(2):
        tr = dropout_trainer(tokenizer, tmp_path / str(i), perturb_dropout="same", perturb_eps=1.0)
        runs.append(tr.train_step(next(iter(tr.loader))))
    assert runs[0] == runs[1]


def test_perturbation_enters_as_a_constant(tokenizer, tmp_path):
    """method.perturb_grad=constant: the update is the gradient of L(e + delta) with delta = g/|g| held fixed,
    which is not the gradient of L(e + g(theta)/|g(theta)|) with the step differentiated (second order)."""
    cfg, trainer = setup(tokenizer, tmp_path, method={"stage_split": 0.0}, train={"grad_clip": 0.0})
    assert cfg.method.perturb_grad == "constant"
    batch = next(iter(trainer.loader))
    student, objective, teacher = trainer.student, trainer.objective_module, trainer.teacher
    inputs = {k: batch[k] for k in ("input_ids", "attention_mask", "token_type_ids")}
    weights = objective.weights(0, trainer.total_steps)

    def grads_of(through: bool):
        model, obj = copy.deepcopy(student), copy.deepcopy(objective)
        model.set_attn_implementation("eager")  # sdpa on a CPU has no second derivative

        def loss_at(e):
            return loss_with_embeddings(model, obj, teacher, batch, weights, e)

        e = model.bert.embeddings(input_ids=inputs["input_ids"], token_type_ids=inputs["token_type_ids"])
        leaf = e.detach().requires_grad_(True)
        (g,) = torch.autograd.grad(loss_at(leaf), leaf, create_graph=through)
        step = g / g.flatten(1).norm(dim=1).view(-1, 1, 1)
        loss_at(e + (step if through else step.detach())).backward()
        return {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}

    constant, through = grads_of(False), grads_of(True)
    got = {}
    trainer.optimizer.step = lambda *a, **k: got.update(
        {n: p.grad.clone() for n, p in student.named_parameters() if p.grad is not None}
    )
    trainer.train_step(batch)
    for name, g in constant.items():
        torch.testing.assert_close(got[name], g, atol=1e-6, rtol=1e-4)
    assert any(not torch.allclose(constant[n], through[n], atol=1e-6, rtol=1e-4) for n in constant)


def test_only_constant_is_accepted_for_perturb_grad():
    with pytest.raises(ConfigError, match="method.perturb_grad"):
        load_config(overrides=["method.perturb_grad=differentiate"])
    with pytest.raises(ConfigError, match="method.perturb_dropout"):
        load_config(overrides=["method.perturb_dropout=never"])


@pytest.mark.parametrize(
    "name", ["lrcbert", "lrcbert_c", "lrcbert_s", "lrcbert_h", "lrcbert_2", "bert_m", "general", "intermediate"]
)
def test_presets_that_keep_the_perturbation(name):
    """Every LRC-BERT preset but lrcbert_g perturbs: the ablations change one thing each (lrcbert_c keeps the
    perturbation), general and augmented-data distillation perturb too, with fresh masks and a constant step."""
    m = load_config(base=get_method(name)).method
    assert (m.perturb, m.perturb_dropout, m.perturb_grad) == (True, "fresh", "constant")
    assert not {"perturb", "perturb_dropout", "perturb_grad"} & set(METHODS[name])
    assert load_config(base=get_method("lrcbert_g")).method.perturb is False
