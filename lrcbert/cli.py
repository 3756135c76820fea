"""Command line: ``lrcbert {make-synthetic, finetune, distill, general-distill, augment, evaluate, case-stats,
robustness, bench, push}``.

Every training command takes ``--config FILE`` (repeatable, later files win) and ``--set key=value``
overrides (dotted keys of ``lrcbert.config``), and writes a run folder ``--out``.

Errors a user can cause (configuration, data, model files, the file system, Ctrl-C) end the command with one
line ``lrcbert: error: ...`` naming the culprit and exit status 2 (Ctrl-C outside training: 130); any other
exception is a bug and shows its traceback. ``lrcbert --debug ...`` shows the traceback of every error.
Parsing the command line and loading the configuration import neither torch nor transformers.
"""

from __future__ import annotations

import argparse
import functools
import json
import math
import os
import sys

from .assemble import KINDS, command_config, method_choices
from .config import ConfigError
from .log import setup as setup_logging
from .presets import METHODS, load_plugins

EXIT_USER_ERROR = 2
EXIT_PREEMPTED = 75  # EX_TEMPFAIL: try again (Snakemake retries, SLURM requeues); the run resumes
EXIT_INTERRUPTED = 130  # 128 + SIGINT
# error classes a user causes (module, class); a module not imported yet cannot have raised its error
USER_ERRORS = (
    ("lrcbert.config", "ConfigError"),
    ("lrcbert.data", "DataError"),
    ("lrcbert.models", "ModelError"),
    ("lrcbert.run", "RunError"),
    ("lrcbert.engine", "TrainingDiverged"),
    ("lrcbert.analysis", "AnalysisError"),
    ("yaml", "YAMLError"),
    ("safetensors", "SafetensorError"),
    ("builtins", "OSError"),
)


def _add_common(
    p: argparse.ArgumentParser, task: bool = True, out_help: str = "run folder", task_required: bool = False
):
    p.add_argument("--config", action="append", default=[], help="YAML config file (repeatable)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a config key")
    if task:
        p.add_argument(
            "--task", required=task_required, help="GLUE task (cola, sst2, mrpc, stsb, qqp, mnli, mnli_mm, qnli, rte)"
        )
    p.add_argument("--out", required=True, help=out_help)


class _Formatter(argparse.HelpFormatter):
    def _expand_help(self, action):
        if isinstance(action.choices, Presets):  # listing them would load the plug-ins (torch) for --help
            return action.help
        return super()._expand_help(action)


