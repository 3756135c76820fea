"""``lrcbert status``: where a running grid stands, from the plan (``results/plan.json``) and the run folders.

For each job of the plan: **finished** (``metrics.json`` and a ``run.json`` with status finished), **running** (no
``metrics.json`` yet, but its log or ``losses.csv`` changed in the last ``stale_minutes``), **failed** (a log, no
``metrics.json``, and nothing written for longer: the log is named, with its last error line) or **missing**
(never started). Then a provisional Table 1 from the finished runs (each cell: mean over the finished seeds at the
lr with the best mean dev score among them, with its n), and the time left: the steps still to run (the forecast's
step count of each unfinished job, minus a running job's logged steps) at the step rate measured in the finished
runs of the same stage and system (``steps / wall_time_s`` of ``run.json``; the stage's rate where the system has
none finished yet). Needs no finished run: with none, the page says so.
"""

from __future__ import annotations

import csv
import json
import statistics
import time
from pathlib import Path

STATES = ("finished", "running", "failed", "missing")


def job_state(job: dict, now: float, stale_minutes: float = 30.0) -> tuple[str, str]:
    """(state, detail) of one job of the plan."""
    run, log = Path(job["run"]), Path(job["log"])
    record = run / "run.json"
    if (
        (run / "metrics.json").is_file()
        and record.is_file()
        and json.loads(record.read_text()).get("status") == "finished"
    ):
        return "finished", ""
    touched = [p.stat().st_mtime for p in (log, run / "losses.csv") if p.is_file()]
    if touched and now - max(touched) < stale_minutes * 60:
        return "running", f"step {logged_step(run)}"
    if log.is_file() or run.is_dir():
        return "failed", f"{log}: {last_error(log)}" if log.is_file() else f"{run}: started, no log"
    return "missing", ""


def logged_step(run: Path) -> int:
    """The last step a run logged in ``losses.csv`` (0 when none)."""
    try:
        with open(run / "losses.csv", newline="") as f:
            rows = list(csv.DictReader(f))
        return int(rows[-1]["step"]) if rows else 0
    except (OSError, KeyError, ValueError):
        return 0


def last_error(log: Path) -> str:
    lines = [x.strip() for x in log.read_text(errors="replace").splitlines() if x.strip()]
    errors = [x for x in lines if "error" in x.lower() or "Traceback" in x]
    return (errors[-1] if errors else lines[-1] if lines else "(empty log)")[:200]


def step_rates(jobs: list[dict], states: dict) -> dict:
    """Measured steps per second of the finished runs, by (stage, system) and by stage."""
    per = {}
    for j in jobs:
        if states[j["run"]][0] != "finished":
            continue
        r = json.loads((Path(j["run"]) / "run.json").read_text())
        if r.get("steps") and r.get("wall_time_s"):
            for key in ((j["stage"], j["system"]), (j["stage"],)):
                s, t = per.get(key, (0, 0.0))
                per[key] = (s + r["steps"], t + r["wall_time_s"])
    return {k: s / t for k, (s, t) in per.items() if t > 0}


def planned_steps(job: dict, cache: dict, plan: dict | None = None) -> int | None:
    """The forecast's step count of a job (None when its data size is not known: not on disk, not in the plan)."""
    from .forecast import ForecastError, job_config, steps, train_size

    try:
        cfg = job_config(job)
        key = (
            cfg.data.path,
            cfg.data.train_file,
            cfg.data.corpus,
            job.get("task"),
            cfg.data.max_train_examples,
            cfg.data.max_corpus_lines,
            job.get("augment_factor"),
        )
        if key not in cache:
            cache[key] = train_size(cfg, job, plan=plan)[0]
        return steps(cfg, cache[key], (plan or {}).get("processes", 1))
    except (ForecastError, ValueError, OSError, KeyError):
        return None


def provisional_table1(plan: dict, states: dict) -> list[dict]:
    """Rows of a provisional Table 1 from the finished runs: {system, split: (mean, sd, n)}."""
    rows = []
    finished = [j for j in plan["jobs"] if states[j["run"]][0] == "finished" and j["stage"] in ("teacher", "distill")]
    splits_of = plan.get("splits", {})
    for system, info in plan.get("table1", {}).items():
        row = {"system": info.get("label", system)}
        for task in info.get("tasks", []):
            by_lr = {}
            for j in finished:
                if j["system"] == system and j["task"] == task:
                    m = json.loads((Path(j["run"]) / "metrics.json").read_text()).get("splits", {})
                    by_lr.setdefault(j["lr"], []).append(
                        {
                            s: m[s]["score"]
                            for s in splits_of.get(task, [task])
                            if s in m and m[s].get("score") is not None
                        }
                    )
            if not by_lr:
                continue
            sel = lambda runs: statistics.fmean(statistics.fmean(r.values()) for r in runs if r) if any(runs) else -1e9
            best = max(by_lr, key=lambda lr: sel(by_lr[lr]))
            for split in splits_of.get(task, [task]):
                values = [r[split] for r in by_lr[best] if split in r]
                if values:
                    row[split] = (
                        statistics.fmean(values),
                        statistics.stdev(values) if len(values) > 1 else None,
                        len(values),
                    )
        rows.append(row)
    return rows


