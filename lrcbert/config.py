"""Run configuration: typed defaults, YAML files and ``key=value`` overrides, strict about everything.

Every ambiguity of the paper is a key here (see docs/configuration.md). A config is a tree of dataclasses;
``load_config`` merges, in order, the defaults, a method preset (``base``), each YAML file, then dotted overrides
such as ``train.lr=1e-4``. Files and overrides merge key by key at any depth: ``method.stage2.hard=5`` (or a
file giving ``method: {stage2: {hard: 5}}``) changes that weight and keeps the others. A preset (``base``)
replaces each key it names wholesale: its stage maps are complete (a term it leaves out weighs 0).

Anything not understood stops loading with one line naming the key, the value, and the file and line or the
``--set`` that gave it: unknown keys (also inside ``method.stage1/2``, ``model.student_arch`` and
``model.teacher_overrides``), wrong types (no silent casts: ``1.5`` is not an int, ``"yes"`` is not a bool),
values outside their range (every number has one; NaN and infinities are refused), repeated YAML keys and
YAML syntax errors.

Types and ranges are checked by pydantic (v2) dataclasses in strict mode: the declarations below stay plain
dataclass fields (``seed: Seed = 42``), ``asdict``/``replace`` keep working, and the range of each key is written
next to it rather than in a hand-grown checker. This module imports neither torch nor transformers, so a
config error is reported in a fraction of a second.
"""

from __future__ import annotations

import dataclasses
import difflib
import hashlib
import json
import re
from dataclasses import asdict, field, fields
from pathlib import Path
from typing import Annotated, Any, Literal, get_args, get_origin, get_type_hints

import yaml
from pydantic import ConfigDict, Field, ValidationError
from pydantic.dataclasses import dataclass
from typing_extensions import TypedDict, is_typeddict

from .errors import ConfigError  # lrcbert.config.ConfigError (defined below presets, which raise it too)

STRICT = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)
# ranges; every float is also finite (allow_inf_nan=False)
PosInt = Annotated[int, Field(ge=1)]
Count = Annotated[int, Field(ge=0)]
Seed = Annotated[int, Field(ge=0, le=2**32 - 1)]  # numpy's seeds are 32-bit
Positive = Annotated[float, Field(gt=0)]
NonNeg = Annotated[float, Field(ge=0)]
Fraction = Annotated[float, Field(ge=0, le=1)]
Share = Annotated[float, Field(ge=0, lt=1)]  # a fraction short of the whole
Number = int | float  # kept as written (the config hash sees 1 vs 1.0)
Weight = Annotated[Number, Field(ge=0)]  # a loss term's weight
Prob = Annotated[Number, Field(ge=0, le=1)]


class BertArch(TypedDict, total=False):
    """The fields of transformers' ``BertConfig`` that ``model.student_arch`` and ``model.teacher_overrides`` may
    set (tests/test_config.py checks this list against transformers)."""

    __pydantic_config__ = STRICT
    vocab_size: PosInt
    hidden_size: PosInt
    num_hidden_layers: PosInt
    num_attention_heads: PosInt
    intermediate_size: PosInt
    hidden_act: str
    hidden_dropout_prob: Prob
    attention_probs_dropout_prob: Prob
    max_position_embeddings: PosInt
    type_vocab_size: PosInt
    initializer_range: Annotated[Number, Field(ge=0)]
    layer_norm_eps: Annotated[Number, Field(gt=0)]
    pad_token_id: Count | None
    use_cache: bool
    classifier_dropout: Prob | None
    is_decoder: bool
    add_cross_attention: bool
    bos_token_id: Count | None
    eos_token_id: Count | list[Count] | None
    tie_word_embeddings: bool


