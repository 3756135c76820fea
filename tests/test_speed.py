"""Correctness of the speed features (their speed is measured by ``lrcbert bench``, never tested):
length-grouped sampling, padding invariance of training and evaluation, the teacher-output cache,
COS-NCE negatives gathered across processes, and the benchmark's own statistics and floor."""

import csv

import numpy as np
import pytest
import torch
import torch.multiprocessing as mp
from conftest import tiny_config
from test_engine import toy_set

from lrcbert import data as D
from lrcbert import losses, teacher_cache
from lrcbert.engine import Trainer
from lrcbert.evaluation import predict
from lrcbert.models import build_student, build_teacher
from lrcbert.objective import Objective, global_in_batch_cos_nce
from lrcbert.tasks import get_task


def make_trainer(tokenizer, tmp_path, n=32, max_length=64, **sections):
    tmp_path.mkdir(parents=True, exist_ok=True)
    cfg = tiny_config(dropout=False, **sections)
    task = get_task("sst2")
    torch.manual_seed(0)
    teacher = build_teacher(cfg, task, finetuned=False)
    student = build_student(cfg, task, teacher.config)
    objective = Objective(cfg.method, task, student.config, teacher.config)
    collate = D.Collator(tokenizer, max_length, cfg.data.pad_to_max_length)
    return Trainer(cfg, tmp_path, student, objective, toy_set(tokenizer, n, max_length), collate, teacher)


def test_length_grouped_sampler_is_a_resumable_permutation_of_similar_lengths():
    rng = np.random.default_rng(0)
    lengths = rng.integers(3, 120, size=203).tolist()
    s = D.LengthGroupedSampler(lengths, batch_size=8, seed=3, group=5)
    s.position(1)
    order = list(s)
    assert sorted(order) == list(range(203))
    again = D.LengthGroupedSampler(lengths, batch_size=8, seed=3, group=5)
    again.position(1)
    assert list(again) == order  # deterministic from (seed, epoch)
    s.position(2)
    assert list(s) != order  # a new order each epoch
    s.position(1, skip=24)
    assert list(s) == order[24:]  # resumes mid-epoch
    full = [order[i : i + 8] for i in range(0, 200, 8)]
    spread = np.mean([max(lengths[i] for i in b) - min(lengths[i] for i in b) for b in full])
    rand = torch.randperm(203, generator=torch.Generator().manual_seed(0)).tolist()
    rand_spread = np.mean(
        [max(lengths[i] for i in rand[k : k + 8]) - min(lengths[i] for i in rand[k : k + 8]) for k in range(0, 200, 8)]
    )
    assert spread < rand_spread / 3  # batches of similar length
    assert len({i for b in full for i in b}) == 200  # the incomplete batch comes last


def test_training_and_evaluation_do_not_depend_on_padding(tokenizer, tmp_path):
    """Fixed padding to 128 and dynamic padding give the same step losses (with gradient perturbation,
    two steps) and the same dev logits."""
    records, logits = [], []
    for pad in (True, False):
        tr = make_trainer(
            tokenizer,
            tmp_path / str(pad),
            max_length=128,
            data={"pad_to_max_length": pad},
            train={"length_grouped": True, "batch_size": 8},
            method={"stage_split": 0.0},
        )
        batches = iter(tr.loader)
        steps = []
        for _ in range(2):
            batch = next(batches)
            assert batch["input_ids"].shape[1] == 128 if pad else batch["input_ids"].shape[1] < 40
            steps.append(tr.train_step(batch))
        records.append(steps)
        student, _ = tr.trained()
        dev = toy_set(tokenizer, 40, 128)
        logits.append(predict(student, dev, tr.collate, 8, by_length=not pad)[0])
        if not pad:  # sorted by length, then put back in order: the unsorted run's logits and idx
            unsorted = predict(student, dev, tr.collate, 8, by_length=False)
            np.testing.assert_allclose(logits[-1], unsorted[0], rtol=1e-4, atol=1e-5)
            assert predict(student, dev, tr.collate, 8)[2].tolist() == list(range(40))
    for fixed, dynamic in zip(*records):
        for key in ("loss_clean", "layer", "soft", "hard", "total"):
            assert dynamic[key] == pytest.approx(fixed[key], rel=1e-4, abs=1e-5), key
    np.testing.assert_allclose(logits[0], logits[1], rtol=1e-4, atol=1e-4)
    assert (logits[0].argmax(-1) == logits[1].argmax(-1)).all()


