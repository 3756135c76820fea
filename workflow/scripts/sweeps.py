"""The hyper-parameter sweeps of the paper's setup section, run on one task from the reference system (LRC-BERT)
with one method key changed: the stage split (share of steps in stage 1, paper: {0, 5, ..., 95}%, chose 80%) and
the stage-2 weights alpha:beta:gamma of the layer, soft and hard terms (paper: each over {1, 2, 3, 4}, chose
1:1:3; read here as one weight varied at a time with the other two at 1:1:3, or the full grid with mode: grid),
and the COS-NCE negatives (the suite's in-batch reading, K = B - 1, beside K negatives sampled from the whole
training set, ``method.negatives: sampled``; the paper says only "randomly sample K negative samples").

For every point the learning rate is chosen on dev (best mean over seeds of the selection score, i.e. the mean of
the task's evaluation splits), as for the tables. Outputs ``results/sweep_{sweep}.md/.png/.csv``.
"""

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
from table1 import SPLITS, ours_text, stats  # noqa: E402

from lrcbert.results import (  # noqa: E402
    best_lr,
    header,
    job_log,
    md,
    md_frame,
    mean,
    run_problem,
    save_figure,
    selection_score,
    series_style,
    split_scores,
    write_table,
)

TERMS = ("layer", "soft", "hard")
PAPER_CHOICE = {"stage_split": "split0.8", "weights": "w1-1-3", "negatives": "inbatch"}
CHOICE_NOTE = {"stage_split": "paper's choice", "weights": "paper's choice", "negatives": "the suite's default reading"}
IN_BATCH = "in-batch (K = B - 1)"


def current_runs(layout: dict, expect: dict | None, excluded: dict) -> dict:
    """point -> lr -> seed -> run without the runs ``run_problem`` refuses (recorded in ``excluded``)."""
    out = {}
    for p, lrs in layout.items():
        out[p] = {}
        for lr, seeds in lrs.items():
            out[p][lr] = {}
            for seed, run in seeds.items():
                why = run_problem(run, (expect or {}).get(run)) if expect is not None else None
                if why:
                    excluded[run] = why
                else:
                    out[p][lr][seed] = run
    return out


def point_result(layout: dict, splits: list[str]) -> dict:
    """Chosen lr, its selection score (mean over seeds) and per-split stats over seeds."""
    per_lr = {
        lr: mean([selection_score(split_scores(run, splits), splits) for run in seeds.values()])
        for lr, seeds in layout.items()
        if seeds
    }
    lr = best_lr(per_lr)
    out = {"lr": lr, "selection": per_lr.get(lr)}
    runs = layout[lr].values() if lr else []
    per_seed = [split_scores(r, splits) for r in runs]
    for s in splits:
        out[s] = stats([x[s] for x in per_seed if s in x])
    sel = [selection_score(x, splits) for x in per_seed]
    out["selection_stats"] = stats([v for v in sel if v is not None])
    return out


def describe(sweep: str, sets: dict) -> dict:
    if sweep == "negatives":
        k = sets.get("method.num_negatives") if sets["method.negatives"] == "sampled" else None
        return {"negatives": IN_BATCH if k is None else f"sampled, K = {k}", "K": k}
    if sweep == "stage_split":
        return {"stage split (% of steps in stage 1)": round(100 * sets["method.stage_split"], 2)}
    w = sets["method.stage2"]
    return {"alpha (layer)": w["layer"], "beta (soft)": w["soft"], "gamma (hard)": w["hard"]}


def build(
    sweep: str,
    layout: dict,
    points: dict,
    splits: list[str],
    reference: str,
    weights: dict,
    data_source: str,
    expect: dict | None = None,
):
    excluded = {}
    layout = current_runs(layout, expect, excluded)
    results = {p: point_result(layout[p], splits) for p in points}
    best = best_lr({p: r["selection"] for p, r in results.items()})
    rows, long = [], []
    for p, sets in points.items():
        r = results[p]
        mark = f" ({CHOICE_NOTE[sweep]})" if p == PAPER_CHOICE[sweep] else ""
        shown = {k: v for k, v in describe(sweep, sets).items() if k != "K"}
        row = {
            k: (v if isinstance(v, str) else f"{v:g}") + (mark if i == 0 else "")
            for i, (k, v) in enumerate(shown.items())
        }
        for s in splits:
            row[f"{SPLITS[s][0]} ({SPLITS[s][1]})"] = ours_text(r[s])
        row["mean of splits"] = (
            ("**" if p == best else "") + ours_text(r["selection_stats"]) + ("**" if p == best else "")
        )
        row["lr"] = r["lr"] or "missing"
        rows.append(row)
        long.append(
            {
                "point": p,
                **describe(sweep, sets),
                "lr": r["lr"],
                "selection_mean": r["selection_stats"]["mean"],
                "selection_std": r["selection_stats"]["std"],
                "n": r["selection_stats"]["n"],
                **{f"{s}_mean": r[s]["mean"] for s in splits},
                **{f"{s}_std": r[s]["std"] for s in splits},
            }
        )
    frame = pd.DataFrame(long)
    base_text = ":".join(f"{float(weights.get('base', {}).get(t, 0)):g}" for t in TERMS)
    what = (
        "the COS-NCE negatives: the other samples of the batch (the suite's reading of the paper) or K "
        "negatives per sample drawn from the whole training set, their teacher vectors from a memory "
        "(method.negatives: sampled, method.num_negatives: K)"
        if sweep == "negatives"
        else "the share of optimisation steps in stage 1 (layer term only; stage 2 adds soft and hard at 1:1:3)"
        if sweep == "stage_split"
        else f"the stage-2 weights alpha:beta:gamma ({weights.get('mode', 'one_at_a_time').replace('_', ' ')}: "
        + (
            f"each weight over the values with the other two at {base_text}"
            if weights.get("mode", "one_at_a_time") == "one_at_a_time"
            else "every combination of the values"
        )
        + "; stage split as configured)"
    )
    title = {
        "stage_split": "Sweep of the stage split",
        "weights": "Sweep of the stage-2 loss weights",
        "negatives": "Sweep of the number of negatives K",
    }[sweep]
    lines = header(title, data_source) + [
        f"Runs of the reference system ({md(reference)}) with one change: {what}. Cells: dev score, mean ± standard "
        f"deviation over seeds (n) at the learning rate chosen on dev for that point; **bold**: the best point by "
        f"the mean of the splits (which is the same dev data, so it is optimistic by construction).",
        "",
        md_frame(pd.DataFrame(rows)).to_markdown(index=False),
        "",
    ]
    if excluded:
        lines += [
            "**Runs left out** (missing, unfinished, run under another configuration, or with dev scores that its "
            "own dev predictions do not give):",
            "",
            *[f"- {md(run)}: {md(why)}" for run, why in excluded.items()],
            "",
        ]
    return "\n".join(lines), frame