@dataclass(config=STRICT)
class DataConfig:
    source: Literal["hub", "tsv", "synthetic"] = "hub"  # the same default as the workflow (config/config.yaml)
    path: str | None = None  # GLUE folder (tsv) or generated folder (synthetic: made by `lrcbert make-synthetic`)
    hub_id: str = "nyu-mll/glue"  # data set id for source=hub
    synthetic_seed: Seed = 0  # seed of generated data (source=synthetic)
    max_length: Annotated[int, Field(ge=8, le=512)] = 128  # tokens per example (pair tasks: both sentences)
    pad_to_max_length: bool = False  # False = pad each batch to its longest example
    max_train_examples: PosInt | None = None  # keep only the first N training examples (smoke runs)
    max_eval_examples: PosInt | None = None  # keep only the first N dev/test examples
    train_file: str | None = None  # a TSV in the task's train layout used instead of train.tsv (augmented data)
    corpus: str | None = None  # general distillation: a text file (one passage a line) or hub:ID[:CONFIG]
    corpus_text_column: str = "text"  # column of the hub corpus holding the text
    max_corpus_lines: PosInt | None = None
    # the share of a dev or test split whose text (case and whitespace aside) is also in the training split above
    # which the run is refused (a leak); 1 = never refused
    max_overlap: Fraction = 0.1


@dataclass(config=STRICT)
class ModelConfig:
    teacher: str = "bert-base-uncased"  # hub id or local path (fine-tuned for distill, pre-trained otherwise)
    teacher_random_init: bool = False  # build the teacher from its config with random weights (tests)
    teacher_overrides: BertArch = field(default_factory=dict)  # BertConfig fields applied with random init
    tokenizer: str | None = None  # default: the teacher's own tokenizer
    student: str | None = None  # checkpoint to start the student from (e.g. general-distilled)
    student_init: Literal["random", "path", "teacher_layers"] = "random"  # teacher_layers: DistilBERT, PKD
    student_layers: list[PosInt] | None = None  # teacher_layers: teacher layers (1..N) copied; None = i * N / M
    # teacher_layers: copy the layers of this pre-trained encoder instead of the fine-tuned teacher's (BERT-PKD's
    # released code starts from pre-trained BERT); None = the teacher (model.teacher)
    student_layers_from: str | None = None
    student_arch: BertArch = field(
        default_factory=lambda: dict(
            num_hidden_layers=4, hidden_size=312, intermediate_size=1200, num_attention_heads=12
        )
    )
    attn_implementation: Literal["sdpa", "eager", "eager_scores"] = "sdpa"  # eager_scores: TinyBERT's loss


@dataclass(config=STRICT)
class MethodConfig:
    """The distillation objective: which terms, their weights over time, and the training procedure."""

    name: str = "lrcbert"
    layer_loss: Literal["cos_nce", "mse"] = "cos_nce"  # mse: BERT_M
    # how a layer's l x d output enters COS-NCE: one vector (flatten, cls, mean), or per_position: the mean over
    # positions of per-position cosine distances (the GLMKD re-implementation's reading; in-batch negatives only)
    representation: Literal["flatten", "cls", "mean", "per_position"] = "flatten"
    # in_batch (K = B - 1) | sampled (K = num_negatives from the training set)
    negatives: Literal["in_batch", "sampled"] = "in_batch"
    projection: Literal["shared", "per_layer"] = "shared"  # one W for all mapped layers, or one each
    projection_init: Literal["new", "student"] = "new"  # W starts random, or is the W saved with model.student
    layer_map: list[PosInt] | None = None  # teacher layer for student layers 1..M; None = i * N / M
    temperature: Positive = 1.1
    soft_t2: bool = False  # multiply the soft loss by tau^2
    hard_target: Literal["one_hot", "tempered"] = "one_hot"  # tempered: softmax(one_hot / tau), eq. 5 as printed
    stage_split: Fraction = 0.8  # fraction of steps in stage 1
    # term weights per stage; keys: the registered loss terms (lrcbert.presets.TERMS)
    stage1: dict[str, Weight] = field(default_factory=lambda: {"layer": 1.0, "soft": 0.0, "hard": 0.0})
    stage2: dict[str, Weight] = field(default_factory=lambda: {"layer": 1.0, "soft": 1.0, "hard": 3.0})
    perturb: bool = True  # gradient perturbation of the embedding output (eq. 7-8)
    # over which slice |g|_2 is taken: each example's l x d, the whole batch, or each token's d (GLMKD's reading)
    perturb_norm: Literal["per_example", "batch", "per_token"] = "per_example"
    perturb_eps: NonNeg = 1.0  # step size multiplying g / |g|_2 (printed: 1)
    perturb_dropout: Literal["fresh", "same"] = "fresh"  # dropout masks of the second (perturbed) pass
    perturb_grad: Literal["constant"] = "constant"  # g / |g|_2 enters pass 2 as a constant (no gradient through it)
    gather_negatives: bool = True  # data parallel: COS-NCE negatives from the global batch (K = B_global - 1)
    # fidelity (docs/fidelity.md): memories of per-example vectors (lrcbert/memory.py)
    num_negatives: PosInt = 15  # negatives=sampled: K per example, may exceed the batch
    memory_max_bytes: PosInt = 8_000_000_000  # negatives=sampled: refuse a teacher memory larger than this
    soft_reduction: Literal["batchmean", "mean"] = "batchmean"  # KD averaged over examples, or examples x classes
    projection_bias: bool = False  # W with a bias (TinyBERT's released fit_dense has one)
    # the method's own settings: the fields of its declared ``settings`` class (lrcbert.presets.Method), checked
    # by that class and filled with its defaults (docs/add-a-method.md); e.g. method.options.nce_k for CoDIR
    options: dict[str, Any] = field(default_factory=dict)


