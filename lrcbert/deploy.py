"""``python -m lrcbert.deploy``: what edge deployment of the teacher and each student architecture costs and
gives, on the CPU that runs it -> ``results/deployment.md`` and ``.json``.

For each model (a saved classifier): size on disk and parameters; the dev metric and the largest logit
difference against PyTorch of the ONNX exports (``lrcbert.export``): fp32 fused by onnxruntime's BERT
optimizer, the same fused graph in int8, and the plain exported fp32 graph that only onnxruntime's own
session-level optimisations touch (on some CPUs and shapes it is the faster fp32 graph, so the report times
both); latency at each batch size (sequences of exactly ``length`` tokens) and tokens/s of each runtime and of
PyTorch fp32 (sdpa attention). Timing: ``threads`` threads for torch and onnxruntime alike, ``warmup`` untimed
rounds, then ``repeats`` rounds in which the runtimes run one after the other (interleaved, so that load on a
shared machine hits all of them alike); each figure is the median with its quartiles and min-max. Both clocks are
recorded: wall-clock and the CPU time of the process (``time.process_time``). With one thread the report uses
CPU time, which is the latency on an idle core and is not inflated when other processes share the core (the
``clock`` field says which); with several threads CPU time adds the threads up, so the report uses wall-clock.
Speed-ups are ratios of medians.
"""

from __future__ import annotations

import argparse
import csv
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch

RUNTIMES = ("pytorch_fp32", "onnx_fp32", "onnx_fp32_plain", "onnx_int8")


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return f"{line.split(':', 1)[1].strip()} ({os.cpu_count()} cores visible)"
    except OSError:
        pass
    return f"{platform.processor() or platform.machine()} ({os.cpu_count()} cores visible)"


def spread(xs) -> dict:
    """Median, quartiles and extremes of ``xs`` (seconds)."""
    q1, med, q3 = np.percentile(xs, [25, 50, 75])
    return {
        "median": float(med),
        "q1": float(q1),
        "q3": float(q3),
        "min": float(min(xs)),
        "max": float(max(xs)),
        "n": len(xs),
    }


def interleaved(fns: dict, repeats: int, warmup: int) -> dict:
    """Wall and CPU seconds of each callable over ``repeats`` interleaved rounds after ``warmup`` untimed ones."""
    wall = {k: [] for k in fns}
    cpu = {k: [] for k in fns}
    for r in range(warmup + repeats):
        for k, fn in fns.items():
            w0, c0 = time.perf_counter(), time.process_time()
            fn()
            w1, c1 = time.perf_counter(), time.process_time()
            if r >= warmup:
                wall[k].append(w1 - w0)
                cpu[k].append(c1 - c0)
    return {k: {"wall": spread(wall[k]), "cpu": spread(cpu[k])} for k in fns}


def disk_bytes(path: Path) -> int:
    """Bytes of a model folder's weight files (safetensors / bin), or of one file."""
    path = Path(path)
    if path.is_file():
        return path.stat().st_size
    return sum(f.stat().st_size for f in path.iterdir() if f.suffix in (".safetensors", ".bin"))


def runtimes(model, paths: dict, threads: int) -> dict:
    from .export import OnnxClassifier

    sessions = {
        "onnx_fp32": OnnxClassifier(paths["fp32"], threads),
        "onnx_fp32_plain": OnnxClassifier(paths["plain"], threads),
        "onnx_int8": OnnxClassifier(paths["int8"], threads),
    }

    def torch_fwd(ids, mask, types):
        with torch.inference_mode():
            return model(input_ids=ids, attention_mask=mask, token_type_ids=types).logits

    return {"pytorch_fp32": torch_fwd, **sessions}


def dev_check(fns: dict, task, dev, collate, batch_size: int = 32) -> dict:
    """Dev metric of every runtime and each one's largest |logit - PyTorch logit| over the dev set."""
    from .evaluation import compute_metrics, to_predictions

    loader = torch.utils.data.DataLoader(dev, batch_size=batch_size, collate_fn=collate)
    logits = {k: [] for k in fns}
    labels = []
    for b in loader:
        for k, fn in fns.items():
            logits[k].append(fn(b["input_ids"], b["attention_mask"], b["token_type_ids"]).float())
        labels.append(b["labels"])
    labels = torch.cat(labels).numpy()
    out = {}
    ref = torch.cat(logits["pytorch_fp32"])
    for k in fns:
        lg = torch.cat(logits[k])
        out[k] = {
            "dev_score": compute_metrics(task, to_predictions(task, lg.numpy()), labels)["score"],
            "max_abs_logit_diff": float((lg - ref).abs().max()),
        }
    return out


