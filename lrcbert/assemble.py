"""The configuration a ``lrcbert <command>`` call runs with, assembled from its parts: the method preset, config
files, ``--set`` overrides and the task. The configuration layer (beside ``config`` and ``presets``): the command
line, the forecast, the workflow and its scripts all assemble a run's configuration here, so that each knows the
config hash a run of the current configuration must carry. Imports neither torch nor transformers unless a preset
is a plug-in's (a baseline's)."""

from __future__ import annotations

from .config import ConfigError, load_config
from .presets import DECLARED, get_method, load_plugins, method_kind

# the method preset of each training command when it takes no --method (finetune) or by default
KINDS = {"finetune": "finetune", "distill": "distill", "general-distill": "general"}
COMMANDS_WITH_METHOD = ("distill", "general-distill")


def method_choices(command: str, plugins: bool = True) -> list[str]:
    """The presets ``lrcbert COMMAND --method`` accepts (the public list the command line and the workflow read):
    general-distillation presets for ``general-distill``, the others but ``finetune`` for ``distill``.
    ``plugins=False``: LRC-BERT's own only, without loading the plug-ins (which import torch)."""
    if command not in COMMANDS_WITH_METHOD:
        raise ConfigError(f"'lrcbert {command}' takes no --method; the commands that do: {COMMANDS_WITH_METHOD}")
    if plugins:
        load_plugins()
    general = command == "general-distill"
    return sorted(m.name for m in DECLARED.values() if m.kind == ("general" if general else "task"))


def check_method(command: str, name: str) -> None:
    """Refuse a ``--method`` preset that does not exist or does not fit ``command`` (ConfigError naming it)."""
    kind = method_kind(name)  # unknown: ConfigError listing the known presets (plug-ins loaded for another name)
    if kind != ("general" if command == "general-distill" else "task"):
        known = method_choices(command)
        raise ConfigError(f"--method {name!r} is not a preset for '{command}'; choose from: {', '.join(known)}")


def command_config(command: str, method: str | None, task: str | None, files=(), overrides=()):
    """The configuration a ``lrcbert <command>`` call runs with: defaults <- the method preset (``--method``, or
    the command's own: finetune, general) with the sections it sets <- config files <- ``--set`` overrides <- the
    task."""
    if method is not None:
        check_method(command, method)
    name = method or KINDS.get(command) or command
    base = get_method(name) if method is not None or command in KINDS else {"method": {"name": name}}
    return load_config(
        files, list(overrides) + ([f"task={task}"] if task else []), base=base, base_source=f"method preset {name!r}"
    )
