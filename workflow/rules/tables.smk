"""Aggregation: Table 1 (GLUE dev results of every system beside the paper's test-server numbers) and Table 2
(size and inference time of teacher and student, measured on one fixed workload on one device)."""

T2 = TABLES["table2"]
T2_STUDENT_RUN = distill_run(
    T2["student_system"], T2["task"], system_seeds(T2["student_system"])[0], system_lrs(T2["student_system"])[0]
)
# further systems timed beside them when their architecture differs (the 4 x 768 baselines)
T2_EXTRA_RUNS = {
    s: distill_run(s, T2["task"], system_seeds(s)[0], system_lrs(s)[0]) for s in T2.get("extra_systems", [])
}


rule table1:
    input:
        dev=[f"{RESULTS}/dev/{s}.json" for s in TABLE1_SYSTEMS],
        paper=f"{PAPER}/table1_glue_test.csv",
        figures=f"{PAPER}/other_figures.csv",
    output:
        md=f"{RESULTS}/table1.md",
        csv=f"{RESULTS}/table1.csv",
    log:
        f"{LOGS}/tables/table1.log",
    localrule: True
    conda:
        "../envs/lrcbert.yaml"
    params:
        systems={
            s: {
                "label": SYSTEMS[s]["label"],
                "paper": SYSTEMS[s]["paper"],
                "reconstruction": SYSTEMS[s].get("reconstruction", False),
                "variant": SYSTEMS[s].get("variant"),
            }
            for s in TABLE1_SYSTEMS
        },
        teacher=TABLES["table1"]["teacher"],
        compare=TABLES["table1"]["compare"],
        splits=list(PAPER_SPLITS),
        data_source=DATA_ORIGIN,
    script:
        "../scripts/table1.py"


rule inference_time:
    input:
        teacher=f"{RUNS}/teacher/{T2['task']}/selected.json",
        student=f"{T2_STUDENT_RUN}/metrics.json",
        extra=[f"{run}/metrics.json" for run in T2_EXTRA_RUNS.values()],
    output:
        f"{RESULTS}/inference_time.json",
    log:
        f"{LOGS}/tables/inference_time.log",
    conda:
        "../envs/lrcbert.yaml"
    threads: THREADS
    resources:
        gpu=GPU,
        mem_mb=mem_mb("evaluate"),
        runtime=runtime("evaluate"),
    params:
        student=f"{T2_STUDENT_RUN}/model",
        options=[
            "--sequences",
            T2["sequences"],
            "--batch-size",
            T2["batch_size"],
            "--max-length",
            T2["max_length"],
            "--warmup",
            T2["warmup"],
            "--repeats",
            T2["repeats"],
            "--task",
            T2["task"],
            *(["--threads", T2["threads"]] if T2["threads"] else []),
            *(f"--extra={SYSTEMS[s]['label']}={run}/model" for s, run in T2_EXTRA_RUNS.items()),
        ],
        launch=LAUNCH,
        jsonget=JSONGET,
        script=TIME_INFERENCE,
    shell:
        'teacher="$({params.jsonget:q} {input.teacher:q} model)" && '
        'exec {params.launch:q} --threads {threads} -- python {params.script:q} --teacher "$teacher" '
        "--student {params.student:q} {params.options:q} --out {output:q} > {log:q} 2>&1"


rule table2:
    input:
        timing=f"{RESULTS}/inference_time.json",
        paper=f"{PAPER}/table2_speed.csv",
        figures=f"{PAPER}/other_figures.csv",
    output:
        f"{RESULTS}/table2.md",
    log:
        f"{LOGS}/tables/table2.log",
    localrule: True
    conda:
        "../envs/lrcbert.yaml"
    params:
        data_source=DATA_ORIGIN,
    script:
        "../scripts/table2.py"
