"""Fidelity to the released code (docs/fidelity.md): CoDIR's CRD objective against hand computations written from
CRD's formulas, the per-example memory (negatives, momentum, resume, data parallelism), and LRC-BERT's sampled
negatives against the explicit ``cos_nce``."""

import math
from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F
from conftest import STUDENT, TEACHER, finetune_teacher, tiny_config
from transformers import BertConfig

from baselines import codir
from lrcbert import losses
from lrcbert.memory import Memory
from lrcbert.objective import Objective, get_method
from lrcbert.run import run
from lrcbert.tasks import TASKS


# ---------------------------------------------------------------------------------------------- CRD NCE loss
def test_crd_nce_hand_computed():
    """CRD eq. 18 with N = 10, K = 2: h(x) = x / (x + K/N); L = -(log h(p0) + sum_k log(1 - h(pk))) / B."""
    p = torch.tensor([[0.5, 0.1, 0.3], [0.05, 0.2, 0.0]])
    noise, eps = 2 / 10, 1e-7
    want = 0.0
    for row in p.tolist():
        want += math.log(row[0] / (row[0] + noise + eps))
        want += sum(math.log(noise / (x + noise + eps)) for x in row[1:])
    want = -want / 2
    assert codir.crd_nce(p, 10).item() == pytest.approx(want, rel=1e-6)
    # a zero positive is raised to eps (as the release does) instead of giving log 0
    zero = torch.tensor([[0.0, 0.1]])
    assert math.isfinite(codir.crd_nce(zero, 10).item())


# ---------------------------------------------------------------------------------------------- memory
def test_memory_negatives_are_never_the_anchor_and_label_aware_never_share_its_label():
    torch.manual_seed(0)
    ids = torch.arange(100, 130)  # idx values need not start at 0
    labels = ids % 3
    mem = Memory(ids.tolist(), (4,), 0.5, labels.tolist(), init="random")
    batch = ids[torch.randperm(30)[:8]]
    for k in (5, 25):  # 25 > the 20 other-label candidates: with replacement
        rows = mem.sample(batch, k, labels=batch % 3)
        assert rows.shape == (8, k)
        assert (mem.ids[rows] != batch[:, None]).all()
        assert (mem.labels[rows] != (batch % 3)[:, None]).all()
    rows = mem.sample(batch, 29)  # all others, without replacement: each exactly once
    for b in range(8):
        assert sorted(mem.ids[rows[b]].tolist()) == sorted(set(ids.tolist()) - {int(batch[b])})


def test_memory_empty_entries_are_never_drawn_and_momentum_update_is_crd():
    mem = Memory(range(6), (2,), 0.5, init="empty")
    mem.update(torch.tensor([0, 1]), torch.tensor([[1.0, 0.0], [0.0, 2.0]]))
    assert torch.equal(mem.vectors[1], torch.tensor([0.0, 1.0]))  # first write: normalised, no mixing
    rows = mem.sample(torch.tensor([0, 1]), 7)
    assert (rows[0] == 1).all() and (rows[1] == 0).all()  # the only filled other entry
    mem.update(torch.tensor([1]), torch.tensor([[1.0, 0.0]]))  # normalise(0.5 old + 0.5 new)
    assert torch.allclose(mem.vectors[1], torch.tensor([1.0, 1.0]) / math.sqrt(2))
    with pytest.raises(ValueError, match=r"idx \[9\]"):
        mem.positions(torch.tensor([9]))
    assert {"vectors", "ids", "labels", "filled"} <= set(mem.state_dict())  # saved with the objective


def _gather_worker(rank, world, port, out):
    import torch.distributed as dist

    vecs = torch.randn(world * 2, 3, generator=torch.Generator().manual_seed(1))
    torch.manual_seed(0)
    ref = Memory(range(8), (3,), 0.5, init="random")
    ref.update(torch.arange(world * 2), vecs)  # one process, every example (no group yet)
    torch.manual_seed(0)
    mem = Memory(range(8), (3,), 0.5, init="random")  # the same initial memory on every process
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world)
    mem.update(torch.tensor([2 * rank, 2 * rank + 1]), vecs[2 * rank : 2 * rank + 2])  # its own examples only
    dist.destroy_process_group()
    torch.save({"ref": ref.vectors, "mem": mem.vectors}, f"{out}/rank{rank}.pt")