def measure(
    name: str,
    model_dir: str,
    task,
    dev,
    work: Path,
    threads: int,
    length: int,
    batch_sizes,
    repeats: dict,
    warmup: int,
    max_length: int,
    log=print,
) -> dict:
    """One model: export, fusion check, dev check (``dev`` tokenised to ``max_length``, dynamic padding) and
    latency on sequences of ``length`` tokens."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from . import data as D
    from .export import export_all, fusion_report
    from .models import check_labels, count_parameters

    clock = "cpu" if threads == 1 else "wall"
    model = AutoModelForSequenceClassification.from_pretrained(model_dir, attn_implementation="sdpa").eval()
    check_labels(model.config, task, f"model {model_dir}")
    c = model.config
    log(f"{name}: export, fuse and quantise ({c.num_hidden_layers} x {c.hidden_size})")
    paths = export_all(model, work / name)
    fusion = {k: fusion_report(paths[k], c.num_hidden_layers) for k in ("plain", "fp32", "int8")}
    if not (fusion["fp32"]["fused"] and fusion["int8"]["fused"]):
        raise RuntimeError(f"{name}: onnxruntime's BERT fusion left the graph unfused: {fusion}")
    fns = runtimes(model, paths, threads)
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    checks = dev_check(fns, task, dev, D.Collator(tokenizer, max_length, False))
    latency = {}
    for bs in batch_sizes:
        g = torch.Generator().manual_seed(bs)
        ids = torch.randint(1000, c.vocab_size - 1, (bs, length), generator=g)
        args = (ids, torch.ones_like(ids), torch.zeros_like(ids))
        n = repeats.get(bs, repeats.get("default", 5))
        t = interleaved({k: (lambda fn=fn, args=args: fn(*args)) for k, fn in fns.items()}, n, warmup)
        for k in t:
            t[k]["tokens_per_s"] = bs * length / t[k][clock]["median"]
        latency[f"batch{bs}"] = t
        log(f"  batch {bs}: " + ", ".join(f"{k} {t[k][clock]['median'] * 1000:.2f} ms" for k in t))
    sizes = {
        "pytorch_fp32": disk_bytes(Path(model_dir)),
        "onnx_fp32": disk_bytes(paths["fp32"]),
        "onnx_fp32_plain": disk_bytes(paths["plain"]),
        "onnx_int8": disk_bytes(paths["int8"]),
    }
    return {
        "model": str(model_dir),
        "layers": c.num_hidden_layers,
        "hidden": c.hidden_size,
        "intermediate": c.intermediate_size,
        "heads": c.num_attention_heads,
        "params": count_parameters(model),
        "disk_bytes": sizes,
        "fusion": fusion,
        "dev": checks,
        "latency": latency,
    }


def paper_ratios(path) -> dict:
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    t, s = rows[0], rows[1]  # BERT-base, then LRC-BERT
    return {
        "speedup": float(t["inference_time_s"]) / float(s["inference_time_s"]),
        "size": float(t["params_m"]) / float(s["params_m"]),
        "hardware": t["hardware"],
        "teacher": t["model"],
        "student": s["model"],
    }


def _ms(s: dict) -> str:
    return f"{s['median'] * 1e3:.2f} [{s['q1'] * 1e3:.2f}-{s['q3'] * 1e3:.2f}]"


def markdown(r: dict) -> str:
    from .markdown import md_table

    p, clock = r["paper"], r["clock"]
    lines = ["# Deployment: teacher and students on the CPU, PyTorch vs ONNX fp32 vs ONNX int8", ""]
    clock_words = (
        "CPU time of the process (one thread: the latency of an idle core)" if clock == "cpu" else "wall-clock"
    )
    if r["generated"]:
        lines += [
            "**Generated data and toy models** (the smoke configuration): the dev metrics and sizes below "
            "measure the pipeline, not the method.",
            "",
        ]
    lines += [
        f"Measured on {r['cpu']}; torch {r['versions']['torch']}, onnxruntime {r['versions']['onnxruntime']}. "
        f"**{r['threads']} thread(s)** for torch and onnxruntime alike (onnxruntime: {r['session']}). "
        f"Sequences of exactly {r['length']} tokens; {r['warmup']} untimed warm-up round(s), then "
        f"{', '.join(f'{n} at batch {b}' for b, n in r['repeats'].items())} rounds in which the "
        f"{len(RUNTIMES)} runtimes alternate. Latency: median {clock_words}, ms [interquartile range]. The "
        "machine may be shared: interleaving makes load hit all runtimes alike, the ranges show how much it "
        f"moved. Task: `{r['task']}` dev set ({r['dev_examples']} examples, at most {r['dev_max_length']} tokens, "
        f"{r['metric']} x100). `onnx_fp32`: the graph fused by onnxruntime's BERT optimizer; `onnx_int8`: "
        "dynamic quantisation of that fused graph; `onnx_fp32_plain`: the exported graph as traced, with only "
        "onnxruntime's own session optimisations.",
        "",
    ]
    rows = []
    for name, m in r["models"].items():
        for k in RUNTIMES:
            row = [
                name if k == RUNTIMES[0] else "",
                k,
                f"{m['params'] / 1e6:.2f}" if k == RUNTIMES[0] else "",
                f"{m['disk_bytes'][k] / 2**20:.2f}",
                f"{m['dev'][k]['dev_score']:.2f}",
                f"{m['dev'][k]['max_abs_logit_diff']:.1e}" if k != "pytorch_fp32" else "-",
            ]
            for b in r["batch_sizes"]:
                t = m["latency"][f"batch{b}"][k]
                row += [_ms(t[clock]), f"{t['tokens_per_s']:.0f}"]
            rows.append(row)
    head = ["model", "runtime", "params (M)", "disk (MiB)", "dev", "max abs logit diff"]
    for b in r["batch_sizes"]:
        head += [f"batch {b} ms", f"batch {b} tokens/s"]
    lines += [md_table(rows, head, tablefmt="github"), ""]
    rows = []
    for name, m in r["models"].items():
        for b in r["batch_sizes"]:
            lat = m["latency"][f"batch{b}"]
            ref = lat["pytorch_fp32"][clock]["median"]
            rows.append(
                [name, b]
                + [f"{ref / lat[k][clock]['median']:.2f}x" for k in RUNTIMES[1:]]
                + [f"{m['dev']['onnx_int8']['dev_score'] - m['dev']['pytorch_fp32']['dev_score']:+.2f}"]
            )
    lines += [
        "Speed-up over PyTorch fp32 of the same model (ratio of medians; goals: ONNX fp32 >= 1.2x at batch 1 "
        "and >= 1.0x at batch 32, int8 >= 2x at batch 1), and the int8 dev-metric change:",
        "",
        md_table(
            rows,
            ["model", "batch", "ONNX fp32 (fused)", "ONNX fp32 (plain)", "ONNX int8", "int8 dev change (points)"],
            tablefmt="github",
        ),
        "",
    ]
    rows = []
    teacher = r["models"].get("teacher")
    if teacher:
        for name, m in r["models"].items():
            if name == "teacher":
                continue
            for b in r["batch_sizes"]:
                ref = teacher["latency"][f"batch{b}"]["pytorch_fp32"][clock]["median"]
                lat = m["latency"][f"batch{b}"]
                rows.append(
                    [
                        name,
                        b,
                        f"{teacher['params'] / m['params']:.1f}x",
                        f"{teacher['disk_bytes']['pytorch_fp32'] / m['disk_bytes']['onnx_int8']:.1f}x",
                    ]
                    + [f"{ref / lat[k][clock]['median']:.1f}x" for k in RUNTIMES]
                )
        lines += [
            f"Teacher (PyTorch fp32) over each student, beside the paper's {p['speedup']:.1f}x faster and "
            f"{p['size']:.1f}x smaller ({p['teacher']} vs {p['student']} on {p['hardware']}, its Table 2; "
            "parameters and GPU time, so only the ratios compare):",
            "",
            md_table(
                rows,
                [
                    "student",
                    "batch",
                    "params ratio",
                    "disk ratio (vs int8)",
                    *(f"speed-up, student {k}" for k in RUNTIMES),
                ],
                tablefmt="github",
            ),
            "",
        ]
    rows = [
        [
            name,
            k,
            v["attention_nodes"],
            v["matmul_nodes"],
            v["SkipLayerNormalization"],
            v["BiasGelu"],
            v["Softmax"],
            v["Erf"],
            "yes" if v["fused"] else "no",
        ]
        for name, m in r["models"].items()
        for k, v in m["fusion"].items()
    ]
    lines += [
        "Graph check (nodes per exported graph: plain export, fused fp32, fused int8):",
        "",
        md_table(
            rows,
            ["model", "graph", "attention", "matmul+gemm", "SkipLayerNorm", "BiasGelu", "Softmax", "Erf", "fused"],
            tablefmt="github",
        ),
        "",
    ]
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m lrcbert.deploy", description=__doc__.split("\n\n")[0])
    ap.add_argument("--teacher", help="the fine-tuned teacher (save_pretrained folder)")
    ap.add_argument("--student", action="append", default=[], metavar="NAME=FOLDER", help="a student (repeatable)")
    ap.add_argument("--task", required=True)
    ap.add_argument("--config", action="append", default=[], help="YAML config (data section: where the dev set is)")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a config key")
    ap.add_argument("--paper", required=True, help="the paper's Table 2 (CSV: teacher row, then student row)")
    ap.add_argument("--out", required=True, help="JSON output (the Markdown goes next to it, .md)")
    ap.add_argument("--work", required=True, help="folder for the ONNX files")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--length", type=int, default=128)
    ap.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 32])
    ap.add_argument("--repeats", type=int, default=20, help="timed rounds at batch 1 (larger batches: a quarter, >= 5)")
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--generated", action="store_true", help="the data and models are generated (smoke): say so")
    args = ap.parse_args(argv)
    models = {"teacher": args.teacher} if args.teacher else {}
    for item in args.student:
        name, sep, folder = item.partition("=")
        if not sep or not name or not folder or name in models:
            print(f"lrcbert.deploy: error: --student {item!r} is not a new NAME=FOLDER", file=sys.stderr)
            return 2
        models[name] = folder
    for name, folder in models.items():
        if not (Path(folder) / "config.json").is_file():
            print(f"lrcbert.deploy: error: {name}: no saved model at {folder} (config.json missing)", file=sys.stderr)
            return 2
    if args.threads < 1 or args.length < 2 or args.repeats < 1 or args.warmup < 0 or not models:
        print(
            "lrcbert.deploy: error: need >= 1 model, --threads >= 1, --length >= 2, --repeats >= 1, --warmup >= 0",
            file=sys.stderr,
        )
        return 2
    import onnxruntime
    import transformers

    from . import data as D
    from .config import ConfigError, load_config
    from .export import SESSION_SETTINGS
    from .runinfo import atomic_write_json, atomic_write_text, git_commit
    from .tasks import get_task

    transformers.utils.logging.disable_progress_bar()
    torch.set_num_threads(args.threads)
    try:
        cfg = load_config(args.config, args.set + [f"task={args.task}"])
        task = get_task(args.task)
        paper = paper_ratios(args.paper)
        dev_raw = D.load_split(cfg, task, "dev")
    except (ConfigError, ValueError, OSError, KeyError) as e:
        print(f"lrcbert.deploy: error: {e}", file=sys.stderr)
        return 2
    repeats = {b: (args.repeats if b == 1 else max(5, args.repeats // 4)) for b in args.batch_sizes}
    result = {
        "cpu": cpu_name(),
        "threads": args.threads,
        "clock": "cpu" if args.threads == 1 else "wall",
        "session": SESSION_SETTINGS,
        "length": args.length,
        "batch_sizes": args.batch_sizes,
        "warmup": args.warmup,
        "repeats": repeats,
        "task": task.name,
        "metric": task.metric,
        "dev_max_length": cfg.data.max_length,
        "generated": args.generated,
        "paper": paper,
        "commit": git_commit(),
        "versions": {
            "torch": torch.__version__,
            "onnxruntime": onnxruntime.__version__,
            "transformers": transformers.__version__,
        },
        "models": {},
    }
    from transformers import AutoTokenizer

    for name, folder in models.items():
        dev = D.tokenize(dev_raw, AutoTokenizer.from_pretrained(folder), cfg.data.max_length)
        result["dev_examples"] = len(dev)
        result["models"][name] = measure(
            name,
            folder,
            task,
            dev,
            Path(args.work),
            args.threads,
            args.length,
            args.batch_sizes,
            repeats,
            args.warmup,
            cfg.data.max_length,
        )
    atomic_write_json(args.out, result)
    atomic_write_text(Path(args.out).with_suffix(".md"), markdown(result) + "\n")
    print(f"wrote {args.out} and {Path(args.out).with_suffix('.md')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
