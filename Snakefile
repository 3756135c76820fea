# Entry point: `snakemake --cores 4` (see README.md). The workflow itself lives in workflow/ (Snakefile, rules,
# scripts, schemas, envs); this file only includes it and names its default target, since Snakemake takes the
# default target of the top-level file only.
include: "workflow/Snakefile"


rule default:
    default_target: True
    input:
        rules.all.input,