def status(plan: dict, stale_minutes: float = 30.0, now: float | None = None) -> dict:
    now = time.time() if now is None else now
    jobs = plan["jobs"]
    states = {j["run"]: job_state(j, now, stale_minutes) for j in jobs}
    rates = step_rates(jobs, states)
    cache, left_s, unknown = {}, 0.0, 0
    for j in jobs:
        state = states[j["run"]][0]
        if state == "finished":
            continue
        total = planned_steps(j, cache, plan)
        rate = rates.get((j["stage"], j["system"])) or rates.get((j["stage"],))
        if total is None or not rate:
            unknown += 1
            continue
        done = logged_step(Path(j["run"])) if state == "running" else 0
        left_s += max(0, total - done) / rate
    return {
        "jobs": jobs,
        "states": states,
        "rates": rates,
        "left_hours": left_s / 3600,
        "unknown": unknown,
        "table1": provisional_table1(plan, states),
        "when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(now)),
    }


def markdown(result: dict, splits: list[str]) -> str:
    from .markdown import md_table

    groups = {}
    for j in result["jobs"]:
        key = (j["stage"], j["system"], j.get("task") or "-")
        g = groups.setdefault(key, {s: 0 for s in STATES})
        g[result["states"][j["run"]][0]] += 1
    counts = {s: sum(1 for v in result["states"].values() if v[0] == s) for s in STATES}
    lines = [
        "# Progress",
        "",
        f"As of {result['when']}: "
        + ", ".join(f"{n} {s}" for s, n in counts.items())
        + f" of {len(result['jobs'])} training jobs (each seed x learning rate is a job).",
        "",
        md_table(
            [(*k, *(v[s] for s in STATES)) for k, v in groups.items()],
            ["stage", "system", "task", *STATES],
            tablefmt="github",
        ),
        "",
    ]
    failed = [
        (j["run"], result["states"][j["run"]][1]) for j in result["jobs"] if result["states"][j["run"]][0] == "failed"
    ]
    if failed:
        lines += ["**Failed** (no metrics.json and nothing written recently; read the log):", ""]
        lines += [f"- `{run}`: {detail}" for run, detail in failed] + [""]
    running = [
        (j["run"], result["states"][j["run"]][1]) for j in result["jobs"] if result["states"][j["run"]][0] == "running"
    ]
    if running:
        lines += ["Running:", ""] + [f"- `{run}` ({detail})" for run, detail in running] + [""]
    rows = []
    for r in result["table1"]:
        cells = {"System": r["system"]}
        for s in splits:
            m = r.get(s)
            cells[s] = (
                "-"
                if m is None
                else (f"{m[0]:.1f} (n={m[2]})" if m[1] is None else f"{m[0]:.1f} ± {m[1]:.1f} (n={m[2]})")
            )
        rows.append(cells)
    lines += [
        "## Provisional Table 1 (dev, finished runs only)",
        "",
        "Each cell: mean ± sd over the finished seeds at the learning rate with the best mean among them; "
        "n = finished seeds. It changes as runs finish; the real Table 1 is results/table1.md.",
        "",
        md_table(rows, headers="keys", tablefmt="github") if rows else "(no system of Table 1 configured)",
        "",
    ]
    if result["rates"]:
        left = f"**about {result['left_hours']:.2f} device-hours of training left**"
        lines += [
            "## Time left",
            "",
            f"{left} at the step rates measured in the finished runs (one job at a time; "
            "divide by the number of jobs that run in parallel)"
            + (
                f"; {result['unknown']} unfinished jobs have no step count or rate yet and are not counted"
                if result["unknown"]
                else ""
            )
            + ".",
            "",
            md_table(
                [(" / ".join(k), f"{v:.2f}") for k, v in sorted(result["rates"].items())],
                ["stage / system", "steps per second"],
                tablefmt="github",
            ),
            "",
        ]
    else:
        lines += [
            "## Time left",
            "",
            "No run has finished yet, so no step rate is measured; see "
            "`lrcbert forecast` (results/forecast.md) for an estimate made before the grid runs.",
            "",
        ]
    return "\n".join(lines)


def main(plan_path: str, out: str | None, stale_minutes: float = 30.0) -> dict:
    from .forecast import NO_PLAN, ForecastError, load_plan
    from .runinfo import atomic_write_text

    if not Path(plan_path).exists():
        other = "" if Path(plan_path) == Path("results/plan.json") else "; then give --plan results/plan.json"
        raise ForecastError(f"no plan at {plan_path}; {NO_PLAN}{other}")
    plan = load_plan(plan_path)
    result = status(plan, stale_minutes)
    splits = [s for t in plan.get("splits", {}).values() for s in t]
    order = ["mnli_m", "mnli_mm", "qqp", "sst2", "qnli", "mrpc", "rte", "cola", "stsb"]
    text = markdown(result, [s for s in order if s in splits] or splits)
    if out:
        atomic_write_text(out, text)
    print(text)
    return {s: sum(1 for v in result["states"].values() if v[0] == s) for s in STATES}
