"""Speed benchmark (``lrcbert bench``): distillation step vs its floor, fixed vs dynamic padding, teacher vs
student inference, the student in ONNX (fp32, int8) and the teacher-output cache. Runs when ``bench.enabled``;
its ONNX section uses the Table 2 student (a distilled run of the grid) and the task's dev set."""

BENCH = {
    "enabled": False,
    "quick": False,
    "sections": ["step", "padding", "inference", "onnx", "cache"],
    "bf16": True,
    "compile": False,
    "repeats": None,
    **config.get("bench", {}),
}
BENCH_OPTIONS = [
    "--sections",
    ",".join(BENCH["sections"]),
    *(["--quick"] if BENCH["quick"] else []),
    *([] if BENCH["bf16"] else ["--no-bf16"]),
    *(["--compile"] if BENCH["compile"] else []),
    *(["--repeats", BENCH["repeats"]] if BENCH["repeats"] else []),
]

BENCH_TARGETS = [f"{RESULTS}/bench.md", f"{RESULTS}/bench.json"] if BENCH["enabled"] else []


rule bench:
    input:
        student=f"{T2_STUDENT_RUN}/metrics.json",
        data=data_inputs(T2["task"]),
    output:
        md=f"{RESULTS}/bench.md",
        json=f"{RESULTS}/bench.json",
    log:
        f"{LOGS}/bench.log",
    conda:
        "../envs/lrcbert.yaml"
    threads: THREADS
    resources:
        gpu=GPU,
        mem_mb=mem_mb("evaluate"),
        runtime=runtime("evaluate"),
    params:
        student=f"{T2_STUDENT_RUN}/model",
        sets=set_args(DATA_SETS, {"task": T2["task"]}),
        options=BENCH_OPTIONS,
        work=f"{RUNS}/bench",
        launch=LAUNCH,
        data_source=DATA_ORIGIN,
        mark=os.path.join(SCRIPTS, "mark_generated.py"),
    shell:
        "{params.launch:q} --threads {threads} -- python -m lrcbert bench --student {params.student:q} "
        "{params.sets:q} --work {params.work:q} --out {output.json:q} --md {output.md:q} {params.options:q} "
        "> {log:q} 2>&1 && python {params.mark:q} {params.data_source:q} {output.md:q} >> {log:q} 2>&1"
