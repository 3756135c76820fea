"""lrcbert forecast: the step count it derives for a job equals the steps the same lrcbert command really takes,
for fine-tuning and distillation, with fractional epochs, max_steps and an augmented set not written yet."""

import json

import pytest
from conftest import MINILM, STUDENT, TEACHER, assert_tables_well_formed

from lrcbert import forecast as F
from lrcbert.cli import main


def _sets(glue_dir, **extra):
    base = {
        "data.source": '"synthetic"',
        "data.path": f'"{glue_dir}"',
        "data.max_length": "64",
        "model.teacher": f'"{MINILM}"',
        "model.teacher_random_init": "true",
        "model.teacher_overrides": json.dumps(TEACHER),
        "train.batch_size": "8",
        "train.checkpoint_every": "0",
        "train.eval_batch_size": "32",
        "train.lr": "0.001",
    }
    base.update(extra)
    return [f"{k}={v}" for k, v in base.items()]


def _run(job):
    argv = [job["command"], "--task", job["task"], "--out", job["run"]]
    if job.get("method"):
        argv += ["--method", job["method"]]
    for s in job["sets"]:
        argv += ["--set", s]
    assert main(argv) == 0


def test_forecast_steps_equal_the_runs_actual_steps(glue_dir, tmp_path):
    teacher = {
        "command": "finetune",
        "method": None,
        "task": "rte",
        "run": str(tmp_path / "teacher"),
        "sets": _sets(glue_dir, **{"train.epochs": "1.5"}),
        "stage": "teacher",
    }
    _run(teacher)
    student = {
        "command": "distill",
        "method": "lrcbert",
        "task": "mrpc",
        "run": str(tmp_path / "student"),
        "stage": "distill",
        "sets": _sets(
            glue_dir, **{"train.epochs": "2", "model.student_arch": json.dumps(STUDENT), "train.batch_size": "16"}
        ),
    }
    teacher_model = tmp_path / "teacher_mrpc"
    _run({**teacher, "task": "mrpc", "run": str(teacher_model)})
    student["sets"].append(f'model.teacher="{teacher_model / "model"}"')
    _run(student)
    capped = {**student, "run": str(tmp_path / "capped"), "sets": student["sets"] + ["train.max_steps=3"]}
    _run(capped)
    for job in (teacher, student, capped):
        cfg = F.job_config(job)
        n, where = F.train_size(cfg, job)
        actual = json.loads((tmp_path / job["run"] / "run.json").read_text())["steps"]
        assert where == "data on disk" and n == 96
        assert F.steps(cfg, n) == actual
    # by hand: 96 examples; batch 8, 1.5 epochs -> ceil(1.5 * 12) = 18; batch 16, 2 epochs -> 12; max_steps 3
    assert [F.steps(F.job_config(j), 96) for j in (teacher, student, capped)] == [18, 12, 3]
    check = F.check_against_runs(
        [
            {
                "run": j["run"],
                "steps": F.steps(F.job_config(j), 96),
                "seconds": 1.0,
                "train_seconds": 0.5,
                "train_cpu_seconds": 0.25,
            }
            for j in (teacher, student, capped)
        ]
    )
    assert check["runs"] == 3 and check["steps_equal"] == 3
    # the training time each run recorded (its steps only) is what the forecast's training time is checked against
    train = [
        json.loads((tmp_path / j["run"] / "run.json").read_text())["train_time_s"] for j in (teacher, student, capped)
    ]
    assert all(
        0 < t < json.loads((tmp_path / j["run"] / "run.json").read_text())["wall_time_s"]
        for t, j in zip(train, (teacher, student, capped))
    )
    assert check["train_runs"] == 3 and check["forecast_train_s"] == 1.5
    assert check["measured_train_s"] == sum(train)
    # and in CPU time of the process: one thread here, so never more than the wall time by more than rounding
    cpu = [
        json.loads((tmp_path / j["run"] / "run.json").read_text())["train_cpu_s"] for j in (teacher, student, capped)
    ]
    assert check["cpu_runs"] == 3 and check["forecast_train_cpu_s"] == 0.75
    assert check["measured_train_cpu_s"] == sum(cpu) and all(c > 0 for c in cpu)


