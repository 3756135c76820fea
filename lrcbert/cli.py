"""Command line: ``lrcbert {make-synthetic, finetune, distill, general-distill, augment, evaluate, case-stats,
robustness, bench}``.

Every training command takes ``--config FILE`` (repeatable, later files win) and ``--set key=value``
overrides (dotted keys of ``lrcbert.config``), and writes a run folder ``--out``.
"""
from __future__ import annotations

import argparse
import json
import os
import sys

from .config import ConfigError, load_config
from .objective import METHODS, get_method, load_plugins

EXIT_PREEMPTED = 75    # EX_TEMPFAIL: try again (Snakemake retries, SLURM requeues); the run resumes


def _add_common(p: argparse.ArgumentParser, task: bool = True, out_help: str = "run folder",
                task_required: bool = False):
    p.add_argument("--config", action="append", default=[], help="YAML config file (repeatable)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a config key")
    if task:
        p.add_argument("--task", required=task_required, help="GLUE task (cola, sst2, mrpc, stsb, qqp, mnli, mnli_mm, qnli, rte)")
    p.add_argument("--out", required=True, help=out_help)


def build_parser() -> argparse.ArgumentParser:
    load_plugins()          # the baselines register their methods
    ap = argparse.ArgumentParser(prog="lrcbert", description="LRC-BERT distillation and its baselines")
    sub = ap.add_subparsers(dest="command", required=True)
    p = sub.add_parser("make-synthetic", help="write a generated GLUE-format data set")
    p.add_argument("--out", required=True)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--train", type=int, default=None, help="training examples per task")
    p.add_argument("--dev", type=int, default=None, help="dev examples per task (and MNLI split)")
    p.add_argument("--test", type=int, default=None, help="test examples per task (and MNLI split)")
    p.add_argument("--corpus-lines", type=int, default=2000)
    _add_common(sub.add_parser("finetune", help="fine-tune a teacher (model.teacher) on a task"))
    p = sub.add_parser("distill", help="distil a student from a fine-tuned teacher")
    _add_common(p)
    p.add_argument("--method", default="lrcbert", choices=sorted(m for m in METHODS if m != "finetune" and not m.endswith("general")),
                   help="method preset applied before the config files")
    p = sub.add_parser("general-distill", help="general distillation on a text corpus")
    _add_common(p, task=False)
    p.add_argument("--method", default="general", choices=sorted(m for m in METHODS if m.endswith("general")),
                   help="general-distillation method preset (lrcbert's 'general', or a baseline's)")
    p = sub.add_parser("augment", help="TinyBERT-style augmentation of a task's training set (a TSV)")
    _add_common(p, out_help="output TSV (the task's train layout)", task_required=True)
    p.add_argument("--n-aug", type=int, default=20, help="augmented copies per example")
    p.add_argument("--p", type=float, default=0.4, help="probability of replacing a non-stopword word")
    p.add_argument("--top-k", type=int, default=15, help="candidates per word")
    p.add_argument("--mlm", default="bert-base-uncased", help="masked LM for candidates (hub id, path)")
    p.add_argument("--glove", default=None, help="GloVe text file for multi-piece words")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--max-examples", type=int, default=None)
    p = sub.add_parser("evaluate", help="dev metrics and test predictions of a saved classifier")
    _add_common(p)
    p.add_argument("--model", required=True, help="save_pretrained folder or hub id")
    p = sub.add_parser("case-stats", help="per-example predictions and layer MSE / angular distance to the "
                                          "teacher (model.teacher) of finished runs (Table 5)")
    _add_common(p, out_help="output JSON", task_required=True)
    p.add_argument("--run", action="append", required=True, metavar="NAME=FOLDER", help="a finished run (repeatable)")
    p = sub.add_parser("robustness", help="dev accuracy of finished runs under embedding-output perturbations")
    _add_common(p, out_help="output JSON", task_required=True)
    p.add_argument("--run", action="append", required=True, metavar="NAME=FOLDER", help="a finished run (repeatable)")
    p.add_argument("--eps", type=float, nargs="+", required=True, help="perturbation sizes (L2, per example)")
    p.add_argument("--directions", nargs="+", default=["random", "gradient"], choices=["random", "gradient"])
    p.add_argument("--norm", default="per_example", choices=["per_example", "batch"])
    p.add_argument("--seed", type=int, default=0, help="seed of the random directions")
    p = sub.add_parser("bench", help="speed benchmark: step vs floor, padding, inference, ONNX, teacher cache")
    p.add_argument("--config", action="append", default=[], help="YAML config file (task and data of the ONNX dev set)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a config key")
    p.add_argument("--out", default="results/bench.json", help="figures as JSON")
    p.add_argument("--md", default="results/bench.md", help="figures as a Markdown table")
    p.add_argument("--work", default="runs/bench", help="folder for the trained student, ONNX files and caches")
    p.add_argument("--quick", action="store_true", help="tiny models and workloads (smoke runs)")
    p.add_argument("--student", default=None, help="a trained student (save_pretrained folder) for the ONNX section")
    p.add_argument("--repeats", type=int, default=None, help="timed repeats per measurement")
    p.add_argument("--sections", default="step,padding,inference,onnx,cache", help="comma-separated subset")
    p.add_argument("--no-bf16", action="store_true", help="do not measure bf16 autocast")
    p.add_argument("--compile", action="store_true", help="also measure torch.compile (slow to compile on CPU)")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    return ap


