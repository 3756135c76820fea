"""Kill a smoke workflow with SIGKILL at several points, restart it each time, and compare its results with an
undisturbed run of the same configuration.

    python tests/kill_smoke.py --workdir /tmp/kill [--reference .] [--kills 3] [-- extra snakemake args]

Both runs happen in fresh copies of the workflow under ``--workdir`` (``--reference DIR`` reuses the results of an
undisturbed run already made in DIR, e.g. CI's smoke run in the checkout). The k-th kill (of ``--kills``) waits
until the number of finished runs (``metrics.json`` under runs/) reaches k/(kills+1) of the undisturbed run's
count and a training run is in flight (a checkpoint without a metrics.json), then SIGKILLs Snakemake and every
job it started. Each restart is ``snakemake --unlock`` then ``snakemake --rerun-incomplete``. At the end every
table and result file must equal the undisturbed run's, except the timing outputs (Table 2, the inference
timing, the benchmark, the deployment report) and images (their CSVs are compared). Exit status 0 when all match;
the differences are printed otherwise.
"""

from __future__ import annotations

import argparse
import filecmp
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SNAKEMAKE = shutil.which("snakemake") or str(Path(sys.executable).parent / "snakemake")
TIMING = {"table2.md", "inference_time.json", "bench.md", "bench.json", "deployment.md", "deployment.json"}


def workflow_copy(dest: Path) -> Path:
    """The files a user checks out (Snakefile, workflow/, config/, profiles/, results/paper/), copied to ``dest``."""
    dest.mkdir(parents=True, exist_ok=True)
    shutil.copy(ROOT / "Snakefile", dest / "Snakefile")
    for folder in ("workflow", "config", "profiles"):
        shutil.copytree(ROOT / folder, dest / folder, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(ROOT / "results" / "paper", dest / "results" / "paper")
    return dest


def env() -> dict:
    return {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "PYTHONPATH": str(ROOT)}


def snakemake(cwd: Path, args: list[str]) -> int:
    return subprocess.run(
        [SNAKEMAKE, *args], cwd=cwd, env=env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    ).returncode


def _walk(cwd: Path):
    """(folder, subfolders, files) under runs/; os.walk skips folders that vanish while it looks (jobs delete
    temporary folders all the time)."""
    return os.walk(cwd / "runs")


def finished_runs(cwd: Path) -> int:
    return sum("metrics.json" in files for _, _, files in _walk(cwd))


def in_flight(cwd: Path) -> list[Path]:
    """Run folders with a checkpoint but no metrics.json: training that a kill interrupts."""
    found = []
    for folder, subfolders, files in _walk(cwd):
        if "checkpoints" in subfolders and "metrics.json" not in files:
            try:
                if any(n.startswith("step-") for n in os.listdir(Path(folder) / "checkpoints")):
                    found.append(Path(folder))
            except FileNotFoundError:
                pass
    return found


def kill_once(cwd: Path, args: list[str], target_runs: int) -> dict:
    """Start the workflow and SIGKILL it once ``target_runs`` runs have finished and another is in flight (no time
    limit: a loaded machine only makes it later)."""
    proc = subprocess.Popen(
        [SNAKEMAKE, *args],
        cwd=cwd,
        env=env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    while proc.poll() is None:
        if finished_runs(cwd) >= target_runs and in_flight(cwd):
            break
        time.sleep(0.05)
    if proc.poll() is not None:
        return {"killed": False, "finished_runs": finished_runs(cwd)}
    flying = [str(p.relative_to(cwd)) for p in in_flight(cwd)]
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    return {"killed": True, "finished_runs": finished_runs(cwd), "in_flight": flying}


def compare(reference: Path, other: Path) -> tuple[list[str], int]:
    """(differences, number of files compared) between two results/ folders."""
    problems, n = [], 0
    ref_results = reference / "results"
    for f in sorted(ref_results.rglob("*")):
        rel = f.relative_to(ref_results)
        if not f.is_file() or rel.parts[0] == "paper" or f.name in TIMING or f.suffix in (".png", ".zip"):
            continue
        g = other / "results" / rel
        n += 1
        if not g.is_file():
            problems.append(f"missing after the kills: results/{rel}")
        elif not filecmp.cmp(f, g, shallow=False):
            problems.append(f"differs: results/{rel}")
    return problems, n


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--workdir", required=True, type=Path)
    ap.add_argument("--reference", type=Path, default=None, help="folder of an undisturbed run (default: make one)")
    ap.add_argument("--kills", type=int, default=3)
    ap.add_argument("--cores", default="2")
    ap.add_argument("snakemake_args", nargs="*", default=["--configfile", "config/smoke.yaml"])
    a = ap.parse_args(argv)
    args = ["--cores", a.cores, *a.snakemake_args]
    a.workdir.mkdir(parents=True, exist_ok=True)
    if a.reference is None:
        a.reference = workflow_copy(a.workdir / "undisturbed")
        start = time.time()
        if snakemake(a.reference, args) != 0:
            print("the undisturbed run failed", file=sys.stderr)
            return 1
        print(f"undisturbed run: {time.time() - start:.0f} s, {finished_runs(a.reference)} runs")
    total = finished_runs(a.reference)
    killed = workflow_copy(a.workdir / "killed")
    start = time.time()
    for k in range(1, a.kills + 1):
        event = kill_once(killed, args, int(total * k / (a.kills + 1)))
        print(f"kill {k}: {event}")
        if not event["killed"]:
            print("the workflow ended before the kill point", file=sys.stderr)
            return 1
        if snakemake(killed, ["--unlock", *args]) != 0:
            print("snakemake --unlock failed", file=sys.stderr)
            return 1
    if snakemake(killed, [*args, "--rerun-incomplete"]) != 0:
        print(f"the final restart failed: see {killed}/logs and .snakemake/log", file=sys.stderr)
        return 1
    resumed = sum("resuming from" in p.read_text(errors="replace") for p in (killed / "logs").rglob("*.log"))
    print(f"killed run: {time.time() - start:.0f} s in all; {resumed} job logs say they resumed from a checkpoint")
    problems, compared = compare(a.reference, killed)
    for p in problems:
        print(p)
    print(
        "all results equal the undisturbed run's" if not problems else f"{len(problems)} differences",
        f"({compared} files under results/ compared; timing outputs and images aside)",
    )
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