@dataclass(config=STRICT)
class TrainConfig:
    seed: Seed = 42
    epochs: Positive = 3.0
    max_steps: PosInt | None = None  # overrides epochs when set
    batch_size: PosInt = 16
    eval_batch_size: PosInt = 64
    lr: Positive = 5e-5
    weight_decay: NonNeg = 0.01
    warmup: Share = 0.1  # fraction of steps of linear warm-up
    lr_schedule: Literal["linear", "constant", "linear_per_stage"] = "linear"  # paper: not stated
    grad_clip: NonNeg = 1.0  # 0 = off
    max_bad_steps: Count = 0  # non-finite steps skipped (no update) before the run stops; 0 = stop
    # a finite step whose total loss exceeds this times its stage's reference (the mean of the stage's first
    # steps, at least 1) stops the run as diverged (lrcbert.engine); 0 = off
    divergence_factor: NonNeg = 20.0
    mixed_precision: Literal["no", "bf16", "fp16"] = "no"  # bf16, fp16: GPU
    checkpoint_every: Count = 500  # steps; 0 = only at the end
    keep_checkpoints: PosInt = 2
    log_every: PosInt = 1  # steps between rows of losses.csv
    num_workers: Count = 0
    stop_after_steps: PosInt | None = None  # leave the run unfinished after N steps (tests of resume)
    teacher_cache: Literal["auto", "on", "off"] = "auto"  # teacher outputs computed once, memory-mapped fp16
    teacher_cache_max_bytes: Count = 20_000_000_000  # auto: cache when the size estimate is below this
    # a folder for teacher caches shared by every run of one teacher on one training set (all teacher layers, kept
    # after the run, content-addressed: <folder>/<key>); None: each run caches in its own folder and removes it
    teacher_cache_dir: str | None = None
    length_grouped: bool = False  # batches of similar lengths (shuffled mega-batches sorted by length)
    length_group_size: PosInt = 50  # batches per mega-batch sorted by length (length_grouped)
    compile: bool = False  # torch.compile the student and teacher forward passes
    report_to: Literal["none", "tensorboard", "wandb", "mlflow", "trackio"] = "none"  # lrcbert/tracking.py


