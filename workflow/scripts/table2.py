"""Table 2: size and inference time of the teacher and the student, measured by time_inference.py on one fixed
workload on one device, beside the paper's Table 2 (109M vs 14.5M parameters, 121.4 s vs 12.7 s on a V100)
and its 9.6x speed-up and 7.5x size ratio. Written with pandas + tabulate to ``results/table2.md``."""

import pandas as pd

from lrcbert.results import header, job_log, md, md_frame, read_json, write_table


def figure(figures: pd.DataFrame, key: str) -> str:
    row = figures[figures["figure"].str.contains(key, case=False, regex=False)]
    return "n/a" if row.empty else str(row.iloc[0]["value"])


def build(timing_json: str, paper_csv: str, figures_csv: str, data_source: str) -> str:
    timing = read_json(timing_json)
    paper = pd.read_csv(paper_csv)
    figures = pd.read_csv(figures_csv)
    t, s = timing["models"]["teacher"], timing["models"]["student"]
    p_t, p_s = paper.iloc[0], paper.iloc[1]  # paper rows: BERT-base, then LRC-BERT
    w = timing["workload"]
    rows = []
    for label, m, p in (("Teacher (BERT-base recipe)", t, p_t), ("Student (LRC-BERT)", s, p_s)):
        rows.append(
            {
                "Model": label,
                "Layers": m["layers"],
                "Hidden": m["hidden"],
                "Params (M)": round(m["params"] / 1e6, 1),
                "Inference time (s), ours": round(m["seconds"], 3),
                "Paper: model": p["model"],
                "Paper: params (M)": p["params_m"],
                "Paper: inference time (s)": p["inference_time_s"],
            }
        )
    for name, m in timing["models"].items():  # further architectures (baselines), ours only
        if name in ("teacher", "student"):
            continue
        rows.append(
            {
                "Model": name,
                "Layers": m["layers"],
                "Hidden": m["hidden"],
                "Params (M)": round(m["params"] / 1e6, 1),
                "Inference time (s), ours": round(m["seconds"], 3),
                "Paper: model": "",
                "Paper: params (M)": "",
                "Paper: inference time (s)": "",
            }
        )
    table = pd.DataFrame(rows)
    speed = t["seconds"] / s["seconds"] if s["seconds"] > 0 else float("nan")
    size = t["params"] / s["params"]
    ratios = pd.DataFrame(
        [
            {
                "Ratio": "Speed-up (teacher time / student time)",
                "Ours": f"{speed:.1f}x",
                "Paper": figure(figures, "speedup"),
                "Paper, recomputed from its Table 2": f"{p_t['inference_time_s'] / p_s['inference_time_s']:.1f}x",
            },
            {
                "Ratio": "Size (teacher params / student params)",
                "Ours": f"{size:.1f}x",
                "Paper": figure(figures, "size ratio"),
                "Paper, recomputed from its Table 2": f"{p_t['params_m'] / p_s['params_m']:.1f}x",
            },
        ]
    )
    lines = header("Table 2: model size and inference time", data_source) + [
        f"Ours: measured on **{md(timing['hardware'])}** (torch {md(timing['torch'])}, torch threads: "
        f"{timing['torch_threads']}, {md(w['precision'])}). Workload: the same {w['sequences']} sequences of "
        f"{w['max_length']} tokens for both models, batches of {w['batch_size']}, classification head included; "
        f"warm-up batches: {w['warmup_batches']}, then the median over {w['repeats']} timed passes over the whole "
        "workload. Models: the fine-tuned teacher and a "
        f"distilled student of task {md(timing.get('task'))}. Paper: {md(p_t['hardware'])} for both models; the paper "
        "does not say which workload it timed, so only the ratios are comparable, not the seconds.",
        "",
        md_frame(table).to_markdown(index=False),
        "",
        md_frame(ratios).to_markdown(index=False),
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    with job_log(snakemake) as smk:  # noqa: F821
        text = build(smk.input.timing, smk.input.paper, smk.input.figures, smk.params.data_source)
        write_table(text, smk.output[0])
        print(text)
