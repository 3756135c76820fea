"""The workflow scripts' library (workflow/scripts/*.py import it; rules/common.smk puts the repository on their
PYTHONPATH). Reading run folders: dev scores from ``metrics.json``, parameter counts, and dev selection of the
learning rate.

A run's *selection score* is the mean of the headline dev scores (``score``, x100) of its evaluation splits
(MNLI: matched and mismatched together). For a grid of learning rates, the lr with the best mean selection score
over the seeds that finished wins; ties go to the lr listed first.
"""

from __future__ import annotations

import contextlib
import functools
import json
import math
import struct
import traceback
from pathlib import Path

from .markdown import md  # noqa: F401 (the scripts take md from here)


@contextlib.contextmanager
def job_log(smk):
    """The start of every script a rule runs through ``script:``, ``with job_log(snakemake) as smk:``: inside,
    everything the script prints (stdout, stderr, warnings, and the traceback of an uncaught exception) goes
    to the rule's ``log:`` file."""
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
    return [f"# {md(title)}", ""] + ([SMOKE_NOTE, ""] if data_source == "synthetic" else [])


def write_table(text: str, md: str | Path, frame=None, csv: str | Path | None = None) -> None:
    """A results page and (given) the CSV behind it, each written atomically (lrcbert's temp file + rename)."""
    from .runinfo import atomic_write_text

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
    from .assemble import command_config

    return command_config(command, method, task, (), list(sets)).hash()


def score_problem(run: str | Path) -> str | None:
    """Why a run's dev scores cannot be trusted (None: they can): every dev metric of every split in its
    ``metrics.json`` is recomputed from the run's own dev predictions file (``predictions/dev_<split>.tsv``, the
    predictions and the gold labels it holds) and must agree to a relative 1e-6 (STS-B's scores to 0.001 points; its
    predictions are stored with every digit). A missing or unreadable predictions file is a problem too."""
    from .evaluation import dev_predictions_file, scores_from_predictions
    from .tasks import TASKS

    run = Path(run)
    for split, found in sorted(read_json(run / "metrics.json").get("splits", {}).items()):
        if split not in TASKS or not isinstance(found, dict) or found.get("split") != "dev":
            continue
        path = run / dev_predictions_file(split)
        if not path.is_file():
            return f"unverifiable: {path} is missing (its dev scores cannot be recomputed)"
        try:
            redone = scores_from_predictions(TASKS[split], path)
        except (ValueError, OSError) as e:
            return f"unverifiable: {e}"
        regression = TASKS[split].is_regression
        for key, value in redone.items():
            if key not in found:
                continue
            tol = (1e-3 if key == "score" else 1e-5) if regression else 0.0
            try:
                ok = math.isclose(float(found[key]), value, rel_tol=1e-6, abs_tol=tol)
            except (TypeError, ValueError):
                ok = False
            if not ok:
                return (
                    f"scores do not match predictions: {run / 'metrics.json'} has {split} {key} {found[key]!r}, "
                    f"its predictions {path} give {value:.6g}"
                )
    return None


def run_problem(run: str | Path, expect: dict | None) -> str | None:
    """Why a run must not enter a table (None: it may). A run counts only if it finished (``metrics.json``, and
    ``run.json`` with status ``finished``) under the configuration the workflow's config implies now: its
    ``config_hash`` must equal the hash of the lrcbert command in ``expect`` (command, method, task, sets, and
    ``teacher_from``: the selected.json whose ``model`` is the teacher); and its dev scores must be those of its
    own dev predictions (``score_problem``)."""
    run = Path(run)
    if not run.is_dir():
        return f"missing: run folder {run} does not exist"
    if not (run / "metrics.json").is_file():
        return "missing: no metrics.json"
    record = read_json(run / "run.json") if (run / "run.json").is_file() else {}
    if record.get("status") != "finished":
        return f"unfinished: run.json status is {record.get('status', 'absent')!r}"
    why = score_problem(run)
    if why:
        return why
    if expect and "command" in expect:
        sets = list(expect["sets"])
        if expect.get("teacher_from"):
            sets.append(f"model.teacher={json.dumps(read_json(expect['teacher_from'])['model'])}")  # as jsonget --yaml
        want = _expected_hash(expect["command"], expect.get("method"), expect["task"], tuple(sets))
        have = read_json(run / "metrics.json").get("config_hash")
        if have != want or record.get("config_hash") != want:
            return f"stale: config hash {have} but the current config implies {want}"
    return None


def md_frame(frame):
    """A table (pandas DataFrame) with every cell and column title escaped by ``md``, for ``to_markdown``."""
    import numbers

    out = frame.astype(object).map(lambda x: x if x is None or isinstance(x, numbers.Number) else md(x))
    out.columns = [md(c) for c in frame.columns]
    return out