@dataclass(config=STRICT)
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
        diff = {
            section: (
                {k: v for k, v in values.items() if defaults[section].get(k, object()) != v}
                if isinstance(values, dict)
                else values
            )
            for section, values in d.items()
        }
        # the method's own settings that differ from its defaults, hashed as method keys (method.options.nce_k as
        # method.nce_k: the hash a run had when the key was a method key; a setting never shadows one)
        given = diff["method"].pop("options", {})
        defaults = settings_defaults(self.method.name) if given else {}
        diff["method"].update({k: v for k, v in given.items() if defaults.get(k, object()) != v})
        blob = json.dumps(diff, sort_keys=True, default=str).encode()
        return hashlib.sha256(blob).hexdigest()[:12]


NOT_HASHED = (
    "train.checkpoint_every",
    "train.keep_checkpoints",
    "train.log_every",
    "train.num_workers",
    "train.stop_after_steps",
    "train.eval_batch_size",
    "train.report_to",
    "train.divergence_factor",  # guards: they stop a run or refuse its data, never change what it computes
    "data.max_overlap",
    "train.teacher_cache_dir",  # where the shared teacher cache lives, never what the run computes
)
TERM_MAPS = ("method.stage1", "method.stage2")  # mappings whose keys are loss-term names


# ---------------------------------------------------------------------------------------------- the schema
def _strip_optional(typ: Any) -> Any:
    """``X | None`` -> X, and ``Annotated[X, ...]`` -> X."""
    if get_origin(typ) is Annotated:
        typ = get_args(typ)[0]
    args = [a for a in get_args(typ) if a is not type(None)]
    if type(None) in get_args(typ) and len(args) == 1:
        return _strip_optional(args[0])
    return typ


def _schema(cls) -> dict[str, tuple[str, Any]]:
    """field name -> (kind, type); kind: ``section`` (a nested dataclass), ``map`` (a mapping merged key by key)
    or ``value``."""
    out = {}
    hints = get_type_hints(cls, include_extras=True)
    for f in fields(cls):
        typ = _strip_optional(hints[f.name])
        if dataclasses.is_dataclass(typ):
            out[f.name] = ("section", typ)
        elif is_typeddict(typ) or typ is dict or get_origin(typ) is dict:
            out[f.name] = ("map", typ)
        else:
            out[f.name] = ("value", hints[f.name])
    return out


def _choices(cls, prefix: str = "") -> dict[str, tuple]:
    out = {}
    for name, (kind, typ) in _schema(cls).items():
        if kind == "section":
            out.update(_choices(typ, f"{prefix}{name}."))
        elif get_origin(_strip_optional(typ)) is Literal:
            out[f"{prefix}{name}"] = get_args(_strip_optional(typ))
    return out


# the allowed values of every enumerated key, e.g. CHOICES["method.layer_loss"] == ("cos_nce", "mse"): the Literal
# types above (a key declared ``str`` may be listed here by hand too; ``validate`` checks every entry)
CHOICES: dict[str, tuple] = {**_choices(Config)}


def _map_keys(path: str, typ: Any, key: str) -> set[str] | None:
    """The keys a mapping key may hold (None: any)."""
    if is_typeddict(typ):
        return set(get_type_hints(typ))
    if path in TERM_MAPS:
        from .presets import term_names  # light; plug-in terms are loaded only for a name not yet known

        return term_names(key)
    return None


# ---------------------------------------------------------------------------------------------- YAML
class _Mapping(dict):
    """A YAML mapping that remembers the line of each key."""

    lines: dict


class _Loader(yaml.SafeLoader):
    """PyYAML's safe loader that refuses a repeated key (YAML keeps the last one silently), reads ``1e-4`` as a
    number (YAML 1.2; YAML 1.1 reads it as a string) and remembers the line of each key."""

    source = "<text>"

    def where(self, mark) -> str:
        if mark is None or self.source.startswith("--set"):
            return self.source
        return f"{self.source}:{mark.line + 1}"

    def construct_mapping(self, node, deep=False):
        lines = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = self.construct_object(key_node, deep=True)
            try:
                first = lines.get(key)
            except TypeError:  # an unhashable key: SafeLoader's own error says so
                break
            if first is not None:
                raise ConfigError(
                    f"{self.where(key_node.start_mark)}: key {key!r} is given twice (first on line "
                    f"{first}); YAML would silently keep only the last"
                )
            lines[key] = key_node.start_mark.line + 1
        data = _Mapping(super().construct_mapping(node, deep=deep))
        data.lines = {} if self.source.startswith("--set") else lines
        return data


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float", re.compile(r"^[-+]?[0-9][0-9_]*(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"), list("-+0123456789")
)
_Loader.add_constructor("tag:yaml.org,2002:map", _Loader.construct_mapping)


