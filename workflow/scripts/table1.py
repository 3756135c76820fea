"""Table 1: GLUE results of every system (our dev-set numbers, mean +- std over seeds) beside the paper's
test-server numbers, with the Avg column computed as the paper does (plain mean of the nine headline scores)
and the paper's "LRC-BERT reaches 97.4% of the teacher" figure recomputed.

Inputs: ``results/dev/{system}.json`` (collect_dev.py), ``results/paper/table1_glue_test.csv`` and
``results/paper/other_figures.csv``. Outputs ``results/table1.md`` (pandas + tabulate) and ``results/table1.csv``
(one row per system and column, numbers only).
"""

import statistics

import pandas as pd

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

# evaluation split -> (column title, metric, column of the paper's CSV)
SPLITS = {
    "mnli_m": ("MNLI-m", "acc", "mnli_m"),
    "mnli_mm": ("MNLI-mm", "acc", "mnli_mm"),
    "qqp": ("QQP", "F1", "qqp_f1"),
    "sst2": ("SST-2", "acc", "sst2"),
    "qnli": ("QNLI", "acc", "qnli"),
    "mrpc": ("MRPC", "F1", "mrpc_f1"),
    "rte": ("RTE", "acc", "rte"),
    "cola": ("CoLA", "MCC", "cola_mcc"),
    "stsb": ("STS-B", "Spearman", "stsb"),
}


def stats(values: list[float]) -> dict:
    n = len(values)
    if n == 0:
        return {"mean": None, "std": None, "n": 0}
    return {"mean": statistics.fmean(values), "std": statistics.stdev(values) if n > 1 else None, "n": n}


def split_values(dev: dict, split: str) -> dict:
    """{seed: dev score} of ``split`` for the learning rate dev selection chose."""
    for entry in dev["tasks"].values():
        if split in entry["splits"]:
            return {seed: run["scores"][split] for seed, run in entry["seeds"].items() if split in run["scores"]}
    return {}


def system_row(dev: dict, splits: list[str]) -> dict:
    per_split = {s: split_values(dev, s) for s in splits}
    cells = {s: stats(list(v.values())) for s, v in per_split.items()}
    # Avg: per seed, the plain mean of the nine scores (only seeds with all nine); then mean +- std over seeds
    if all(per_split[s] for s in splits):
        common = set.intersection(*(set(per_split[s]) for s in splits))
        cells["avg"] = stats([statistics.fmean(per_split[s][seed] for s in splits) for seed in sorted(common)])
    else:
        cells["avg"] = stats([])
    params = [run["params"] for e in dev["tasks"].values() for run in e["seeds"].values() if run.get("params")]
    cells["params_m"] = statistics.fmean(params) / 1e6 if params else None
    return cells


def significance(devs: dict, systems, reference: str, splits: list[str]) -> dict:
    """{(system, split): (p, significant)}: each cell against ``reference`` (paired permutation test, Holm over
    the table; lrcbert/stats.py). Empty when the reference system is not in the table."""
    from lrcbert.stats import dev_runs, table_significance

    if reference not in devs:
        return {}
    return table_significance({n: dev_runs(devs[n], splits) for n in systems if n in devs}, reference, splits)


def marked(text: str, sig: dict, key) -> str:
    from lrcbert.stats import MARK

    return f"{text} {MARK}" if sig.get(key, (None, False))[1] else text


def label(info: dict) -> str:
    """A system's row label, with the variant that ran (e.g. "CoDIR-4 (released code)"); a reconstructed method
    (e.g. ACKD, rebuilt from its abstract) says so."""
    notes = [n for n in (info.get("variant"), "reconstruction" if info.get("reconstruction") else None) if n]
    return f"{info['label']} ({', '.join(notes)})" if notes else info["label"]


def ours_text(c: dict) -> str:
    if not c["n"]:
        return "missing"
    if c["n"] == 1:
        return f"{c['mean']:.1f} (n=1)"
    return f"{c['mean']:.1f} ± {c['std']:.1f} (n={c['n']})"


def paper_value(paper_row, column):
    if paper_row is None or column not in paper_row or pd.isna(paper_row[column]):
        return None
    return float(paper_row[column])


def with_paper(text: str, value, fmt: str = ".1f") -> str:
    return text if value is None else f"{text} [paper {value:{fmt}}]"


def percentage(figures: pd.DataFrame, key: str) -> str | None:
    row = figures[figures["figure"].str.contains(key, case=False, regex=False)]
    return None if row.empty else str(row.iloc[0]["value"])


