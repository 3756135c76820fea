"""Run configuration: typed defaults, YAML files and ``key=value`` overrides, strict about unknown keys.

Every ambiguity of the paper is a key here (see README "Configuration"). A config is a tree of dataclasses;
``load_config`` merges, in order, the defaults, each YAML file, then dotted overrides such as
``train.lr=1e-4``, and refuses any key or value it does not know with a one-line error naming it.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, get_type_hints

import yaml


class ConfigError(ValueError):
    """A bad key or value in a run configuration (message names it)."""


@dataclass
class DataConfig:
    source: str = "synthetic"          # hub | tsv | synthetic
    path: str | None = None            # GLUE folder (tsv, synthetic) ; synthetic data is generated there if absent
    hub_id: str = "nyu-mll/glue"       # data set id for source=hub
    synthetic_seed: int = 0            # seed of generated data (source=synthetic)
    max_length: int = 128              # tokens per example (pair tasks: both sentences together)
    pad_to_max_length: bool = False    # False = pad each batch to its longest example
    max_train_examples: int | None = None   # keep only the first N training examples (smoke runs)
    max_eval_examples: int | None = None    # keep only the first N dev/test examples
    train_file: str | None = None      # a TSV in the task's train layout used instead of train.tsv (augmented data)
    corpus: str | None = None          # general distillation: a text file (one passage a line) or hub:ID[:CONFIG]
    corpus_text_column: str = "text"   # column of the hub corpus holding the text
    max_corpus_lines: int | None = None


@dataclass
class ModelConfig:
    teacher: str = "bert-base-uncased"      # hub id or local path (fine-tuned for distill, pre-trained otherwise)
    teacher_random_init: bool = False       # build the teacher from its config with random weights (tests)
    teacher_overrides: dict = field(default_factory=dict)   # BertConfig fields applied with random init
    tokenizer: str | None = None            # default: the teacher's own tokenizer
    student: str | None = None              # checkpoint to start the student from (e.g. general-distilled)
    student_init: str = "random"            # random | path | teacher_layers (copy teacher layers: DistilBERT, PKD)
    student_layers: list | None = None      # teacher_layers: teacher layers (1..N) copied; None = i * N / M
    student_arch: dict = field(default_factory=lambda: dict(
        num_hidden_layers=4, hidden_size=312, intermediate_size=1200, num_attention_heads=12))
    attn_implementation: str = "sdpa"       # sdpa | eager | eager_scores (TinyBERT's attention loss)


@dataclass
class MethodConfig:
    """The distillation objective: which terms, their weights over time, and the training procedure."""
    name: str = "lrcbert"
    layer_loss: str = "cos_nce"             # cos_nce | mse (BERT_M)
    representation: str = "flatten"         # flatten | cls | mean : how a layer's l x d output becomes a vector
    negatives: str = "in_batch"             # in_batch (K = B - 1) | sampled (K = num_negatives from the training set)
    projection: str = "shared"              # shared | per_layer : one W for all mapped layers, or one each
    projection_init: str = "new"            # new | student : W starts random, or is the W saved with model.student
    layer_map: list | None = None           # teacher layer for student layers 1..M; None = i * N / M
    temperature: float = 1.1
    soft_t2: bool = False                   # multiply the soft loss by tau^2
    hard_target: str = "one_hot"            # one_hot | tempered (softmax(one_hot / tau), eq. 5 as printed)
    stage_split: float = 0.8                # fraction of steps in stage 1
    stage1: dict = field(default_factory=lambda: {"layer": 1.0, "soft": 0.0, "hard": 0.0})
    stage2: dict = field(default_factory=lambda: {"layer": 1.0, "soft": 1.0, "hard": 3.0})
    perturb: bool = True                    # gradient perturbation of the embedding output (eq. 7-8)
    perturb_norm: str = "per_example"       # per_example | batch : over which slice |g|_2 is taken
    perturb_eps: float = 1.0                # step size multiplying g / |g|_2 (printed: 1)
    gather_negatives: bool = True           # data parallel: COS-NCE negatives from the global batch (K = B_global - 1)
    # baselines (see baselines/): keys their terms read; LRC-BERT ignores them
    pkd_reduction: str = "mean"             # mean | sum : PKD's [CLS] MSE averaged over elements, or summed over d
    attention_target: str = "probs"         # probs | scores : TinyBERT's attention loss on softmax output or logits
    contrast_temperature: float = 0.07      # CoDIR / ACKD InfoNCE temperature
    bank_momentum: float = 0.5              # CoDIR memory: an entry becomes normalise(m * old + (1 - m) * new)
    label_aware: bool = True                # CoDIR: negatives only from samples of other labels
    head: str = "linear"                    # linear | mlp : CoDIR's projection heads
    head_dim: int = 128                     # CoDIR: width of the projected representations
    # fidelity (docs/fidelity.md): memories of per-example vectors (lrcbert/memory.py)
    num_negatives: int = 15                 # negatives=sampled: K per example, may exceed the batch
    memory_max_bytes: int = 8_000_000_000   # negatives=sampled: refuse a teacher memory larger than this
    nce_k: int = 100                        # CoDIR: negatives sampled per example from the memory
    codir_layers: str = "all"               # all | mapped : [CLS] of all layers concatenated, or per mapped pair
    codir_pool: str = "cls"                 # cls | mean : CoDIR's vector of a layer
    codir_loss: str = "nce"                 # nce | info_nce : CRD's NCE loss (eq. 18) or InfoNCE
    codir_sides: str = "two"                # two | one : student and teacher anchors, or the student anchor only
    crd_batch_scale: bool = True            # CoDIR: divide the CRD term by the batch size, as the release does
    soft_reduction: str = "batchmean"       # batchmean | mean : KD averaged over examples, or over examples x classes
    projection_bias: bool = False           # W with a bias (TinyBERT's released fit_dense has one)
    tinybert_padding: str = "masked"        # masked | all : TinyBERT's MSEs over real tokens, or every padded position
    sar_temperature: float = 1.0            # ACKD: sharpness of sample adaptive reweighting (weights ~ exp(h / t))


@dataclass
class TrainConfig:
    seed: int = 42
    epochs: float = 3.0
    max_steps: int | None = None            # overrides epochs when set
    batch_size: int = 16
    eval_batch_size: int = 64
    lr: float = 5e-5
    weight_decay: float = 0.01
    warmup: float = 0.1                     # fraction of steps of linear warm-up
    lr_schedule: str = "linear"             # linear | constant | linear_per_stage (paper: not stated)
    grad_clip: float = 1.0                  # 0 = off
    max_bad_steps: int = 0                  # non-finite steps skipped (no update) before the run stops; 0 = stop
    mixed_precision: str = "no"             # no | bf16 | fp16 (GPU)
    checkpoint_every: int = 500             # steps; 0 = only at the end
    keep_checkpoints: int = 2
    log_every: int = 1                      # steps between rows of losses.csv
    num_workers: int = 0
    stop_after_steps: int | None = None     # leave the run unfinished after N steps (tests of resume)
    teacher_cache: str = "auto"             # auto | on | off : teacher outputs computed once, memory-mapped fp16
    teacher_cache_max_bytes: int = 20_000_000_000   # auto: cache when the size estimate is below this
    length_grouped: bool = False            # batches of similar lengths (shuffled mega-batches sorted by length)
    length_group_size: int = 50             # batches per mega-batch sorted by length (length_grouped)
    compile: bool = False                   # torch.compile the student and teacher forward passes


@dataclass
class Config:
    task: str = "sst2"
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    method: MethodConfig = field(default_factory=MethodConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    def to_dict(self) -> dict:
        return asdict(self)

    def hash(self) -> str:
        """Stable short hash of what a run's results depend on: the settings that differ from the defaults,
        less the keys that only steer book-keeping (``NOT_HASHED``, so a resumed run keeps its hash). Taking
        only the differences means that a key added to the package later (with a default that keeps the old
        behaviour) leaves the hashes of existing runs, and so their resumption and aggregation, unchanged."""
        d, defaults = self.to_dict(), Config().to_dict()
        for key in NOT_HASHED:
            section, name = key.split(".")
            d[section].pop(name)
        diff = {section: ({k: v for k, v in values.items() if defaults[section].get(k, object()) != v}
                          if isinstance(values, dict) else values)
                for section, values in d.items()}
        blob = json.dumps(diff, sort_keys=True, default=str).encode()
        return hashlib.sha256(blob).hexdigest()[:12]


CHOICES = {
    "data.source": ("hub", "tsv", "synthetic"),
    "model.student_init": ("random", "path", "teacher_layers"),
    "model.attn_implementation": ("sdpa", "eager", "eager_scores"),   # eager_scores: baselines/tinybert.py
    "method.layer_loss": ("cos_nce", "mse"),
    "method.representation": ("flatten", "cls", "mean"),
    "method.negatives": ("in_batch", "sampled"),
    "method.codir_layers": ("all", "mapped"),
    "method.codir_pool": ("cls", "mean"),
    "method.codir_loss": ("nce", "info_nce"),
    "method.codir_sides": ("two", "one"),
    "method.soft_reduction": ("batchmean", "mean"),
    "method.tinybert_padding": ("masked", "all"),
    "method.projection": ("shared", "per_layer"),
    "method.projection_init": ("new", "student"),
    "method.hard_target": ("one_hot", "tempered"),
    "method.perturb_norm": ("per_example", "batch"),
    "method.pkd_reduction": ("mean", "sum"),
    "method.attention_target": ("probs", "scores"),
    "method.head": ("linear", "mlp"),
    "train.mixed_precision": ("no", "bf16", "fp16"),
    "train.lr_schedule": ("linear", "constant", "linear_per_stage"),
    "train.teacher_cache": ("auto", "on", "off"),
}
NOT_HASHED = ("train.checkpoint_every", "train.keep_checkpoints", "train.log_every", "train.num_workers",
              "train.stop_after_steps", "train.eval_batch_size")


_TYPES = {"bool": (bool,), "int": (int,), "float": (int, float), "str": (str,), "dict": (dict,),
          "list": (list,)}


def _coerce(path: str, value: Any, typ: Any) -> Any:
    """Check ``value`` against the annotated type ``typ`` (``int | None`` etc.); ints are taken for floats."""
    parts = [p.strip() for p in str(typ).split("|")]
    base = next(p for p in parts if p != "None")
    base = getattr(typ, "__name__", base) if len(parts) == 1 else base
    if value is None:
        if "None" in parts:
            return None
        raise ConfigError(f"config key '{path}' must not be null")
    if base == "float" and isinstance(value, str):   # YAML 1.1 reads "1e-4" as a string
        try:
            value = float(value)
        except ValueError:
            pass
    ok = isinstance(value, _TYPES[base]) and (base == "bool" or not isinstance(value, bool))
    if not ok:
        raise ConfigError(f"config key '{path}' must be of type {base}, got {value!r}")
    return float(value) if base == "float" else value


def _merge(obj: Any, updates: dict, prefix: str = "") -> None:
    hints = get_type_hints(type(obj))
    known = {f.name for f in fields(obj)}
    for key, value in updates.items():
        path = f"{prefix}{key}"
        if key not in known:
            raise ConfigError(f"unknown config key '{path}' (known here: {', '.join(sorted(known))})")
        current = getattr(obj, key)
        if dataclasses.is_dataclass(current):
            if not isinstance(value, dict):
                raise ConfigError(f"config key '{path}' must be a mapping, got {value!r}")
            _merge(current, value, prefix=f"{path}.")
        else:
            setattr(obj, key, _coerce(path, value, hints[key]))


def _dotted(overrides: list[str]) -> dict:
    tree: dict = {}
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"override {item!r} is not of the form key=value")
        key, raw = item.split("=", 1)
        node = tree
        parts = key.strip().split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = yaml.safe_load(raw) if raw != "" else None
    return tree


def validate(cfg: Config) -> Config:
    d = cfg.to_dict()
    for path, allowed in CHOICES.items():
        section, key = path.split(".")
        if d[section][key] not in allowed:
            raise ConfigError(f"config key '{path}' is {d[section][key]!r}; allowed: {', '.join(allowed)}")
    m, t = cfg.method, cfg.train
    if not 0.0 <= m.stage_split <= 1.0:
        raise ConfigError(f"config key 'method.stage_split' must lie in [0, 1], got {m.stage_split}")
    for stage in ("stage1", "stage2"):
        for term, w in getattr(m, stage).items():
            if not isinstance(w, (int, float)) or isinstance(w, bool) or w < 0:
                raise ConfigError(f"config key 'method.{stage}.{term}' must be a number >= 0, got {w!r}")
    if m.temperature <= 0:
        raise ConfigError(f"config key 'method.temperature' must be > 0, got {m.temperature}")
    if m.contrast_temperature <= 0 or m.sar_temperature <= 0:
        raise ConfigError("config keys 'method.contrast_temperature' and 'method.sar_temperature' must be > 0")
    if m.head_dim < 1 or not 0.0 <= m.bank_momentum < 1.0:
        raise ConfigError("config key 'method.head_dim' must be >= 1 and 'method.bank_momentum' in [0, 1); "
                          f"got {m.head_dim}, {m.bank_momentum}")
    for key in ("num_negatives", "nce_k", "memory_max_bytes"):
        if getattr(m, key) < 1:
            raise ConfigError(f"config key 'method.{key}' must be >= 1, got {getattr(m, key)}")
    if m.perturb_eps < 0:
        raise ConfigError(f"config key 'method.perturb_eps' must be >= 0, got {m.perturb_eps}")
    for key in ("batch_size", "eval_batch_size", "keep_checkpoints", "log_every", "length_group_size"):
        if getattr(t, key) < 1:
            raise ConfigError(f"config key 'train.{key}' must be >= 1, got {getattr(t, key)}")
    if t.max_bad_steps < 0:
        raise ConfigError(f"config key 'train.max_bad_steps' must be >= 0, got {t.max_bad_steps}")
    if t.batch_size < 2 and m.layer_loss == "cos_nce":
        raise ConfigError("config key 'train.batch_size' must be >= 2: COS-NCE needs other examples as negatives")
    if t.lr <= 0 or t.epochs <= 0:
        raise ConfigError("config keys 'train.lr' and 'train.epochs' must be > 0")
    if not 0.0 <= t.warmup < 1.0:
        raise ConfigError(f"config key 'train.warmup' must lie in [0, 1), got {t.warmup}")
    if cfg.data.max_length < 8 or cfg.data.max_length > 512:
        raise ConfigError(f"config key 'data.max_length' must lie in [8, 512], got {cfg.data.max_length}")
    if cfg.data.source in ("tsv",) and not cfg.data.path:
        raise ConfigError("config key 'data.path' is required when data.source is 'tsv'")
    if cfg.model.student_init == "path" and not cfg.model.student:
        raise ConfigError("config key 'model.student' is required when model.student_init is 'path'")
    if m.projection_init == "student" and cfg.model.student_init != "path":
        raise ConfigError("config key 'method.projection_init' is 'student', which takes W from the run in "
                          f"model.student, but model.student_init is {cfg.model.student_init!r}, not 'path'; "
                          "set method.projection_init=new")
    return cfg


def load_config(files: list[str | Path] = (), overrides: list[str] = (), base: dict | None = None) -> Config:
    """Defaults <- ``base`` <- each YAML file <- ``key=value`` overrides, validated."""
    cfg = Config()
    if base:
        _merge(cfg, base)
    for f in files:
        p = Path(f)
        if not p.is_file():
            raise ConfigError(f"config file not found: {p}")
        data = yaml.safe_load(p.read_text()) or {}
        if not isinstance(data, dict):
            raise ConfigError(f"config file {p} must hold a mapping")
        try:
            _merge(cfg, data)
        except ConfigError as e:
            raise ConfigError(f"{p}: {e}") from None
    _merge(cfg, _dotted(list(overrides)))
    return validate(cfg)


def config_from_dict(d: dict) -> Config:
    cfg = Config()
    _merge(cfg, d)
    return validate(cfg)
