"""The shareable report: ``snakemake --report results/report.html`` (Snakemake's own report). Every results page
(Markdown) is rendered to HTML so that its tables show as tables, every figure is copied beside them, and a
provenance page lists the configuration, the commits and the package versions of the runs behind them. Each item
carries a caption from workflow/report/."""

REPORT_DIR = f"{RESULTS}/report"
# page -> (category, caption file); pages of analyses and bench only when they are built
REPORT_PAGES = {"claims": "1. Verdict", "table1": "2. Tables", "table2": "2. Tables",
                "progress": "4. Cost and progress", "forecast": "4. Cost and progress"}
REPORT_FIGURES = {}
if AN_ENABLED:
    REPORT_PAGES.update({"table3": "2. Tables", "table4": "2. Tables", "table5": "2. Tables",
                         "robustness": "3. Analyses"})
    REPORT_FIGURES.update({"figure5": "3. Analyses", "robustness": "3. Analyses"})
    for _sweep, _points in SWEEPS.items():
        if _points:
            REPORT_PAGES[f"sweep_{_sweep}"] = "3. Analyses"
            REPORT_FIGURES[f"sweep_{_sweep}"] = "3. Analyses"
if BENCH["enabled"]:
    REPORT_PAGES["bench"] = "5. Speed"


def _caption(name):
    return f"../report/{name.split('_')[0] if name.startswith('sweep_') else name}.rst"


rule report_pages:
    input:
        pages=[f"{RESULTS}/{p}.md" for p in REPORT_PAGES],
        figures=[f"{RESULTS}/{f}.png" for f in REPORT_FIGURES],
        plan=f"{RESULTS}/plan.json",
    output:
        pages=[report(f"{REPORT_DIR}/{p}.html", caption=_caption(p), category=c) for p, c in REPORT_PAGES.items()],
        figures=[report(f"{REPORT_DIR}/{f}.png", caption=_caption(f), category=c) for f, c in REPORT_FIGURES.items()],
        provenance=report(f"{REPORT_DIR}/provenance.html", caption="../report/provenance.rst",
                          category="6. Provenance"),
    log:
        f"{LOGS}/tables/report_pages.log",
    params:
        config=config,
    localrule: True
    conda:
        "../envs/lrcbert.yaml"
    script:
        "../scripts/report_pages.py"


VERDICT_TARGETS = [f"{RESULTS}/claims.md", f"{RESULTS}/claims.csv", f"{RESULTS}/plan.json", f"{RESULTS}/progress.md",
                   f"{RESULTS}/forecast.md", *rules.report_pages.output]
