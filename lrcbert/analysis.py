"""Analyses of trained students (paper Table 5 and the robustness claim), from finished run folders.

``case_stats``: per dev example, each student's prediction and, for every mapped layer i, the mean squared error
and the angular distance g (eq. 2) between the student's projected output h_i^S W and the teacher's h_phi(i)^T,
with the student's own trained W (``model/objective.safetensors``) and the layer map and representation the run
was trained with. Per-example values are also averaged over the mapped layers (the ``*_mean`` fields).

``robustness``: dev accuracy when the output of the embedding block (the tensor gradient perturbation acts on,
eq. 7) is moved by eps in a random direction or in the direction of the gradient of the cross-entropy against the
gold label (FGM, the worst case to first order), normalised per example over its l x d slice as in eq. 7.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
import yaml

from . import data as D
from .config import config_from_dict
from .engine import EmbeddingTap, perturbation
from .losses import angular_distance, layer_vectors, per_position_distances
from .models import build_teacher, embedding_module, layer_map, load_tokenizer
from .objective import read_projection
from .tasks import get_task

_INPUTS = ("input_ids", "attention_mask", "token_type_ids")


class AnalysisError(ValueError):
    """A run folder or option the analysis cannot use (message names it)."""


def load_run(run: str | Path, task=None):
    """(method config, student classifier, projection matrices) of a finished run folder."""
    from transformers import AutoModelForSequenceClassification

    run = Path(run)
    for f in ("config.yaml", "model/config.json"):
        if not (run / f).is_file():
            raise AnalysisError(f"{run}: no {f} (not a finished run folder)")
    saved = yaml.safe_load((run / "config.yaml").read_text())
    saved.pop("config_hash", None)
    cfg = config_from_dict(saved)
    model = AutoModelForSequenceClassification.from_pretrained(run / "model").eval()
    w_file = run / "model" / "objective.safetensors"
    return cfg.method, model, read_projection(w_file) if w_file.is_file() else []


def layer_stats(
    s_hidden, t_hidden, proj: list[torch.Tensor], phi: list[int], mask: torch.Tensor, representation: str = "flatten"
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per example and mapped layer: (MSE, g) between h_i^S W and h_phi(i)^T, each of shape (B, M).

    ``s_hidden`` / ``t_hidden``: hidden-state tuples (index 0 = embeddings); ``proj``: one shared W (out x in)
    or one per layer; MSE over the example's non-padding positions and all dimensions (``masked_mse`` per
    example); g over the layer vectors of ``representation`` (as COS-NCE compares them)."""
    m = mask.float().unsqueeze(-1)
    mse, g = [], []
    for i, j in enumerate(phi):
        w = proj[0 if len(proj) == 1 else i]
        h_s = s_hidden[i + 1].float() @ w.float().T
        h_t = t_hidden[j].float()
        sq = ((h_s - h_t) ** 2 * m).sum(dim=(1, 2)) / (m.sum(dim=(1, 2)) * h_s.shape[-1]).clamp_min(1.0)
        mse.append(sq)
        if representation == "per_position":  # the positive pair's distance, b against its own teacher row
            g.append(per_position_distances(h_s * m, h_t * m, mask).diagonal())
        else:
            g.append(
                angular_distance(layer_vectors(h_s, mask, representation), layer_vectors(h_t, mask, representation))
            )
    return torch.stack(mse, 1), torch.stack(g, 1)


def _loader(cfg, task, tokenizer, limit=None):
    raw = D.load_split(cfg, task, "dev")
    if limit is not None and len(raw) > limit:
        raw = raw.select(range(limit))
    texts = {"text_a": raw["text_a"], "text_b": raw["text_b"] if "text_b" in raw.column_names else None}
    ds = D.tokenize(raw, tokenizer, cfg.data.max_length)
    collate = D.Collator(tokenizer, cfg.data.max_length, cfg.data.pad_to_max_length)
    loader = torch.utils.data.DataLoader(ds, batch_size=cfg.train.eval_batch_size, shuffle=False, collate_fn=collate)
    return loader, texts


