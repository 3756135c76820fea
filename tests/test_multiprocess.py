"""Data-parallel training end to end: `lrcbert distill` started the way the workflow starts a run with
`resources.gpus_per_run: 2` (workflow/scripts/with_gpu.py --processes 2, i.e. `accelerate launch --multi_gpu
--num_processes 2`; on this CPU-only machine accelerate runs the two processes on gloo).

- 2 processes x batch 8 equal 1 process x batch 16 (the same global batches): the logged losses of every step
  and the final dev metrics, with COS-NCE negatives gathered across processes, gradient perturbation and the
  teacher cache on. Tolerance: the two runs add the same float32 numbers in a different order (gloo all-reduces
  two half-batch gradient sums; one process sums the whole batch; and the padded lengths differ), which moves
  results by ~1e-7 relative per step; over 12 AdamW steps that stays far below the rtol 1e-4 / atol 1e-5 used.
  Dropout is off in this comparison only: a process draws dropout masks for its own rows, so 2 x 8 rows and
  16 rows get different masks by construction.
- kill -9 of one rank mid-run stops the whole job (the launcher tears the other rank down; the harness only
  bounds the wait so a regression fails instead of hanging); the same command started again resumes from the
  newest checkpoint and ends bitwise equal (losses.csv, metrics.json, the model) to an uninterrupted 2-process
  run, dropout on (each rank's RNG state is checkpointed).
- the workflow: `resources.gpus_per_run: 2` makes the training rules ask for 2 GPUs and launch 2 processes.

Slow (about a minute of CPU per 2-process run): it runs with LRCBERT_INFRA_TESTS=1 (.ci/run sets it).
"""

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from conftest import MINILM, STUDENT, finetune_teacher

ROOT = Path(__file__).resolve().parents[1]
WITH_GPU = ROOT / "workflow" / "scripts" / "with_gpu.py"
WAIT = 600  # seconds: upper bound of one run, so that a hang fails the test instead of blocking CI

pytestmark = pytest.mark.skipif(
    os.environ.get("LRCBERT_INFRA_TESTS") != "1", reason="multi-process runs: set LRCBERT_INFRA_TESTS=1 (minutes)"
)


def env():
    e = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "HF_DATASETS_OFFLINE": "1",
        "TOKENIZERS_PARALLELISM": "false",
        "PYTHONPATH": str(ROOT),
        "LRCBERT_GPU_IDS": "",
    }
    e.pop("SLURM_JOB_ID", None)
    return e


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    from lrcbert.synthetic import make_synthetic

    base = tmp_path_factory.mktemp("mp")
    make_synthetic(base / "glue", seed=0, sizes={"train": 64, "dev": 48, "test": 16}, corpus_lines=50)
    teacher = finetune_teacher(base / "glue", base / "teacher", task="sst2", max_steps=8)
    return base, base / "glue", teacher / "model"


