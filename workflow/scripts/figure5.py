"""Figure 5: training loss of LRC-BERT and LRC-BERT_g (no gradient perturbation) on one task over both stages.

Runs: every seed of both systems at the learning rate dev selection chose for LRC-BERT (LRC-BERT_g at the same lr
when its grid has it, else at its own chosen lr); the per-step losses (``losses.csv``) are averaged over seeds.
Plotted: the clean loss L_total, computed on the unperturbed embeddings by both systems (LRC-BERT logs it as
``loss_clean`` before the perturbed pass; LRC-BERT_g's ``total`` is that loss), which is the like-for-like
comparison; LRC-BERT's perturbed loss L'_total (what its update uses) is drawn thinly. Smoothing: an exponential
moving average (weight ``smoothing`` on the past, bias-corrected as TensorBoard does), restarted at the stage
boundary because stage 2 adds the soft and hard terms and the loss jumps there; raw values are drawn faintly.
The boundary (first step with a non-zero soft or hard weight) is a dashed vertical line. The legend gives each
curve's stage-2 roughness: the standard deviation of the step-to-step change of the raw seed-mean loss.

Outputs ``results/figure5.png`` and ``results/figure5.csv`` (step, raw and smoothed value of each curve).
"""

import statistics

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

from lrcbert.results import SMOKE_NOTE, job_log, read_json, run_problem, save_figure, write_table  # noqa: E402


def read_losses(runs: list[str]) -> pd.DataFrame:
    """Seed-mean of each column of the runs' losses.csv, by step."""
    frames = [pd.read_csv(f"{r}/losses.csv") for r in runs]
    return pd.concat(frames).groupby("step", as_index=False).mean(numeric_only=True)


def boundary(frame: pd.DataFrame) -> int | None:
    """First logged step trained with a non-zero soft or hard weight (None: never)."""
    w = sum(frame[c].fillna(0) for c in ("w_soft", "w_hard") if c in frame.columns)
    later = frame.loc[w > 0, "step"] if not isinstance(w, int) else []
    return int(later.iloc[0]) if len(later) else None


def ema(values: list[float], beta: float, restart: int | None = None, steps=None) -> list[float]:
    """Bias-corrected exponential moving average, restarted at index ``restart``."""
    out, avg, n = [], 0.0, 0
    for i, v in enumerate(values):
        if restart is not None and i == restart:
            avg, n = 0.0, 0
        avg, n = beta * avg + (1 - beta) * v, n + 1
        out.append(avg / (1 - beta**n))
    return out


def roughness(values: list[float]) -> float | None:
    diffs = [b - a for a, b in zip(values, values[1:])]
    return statistics.pstdev(diffs) if len(diffs) > 1 else None


def choose_runs(dev: dict, layout: dict, task: str, lr: str | None) -> tuple[str, list[str]]:
    """Runs of ``lr`` (else of the system's own chosen lr) that finished under the current configuration."""
    lrs = layout["tasks"][task]
    lr = lr if lr in lrs else dev["tasks"][task]["selected_lr"]
    expect = layout.get("expect")
    runs = [r for r in lrs[lr].values() if expect is None or run_problem(r, expect.get(r)) is None]
    if not runs:
        raise SystemExit(f"figure5: no current finished run of {dev['system']} on {task} at lr {lr}")
    return lr, runs


def build(devs: dict, layouts: dict, systems: dict, reference: str, other: str, task: str, smoothing: float):
    ref_lr, ref_runs = choose_runs(
        devs[reference], layouts[reference], task, devs[reference]["tasks"][task]["selected_lr"]
    )
    oth_lr, oth_runs = choose_runs(devs[other], layouts[other], task, ref_lr)
    ref, oth = read_losses(ref_runs), read_losses(oth_runs)
    curves = {}
    clean = "loss_clean" if "loss_clean" in ref.columns and ref["loss_clean"].notna().any() else "total"
    curves[f"{systems[reference]['label']} (clean L_total)"] = (ref, clean)
    curves[f"{systems[other]['label']} (L_total)"] = (oth, "total")
    if clean == "loss_clean":
        curves[f"{systems[reference]['label']} (perturbed L'_total, used for its update)"] = (ref, "total")
    b = boundary(ref)
    table = pd.DataFrame({"step": ref["step"]})
    stats = {}
    for name, (frame, col) in curves.items():
        values = frame[col].tolist()
        restart = None if b is None else int((frame["step"] < b).sum())
        table[f"{name} raw"] = values
        table[f"{name} smoothed"] = ema(values, smoothing, restart)
        stats[name] = roughness(values[restart:] if restart is not None else values)
    return table, stats, b, {"reference_lr": ref_lr, "other_lr": oth_lr, "seeds": (len(ref_runs), len(oth_runs))}


def plot(table: pd.DataFrame, stats: dict, b, info: dict, task: str, data_source: str, path: str):
    fig, ax = plt.subplots(figsize=(8, 4.5))
    names = [c[:-4] for c in table.columns if c.endswith(" raw")]
    colours = ["tab:blue", "tab:orange", "tab:blue"]
    widths = iter([3.5, 2.0, 1.2])  # a later curve is drawn inside an earlier one it coincides with
    for name, colour in zip(names, colours):
        thin = "perturbed" in name
        width = 0.9 if thin else next(widths)
        r = stats[name]
        # each stage drawn on its own: the loss jumps where stage 2 adds the soft and hard terms
        parts = [table] if b is None else [table[table["step"] < b], table[table["step"] >= b]]
        for k, part in enumerate(parts):
            ax.plot(part["step"], part[f"{name} raw"], color=colour, alpha=0.15, linewidth=0.8)
            ax.plot(
                part["step"],
                part[f"{name} smoothed"],
                color=colour,
                linewidth=width,
                linestyle=":" if thin else "-",
                label=None if k else (f"{name}; stage-2 roughness {r:.3g}" if r is not None else name),
            )
    if b is not None:
        ax.axvline(b - 0.5, color="grey", linestyle="--", linewidth=1)
        ax.text(b - 0.5, ax.get_ylim()[1], " stage 2", va="top", ha="left", color="grey")
    title = (
        f"Training loss on {task.upper()} (mean over {info['seeds'][0]}/{info['seeds'][1]} seeds, lr "
        f"{info['reference_lr']}/{info['other_lr']})"
    )
    if data_source == "synthetic":
        title += "\nsmoke test on generated data: meaningless numbers"
    ax.set_title(title, fontsize=10)
    ax.set_xlabel("optimisation step")
    ax.set_ylabel("loss (EMA-smoothed; raw faint)")
    ax.legend(fontsize=8)
    save_figure(fig, path)


if __name__ == "__main__":
    with job_log(snakemake) as smk:  # noqa: F821
        p = smk.params
        devs = {read_json(f)["system"]: read_json(f) for f in smk.input.dev}
        table, stats, b, info = build(devs, p.layouts, p.systems, p.reference, p.other, p.task, float(p.smoothing))
        plot(table, stats, b, info, p.task, p.data_source, smk.output.png)
        write_table(table.to_csv(index=False), smk.output.csv)
        if p.data_source == "synthetic":
            print(SMOKE_NOTE)
        print(f"stage boundary at step {b}; stage-2 roughness: {stats}; {info}")
