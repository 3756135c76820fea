"""Methods and loss terms: the one registry of both, without importing torch.

A method is a declaration (``Method``): its name, a preset (a diff of ``method`` keys against LRC-BERT's defaults,
plus optional diffs of other sections such as a baseline's student initialisation), the loss terms it brings
({name: ``Term``}), its own typed settings (a strict dataclass whose fields are the keys of ``method.options``)
and its kind (``task``: ``lrcbert distill``; ``general``: ``lrcbert general-distill``; ``finetune``).

LRC-BERT's own methods and terms are declared here. Every other method comes in through the entry-point group
``lrcbert.methods`` (``name = "package.module:METHOD"``, a ``Method`` or a list of them): the ``baselines``
package of this repository is declared that way in pyproject.toml, and a package of yours is found the same
way once installed (docs/add-a-method.md). Plug-ins import torch, so they are loaded only when a name is not
one of LRC-BERT's own (``load_plugins``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from importlib.metadata import EntryPoint, distributions
from typing import Literal, NamedTuple

from .errors import ConfigError

GROUP = "lrcbert.methods"  # the entry-point group plug-ins register their methods under


class Term(NamedTuple):
    """A loss term: ``fn(objective, s_out, t_out, batch)`` (pure: a tensor from the model outputs), what the model
    calls must return for it, and an optional ``setup(objective, student_config, teacher_config)`` that adds the
    trainable modules or state (buffers, saved with the objective in checkpoints) the term needs, and an optional
    ``bind(objective, ids, labels)`` that adds state sized by the training set (``Objective.bind_data``)."""

    fn: Callable | None  # None only for LRC-BERT's own terms until lrcbert.objective binds them
    needs_teacher: bool
    needs_hidden: bool
    needs_attentions: bool = False
    needs_logits: bool = True  # False: usable without a task (general distillation)
    setup: Callable | None = None
    bind: Callable | None = None  # bind(objective, ids, labels): state sized by the training set (memories)


@dataclasses.dataclass(frozen=True)
class Method:
    """A method as configuration. ``preset``: ``method`` keys that differ from LRC-BERT's defaults (a stage map
    given here is the complete map of that stage: terms it leaves out weigh 0); ``sections``: diffs of other
    sections (``{"model": {...}}``); ``terms``: the loss terms it adds; ``settings``: a strict (pydantic)
    dataclass, the keys of ``method.options`` with their types, ranges and defaults; ``kind``: which command
    runs it."""

    name: str
    preset: dict
    sections: dict = dataclasses.field(default_factory=dict)
    terms: dict[str, Term] = dataclasses.field(default_factory=dict)
    settings: type | None = None
    kind: Literal["task", "general", "finetune"] = "task"


# the loss terms, by name: what a stage map may weigh (plug-ins add theirs on registration). LRC-BERT's own are
# declared here; their functions (torch) are bound by lrcbert.objective, which every training run imports.
TERMS: dict[str, Term] = {
    "layer": Term(None, True, True, needs_logits=False),  # COS-NCE (or MSE) of the mapped layers, eq. 3
    "soft": Term(None, True, False),  # eq. 4
    "hard": Term(None, False, False),  # eq. 5
}
DECLARED: dict[str, Method] = {}  # every registered method
# the presets, by name (``DECLARED[name].preset``), and the diffs of other sections they bring
METHODS: dict[str, dict] = {}
PRESETS: dict[str, dict] = {}
_loaded = False


def register_term(name: str, term: Term) -> None:
    if name in TERMS and TERMS[name] != term:
        raise ValueError(f"loss term {name!r} is already registered")
    TERMS[name] = term


def register(method: Method) -> None:
    """Register a method and its terms (a second registration of the same declaration is a no-op)."""
    old = DECLARED.get(method.name)
    if old is not None and old != method:
        raise ValueError(f"method {method.name!r} is already registered")
    for name, term in method.terms.items():
        register_term(name, term)
    DECLARED[method.name] = method
    METHODS[method.name] = method.preset
    if method.sections:
        PRESETS[method.name] = method.sections


# LRC-BERT's own methods
for _m in [
    Method("lrcbert", {}),
    # fine-tuning a teacher: gold labels only, no teacher, no perturbation
    Method(
        "finetune",
        {"stage_split": 0.0, "stage1": {"hard": 1.0}, "stage2": {"hard": 1.0}, "perturb": False},
        kind="finetune",
    ),
    # general distillation: transformer-layer COS-NCE only, the whole time
    Method("general", {"stage_split": 1.0, "stage1": {"layer": 1.0}, "stage2": {"layer": 1.0}}, kind="general"),
    # augmented-data (intermediate) distillation for RTE / CoLA, before task distillation
    Method("intermediate", {"stage_split": 1.0, "stage1": {"layer": 1.0}, "stage2": {"layer": 1.0}}),
    # ablations (paper Tables 3-5, Fig. 5): each differs from "lrcbert" in exactly one term or switch
    # _C: no COS-NCE; stage 1 would train nothing, so soft + hard at 1:3 for all steps
    Method(
        "lrcbert_c",
        {
            "stage_split": 0.0,
            "stage1": {"layer": 0.0, "soft": 1.0, "hard": 3.0},
            "stage2": {"layer": 0.0, "soft": 1.0, "hard": 3.0},
        },
    ),
    Method("lrcbert_s", {"stage2": {"layer": 1.0, "soft": 0.0, "hard": 3.0}}),  # no soft loss
    Method("lrcbert_h", {"stage2": {"layer": 1.0, "soft": 1.0, "hard": 0.0}}),  # no hard loss
    Method("lrcbert_g", {"perturb": False}),  # no gradient perturbation
    Method("lrcbert_2", {"stage_split": 0.0}),  # 1:1:3 from the first step
    Method("bert_m", {"layer_loss": "mse"}),  # MSE instead of COS-NCE
]:
    register(_m)


def _entry_points() -> list[EntryPoint]:
    """The ``lrcbert.methods`` entry points of every installed distribution, each once. Not
    ``importlib.metadata.entry_points``, which reads only the first distribution of a name on sys.path: a stale
    ``lrcbert.egg-info`` left in a checkout by an older install would hide the installed package's entry points
    whenever Python runs from the checkout."""
    found = {(ep.name, ep.value): ep for dist in distributions() for ep in dist.entry_points if ep.group == GROUP}
    return sorted(found.values(), key=lambda ep: (ep.name, ep.value))


def load_plugins() -> None:
    """Register the methods of every installed ``lrcbert.methods`` entry point (once)."""
    global _loaded
    if _loaded:
        return
    _loaded = True
    for ep in _entry_points():
        declared = ep.load()
        for method in declared if isinstance(declared, list | tuple) else [declared]:
            if not isinstance(method, Method):
                raise TypeError(f"entry point {ep.name} = {ep.value!r} ({GROUP}) gives {method!r}, not a Method")
            register(method)


def declared(name: str) -> Method:
    """The declaration of a named method, plug-ins included; ConfigError listing the known ones."""
    if name not in DECLARED:
        load_plugins()
    if name not in DECLARED:
        raise ConfigError(f"unknown method {name!r}; known: {', '.join(sorted(DECLARED))}")
    return DECLARED[name]


def get_method(name: str) -> dict:
    """The config diff (``{"method": {...}, other sections}``) of a named method, plug-ins included."""
    m = declared(name)
    return {**m.sections, "method": {"name": name, **m.preset}}


def method_kind(name: str) -> str:
    """``task``, ``general`` or ``finetune``: which command runs the method (plug-ins loaded for another name)."""
    return declared(name).kind


def term_names(name: str | None = None) -> set[str]:
    """The registered term names; when ``name`` is not among them, the plug-ins are loaded first (they may
    register it)."""
    if name is not None and name not in TERMS:
        load_plugins()
    return set(TERMS)
