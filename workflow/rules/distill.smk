"""Distillation: general distillation (once per student architecture), data augmentation and the
transformer-layer distillation on it (RTE, CoLA for LRC-BERT; every task for TinyBERT), and task distillation for every system x task x seed x lr.

Each run writes a folder under runs/ whose ``metrics.json`` (written last) is the rule's only output, so that
Snakemake never deletes the checkpoints of an interrupted run: started again, lrcbert resumes from them."""


rule general_distill:
    input:
        corpus=corpus_input(),
        model=TEACHER_MODEL_DEPS,
    output:
        f"{RUNS}/general/{{student}}/metrics.json",
    log:
        f"{LOGS}/general/{{student}}.log",
    benchmark:
        f"{LOGS}/benchmarks/general/{{student}}.tsv"
    conda:
        "../envs/lrcbert.yaml"
    threads: THREADS
    resources:
        gpu=GPUS,
        mem_mb=mem_mb("general"),
        runtime=runtime("general"),
    params:
        run=subpath(output[0], parent=True),
        sets=lambda wildcards: set_args(general_sets(wildcards.student)),
        method=lambda wildcards: general_method(wildcards.student),
        launch=TRAIN_LAUNCH,
    shell:
        "exec {params.launch:q} --threads {threads} -- python -m lrcbert general-distill --method {params.method:q} "
        "--out {params.run:q} {params.sets:q} > {log:q} 2>&1"


rule augment:
    input:
        data=task_data,
        mlm=MLM_MODEL_DEPS,
    output:
        augmented_file("{task}"),
    log:
        f"{LOGS}/augment/{{task}}.log",
    conda:
        "../envs/lrcbert.yaml"
    threads: THREADS
    resources:
        gpu=GPU,
        mem_mb=mem_mb("augment"),
        runtime=runtime("augment"),
    params:
        sets=set_args(DATA_SETS, GLOBAL_SETS),
        launch=LAUNCH,
        options=[
            "--n-aug",
            A["n_aug"],
            "--p",
            num(A["p"]),
            "--top-k",
            A["top_k"],
            "--mlm",
            MLM_MODEL,
            "--seed",
            A["seed"],
            *(["--glove", A["glove"]] if A["glove"] else []),
        ],
    shell:
        "exec {params.launch:q} --threads {threads} -- python -m lrcbert augment --task {wildcards.task:q} "
        "--out {output:q} {params.options:q} {params.sets:q} > {log:q} 2>&1"


rule intermediate_distill:
    input:
        unpack(intermediate_inputs),
    output:
        f"{RUNS}/intermediate/{{system}}/{{task}}/seed{{seed}}/metrics.json",
    log:
        f"{LOGS}/intermediate/{{system}}/{{task}}/seed{{seed}}.log",
    benchmark:
        f"{LOGS}/benchmarks/intermediate/{{system}}/{{task}}/seed{{seed}}.tsv"
    conda:
        "../envs/lrcbert.yaml"
    threads: THREADS
    resources:
        gpu=GPUS,
        mem_mb=mem_mb("intermediate"),
        runtime=runtime("intermediate"),
    params:
        run=subpath(output[0], parent=True),
        sets=lambda wildcards: set_args(intermediate_sets(wildcards.system, wildcards.task, int(wildcards.seed))),
        method=lambda wildcards: intermediate_method(wildcards.system),
        launch=TRAIN_LAUNCH,
        jsonget=JSONGET,
    shell:
        'teacher="$({params.jsonget:q} --yaml {input.teacher:q} model)" && '
        "exec {params.launch:q} --threads {threads} -- python -m lrcbert distill --method {params.method:q} "
        '--task {wildcards.task:q} --out {params.run:q} {params.sets:q} --set "model.teacher=$teacher" > {log:q} 2>&1'


rule task_distill:
    input:
        unpack(distill_inputs),
    output:
        f"{RUNS}/{{system}}/{{task}}/seed{{seed}}/lr{{lr}}/metrics.json",
    log:
        f"{LOGS}/distill/{{system}}/{{task}}/seed{{seed}}/lr{{lr}}.log",
    benchmark:
        f"{LOGS}/benchmarks/distill/{{system}}/{{task}}/seed{{seed}}/lr{{lr}}.tsv"
    conda:
        "../envs/lrcbert.yaml"
    threads: THREADS
    resources:
        gpu=GPUS,
        mem_mb=mem_mb("distill"),
        runtime=runtime("distill"),
    params:
        run=subpath(output[0], parent=True),
        method=lambda wildcards: SYSTEMS[wildcards.system]["method"],
        sets=lambda wildcards: set_args(
            distill_sets(wildcards.system, wildcards.task, int(wildcards.seed), wildcards.lr)
        ),
        launch=TRAIN_LAUNCH,
        jsonget=JSONGET,
    shell:
        'teacher="$({params.jsonget:q} --yaml {input.teacher:q} model)" && '
        "exec {params.launch:q} --threads {threads} -- python -m lrcbert distill --method {params.method:q} "
        '--task {wildcards.task:q} --out {params.run:q} {params.sets:q} --set "model.teacher=$teacher" > {log:q} 2>&1'