@pytest.mark.parametrize("split", [0.0, 0.3, 0.8, 1.0])
def test_stage_step_counts_follow_the_objectives_own_rule(split):
    """The forecast splits a run's steps between the method's stages exactly as the objective switches stage."""
    from lrcbert.config import load_config
    from lrcbert.objective import METHODS, Objective
    from lrcbert.tasks import get_task

    cfg = load_config([], [f"method.stage_split={split}"], base={"method": METHODS["lrcbert"]})
    arch = type("A", (), {"num_hidden_layers": 2, "hidden_size": 4})
    obj = Objective(cfg.method, get_task("rte"), arch, arch)
    stage1 = obj.weights(0, 10**6)  # stage 1's weights (stage 2's where stage 1 is empty)
    for n in (1, 2, 7, 10, 33):
        counts = F.stage_steps(split, n)
        in_stage1 = sum(obj.weights(s, n) == stage1 for s in range(n)) if split > 0 else 0
        assert counts == {"stage1": in_stage1, "stage2": n - in_stage1}, (split, n)


def test_augmented_set_not_written_yet_is_counted_from_the_task(glue_dir, tmp_path):
    job = {
        "command": "distill",
        "method": "lrcbert",
        "task": "rte",
        "run": str(tmp_path / "r"),
        "stage": "distill",
        "augment_factor": 3,
        "sets": _sets(glue_dir, **{"data.train_file": f'"{tmp_path / "missing.tsv"}"', "train.epochs": "1"}),
    }
    cfg = F.job_config(job)
    n, where = F.train_size(cfg, job)
    assert n == 3 * 96 and "augmented set not written yet" in where
    assert F.steps(cfg, n) == 36  # 288 // 8


def test_general_distillation_without_a_corpus_needs_a_size(glue_dir, tmp_path):
    job = {
        "command": "general-distill",
        "method": "general",
        "task": None,
        "run": str(tmp_path / "g"),
        "stage": "general",
        "sets": _sets(glue_dir, **{"data.corpus": f'"{tmp_path / "none.txt"}"'}),
    }
    cfg = F.job_config(job)
    with pytest.raises(F.ForecastError, match="corpus-lines"):
        F.train_size(cfg, job)
    assert F.train_size(cfg, job, corpus_lines=1000)[0] == 1000


