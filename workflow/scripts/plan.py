"""Write ``results/plan.json``: every training job of the configuration (computed by rules/verdict_common.smk's
``plan_jobs``), the systems of Table 1 and the evaluation splits of each task; read by ``lrcbert forecast`` and
``lrcbert status``."""

import json
from pathlib import Path

if __name__ == "__main__":
    smk = snakemake  # noqa: F821
    p = smk.params
    out = Path(smk.output[0])
    tmp = out.with_name(f".{out.name}.tmp")
    plan = {
        "jobs": p.jobs,
        "table1": p.table1,
        "splits": p.splits,
        "data": dict(p.data),
        "corpus": dict(p.corpus),
        "processes": p.processes,
        "threads": p.threads,
    }
    tmp.write_text(json.dumps(plan, indent=1) + "\n")
    tmp.replace(out)
    Path(smk.log[0]).write_text(f"{len(p.jobs)} training jobs\n")
