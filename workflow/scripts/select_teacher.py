"""Choose a task's teacher: among the fine-tuning runs of the teacher lr grid, the one with the best dev score
(or the evaluated, already fine-tuned teacher of ``teacher.finetuned``). Writes ``selected.json``, whose ``model``
entry is the folder the distillation jobs of that task load the teacher from."""

import json
from pathlib import Path

from lrcbert.results import (
    best_lr,
    job_log,
    read_json,
    run_params,
    safetensors_params,
    score_problem,
    selection_score,
    split_scores,
)
from lrcbert.tasks import EVAL_SPLITS


def select(task: str, metrics_files: list[str], given_model: str | None = None) -> dict:
    splits = list(EVAL_SPLITS[task])
    runs = {Path(f).parent.name.removeprefix("lr"): Path(f).parent for f in metrics_files}
    # a candidate whose dev scores its own predictions do not give (a hand edit) takes no part in the choice
    rejected = {} if given_model else {lr: why for lr, run in runs.items() if (why := score_problem(run))}
    for lr, why in rejected.items():
        print(f"left out {runs.pop(lr)}: {why}")
    scores = {lr: split_scores(run, splits) for lr, run in runs.items()}
    candidates = {lr: selection_score(s, splits) for lr, s in scores.items()}
    lr = best_lr(candidates)
    if lr is None:
        raise RuntimeError(
            f"no teacher run of task {task} has verified dev scores for {splits}: {metrics_files} "
            f"(left out: {rejected or 'none'})"
        )
    run = runs[lr]
    metrics = read_json(run / "metrics.json")
    if given_model:
        model = given_model
        params = sum(filter(None, (safetensors_params(f) for f in Path(given_model).glob("*.safetensors"))))
    else:
        model, params = str(run / "model"), run_params(run)
    return {
        "task": task,
        "splits": splits,
        "given": bool(given_model),
        "lr": None if given_model else lr,
        "candidates": candidates if not given_model else {},
        "run": str(run),
        "model": model,
        "seed": metrics.get("seed"),
        "scores": scores[lr],
        "params": params or None,
    }


if __name__ == "__main__":
    with job_log(snakemake) as smk:  # noqa: F821
        result = select(smk.wildcards.task, list(smk.input), smk.params.given)
        Path(smk.output[0]).write_text(json.dumps(result, indent=2) + "\n")
        print(json.dumps(result, indent=2))