def test_memory_update_is_gathered_across_processes(tmp_path):
    """Two gloo processes each update their own two examples; both memories equal one process's update with
    all four examples, bitwise."""
    import socket

    import torch.multiprocessing as mp

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=_gather_worker, args=(r, 2, port, str(tmp_path))) for r in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(300)
        assert p.exitcode == 0
    results = [torch.load(tmp_path / f"rank{r}.pt") for r in range(2)]
    for res in results:
        assert torch.equal(res["mem"], res["ref"])
    assert torch.equal(results[0]["mem"], results[1]["mem"])
    assert not torch.equal(results[0]["mem"][:4], Memory(range(8), (3,), 0.5, init="empty").vectors[:4])


# ---------------------------------------------------------------------------------------------- CoDIR objective
def codir_objective(n=12, **method):
    cfg = tiny_config(method={**get_method("codir")["method"], **method})
    s_conf, t_conf = BertConfig(**STUDENT), BertConfig(**TEACHER)
    obj = Objective(cfg.method, TASKS["rte"], s_conf, t_conf)
    obj.bind_data(range(n), [i % 2 for i in range(n)])
    return obj, s_conf, t_conf


def fake_outputs(conf, b, l, seed):
    g = torch.Generator().manual_seed(seed)
    hs = tuple(torch.randn(b, l, conf.hidden_size, generator=g) for _ in range(conf.num_hidden_layers + 1))
    return SimpleNamespace(hidden_states=hs, logits=torch.randn(b, 2, generator=g))


def test_codir_released_loss_equals_a_hand_computation():
    """The released objective step by step in plain Python: [CLS] of every student layer / every other teacher
    layer concatenated, linear head, L2 norm; K label-aware rows + the positive; Z set to mean x N on the first
    step; CRD eq. 18 on both sides, their mean, divided by the batch size; then the momentum update."""
    torch.manual_seed(0)
    n, b, k = 12, 4, 3
    obj, s_conf, t_conf = codir_objective(n, options={"nce_k": k})
    s_out, t_out = fake_outputs(s_conf, b, 5, 1), fake_outputs(t_conf, b, 5, 2)
    idx, labels = torch.tensor([3, 0, 7, 10]), torch.tensor([1, 0, 1, 0])
    batch = {"attention_mask": torch.ones(b, 5, dtype=torch.long), "idx": idx, "labels": labels}
    mem_t, mem_s = obj.codir_memory_t.vectors.clone(), obj.codir_memory_s.vectors.clone()
    rng = torch.get_rng_state()
    obj.train()
    loss = obj(s_out, t_out, batch, {"codir": 1.0})["codir"]
    torch.set_rng_state(rng)
    neg = obj.codir_memory_t.sample(idx, k, labels)  # the same draw (labels unchanged by the update)
    assert (torch.tensor([i % 2 for i in range(n)])[neg] != labels[:, None]).all()

    def embed(head, hidden, layers):
        x = torch.cat([hidden[j][:, 0] for j in layers], dim=-1)
        y = x @ head.weight.T + head.bias
        return y / y.norm(dim=-1, keepdim=True)

    s = embed(obj.codir_s[0], s_out.hidden_states, [1, 2]).detach()  # student: layers 1..2
    t = embed(obj.codir_t[0], t_out.hidden_states, [1, 3]).detach()  # teacher: layers 1, 3 of 4
    tau = 0.07

    def side(anchor, memory):
        scores = [
            [math.exp(float(anchor[i] @ memory[r, 0]) / tau) for r in [int(idx[i])] + neg[i].tolist()] for i in range(b)
        ]
        z = sum(map(sum, scores)) / (b * (k + 1)) * n
        total = 0.0
        for row in scores:
            p = [x / z for x in row]
            total += math.log(p[0] / (p[0] + k / n + 1e-7))
            total += sum(math.log((k / n) / (x + k / n + 1e-7)) for x in p[1:])
        return -total / b, z

    l_s, z_s = side(s, mem_t)
    l_t, z_t = side(t, mem_s)
    want = (l_s + l_t) / 2 / b
    assert loss.item() == pytest.approx(want, rel=1e-4)
    assert obj.codir_z[:, 0].tolist() == pytest.approx([z_s, z_t], rel=1e-5)
    for i, r in enumerate(idx.tolist()):  # memory: normalise(0.5 m + 0.5 v)
        new_t = F.normalize(0.5 * mem_t[r, 0] + 0.5 * t[i].detach(), dim=0)
        torch.testing.assert_close(obj.codir_memory_t.vectors[r, 0], new_t)
        new_s = F.normalize(0.5 * mem_s[r, 0] + 0.5 * s[i].detach(), dim=0)
        torch.testing.assert_close(obj.codir_memory_s.vectors[r, 0], new_s)
    untouched = [r for r in range(n) if r not in idx.tolist()]
    assert torch.equal(obj.codir_memory_t.vectors[untouched], mem_t[untouched])


