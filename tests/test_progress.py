"""lrcbert status: job states from run folders and logs, the provisional Table 1 with n, and the time left at the
measured step rate, on a hand-built plan."""

import json
import os
import time

import pytest

from lrcbert import progress as P


def _job(tmp, system, task, seed, lr="0.001", stage="distill"):
    run = tmp / "runs" / system / task / f"seed{seed}" / f"lr{lr}"
    return {
        "stage": stage,
        "system": system,
        "task": task,
        "seed": seed,
        "lr": lr,
        "run": str(run),
        "log": str(tmp / "logs" / system / task / f"seed{seed}.log"),
        "command": "distill",
        "sets": [],
    }


def _finish(job, score, steps=100, wall=50.0):
    run = os.path.join(job["run"])
    os.makedirs(run, exist_ok=True)
    json.dump({"status": "finished", "steps": steps, "wall_time_s": wall}, open(f"{run}/run.json", "w"))
    json.dump({"splits": {"rte": {"score": score}}}, open(f"{run}/metrics.json", "w"))


@pytest.fixture()
def plan(tmp_path):
    jobs = [_job(tmp_path, "lrcbert", "rte", s) for s in (1, 2, 3, 4, 5)]
    _finish(jobs[0], 60.0)
    _finish(jobs[1], 70.0)
    # seed 3 running: log written just now, 10 steps logged
    os.makedirs(jobs[2]["run"])
    with open(f"{jobs[2]['run']}/losses.csv", "w") as f:
        f.write("step,total\n5,1.0\n10,0.9\n")
    os.makedirs(os.path.dirname(jobs[2]["log"]), exist_ok=True)
    open(jobs[2]["log"], "w").write("train: 10/100\n")
    # seed 4 failed: its log ends in an error and was last written two hours ago
    open(jobs[3]["log"], "w").write("train: 3/100\nlrcbert: error: training diverged at step 3\n")
    old = time.time() - 7200
    os.utime(jobs[3]["log"], (old, old))
    # seed 5 missing
    return {"jobs": jobs, "table1": {"lrcbert": {"label": "LRC-BERT", "tasks": ["rte"]}}, "splits": {"rte": ["rte"]}}


def test_states_table_and_time_left(plan, monkeypatch):
    monkeypatch.setattr(P, "planned_steps", lambda job, cache, plan=None: 100)
    r = P.status(plan)
    states = [r["states"][j["run"]][0] for j in plan["jobs"]]
    assert states == ["finished", "finished", "running", "failed", "missing"]
    assert "training diverged at step 3" in r["states"][plan["jobs"][3]["run"]][1]
    assert plan["jobs"][3]["log"] in r["states"][plan["jobs"][3]["run"]][1]
    mean, sd, n = r["table1"][0]["rte"]
    assert (mean, n) == (65.0, 2) and sd == pytest.approx(7.0711, abs=1e-4)
    # rate: 200 steps in 100 s = 2 steps/s; left: running 90 steps, failed 100, missing 100 -> 290 / 2 = 145 s
    assert r["rates"][("distill", "lrcbert")] == pytest.approx(2.0)
    assert r["left_hours"] * 3600 == pytest.approx(145.0)
    text = P.markdown(r, ["rte"])
    assert "65.0 ± 7.1 (n=2)" in text and "2 finished, 1 running, 1 failed, 1 missing" in text
    assert "training diverged" in text


def test_nothing_finished_yet(tmp_path):
    plan = {"jobs": [_job(tmp_path, "lrcbert", "rte", 1)], "table1": {}, "splits": {"rte": ["rte"]}}
    r = P.status(plan)
    assert r["rates"] == {} and r["states"][plan["jobs"][0]["run"]][0] == "missing"
    assert "No run has finished yet" in P.markdown(r, ["rte"])
