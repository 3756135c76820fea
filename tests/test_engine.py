"""The training engine against the paper's equations: gradient perturbation (eq. 7-8), the two-stage
schedule, the trainable projection W, padding invariance and checkpoint/resume."""

import copy
import csv

import datasets
import pytest
import torch
from conftest import tiny_config

from lrcbert import data as D
from lrcbert.engine import Trainer, perturbation
from lrcbert.models import build_student, build_teacher
from lrcbert.objective import Objective, combine
from lrcbert.tasks import get_task

TEXTS = [
    "the film was not good at all",
    "a great and moving story",
    "dull",
    "i would watch it again tomorrow",
    "the plot never works and the actors look tired of it",
    "fine",
    "bad",
    "wonderful acting from everyone",
]


def toy_set(tokenizer, n=32, max_length=64):
    ds = datasets.Dataset.from_dict(
        {
            "text_a": [TEXTS[i % len(TEXTS)] + " " + "x " * (i % 5) for i in range(n)],
            "label": [i % 2 for i in range(n)],
            "idx": list(range(n)),
        }
    )
    return D.tokenize(ds, tokenizer, max_length)


def setup(tokenizer, tmp_path, **sections):
    cfg = tiny_config(dropout=False, **sections)
    task = get_task("sst2")
    teacher = build_teacher(cfg, task, finetuned=False)
    student = build_student(cfg, task, teacher.config)
    objective = Objective(cfg.method, task, student.config, teacher.config)
    collate = D.Collator(tokenizer, cfg.data.max_length, cfg.data.pad_to_max_length)
    trainer = Trainer(cfg, tmp_path, student, objective, toy_set(tokenizer), collate, teacher)
    return cfg, trainer


def loss_with_embeddings(model, obj, teacher, batch, weights, e):
    """The combined loss of ``model`` (objective ``obj``) on ``batch`` with its embedding output replaced by ``e``."""
    inputs = {k: batch[k] for k in ("input_ids", "attention_mask", "token_type_ids")}
    h = model.bert.embeddings.register_forward_hook(lambda m, a, out: e)
    try:
        s_out = model(**inputs, output_hidden_states=True)
    finally:
        h.remove()
    with torch.no_grad():
        t_out = teacher(**inputs, output_hidden_states=True)
    return combine(obj(s_out, t_out, batch, weights), weights)


def test_perturbation_is_unit_gradient_per_example():
    g = torch.zeros(2, 3, 4)
    g[0, 0, 0], g[0, 1, 1] = 3.0, 4.0  # |g_0| = 5
    g[1, 2, 3] = -2.0  # |g_1| = 2
    d = perturbation(g, "per_example", 1.0)
    assert d[0, 0, 0].item() == pytest.approx(0.6) and d[0, 1, 1].item() == pytest.approx(0.8)
    assert d[1, 2, 3].item() == pytest.approx(-1.0)
    whole = perturbation(g, "batch", 2.0)  # |g| over the batch = sqrt(9 + 16 + 4)
    assert whole[1, 2, 3].item() == pytest.approx(2.0 * -2.0 / 29**0.5)
    assert torch.equal(perturbation(torch.zeros(1, 2, 2)), torch.zeros(1, 2, 2))


def test_gradient_perturbation_follows_eq_7_8(tokenizer, tmp_path):
    """The second pass starts from e + g/|g| with g = dL_total/de, and the update uses dL'_total only."""
    cfg, trainer = setup(tokenizer, tmp_path, method={"stage_split": 0.0}, train={"grad_clip": 0.0})
    batch = next(iter(trainer.loader))
    student, objective, teacher = trainer.student, trainer.objective_module, trainer.teacher
    ref_student, ref_obj = copy.deepcopy(student), copy.deepcopy(objective)
    weights = objective.weights(0, trainer.total_steps)
    assert set(weights) == {"layer", "soft", "hard"}
    inputs = {k: batch[k] for k in ("input_ids", "attention_mask", "token_type_ids")}

    # reference, written from the equations: L(e) with e replaced by a given tensor
    def losses_from(model, obj, e):
        return loss_with_embeddings(model, obj, teacher, batch, weights, e)

    e = ref_student.bert.embeddings(input_ids=inputs["input_ids"], token_type_ids=inputs["token_type_ids"])
    leaf = e.detach().requires_grad_(True)
    (g,) = torch.autograd.grad(losses_from(ref_student, ref_obj, leaf), leaf)
    expected_e2 = e.detach() + g / g.flatten(1).norm(dim=1).view(-1, 1, 1)
    loss2 = losses_from(ref_student, ref_obj, e + (expected_e2 - e).detach())
    loss2.backward()

    seen = []
    student.bert.encoder.layer[0].register_forward_pre_hook(
        lambda m, a, kw: seen.append(a[0].detach().clone()) if a else seen.append(kw["hidden_states"].detach().clone()),
        with_kwargs=True,
    )
    grads = {}
    trainer.optimizer.step = lambda *a, **k: grads.update(
        {n: p.grad.clone() for n, p in list(student.named_parameters()) + list(objective.named_parameters())}
    )
    record = trainer.train_step(batch)

    assert len(seen) == 2
    assert torch.allclose(seen[0], e.detach(), atol=1e-6)  # pass 1 from e
    assert torch.allclose(seen[1], expected_e2, atol=1e-5)  # pass 2 from e + g / |g|_2
    assert record["total"] == pytest.approx(loss2.item(), rel=1e-5)
    for name, p in list(ref_student.named_parameters()) + list(ref_obj.named_parameters()):
        assert torch.allclose(grads[name], p.grad, atol=1e-6, rtol=1e-4), name