def test_codir_one_sided_is_the_student_side_only_and_refuses_perturbation():
    torch.manual_seed(0)
    two, _, _ = codir_objective(options={"nce_k": 3})
    torch.manual_seed(0)
    one, _, _ = codir_objective(options={"nce_k": 3, "codir_sides": "one"})
    assert not hasattr(one, "codir_memory_s") and torch.equal(one.codir_memory_t.vectors, two.codir_memory_t.vectors)
    with pytest.raises(ValueError, match="method.perturb=false"):
        codir_objective(perturb=True)


@pytest.fixture(scope="module")
def teacher_run(glue_dir, tmp_path_factory):
    return finetune_teacher(glue_dir, tmp_path_factory.mktemp("fteacher"), epochs=1)


def distill_cfg(glue_dir, teacher, name, train=None, method=None):
    preset = {k: dict(v) for k, v in get_method(name).items()}
    preset["method"].update(method or {})
    preset.setdefault("model", {}).update({"teacher": str(teacher / "model"), "teacher_random_init": False})
    preset["train"] = {"max_steps": 8, **(train or {})}
    return tiny_config(glue_dir, task="rte", **preset)


@pytest.mark.parametrize(
    "name, method", [("codir", {"options": {"nce_k": 20}}), ("lrcbert", {"negatives": "sampled", "num_negatives": 20})]
)
def test_memory_survives_resume_bitwise(glue_dir, teacher_run, tmp_path, name, method):
    """A run stopped after 5 steps and resumed logs the same losses and ends with a bitwise identical memory
    (and heads, Z) as the uninterrupted run."""
    from safetensors.torch import load_file

    def cfg(**train):
        return distill_cfg(glue_dir, teacher_run, name, {"checkpoint_every": 3, **train}, method)

    run(cfg(), tmp_path / "whole", "distill")
    assert run(cfg(stop_after_steps=5), tmp_path / "cut", "distill")["status"] == "stopped"
    run(cfg(), tmp_path / "cut", "distill")
    rows = lambda p: (p / "losses.csv").read_text().splitlines()  # noqa: E731
    assert rows(tmp_path / "cut") == rows(tmp_path / "whole")
    a = load_file(str(tmp_path / "whole" / "model" / "objective.safetensors"))
    b = load_file(str(tmp_path / "cut" / "model" / "objective.safetensors"))
    memories = [key for key in a if "memory" in key and key.endswith("vectors")]
    assert memories and a.keys() == b.keys()
    assert all(torch.equal(a[key], b[key]) for key in a)
    assert any(bool(a[key.replace("vectors", "filled")].any()) for key in memories)


