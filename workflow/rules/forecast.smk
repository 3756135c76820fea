"""Before and while a grid runs: the plan (every training job the configuration implies, with the lrcbert
command of each), the cost forecast (``lrcbert forecast``: a few timed steps of each architecture on this device
x the steps each job needs) and the progress page (finished / running / failed / missing runs, a provisional
Table 1, the time left). None of them needs a finished training run."""


def _plan_tables(system):
    """The results a system's runs feed (the first one names its row in the forecast)."""
    out = [t for t, names in (("Table 1", TABLE1_SYSTEMS),
                              ("Table 3", [REFERENCE, *A3.get("systems", [])] if AN_ENABLED else []),
                              ("Table 4", [REFERENCE, *A4.get("systems", [])] if AN_ENABLED else []),
                              ("Table 5", [REFERENCE, A5_SYSTEM] if AN_ENABLED else []),
                              ("Figure 5", [REFERENCE, F5_SYSTEM] if AN_ENABLED else [])) if system in names]
    return out or ["other"]


def plan_jobs():
    """Every training job of the DAG: stage, system, task, seed, lr, run folder, log, and the lrcbert command
    (command, method, task, ``--set`` overrides) its rule runs; ``teacher_sets``: the teacher's architecture
    (distillation jobs get the fine-tuned teacher's path at job time)."""
    jobs = []
    teacher = overrides(PRETRAINED_SETS)
    for t in TASK_LIST:
        if t in GIVEN_TEACHERS:
            continue
        for lr in TEACHER_LRS:
            jobs.append({"stage": "teacher", "system": TEACHER_SYSTEM, "task": t, "seed": T["seed"], "lr": lr,
                         "run": teacher_run(t, lr), "log": f"{LOGS}/teacher/{t}/lr{lr}.log", "command": "finetune",
                         "method": None, "sets": overrides({**TEACHER_SETS, "train.lr": num(lr)}),
                         "tables": ["Table 1"], "teacher_sets": teacher})
    used = sorted({SYSTEMS[s]["student"] for s in DISTILL_SYSTEMS if SYSTEMS[s]["general_distillation"]})
    for student in used:
        users = [s for s in DISTILL_SYSTEMS if SYSTEMS[s]["student"] == student and SYSTEMS[s]["general_distillation"]]
        jobs.append({"stage": "general", "system": student, "task": None, "seed": STUDENTS[student]["general_distillation"]["seed"],
                     "lr": None, "run": general_run(student), "log": f"{LOGS}/general/{student}.log",
                     "command": "general-distill", "method": general_method(student),
                     "sets": overrides(general_sets(student)), "tables": _plan_tables(users[0]), "teacher_sets": teacher})
    seen = set()
    for s in DISTILL_SYSTEMS:
        for t in system_aug_tasks(s):
            for seed in system_seeds(s):
                run = intermediate_run(s, t, seed)
                if run in seen:
                    continue
                seen.add(run)
                jobs.append({"stage": "intermediate", "system": intermediate_owner(s), "task": t, "seed": seed, "lr": None,
                             "run": run, "log": f"{LOGS}/intermediate/{intermediate_owner(s)}/{t}/seed{seed}.log",
                             "command": "distill", "method": intermediate_method(s),
                             "sets": overrides(intermediate_sets(s, t, seed)), "augment_factor": A["n_aug"] + 1,
                             "tables": _plan_tables(s), "teacher_sets": teacher})
        for t in system_tasks(s):
            for seed in system_seeds(s):
                for lr in system_lrs(s):
                    sets = distill_sets(s, t, seed, lr)
                    jobs.append({"stage": "distill", "system": s, "task": t, "seed": seed, "lr": lr,
                                 "run": distill_run(s, t, seed, lr), "log": f"{LOGS}/distill/{s}/{t}/seed{seed}/lr{lr}.log",
                                 "command": "distill", "method": SYSTEMS[s]["method"], "sets": overrides(sets),
                                 "augment_factor": A["n_aug"] + 1, "tables": _plan_tables(s), "teacher_sets": teacher})
    for sweep, points in SWEEPS.items():
        for point in points:
            for seed in SWEEP_SEEDS:
                for lr in SWEEP_LRS:
                    jobs.append({"stage": "sweep", "system": f"{sweep}/{point}", "task": SWEEP_TASK, "seed": seed,
                                 "lr": lr, "run": sweep_run(sweep, point, SWEEP_TASK, seed, lr),
                                 "log": f"{LOGS}/sweep/{sweep}/{point}/{SWEEP_TASK}/seed{seed}/lr{lr}.log",
                                 "command": "distill", "method": SYSTEMS[REFERENCE]["method"],
                                 "sets": overrides(sweep_sets(sweep, point, SWEEP_TASK, seed, lr)),
                                 "augment_factor": A["n_aug"] + 1, "tables": [f"sweep {sweep}"], "teacher_sets": teacher})
    return jobs


rule plan:
    output:
        f"{RESULTS}/plan.json",
    log:
        f"{LOGS}/tables/plan.log",
    params:
        jobs=plan_jobs(),
        table1={s: {"label": SYSTEMS[s]["label"], "tasks": system_tasks(s)} for s in TABLE1_SYSTEMS},
        splits={t: list(EVAL_SPLITS[t]) for t in TRAIN_TASKS},
    localrule: True
    run:
        from lrcbert.runinfo import atomic_write_json
        atomic_write_json(output[0], {"jobs": params.jobs, "table1": params.table1, "splits": params.splits})
        Path(log[0]).write_text(f"{len(params.jobs)} training jobs\n")


rule forecast:
    input:
        plan=f"{RESULTS}/plan.json",
        data=ALL_GLUE_FILES if D["source"] != "hub" else [],
    output:
        md=f"{RESULTS}/forecast.md",
        json=f"{RESULTS}/forecast.json",
    log:
        f"{LOGS}/tables/forecast.log",
    params:
        launch=LAUNCH,
    threads: THREADS
    resources:
        gpu=GPU,
        mem_mb=mem_mb("distill"),
        runtime=lambda wildcards, attempt: int(R["runtime"].get("default", 30)) * attempt,
    conda:
        "../envs/lrcbert.yaml"
    shell:
        "{params.launch} --threads {threads} -- python -m lrcbert forecast --plan {input.plan} "
        "--out {output.md} --json {output.json} > {log} 2>&1"


rule progress:
    input:
        plan=f"{RESULTS}/plan.json",
    output:
        md=f"{RESULTS}/progress.md",
    log:
        f"{LOGS}/tables/progress.log",
    localrule: True
    conda:
        "../envs/lrcbert.yaml"
    shell:
        "python -m lrcbert status --plan {input.plan} --out {output.md} > {log} 2>&1"