def plot(sweep: str, frame: pd.DataFrame, splits: list[str], weights: dict, data_source: str, path: str):
    fig, ax = plt.subplots(figsize=(7, 4))
    if sweep == "negatives":
        sampled = frame[frame["K"].notna()].sort_values("K")
        for i, s in enumerate(splits):
            color = f"C{i}"
            ax.errorbar(
                sampled["K"],
                sampled[f"{s}_mean"],
                yerr=sampled[f"{s}_std"].fillna(0),
                marker="o",
                capsize=3,
                color=color,
                label=f"{SPLITS[s][0]}, sampled",
            )
            base = frame[frame["K"].isna()]
            if len(base) and pd.notna(base[f"{s}_mean"].iloc[0]):
                ax.axhline(
                    base[f"{s}_mean"].iloc[0],
                    color=color,
                    linestyle="--",
                    linewidth=1,
                    label=f"{SPLITS[s][0]}, {IN_BATCH}",
                )
        ax.set_xscale("log")
        ax.set_xlabel("negatives per sample K (sampled from the training set)")
    elif sweep == "stage_split":
        x = frame["stage split (% of steps in stage 1)"]
        for k, s in enumerate(splits):
            ax.errorbar(
                x,
                frame[f"{s}_mean"],
                yerr=frame[f"{s}_std"].fillna(0),
                capsize=3,
                label=SPLITS[s][0],
                **series_style(k, len(splits)),
            )
        ax.axvline(80, color="grey", linestyle="--", linewidth=1, label="paper's choice (80%)")
        ax.set_xlabel("steps in stage 1 (%)")
    elif weights.get("mode", "one_at_a_time") == "one_at_a_time":
        base = {t: float(weights.get("base", {}).get(t, 0)) for t in TERMS}
        cols = {"layer": "alpha (layer)", "soft": "beta (soft)", "hard": "gamma (hard)"}
        for k, t in enumerate(TERMS):
            others = [u for u in TERMS if u != t]
            sub = frame[(frame[cols[others[0]]] == base[others[0]]) & (frame[cols[others[1]]] == base[others[1]])]
            sub = sub.sort_values(cols[t])
            ax.errorbar(
                sub[cols[t]],
                sub["selection_mean"],
                yerr=sub["selection_std"].fillna(0),
                capsize=3,
                label=f"vary {cols[t]}",
                **series_style(k, len(TERMS)),
            )
        ax.set_xlabel("value of the varied weight (others at " + ":".join(f"{base[t]:g}" for t in TERMS) + ")")
    else:
        labels = [
            f"{a:g}:{b:g}:{c:g}" for a, b, c in zip(frame["alpha (layer)"], frame["beta (soft)"], frame["gamma (hard)"])
        ]
        ax.bar(range(len(frame)), frame["selection_mean"], yerr=frame["selection_std"].fillna(0))
        ax.set_xticks(range(len(frame)), labels, rotation=90, fontsize=6)
        ax.set_xlabel("alpha:beta:gamma")
    ax.set_ylabel(
        "dev score" + (" (mean of " + ", ".join(SPLITS[s][0] for s in splits) + ")" if sweep == "weights" else "")
    )
    title = {"stage_split": "Stage-split sweep", "weights": "Stage-2 weight sweep", "negatives": "Negatives sweep"}[
        sweep
    ]
    if data_source == "synthetic":
        title += " (smoke test on generated data: meaningless numbers)"
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8)
    save_figure(fig, path)


if __name__ == "__main__":
    with job_log(snakemake) as smk:  # noqa: F821
        p = smk.params
        sweep = smk.wildcards.sweep
        text, frame = build(
            sweep,
            p.layout["points"],
            p.points,
            list(p.splits),
            p.reference,
            dict(p.weights),
            p.data_source,
            p.layout["expect"],
        )
        write_table(text, smk.output.md, frame, smk.output.csv)
        plot(sweep, frame, list(p.splits), dict(p.weights), p.data_source, smk.output.png)
        print(text)