class _Parser(argparse.ArgumentParser):
    """argparse that reports a command-line mistake on one line (and exit status 2, as argparse does)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **{"formatter_class": _Formatter, **kwargs})

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _number(kind: type, low: float, high: float = float("inf"), low_open: bool = False):
    """An argparse type: a finite ``kind`` in [low, high] (or (low, high] with ``low_open``)."""

    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not {'an integer' if kind is int else 'a number'}") from None
        if not math.isfinite(value) or not (low < value if low_open else low <= value) or not value <= high:
            bounds = f"{'(' if low_open else '['}{low:g}, {high:g}]"
            raise argparse.ArgumentTypeError(f"{text} is not in {bounds}")
        return value

    parse.__name__ = kind.__name__
    return parse


COUNT, POSITIVE_INT = _number(int, 0), _number(int, 1)


class Presets:
    """The method presets a command accepts, as argparse ``choices``: LRC-BERT's own are known without torch; the
    plug-ins' (the baselines, which import torch) are loaded only for a name that is not one of LRC-BERT's, or when
    the whole list is read (an error message, ``sorted(choices)``)."""

    def __init__(self, general: bool):
        self.general = general

    def names(self) -> list[str]:
        return method_choices("general-distill" if self.general else "distill", plugins=False)

    def __contains__(self, name) -> bool:
        if name not in METHODS:
            load_plugins()
        return name in self.names()

    def __iter__(self):
        load_plugins()
        return iter(self.names())


def build_parser() -> argparse.ArgumentParser:
    ap = _Parser(prog="lrcbert", description="LRC-BERT distillation and its baselines")
    ap.add_argument("--debug", action="store_true", help="show the full traceback of any error")
    loud = ap.add_mutually_exclusive_group()
    loud.add_argument("-q", "--quiet", action="store_true", help="log warnings and errors only")
    loud.add_argument(
        "-v",
        "--verbose",
        action="store_true",
        help="log debug messages and the libraries' own reports (transformers' load reports)",
    )
    debug = argparse.ArgumentParser(add_help=False)  # --debug, --quiet, --verbose after the command work too
    debug.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help=argparse.SUPPRESS)
    debug.add_argument("-q", "--quiet", action="store_true", default=argparse.SUPPRESS, help=argparse.SUPPRESS)
    debug.add_argument("-v", "--verbose", action="store_true", default=argparse.SUPPRESS, help=argparse.SUPPRESS)
    sub = ap.add_subparsers(dest="command", required=True, parser_class=_Parser)
    command = functools.partial(sub.add_parser, parents=[debug])
    p = command("make-synthetic", help="write a generated GLUE-format data set")
    p.add_argument(
        "--out",
        required=True,
        metavar="DIR",
        help="folder to write (one folder per GLUE task, corpus.txt and the README.txt marker); it must be new, "
        "empty, or an earlier make-synthetic folder (then rewritten); use it as data.path with data.source=synthetic",
    )
    p.add_argument(
        "--seed",
        type=COUNT,
        default=0,
        help="seed of the generated data; the same seed gives identical files (default %(default)s)",
    )
    p.add_argument("--train", type=POSITIVE_INT, default=None, help="training examples per task (default 512)")
    p.add_argument("--dev", type=POSITIVE_INT, default=None, help="dev examples per task and MNLI split (default 128)")
    p.add_argument("--test", type=POSITIVE_INT, default=None, help="test examples per task and MNLI split (default 64)")
    p.add_argument(
        "--corpus-lines",
        type=COUNT,
        default=2000,
        metavar="N",
        help="lines of corpus.txt, the general-distillation corpus (data.corpus) (default %(default)s)",
    )
    _add_common(command("finetune", help="fine-tune a teacher (model.teacher) on a task"), task_required=True)
    p = command("distill", help="distil a student from a fine-tuned teacher")
    _add_common(p, task_required=True)
    p.add_argument(
        "--method",
        default="lrcbert",
        metavar="NAME",
        choices=Presets(general=False),
        help=f"method preset applied before the config files: LRC-BERT's "
        f"({', '.join(Presets(general=False).names())}) or a baseline's (e.g. distilbert, pkd, "
        "tinybert, codir, ackd; an unknown name lists them all); default lrcbert",
    )
    p = command("general-distill", help="general distillation on a text corpus")
    _add_common(p, task=False)
    p.add_argument(
        "--method",
        default="general",
        metavar="NAME",
        choices=Presets(general=True),
        help="general-distillation method preset: LRC-BERT's 'general' or a baseline's (tinybert_general); "
        "default general",
    )
    p = command("augment", help="TinyBERT-style augmentation of a task's training set (a TSV)")
    _add_common(p, out_help="output TSV (the task's train layout)", task_required=True)
    p.add_argument("--n-aug", type=COUNT, default=20, help="augmented copies per example")
    p.add_argument("--p", type=_number(float, 0, 1), default=0.4, help="probability of replacing a non-stopword word")
    p.add_argument("--top-k", type=POSITIVE_INT, default=15, help="candidates per word")
    p.add_argument("--mlm", default="bert-base-uncased", help="masked LM for candidates (hub id, path)")
    p.add_argument("--glove", default=None, help="GloVe text file for multi-piece words")
    p.add_argument("--seed", type=COUNT, default=0)
    p.add_argument("--max-examples", type=POSITIVE_INT, default=None)
    p = command("evaluate", help="dev metrics and test predictions of a saved classifier")
    _add_common(p, task_required=True)
    p.add_argument("--model", required=True, help="save_pretrained folder or hub id")
    p = command(
        "case-stats",
        help="per-example predictions and layer MSE / angular distance to the "
        "teacher (model.teacher) of finished runs (Table 5)",
    )
    _add_common(p, out_help="output JSON", task_required=True)
    p.add_argument("--run", action="append", required=True, metavar="NAME=FOLDER", help="a finished run (repeatable)")
    p = command("robustness", help="dev accuracy of finished runs under embedding-output perturbations")
    _add_common(p, out_help="output JSON", task_required=True)
    p.add_argument("--run", action="append", required=True, metavar="NAME=FOLDER", help="a finished run (repeatable)")
    p.add_argument(
        "--eps", type=_number(float, 0), nargs="+", required=True, help="perturbation sizes (L2, per example)"
    )
    p.add_argument("--directions", nargs="+", default=["random", "gradient"], choices=["random", "gradient"])
    p.add_argument("--norm", default="per_example", choices=["per_example", "batch"])
    p.add_argument("--seed", type=COUNT, default=0, help="seed of the random directions")
    p = command("bench", help="speed benchmark: step vs floor, padding, inference, ONNX, teacher cache")
    p.add_argument("--config", action="append", default=[], help="YAML config file (task and data of the ONNX dev set)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a config key")
    p.add_argument("--out", default="results/bench.json", help="figures as JSON")
    p.add_argument("--md", default="results/bench.md", help="figures as a Markdown table")
    p.add_argument("--work", default="runs/bench", help="folder for the trained student, ONNX files and caches")
    p.add_argument("--quick", action="store_true", help="tiny models and workloads (smoke runs)")
    p.add_argument("--student", default=None, help="a trained student (save_pretrained folder) for the ONNX section")
    p.add_argument("--repeats", type=POSITIVE_INT, default=None, help="timed repeats per measurement")
    p.add_argument("--sections", default="step,padding,inference,onnx,cache", help="comma-separated subset")
    p.add_argument("--no-bf16", action="store_true", help="do not measure bf16 autocast")
    p.add_argument("--compile", action="store_true", help="also measure torch.compile (slow to compile on CPU)")
    p.add_argument("--threads", type=POSITIVE_INT, default=None, help="torch CPU threads")
    p = command(
        "push", help="upload a finished run's model/ folder (weights, tokenizer, model card) to the Hugging Face hub"
    )
    p.add_argument("run_dir", help="a finished run folder (holds metrics.json and model/)")
    p.add_argument("--repo-id", required=True, help="hub repository ORG/NAME (created if absent)")
    p.add_argument("--private", action="store_true", help="create the repository as private")
    p.add_argument("--endpoint", default=None, help="hub endpoint (default: huggingface_hub's, i.e. HF_ENDPOINT)")
    _add_verdict_commands(sub)
    return ap


def _add_verdict_commands(sub) -> None:
    """``lrcbert forecast`` (device-hours of the planned grid) and ``lrcbert status`` (progress of a running grid),
    both from the workflow's plan (``snakemake results/plan.json``); see lrcbert/forecast.py, lrcbert/progress.py."""
    p = sub.add_parser("forecast", help="device-hours of the workflow's planned grid, timed on this device")
    p.add_argument(
        "--plan", default="results/plan.json", help="the workflow's plan (lrcbert status says how to make it)"
    )
    p.add_argument(
        "--config",
        action="append",
        default=[],
        metavar="WORKFLOW_CONFIG",
        help="workflow config file(s): write the plan for them first (runs snakemake; repeatable)",
    )
    p.add_argument("--out", default=None, help="Markdown output (default: print only)")
    p.add_argument("--json", default=None, help="JSON output (every job's steps and seconds)")
    p.add_argument("--corpus-lines", type=int, default=None, help="corpus size to assume if not written yet")
    p.add_argument(
        "--steps",
        type=int,
        default=3,
        help="timed steps per architecture, at least (after one warm-up step; more until 0.5 s of them, at most 30)",
    )
    p.add_argument(
        "--time-batch",
        type=int,
        default=None,
        help="time larger batches at this size and scale linearly (quicker on a CPU; approximate)",
    )
    p.add_argument("--by-shape", action="store_true", help="one timing per model shape for all methods (approximate)")
    p = sub.add_parser("status", help="progress of the workflow's grid: finished/running/failed/missing runs")
    p.add_argument(
        "--plan", default="results/plan.json", help="the workflow's plan (lrcbert status says how to make it)"
    )
    p.add_argument("--out", default=None, help="Markdown output (default: print only)")
    p.add_argument("--stale-minutes", type=float, default=30.0, help="a run silent this long counts as failed")


