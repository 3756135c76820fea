#!/usr/bin/env python3
"""Inference time of the teacher and the student on one fixed workload, on the device this job runs on.

Workload: ``--sequences`` sequences of exactly ``--max-length`` tokens (random token ids from a fixed seed, full
attention mask: the cost of a BERT forward pass does not depend on which tokens it reads), in batches of
``--batch-size``, classification head included. Each model gets ``--warmup`` untimed batches, then the whole
workload is timed ``--repeats`` times; the median is reported (with CUDA, after synchronising the device).
Both models run in the same process, on the same device and thread count, one after the other.

    python workflow/scripts/time_inference.py --teacher RUN/model --student RUN/model --out timing.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from pathlib import Path

import torch
from transformers import AutoModelForSequenceClassification


def hardware(device: torch.device) -> str:
    if device.type == "cuda":
        return f"1x {torch.cuda.get_device_name(device)} (CUDA {torch.version.cuda})"
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"CPU: {cpu} ({os.cpu_count()} cores visible)"


def workload(vocab_size: int, sequences: int, length: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(1000, vocab_size, (sequences, length), generator=g)


@torch.inference_mode()
def time_model(model, ids: torch.Tensor, batch_size: int, warmup: int, repeats: int, device) -> list[float]:
    model.eval().to(device)
    batches = [ids[i : i + batch_size].to(device) for i in range(0, len(ids), batch_size)]
    masks = [torch.ones_like(b) for b in batches]
    types = [torch.zeros_like(b) for b in batches]

    def sync():
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    for k in range(warmup):
        model(
            input_ids=batches[k % len(batches)],
            attention_mask=masks[k % len(batches)],
            token_type_ids=types[k % len(batches)],
        )
    sync()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        for b, m, t in zip(batches, masks, types):
            model(input_ids=b, attention_mask=m, token_type_ids=t)
        sync()
        times.append(time.perf_counter() - start)
    return times


def describe(model) -> dict:
    c = model.config
    return {
        "layers": c.num_hidden_layers,
        "hidden": c.hidden_size,
        "intermediate": c.intermediate_size,
        "heads": c.num_attention_heads,
        "params": sum(p.numel() for p in model.parameters()),
    }


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--teacher", required=True)
    ap.add_argument("--student", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--task", default=None, help="recorded in the output only")
    ap.add_argument("--sequences", type=int, default=1024)
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--max-length", type=int, default=128)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--extra",
        action="append",
        default=[],
        metavar="NAME=PATH",
        help="another model timed on the same workload (e.g. a baseline of another architecture)",
    )
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    result = {
        "hardware": hardware(device),
        "device": device.type,
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "task": args.task,
        "workload": {
            "sequences": args.sequences,
            "max_length": args.max_length,
            "batch_size": args.batch_size,
            "warmup_batches": args.warmup,
            "repeats": args.repeats,
            "statistic": "median",
            "precision": "float32",
        },
        "models": {},
    }
    ids = None
    extras = [tuple(x.split("=", 1)) for x in args.extra]
    for role, path in (("teacher", args.teacher), ("student", args.student), *extras):
        model = AutoModelForSequenceClassification.from_pretrained(path, attn_implementation="sdpa")
        if ids is None:
            ids = workload(model.config.vocab_size, args.sequences, args.max_length, args.seed)
        times = time_model(model, ids, args.batch_size, args.warmup, args.repeats, device)
        result["models"][role] = {
            "path": str(path),
            **describe(model),
            "seconds": statistics.median(times),
            "all_seconds": times,
        }
        print(f"{role}: {result['models'][role]['seconds']:.3f} s (median of {times})", flush=True)
        del model
        if device.type == "cuda":
            torch.cuda.empty_cache()
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
