"""Analyses: the loss ablation (Table 3), the two-stage ablation (Table 4), the BERT_M case study (Table 5), the
training loss with and without gradient perturbation (Figure 5), the stage-split, loss-weight and negatives (K)
sweeps, and the robustness check under embedding perturbations.

The ablations are ordinary systems of the grid (``systems:``, method presets of lrcbert/objective.py), trained by
``task_distill`` and read through ``collect_dev`` (lr chosen on dev, as for Table 1). Sweep runs are generated
from ``analyses.sweeps``: the reference system with one method key changed, under
``runs/sweep/{sweep}/{point}/{task}/seed{seed}/lr{lr}``. Helpers: rules/analysis_common.smk."""


wildcard_constraints:
    sweep="stage_split|weights|negatives",
    point=r"[A-Za-z0-9_.-]+",


rule sweep_distill:
    input:
        unpack(sweep_inputs),
    output:
        f"{SWEEPS_ROOT}/{{sweep}}/{{point}}/{{task}}/seed{{seed}}/lr{{lr}}/metrics.json",
    log:
        f"{LOGS}/sweep/{{sweep}}/{{point}}/{{task}}/seed{{seed}}/lr{{lr}}.log",
    conda:
        "../envs/lrcbert.yaml"
    threads: THREADS
    resources:
        gpu=GPU,
        mem_mb=mem_mb("distill"),
        runtime=runtime("distill"),
    params:
        run=subpath(output[0], parent=True),
        method=SYSTEMS[REFERENCE]["method"] if REFERENCE in SYSTEMS else "lrcbert",
        sets=lambda wildcards: set_args(
            sweep_sets(wildcards.sweep, wildcards.point, wildcards.task, int(wildcards.seed), wildcards.lr)
        ),
        launch=LAUNCH,
        jsonget=JSONGET,
    shell:
        'teacher="$({params.jsonget:q} --yaml {input.teacher:q} model)" && '
        "{params.launch:q} --threads {threads} -- python -m lrcbert distill --method {params.method:q} "
        '--task {wildcards.task:q} --out {params.run:q} {params.sets:q} --set "model.teacher=$teacher" '
        "> {log:q} 2>&1"


rule sweep_table:
    input:
        runs=lambda wildcards: [
            f"{sweep_run(wildcards.sweep, p, sweep_task(wildcards.sweep), s, lr)}/metrics.json"
            for p in SWEEPS[wildcards.sweep]
            for s in SWEEP_SEEDS
            for lr in SWEEP_LRS
        ],
        teacher=lambda wildcards: f"{RUNS}/teacher/{sweep_task(wildcards.sweep)}/selected.json",
    output:
        md=f"{RESULTS}/sweep_{{sweep}}.md",
        png=f"{RESULTS}/sweep_{{sweep}}.png",
        csv=f"{RESULTS}/sweep_{{sweep}}.csv",
    log:
        f"{LOGS}/analysis/sweep_{{sweep}}.log",
    localrule: True
    conda:
        "../envs/lrcbert.yaml"
    params:
        layout=lambda wildcards: sweep_layout(wildcards.sweep),
        points=lambda wildcards: SWEEPS[wildcards.sweep],
        splits=lambda wildcards: list(EVAL_SPLITS[sweep_task(wildcards.sweep)]),
        reference=REFERENCE,
        weights=SW.get("weights", {}),
        data_source=DATA_ORIGIN,
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
    localrule: True
    conda:
        "../envs/lrcbert.yaml"
    params:
        systems=labels([REFERENCE, *A3.get("systems", [])]),
        reference=REFERENCE,
        splits=A3.get("splits", []),
        title="Table 3: loss ablation (dev)",
        data_source=DATA_ORIGIN,
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
    localrule: True
    conda:
        "../envs/lrcbert.yaml"
    params:
        systems=labels([REFERENCE, *A4.get("systems", [])]),
        reference=REFERENCE,
        splits=A4.get("splits", []),
        title="Table 4: two-stage training ablation (dev)",
        data_source=DATA_ORIGIN,
    script:
        "../scripts/ablation_tables.py"


