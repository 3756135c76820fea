#!/usr/bin/env python3
"""Run a command on GPUs of its own: ``with_gpu.py [--threads N] [--offline] [--processes N] -- COMMAND [ARGS...]``.

Snakemake counts GPUs through the ``gpu`` resource (the local profile sets the machine's GPU count, so no two
jobs are scheduled onto more GPUs than exist) but does not say *which* GPU a job gets. This wrapper picks one:
it takes an exclusive ``flock`` on one lock file per GPU id, exports ``CUDA_VISIBLE_DEVICES`` to that id and
execs the command, which inherits the locked file descriptor; the lock goes when the command ends, however it
ends (a crash or SIGKILL included). GPU ids come from ``LRCBERT_GPU_IDS`` (comma separated), else
``CUDA_VISIBLE_DEVICES``, else ``nvidia-smi -L``. With no GPU, inside a SLURM job (SLURM already binds the
job's GPUs) or with ``LRCBERT_GPU_PIN=0`` the command is executed unchanged. Lock files live in
``LRCBERT_GPU_LOCK_DIR`` (default: ``$TMPDIR/lrcbert-gpu-locks-$USER``), shared by every workflow of the user on
the machine. ``--threads N`` exports OMP_NUM_THREADS and MKL_NUM_THREADS (the job's Snakemake threads);
``--offline`` exports HF_HUB_OFFLINE=1 and HF_DATASETS_OFFLINE=1 (everything was downloaded by local rules).

``--processes N`` (N > 1, config ``resources.gpus_per_run``): the command (``python -m lrcbert ...``) is started by
``accelerate launch --multi_gpu --num_processes N``, one data-parallel process per GPU (N GPUs are locked); on a
machine without GPUs accelerate runs the N processes on the CPU (gloo). The threads are shared among them.

Inside a SLURM batch job submitted with ``--requeue``, the command runs as a child instead of being exec'ed: when
it exits 75 (lrcbert's "preempted: checkpoint written, run me again", after SIGUSR1 from ``--signal=USR1@600``
or SIGTERM from a preemption), the wrapper asks SLURM to requeue the job (``scontrol requeue``), so the same job
id runs again later and the run resumes from its checkpoint. Any other exit status is passed through unchanged,
so a run that fails for a real reason (exit 2: bad configuration or data) fails once, with its message.
"""

from __future__ import annotations

import fcntl
import getpass
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def gpu_ids(environ=os.environ) -> list[str]:
    for var in ("LRCBERT_GPU_IDS", "CUDA_VISIBLE_DEVICES"):
        value = environ.get(var)
        if value is not None:
            return [x.strip() for x in value.split(",") if x.strip() and x.strip() != "-1"]
    if shutil.which("nvidia-smi") is None:
        return []
    try:
        out = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    return [str(i) for i, line in enumerate(x for x in out.splitlines() if x.startswith("GPU "))]


def lock_dir(environ=os.environ) -> Path:
    path = environ.get("LRCBERT_GPU_LOCK_DIR")
    if not path:
        try:
            user = getpass.getuser()
        except (KeyError, OSError):
            user = str(os.getuid())
        path = os.path.join(tempfile.gettempdir(), f"lrcbert-gpu-locks-{user}")
    Path(path).mkdir(parents=True, exist_ok=True)
    return Path(path)