def parse_yaml(text: str, source: str) -> Any:
    """YAML text -> Python objects; errors (syntax, repeated keys) are one line naming ``source``, line, column."""
    loader = _Loader(text)
    loader.source = source
    try:
        return loader.get_single_data()
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        at = loader.where(mark) + (f":{mark.column + 1}" if mark and not source.startswith("--set") else "")
        what = "; ".join(str(x) for x in (e.context, e.problem) if x)
        raise ConfigError(f"{at}: YAML syntax error: {what}") from None
    except yaml.YAMLError as e:
        raise ConfigError(f"{source}: YAML error: {' '.join(str(e).split())}") from None
    finally:
        loader.dispose()


def read_yaml(path: str | Path) -> Any:
    """A YAML file (see ``parse_yaml``); a missing or unreadable file is a ConfigError naming it."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"config file not found: {p}")
    try:
        text = p.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise ConfigError(f"{p}: not UTF-8 text (byte {e.start})") from None
    except OSError as e:
        raise ConfigError(f"{p}: cannot read: {e.strerror}") from None
    return parse_yaml(text, str(p))


# ---------------------------------------------------------------------------------------------- merging
def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def _at(source: str, updates: dict, key) -> str:
    lines = getattr(updates, "lines", None)
    return f"{source}:{lines[key]}" if lines and key in lines else source


def _known(key, known) -> str:
    """The end of an unknown-key message: a suggestion and the keys known at that level. A key that is the last
    part of known dotted keys elsewhere suggests them (``lr`` -> ``train.lr``); else the closest key here."""

    def dotted(cls, prefix=""):
        for name, (kind, typ) in _schema(cls).items():
            if kind == "section":
                yield from dotted(typ, f"{prefix}{name}.")
            else:
                yield f"{prefix}{name}"
                yield from (f"{prefix}{name}.{k}" for k in (get_type_hints(typ) if is_typeddict(typ) else ()))

    same = [p for p in dotted(Config) if p.rsplit(".", 1)[-1] == str(key)]
    close = same if 0 < len(same) <= 4 else difflib.get_close_matches(str(key), [str(k) for k in known], n=1)
    guess = " or ".join(f"'{c}'" for c in close)
    return (f"; did you mean {guess}?" if close else "") + f" (known here: {', '.join(sorted(known))})"


def _merge(tree: dict, updates: Any, cls, origin: dict, source: str, replace: bool, prefix: str = "") -> None:
    """Merge ``updates`` into ``tree`` (a dict shaped like ``cls``), noting in ``origin`` where each key came
    from. Sections always merge; mappings merge key by key, or with ``replace`` are replaced wholesale."""
    if not isinstance(updates, dict):
        raise ConfigError(f"{source}: config key '{prefix[:-1]}' must be a mapping, got {updates!r}")
    schema = _schema(cls)
    for key, value in updates.items():
        path, where = f"{prefix}{key}", _at(source, updates, key)
        if key not in schema:
            moved = prefix == "method." and key in RETIRED  # a baseline's key, now a setting of its method
            hint = f"; did you mean 'method.options.{key}'?" if moved else _known(key, schema)
            raise ConfigError(f"{where}: unknown config key '{path}'{hint}")
        kind, typ = schema[key]
        if kind == "section":
            _merge(tree[key], value, typ, origin, source, replace, f"{path}.")
            continue
        origin[path] = where
        if kind == "map" and isinstance(value, dict):
            for sub in value:
                allowed = _map_keys(path, typ, sub)
                if allowed is not None and sub not in allowed:
                    raise ConfigError(
                        f"{_at(source, value, sub)}: unknown config key '{path}.{sub}'{_known(sub, allowed)}"
                    )
                origin[f"{path}.{sub}"] = _at(source, value, sub)
            keep = tree.get(key) if not replace and isinstance(tree.get(key), dict) else {}
            tree[key] = {**keep, **_plain(value)}
        else:
            tree[key] = _plain(value)


def _field_type(path: list[str]) -> Any:
    """The annotation of the field at a dotted path (None past a mapping or for an unknown key)."""
    cls = Config
    for i, part in enumerate(path):
        entry = _schema(cls).get(part)
        if entry is None:
            return None
        kind, typ = entry
        if kind != "section":
            return typ if kind == "value" and i == len(path) - 1 else None
        cls = typ
    return None


def _override(item: str) -> dict:
    """``a.b.c=value`` -> ``{a: {b: {c: value}}}``; the value is read as YAML (``key=`` is null). A YAML scalar
    given to a text key is taken as the text written (``data.path=2024`` is the folder '2024')."""
    source = f"--set {item}"
    key, sep, raw = item.partition("=")
    parts = key.strip().split(".")
    if not sep or not all(parts):
        raise ConfigError(f"{source}: not of the form key=value (dotted key, e.g. train.lr=1e-4)")
    value = parse_yaml(raw, source) if raw.strip() else None
    typ = _field_type(parts)
    if isinstance(value, (bool, int, float)) and typ is not None:
        accepted = {a for a in get_args(typ) or (typ,)}
        if str in accepted and not accepted & {bool, int, float}:
            value = raw.strip()
    tree = value
    for part in reversed(parts):
        tree = {part: tree}
    return tree


# ---------------------------------------------------------------------------------------------- checking
_TYPE_WORDS = {
    "int_type": "an integer",
    "float_type": "a number",
    "bool_type": "true or false",
    "string_type": "a string",
    "dict_type": "a mapping",
    "list_type": "a list",
    "finite_number": "a finite number",
    "none_required": "null",
}
_BOUNDS = {
    "greater_than_equal": ("ge", ">="),
    "greater_than": ("gt", ">"),
    "less_than_equal": ("le", "<="),
    "less_than": ("lt", "<"),
}
_UNION_TAGS = re.compile(r"^(int|float|str|bool|none|nullable|list\[.*\]|dict\[.*\]|function-.*|constrained-.*)$")


def _where(origin: dict, path: str) -> str | None:
    """The file and line or ``--set`` that gave ``path`` (or a key above it); None: the default."""
    parts = path.split(".")
    for n in range(len(parts), 0, -1):
        if ".".join(parts[:n]) in origin:
            return origin[".".join(parts[:n])]
    return None


def _fail(origin: dict, path: str, message: str) -> ConfigError:
    where = _where(origin, path)
    return ConfigError(f"{where}: {message}" if where else message)


def _explain(e: ValidationError, prefix: str, origin: dict, choices: dict | None = None) -> ConfigError:
    """pydantic's first error as one line naming the key, the value and where it came from."""
    errors = e.errors()
    clean = [str(x) for x in errors[0]["loc"] if not _UNION_TAGS.match(str(x))]
    group = [x for x in errors if [str(y) for y in x["loc"] if not _UNION_TAGS.match(str(y))] == clean]
    path = prefix + ".".join(clean)
    err = next((x for x in group if not x["type"].endswith("_type")), group[0])
    kind, value = err["type"], err["input"]
    if kind in ("extra_forbidden", "unexpected_keyword_argument"):
        message = f"unknown config key '{path}'"
    elif kind == "literal_error":
        allowed = (CHOICES if choices is None else choices).get(path, ())
        message = f"config key '{path}' is {value!r}; allowed: {', '.join(map(str, allowed))}"
    elif kind in _BOUNDS:
        name, sign = _BOUNDS[kind]
        message = f"config key '{path}' must be {sign} {err['ctx'][name]}, got {value!r}"
    elif kind in _TYPE_WORDS:
        types = {x["type"] for x in group}
        word = "a number" if types >= {"int_type", "float_type"} else _TYPE_WORDS[kind]
        message = f"config key '{path}' must be {word}, got {value!r}"
    else:
        message = f"config key '{path}': {err['msg']}, got {value!r}"
    return _fail(origin, path, message)


