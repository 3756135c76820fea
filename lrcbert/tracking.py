"""Experiment tracking through accelerate's trackers (``train.report_to``): TensorBoard, Weights & Biases, MLflow
or Trackio receive the configuration, every loss term, its weight and the learning rate at each logged step
(the rows of ``losses.csv``), and the dev metrics at the end. ``none`` (the default) starts no tracker.

Scalar names: ``loss/<term>`` (each term of the objective, ``loss/total``, ``loss/clean``: the loss before the
gradient perturbation), ``weight/<term>``, ``lr``, ``bad_steps`` and ``dev/<split>/<metric>``. TensorBoard event
files go to ``<run folder>/tracking/``; a resumed run drops the events logged after its checkpoint.
"""

from __future__ import annotations

REPORT_TO = ("none", "tensorboard", "wandb", "mlflow", "trackio")
PROJECT = "lrcbert"  # the wandb / mlflow / trackio project (experiment) name
FOLDER = "tracking"  # TensorBoard: events under <run folder>/tracking/


def log_with(report_to: str) -> list[str] | None:
    """The ``log_with`` argument of ``Accelerator`` for a ``train.report_to`` value; ConfigError when that
    tracker's package is not installed (accelerate would only warn and track nothing)."""
    if report_to == "none":
        return None
    from accelerate import utils

    from .config import ConfigError

    if not getattr(utils, f"is_{report_to}_available")():
        raise ConfigError(
            f"config key 'train.report_to' is {report_to!r}, but {report_to} is not installed: "
            f"pip install 'lrcbert[{report_to}]' (or {report_to} itself)"
        )
    return [report_to]


def _flat(d: dict, prefix: str = "") -> dict:
    """A nested config as one level of dotted keys with the scalar types every tracker takes."""
    out = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict) and v:
            out.update(_flat(v, f"{key}."))
        else:
            out[key] = v if isinstance(v, (bool, int, float, str)) else str(v)
    return out


def start(accelerator, cfg, run_name: str, step: int) -> None:
    """Start the tracker of ``cfg.train.report_to`` (no-op for ``none``); ``step`` is where the run resumes."""
    report_to = cfg.train.report_to
    if report_to == "none":
        return
    kwargs = {
        "tensorboard": {"purge_step": step + 1} if step else {},
        "wandb": {"name": run_name},
        "mlflow": {"run_name": run_name},
    }.get(report_to, {})
    accelerator.init_trackers(
        FOLDER if report_to == "tensorboard" else PROJECT,
        config={"config_hash": cfg.hash(), **_flat(cfg.to_dict())},
        init_kwargs={report_to: kwargs},
    )


def step_scalars(record: dict, lr: float) -> dict:
    """The scalars of one training step from the engine's ``losses.csv`` row."""
    out = {"lr": lr, "bad_steps": record.get("bad_steps", 0)}
    for key, value in record.items():
        if key.startswith("w_"):
            out[f"weight/{key[2:]}"] = value
        elif key == "loss_clean":
            out["loss/clean"] = value
        elif key != "bad_steps":
            out[f"loss/{key}"] = value
    return out


def finish(accelerator, metrics: dict, step: int) -> None:
    """Log the dev metrics (``metrics.json``'s ``splits``) at the last step and close the trackers."""
    values = {
        f"dev/{split}/{name}": float(v)
        for split, m in metrics.items()
        for name, v in m.items()
        if isinstance(v, (int, float)) and not isinstance(v, bool) and name != "n"
    }
    if values:
        accelerator.log(values, step=step)
    accelerator.end_training()
