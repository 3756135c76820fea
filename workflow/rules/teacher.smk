"""Teacher: fine-tune the pre-trained checkpoint on each task (one run per value of the teacher lr grid) and keep
the run with the best dev score; or evaluate an already fine-tuned teacher given in ``teacher.finetuned``."""


rule teacher_finetune:
    input:
        data=task_data,
        model=TEACHER_MODEL_DEPS,
    output:
        f"{RUNS}/teacher/{{task}}/lr{{lr}}/metrics.json",
    log:
        f"{LOGS}/teacher/{{task}}/lr{{lr}}.log",
    benchmark:
        f"{LOGS}/benchmarks/teacher/{{task}}/lr{{lr}}.tsv"
    conda:
        "../envs/lrcbert.yaml"
    threads: THREADS
    resources:
        gpu=GPUS,
        mem_mb=mem_mb("teacher"),
        runtime=runtime("teacher"),
    params:
        run=subpath(output[0], parent=True),
        sets=lambda wildcards: set_args(TEACHER_SETS, {"train.lr": num(wildcards.lr)}),
        launch=TRAIN_LAUNCH,
    shell:
        "exec {params.launch:q} --threads {threads} -- python -m lrcbert finetune --task {wildcards.task:q} "
        "--out {params.run:q} {params.sets:q} > {log:q} 2>&1"


rule teacher_evaluate:
    input:
        data=task_data,
        model=lambda wildcards: GIVEN_TEACHERS[wildcards.task][1],
    output:
        f"{RUNS}/teacher/{{task}}/given/metrics.json",
    log:
        f"{LOGS}/teacher/{{task}}/given.log",
    conda:
        "../envs/lrcbert.yaml"
    threads: THREADS
    resources:
        gpu=GPU,
        mem_mb=mem_mb("evaluate"),
        runtime=runtime("evaluate"),
    params:
        run=subpath(output[0], parent=True),
        model=lambda wildcards: GIVEN_TEACHERS[wildcards.task][0],
        sets=set_args(DATA_SETS, GLOBAL_SETS),
        launch=LAUNCH,
    shell:
        "exec {params.launch:q} --threads {threads} -- python -m lrcbert evaluate --model {params.model:q} "
        "--task {wildcards.task:q} --out {params.run:q} {params.sets:q} > {log:q} 2>&1"


rule teacher_select:
    input:
        teacher_candidates,
    output:
        f"{RUNS}/teacher/{{task}}/selected.json",
    log:
        f"{LOGS}/teacher/{{task}}/select.log",
    localrule: True
    conda:
        "../envs/lrcbert.yaml"
    params:
        given=lambda wildcards: GIVEN_TEACHERS.get(wildcards.task, [None])[0],
    script:
        "../scripts/select_teacher.py"
