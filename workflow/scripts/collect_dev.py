"""Gather one system's dev results and choose its learning rate per task by dev score.

Output ``results/dev/{system}.json``: for each task, the dev selection score of every lr (mean over seeds) and
of every run, the chosen lr, and for each seed of the chosen lr its run folder, dev scores per evaluation
split, parameter count, test prediction files (what Table 1 and the submissions are built from) and the run's
identity (``identity``: its run_id, ``suite``: the suite version that made it; None for a run of an older suite).

A run enters only if ``run_problem`` passes it (finished, current configuration, dev scores recomputed from its
own dev predictions) and ``identity_problem`` too (the same evaluation data and teacher as the task's selected
teacher run); the others are listed under ``excluded`` with the reason, which the tables print."""

import json
from pathlib import Path

from lrcbert.results import (
    best_lr,
    identity_problem,
    job_log,
    mean,
    read_json,
    run_identity,
    run_params,
    run_problem,
    score_problem,
    selection_score,
    split_scores,
    task_reference,
)


def predictions(run: Path, splits) -> dict:
    found = read_json(run / "metrics.json").get("splits", {}) if (run / "metrics.json").is_file() else {}
    out = {}
    for s in splits:
        rel = found.get(s, {}).get("test_predictions")
        if rel and (run / rel).is_file():
            out[s] = str(run / rel)
    return out


def seed_entry(run: Path, splits, params=None) -> dict:
    ident = run_identity(run) or {}
    return {
        "run": str(run),
        "scores": split_scores(run, splits),
        "params": params or run_params(run),
        "predictions": predictions(run, splits),
        "identity": ident.get("run_id"),
        "suite": ident.get("suite"),
    }


def collect(system: str, layout: dict, task_splits: dict) -> dict:
    """Dev results of the runs that pass ``run_problem``; the others are listed under ``excluded``."""
    out = {"system": system, "kind": layout["kind"], "tasks": {}, "excluded": {}}
    expect = layout.get("expect", {})
    for task, spec in layout["tasks"].items():
        splits = list(task_splits[task])
        if layout["kind"] == "teacher":
            sel = read_json(spec)
            run = Path(sel["run"])
            if sel.get("given"):  # an evaluated checkpoint: no run.json, but its dev predictions
                why = score_problem(run) if (run / "metrics.json").is_file() else run_problem(run, None)
            else:
                why = run_problem(run, expect.get(task, {}).get(sel.get("lr")))
            if why:
                out["excluded"][str(run)] = why
                out["tasks"][task] = {"splits": splits, "selected_lr": None, "lr_scores": {}, "seeds": {}}
                continue
            seed = str(sel.get("seed"))
            out["tasks"][task] = {
                "splits": splits,
                "selected_lr": sel.get("lr"),
                "teacher_model": sel["model"],
                "lr_scores": {str(k): {"mean": v} for k, v in sel.get("candidates", {}).items()},
                "seeds": {seed: seed_entry(run, splits, sel.get("params"))},
            }
            continue
        lr_scores = {}
        runs = [run for seeds in spec.values() for run in seeds.values()]
        teacher_from = next((expect[r]["teacher_from"] for r in runs if expect.get(r, {}).get("teacher_from")), None)
        ref = task_reference([r for r in runs if Path(r).is_dir()], teacher_from)
        for lr, seeds in spec.items():
            for seed, run in list(seeds.items()):
                why = run_problem(run, expect.get(run)) or identity_problem(run, ref)
                if why:
                    out["excluded"][run] = why
                    del seeds[seed]
            per_seed = {s: selection_score(split_scores(run, splits), splits) for s, run in seeds.items()}
            lr_scores[lr] = {"mean": mean(per_seed.values()), "seeds": per_seed}
        lr = best_lr({k: v["mean"] for k, v in lr_scores.items()})
        seeds = {s: seed_entry(Path(run), splits) for s, run in spec[lr].items()} if lr else {}
        out["tasks"][task] = {"splits": splits, "selected_lr": lr, "lr_scores": lr_scores, "seeds": seeds}
    return out


if __name__ == "__main__":
    with job_log(snakemake) as smk:  # noqa: F821
        result = collect(smk.wildcards.any_system, smk.params.layout, smk.params.splits)
        Path(smk.output[0]).write_text(json.dumps(result, indent=2) + "\n")
        for task, entry in result["tasks"].items():
            print(
                f"{task}: lr {entry['selected_lr']} "
                + ", ".join(f"{k}={v['mean']}" for k, v in entry["lr_scores"].items())
            )
        for run, why in result["excluded"].items():
            print(f"left out {run}: {why}")
