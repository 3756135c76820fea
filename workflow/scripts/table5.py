"""Table 5: MNLI-m dev cases that LRC-BERT classifies correctly and BERT_M does not, with BERT_M's transformer-layer
MSE to the teacher and LRC-BERT's angular distance g to the teacher, plus the same statistics averaged over groups
of cases so that the paper's reading of its four hand-picked examples can be judged.

Selection rule (no hand-picking): among the dev examples the reference (LRC-BERT) predicts correctly and BERT_M
does not, the ``cases`` with the largest BERT_M MSE (mean over mapped layers), ties broken by the lower dev index.
Every statistic is the mean over the student's mapped layers (student layer i against teacher layer phi(i)) of:
MSE over the example's non-padding positions and dimensions between h_i^S W and h_phi(i)^T, and g between the two
layer vectors COS-NCE compares (the run's ``method.representation``); each student with its own trained W.

Inputs: ``results/analysis/case_stats_{task}.json`` (``lrcbert case-stats``), ``results/dev/{system}.json`` of both
systems (for the average the paper quotes), the paper's Table 5 CSV and other_figures.csv.
"""

import statistics
from pathlib import Path

import pandas as pd
from table1 import SPLITS, split_values

from lrcbert.results import fmt, header, job_log, md, md_frame, read_json, write_table


def cell(text) -> str:
    return "" if text is None else str(text).replace("\n", " ")  # escaped with the table (md_frame)


def select(cases: dict, reference: str, other: str, k: int) -> list[int]:
    """Positions of the selected examples (see the module docstring for the rule)."""
    ref, oth = cases["runs"][reference], cases["runs"][other]
    gold = cases["label"]
    pool = [i for i in range(len(gold)) if ref["prediction"][i] == gold[i] and oth["prediction"][i] != gold[i]]
    pool.sort(key=lambda i: (-oth["mse_mean"][i], cases["idx"][i]))
    return pool[:k]


def group_means(cases: dict, reference: str, other: str, positions: list[int]) -> dict:
    ref, oth = cases["runs"][reference], cases["runs"][other]

    def m(values):
        return statistics.fmean(values[i] for i in positions) if positions else None

    return {
        "n": len(positions),
        "other_mse": m(oth["mse_mean"]),
        "reference_g": m(ref["g_mean"]),
        "other_g": m(oth["g_mean"]),
        "reference_mse": m(ref["mse_mean"]),
    }


def dev_average(dev: dict, splits: list[str]) -> float | None:
    means = []
    for s in splits:
        v = list(split_values(dev, s).values())
        if not v:
            return None
        means.append(statistics.fmean(v))
    return statistics.fmean(means) if means else None


