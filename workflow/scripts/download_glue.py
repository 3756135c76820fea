"""Download one GLUE task from the Hugging Face hub (``nyu-mll/glue``) and write it in the original GLUE TSV
layout that ``lrcbert`` reads with ``data.source=tsv`` (folder, file and column names from ``lrcbert.tasks``).

Run by the local rules ``download_glue`` / ``download_glue_mnli`` (on the submitting host, so compute nodes
need no network), or by hand: ``python workflow/scripts/download_glue.py TASK OUT_DIR [HUB_ID]``.
Label ids of the hub become the label strings of the GLUE files (``entailment``, ``0``/``1``, ...); test files
carry ``index`` and the text columns only; runs of whitespace inside a text (tabs and line breaks included) become
one space.
"""

import sys
from pathlib import Path

from lrcbert.results import job_log
from lrcbert.tasks import EVAL_SPLITS, TASKS, Task


def _clean(text) -> str:
    return " ".join(str(text).split())


def _check_label_order(ds, task: Task, where: str) -> None:
    names = getattr(ds.features.get("label"), "names", None)
    if task.is_regression or names is None:
        return
    expected = list(task.hub_labels or task.labels)
    if [n.lower() for n in names] != [n.lower() for n in expected]:
        raise ValueError(f"{where}: label order {names} differs from {expected}")


def rows(task: Task, split: str, ds) -> tuple[list[str] | None, list[list[str]]]:
    """(header or None, rows) of ``split`` in the GLUE layout of ``task``."""
    a, b = task.hub_text
    texts = [ds[a]] + ([ds[b]] if b else [])
    if split == "test":
        header = ["index", task.text_a] + ([task.text_b] if task.text_b else [])
        return header, [[str(i)] + [_clean(t[k]) for t in texts] for k, i in enumerate(ds["idx"])]
    labels = ds["label"]
    if task.is_regression:
        label_str = [f"{float(x):.3f}" for x in labels]
    else:
        bad = sorted({x for x in labels if not 0 <= int(x) < task.num_labels})
        if bad:
            raise ValueError(f"{task.name} {split}: label ids {bad[:5]} outside 0..{task.num_labels - 1}")
        label_str = [task.labels[int(x)] for x in labels]
    if not task.header:  # CoLA train/dev: source, label, original_label, sentence; no header
        return None, [
            ["hub", lab, "*" if lab == task.labels[0] else "", _clean(s)] for lab, s in zip(label_str, texts[0])
        ]
    header = ["index", task.text_a] + ([task.text_b] if task.text_b else []) + [task.label_col]
    return header, [[str(k)] + [_clean(t[k]) for t in texts] + [label_str[k]] for k in range(len(label_str))]


def write_tsv(path: Path, header, body) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "w", encoding="utf-8", newline="\n") as f:
        if header:
            f.write("\t".join(header) + "\n")
        for row in body:
            f.write("\t".join(row) + "\n")
    tmp.replace(path)


def download_task(train_task: str, root: str | Path, hub_id: str = "nyu-mll/glue", load=None) -> list[Path]:
    """Write every file of ``train_task`` (train, and dev/test of each evaluation split) under ``root``."""
    if load is None:
        import datasets

        load = datasets.load_dataset
    written = []
    for name in EVAL_SPLITS[train_task]:
        task = TASKS[name]
        for split in ("train", "dev", "test"):
            path = Path(root) / task.folder / task.files[split]
            if path in written:
                continue
            ds = load(hub_id, task.hub_config, split=task.hub_split[split])
            if split != "test":
                _check_label_order(ds, task, f"{hub_id}/{task.hub_config}")
            header, body = rows(task, split, ds)
            write_tsv(path, header, body)
            print(f"{path}: {len(body)} rows", flush=True)
            written.append(path)
    return written


def _snakemake_main(smk) -> None:
    with job_log(smk):
        download_task(smk.params.task, smk.params.root, smk.params.hub_id)
        missing = [f for f in smk.output if not Path(f).is_file()]
        if missing:
            raise RuntimeError(f"download did not produce {missing}")


if __name__ == "__main__":
    if "snakemake" in globals():
        _snakemake_main(snakemake)  # noqa: F821
    else:
        if len(sys.argv) not in (3, 4):
            sys.exit("usage: download_glue.py TASK OUT_DIR [HUB_ID]")
        download_task(sys.argv[1], sys.argv[2], *(sys.argv[3:]))