KINDS = {"finetune": "finetune", "distill": "distill", "general-distill": "general"}


def command_config(command: str, method: str | None, task: str | None, files=(), overrides=()):
    """The configuration a ``lrcbert <command>`` call runs with: defaults <- the method preset (``--method``, or
    the command's own: finetune, general) with the sections it sets <- config files <- ``--set`` overrides <- the
    task. The workflow uses it too, to know the config hash a run of the current configuration must carry."""
    load_plugins()
    name = method or KINDS.get(command) or command
    base = get_method(name) if name in METHODS else {"method": {"name": name}}
    return load_config(files, list(overrides) + ([f"task={task}"] if task else []), base=base)


def main(argv=None) -> int:
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    args = build_parser().parse_args(argv)
    if args.command == "make-synthetic":
        from .data import DataError
        from .synthetic import make_synthetic
        sizes = {k: v for k, v in (("train", args.train), ("dev", args.dev), ("test", args.test)) if v}
        try:
            out = make_synthetic(args.out, seed=args.seed, sizes=sizes or None, corpus_lines=args.corpus_lines)
        except (DataError, ValueError, OSError) as e:
            print(f"lrcbert: error: {e}", file=sys.stderr)
            return 2
        print(f"wrote generated GLUE data to {args.out}")
        return 0 if out else 1
    import datasets
    import transformers
    datasets.disable_progress_bars()                 # keep logs to the training bar and real messages
    transformers.utils.logging.disable_progress_bar()
    if args.command == "bench":
        return _bench(args)
    from .data import DataError
    from .engine import TrainingDiverged
    from .models import ModelError
    from .analysis import AnalysisError
    from .run import Preempted, RunError, evaluate_checkpoint, run
    kind = KINDS.get(args.command)
    try:
        cfg = command_config(args.command, getattr(args, "method", None), getattr(args, "task", None),
                             args.config, args.set)
        if args.command == "evaluate":
            result = evaluate_checkpoint(cfg, args.model, args.out)
        elif args.command == "augment":
            result = _augment(cfg, args)
        elif args.command in ("case-stats", "robustness"):
            result = _analysis(cfg, args)
        else:
            result = run(cfg, args.out, kind)
    except Preempted as e:
        print(f"lrcbert: {e}", file=sys.stderr)
        return EXIT_PREEMPTED
    except (ConfigError, DataError, ModelError, RunError, TrainingDiverged, AnalysisError, ValueError, OSError) as e:
        print(f"lrcbert: error: {e}", file=sys.stderr)
        return 2
    print(json.dumps(result, indent=2))
    return 0


def _bench(args) -> int:
    import torch
    from .bench import SECTIONS, bench
    from .data import DataError
    from .models import ModelError
    if args.threads:
        torch.set_num_threads(args.threads)
    sections = [s.strip() for s in args.sections.split(",") if s.strip()]
    unknown = sorted(set(sections) - set(SECTIONS))
    try:
        if unknown:
            raise ValueError(f"--sections: unknown section(s) {unknown}; known: {', '.join(SECTIONS)}")
        result = bench(args.out, args.md, sections=sections, cfg_files=args.config, overrides=args.set,
                       quick=args.quick, student=args.student, repeats=args.repeats, work=args.work,
                       bf16=not args.no_bf16, compile=args.compile)
    except (ConfigError, DataError, ModelError, ValueError, OSError) as e:
        print(f"lrcbert: error: {e}", file=sys.stderr)
        return 2
    print(json.dumps({k: v for k, v in result.items() if not isinstance(v, dict)}, indent=2))
    return 0


def _augment(cfg, args) -> dict:
    from .augment import AugmentConfig, augment_task
    from .tasks import get_task
    aug = AugmentConfig(p=args.p, n_aug=args.n_aug, top_k=args.top_k, mlm=args.mlm, glove=args.glove,
                        seed=args.seed, max_examples=args.max_examples)
    return augment_task(cfg, get_task(args.task), args.out, aug)


def _runs(items: list[str]) -> dict:
    runs = {}
    for item in items:
        name, sep, folder = item.partition("=")
        if not sep or not name or not folder:
            raise ValueError(f"--run {item!r} is not of the form NAME=FOLDER")
        runs[name] = folder
    return runs


def _analysis(cfg, args) -> dict:
    from .analysis import case_stats, robustness
    from .runinfo import atomic_write_json
    from .tasks import get_task
    split = get_task(args.task).name            # the evaluation split: "mnli" means MNLI-m
    if args.command == "case-stats":
        result = case_stats(cfg, _runs(args.run), split)
    else:
        result = robustness(cfg, _runs(args.run), split, args.eps, args.directions, args.norm, args.seed)
    atomic_write_json(args.out, result)
    return {"out": args.out, "runs": sorted(result["runs"])}


if __name__ == "__main__":
    sys.exit(main())