def _build(cls, tree: dict, origin: dict, prefix: str = ""):
    """The dataclass ``cls`` from ``tree``, nested sections first; pydantic checks types and ranges."""
    kwargs = {}
    for name, (kind, typ) in _schema(cls).items():
        kwargs[name] = _build(typ, tree[name], origin, f"{prefix}{name}.") if kind == "section" else tree[name]
    try:
        return cls(**kwargs)
    except ValidationError as e:
        raise _explain(e, prefix, origin) from None


# ---------------------------------------------------------------------------------------------- method settings
def method_settings_class(name: str) -> type | None:
    """The settings class a method declares (None: it takes no ``method.options``); plug-ins are loaded only for
    a name that is not LRC-BERT's own."""
    from .presets import DECLARED, load_plugins

    if name not in DECLARED:
        load_plugins()
    cls = DECLARED[name].settings if name in DECLARED else None
    clash = {f.name for f in fields(cls)} & {f.name for f in fields(MethodConfig)} if cls else set()
    if clash:
        raise ConfigError(f"method {name!r}: its settings {sorted(clash)} would shadow method keys of the same names")
    return cls


def settings_defaults(name: str) -> dict:
    cls = method_settings_class(name)
    return asdict(cls()) if cls else {}


def method_settings(method: MethodConfig):
    """The typed settings of a run's method (its settings class built from ``method.options``), or None."""
    cls = method_settings_class(method.name)
    return cls(**method.options) if cls else None