def distill_cmd(glue, teacher, out, processes, batch, steps, dropout):
    arch = dict(STUDENT)
    if not dropout:
        arch.update(hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    sets = {
        "data.source": "tsv",
        "data.path": str(glue),
        "data.max_length": 64,
        "model.teacher": str(teacher),
        "model.student_arch": json.dumps(arch),
        "train.batch_size": batch,
        "train.max_steps": steps,
        "train.lr": 1e-3,
        "train.seed": 3,
        "train.eval_batch_size": 32,
        "train.checkpoint_every": 4,
        "train.teacher_cache": '"on"',
        "method.perturb": "true",
        "method.gather_negatives": "true",
    }
    cmd = [sys.executable, "-m", "lrcbert", "distill", "--method", "lrcbert", "--task", "sst2", "--out", str(out)]
    for k, v in sets.items():
        cmd += ["--set", f"{k}={v}"]
    launch = [sys.executable, str(WITH_GPU), "--threads", "2"]
    if processes > 1:
        launch += ["--processes", str(processes)]
    return [*launch, "--", *cmd]


def run(cmd, log: Path) -> subprocess.CompletedProcess:
    res = subprocess.run(cmd, env=env(), capture_output=True, text=True, timeout=WAIT)
    log.write_text(res.stdout + res.stderr)
    return res


def losses(out: Path) -> list[dict]:
    with open(out / "losses.csv", newline="") as f:
        return list(csv.DictReader(f))


def test_two_processes_equal_one_process_with_the_same_global_batch(setup):
    base, glue, teacher = setup
    one, two = base / "one", base / "two"
    r1 = run(distill_cmd(glue, teacher, one, 1, 16, 12, dropout=False), base / "one.log")
    assert r1.returncode == 0, r1.stderr[-3000:]
    r2 = run(distill_cmd(glue, teacher, two, 2, 8, 12, dropout=False), base / "two.log")
    assert r2.returncode == 0, r2.stderr[-3000:]
    assert json.loads((two / "run.json").read_text())["processes"] == 2
    assert json.loads((one / "run.json").read_text())["teacher_cache"]["use"] is True
    a, b = losses(one), losses(two)
    assert [r["step"] for r in a] == [r["step"] for r in b] == [str(s) for s in range(1, 13)]
    columns = ["total", "loss_clean", "layer", "soft", "hard"]
    for ra, rb in zip(a, b):
        for c in columns:  # a term not computed in a stage is logged empty, by both
            assert (ra[c] == "") == (rb[c] == ""), (ra["step"], c, ra[c], rb[c])
            if ra[c]:
                assert float(rb[c]) == pytest.approx(float(ra[c]), rel=1e-4, abs=1e-5), (ra["step"], c, ra[c], rb[c])
    # both stages of LRC-BERT were trained: layer loss only, then layer + soft + hard
    assert not a[0]["w_soft"] and float(a[-1]["w_soft"]) > 0 and a[-1]["soft"] and a[-1]["hard"]
    ma = json.loads((one / "metrics.json").read_text())["splits"]["sst2"]
    mb = json.loads((two / "metrics.json").read_text())["splits"]["sst2"]
    assert ma["n"] == mb["n"] == 48
    assert mb["accuracy"] == pytest.approx(ma["accuracy"], abs=1e-9)
    # the trained students themselves (a stronger check than a dev accuracy of 48 examples)
    from safetensors.torch import load_file

    wa, wb = (load_file(str(d / "model" / "model.safetensors")) for d in (one, two))
    assert wa.keys() == wb.keys()
    for k in wa:
        torch.testing.assert_close(wb[k], wa[k], rtol=1e-4, atol=1e-5, msg=k)
    print(
        f"\n[multiprocess] 12 steps, 1 x 16 vs 2 x 8: max |loss diff| "
        f"{max(abs(float(ra[c]) - float(rb[c])) for ra, rb in zip(a, b) for c in columns if ra[c]):.2e}; "
        f"dev accuracy {ma['accuracy']:.4f} vs {mb['accuracy']:.4f}"
    )


def rank_pids(launcher: int) -> dict[int, int]:
    """{rank: pid} of the training processes under ``launcher`` (from their RANK environment variable)."""
    out = subprocess.run(["ps", "-e", "-o", "pid=,ppid="], capture_output=True, text=True).stdout.split("\n")
    children = {}
    for line in out:
        if line.strip():
            pid, ppid = map(int, line.split())
            children.setdefault(ppid, []).append(pid)
    ranks, todo = {}, [launcher]
    while todo:
        for pid in children.get(todo.pop(), []):
            todo.append(pid)
            try:
                environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
                cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
            except OSError:
                continue
            rank = [e[5:] for e in environ if e.startswith(b"RANK=")]
            if rank and b"lrcbert" in cmdline and b"accelerate" not in cmdline:
                ranks[int(rank[0])] = pid
    return ranks


def test_kill_one_rank_stops_the_job_and_the_rerun_resumes_to_the_uninterrupted_result(setup):
    base, glue, teacher = setup
    steps = 24
    ref, killed = base / "ref", base / "killed"
    r = run(distill_cmd(glue, teacher, ref, 2, 8, steps, dropout=True), base / "ref.log")
    assert r.returncode == 0, r.stderr[-3000:]

    cmd = distill_cmd(glue, teacher, killed, 2, 8, steps, dropout=True)
    proc = subprocess.Popen(cmd, env=env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.time() + WAIT
        while time.time() < deadline and proc.poll() is None:
            done = int(losses(killed)[-1]["step"]) if (killed / "losses.csv").is_file() and losses(killed) else 0
            if done >= 10:
                break
            time.sleep(0.2)
        ranks = rank_pids(proc.pid)
        assert proc.poll() is None and set(ranks) == {0, 1}, (ranks, proc.poll())
        os.kill(ranks[1], signal.SIGKILL)
        out, _ = proc.communicate(timeout=WAIT)  # bounded: a hang fails here
    finally:
        if proc.poll() is None:
            proc.kill()
    at = int(losses(killed)[-1]["step"])
    assert proc.returncode != 0, out[-3000:]
    assert at < steps and not (killed / "metrics.json").exists()
    assert list((killed / "checkpoints").glob("step-*")), "no checkpoint before the kill"
    print(
        f"\n[multiprocess] rank 1 killed (SIGKILL) at step ~{at}: the launcher stopped the job, exit {proc.returncode}"
    )

    r = run(cmd, base / "resumed.log")
    assert r.returncode == 0, r.stderr[-3000:]
    assert "resuming from" in r.stdout + r.stderr
    resumed_line = next(l for l in (r.stdout + r.stderr).splitlines() if "resuming from" in l)
    assert (ref / "losses.csv").read_text() == (killed / "losses.csv").read_text()
    ma, mb = (json.loads((d / "metrics.json").read_text()) for d in (ref, killed))
    assert ma["splits"] == mb["splits"]
    assert (ref / "model" / "model.safetensors").read_bytes() == (killed / "model" / "model.safetensors").read_bytes()
    print(
        f"[multiprocess] rerun: {resumed_line.strip()}; losses.csv, metrics and model equal to the uninterrupted "
        f"2-process run (dev accuracy {mb['splits']['sst2']['accuracy']:.4f})"
    )


def test_workflow_launches_a_run_on_gpus_per_run_processes(tmp_path):
    sys.path.insert(0, str(ROOT / "tests"))
    from kill_smoke import workflow_copy

    wf = workflow_copy(tmp_path / "wf")
    over = tmp_path / "over.yaml"
    over.write_text("resources: {gpus_per_run: 2}\n")
    snakemake = Path(sys.executable).parent / "snakemake"
    res = subprocess.run(
        [
            str(snakemake),
            "-n",
            "-p",
            "--cores",
            "2",
            "--configfile",
            "config/smoke.yaml",
            str(over),
            "--",
            "runs/lrcbert/rte/seed1/lr0.001/metrics.json",
        ],
        cwd=wf,
        env=env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert res.returncode == 0, res.stderr[-3000:]
    text = res.stdout
    blocks = text.split("\nrule ")
    train = [
        b
        for b in blocks
        if b.startswith(("task_distill:", "general_distill:", "intermediate_distill:", "teacher_finetune:"))
    ]
    assert len(train) >= 3
    for b in train:
        assert "--processes 2 --" in b, b
    augment = [b for b in blocks if b.startswith("augment:")]
    assert augment and all("--processes" not in b for b in augment)
    # with_gpu turns the command into a 2-process accelerate launch
    sys.path.insert(0, str(ROOT / "workflow" / "scripts"))
    from with_gpu import accelerate_command

    cmd = accelerate_command(["python", "-m", "lrcbert", "distill", "--task", "rte"], 2)
    assert cmd[1:3] == ["-m", "accelerate.commands.launch"]
    assert cmd[cmd.index("--num_processes") + 1] == "2" and "--multi_gpu" in cmd
    assert cmd[-5:] == ["-m", "lrcbert", "distill", "--task", "rte"]
    assert MINILM  # the tokenizer of the generated data and teacher is the real uncased one
