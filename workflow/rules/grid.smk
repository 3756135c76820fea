"""Helpers shared by the rules, part 2 of 3 (after rules/common.smk): the experiment grid derived from the
configuration: the teacher runs, the systems and their tasks, seeds and learning rates, run folders, the ``--set``
arguments of every run (checked by lrcbert before any job starts), the tables' systems and the targets."""

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
_method_keys = sorted(k for k in flatten_set(DIST["set"], "distillation.set") if k.startswith("method."))
if _method_keys:  # they would override every method's own preset (a baseline's temperature, an ablation's split)
    raise problem(
        "distillation.set",
        f"sets {', '.join(_method_keys)} for every distillation system, baselines and ablations included, which "
        "overrides each method's own preset; give method keys in systems.<name>.set",
    )
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