def _verdict_command(args) -> int:
    from .forecast import ForecastError

    try:
        if args.command == "forecast":
            from .forecast import main as forecast
            from .forecast import write_plan

            if args.config:  # Snakemake's output goes to a log file (named on failure), not to the terminal
                write_plan(args.config, args.plan)
            forecast(args.plan, args.out, args.json, args.corpus_lines, args.steps, args.time_batch, args.by_shape)
        else:
            from .progress import main as progress

            progress(args.plan, args.out, args.stale_minutes)
    except (ForecastError, ConfigError, OSError) as e:
        print(f"lrcbert: error: {e}", file=sys.stderr)
        return 2
    return 0


def _user_error(e: BaseException) -> bool:
    return any(isinstance(e, getattr(sys.modules.get(module), name, ())) for module, name in USER_ERRORS)


def one_line(e: BaseException) -> str:
    """An error's message on one line; an OSError names its file."""
    if isinstance(e, OSError) and e.strerror and e.filename and type(e).__str__ is OSError.__str__:
        text = f"{e.filename}: {e.strerror}" + (f" (and {e.filename2})" if e.filename2 else "")
    else:
        text = str(e) or type(e).__name__
    if type(e).__module__.startswith("safetensors"):
        text = f"cannot read a safetensors file: {text}"
    return " ".join(text.split())