# ---------------------------------------------------------------------------------------------- sampled negatives
@pytest.mark.parametrize("representation", ["cls", "flatten"])
def test_sampled_negatives_equal_explicit_cos_nce(representation):
    """method.negatives=sampled: after two batches, the layer term equals cos_nce with the K (> batch) negatives
    gathered by hand from the teacher vectors of the examples the sampler drew (padding to max_length is zeros)."""
    cfg = tiny_config(method={"negatives": "sampled", "num_negatives": 6, "representation": representation})
    s_conf, t_conf = BertConfig(**STUDENT), BertConfig(**TEACHER)
    obj = Objective(cfg.method, TASKS["rte"], s_conf, t_conf, max_length=8)
    obj.bind_data(range(10, 20), [0] * 10)
    obj.train()
    teacher_vec = {}
    for step, (ids, length) in enumerate([([10, 11, 12, 13], 6), ([14, 15, 16], 8)]):
        b = len(ids)
        s_out, t_out = fake_outputs(s_conf, b, length, 2 * step), fake_outputs(t_conf, b, length, 2 * step + 1)
        mask = torch.ones(b, length, dtype=torch.long)
        mask[0, length - 2 :] = 0
        batch = {"attention_mask": mask, "idx": torch.tensor(ids), "labels": torch.zeros(b, dtype=torch.long)}
        rng = torch.get_rng_state()
        value = obj(s_out, t_out, batch, {"layer": 1.0})["layer"]
        torch.set_rng_state(rng)
        want = 0.0
        for i, j in enumerate(obj.phi):
            s_vec = losses.layer_vectors(obj.project(i, s_out.hidden_states[i + 1]), mask, representation)
            t_vec = losses.layer_vectors(t_out.hidden_states[j], mask, representation)
            width = 8 * t_conf.hidden_size if representation == "flatten" else t_conf.hidden_size
            s_vec, t_vec = F.pad(s_vec, (0, width - s_vec.shape[1])), F.pad(t_vec, (0, width - t_vec.shape[1]))
            for r, e in enumerate(ids):
                teacher_vec[(i, e)] = t_vec[r].detach()
            rows = obj.teacher_memory[i].sample(torch.tensor(ids), 6)  # the draw the term made
            drawn = obj.teacher_memory[i].ids[rows]
            assert (drawn != torch.tensor(ids)[:, None]).all()
            assert set(drawn.flatten().tolist()) <= {e for (l, e) in teacher_vec if l == i}  # only seen examples
            negatives = torch.stack([torch.stack([teacher_vec[(i, int(e))] for e in row]) for row in drawn])
            want = want + losses.cos_nce(s_vec, t_vec, negatives)
        torch.testing.assert_close(value, want)


def test_sampled_negatives_are_drawn_once_per_batch():
    """Both forwards of a perturbed step (eq. 7-8) use the same negatives; the next batch draws anew."""
    torch.manual_seed(0)
    cfg = tiny_config(method={"negatives": "sampled", "num_negatives": 3, "representation": "cls"})
    s_conf, t_conf = BertConfig(**STUDENT), BertConfig(**TEACHER)
    obj = Objective(cfg.method, TASKS["rte"], s_conf, t_conf, max_length=8)
    obj.bind_data(range(8))
    obj.train()

    def value(ids, seed):
        b = len(ids)
        batch = {"attention_mask": torch.ones(b, 4, dtype=torch.long), "idx": torch.tensor(ids)}
        return obj(fake_outputs(s_conf, b, 4, seed), fake_outputs(t_conf, b, 4, seed + 1), batch, {"layer": 1.0})[
            "layer"
        ]

    value([4, 5, 6, 7], 10)  # fill the memory
    first = value([0, 1, 2, 3], 0)
    rows = {k: v[1].clone() for k, v in obj.negative_draws.items()}
    assert value([0, 1, 2, 3], 0).item() == first.item()
    value([4, 5, 6, 7], 10)
    value([0, 1, 2, 3], 0)
    assert any(not torch.equal(rows[k], obj.negative_draws[k][1]) for k in rows)  # a new step: a new draw


