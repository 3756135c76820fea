"""Tables 3 and 4: ablations of LRC-BERT on dev sets, each cell mean +- std over seeds at the learning rate dev
selection chose (as for Table 1), the paper's value beside it, and the change relative to LRC-BERT (ours and the
paper's).

Inputs: ``results/dev/{system}.json`` of the reference system and of each ablation, and the paper's CSV
(``results/paper/table3_loss_ablation_dev.csv`` or ``table4_two_stage_dev.csv``). Outputs the Markdown table and
a CSV (one row per system and split, numbers only).
"""

import pandas as pd
from table1 import SPLITS, marked, ours_text, significance, split_values, stats

from lrcbert.results import (
    check_cited,
    excluded_note,
    header,
    job_log,
    md,
    md_frame,
    provenance_note,
    read_json,
    write_table,
)


def paper_column(columns, split: str) -> str | None:
    """The paper CSV's column of an evaluation split: the split's name, or name_metric (``cola_mcc``)."""
    if split in columns:
        return split
    longer = [o for o in SPLITS if o != split and o.startswith(split)]  # mnli_mm for mnli_m
    found = [
        c for c in columns if c.startswith(split + "_") and not any(c == o or c.startswith(o + "_") for o in longer)
    ]
    return found[0] if found else None


def signed(x) -> str:
    return "missing" if x is None else f"{x:+.1f}"


def build(
    dev_files: list[str], systems: dict, reference: str, splits: list[str], paper_csv: str, title: str, data_source: str
) -> tuple[str, pd.DataFrame]:
    paper = pd.read_csv(paper_csv)
    devs = {read_json(f)["system"]: read_json(f) for f in dev_files}
    check_cited(list(devs.values()))
    cells = {n: {s: stats(list(split_values(devs[n], s).values())) for s in splits} for n in systems}

    def paper_value(name, split):
        row = paper[paper["variant"] == systems[name].get("paper")]
        col = paper_column(paper.columns, split)
        return None if row.empty or col is None or pd.isna(row.iloc[0][col]) else float(row.iloc[0][col])

    rows, long = [], []
    sig = significance(devs, systems, reference, splits)
    for name, info in systems.items():
        prow = paper[paper["variant"] == info.get("paper")]
        row = {"System": info["label"]}
        if "removed" in paper.columns:
            row["Removed (paper)"] = (
                "nothing" if name == reference else (prow.iloc[0]["removed"] if not prow.empty else "-")
            )
        for s in splits:
            title_s, metric, _ = SPLITS[s]
            ours, ref = cells[name][s], cells[reference][s]
            p, p_ref = paper_value(name, s), paper_value(reference, s)
            delta = ours["mean"] - ref["mean"] if ours["n"] and ref["n"] else None
            p_delta = p - p_ref if p is not None and p_ref is not None else None
            row[f"{title_s} ({metric})"] = marked(ours_text(ours), sig, (name, s)) + (
                "" if p is None else f" [paper {p:.1f}]"
            )
            if name != reference:
                row[f"Δ {title_s}"] = signed(delta) + ("" if p_delta is None else f" [paper {p_delta:+.1f}]")
            else:
                row[f"Δ {title_s}"] = "(reference)"
            long.append(
                {
                    "system": name,
                    "split": s,
                    **ours,
                    "paper": p,
                    "delta": delta,
                    "paper_delta": p_delta,
                    "p_vs_reference": sig.get((name, s), (None,))[0],
                }
            )
        rows.append(row)
    tasks = [t for t, e in devs[reference]["tasks"].items() if set(e["splits"]) & set(splits)]
    lrs = pd.DataFrame(
        [
            {
                "System": systems[n]["label"],
                **{t: (devs[n]["tasks"].get(t) or {}).get("selected_lr") or "missing" for t in tasks},
            }
            for n in systems
        ]
    )
    ref_label = md(systems[reference]["label"])
    lines = header(title, data_source) + [
        f"Each cell: ours on the GLUE dev set, mean ± sample standard deviation over seeds (n = seeds), at the "
        f"learning rate with the best mean dev score for that system and task (chosen on the same dev scores, as "
        f"in Table 1), then `[paper X]`: the paper's dev number. Δ: the change of the mean relative to "
        f"{ref_label} (ours, then the paper's). Every variant uses {ref_label}'s student, general distillation and "
        f"augmentation; only the named term or switch differs (lrcbert/objective.py METHODS). Metrics: accuracy, "
        f"F1 for MRPC, Matthews correlation for CoLA.",
        "",
        md_frame(pd.DataFrame(rows)).to_markdown(index=False),
        "",
    ]
    if sig:
        from lrcbert.stats import significance_note

        lines += [significance_note(sig, ref_label), ""]
    lines += [
        "Learning rate chosen on dev per system and training task:",
        "",
        md_frame(lrs).to_markdown(index=False),
        "",
    ]
    lines += [x for x in [provenance_note([devs[n] for n in systems])] if x]
    left_out = excluded_note([devs[n] for n in systems])
    if left_out:
        lines += [left_out]
    return "\n".join(lines), pd.DataFrame(long)


if __name__ == "__main__":
    with job_log(snakemake) as smk:  # noqa: F821
        p = smk.params
        text, frame = build(
            list(smk.input.dev), p.systems, p.reference, list(p.splits), smk.input.paper, p.title, p.data_source
        )
        write_table(text, smk.output.md, frame, smk.output.csv)
        print(text)
