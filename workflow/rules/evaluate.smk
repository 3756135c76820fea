"""Evaluation: gather every run's dev metrics per system, choose the learning rate by dev score (the best mean
over seeds for each task), and write the selected runs' test predictions as GLUE server submissions."""


rule collect_dev:
    input:
        lambda wildcards: system_metrics(wildcards.any_system),
    output:
        f"{RESULTS}/dev/{{any_system}}.json",
    log:
        f"{LOGS}/evaluate/collect_dev_{{any_system}}.log",
    localrule: True
    conda:
        "../envs/lrcbert.yaml"
    params:
        layout=lambda wildcards: system_layout(wildcards.any_system),
        splits={t: list(EVAL_SPLITS[t]) for t in TRAIN_TASKS},
    script:
        "../scripts/collect_dev.py"


rule submission:
    input:
        f"{RESULTS}/dev/{{any_system}}.json",
    output:
        folder=directory(f"{RESULTS}/submissions/{{any_system}}/seed{{seed}}"),
        zip=f"{RESULTS}/submissions/{{any_system}}/seed{{seed}}.zip",
    log:
        f"{LOGS}/evaluate/submission_{{any_system}}_seed{{seed}}.log",
    localrule: True
    conda:
        "../envs/lrcbert.yaml"
    script:
        "../scripts/submission.py"