def read_losses(path):
    with open(path, newline="") as f:
        return [{k: float(v) for k, v in r.items() if v not in ("", None)} for r in csv.DictReader(f)]


@pytest.mark.parametrize("representation", ["flatten", "per_position"])
def test_cached_teacher_gives_the_uncached_losses(tokenizer, tmp_path, representation):
    # per_position compares padded positions too (as zero vectors): the cache's zeros must equal the masked teacher
    runs = {}
    for mode in ("off", "on"):
        tr = make_trainer(
            tokenizer,
            tmp_path / mode,
            train={"teacher_cache": mode, "epochs": 2},
            method={"stage_split": 0.5, "representation": representation},
        )
        assert tr.fit() == "finished"
        runs[mode] = read_losses(tmp_path / mode / "losses.csv")
        assert tr.cache_choice["use"] == (mode == "on")
        if mode == "on":
            assert tr.cache is not None and not (tmp_path / mode / "teacher_cache").exists()  # removed at the end
    assert len(runs["on"]) == len(runs["off"]) == 8
    for a, b in zip(runs["off"], runs["on"]):
        for key in ("layer", "soft", "hard", "total"):
            if key in a:
                assert b[key] == pytest.approx(a[key], rel=2e-3, abs=2e-4), (a["step"], key)


def test_cache_lookup_matches_the_teacher(tokenizer, tmp_path):
    tr = make_trainer(tokenizer, tmp_path)
    ds = tr.train_set
    cache = teacher_cache.TeacherCache.build(
        tmp_path / "c", "k", tr.teacher, ds, tr.collate, [2, 4], 5, torch.device("cpu")
    )
    assert teacher_cache.TeacherCache.is_complete(tmp_path / "c", "k")
    assert not teacher_cache.TeacherCache.is_complete(tmp_path / "c", "other")
    batch = tr.collate([dict(ds[i]) for i in (7, 3, 30)])
    with torch.no_grad():
        out = tr.teacher(
            **{k: batch[k] for k in ("input_ids", "attention_mask", "token_type_ids")}, output_hidden_states=True
        )
    got = cache.lookup(batch, torch.device("cpu"))
    m = batch["attention_mask"].unsqueeze(-1)
    for j in (2, 4):
        torch.testing.assert_close(got.hidden_states[j].float(), out.hidden_states[j] * m, atol=5e-3, rtol=2e-3)
    torch.testing.assert_close(got.logits, out.logits, atol=1e-6, rtol=1e-6)


def test_cache_decision_from_the_size_estimate(tokenizer):
    cfg = tiny_config(train={"teacher_cache_max_bytes": 10_000})
    conf = type("C", (), {"hidden_size": 32})
    # 100 tokens x 32 wide x 2 layers x 2 bytes + 10 examples x 2 labels x 4 bytes + 11 offsets x 8 bytes
    assert teacher_cache.estimate_bytes(100, 10, 32, [2, 4], 2) == 12800 + 80 + 88
    choice = teacher_cache.decide(cfg, [10] * 10, conf, [2, 4], 2)
    assert choice["use"] is False and choice["estimate_bytes"] == 12968
    assert teacher_cache.decide(cfg, [10] * 5, conf, [2, 4], 2)["use"] is True
    off = tiny_config(train={"teacher_cache": "off"})
    assert teacher_cache.decide(off, [10] * 5, conf, [2, 4], 2)["use"] is False