def check_options(name: str, options: dict, origin: dict | None = None) -> dict:
    """``method.options`` checked by the method's own settings class (unknown keys, types, ranges), with its
    defaults filled in."""
    from .presets import DECLARED

    origin = origin or {}
    cls = method_settings_class(name) if options or name in DECLARED else None
    known = {f.name for f in fields(cls)} if cls else set()
    for key in options:
        if key not in known:
            what = _known(key, known) if cls else f" (method {name!r} declares no settings)"
            raise _fail(origin, f"method.options.{key}", f"unknown config key 'method.options.{key}'{what}")
    if cls is None:
        return {}
    try:
        return asdict(cls(**options))
    except ValidationError as e:
        raise _explain(e, "method.options.", origin, _choices(cls, "method.options.")) from None


def validate(cfg: Config, origin: dict | None = None) -> Config:
    """The checks that involve more than one key (each key's own type and range is checked on construction)."""
    origin = origin or {}
    from .tasks import TASKS  # light: no torch

    m, t, model = cfg.method, cfg.train, cfg.model
    m.options = check_options(m.name, m.options, origin)
    d = cfg.to_dict()
    for path, allowed in CHOICES.items():
        section, key = path.split(".")
        if d[section][key] not in allowed:
            raise _fail(origin, path, f"config key '{path}' is {d[section][key]!r}; allowed: {', '.join(allowed)}")
    if cfg.task not in TASKS and cfg.task != "mnli":
        raise _fail(
            origin,
            "task",
            f"config key 'task': unknown task {cfg.task!r}; known: {', '.join(sorted(set(TASKS) | {'mnli'}))}",
        )
    if t.batch_size < 2 and m.layer_loss == "cos_nce":
        raise _fail(
            origin,
            "train.batch_size",
            f"config key 'train.batch_size' must be >= 2 (COS-NCE needs other "
            f"examples as negatives), got {t.batch_size}",
        )
    if m.representation == "per_position" and m.negatives == "sampled" and m.layer_loss == "cos_nce":
        raise _fail(
            origin,
            "method.negatives",
            "config key 'method.negatives' is 'sampled', but method.representation 'per_position' compares "
            "whole layers position by position and works with in-batch negatives only; set method.negatives=in_batch",
        )
    for key in ("student_arch", "teacher_overrides"):
        arch = getattr(model, key)
        if (
            "hidden_size" in arch
            and "num_attention_heads" in arch
            and arch["hidden_size"] % arch["num_attention_heads"]
        ):
            raise _fail(
                origin,
                f"model.{key}.hidden_size",
                f"config key 'model.{key}.hidden_size' ({arch['hidden_size']}) must be a multiple of "
                f"num_attention_heads ({arch['num_attention_heads']})",
            )
    if cfg.data.source in ("tsv",) and not cfg.data.path:
        raise _fail(origin, "data.source", "config key 'data.path' is required when data.source is 'tsv'")
    if cfg.data.source == "hub" and cfg.data.path:
        # a folder given with the hub source would be ignored: the run would read the hub, not the user's folder
        raise _fail(
            origin,
            "data.path",
            f"config key 'data.path' is {cfg.data.path!r} but data.source is 'hub', "
            "which does not read it; set data.source=tsv for a GLUE folder (or synthetic for a folder "
            "made by lrcbert make-synthetic)",
        )
    if model.student_layers_from and model.student_init != "teacher_layers":
        raise _fail(
            origin,
            "model.student_layers_from",
            "config key 'model.student_layers_from' names the encoder whose layers model.student_init "
            f"'teacher_layers' copies, but model.student_init is {model.student_init!r}",
        )
    if model.student_init == "path" and not model.student:
        raise _fail(
            origin, "model.student_init", "config key 'model.student' is required when model.student_init is 'path'"
        )
    if m.projection_init == "student" and model.student_init != "path":
        raise _fail(
            origin,
            "method.projection_init",
            "config key 'method.projection_init' is 'student', which takes W from the run in "
            f"model.student, but model.student_init is {model.student_init!r}, not 'path'; "
            "set method.projection_init=new",
        )
    return cfg


