"""The verdict: every quantitative claim of the paper checked against the suite's runs (results/claims.md, .csv),
with paired bootstrap intervals over dev examples and seeds (lrcbert/stats.py, workflow/scripts/claims.py)."""

CLAIM_SYSTEMS = list(
    dict.fromkeys(
        TABLE1_SYSTEMS
        + ([REFERENCE, *A3.get("systems", []), *A4.get("systems", []), A5_SYSTEM, F5_SYSTEM] if AN_ENABLED else [])
    )
)
CLAIMS_RESAMPLES = 2000


rule claims:
    input:
        dev=[dev_json(s) for s in CLAIM_SYSTEMS],
        table1=f"{PAPER}/table1_glue_test.csv",
        table3=f"{PAPER}/table3_loss_ablation_dev.csv",
        table4=f"{PAPER}/table4_two_stage_dev.csv",
        figures=f"{PAPER}/other_figures.csv",
        timing=f"{RESULTS}/inference_time.json",
        robustness=[f"{ANALYSIS}/robustness_{s}.json" for s in ROB.get("systems", [])] if AN_ENABLED else [],
    output:
        md=f"{RESULTS}/claims.md",
        csv=f"{RESULTS}/claims.csv",
    log:
        f"{LOGS}/tables/claims.log",
    localrule: True
    conda:
        "../envs/lrcbert.yaml"
    params:
        systems={s: {"label": SYSTEMS[s]["label"], "paper": SYSTEMS[s].get("paper")} for s in CLAIM_SYSTEMS},
        reference=REFERENCE,
        figure5_system=F5_SYSTEM,
        figure5_task=F5_TASK,
        robustness_systems=list(ROB.get("systems", [])) if AN_ENABLED else [],
        table3_splits=list(A3.get("splits", [])) if AN_ENABLED else [],
        n_resamples=CLAIMS_RESAMPLES,
        data_source=D["source"],
    script:
        "../scripts/claims.py"