def check_cited(devs: list[dict]) -> None:
    """Refuse (ValueError naming the dev file's system and the folder) a dev result that cites a run folder which
    no longer exists: a page must not cite runs that are gone (collect_dev runs again once they are rerun)."""
    for dev in devs:
        for task, entry in dev.get("tasks", {}).items():
            for seed, run in entry.get("seeds", {}).items():
                if not Path(run["run"]).is_dir():
                    raise ValueError(
                        f"results/dev/{dev.get('system')}.json cites run folder {run['run']} (task {task}, seed "
                        f"{seed}), which no longer exists; rerun it (snakemake plans it again) or collect_dev"
                    )


def run_identity(run: str | Path) -> dict | None:
    """The ``identity`` a run recorded in its metrics.json (or run.json); None for a run of an older suite."""
    for name in ("metrics.json", "run.json"):
        f = Path(run) / name
        found = read_json(f).get("identity") if f.is_file() else None
        if isinstance(found, dict) and found.get("run_id"):
            return found
    return None


def eval_data(ident: dict) -> dict:
    """The evaluation data of an identity: its ``<split>/dev`` and ``<split>/test`` hashes (the training file may
    differ between the runs of a task on purpose: augmented data)."""
    return {k: v for k, v in (ident.get("data") or {}).items() if k.endswith(("/dev", "/test"))}


def task_reference(runs: list, teacher_from: str | None) -> dict:
    """What every run of one task must share: the evaluation data and the teacher. From the selected teacher run
    (``teacher_from``: its selected.json) where it has an identity; else the evaluation data most runs of the task
    read (ties: the first run's)."""
    ref = {"data": None, "data_from": None, "teacher": None, "teacher_from": None}
    selected = read_json(teacher_from) if teacher_from and Path(teacher_from).is_file() else {}
    if selected.get("run"):  # a selection without a run folder (a hand-written one) gives no reference
        trun = Path(selected["run"])
        ident = run_identity(trun)
        if ident:
            ref.update(data=eval_data(ident), data_from=f"the selected teacher run {trun}")
        for name in ("metrics.json", "run.json"):
            if (trun / name).is_file() and read_json(trun / name).get("model_hash"):
                ref.update(teacher=read_json(trun / name)["model_hash"], teacher_from=str(trun))
                break
    if ref["data"] is None:
        seen = [json.dumps(eval_data(i), sort_keys=True) for i in map(run_identity, runs) if i]
        if seen:
            best = max(seen, key=seen.count)
            ref.update(data=json.loads(best), data_from=f"{seen.count(best)} of the task's {len(seen)} runs")
    return ref


def identity_problem(run: str | Path, ref: dict) -> str | None:
    """Why a run does not belong with the other runs of its task (None: it does, or it has no identity, which the
    table states): other evaluation data, or a teacher other than the selected teacher run's saved model."""
    ident = run_identity(run)
    if ident is None:
        return None
    data = eval_data(ident)
    for key in sorted(set(data) & set(ref.get("data") or {})):
        if data[key] != ref["data"][key]:
            return f"other data: its {key} has hash {data[key][:12]}, {ref['data_from']} read {ref['data'][key][:12]}"
    if ref.get("teacher") and ident.get("teacher") and ident["teacher"] != ref["teacher"]:
        return (
            f"another teacher: it was distilled from weights {ident['teacher'][:12]}, the selected teacher run "
            f"{ref['teacher_from']} saved {ref['teacher'][:12]}"
        )
    return None


def suite_text(suite) -> str:
    if not isinstance(suite, dict):
        return "no identity (a suite older than run identities)"
    return f"{suite.get('commit') or 'unknown commit'}{' (edited)' if suite.get('dirty') else ''}"


def provenance_note(devs: list[dict]) -> str:
    """The line under a table on the suite versions its runs were made by (one version: said in a few words;
    several, or runs without an identity: each version with its run count), from the ``suite`` of each seed in
    ``results/dev/{system}.json``."""
    counts = {}
    for dev in devs:
        for entry in dev.get("tasks", {}).values():
            for run in entry.get("seeds", {}).values():
                key = suite_text(run.get("suite"))
                counts[key] = counts.get(key, 0) + 1
    if not counts:
        return ""
    if len(counts) == 1 and not next(iter(counts)).startswith("no identity"):
        return f"All {sum(counts.values())} runs above were made by one suite version: {md(next(iter(counts)))}.\n"
    listed = "; ".join(f"{md(k)}: {n} run{'s' * (n != 1)}" for k, n in sorted(counts.items()))
    return f"**Runs from {len(counts)} suite versions** (their numbers may differ for that reason alone): {listed}.\n"


def excluded_note(devs: list[dict]) -> str:
    """Markdown lines listing the runs left out of a table (empty when none was)."""
    lines = [
        f"- {md(dev['system'])}: {md(run)}: {md(why)}" for dev in devs for run, why in dev.get("excluded", {}).items()
    ]
    if not lines:
        return ""
    return (
        "**Runs left out** (not averaged: missing, unfinished, run under another configuration or on other data or "
        "another teacher, or with dev scores that its own dev predictions do not give; rerun "
        "them, e.g. `snakemake --forcerun <their metrics.json>`):\n\n" + "\n".join(lines) + "\n"
    )
