"""Baselines distilled on lrcbert's engine: DistilBERT-4, BERT-PKD-4, TinyBERT-4, CoDIR and ACKD.

Each module is one baseline: pure loss functions, the objective terms built from them, and its method presets
(term weights, schedule, student initialisation). Importing this package registers them with
``lrcbert.objective`` (``register_term`` / ``register_method``); lrcbert imports it on first use of a method
(``lrcbert.objective.load_plugins``), so ``python -m lrcbert distill --method pkd`` works and the training loop
never knows which method runs.

ACKD is a reconstruction from its abstract only (see ``baselines/ackd.py``); ``RECONSTRUCTIONS`` names it so
that every table marks it.
"""

from lrcbert.objective import register_method, register_term

from . import ackd, codir, distilbert, pkd, tinybert

MODULES = (distilbert, pkd, tinybert, codir, ackd)
RECONSTRUCTIONS = {"ackd"}  # methods re-built from an abstract, not from a paper's full description

for _module in MODULES:
    for _name, _term in getattr(_module, "TERMS", {}).items():
        register_term(_name, _term)
    for _name, (_method, _sections) in _module.METHODS.items():
        register_method(_name, _method, **_sections)

BASELINES = sorted(name for m in MODULES for name in m.METHODS)
