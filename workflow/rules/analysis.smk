"""Analyses: the loss ablation (Table 3), the two-stage ablation (Table 4), the BERT_M case study (Table 5), the
training loss with and without gradient perturbation (Figure 5), the stage-split and loss-weight sweeps, and the
robustness check under embedding perturbations.

The ablations are ordinary systems of the grid (``systems:``, method presets of lrcbert/objective.py), trained by
``task_distill`` and read through ``collect_dev`` (lr chosen on dev, as for Table 1). Sweep runs are generated
from ``analyses.sweeps``: the reference system with one method key changed, under
``runs/sweep/{sweep}/{point}/{task}/seed{seed}/lr{lr}``."""
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
        for i, name in enumerate(spec.get("systems", [])):
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
    w = SW.get("weights") or {}
    values, base = [float(v) for v in w.get("values", [])], w.get("base", {"layer": 1, "soft": 1, "hard": 3})
    terms = ("layer", "soft", "hard")
    if w.get("mode", "one_at_a_time") == "grid":
        combos = [(a, b, c) for a in values for b in values for c in values]
    else:   # each weight over the values with the other two at their base value
        combos = []
        for i in range(3):
            for v in values:
                c = tuple(v if k == i else float(base[t]) for k, t in enumerate(terms))
                if c not in combos:
                    combos.append(c)
    return {f"w{_w(a)}-{_w(b)}-{_w(c)}": {"method.stage2": {"layer": a, "soft": b, "hard": c}} for a, b, c in combos}


SWEEPS = {s: sweep_points(s) for s in ("stage_split", "weights")} if AN_ENABLED else {}
SWEEP_TASK = SW.get("task", "mnli")
SWEEP_SEEDS = list(SW.get("seeds") or (system_seeds(REFERENCE) if REFERENCE in SYSTEMS else SEEDS))
SWEEP_LRS = [lr_token(x) for x in SW["lr"]] if SW.get("lr") else (system_lrs(REFERENCE) if REFERENCE in SYSTEMS else [])


def sweep_run(sweep, point, task, seed, lr):
    return f"{SWEEPS_ROOT}/{sweep}/{point}/{task}/seed{seed}/lr{lr}"


def sweep_sets(sweep, point, task, seed, lr):
    return {**distill_sets(REFERENCE, task, seed, lr), **SWEEPS[sweep][point]}


def sweep_inputs(wildcards):
    return distill_inputs(SimpleNamespace(system=REFERENCE, task=wildcards.task, seed=wildcards.seed))


def sweep_layout(sweep):
    return {p: {lr: {str(s): sweep_run(sweep, p, SWEEP_TASK, s, lr) for s in SWEEP_SEEDS} for lr in SWEEP_LRS}
            for p in SWEEPS[sweep]}


for _sweep, _points in SWEEPS.items():
    for _point in _points:
        check_lrcbert_keys([sweep_sets(_sweep, _point, SWEEP_TASK, SWEEP_SEEDS[0], SWEEP_LRS[0])],
                           f"analyses.sweeps.{_sweep}")


# ---------------------------------------------------------------------------------------------- targets
def analysis_targets():
    if not AN_ENABLED:
        return []
    out = [f"{RESULTS}/{name}" for name in ("table3.md", "table4.md", "table5.md", "figure5.png", "figure5.csv",
                                            "robustness.md", "robustness.png", "robustness.csv")]
    for sweep, points in SWEEPS.items():
        if points:
            out += [f"{RESULTS}/sweep_{sweep}.md", f"{RESULTS}/sweep_{sweep}.png", f"{RESULTS}/sweep_{sweep}.csv"]
    return out


def dev_json(system):
    return f"{RESULTS}/dev/{system}.json"


def labels(names):
    return {n: {"label": SYSTEMS.get(n, {}).get("label", n), "paper": SYSTEMS.get(n, {}).get("paper")} for n in names}


SELECTED_RUN = f"python {os.path.join(SCRIPTS, 'selected_run.py')}"


wildcard_constraints:
    sweep="stage_split|weights",
    point=r"[A-Za-z0-9_.-]+",