def test_without_perturbation_one_forward_pass(tokenizer, tmp_path):
    cfg, trainer = setup(tokenizer, tmp_path, method={"perturb": False})
    calls = []
    trainer.student.bert.encoder.layer[0].register_forward_pre_hook(lambda *a: calls.append(1))
    record = trainer.train_step(next(iter(trainer.loader)))
    assert len(calls) == 1 and "loss_clean" not in record


def test_projection_w_is_trained(tokenizer, tmp_path):
    cfg, trainer = setup(tokenizer, tmp_path)
    w = trainer.objective_module.proj[0].weight
    assert w.shape == (32, 16)  # d (student 16) -> d' (teacher 32)
    in_optimizer = any(p is w for g in trainer.optimizer.param_groups for p in g["params"])
    before = w.detach().clone()
    trainer.train_step(next(iter(trainer.loader)))
    assert in_optimizer and not torch.equal(before, w.detach())


def test_per_layer_projection_and_layer_map(tokenizer, tmp_path):
    cfg, trainer = setup(tokenizer, tmp_path, method={"projection": "per_layer"})
    obj = trainer.objective_module
    assert len(obj.proj) == 2 and obj.phi == [2, 4]  # phi(i) = i * N / M for N = 4, M = 2


def test_stage_switch_at_configured_step(tokenizer, tmp_path):
    cfg = tiny_config(method={"stage_split": 0.75})
    obj = Objective(
        cfg.method,
        get_task("sst2"),
        type("C", (), {"num_hidden_layers": 2, "hidden_size": 4}),
        type("C", (), {"num_hidden_layers": 4, "hidden_size": 8}),
    )
    # 12 steps: steps 0..8 (first 75%) stage 1, steps 9.. stage 2
    assert [obj.weights(s, 12) for s in (0, 8)] == [{"layer": 1.0}] * 2
    assert obj.weights(9, 12) == {"layer": 1.0, "soft": 1.0, "hard": 3.0}
    # and in a real run, the logged weights switch after the same fraction of steps
    cfg, trainer = setup(tokenizer, tmp_path, method={"stage_split": 0.75}, train={"max_steps": 8})
    trainer.fit()
    with open(tmp_path / "losses.csv") as f:
        rows = list(csv.DictReader(f))
    soft = [r["w_soft"] for r in rows]
    assert soft == ["", "", "", "", "", "", "1.0", "1.0"]  # steps 1-6 stage 1, 7-8 stage 2
    assert all(r["soft"] == "" for r in rows[:6]) and all(float(r["soft"]) >= 0 for r in rows[6:])


def test_masked_layer_loss_does_not_depend_on_padding(tokenizer, tmp_path):
    cfg = tiny_config(dropout=False)
    task = get_task("sst2")
    teacher = build_teacher(cfg, task, finetuned=False).eval()
    student = build_student(cfg, task, teacher.config).eval()
    obj = Objective(cfg.method, task, student.config, teacher.config)
    examples = [dict(x) for x in toy_set(tokenizer, n=6)]
    values = []
    for pad_to_max in (False, True):
        batch = D.Collator(tokenizer, 64, pad_to_max)([dict(x) for x in examples])
        inputs = {k: batch[k] for k in ("input_ids", "attention_mask", "token_type_ids")}
        with torch.no_grad():
            terms = obj(
                student(**inputs, output_hidden_states=True),
                teacher(**inputs, output_hidden_states=True),
                batch,
                {"layer": 1.0, "soft": 1.0},
            )
        values.append({k: v.item() for k, v in terms.items()})
        assert batch["input_ids"].shape[1] == (64 if pad_to_max else max(len(x["input_ids"]) for x in examples))
    assert values[0] == pytest.approx(values[1], rel=1e-4)


@pytest.mark.faults
def test_nan_loss_stops_with_step_and_terms(tokenizer, tmp_path):
    from lrcbert.engine import TrainingDiverged

    cfg, trainer = setup(tokenizer, tmp_path)
    with torch.no_grad():
        trainer.student.bert.embeddings.word_embeddings.weight[:] = float("nan")
    with pytest.raises(TrainingDiverged, match=r"step 1: loss is nan \(terms: layer=nan\); last good checkpoint"):
        trainer.train_step(next(iter(trainer.loader)))


def test_learning_rate_schedules():
    from lrcbert.engine import lr_factor

    lin = [lr_factor(s, 10, 0.2) for s in range(10)]
    assert lin == pytest.approx([0.0, 0.5, 1.0, 7 / 8, 6 / 8, 5 / 8, 4 / 8, 3 / 8, 2 / 8, 1 / 8])
    assert [lr_factor(s, 10, 0.2, "constant") for s in (0, 1, 2, 9)] == [0.0, 0.5, 1.0, 1.0]
    # per stage, boundary 8: [0, 8) warms up over 1 step and decays; [8, 10) restarts without warm-up
    per = [lr_factor(s, 10, 0.2, "linear_per_stage", boundary=8) for s in range(10)]
    assert per == pytest.approx([0.0, 1.0, 6 / 7, 5 / 7, 4 / 7, 3 / 7, 2 / 7, 1 / 7, 1.0, 0.5])


def test_perturbation_per_token_has_norm_eps_at_every_token():
    g = torch.randn(3, 5, 4, dtype=torch.float64)
    g[1, 2] = 0.0  # a token without gradient gets no step
    p = perturbation(g, "per_token", eps=0.5)
    norms = p.norm(dim=-1)
    expected = torch.full((3, 5), 0.5, dtype=torch.float64)
    expected[1, 2] = 0.0
    assert torch.allclose(norms, expected)
    assert torch.allclose(p[0, 0], 0.5 * g[0, 0] / g[0, 0].norm())
