"""The shareable report: ``snakemake --report results/report.html`` (Snakemake's own report). Every results page
(Markdown) is rendered to HTML so that its tables show as tables, every figure is copied beside them, and a
provenance page lists the configuration, the commits and the package versions of the runs behind them. Each item
carries a caption from workflow/report/."""


rule report_pages:
    input:
        pages=[f"{RESULTS}/{p}.md" for p in REPORT_PAGES],
        figures=[f"{RESULTS}/{f}.png" for f in REPORT_FIGURES],
        plan=f"{RESULTS}/plan.json",
    output:
        pages=[report(f"{REPORT_DIR}/{p}.html", caption=_caption(p), category=c) for p, c in REPORT_PAGES.items()],
        figures=[report(f"{REPORT_DIR}/{f}.png", caption=_caption(f), category=c) for f, c in REPORT_FIGURES.items()],
        provenance=report(f"{REPORT_DIR}/provenance.html", caption="../report/provenance.rst", category="6. Provenance"),
    log:
        f"{LOGS}/tables/report_pages.log",
    localrule: True
    conda:
        "../envs/lrcbert.yaml"
    params:
        config=config,
    script:
        "../scripts/report_pages.py"


VERDICT_TARGETS = [
    f"{RESULTS}/claims.md",
    f"{RESULTS}/claims.csv",
    f"{RESULTS}/plan.json",
    f"{RESULTS}/progress.md",
    f"{RESULTS}/forecast.md",
    *rules.report_pages.output,
]
