"""Before and while a grid runs: the plan (every training job the configuration implies, with the lrcbert
command of each), the cost forecast (``lrcbert forecast``: a few timed steps of each architecture on this device
x the steps each job needs) and the progress page (finished / running / failed / missing runs, a provisional
Table 1, the time left). None of them needs a finished training run."""


rule plan:
    output:
        f"{RESULTS}/plan.json",
    log:
        f"{LOGS}/tables/plan.log",
    localrule: True
    conda:
        "../envs/lrcbert.yaml"
    params:
        jobs=lambda wildcards: plan_jobs(),  # computed only when the plan is wanted (1000+ jobs on the paper grid)
        table1={s: {"label": SYSTEMS[s]["label"], "tasks": system_tasks(s)} for s in TABLE1_SYSTEMS},
        splits={t: list(EVAL_SPLITS[t]) for t in TRAIN_TASKS},
        # what the cost model (lrcbert.costs) sizes the jobs from, as the resources do: data, corpus, processes
        data=D,
        corpus=config["corpus"],
        processes=PROCESSES,
        threads=THREADS,
    script:
        "../scripts/plan.py"


rule forecast:
    input:
        plan=f"{RESULTS}/plan.json",
        data=sorted({f for t in TASK_LIST for f in data_inputs(t)}),
    output:
        md=f"{RESULTS}/forecast.md",
        json=f"{RESULTS}/forecast.json",
    log:
        f"{LOGS}/tables/forecast.log",
    conda:
        "../envs/lrcbert.yaml"
    threads: THREADS
    resources:
        gpu=GPU,
        mem_mb=mem_mb("evaluate"),  # a few steps of each architecture, one at a time: no whole training set
        runtime=runtime("evaluate"),
    params:
        launch=LAUNCH,
    shell:
        "{params.launch:q} --threads {threads} -- python -m lrcbert forecast --plan {input.plan:q} "
        "--out {output.md:q} --json {output.json:q} > {log:q} 2>&1"


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
        "python -m lrcbert status --plan {input.plan:q} --out {output.md:q} > {log:q} 2>&1"
