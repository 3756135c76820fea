"""Helpers shared by the rules, part 3 of 3 (after rules/common.smk and rules/grid.smk): what each job asks for
(memory, time, GPUs, threads), estimated by the cost model shared with ``lrcbert forecast`` (lrcbert.costs: data and
corpus sizes), how each job is launched, and the wildcard constraints."""

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
WARNING_MIN = 10  # the lead of SLURM's USR1 warning (profiles/slurm: --signal=USR1@600)
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
    """Training examples of a task, by the cost model ``lrcbert forecast`` uses too (lrcbert.costs): the generated
    data's size, the TSV file's rows, or GLUE's published size."""
    return costs.train_examples(D, task)


def corpus_lines():
    """Lines of the general-distillation corpus (lrcbert.costs: generated, corpus.max_lines or English Wikipedia's)."""
    return costs.corpus_lines(D, config["corpus"])


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