def test_glue_sizes_when_hub_data_is_not_downloaded(tmp_path):
    job = {
        "command": "finetune",
        "method": None,
        "task": "mnli",
        "run": str(tmp_path / "t"),
        "stage": "teacher",
        "sets": ['data.source="tsv"', f'data.path="{tmp_path}/glue"', "train.batch_size=32", "train.epochs=3"],
    }
    cfg = F.job_config(job)
    n, where = F.train_size(cfg, job)
    assert n == 392702 and "published GLUE size" in where
    assert F.steps(cfg, n) == 3 * (392702 // 32)


def test_the_teacher_architecture_follows_leaf_overrides_as_the_workflow_passes_them():
    """The workflow passes the teacher's overrides as leaf keys (model.teacher_overrides.hidden_size=64); the
    forecast must time the teacher those build, not the pre-trained checkpoint's shape."""
    leaf = [
        "model.teacher=offline:minilm",
        "model.teacher_random_init=true",
        "model.teacher_overrides.num_hidden_layers=4",
        "model.teacher_overrides.hidden_size=64",
        "model.teacher_overrides.intermediate_size=128",
        "model.teacher_overrides.num_attention_heads=4",
    ]
    job = {
        "command": "distill",
        "method": "lrcbert",
        "task": "rte",
        "run": "r",
        "stage": "distill",
        "sets": [
            'model.student_arch={"num_hidden_layers": 2, "hidden_size": 32, "intermediate_size": 64, '
            '"num_attention_heads": 4}'
        ],
        "teacher_sets": leaf,
    }
    student, teacher = F.architectures(F.job_config(job), job)
    assert (teacher["num_hidden_layers"], teacher["hidden_size"], teacher["num_attention_heads"]) == (4, 64, 4)
    assert (student["num_hidden_layers"], student["hidden_size"]) == (2, 32)
    pretrained = {**job, "teacher_sets": leaf[:1]}  # no random init: the checkpoint's own shape (MiniLM-L6)
    assert F.architectures(F.job_config(pretrained), pretrained)[1]["hidden_size"] == 384


def test_forecast_adds_up_each_stage_and_writes_well_formed_tables(glue_dir):
    """A two-stage method (LRC-BERT) and a one-stage one (fine-tuning): each job's training seconds are its steps
    in each stage times that stage's timed step, plus the warm-up step's extra; every Markdown table row has its
    header's columns (a '|' inside a cell would break it)."""
    jobs = [
        {
            "command": "finetune",
            "method": None,
            "task": "rte",
            "run": "nowhere/teacher",
            "stage": "teacher",
            "system": "teacher",
            "sets": _sets(glue_dir, **{"train.epochs": "1"}),
        },
        {
            "command": "distill",
            "method": "lrcbert",
            "task": "mrpc",
            "run": "nowhere/student",
            "stage": "distill",
            "system": "lrcbert",
            "sets": _sets(glue_dir, **{"train.epochs": "2", "model.student_arch": json.dumps(STUDENT)}),
        },
    ]
    result = F.forecast({"jobs": jobs}, log=lambda *a, **k: None)
    assert result["check"] == {"runs": 0}
    for job in result["jobs"]:
        t = result["timings"][job["signature"]]
        split = F.stage_steps(t["stage_split"], job["steps"])
        assert sum(split.values()) == job["steps"]
        by_hand = sum(n * t["stage_step_s"].get(s, 0.0) for s, n in split.items()) + t["first_step_extra_s"]
        assert job["train_seconds"] == pytest.approx(by_hand, rel=1e-12)
        cpu = sum(n * t["stage_step_cpu_s"].get(s, 0.0) for s, n in split.items()) + t["first_step_extra_cpu_s"]
        assert job["train_cpu_seconds"] == pytest.approx(cpu, rel=1e-12)
        assert all(n >= F.TIMED_STEPS for n in t["timed_steps"].values())
        assert set(t["timed_steps"]) == {s for s, n in split.items() if n} or job["steps"] < 2
    distill = result["timings"][result["jobs"][1]["signature"]]
    assert set(distill["stage_step_s"]) == {"stage1", "stage2"}  # LRC-BERT's two stages, timed apart
    assert_tables_well_formed(F.markdown(result))


def _smoke_plan(tmp_path, jobs):
    """A plan as the workflow writes it for generated data (rule plan): its data and corpus descriptions."""
    data = {
        "source": "synthetic",
        "path": str(tmp_path / "data" / "synthetic"),  # not generated yet
        "max_length": 64,
        "synthetic": {"seed": 0, "train": 128, "dev": 64, "test": 32, "corpus_lines": 256},
        "max_train_examples": None,
        "max_eval_examples": None,
    }
    return {"jobs": jobs, "data": data, "corpus": {"source": "synthetic", "max_lines": None}, "processes": 1}


def _workflow_job(tmp_path, **extra):
    """A job as the plan gives it: the workflow passes generated data to lrcbert as a TSV folder."""
    sets = [
        'data.source="tsv"',
        f'data.path="{tmp_path / "data" / "synthetic"}"',
        "train.batch_size=16",
        "train.epochs=2.0",
        "train.lr=0.001",
    ]
    job = {"command": "finetune", "method": None, "task": "mnli", "run": str(tmp_path / "t"), "stage": "teacher"}
    job.update(extra)
    job["sets"] = sets + job.get("sets", [])
    return job


def test_generated_data_is_sized_as_the_workflow_sizes_it(tmp_path):
    """The smoke configuration's data is generated by the workflow (128 training examples per task): the forecast
    sizes its jobs by the plan's data description, as the workflow's resources do (lrcbert.costs), not by GLUE's
    published sizes (392,702 for MNLI: 49,088 steps instead of 16), and its corpus by data.synthetic.corpus_lines."""
    from lrcbert import costs

    teacher = _workflow_job(tmp_path)
    general = _workflow_job(
        tmp_path,
        command="general-distill",
        method="general",
        task=None,
        stage="general",
        sets=[f'data.corpus="{tmp_path / "data" / "synthetic" / "corpus.txt"}"'],
    )
    plan = _smoke_plan(tmp_path, [teacher, general])
    cfg = F.job_config(teacher)
    n, where = F.train_size(cfg, teacher, plan=plan)
    assert (n, where) == (128, "data.synthetic (the sizes make-synthetic writes)")
    assert F.steps(cfg, n) == 16  # 128 // 16 = 8 steps per epoch, 2 epochs
    assert F.eval_size(cfg, teacher, plan) == 2 * (64 + 32)  # MNLI: matched and mismatched dev and test
    assert F.train_size(F.job_config(general), general, plan=plan)[0] == 256
    # the workflow's resources read the same model
    assert costs.train_examples(plan["data"], "mnli") == 128
    assert costs.corpus_lines(plan["data"], plan["corpus"]) == 256
    # and a TSV folder is sized by its rows, hub data (or TSV not there yet) by GLUE's published sizes
    assert costs.train_examples({"source": "hub"}, "rte") == 2490
    assert costs.corpus_lines({"source": "hub"}, {"source": "hub", "max_lines": None}) == costs.WIKI_LINES


def test_the_engine_counts_steps_by_the_shared_rule():
    """One step rule (lrcbert.costs.total_steps) for the engine, the forecast and the workflow: full global batches
    per epoch, ceil over fractional epochs, max_steps first, at least one step."""
    from lrcbert import costs

    assert costs.total_steps(96, 8, 1.5) == 18
    assert costs.total_steps(96, 8, 1.5, world=2) == 9  # 96 // 16 = 6 per epoch
    assert costs.total_steps(96, 8, 2, max_steps=3) == 3
    assert costs.total_steps(5, 8, 1) == 1
    import inspect

    from lrcbert import engine

    source = inspect.getsource(engine.Trainer.__init__)
    assert "costs.total_steps(" in source and "math.ceil(t.epochs" not in source


def test_forecast_checks_every_job_before_timing_any(tmp_path, monkeypatch):
    """A bad job anywhere in the plan fails the forecast at once (one line naming the job), before the first
    architecture is timed."""
    good = _workflow_job(tmp_path)
    bad = _workflow_job(tmp_path, run=str(tmp_path / "bad"), sets=["train.lr=fast"])
    monkeypatch.setattr(F, "measure", lambda *a, **k: pytest.fail("timed a step before checking the plan"))
    with pytest.raises(F.ForecastError, match=r"job .*bad: .*train\.lr"):
        F.forecast(_smoke_plan(tmp_path, [good, bad]), log=lambda *a, **k: None)


def test_forecast_config_that_does_not_exist_is_one_line(tmp_path, capfd):
    """``lrcbert forecast --config`` checks its files before it starts Snakemake: one line, exit status 2."""
    missing = tmp_path / "nope.yaml"
    assert main(["forecast", "--config", str(missing), "--plan", str(tmp_path / "plan.json")]) == 2
    out, err = capfd.readouterr()
    assert out == "" and err == f"lrcbert: error: --config {missing}: no such file\n"


def test_a_failed_plan_names_snakemakes_log_and_prints_none_of_it(tmp_path, monkeypatch, capfd):
    """Writing the plan for a configuration the workflow refuses: Snakemake's output goes to a log file, and the
    error is one line with the workflow's own report and the log's name."""
    from pathlib import Path

    bad = tmp_path / "bad.yaml"
    bad.write_text("no_such_key: 1\n")
    log = tmp_path / "snakemake.log"
    monkeypatch.chdir(Path(__file__).resolve().parents[1])  # the repository root: the workflow
    with pytest.raises(F.ForecastError) as e:
        F.write_plan([str(bad)], str(tmp_path / "plan.json"), log_path=str(log))
    assert "config key 'no_such_key': unknown key" in str(e.value) and str(e.value).endswith(f"log: {log}")
    assert "\n" not in str(e.value) and "no_such_key" in log.read_text()
    out, err = capfd.readouterr()
    assert out == "" and err == ""