def build(
    dev_files: list[str],
    systems: dict,
    teacher: str,
    compare: str,
    splits: list[str],
    paper_csv: str,
    figures_csv: str,
    data_source: str,
) -> tuple[str, pd.DataFrame]:
    paper = pd.read_csv(paper_csv)
    figures = pd.read_csv(figures_csv)
    devs = {read_json(f)["system"]: read_json(f) for f in dev_files}
    check_cited(list(devs.values()))
    rows, long, results = [], [], {}
    sig = significance(devs, systems, compare, splits)
    for name, info in systems.items():
        cells = system_row(devs[name], splits)
        results[name] = cells
        prow = paper[paper["system"] == info["paper"]].iloc[0] if info.get("paper") in set(paper["system"]) else None
        row = {
            "System": label(info),
            "Params (M)": with_paper(
                "missing" if cells["params_m"] is None else f"{cells['params_m']:.1f}",
                paper_value(prow, "params_m"),
                "g",
            ),
        }
        long.append(
            {
                "system": name,
                "column": "params_m",
                "mean": cells["params_m"],
                "std": None,
                "n": None,
                "paper": paper_value(prow, "params_m"),
            }
        )
        for s in splits:
            title, metric, pcol = SPLITS[s]
            row[f"{title} ({metric})"] = with_paper(
                marked(ours_text(cells[s]), sig, (name, s)), paper_value(prow, pcol)
            )
            long.append(
                {
                    "system": name,
                    "column": s,
                    **cells[s],
                    "paper": paper_value(prow, pcol),
                    "p_vs_compare": sig.get((name, s), (None,))[0],
                    "significant": sig.get((name, s), (None, None))[1],
                }
            )
        row["Avg"] = with_paper(ours_text(cells["avg"]), paper_value(prow, "avg"))
        long.append({"system": name, "column": "avg", **cells["avg"], "paper": paper_value(prow, "avg")})
        rows.append(row)
    table = pd.DataFrame(rows)

    # the paper's averages, recomputed from its own nine numbers (the paper's Avg is their plain mean)
    pcols = [SPLITS[s][2] for s in SPLITS]
    check = pd.DataFrame(
        {
            "System (paper)": paper["system"],
            "Avg as printed": paper["avg"],
            "Mean of its nine scores": paper[pcols].mean(axis=1).round(2),
        }
    )

    lines = header("Table 1: GLUE results", data_source) + [
        "Each cell: **ours, on the GLUE dev sets** (mean ± sample standard deviation over seeds, n = number of "
        "seeds), then `[paper X]`: the paper's Table 1, which reports the **GLUE test server**. Dev and test "
        "numbers are not the same quantity, so the comparison is indicative only. For each system and task the "
        "learning rate is the one with the best mean dev score over seeds, and the same dev scores are reported "
        "here, which flatters every system a little. The teacher is one fine-tuning run per task (n=1). "
        "Metrics: accuracy, except F1 for QQP and MRPC, Matthews correlation for CoLA and Spearman correlation "
        "for STS-B. Avg: plain mean of the nine columns (as in the paper), computed per seed; missing if any "
        "column is missing. Params: parameters of the trained models, in millions, BERT's pooler included (for a "
        "4 x 768 student that is 52.8M; the paper's 52.2M leaves the 0.59M pooler out).",
        "",
        md_frame(table).to_markdown(index=False),
        "",
    ]
    if sig:
        from lrcbert.stats import significance_note

        lines += [significance_note(sig, md(systems[compare]["label"])), ""]
    t, c = results.get(teacher, {}).get("avg", {}), results.get(compare, {}).get("avg", {})
    paper_t = (
        paper_value(paper[paper["system"] == systems[teacher].get("paper")].iloc[0], "avg")
        if systems[teacher].get("paper") in set(paper["system"])
        else None
    )
    paper_c = (
        paper_value(paper[paper["system"] == systems[compare].get("paper")].iloc[0], "avg")
        if systems.get(compare, {}).get("paper") in set(paper["system"])
        else None
    )
    ours = (
        f"{100 * c['mean'] / t['mean']:.1f}%"
        if t.get("mean") and c.get("mean") is not None
        else "missing (an average is missing)"
    )
    stated = percentage(figures, "share of teacher")
    recomputed = f"{100 * paper_c / paper_t:.1f}% ({paper_c:g} / {paper_t:g})" if paper_t and paper_c else "n/a"
    label_c = md(systems.get(compare, {}).get("label", compare))
    lines += [
        f"**{label_c} average = {ours} of the teacher's** (ours, dev). Paper: {md(stated or 'n/a')} "
        f"(stated); recomputed from the paper's Table 1: {recomputed}.",
        "",
        "The paper's Avg column recomputed as the plain mean of its nine scores:",
        "",
        md_frame(check).to_markdown(index=False),
        "",
    ]
    rebuilt = [label(systems[n]) for n in systems if systems[n].get("reconstruction")]
    if rebuilt:
        lines += [
            f"Rows marked (reconstruction): {md(', '.join(rebuilt))}. The method's paper was not available, only "
            "its abstract; the suite's version follows our reading of the abstract (baselines/ackd.py), so "
            "its numbers say how that reading performs, not how the published method does.",
            "",
        ]
    selected = pd.DataFrame(
        [
            {
                "System": label(systems[n]),
                **{
                    task: (e["selected_lr"] if e["selected_lr"] is not None else "missing")
                    for task, e in devs[n]["tasks"].items()
                },
            }
            for n in systems
        ]
    )
    selected = selected.astype(object).fillna("not run")  # a system runs only its own tasks
    lines += [
        "Learning rate chosen on dev for each system and training task (teacher: its fine-tuning lr; "
        "not run: a task outside the system's configuration):",
        "",
        md_frame(selected).to_markdown(index=False),
        "",
    ]
    lines += [x for x in [provenance_note([devs[n] for n in systems])] if x]
    left_out = excluded_note([devs[n] for n in systems])
    lines += (
        [left_out]
        if left_out
        else [
            "Every run the configuration asks for finished under the current "
            "configuration (checked by config hash), on the same data and teacher (checked by run identity, where "
            "the run has one), with the dev scores of its own dev predictions (recomputed), and is counted above.",
            "",
        ]
    )
    frame = pd.DataFrame(long)
    return "\n".join(lines), frame


if __name__ == "__main__":
    with job_log(snakemake) as smk:  # noqa: F821
        p = smk.params
        text, frame = build(
            list(smk.input.dev),
            p.systems,
            p.teacher,
            p.compare,
            p.splits,
            smk.input.paper,
            smk.input.figures,
            p.data_source,
        )
        write_table(text, smk.output.md, frame, smk.output.csv)
        print(text)