@torch.no_grad()
def case_stats(cfg, runs: dict[str, str | Path], split: str) -> dict:
    """Per-example predictions and layer statistics of each run (name -> folder) on ``split``'s dev set,
    against the teacher ``cfg.model.teacher``."""
    task = get_task(split)
    if task.is_regression:
        raise AnalysisError(f"case-stats needs a classification task, got {split}")
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    teacher = build_teacher(cfg, task, finetuned=True).to(device).eval()
    students = {}
    for name, run in runs.items():
        method, model, proj = load_run(run)
        if not proj:
            raise AnalysisError(
                f"{run}: no trained projection W (model/objective.safetensors); its method "
                f"{method.name!r} has no layer term"
            )
        phi = layer_map(model.config.num_hidden_layers, teacher.config.num_hidden_layers, method.layer_map)
        students[name] = (method, model.to(device), [p.to(device) for p in proj], phi)
    loader, texts = _loader(cfg, task, load_tokenizer(cfg), cfg.data.max_eval_examples)
    out = {
        "split": split,
        "labels": list(task.labels),
        "teacher": cfg.model.teacher,
        "idx": [],
        "label": [],
        "text_a": texts["text_a"],
        "text_b": texts["text_b"],
        "teacher_prediction": [],
        "runs": {
            n: {
                "run": str(r),
                "layer_loss": students[n][0].layer_loss,
                "phi": students[n][3],
                "representation": students[n][0].representation,
                "prediction": [],
                "mse": [],
                "g": [],
            }
            for n, r in runs.items()
        },
    }
    for batch in loader:
        inputs = {k: batch[k].to(device) for k in _INPUTS if k in batch}
        t_out = teacher(**inputs, output_hidden_states=True)
        out["idx"] += batch["idx"].tolist()
        out["label"] += batch["labels"].tolist()
        out["teacher_prediction"] += t_out.logits.argmax(-1).tolist()
        for name, (method, model, proj, phi) in students.items():
            s_out = model(**inputs, output_hidden_states=True)
            mse, g = layer_stats(
                s_out.hidden_states, t_out.hidden_states, proj, phi, inputs["attention_mask"], method.representation
            )
            rec = out["runs"][name]
            rec["prediction"] += s_out.logits.argmax(-1).tolist()
            rec["mse"] += mse.cpu().tolist()
            rec["g"] += g.cpu().tolist()
    for rec in out["runs"].values():
        rec["mse_mean"] = [float(np.mean(x)) for x in rec["mse"]]
        rec["g_mean"] = [float(np.mean(x)) for x in rec["g"]]
    return out


def perturbed_predictions(
    model, batch, eps_list, direction: str, norm: str = "per_example", generator: torch.Generator | None = None
) -> tuple[dict, torch.Tensor]:
    """({eps: predictions}, per-example norm of the embedding output) for one batch, with the embedding output
    e moved to e + eps * d / |d|_2: d random (Gaussian, padding positions zero) or d = dL/de of the
    cross-entropy against the gold labels (``gradient``)."""
    tap = EmbeddingTap(embedding_module(model))
    inputs = {k: batch[k] for k in _INPUTS if k in batch}
    mask = inputs["attention_mask"].unsqueeze(-1).float()
    try:
        if direction == "gradient":
            tap.leaf = True
            with torch.enable_grad():
                logits = model(**inputs).logits.float()
                loss = F.cross_entropy(logits, batch["labels"], reduction="sum")
                (d,) = torch.autograd.grad(loss, tap.input)
            tap.leaf = False
        elif direction == "random":
            with torch.no_grad():
                model(**inputs)
            d = torch.randn(tap.output.shape, generator=generator).to(tap.output) * mask
        else:
            raise AnalysisError(f"unknown perturbation direction {direction!r} (random | gradient)")
        e = tap.output.detach()
        e_norm = (e * mask).flatten(1).norm(dim=1)
        preds = {}
        with torch.no_grad():
            for eps in eps_list:
                tap.replace = e + perturbation(d, norm, float(eps)).to(e)
                preds[eps] = model(**inputs).logits.argmax(-1)
                tap.replace = None
    finally:
        tap.handle.remove()
    return preds, e_norm


def robustness(
    cfg,
    runs: dict[str, str | Path],
    split: str,
    eps_list: list[float],
    directions=("random", "gradient"),
    norm: str = "per_example",
    seed: int = 0,
) -> dict:
    """Dev accuracy of each run under embedding perturbations of each size in ``eps_list``."""
    task = get_task(split)
    if task.is_regression:
        raise AnalysisError(f"robustness reports accuracy: it needs a classification task, got {split}")
    from transformers import AutoTokenizer

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    out = {
        "split": split,
        "eps": [float(e) for e in eps_list],
        "norm": norm,
        "directions": list(directions),
        "runs": {},
    }
    for name, run in runs.items():
        _, model, _ = load_run(run)
        model.to(device).eval()
        loader, _ = _loader(cfg, task, AutoTokenizer.from_pretrained(Path(run) / "model"), cfg.data.max_eval_examples)
        gen = torch.Generator().manual_seed(seed)
        correct = {d: {e: 0 for e in eps_list} for d in directions}
        n, norms = 0, []
        for batch in loader:
            batch = {k: v.to(device) for k, v in batch.items()}
            labels = batch["labels"]
            for d in directions:
                preds, e_norm = perturbed_predictions(model, batch, eps_list, d, norm, gen)
                for e, p in preds.items():
                    correct[d][e] += int((p == labels).sum())
            norms += e_norm.cpu().tolist()
            n += len(labels)
        out["runs"][name] = {
            "run": str(run),
            "n": n,
            "embedding_norm_mean": float(np.mean(norms)),
            "accuracy": {d: {str(float(e)): 100.0 * c / n for e, c in correct[d].items()} for d in directions},
        }
    return out
