#!/usr/bin/env python3
"""Run a command with the run folders that dev selection chose appended as ``--run NAME=FOLDER`` arguments; the
folders are read from ``results/dev/{system}.json`` (collect_dev.py) at job time and passed to the command as
words of its argument list, never through a shell.

    selected_run.py --task TASK [--seed SEED] --run NAME=DEV_JSON [--run ...] -- COMMAND [ARGS...]
        one ``--run NAME=FOLDER`` per DEV_JSON: its run of SEED (default: the first seed) at the chosen lr
    selected_run.py --task TASK --each-seed DEV_JSON -- COMMAND [ARGS...]
        ``--run seedN=FOLDER`` for every seed of the chosen lr (the arguments of ``lrcbert robustness``)
"""

import argparse
import json
import os
import sys


def selected(dev: dict, task: str) -> dict:
    entry = dev["tasks"].get(task)
    if not entry or not entry.get("seeds"):
        sys.exit(f"selected_run: no finished runs of task {task!r} for system {dev.get('system')!r}")
    return {str(seed): s["run"] for seed, s in entry["seeds"].items()}


def read(path: str) -> dict:
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def run_args(task: str, seed: str | None, runs: list[str], each_seed: str | None) -> list[str]:
    out = []
    if each_seed:
        for s, folder in selected(read(each_seed), task).items():
            out += ["--run", f"seed{s}={folder}"]
    for item in runs:
        name, _, dev_json = item.partition("=")
        folders = selected(read(dev_json), task)
        chosen = seed if seed is not None else next(iter(folders))
        if chosen not in folders:
            sys.exit(f"selected_run: seed {chosen} is not among the runs of {dev_json} ({sorted(folders)})")
        out += ["--run", f"{name}={folders[chosen]}"]
    return out


if __name__ == "__main__":
    argv = sys.argv[1:]
    if "--" not in argv or not argv[argv.index("--") + 1 :]:
        sys.exit(__doc__)
    ap = argparse.ArgumentParser(usage=__doc__)
    ap.add_argument("--task", required=True)
    ap.add_argument("--seed", default=None)
    ap.add_argument("--run", action="append", default=[], metavar="NAME=DEV_JSON")
    ap.add_argument("--each-seed", default=None, metavar="DEV_JSON")
    args = ap.parse_args(argv[: argv.index("--")])
    command = argv[argv.index("--") + 1 :] + run_args(args.task, args.seed, args.run, args.each_seed)
    os.execvp(command[0], command)