rule sweep_distill:
    input:
        unpack(sweep_inputs),
    output:
        f"{SWEEPS_ROOT}/{{sweep}}/{{point}}/{{task}}/seed{{seed}}/lr{{lr}}/metrics.json",
    log:
        f"{LOGS}/sweep/{{sweep}}/{{point}}/{{task}}/seed{{seed}}/lr{{lr}}.log",
    params:
        run=subpath(output[0], parent=True),
        method=SYSTEMS[REFERENCE]["method"] if REFERENCE in SYSTEMS else "lrcbert",
        sets=lambda wildcards: set_args(sweep_sets(wildcards.sweep, wildcards.point, wildcards.task,
                                                   int(wildcards.seed), wildcards.lr)),
        launch=LAUNCH,
        jsonget=JSONGET,
    threads: THREADS
    resources:
        gpu=GPU,
        mem_mb=mem_mb("distill"),
        runtime=runtime("distill"),
    conda:
        "../envs/lrcbert.yaml"
    shell:
        "teacher=$({params.jsonget} {input.teacher} model) && "
        "{params.launch} --threads {threads} -- python -m lrcbert distill --method {params.method} "
        '--task {wildcards.task} --out {params.run} {params.sets} --set "model.teacher=$teacher" > {log} 2>&1'


rule sweep_table:
    input:
        lambda wildcards: [f"{sweep_run(wildcards.sweep, p, SWEEP_TASK, s, lr)}/metrics.json"
                           for p in SWEEPS[wildcards.sweep] for s in SWEEP_SEEDS for lr in SWEEP_LRS],
    output:
        md=f"{RESULTS}/sweep_{{sweep}}.md",
        png=f"{RESULTS}/sweep_{{sweep}}.png",
        csv=f"{RESULTS}/sweep_{{sweep}}.csv",
    log:
        f"{LOGS}/analysis/sweep_{{sweep}}.log",
    params:
        layout=lambda wildcards: sweep_layout(wildcards.sweep),
        points=lambda wildcards: SWEEPS[wildcards.sweep],
        splits=list(EVAL_SPLITS[SWEEP_TASK]),
        reference=REFERENCE,
        weights=SW.get("weights", {}),
        data_source=D["source"],
    localrule: True
    conda:
        "../envs/lrcbert.yaml"
    script:
        "../scripts/sweeps.py"


# ---------------------------------------------------------------------------------------------- tables
rule table3:
    input:
        dev=[dev_json(s) for s in [REFERENCE, *A3.get("systems", [])]],
        paper=f"{PAPER}/table3_loss_ablation_dev.csv",
    output:
        md=f"{RESULTS}/table3.md",
        csv=f"{RESULTS}/table3.csv",
    log:
        f"{LOGS}/analysis/table3.log",
    params:
        systems=labels([REFERENCE, *A3.get("systems", [])]),
        reference=REFERENCE,
        splits=A3.get("splits", []),
        title="Table 3: loss ablation (dev)",
        data_source=D["source"],
    localrule: True
    conda:
        "../envs/lrcbert.yaml"
    script:
        "../scripts/ablation_tables.py"


rule table4:
    input:
        dev=[dev_json(s) for s in [REFERENCE, *A4.get("systems", [])]],
        paper=f"{PAPER}/table4_two_stage_dev.csv",
    output:
        md=f"{RESULTS}/table4.md",
        csv=f"{RESULTS}/table4.csv",
    log:
        f"{LOGS}/analysis/table4.log",
    params:
        systems=labels([REFERENCE, *A4.get("systems", [])]),
        reference=REFERENCE,
        splits=A4.get("splits", []),
        title="Table 4: two-stage training ablation (dev)",
        data_source=D["source"],
    localrule: True
    conda:
        "../envs/lrcbert.yaml"
    script:
        "../scripts/ablation_tables.py"


A5_SYSTEM, A5_TASK = A5.get("system", "bert_m"), A5.get("task", "mnli")


rule case_stats:
    input:
        dev=[dev_json(REFERENCE), dev_json(A5_SYSTEM)],
        teacher=f"{RUNS}/teacher/{A5_TASK}/selected.json",
    output:
        f"{ANALYSIS}/case_stats_{A5_TASK}.json",
    log:
        f"{LOGS}/analysis/case_stats.log",
    params:
        sets=set_args(DATA_SETS, GLOBAL_SETS),
        seed="" if A5.get("seed") is None else A5["seed"],
        launch=LAUNCH,
        jsonget=JSONGET,
        selected=SELECTED_RUN,
    threads: THREADS
    resources:
        gpu=GPU,
        mem_mb=mem_mb("distill"),
        runtime=lambda wildcards, attempt: int(R["runtime"].get("default", 30)) * attempt,
    conda:
        "../envs/lrcbert.yaml"
    shell:
        "teacher=$({params.jsonget} {input.teacher} model) && "
        "ref=$({params.selected} {input.dev[0]} " + A5_TASK + " {params.seed}) && "
        "other=$({params.selected} {input.dev[1]} " + A5_TASK + " {params.seed}) && "
        "{params.launch} --threads {threads} -- python -m lrcbert case-stats --task " + A5_TASK + " "
        '--run "' + REFERENCE + '=$ref" --run "' + A5_SYSTEM + '=$other" --out {output} {params.sets} '
        '--set "model.teacher=$teacher" > {log} 2>&1'


