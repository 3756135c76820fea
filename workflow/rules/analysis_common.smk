"""Helpers of the analysis rules (workflow/rules/analysis.smk): the ``analyses`` section of the configuration,
checked when the workflow is parsed, the sweep points and run folders computed from it, and the targets."""

from types import SimpleNamespace

AN = config.get("analyses") or {}
AN_ENABLED = bool(AN.get("enabled"))
SWEEPS_ROOT = f"{RUNS}/sweep"
ANALYSIS = f"{RESULTS}/analysis"
if "sweep" in SYSTEMS:
    raise problem("systems.sweep", "the name 'sweep' is reserved for the sweep run folders")


def _an(key, default=None):
    return AN.get(key) or default or {}


def _need_system(name, where, kind="distill", task=None):
    if name not in SYSTEMS:
        raise problem(where, f"unknown system {name!r}; systems: {sorted(SYSTEMS)}")
    if kind and SYSTEMS[name]["kind"] != kind:
        raise problem(where, f"system {name!r} must be of kind '{kind}'")
    if task and task not in system_tasks(name):
        raise problem(where, f"system {name!r} does not run task {task!r} (its tasks: {system_tasks(name)})")


def _split_task(split):
    return next(t for t in TRAIN_TASKS if split in EVAL_SPLITS[t])


REFERENCE = AN.get("reference", "lrcbert")
A3, A4, A5, F5 = _an("table3"), _an("table4"), _an("table5"), _an("figure5")
SW, ROB = _an("sweeps"), _an("robustness")
if AN_ENABLED:
    _need_system(REFERENCE, "analyses.reference")
    for key, spec in (("table3", A3), ("table4", A4)):
        for name in spec.get("systems", []):
            _need_system(name, f"analyses.{key}.systems")
        for split in spec.get("splits", []):
            for name in [REFERENCE, *spec.get("systems", [])]:
                _need_system(name, f"analyses.{key}.splits", task=_split_task(split))
    _need_system(A5.get("system", "bert_m"), "analyses.table5.system", task=A5.get("task", "mnli"))
    _need_system(REFERENCE, "analyses.table5.task", task=A5.get("task", "mnli"))
    _need_system(F5.get("system", "lrcbert_g"), "analyses.figure5.system", task=F5.get("task", "mnli"))
    _need_system(REFERENCE, "analyses.figure5.task", task=F5.get("task", "mnli"))
    for name in ROB.get("systems", []):
        _need_system(name, "analyses.robustness.systems", task=ROB.get("task", "mnli"))
    if SW.get("task", "mnli") not in TASK_LIST:
        raise problem("analyses.sweeps.task", f"{SW.get('task')!r} is not one of the configured tasks {TASK_LIST}")


# ---------------------------------------------------------------------------------------------- sweeps
def _w(x):
    return f"{float(x):g}"


def sweep_points(sweep):
    """{point name: {dotted lrcbert key: value}} of a sweep, in the configured order."""
    if sweep == "stage_split":
        return {f"split{_w(v)}": {"method.stage_split": float(v)} for v in SW.get("stage_split", [])}
    if sweep == "negatives":  # the suite's reading (in-batch, K = B - 1) beside K sampled from the training set
        ks = (SW.get("negatives") or {}).get("values", [])
        return (
            {
                "inbatch": {"method.negatives": "in_batch"},
                **{f"k{int(k)}": {"method.negatives": "sampled", "method.num_negatives": int(k)} for k in ks},
            }
            if ks
            else {}
        )
    w = SW.get("weights") or {}
    values, base = [float(v) for v in w.get("values", [])], w.get("base", {"layer": 1, "soft": 1, "hard": 3})
    terms = ("layer", "soft", "hard")
    if w.get("mode", "one_at_a_time") == "grid":
        combos = [(a, b, c) for a in values for b in values for c in values]
    else:  # each weight over the values with the other two at their base value
        combos = []
        for i in range(3):
            for v in values:
                c = tuple(v if k == i else float(base[t]) for k, t in enumerate(terms))
                if c not in combos:
                    combos.append(c)
    return {f"w{_w(a)}-{_w(b)}-{_w(c)}": {"method.stage2": {"layer": a, "soft": b, "hard": c}} for a, b, c in combos}


