"""Edge deployment: the Table 2 teacher and students (the Table 2 student system and its extra systems: one
run of each architecture) exported to ONNX, fused and quantised, checked against PyTorch on the task's dev
set and timed on the CPU, no GPU visible (python -m lrcbert.deploy) -> results/deployment.md and .json."""

DEPLOY = {
    "enabled": False,
    "threads": 1,
    "length": 128,
    "batch_sizes": [1, 32],
    "repeats": 20,
    "warmup": 3,
    **config.get("deployment", {}),
}
DEPLOY_TARGETS = [f"{RESULTS}/deployment.json"] if DEPLOY["enabled"] else []
DEPLOY_STUDENTS = {T2["student_system"]: T2_STUDENT_RUN, **T2_EXTRA_RUNS}


rule deployment:
    input:
        teacher=f"{RUNS}/teacher/{T2['task']}/selected.json",
        students=[f"{run}/metrics.json" for run in DEPLOY_STUDENTS.values()],
        data=data_inputs(T2["task"]),
        paper=f"{PAPER}/table2_speed.csv",
    output:
        json=f"{RESULTS}/deployment.json",
        md=f"{RESULTS}/deployment.md",
    log:
        f"{LOGS}/tables/deployment.log",
    conda:
        "../envs/lrcbert.yaml"
    threads: DEPLOY["threads"]
    resources:
        mem_mb=mem_mb("evaluate"),
        runtime=runtime("evaluate"),
    params:
        students=[f"--student={s}={run}/model" for s, run in DEPLOY_STUDENTS.items()],
        sets=set_args(DATA_SETS),
        # --generated: generated data (also a generated folder read as tsv) give the page its banner
        options=[
            "--task",
            T2["task"],
            "--threads",
            DEPLOY["threads"],
            "--length",
            DEPLOY["length"],
            "--batch-sizes",
            *DEPLOY["batch_sizes"],
            "--repeats",
            DEPLOY["repeats"],
            "--warmup",
            DEPLOY["warmup"],
            *(["--generated"] if DATA_ORIGIN == "synthetic" else []),
        ],
        work=f"{RUNS}/deployment",
        jsonget=JSONGET,
    shell:
        'teacher="$({params.jsonget:q} {input.teacher:q} model)" && '
        "OMP_NUM_THREADS={threads} CUDA_VISIBLE_DEVICES= HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 "
        'exec python -m lrcbert.deploy --teacher "$teacher" {params.students:q} {params.sets:q} '
        "--paper {input.paper:q} --work {params.work:q} --out {output.json:q} {params.options:q} > {log:q} 2>&1"