rule table5:
    input:
        cases=rules.case_stats.output[0],
        dev=[dev_json(REFERENCE), dev_json(A5_SYSTEM)],
        paper=f"{PAPER}/table5_cases_mnli_m_dev.csv",
        figures=f"{PAPER}/other_figures.csv",
    output:
        md=f"{RESULTS}/table5.md",
        csv=f"{RESULTS}/table5.csv",
    log:
        f"{LOGS}/analysis/table5.log",
    params:
        reference=REFERENCE,
        other=A5_SYSTEM,
        systems=labels([REFERENCE, A5_SYSTEM]),
        cases=A5.get("cases", 4),
        seed=A5.get("seed"),
        data_source=D["source"],
    localrule: True
    conda:
        "../envs/lrcbert.yaml"
    script:
        "../scripts/table5.py"


# ---------------------------------------------------------------------------------------------- figure 5
F5_SYSTEM, F5_TASK = F5.get("system", "lrcbert_g"), F5.get("task", "mnli")


rule figure5:
    input:
        dev=[dev_json(REFERENCE), dev_json(F5_SYSTEM)],
    output:
        png=f"{RESULTS}/figure5.png",
        csv=f"{RESULTS}/figure5.csv",
    log:
        f"{LOGS}/analysis/figure5.log",
    params:
        systems=labels([REFERENCE, F5_SYSTEM]),
        reference=REFERENCE,
        other=F5_SYSTEM,
        task=F5_TASK,
        layouts=lambda wildcards: {s: system_layout(s) for s in (REFERENCE, F5_SYSTEM)},
        smoothing=F5.get("smoothing", 0.9),
        data_source=D["source"],
    localrule: True
    conda:
        "../envs/lrcbert.yaml"
    script:
        "../scripts/figure5.py"


# ---------------------------------------------------------------------------------------------- robustness
ROB_TASK = ROB.get("task", "mnli")


rule robustness_eval:
    input:
        dev=dev_json("{system}"),
    output:
        f"{ANALYSIS}/robustness_{{system}}.json",
    log:
        f"{LOGS}/analysis/robustness_{{system}}.log",
    params:
        sets=set_args(DATA_SETS, GLOBAL_SETS),
        options=" ".join([f"--eps {' '.join(_w(e) for e in ROB.get('eps', [0.0]))}",
                          f"--directions {' '.join(ROB.get('directions', ['random', 'gradient']))}",
                          f"--seed {ROB.get('seed', 0)}"]),
        launch=LAUNCH,
        selected=SELECTED_RUN,
    threads: THREADS
    resources:
        gpu=GPU,
        mem_mb=mem_mb("distill"),
        runtime=lambda wildcards, attempt: int(R["runtime"].get("default", 30)) * attempt,
    conda:
        "../envs/lrcbert.yaml"
    shell:
        "runs=$({params.selected} --run-args {input.dev} " + ROB_TASK + ") && "
        "{params.launch} --threads {threads} -- python -m lrcbert robustness --task " + ROB_TASK + " $runs "
        "{params.options} --out {output} {params.sets} > {log} 2>&1"


rule robustness_table:
    input:
        [f"{ANALYSIS}/robustness_{s}.json" for s in ROB.get("systems", [])],
    output:
        md=f"{RESULTS}/robustness.md",
        png=f"{RESULTS}/robustness.png",
        csv=f"{RESULTS}/robustness.csv",
    log:
        f"{LOGS}/analysis/robustness.log",
    params:
        systems=labels(ROB.get("systems", [])),
        task=ROB_TASK,
        data_source=D["source"],
    localrule: True
    conda:
        "../envs/lrcbert.yaml"
    script:
        "../scripts/robustness.py"