def acquire(ids: list[str], folder: Path, poll: float = 2.0, log=sys.stderr) -> tuple[str, int]:
    """Block until one of ``ids`` is free; return (id, fd holding its lock)."""
    waited = False
    while True:
        for gid in ids:
            fd = os.open(folder / f"gpu-{gid}.lock", os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                continue
            os.ftruncate(fd, 0)
            os.write(fd, f"{os.getpid()}\n".encode())
            return gid, fd
        if not waited:
            print(f"with_gpu: all GPUs {ids} are taken (locks in {folder}); waiting", file=log, flush=True)
            waited = True
        time.sleep(poll)


EXIT_PREEMPTED = 75  # lrcbert's exit status after a SIGTERM / SIGUSR1 stop with a checkpoint


def accelerate_command(command: list[str], processes: int) -> list[str]:
    """``python -m MODULE ARGS`` (or ``python SCRIPT ARGS``) as an ``accelerate launch`` of ``processes`` processes."""
    launch = [
        sys.executable,
        "-m",
        "accelerate.commands.launch",
        "--multi_gpu",
        "--num_processes",
        str(processes),
        "--num_machines",
        "1",
        "--mixed_precision",
        "no",
        "--dynamo_backend",
        "no",
        "--main_process_port",
        str(free_port()),
    ]
    if os.path.basename(command[0]).startswith("python") and command[1:2] == ["-m"]:
        return [*launch, "-m", *command[2:]]
    if os.path.basename(command[0]).startswith("python"):
        return [*launch, *command[1:]]
    return [*launch, "--no_python", *command]


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def slurm_requeueable(environ=os.environ) -> str | None:
    """The id of the SLURM batch job this runs in, if it was submitted with --requeue (else None)."""
    job = environ.get("SLURM_JOB_ID")
    if not job or shutil.which("scontrol") is None:
        return None
    try:
        out = subprocess.run(["scontrol", "show", "job", job, "-o"], capture_output=True, text=True, timeout=60).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    fields = dict(f.split("=", 1) for f in out.split() if "=" in f)
    return job if fields.get("Requeue") == "1" and fields.get("BatchFlag") == "1" else None


def run_and_requeue(command: list[str], job: str) -> int:
    """Run ``command``; on exit 75 ask SLURM to requeue batch job ``job``. Signals that reach this process
    (SLURM signals every process of the step; a preemption signals the whole job) are passed on to the command."""
    import signal

    proc = subprocess.Popen(command)

    def forward(signum, frame):
        try:
            proc.send_signal(signum)
        except ProcessLookupError:
            pass

    for sig in (signal.SIGTERM, signal.SIGUSR1, signal.SIGINT):
        signal.signal(sig, forward)
    rc = proc.wait()
    if rc == EXIT_PREEMPTED:
        restarts = os.environ.get("SLURM_RESTART_COUNT", "0")
        print(
            f"with_gpu: the run stopped with a checkpoint (exit 75); requeueing SLURM job {job} "
            f"(restarts so far: {restarts})",
            file=sys.stderr,
            flush=True,
        )
        res = subprocess.run(["scontrol", "requeue", job], capture_output=True, text=True)
        if res.returncode != 0:
            print(f"with_gpu: scontrol requeue {job}: {res.stderr.strip()}", file=sys.stderr, flush=True)
    return rc if rc >= 0 else 128 - rc


def main(argv: list[str]) -> int:
    if "--" not in argv or not argv[argv.index("--") + 1 :]:
        print("usage: with_gpu.py [--threads N] [--offline] [--processes N] -- COMMAND [ARGS...]", file=sys.stderr)
        return 2
    options, command = argv[: argv.index("--")], argv[argv.index("--") + 1 :]
    processes, threads = 1, None
    while options:
        opt = options.pop(0)
        if opt == "--threads" and options:
            threads = int(options.pop(0))
        elif opt == "--processes" and options:
            processes = int(options.pop(0))
        elif opt == "--offline":
            os.environ["HF_HUB_OFFLINE"] = os.environ["HF_DATASETS_OFFLINE"] = "1"
        else:
            print(f"with_gpu.py: unknown option {opt!r}", file=sys.stderr)
            return 2
    if threads is not None:
        os.environ["OMP_NUM_THREADS"] = os.environ["MKL_NUM_THREADS"] = str(max(1, threads // processes))
    pin = os.environ.get("LRCBERT_GPU_PIN", "1") != "0" and "SLURM_JOB_ID" not in os.environ
    ids = gpu_ids() if pin else []
    if ids:
        taken = []
        for _ in range(min(processes, len(ids))):
            gid, fd = acquire([i for i in ids if i not in taken], lock_dir())
            os.set_inheritable(fd, True)  # the command holds the lock until it exits
            taken.append(gid)
        os.environ["CUDA_VISIBLE_DEVICES"] = ",".join(taken)
        print(f"with_gpu: running on GPU {','.join(taken)}", file=sys.stderr, flush=True)
    if processes > 1:
        command = accelerate_command(command, processes)
    job = slurm_requeueable()
    if job:
        return run_and_requeue(command, job)
    os.execvp(command[0], command)
    return 127  # not reached


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