def test_sampled_negatives_refuse_a_memory_over_the_limit():
    cfg = tiny_config(method={"negatives": "sampled", "memory_max_bytes": 1000})
    obj = Objective(cfg.method, TASKS["rte"], BertConfig(**STUDENT), BertConfig(**TEACHER), max_length=8)
    with pytest.raises(ValueError, match="method.memory_max_bytes=1000"):
        obj.bind_data(range(10))


# ---------------------------------------------------------------------------------------------- released formulas
# Independent references: each line below restates, with plain torch, the computation of the released code named
# in its comment (docs/fidelity.md), on small random tensors with padding.
def _logits(seed, b=6, c=3):
    g = torch.Generator().manual_seed(seed)
    return (
        torch.randn(b, c, generator=g) * 3,
        torch.randn(b, c, generator=g) * 3,
        torch.randint(0, c, (b,), generator=g),
    )


def test_distilbert_kd_matches_the_released_distiller():
    """transformers examples/research_projects/distillation/distiller.py ``Distiller.step``: KLDivLoss(batchmean)
    of log_softmax(s / T) against softmax(t / T), times T^2."""
    s, t, _ = _logits(0)
    T = 2.0
    ref = torch.nn.KLDivLoss(reduction="batchmean")(F.log_softmax(s / T, -1), F.softmax(t / T, -1)) * T**2
    assert losses.soft_loss(s, t, T, t2=True).item() == pytest.approx(ref.item(), rel=1e-6)


def test_pkd_losses_match_the_released_code():
    """PKD-for-BERT-Model-Compression src/KD_loss.py: ``distillation_loss`` (KLDivLoss(reduction="mean") x T^2,
    averaged over batch AND classes, alpha-mixed with CE) and ``patience_loss`` (one MSE over the stacked,
    L2-normalised [CLS] vectors of the layer pairs)."""
    from baselines import pkd

    s, t, y = _logits(1)
    T, alpha = 10.0, 0.7
    p_t = F.softmax(t / T, 1)  # KLDivLoss(reduction="mean"): the mean over all B x C elements
    kd = (p_t * (p_t.log() - F.log_softmax(s / T, 1))).mean() * T * T
    ref = alpha * kd + (1 - alpha) * F.cross_entropy(s, y)
    ours = alpha * losses.soft_loss(s, t, T, t2=True, reduction="mean") + (1 - alpha) * losses.hard_loss(s, y)
    assert ours.item() == pytest.approx(ref.item(), rel=1e-6)
    assert get_method("pkd")["method"]["soft_reduction"] == "mean"
    g = torch.Generator().manual_seed(2)
    st, te = torch.randn(4, 3, 8, generator=g), torch.randn(4, 3, 8, generator=g)  # (B, pairs, d)
    ref = F.mse_loss(F.normalize(te, p=2, dim=2), F.normalize(st, p=2, dim=2))
    ours = pkd.pkd_loss(list(st.unbind(1)), list(te.unbind(1)), "mean")
    assert ours.item() == pytest.approx(ref.item(), rel=1e-6)
    assert pkd.pkd_loss(list(st.unbind(1)), list(te.unbind(1)), "sum").item() == pytest.approx(
        ref.item() * 3 * 8, rel=1e-5
    )