SWEEPS = {s: sweep_points(s) for s in ("stage_split", "weights", "negatives")} if AN_ENABLED else {}
SWEEP_TASK = SW.get("task", "mnli")


def sweep_task(sweep):
    """The task a sweep runs on: ``analyses.sweeps.task``, or the negatives sweep's own (its memory of flattened
    teacher layers grows with the training set)."""
    return ((SW.get("negatives") or {}).get("task") or SWEEP_TASK) if sweep == "negatives" else SWEEP_TASK


SWEEP_SEEDS = list(SW.get("seeds") or (system_seeds(REFERENCE) if REFERENCE in SYSTEMS else SEEDS))
SWEEP_LRS = [lr_token(x) for x in SW["lr"]] if SW.get("lr") else (system_lrs(REFERENCE) if REFERENCE in SYSTEMS else [])


def sweep_run(sweep, point, task, seed, lr):
    return f"{SWEEPS_ROOT}/{sweep}/{point}/{task}/seed{seed}/lr{lr}"


def sweep_sets(sweep, point, task, seed, lr):
    return merged(distill_sets(REFERENCE, task, seed, lr), SWEEPS[sweep][point])


def sweep_inputs(wildcards):
    return distill_inputs(SimpleNamespace(system=REFERENCE, task=wildcards.task, seed=wildcards.seed))


def sweep_layout(sweep):
    """point -> lr -> seed -> run folder, and (under ``expect``) the lrcbert command the current configuration
    implies for each run, so that a run of an older configuration is left out (as collect_dev does)."""
    task = sweep_task(sweep)
    runs = {
        p: {lr: {str(s): sweep_run(sweep, p, task, s, lr) for s in SWEEP_SEEDS} for lr in SWEEP_LRS}
        for p in SWEEPS[sweep]
    }
    expect = {
        folder: {
            "command": "distill",
            "method": SYSTEMS[REFERENCE]["method"],
            "task": task,
            "sets": overrides(sweep_sets(sweep, p, task, int(seed), lr)),
            "teacher_from": f"{RUNS}/teacher/{task}/selected.json",
        }
        for p, lrs in runs.items()
        for lr, seeds in lrs.items()
        for seed, folder in seeds.items()
    }
    return {"points": runs, "expect": expect}


for _sweep, _points in SWEEPS.items():
    for _point in _points:
        check_lrcbert_keys(
            [sweep_sets(_sweep, _point, sweep_task(_sweep), SWEEP_SEEDS[0], SWEEP_LRS[0])],
            f"analyses.sweeps.{_sweep}",
            method=SYSTEMS[REFERENCE]["method"],
            task=sweep_task(_sweep),
        )


# ---------------------------------------------------------------------------------------------- targets
def analysis_targets():
    if not AN_ENABLED:
        return []
    out = [
        f"{RESULTS}/{name}"
        for name in (
            "table3.md",
            "table4.md",
            "table5.md",
            "figure5.png",
            "figure5.csv",
            "robustness.md",
            "robustness.png",
            "robustness.csv",
        )
    ]
    for sweep, points in SWEEPS.items():
        if points:
            out += [f"{RESULTS}/sweep_{sweep}.md", f"{RESULTS}/sweep_{sweep}.png", f"{RESULTS}/sweep_{sweep}.csv"]
    return out


def dev_json(system):
    return f"{RESULTS}/dev/{system}.json"


def labels(names):
    return {n: {"label": SYSTEMS.get(n, {}).get("label", n), "paper": SYSTEMS.get(n, {}).get("paper")} for n in names}


A5_SYSTEM, A5_TASK = A5.get("system", "bert_m"), A5.get("task", "mnli")
F5_SYSTEM, F5_TASK = F5.get("system", "lrcbert_g"), F5.get("task", "mnli")
ROB_TASK = ROB.get("task", "mnli")