def test_cache_refuses_to_start_without_disk_space(tokenizer, tmp_path, monkeypatch):
    tr = make_trainer(tokenizer, tmp_path)
    usage = type("U", (), {"total": 10**9, "used": 10**9 - 1000, "free": 1000})
    monkeypatch.setattr(teacher_cache.shutil, "disk_usage", lambda p: usage)
    with pytest.raises(teacher_cache.CacheError) as e:
        teacher_cache.TeacherCache.build(
            tmp_path / "c", "k", tr.teacher, tr.train_set, tr.collate, [2, 4], 8, torch.device("cpu")
        )
    msg = str(e.value)
    needed = teacher_cache.estimate_bytes(sum(D.lengths(tr.train_set)), 32, 32, [2, 4], 2)
    assert str(tmp_path / "c") in msg and f"needs {needed} bytes" in msg and "only 1000 bytes" in msg
    assert "\n" not in msg and not (tmp_path / "c" / "layer_2.f16").exists()


# ------------------------------------------------------------------------------------- data parallel
WORLD, LOCAL, DIM = 2, 4, 12


def global_batch():
    g = torch.Generator().manual_seed(5)
    s, t = torch.randn(WORLD * LOCAL, DIM, generator=g), torch.randn(WORLD * LOCAL, DIM, generator=g)
    s[LOCAL:, DIM - 3 :] = 0.0  # process 1's vectors end in zeros (shorter padded length there)
    t[LOCAL:, DIM - 3 :] = 0.0
    return s, t


def _worker(rank, path, out):
    torch.distributed.init_process_group("gloo", init_method=f"file://{path}", rank=rank, world_size=WORLD)
    s, t = global_batch()
    rows = slice(rank * LOCAL, (rank + 1) * LOCAL)
    width = DIM - 3 * rank  # process 1's flattened vectors are shorter (trailing zeros cut off)
    s_local = s[rows, :width].clone().requires_grad_(True)
    assert torch.all(s[rows, width:] == 0) and torch.all(t[rows, width:] == 0)
    loss = global_in_batch_cos_nce(s_local, t[rows, :width], gather=True)
    loss.backward()
    torch.save({"loss": loss.detach(), "grad": s_local.grad}, f"{out}.{rank}")
    torch.distributed.destroy_process_group()


def test_gathered_negatives_equal_one_process_on_the_global_batch(tmp_path):
    """2 processes (gloo) with LOCAL rows each: the average of their losses is the single-process loss on
    the global batch (K = 2 LOCAL - 1), and their averaged gradients are its gradient."""
    s, t = global_batch()
    mp.spawn(_worker, args=(str(tmp_path / "rdv"), str(tmp_path / "out")), nprocs=WORLD, join=True)
    res = [torch.load(tmp_path / f"out.{r}") for r in range(WORLD)]
    ref_s = s.clone().requires_grad_(True)
    ref = losses.in_batch_cos_nce(ref_s, t)
    ref.backward()
    torch.testing.assert_close(sum(r["loss"] for r in res) / WORLD, ref.detach())
    for r in range(WORLD):
        width = DIM - 3 * r
        torch.testing.assert_close(res[r]["grad"] / WORLD, ref_s.grad[r * LOCAL : (r + 1) * LOCAL, :width])
    # without gathering, each process would see only LOCAL - 1 negatives: a different loss
    local = (
        sum(
            losses.in_batch_cos_nce(s[r * LOCAL : (r + 1) * LOCAL], t[r * LOCAL : (r + 1) * LOCAL])
            for r in range(WORLD)
        )
        / WORLD
    )
    assert abs(local.item() - ref.item()) > 1e-4


def test_in_batch_cos_nce_offset_equals_explicit_negatives():
    g = torch.Generator().manual_seed(1)
    s, t = torch.randn(3, 6, generator=g), torch.randn(7, 6, generator=g)
    negatives = torch.stack([torch.cat([t[: 2 + b], t[3 + b :]]) for b in range(3)])
    torch.testing.assert_close(losses.in_batch_cos_nce(s, t, offset=2), losses.cos_nce(s, t[2:5], negatives))


