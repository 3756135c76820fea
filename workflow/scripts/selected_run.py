#!/usr/bin/env python3
"""Run folders that dev selection chose, read from ``results/dev/{system}.json`` (collect_dev.py) at job time.

``selected_run.py DEV_JSON TASK [SEED]``: the run folder of SEED (default: the first seed) at the chosen lr;
``selected_run.py --run-args DEV_JSON TASK``: ``--run seedN=FOLDER`` for every seed of the chosen lr (the
arguments of ``lrcbert robustness``)."""
import json
import sys


def selected(dev: dict, task: str) -> dict:
    entry = dev["tasks"].get(task)
    if not entry or not entry.get("seeds"):
        sys.exit(f"selected_run: no finished runs of task {task!r} for system {dev.get('system')!r}")
    return {seed: s["run"] for seed, s in entry["seeds"].items()}


if __name__ == "__main__":
    args = sys.argv[1:]
    as_args = bool(args) and args[0] == "--run-args"
    args = args[1:] if as_args else args
    if len(args) not in (2, 3) or (as_args and len(args) != 2):
        sys.exit(__doc__)
    with open(args[0], encoding="utf-8") as f:
        runs = selected(json.load(f), args[1])
    if as_args:
        print(" ".join(f"--run seed{seed}={run}" for seed, run in runs.items()))
    else:
        seed = args[2] if len(args) == 3 else next(iter(runs))
        if seed not in runs:
            sys.exit(f"selected_run: seed {seed} is not among the runs of {args[0]} ({sorted(runs)})")
        print(runs[seed])
