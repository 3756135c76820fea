"""Data preparation: GLUE in its original TSV layout (downloaded from the hub, given, or generated), the
general-distillation corpus, and pre-trained checkpoints from the hub. Downloads are local rules, so that on
a cluster only the submitting host needs network access and compute nodes can stay offline. Generated data are
written only into a folder that ``lrcbert make-synthetic`` makes (common.smk refuses any other data.path)."""

if D["source"] == "hub":

    rule download_glue:
        output:
            multiext(f"{DATA}/{{folder}}/", "train.tsv", "dev.tsv", "test.tsv"),
        log:
            f"{LOGS}/data/download_glue_{{folder}}.log",
        localrule: True
        conda:
            "../envs/lrcbert.yaml"
        params:
            task=lambda wildcards: FOLDER_TASK[wildcards.folder],
            root=subpath(output[0], ancestor=2),
            hub_id=D["hub_id"],
        script:
            "../scripts/download_glue.py"

    rule download_glue_mnli:
        output:
            multiext(
                f"{DATA}/MNLI/",
                "train.tsv",
                "dev_matched.tsv",
                "dev_mismatched.tsv",
                "test_matched.tsv",
                "test_mismatched.tsv",
            ),
        log:
            f"{LOGS}/data/download_glue_MNLI.log",
        localrule: True
        conda:
            "../envs/lrcbert.yaml"
        params:
            task="mnli",
            root=subpath(output[0], ancestor=2),
            hub_id=D["hub_id"],
        script:
            "../scripts/download_glue.py"

elif D["source"] == "synthetic":

    rule make_synthetic:
        # the whole folder is the output: Snakemake creates only its parent, so make-synthetic finds no folder and
        # makes it (with its marker); a folder it did not make was refused when the workflow was parsed
        output:
            directory(DATA),
        log:
            f"{LOGS}/data/make_synthetic.log",
        conda:
            "../envs/lrcbert.yaml"
        threads: 1
        resources:
            gpu=0,
            mem_mb=mem_mb("default"),
            runtime=runtime("default"),
        params:
            options=[
                "--seed",
                D["synthetic"]["seed"],
                "--train",
                D["synthetic"]["train"],
                "--dev",
                D["synthetic"]["dev"],
                "--test",
                D["synthetic"]["test"],
                "--corpus-lines",
                D["synthetic"]["corpus_lines"],
            ],
        shell:
            "python -m lrcbert make-synthetic --out {output:q} {params.options:q} > {log:q} 2>&1"


if config["corpus"]["source"] == "hub":

    rule download_corpus:
        output:
            config["corpus"]["path"],
        log:
            f"{LOGS}/data/download_corpus.log",
        localrule: True
        conda:
            "../envs/lrcbert.yaml"
        params:
            hub_id=config["corpus"]["hub_id"],
            hub_config=config["corpus"]["hub_config"],
            text_column=config["corpus"]["text_column"],
            max_lines=config["corpus"]["max_lines"],
            min_chars=config["corpus"]["min_chars"],
        script:
            "../scripts/download_corpus.py"


rule download_model:
    output:
        "data/hub/{model}/download.json",
    log:
        f"{LOGS}/data/download_model_{{model}}.log",
    localrule: True
    conda:
        "../envs/lrcbert.yaml"
    params:
        repo_id=lambda wildcards: HUB_MODELS[wildcards.model],
    script:
        "../scripts/download_model.py"