def build(
    cases: dict,
    devs: dict,
    reference: str,
    other: str,
    systems: dict,
    k: int,
    paper_csv: str,
    figures_csv: str,
    data_source: str,
) -> tuple[str, pd.DataFrame]:
    names = cases["labels"]
    ref_l, oth_l = systems[reference]["label"], systems[other]["label"]  # raw: cells and titles are escaped
    gold = cases["label"]
    ref, oth = cases["runs"][reference], cases["runs"][other]
    chosen = select(cases, reference, other, k)
    rows = [
        {
            "dev index": cases["idx"][i],
            "sentence1": cell(cases["text_a"][i]),
            "sentence2": cell((cases["text_b"] or [None] * len(gold))[i]),
            f"MSE ({oth_l})": f"{oth['mse_mean'][i]:.3f}",
            f"g ({ref_l})": f"{ref['g_mean'][i]:.3f}",
            "label": names[gold[i]],
            f"prediction ({oth_l})": names[oth["prediction"][i]],
        }
        for i in chosen
    ]
    everything = list(range(len(gold)))
    groups = {
        f"{ref_l} right, {oth_l} wrong (the pool the cases come from)": [
            i for i in everything if ref["prediction"][i] == gold[i] and oth["prediction"][i] != gold[i]
        ],
        "both right": [i for i in everything if ref["prediction"][i] == gold[i] and oth["prediction"][i] == gold[i]],
        f"{ref_l} wrong, {oth_l} right": [
            i for i in everything if ref["prediction"][i] != gold[i] and oth["prediction"][i] == gold[i]
        ],
        "both wrong": [i for i in everything if ref["prediction"][i] != gold[i] and oth["prediction"][i] != gold[i]],
        "all dev cases": everything,
    }
    summary = []
    for group, positions in groups.items():
        g = group_means(cases, reference, other, positions)
        summary.append(
            {
                "cases": group,
                "n": g["n"],
                f"MSE ({oth_l})": fmt(g["other_mse"], ".3f", "-"),
                f"g ({ref_l})": fmt(g["reference_g"], ".3f", "-"),
                f"g ({oth_l})": fmt(g["other_g"], ".3f", "-"),
                f"MSE ({ref_l})": fmt(g["reference_mse"], ".3f", "-"),
            }
        )
    accuracy = {
        n: 100.0 * sum(p == y for p, y in zip(cases["runs"][n]["prediction"], gold)) / len(gold)
        for n in (reference, other)
    }
    paper = pd.read_csv(paper_csv)
    figures = pd.read_csv(figures_csv)
    bert_m_claim = figures[figures["figure"].str.startswith("BERT_M")]
    splits = [s for s in SPLITS if split_values(devs[reference], s) and split_values(devs[other], s)]
    avg = {n: dev_average(devs[n], splits) for n in (reference, other)}
    phi = oth["phi"]
    title = (
        f"Table 5: {SPLITS.get(cases['split'], (cases['split'],))[0]} dev cases {ref_l} gets right and "
        f"{oth_l} gets wrong"
    )
    ref_l, oth_l = md(ref_l), md(oth_l)  # in the text below
    lines = header(title, data_source) + [
        f"Selection rule: among the dev examples {ref_l} classifies correctly and {oth_l} does not, the {k} with the "
        f"largest {oth_l} MSE, ties broken by the lower dev index (fewer if fewer exist). MSE: {oth_l}'s projected "
        f"layer output h_i W against the teacher's layer phi(i), averaged over the example's non-padding positions "
        f"and dimensions; g: {ref_l}'s angular distance (eq. 2) between the same two layer outputs as COS-NCE sees "
        f"them (representation '{md(ref['representation'])}'); both **averaged over the {len(phi)} mapped student "
        f"layers** "
        f"(teacher layers {phi}), each student with its own trained projection W. Models: one run each "
        f"(seed {Path(ref['run']).parent.name.removeprefix('seed')}, the learning rate chosen on dev); teacher: "
        f"{md(cases['teacher'])}.",
        "",
    ]
    lines += [
        md_frame(pd.DataFrame(rows)).to_markdown(index=False)
        if rows
        else f"_No dev example meets the rule ({ref_l} right and {oth_l} wrong)._",
        "",
    ]
    lines += [
        f"The same statistics averaged over groups of dev cases (dev accuracy of these two runs: {ref_l} "
        f"{accuracy[reference]:.1f}, {oth_l} {accuracy[other]:.1f}). The paper reads its cases as: {oth_l}'s MSE "
        f"rises on the cases it gets wrong while {ref_l}'s g does not; compare the first two rows. Note that "
        f"the MSE of {ref_l} is not what it was trained on (COS-NCE ignores scale), so only its g is "
        f"comparable across models.",
        "",
        md_frame(pd.DataFrame(summary)).to_markdown(index=False),
        "",
    ]
    both_right = int((paper["label"] == paper["prediction_bert_m"]).sum())
    lines += [
        f"The paper's Table 5 ({len(paper)} cases, chosen by hand; in {both_right} of them {oth_l}'s prediction "
        "equals the label, so they are not cases it gets wrong):",
        "",
        md_frame(paper).to_markdown(index=False),
        "",
    ]
    claim = bert_m_claim.iloc[0]["value"] if not bert_m_claim.empty else "n/a"
    lines += [
        f"Average dev score over the evaluation splits both systems ran ({', '.join(splits) or 'none'}; mean over "
        f"seeds at the chosen lr): {ref_l} {fmt(avg[reference])}, {oth_l} {fmt(avg[other])}. Paper (GLUE test "
        f"average over all nine columns): {oth_l} {md(claim)}, {ref_l} 77.5.",
        "",
    ]
    frame = pd.DataFrame(
        [
            {
                "position": i,
                "dev_index": cases["idx"][i],
                "label": names[gold[i]],
                "reference_prediction": names[ref["prediction"][i]],
                "other_prediction": names[oth["prediction"][i]],
                "other_mse": oth["mse_mean"][i],
                "reference_g": ref["g_mean"][i],
                "other_g": oth["g_mean"][i],
                "reference_mse": ref["mse_mean"][i],
                "selected": i in chosen,
            }
            for i in everything
        ]
    )
    return "\n".join(lines), frame


if __name__ == "__main__":
    with job_log(snakemake) as smk:  # noqa: F821
        p = smk.params
        devs = {read_json(f)["system"]: read_json(f) for f in smk.input.dev}
        text, frame = build(
            read_json(smk.input.cases),
            devs,
            p.reference,
            p.other,
            p.systems,
            int(p.cases),
            smk.input.paper,
            smk.input.figures,
            p.data_source,
        )
        write_table(text, smk.output.md, frame, smk.output.csv)
        print(text)
