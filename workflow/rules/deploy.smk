"""Edge deployment: the Table 2 teacher and students (the Table 2 student system and its extra systems: one
run of each architecture) exported to ONNX, fused and quantised, checked against PyTorch on the task's dev
set and timed on the CPU, no GPU visible (python -m lrcbert.deploy) -> results/deployment.md and .json."""

DEPLOY = {"enabled": False, "threads": 1, "length": 128, "batch_sizes": [1, 32], "repeats": 20, "warmup": 3,
          **config.get("deployment", {})}
DEPLOY_TARGETS = [f"{RESULTS}/deployment.json"] if DEPLOY["enabled"] else []
DEPLOY_STUDENTS = {T2["student_system"]: T2_STUDENT_RUN, **T2_EXTRA_RUNS}


rule deployment:
    input:
        teacher=f"{RUNS}/teacher/{T2['task']}/selected.json",
        students=[f"{run}/metrics.json" for run in DEPLOY_STUDENTS.values()],
        data=glue_files(T2["task"]),
        paper=f"{PAPER}/table2_speed.csv",
    output:
        json=f"{RESULTS}/deployment.json",
        md=f"{RESULTS}/deployment.md",
    log:
        f"{LOGS}/tables/deployment.log",
    params:
        students=" ".join(shlex.quote(f"--student={s}={run}/model") for s, run in DEPLOY_STUDENTS.items()),
        sets=set_args(DATA_SETS),
        options=" ".join([f"--task {T2['task']}", f"--threads {DEPLOY['threads']}", f"--length {DEPLOY['length']}",
                          "--batch-sizes " + " ".join(str(b) for b in DEPLOY["batch_sizes"]),
                          f"--repeats {DEPLOY['repeats']}", f"--warmup {DEPLOY['warmup']}",
                          *(["--generated"] if D["source"] == "synthetic" else [])]),
        work=f"{RUNS}/deployment",
        jsonget=JSONGET,
    threads: DEPLOY["threads"]
    resources:
        mem_mb=mem_mb("evaluate"),
        runtime=runtime("evaluate"),
    conda:
        "../envs/lrcbert.yaml"
    shell:
        "teacher=$({params.jsonget} {input.teacher} model) && "
        "OMP_NUM_THREADS={threads} CUDA_VISIBLE_DEVICES= HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 "
        "exec python -m lrcbert.deploy --teacher \"$teacher\" {params.students} {params.sets} "
        "--paper {input.paper} --work {params.work} --out {output.json} {params.options} > {log} 2>&1"