def _load(layers: list[tuple[Any, str, bool]]) -> Config:
    """Merge (updates, source, replace) layers over the defaults, then check."""
    tree, origin = Config().to_dict(), {}
    for updates, source, replace in layers:
        _merge(tree, updates, Config, origin, source, replace)
    return validate(_build(Config, tree, origin), origin)


def load_config(
    files: list[str | Path] = (),
    overrides: list[str] = (),
    base: dict | None = None,
    base_source: str = "base configuration",
) -> Config:
    """Defaults <- ``base`` (a preset: each key it names replaces the default) <- each YAML file <- ``key=value``
    overrides (files and overrides merge key by key at any depth), checked."""
    layers = [(base, base_source, True)] if base else []
    for f in files:
        data = read_yaml(f)
        if data is None:
            continue
        if not isinstance(data, dict):
            raise ConfigError(f"{f}: a config file must hold a mapping, got {type(data).__name__}")
        layers.append((data, str(f), False))
    layers += [(_override(item), f"--set {item}", False) for item in overrides]
    return _load(layers)


# method keys of the baselines before they became their methods' own settings (method.options)
RETIRED = (
    "pkd_reduction attention_target tinybert_padding contrast_temperature bank_momentum label_aware head "
    "head_dim nce_k codir_layers codir_pool codir_loss codir_sides crd_batch_scale sar_temperature"
).split()


def config_from_dict(d: dict) -> Config:
    """A config written out by ``Config.to_dict`` (e.g. a run's run.json), checked; each key replaces the
    default. A record written before the baselines' keys moved to ``method.options`` is read with them there
    (those of its own method; the others were the unused defaults every record carried)."""
    method = d.get("method")
    if isinstance(method, dict) and set(RETIRED) & set(method):
        old = {k: method[k] for k in RETIRED if k in method}
        cls = method_settings_class(method.get("name", "lrcbert"))
        own = {f.name for f in fields(cls)} if cls else set()
        method = {k: v for k, v in method.items() if k not in old}
        method["options"] = {**{k: v for k, v in old.items() if k in own}, **method.get("options", {})}
        d = {**d, "method": method}
    return _load([(d, "config", True)])
