"""Helpers of the verdict rules (claims.smk, forecast.smk, report.smk): the plan of every training job, and the
pages and figures of the report."""


def _plan_tables(system):
    """The results a system's runs feed (the first one names its row in the forecast)."""
    out = [
        t
        for t, names in (
            ("Table 1", TABLE1_SYSTEMS),
            ("Table 3", [REFERENCE, *A3.get("systems", [])] if AN_ENABLED else []),
            ("Table 4", [REFERENCE, *A4.get("systems", [])] if AN_ENABLED else []),
            ("Table 5", [REFERENCE, A5_SYSTEM] if AN_ENABLED else []),
            ("Figure 5", [REFERENCE, F5_SYSTEM] if AN_ENABLED else []),
        )
        if system in names
    ]
    return out or ["other"]


def plan_jobs():
    """Every training job of the DAG: stage, system, task, seed, lr, run folder, log, and the lrcbert command
    (command, method, task, ``--set`` overrides) the job runs; ``teacher_sets``: the teacher's architecture
    (distillation jobs get the fine-tuned teacher's path at job time)."""
    jobs = []
    teacher = overrides(PRETRAINED_SETS)
    for t in TASK_LIST:
        if t in GIVEN_TEACHERS:
            continue
        for lr in TEACHER_LRS:
            jobs.append(
                {
                    "stage": "teacher",
                    "system": TEACHER_SYSTEM,
                    "task": t,
                    "seed": T["seed"],
                    "lr": lr,
                    "run": teacher_run(t, lr),
                    "log": f"{LOGS}/teacher/{t}/lr{lr}.log",
                    "command": "finetune",
                    "method": None,
                    "sets": overrides({**TEACHER_SETS, "train.lr": num(lr)}),
                    "tables": ["Table 1"],
                    "teacher_sets": teacher,
                }
            )
    used = sorted({SYSTEMS[s]["student"] for s in DISTILL_SYSTEMS if SYSTEMS[s]["general_distillation"]})
    for student in used:
        users = [s for s in DISTILL_SYSTEMS if SYSTEMS[s]["student"] == student and SYSTEMS[s]["general_distillation"]]
        jobs.append(
            {
                "stage": "general",
                "system": student,
                "task": None,
                "seed": STUDENTS[student]["general_distillation"]["seed"],
                "lr": None,
                "run": general_run(student),
                "log": f"{LOGS}/general/{student}.log",
                "command": "general-distill",
                "method": general_method(student),
                "sets": overrides(general_sets(student)),
                "tables": _plan_tables(users[0]),
                "teacher_sets": teacher,
            }
        )
    seen = set()
    for s in DISTILL_SYSTEMS:
        for t in system_aug_tasks(s):
            for seed in system_seeds(s):
                run = intermediate_run(s, t, seed)
                if run in seen:
                    continue
                seen.add(run)
                jobs.append(
                    {
                        "stage": "intermediate",
                        "system": intermediate_owner(s),
                        "task": t,
                        "seed": seed,
                        "lr": None,
                        "run": run,
                        "log": f"{LOGS}/intermediate/{intermediate_owner(s)}/{t}/seed{seed}.log",
                        "command": "distill",
                        "method": intermediate_method(s),
                        "sets": overrides(intermediate_sets(s, t, seed)),
                        "augment_factor": A["n_aug"] + 1,
                        "tables": _plan_tables(s),
                        "teacher_sets": teacher,
                    }
                )
        for t in system_tasks(s):
            for seed in system_seeds(s):
                for lr in system_lrs(s):
                    sets = distill_sets(s, t, seed, lr)
                    jobs.append(
                        {
                            "stage": "distill",
                            "system": s,
                            "task": t,
                            "seed": seed,
                            "lr": lr,
                            "run": distill_run(s, t, seed, lr),
                            "log": f"{LOGS}/distill/{s}/{t}/seed{seed}/lr{lr}.log",
                            "command": "distill",
                            "method": SYSTEMS[s]["method"],
                            "sets": overrides(sets),
                            "augment_factor": A["n_aug"] + 1,
                            "tables": _plan_tables(s),
                            "teacher_sets": teacher,
                        }
                    )
    for sweep, points in SWEEPS.items():
        for point in points:
            for seed in SWEEP_SEEDS:
                for lr in SWEEP_LRS:
                    jobs.append(
                        {
                            "stage": "sweep",
                            "system": f"{sweep}/{point}",
                            "task": SWEEP_TASK,
                            "seed": seed,
                            "lr": lr,
                            "run": sweep_run(sweep, point, SWEEP_TASK, seed, lr),
                            "log": f"{LOGS}/sweep/{sweep}/{point}/{SWEEP_TASK}/seed{seed}/lr{lr}.log",
                            "command": "distill",
                            "method": SYSTEMS[REFERENCE]["method"],
                            "sets": overrides(sweep_sets(sweep, point, SWEEP_TASK, seed, lr)),
                            "augment_factor": A["n_aug"] + 1,
                            "tables": [f"sweep {sweep}"],
                            "teacher_sets": teacher,
                        }
                    )
    return jobs


REPORT_DIR = f"{RESULTS}/report"
# page -> (category, caption file); pages of analyses and bench only when they are built
REPORT_PAGES = {
    "claims": "1. Verdict",
    "table1": "2. Tables",
    "table2": "2. Tables",
    "progress": "4. Cost and progress",
    "forecast": "4. Cost and progress",
}
REPORT_FIGURES = {}
if AN_ENABLED:
    REPORT_PAGES.update(
        {"table3": "2. Tables", "table4": "2. Tables", "table5": "2. Tables", "robustness": "3. Analyses"}
    )
    REPORT_FIGURES.update({"figure5": "3. Analyses", "robustness": "3. Analyses"})
    for _sweep, _points in SWEEPS.items():
        if _points:
            REPORT_PAGES[f"sweep_{_sweep}"] = "3. Analyses"
            REPORT_FIGURES[f"sweep_{_sweep}"] = "3. Analyses"
if BENCH["enabled"]:
    REPORT_PAGES["bench"] = "5. Speed"
if DEPLOY["enabled"]:
    REPORT_PAGES["deployment"] = "5. Speed"


def _caption(name):
    return f"../report/{name.split('_')[0] if name.startswith('sweep_') else name}.rst"


def cited_runs():
    """The metrics.json of every run a results page cites (each system's runs, the teacher runs dev selection
    chooses from, the sweep runs), named as targets of the default rule. Snakemake makes a missing file again only
    when a target or a job that must run wants it; a collect_dev whose output is up to date wants nothing, so
    without these a run folder moved away by hand left `snakemake -n` with "Nothing to be done" and the tables
    citing it. As targets, a run whose folder is gone is planned again (and everything made from it after it)."""
    from types import SimpleNamespace

    systems = set(TABLE1_SYSTEMS) | set(CLAIM_SYSTEMS) | {f.split("/")[2] for f in submission_targets()}
    if AN_ENABLED:
        systems |= set(ROB.get("systems", []))
    tasks = set(TASK_LIST) if TEACHER_SYSTEM in systems else set()
    out = []
    for s in sorted(systems - {TEACHER_SYSTEM}):
        out += system_metrics(s)
        tasks |= set(system_tasks(s))
    for t in sorted(tasks):
        out += teacher_candidates(SimpleNamespace(task=t))
    if AN_ENABLED:
        out += [
            f"{sweep_run(sweep, p, sweep_task(sweep), s, lr)}/metrics.json"
            for sweep, points in SWEEPS.items()
            for p in points
            for s in SWEEP_SEEDS
            for lr in SWEEP_LRS
        ]
    return list(dict.fromkeys(out))
