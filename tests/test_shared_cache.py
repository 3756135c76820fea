"""The shared teacher cache (issue 22): with ``train.teacher_cache_dir`` every run of one teacher on one training
set reads one cache, built once; it gives the losses of a run's own cache; other inputs never read it."""

import csv

import pytest
from test_speed import make_trainer


def losses(path):
    with open(path, newline="") as f:
        return [{k: float(v) for k, v in r.items() if v not in ("", None)} for r in csv.DictReader(f)]


def test_runs_of_one_teacher_share_one_cache_built_once(tokenizer, tmp_path, monkeypatch):
    from lrcbert import teacher_cache

    builds = []
    real_build = teacher_cache.TeacherCache.build.__func__
    monkeypatch.setattr(
        teacher_cache.TeacherCache,
        "build",
        classmethod(lambda cls, path, *a, **k: builds.append(path) or real_build(cls, path, *a, **k)),
    )
    shared = tmp_path / "cache"
    train = {"teacher_cache": "on", "epochs": 2}
    own = make_trainer(tokenizer, tmp_path / "own", train=train, method={"stage_split": 0.5})
    assert own.fit() == "finished"
    runs = []
    for name, method in (("a", {"stage_split": 0.5}), ("b", {"stage_split": 0.5, "layer_map": [4, 4]})):
        tr = make_trainer(tokenizer, tmp_path / name, train={**train, "teacher_cache_dir": str(shared)}, method=method)
        assert tr.fit() == "finished"
        runs.append(tr)
    (entry,) = [p for p in shared.iterdir() if not p.name.startswith(".")]  # one cache, kept after the runs
    assert runs[0].cache_choice["shared"] == runs[1].cache_choice["shared"] == str(entry)
    assert (entry / "meta.json").is_file() and sorted(teacher_cache.TeacherCache(entry).layers) == [1, 2, 3, 4]
    assert len(builds) == 2 and builds[0] == tmp_path / "own" / "teacher_cache"  # the shared one built once
    a, o = losses(tmp_path / "a" / "losses.csv"), losses(tmp_path / "own" / "losses.csv")
    assert [r["total"] for r in a] == [r["total"] for r in o]  # the same fp16 values as a run's own cache


def test_another_teacher_or_training_set_gets_another_cache(tokenizer, tmp_path):
    from lrcbert.teacher_cache import shared_key

    tr = make_trainer(tokenizer, tmp_path / "x", train={"teacher_cache": "on"})
    base = shared_key("t1", tr.train_set, [1, 2], "no", "cpu")
    assert shared_key("t1", tr.train_set, [1, 2], "no", "cpu") == base
    assert shared_key("t2", tr.train_set, [1, 2], "no", "cpu") != base
    assert shared_key("t1", tr.train_set.select(range(len(tr.train_set) - 1)), [1, 2], "no", "cpu") != base
    assert shared_key("t1", tr.train_set, [1, 2], "bf16", "cpu") != base
    assert shared_key("t1", tr.train_set, [1, 2, 3], "no", "cpu") != base


def test_a_half_built_shared_cache_is_never_read(tokenizer, tmp_path, monkeypatch):
    from lrcbert import teacher_cache

    shared = tmp_path / "cache"

    def broken(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr(teacher_cache.TeacherCache, "build", classmethod(lambda cls, *a, **k: broken()))
    tr = make_trainer(tokenizer, tmp_path / "r", train={"teacher_cache": "on", "teacher_cache_dir": str(shared)})
    with pytest.raises(OSError, match="disk full"):
        tr.fit()
    assert [p.name for p in shared.iterdir() if not p.name.endswith(".lock")] == []  # no entry, no temporary