rule case_stats:
    input:
        dev=[dev_json(REFERENCE), dev_json(A5_SYSTEM)],
        teacher=f"{RUNS}/teacher/{A5_TASK}/selected.json",
    output:
        f"{ANALYSIS}/case_stats_{A5_TASK}.json",
    log:
        f"{LOGS}/analysis/case_stats.log",
    conda:
        "../envs/lrcbert.yaml"
    threads: THREADS
    resources:
        gpu=GPU,
        mem_mb=mem_mb("evaluate"),
        runtime=runtime("evaluate"),
    params:
        sets=set_args(DATA_SETS, GLOBAL_SETS),
        seed=[] if A5.get("seed") is None else ["--seed", A5["seed"]],
        task=A5_TASK,
        runs=["--run", f"{REFERENCE}={dev_json(REFERENCE)}", "--run", f"{A5_SYSTEM}={dev_json(A5_SYSTEM)}"],
        launch=LAUNCH,
        jsonget=JSONGET,
        selected=SELECTED_RUN,
    shell:
        'teacher="$({params.jsonget:q} --yaml {input.teacher:q} model)" && '
        "{params.selected:q} --task {params.task:q} {params.seed:q} {params.runs:q} -- "
        "{params.launch:q} --threads {threads} -- python -m lrcbert case-stats --task {params.task:q} "
        '--out {output:q} {params.sets:q} --set "model.teacher=$teacher" > {log:q} 2>&1'


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
    localrule: True
    conda:
        "../envs/lrcbert.yaml"
    params:
        reference=REFERENCE,
        other=A5_SYSTEM,
        systems=labels([REFERENCE, A5_SYSTEM]),
        cases=A5.get("cases", 4),
        seed=A5.get("seed"),
        data_source=DATA_ORIGIN,
    script:
        "../scripts/table5.py"


# ---------------------------------------------------------------------------------------------- figure 5
rule figure5:
    input:
        dev=[dev_json(REFERENCE), dev_json(F5_SYSTEM)],
        teacher=f"{RUNS}/teacher/{F5_TASK}/selected.json",
    output:
        png=f"{RESULTS}/figure5.png",
        csv=f"{RESULTS}/figure5.csv",
    log:
        f"{LOGS}/analysis/figure5.log",
    localrule: True
    conda:
        "../envs/lrcbert.yaml"
    params:
        systems=labels([REFERENCE, F5_SYSTEM]),
        reference=REFERENCE,
        other=F5_SYSTEM,
        task=F5_TASK,
        layouts=lambda wildcards: {s: system_layout(s) for s in (REFERENCE, F5_SYSTEM)},
        smoothing=F5.get("smoothing", 0.9),
        data_source=DATA_ORIGIN,
    script:
        "../scripts/figure5.py"


# ---------------------------------------------------------------------------------------------- robustness
rule robustness_eval:
    input:
        dev=dev_json("{system}"),
    output:
        f"{ANALYSIS}/robustness_{{system}}.json",
    log:
        f"{LOGS}/analysis/robustness_{{system}}.log",
    conda:
        "../envs/lrcbert.yaml"
    threads: THREADS
    resources:
        gpu=GPU,
        mem_mb=mem_mb("evaluate"),
        runtime=runtime("evaluate"),
    params:
        sets=set_args(DATA_SETS, GLOBAL_SETS),
        options=[
            "--eps",
            *(_w(e) for e in ROB.get("eps", [0.0])),
            "--directions",
            *ROB.get("directions", ["random", "gradient"]),
            "--seed",
            ROB.get("seed", 0),
        ],
        task=ROB_TASK,
        launch=LAUNCH,
        selected=SELECTED_RUN,
    shell:
        "{params.selected:q} --task {params.task:q} --each-seed {input.dev:q} -- "
        "{params.launch:q} --threads {threads} -- python -m lrcbert robustness --task {params.task:q} "
        "{params.options:q} --out {output:q} {params.sets:q} > {log:q} 2>&1"


rule robustness_table:
    input:
        [f"{ANALYSIS}/robustness_{s}.json" for s in ROB.get("systems", [])],
    output:
        md=f"{RESULTS}/robustness.md",
        png=f"{RESULTS}/robustness.png",
        csv=f"{RESULTS}/robustness.csv",
    log:
        f"{LOGS}/analysis/robustness.log",
    localrule: True
    conda:
        "../envs/lrcbert.yaml"
    params:
        systems=labels(ROB.get("systems", [])),
        task=ROB_TASK,
        data_source=DATA_ORIGIN,
    script:
        "../scripts/robustness.py"