def test_tinybert_losses_match_the_released_task_distill():
    """huawei-noah TinyBERT/task_distill.py main loop: attention = MSELoss over every entry of the masked scores
    with entries <= -1e2 zeroed; hidden = MSELoss over every position; prediction = ``soft_cross_entropy``
    (-softmax(t / T) * log_softmax(s / T)).mean() over batch and classes."""
    from baselines import tinybert

    g = torch.Generator().manual_seed(3)
    b, h, l, d = 3, 2, 5, 4
    mask = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0], [1, 1, 0, 0, 0]])
    raw_s, raw_t = torch.randn(b, h, l, l, generator=g), torch.randn(b, h, l, l, generator=g)
    additive = (1.0 - mask[:, None, None, :].float()) * -10000.0  # BERT's extended attention mask
    zeroed = [torch.where(x + additive <= -1e2, torch.zeros_like(x), x + additive) for x in (raw_s, raw_t)]
    ref = F.mse_loss(*zeroed)
    assert tinybert.attention_loss(raw_s, raw_t, mask, "scores", "all").item() == pytest.approx(ref.item(), rel=1e-6)
    # the suite's default counts only pairs of two real tokens
    keep = (mask[:, None, :, None] * mask[:, None, None, :]).bool().expand(b, h, l, l)
    masked = ((raw_s - raw_t)[keep] ** 2).mean()
    assert tinybert.attention_loss(raw_s, raw_t, mask, "scores").item() == pytest.approx(masked.item(), rel=1e-6)
    hs, ht = torch.randn(b, l, d, generator=g), torch.randn(b, l, d, generator=g)
    assert losses.masked_mse(hs, ht, torch.ones_like(mask)).item() == pytest.approx(F.mse_loss(hs, ht).item(), rel=1e-6)
    s, t, _ = _logits(4)
    ref = (-F.softmax(t, dim=-1) * F.log_softmax(s, dim=-1)).mean()
    assert tinybert.soft_cross_entropy(s, t, 1.0, reduction="mean").item() == pytest.approx(ref.item(), rel=1e-6)
    m = get_method("tinybert")["method"]
    assert (m["options"]["attention_target"], m["projection_bias"], m["soft_reduction"]) == ("scores", True, "mean")


def test_tinybert_regression_prediction_stage_uses_the_gold_score():
    """Released: for STS-B the prediction stage is MSELoss(student, gold label), not the teacher's prediction."""
    cfg = tiny_config(method=get_method("tinybert")["method"])
    obj = Objective(cfg.method, TASKS["stsb"], BertConfig(**STUDENT), BertConfig(**TEACHER))
    s = SimpleNamespace(logits=torch.tensor([[0.5], [2.0]]))
    t = SimpleNamespace(logits=torch.tensor([[9.0], [9.0]]))
    batch = {"labels": torch.tensor([1.0, 1.0])}
    assert obj(s, t, batch, {"soft_ce": 1.0})["soft_ce"].item() == pytest.approx((0.25 + 1.0) / 2)


def test_table1_rows_name_the_variant_that_ran():
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "workflow" / "scripts"))
    from table1 import label

    assert label({"label": "CoDIR-4", "variant": "released code"}) == "CoDIR-4 (released code)"
    assert label({"label": "ACKD-4", "reconstruction": True}) == "ACKD-4 (reconstruction)"
    assert label({"label": "LRC-BERT", "variant": None}) == "LRC-BERT"
    import yaml

    systems = yaml.safe_load((Path(__file__).resolve().parents[1] / "config" / "config.yaml").read_text())["systems"]
    assert systems["codir4"]["variant"] == "released code" and systems["codir4"]["method"] == "codir"


def test_negatives_sweep_table_and_plot(tmp_path):
    """The negatives sweep: the in-batch point is marked as the suite's reading, sampled points show K, and the
    plot draws the in-batch score as a line beside the sampled K."""
    import json
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "workflow" / "scripts"))
    from sweeps import build, plot

    points = {
        "inbatch": {"method.negatives": "in_batch"},
        "k4": {"method.negatives": "sampled", "method.num_negatives": 4},
        "k32": {"method.negatives": "sampled", "method.num_negatives": 32},
    }
    layout = {}
    for score, p in zip((60.0, 55.0, 65.0), points):
        run = tmp_path / p
        run.mkdir()
        (run / "metrics.json").write_text(json.dumps({"splits": {"rte": {"score": score}}}))
        layout[p] = {"0.001": {"1": str(run)}}
    text, frame = build("negatives", layout, points, ["rte"], "lrcbert", {}, "synthetic")
    assert "in-batch (K = B - 1) (the suite's default reading)" in text and "sampled, K = 32" in text
    assert "**65.0 (n=1)**" in text and list(frame["K"].fillna(0)) == [0, 4, 32]
    plot("negatives", frame, ["rte"], {}, "synthetic", str(tmp_path / "k.png"))
    assert (tmp_path / "k.png").stat().st_size > 0
