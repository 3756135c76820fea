"""Robustness check of the gradient-perturbation claim (the paper asserts it, but measures only the training
loss): dev accuracy of LRC-BERT and LRC-BERT_g when the embedding output is moved by eps (L2 norm per example over
its l x d slice, as eq. 7 normalises the training perturbation) in a random direction or along the gradient of
the cross-entropy against the gold label (FGM: the worst direction to first order). eps = 1 is the size used in
training. Each system: every seed at the learning rate chosen on dev; mean ± std over seeds.

Inputs: ``results/analysis/robustness_{system}.json`` (``lrcbert robustness``). Outputs
``results/robustness.md/.png/.csv``.
"""

import statistics
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
from table1 import SPLITS, ours_text, stats  # noqa: E402

from lrcbert.results import header, job_log, md, md_frame, read_json, save_figure, series_style, write_table  # noqa: E402

DIRECTIONS = {"random": "random direction", "gradient": "gradient direction (FGM)"}


def build(results: dict, systems: dict, data_source: str) -> tuple[str, pd.DataFrame]:
    long, norms = [], {}
    for name, res in results.items():
        for d in res["directions"]:
            for e in res["eps"]:
                values = [r["accuracy"][d][str(float(e))] for r in res["runs"].values()]
                long.append({"system": name, "direction": d, "eps": float(e), **stats(values)})
        norms[name] = statistics.fmean(r["embedding_norm_mean"] for r in res["runs"].values())
    frame = pd.DataFrame(long)
    any_res = next(iter(results.values()))
    rows = []
    for d in any_res["directions"]:
        for name in results:
            sub = frame[(frame.system == name) & (frame.direction == d)]
            rows.append(
                {
                    "direction": DIRECTIONS[d],
                    "system": systems[name]["label"],
                    **{f"eps={e:g}": ours_text(r) for e, r in zip(sub["eps"], sub.to_dict("records"))},
                }
            )
    split = any_res["split"]
    lines = header(
        f"Robustness: {SPLITS.get(split, (split,))[0]} dev accuracy under embedding perturbations", data_source
    ) + [
        "The paper says gradient perturbation makes LRC-BERT more robust but reports only the training loss "
        "(Figure 5). Here: dev accuracy when the output of the student's embedding block is moved to "
        "e + eps · d / |d|₂, the norm taken per example over its (tokens × hidden) slice as in eq. 7, with d a random "
        "Gaussian direction (padding positions zero) or the gradient of the cross-entropy against the gold label "
        "(FGM, the worst direction to first order; it uses the gold label, so it is an attack, not a deployment "
        "condition). eps = 1 is the size of the training perturbation. Cells: accuracy (%), mean ± standard "
        "deviation over seeds (n) at the learning rate chosen on dev. For scale, the mean per-example norm of the "
        "unperturbed embedding output is "
        + ", ".join(f"{norms[n]:.1f} ({md(systems[n]['label'])})" for n in results)
        + ".",
        "",
        md_frame(pd.DataFrame(rows)).to_markdown(index=False),
        "",
        "No text-level attack is included: a label-preserving word substitution needs a synonym source that is "
        "sound for real GLUE text, which this suite does not have offline.",
        "",
    ]
    return "\n".join(lines), frame


def plot(frame: pd.DataFrame, systems: dict, data_source: str, path: str):
    dirs = list(dict.fromkeys(frame["direction"]))
    fig, axes = plt.subplots(1, len(dirs), figsize=(5 * len(dirs), 4), sharey=True, squeeze=False)
    for ax, d in zip(axes[0], dirs):
        names = list(dict.fromkeys(frame["system"]))
        for k, name in enumerate(names):
            sub = frame[(frame.system == name) & (frame.direction == d)].sort_values("eps")
            ax.errorbar(
                sub["eps"],
                sub["mean"],
                yerr=sub["std"].fillna(0),
                capsize=3,
                label=systems[name]["label"],
                **series_style(k, len(names)),
            )
        ax.axvline(1.0, color="grey", linestyle="--", linewidth=1)
        ax.set_xscale("symlog", linthresh=1.0)
        ax.set_xlabel("eps (L2 per example; dashed: training size 1)")
        ax.set_title(DIRECTIONS[d], fontsize=10)
        ax.legend(fontsize=8)
    axes[0][0].set_ylabel("dev accuracy (%)")
    if data_source == "synthetic":
        fig.suptitle("smoke test on generated data: meaningless numbers", fontsize=9)
    save_figure(fig, path)


if __name__ == "__main__":
    with job_log(snakemake) as smk:  # noqa: F821
        p = smk.params
        results = {Path(f).stem.removeprefix("robustness_"): read_json(f) for f in smk.input}
        text, frame = build(results, p.systems, p.data_source)
        write_table(text, smk.output.md, frame, smk.output.csv)
        plot(frame, p.systems, p.data_source, smk.output.png)
        print(text)
