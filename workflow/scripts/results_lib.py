"""Reading run folders: dev scores from ``metrics.json``, parameter counts, and dev selection of the learning rate.

A run's *selection score* is the mean of the headline dev scores (``score``, x100) of its evaluation splits
(MNLI: matched and mismatched together). For a grid of learning rates, the lr with the best mean selection score
over the seeds that finished wins; ties go to the lr listed first.
"""

from __future__ import annotations

import contextlib
import functools
import importlib.util
import json
import math
import struct
import sys
import traceback
from pathlib import Path

if importlib.util.find_spec("lrcbert") is None:  # not installed: the repository this workflow lives in
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))


@contextlib.contextmanager
def job_log(smk):
    """The start of every script a rule runs through ``script:``, ``with job_log(snakemake) as smk:``: inside,
    everything the script prints (stdout, stderr, warnings, and the traceback of an uncaught exception) goes
    to the rule's ``log:`` file. Importing this module also makes ``lrcbert`` importable from a clone."""
    with open(smk.log[0], "w") as log, contextlib.redirect_stdout(log), contextlib.redirect_stderr(log):
        try:
            yield smk
        except BaseException:
            traceback.print_exc()  # into the log, which Snakemake names when the job fails
            raise


def read_json(path) -> dict:
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def split_scores(run: str | Path, splits) -> dict:
    """{evaluation split: dev score} of a run (splits without a score are left out)."""
    path = Path(run) / "metrics.json"
    if not path.is_file():
        return {}
    found = read_json(path).get("splits", {})
    return {
        s: float(found[s]["score"])
        for s in splits
        if s in found and found[s].get("score") is not None and math.isfinite(float(found[s]["score"]))
    }


def selection_score(scores: dict, splits) -> float | None:
    if not splits or any(s not in scores for s in splits):
        return None
    return sum(scores[s] for s in splits) / len(splits)


def mean(values):
    values = [v for v in values if v is not None]
    return sum(values) / len(values) if values else None


def best_lr(per_lr: dict) -> str | None:
    """The lr (key) with the highest value; None values never win; ties keep the first."""
    best, best_value = None, None
    for lr, value in per_lr.items():
        if value is not None and (best_value is None or value > best_value):
            best, best_value = lr, value
    return best


def safetensors_params(path: str | Path) -> int | None:
    """Number of parameters stored in a safetensors file, read from its header (no framework needed)."""
    path = Path(path)
    if not path.is_file():
        return None
    with open(path, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(n))
    total = 0
    for name, info in header.items():
        if name == "__metadata__":
            continue
        count = 1
        for dim in info["shape"]:
            count *= dim
        total += count
    return total


def run_params(run: str | Path) -> int | None:
    """Parameters of a run's model: ``run.json`` when the run wrote one, else the saved weights."""
    run = Path(run)
    if (run / "run.json").is_file():
        params = read_json(run / "run.json").get("params")
        if params:
            return int(params)
    files = sorted((run / "model").glob("*.safetensors"))
    counts = [safetensors_params(f) for f in files if f.name != "objective.safetensors"]
    return sum(c for c in counts if c) or None


SMOKE_NOTE = (
    "> **Generated (synthetic) data and tiny models: a smoke test of the workflow. These numbers say nothing "
    "about LRC-BERT and are not comparable with the paper's.**"
)


def header(title: str, data_source: str) -> list[str]:
    """The first lines of a results page: its title and, for generated data, the smoke-test warning."""
    return [f"# {title}", ""] + ([SMOKE_NOTE, ""] if data_source == "synthetic" else [])


def write_table(text: str, md: str | Path, frame=None, csv: str | Path | None = None) -> None:
    """A results page and (given) the CSV behind it, each written atomically (lrcbert's temp file + rename)."""
    from lrcbert.runinfo import atomic_write_text

    atomic_write_text(md, text)
    if csv is not None:
        atomic_write_text(csv, frame.to_csv(index=False))


def save_figure(fig, path: str | Path) -> None:
    """The suite's figure format (tight layout, 120 dpi); the figure is closed afterwards."""
    import matplotlib.pyplot as plt

    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*")
LINESTYLES = ("-", "--", "-.", ":")


def series_style(k: int, n: int) -> dict:
    """Matplotlib style of the k-th of n curves in one plot: its own marker and line style, with markers and
    lines shrinking from the first curve to the last. Curves with identical values (common in smoke runs) then
    show as nested markers and stripes instead of the last one hiding the others."""
    bigger = n - 1 - k
    return {
        "marker": MARKERS[k % len(MARKERS)],
        "markersize": 4 + 3 * bigger,
        "linestyle": LINESTYLES[k % len(LINESTYLES)],
        "linewidth": 1.0 + min(1.2 * bigger, 4.0),
    }


def fmt(x, spec: str = ".1f", missing: str = "missing") -> str:
    return missing if x is None else format(x, spec)


@functools.cache
def _expected_hash(command: str, method: str | None, task: str, sets: tuple) -> str:
    from lrcbert.cli import command_config

    return command_config(command, method, task, (), list(sets)).hash()


def run_problem(run: str | Path, expect: dict | None) -> str | None:
    """Why a run must not enter a table (None: it may). A run counts only if it finished (``metrics.json``, and
    ``run.json`` with status ``finished``) under the configuration the workflow's config implies now: its
    ``config_hash`` must equal the hash of the lrcbert command in ``expect`` (command, method, task, sets, and
    ``teacher_from``: the selected.json whose ``model`` is the teacher)."""
    run = Path(run)
    if not (run / "metrics.json").is_file():
        return "missing: no metrics.json"
    record = read_json(run / "run.json") if (run / "run.json").is_file() else {}
    if record.get("status") != "finished":
        return f"unfinished: run.json status is {record.get('status', 'absent')!r}"
    if expect:
        sets = list(expect["sets"])
        if expect.get("teacher_from"):
            sets.append(f"model.teacher={json.dumps(read_json(expect['teacher_from'])['model'])}")  # as jsonget --yaml
        want = _expected_hash(expect["command"], expect.get("method"), expect["task"], tuple(sets))
        have = read_json(run / "metrics.json").get("config_hash")
        if have != want or record.get("config_hash") != want:
            return f"stale: config hash {have} but the current config implies {want}"
    return None


def excluded_note(devs: list[dict]) -> str:
    """Markdown lines listing the runs left out of a table (empty when none was)."""
    lines = [f"- {dev['system']}: `{run}`: {why}" for dev in devs for run, why in dev.get("excluded", {}).items()]
    if not lines:
        return ""
    return (
        "**Runs left out** (not averaged: missing, unfinished, or run under another configuration; rerun "
        "them, e.g. `snakemake --forcerun <their metrics.json>`):\n\n" + "\n".join(lines) + "\n"
    )