# ------------------------------------------------------------------------------------- lrcbert bench's statistics
def test_ratio_of_medians_with_bootstrap_interval_by_hand():
    from lrcbert.bench import ratio

    r = ratio([2.0, 4.0, 6.0], [1.0, 2.0, 2.0])
    assert r["ratio"] == 4.0 / 2.0 and (r["round_min"], r["round_max"], r["rounds"]) == (2.0, 3.0, 3)
    lo, hi = r["ci95"]
    # every resample's ratio of medians lies between the smallest and largest such ratio of 3 pairs
    assert 1.0 <= lo <= r["ratio"] <= hi <= 6.0
    assert ratio([3.0] * 4, [1.5] * 4)["ci95"] == [2.0, 2.0]  # no spread, no interval
    assert ratio([2.0, 4.0, 6.0], [1.0, 2.0, 2.0]) == r  # seeded: the same interval each time


def test_timed_interleaves_and_drops_warmup():
    from lrcbert.bench import timed

    calls = []
    t = timed({"a": lambda: calls.append("a"), "b": lambda: calls.append("b")}, repeats=4, warmup=2)
    assert calls == ["a", "b"] * 6 and len(t["a"]) == len(t["b"]) == 4 and min(t["a"]) >= 0.0


def test_verdicts_use_the_interval_and_quick_mode_is_not_judged():
    from lrcbert.bench import markdown, verdict

    r = {"distill_step_over_floor": {"ratio": 1.02, "ci95": [1.0, 1.05]}}
    assert verdict(r, "distill_step_over_floor") == "met"
    r["distill_step_over_floor"]["ci95"] = [1.2, 1.3]
    assert verdict(r, "distill_step_over_floor") == "NOT met"
    r["distill_step_over_floor"]["ci95"] = [1.05, 1.2]
    assert verdict(r, "distill_step_over_floor").startswith("undecided")
    assert (
        verdict({"cached_teacher_speedup": {"ratio": 2.0, "ci95": [1.5, 2.5]}}, "cached_teacher_speedup") == "NOT met"
    )
    quick = {**r, "quick": True, "device": "cpu", "threads": 1, "teacher_arch": {}, "student_arch": {}}
    assert verdict(quick, "distill_step_over_floor") == "not judged (quick)"
    md = markdown(quick)
    assert "NOT met" not in md
    assert "Quick mode: the targets are not judged" in md and "fixed per-call" in md


def test_bench_floor_computes_the_engine_step(tokenizer, tmp_path):
    """The floor is the same work as Trainer.train_step: the same loss and the same parameter gradients
    (both passes, every term, W, clipping), without the engine's book-keeping."""
    from lrcbert.bench import floor_step

    tr = make_trainer(tokenizer, tmp_path, method={"stage_split": 0.0}, train={"grad_clip": 1.0})
    batch = next(iter(tr.loader))
    named = list(tr.student.named_parameters()) + [(f"obj.{n}", p) for n, p in tr.objective.named_parameters()]
    grads = {}

    class Capture:
        def step(self):
            grads["floor"] = {n: p.grad.clone() for n, p in named if p.grad is not None}

        def zero_grad(self, set_to_none=True):
            for _, p in named:
                p.grad = None

    loss = floor_step(tr, batch, Capture())()
    tr.optimizer.step = lambda *a, **k: grads.update(engine={n: p.grad.clone() for n, p in named if p.grad is not None})
    tr.step = tr.total_steps - 1
    record = tr.train_step(batch)
    assert record["total"] == pytest.approx(loss.item(), rel=1e-6)
    assert set(grads["floor"]) == set(grads["engine"]) and any(n.startswith("obj.proj") for n in grads["floor"])
    for n, g in grads["engine"].items():
        torch.testing.assert_close(grads["floor"][n], g, atol=1e-7, rtol=1e-5)
