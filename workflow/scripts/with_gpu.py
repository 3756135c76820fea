#!/usr/bin/env python3
"""Run a command on a GPU of its own: ``with_gpu.py [--threads N] [--offline] -- COMMAND [ARGS...]``.

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


def main(argv: list[str]) -> int:
    if "--" not in argv or not argv[argv.index("--") + 1:]:
        print("usage: with_gpu.py [--threads N] [--offline] -- COMMAND [ARGS...]", file=sys.stderr)
        return 2
    options, command = argv[:argv.index("--")], argv[argv.index("--") + 1:]
    while options:
        opt = options.pop(0)
        if opt == "--threads" and options:
            os.environ["OMP_NUM_THREADS"] = os.environ["MKL_NUM_THREADS"] = str(int(options.pop(0)))
        elif opt == "--offline":
            os.environ["HF_HUB_OFFLINE"] = os.environ["HF_DATASETS_OFFLINE"] = "1"
        else:
            print(f"with_gpu.py: unknown option {opt!r}", file=sys.stderr)
            return 2
    pin = os.environ.get("LRCBERT_GPU_PIN", "1") != "0" and "SLURM_JOB_ID" not in os.environ
    ids = gpu_ids() if pin else []
    if ids:
        gid, fd = acquire(ids, lock_dir())
        os.set_inheritable(fd, True)          # the command holds the lock until it exits
        os.environ["CUDA_VISIBLE_DEVICES"] = gid
        print(f"with_gpu: running on GPU {gid}", file=sys.stderr, flush=True)
    os.execvp(command[0], command)
    return 127   # not reached


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
