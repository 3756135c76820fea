"""Method presets and the names of the loss terms: what configuration loading and the command line need to
know about methods, without importing torch.

A method preset is a diff of ``method`` keys against LRC-BERT's defaults; a preset may bring diffs of other
sections (e.g. a baseline's student initialisation). Plug-ins (the top-level ``baselines`` package) register
theirs with ``register_method`` and their loss terms with ``lrcbert.objective.register_term``, which adds the
term's name to ``TERM_NAMES`` here. Plug-ins import torch, so they are loaded only when a name is not one of
LRC-BERT's own (``load_plugins``).
"""

from __future__ import annotations

import importlib

from .config import ConfigError

# Method presets: each is a diff of ``method`` keys against LRC-BERT's defaults. A key given here replaces the
# default wholesale (a stage map given here is the complete map of that stage: terms it leaves out weigh 0).
METHODS: dict[str, dict] = {
    "lrcbert": {},
    # fine-tuning a teacher: gold labels only, no teacher, no perturbation
    "finetune": {"stage_split": 0.0, "stage1": {"hard": 1.0}, "stage2": {"hard": 1.0}, "perturb": False},
    # general distillation: transformer-layer COS-NCE only, the whole time
    "general": {"stage_split": 1.0, "stage1": {"layer": 1.0}, "stage2": {"layer": 1.0}},
    # augmented-data (intermediate) distillation for RTE / CoLA, before task distillation
    "intermediate": {"stage_split": 1.0, "stage1": {"layer": 1.0}, "stage2": {"layer": 1.0}},
    # ablations (paper Tables 3-5, Fig. 5): each differs from "lrcbert" in exactly one term or switch
    # _C: no COS-NCE; stage 1 would train nothing, so soft + hard at 1:3 for all steps
    "lrcbert_c": {
        "stage_split": 0.0,
        "stage1": {"layer": 0.0, "soft": 1.0, "hard": 3.0},
        "stage2": {"layer": 0.0, "soft": 1.0, "hard": 3.0},
    },
    "lrcbert_s": {"stage2": {"layer": 1.0, "soft": 0.0, "hard": 3.0}},  # no soft loss
    "lrcbert_h": {"stage2": {"layer": 1.0, "soft": 1.0, "hard": 0.0}},  # no hard loss
    "lrcbert_g": {"perturb": False},  # no gradient perturbation
    "lrcbert_2": {"stage_split": 0.0},  # 1:1:3 from the first step
    "bert_m": {"layer_loss": "mse"},  # MSE instead of COS-NCE
}
# presets of other config sections that a method brings along (e.g. a baseline's student initialisation)
PRESETS: dict[str, dict] = {}
# names of the loss terms a stage map may weigh: lrcbert.objective.TERMS (plug-ins add theirs on registration)
TERM_NAMES: set[str] = {"layer", "soft", "hard"}
PLUGINS = ("baselines",)  # modules that register further methods and terms when first needed
_loaded = False


def register_method(name: str, method: dict, **sections) -> None:
    """A named preset: a diff of ``method`` keys, plus optional diffs of other sections (``model=...``)."""
    if name in METHODS and METHODS[name] != method:
        raise ValueError(f"method {name!r} is already registered")
    METHODS[name] = method
    if sections:
        PRESETS[name] = sections


def load_plugins() -> None:
    """Import the plug-in packages (once); a missing one is skipped."""
    global _loaded
    if _loaded:
        return
    _loaded = True
    for name in PLUGINS:
        try:
            importlib.import_module(name)
        except ModuleNotFoundError as e:
            if e.name != name:
                raise


def get_method(name: str) -> dict:
    """The config diff (``{"method": {...}, other sections}``) of a named method, plug-ins included."""
    if name not in METHODS:
        load_plugins()
    if name not in METHODS:
        raise ConfigError(f"unknown method {name!r}; known: {', '.join(sorted(METHODS))}")
    return {**PRESETS.get(name, {}), "method": {"name": name, **METHODS[name]}}


def term_names(name: str | None = None) -> set[str]:
    """The registered term names; when ``name`` is not among them, the plug-ins are loaded first (they may
    register it)."""
    if name is not None and name not in TERM_NAMES:
        load_plugins()
    return TERM_NAMES
