"""Baselines distilled on lrcbert's engine: DistilBERT-4, BERT-PKD-4, TinyBERT-4, CoDIR and ACKD.

Each module is one baseline: pure loss functions, the objective terms built from them, its typed settings
(``method.options``) and its method declarations (``lrcbert.presets.Method``: preset, terms, settings, kind).
lrcbert finds them as any other plug-in, through the ``lrcbert.methods`` entry points that pyproject.toml
declares (``lrcbert.presets.load_plugins``), so ``python -m lrcbert distill --method pkd`` works and the training
loop never knows which method runs.

ACKD is a reconstruction from its abstract only (see ``baselines/ackd.py``); ``RECONSTRUCTIONS`` names it so
that every table marks it.
"""

from . import ackd, codir, distilbert, pkd, tinybert

MODULES = (distilbert, pkd, tinybert, codir, ackd)
RECONSTRUCTIONS = {"ackd"}  # methods re-built from an abstract, not from a paper's full description
DECLARED = [m for module in MODULES for m in getattr(module, "METHODS", [getattr(module, "METHOD", None)])]
BASELINES = sorted(m.name for m in DECLARED)
