"""Logging: one format for the suite's messages, and the libraries' noise kept out of job logs.

The suite's modules log through ``logging.getLogger(__name__)`` (loggers under ``lrcbert``); ``setup``, called
once by the command line from ``--quiet`` / ``--verbose``, decides what reaches stderr:

- ``quiet``: warnings and errors only;
- ``normal`` (default): the suite's progress messages too; transformers and datasets say only errors, so a
  job log does not open with transformers' weight-loading report (``... LOAD REPORT``) of every model built;
- ``verbose``: the suite's debug messages and the libraries' own info messages, load reports included.
"""

from __future__ import annotations

import logging
import os
import sys

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
DATEFMT = "%Y-%m-%d %H:%M:%S"
LEVELS = {"quiet": logging.WARNING, "normal": logging.INFO, "verbose": logging.DEBUG}
LIBRARIES = {"quiet": "error", "normal": "error", "verbose": "info"}  # transformers' and datasets' verbosity


def setup(verbosity: str = "normal") -> logging.Logger:
    """Route the ``lrcbert`` loggers to stderr in the suite's format at ``verbosity``'s level and set the
    verbosity of transformers and datasets (through their environment variables, so it also holds for
    libraries imported later and for worker processes). Returns the ``lrcbert`` logger."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(FORMAT, DATEFMT))
    logger = logging.getLogger("lrcbert")
    logger.handlers[:] = [handler]
    logger.setLevel(LEVELS[verbosity])
    logger.propagate = False
    library = LIBRARIES[verbosity]
    for var, module in (("TRANSFORMERS_VERBOSITY", "transformers"), ("DATASETS_VERBOSITY", "datasets")):
        if verbosity == "normal":
            os.environ.setdefault(var, library)  # a user's own setting wins over the default
        else:
            os.environ[var] = library
        if module in sys.modules:  # already imported: its level was read at import
            sys.modules[module].utils.logging.set_verbosity(getattr(logging, os.environ[var].upper(), logging.ERROR))
    return logger