def main(argv=None) -> int:
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as e:  # --help, or a command-line mistake (already reported on one line)
        return e.code
    setup_logging("quiet" if args.quiet else "verbose" if args.verbose else "normal")
    try:
        return _command(args)
    except KeyboardInterrupt:
        if args.debug:
            raise
        print("lrcbert: interrupted (Ctrl-C)", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as e:
        preempted = getattr(sys.modules.get("lrcbert.run"), "Preempted", ())
        if isinstance(e, preempted):
            print(f"lrcbert: {one_line(e)}", file=sys.stderr)
            return EXIT_PREEMPTED
        if args.debug or not _user_error(e):
            raise
        print(f"lrcbert: error: {one_line(e)}", file=sys.stderr)
        return EXIT_USER_ERROR


def _quiet_libraries() -> None:
    import datasets
    import transformers

    datasets.disable_progress_bars()  # keep logs to the training bar and real messages
    transformers.utils.logging.disable_progress_bar()


def _command(args) -> int:
    if args.command == "make-synthetic":
        from .synthetic import make_synthetic  # a folder it did not make: DataError, one line (main)

        sizes = {k: v for k, v in (("train", args.train), ("dev", args.dev), ("test", args.test)) if v is not None}
        out = make_synthetic(args.out, seed=args.seed, sizes=sizes or None, corpus_lines=args.corpus_lines)
        print(f"wrote generated GLUE data to {args.out}")
        return 0 if out else 1
    if args.command == "push":
        return _push(args)
    if args.command == "bench":
        _quiet_libraries()
        return _bench(args)
    if args.command in ("forecast", "status"):
        return _verdict_command(args)
    kind = KINDS.get(args.command)
    cfg = command_config(
        args.command, getattr(args, "method", None), getattr(args, "task", None), args.config, args.set
    )
    _quiet_libraries()
    from .run import evaluate_checkpoint, run

    if args.command == "evaluate":
        result = evaluate_checkpoint(cfg, args.model, args.out)
    elif args.command == "augment":
        result = _augment(cfg, args)
    elif args.command in ("case-stats", "robustness"):
        result = _analysis(cfg, args)
    else:
        result = run(cfg, args.out, kind)
    print(json.dumps(result, indent=2))
    return 0


def _bench(args) -> int:
    import torch

    from .bench import SECTIONS, bench

    if args.threads:
        torch.set_num_threads(args.threads)
    sections = [s.strip() for s in args.sections.split(",") if s.strip()]
    unknown = sorted(set(sections) - set(SECTIONS))
    if unknown:
        raise ConfigError(f"--sections: unknown section(s) {unknown}; known: {', '.join(SECTIONS)}")
    result = bench(
        args.out,
        args.md,
        sections=sections,
        cfg_files=args.config,
        overrides=args.set,
        quick=args.quick,
        student=args.student,
        repeats=args.repeats,
        work=args.work,
        bf16=not args.no_bf16,
        compile=args.compile,
    )
    print(json.dumps({k: v for k, v in result.items() if not isinstance(v, dict)}, indent=2))
    return 0


def _push(args) -> int:
    from huggingface_hub import constants
    from huggingface_hub.errors import HfHubHTTPError

    from .modelcard import push

    if constants.HF_HUB_OFFLINE:
        print("lrcbert: error: HF_HUB_OFFLINE is set; unset it to upload to the hub", file=sys.stderr)
        return EXIT_USER_ERROR
    try:
        url = push(args.run_dir, args.repo_id, private=args.private, endpoint=args.endpoint)
    except (ValueError, OSError, HfHubHTTPError) as e:
        print(f"lrcbert: error: {one_line(e)}", file=sys.stderr)
        return EXIT_USER_ERROR
    print(json.dumps({"repo_id": args.repo_id, "commit": url}, indent=2))
    return 0


def _augment(cfg, args) -> dict:
    from .augment import AugmentConfig, augment_task
    from .tasks import get_task

    aug = AugmentConfig(
        p=args.p,
        n_aug=args.n_aug,
        top_k=args.top_k,
        mlm=args.mlm,
        glove=args.glove,
        seed=args.seed,
        max_examples=args.max_examples,
    )
    return augment_task(cfg, get_task(args.task), args.out, aug)


def _runs(items: list[str]) -> dict:
    runs = {}
    for item in items:
        name, sep, folder = item.partition("=")
        if not sep or not name or not folder:
            raise ConfigError(f"--run {item!r} is not of the form NAME=FOLDER")
        runs[name] = folder
    return runs


def _analysis(cfg, args) -> dict:
    from .analysis import case_stats, robustness
    from .runinfo import atomic_write_json
    from .tasks import get_task

    split = get_task(args.task).name  # the evaluation split: "mnli" means MNLI-m
    if args.command == "case-stats":
        result = case_stats(cfg, _runs(args.run), split)
    else:
        result = robustness(cfg, _runs(args.run), split, args.eps, args.directions, args.norm, args.seed)
    atomic_write_json(args.out, result)
    return {"out": args.out, "runs": sorted(result["runs"])}


if __name__ == "__main__":
    sys.exit(main())
