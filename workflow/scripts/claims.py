"""The verdict: every quantitative claim of the paper, the suite's measured difference with a 95% interval, and
a verdict by a rule stated on the page (``results/claims.md`` and ``results/claims.csv``).

Intervals: ``lrcbert.stats.bootstrap_ci``, a bootstrap that resamples the dev examples of each split (paired:
the same draw for both systems and every seed) and each system's seeds. Where a claim is inconclusive and is of
the form A > B, the page gives the seeds per system that a t-test needs for 80% power against a difference of
the paper's size, at the seed standard deviation measured here.

Inputs: ``results/dev/{system}.json`` (the seeds at the chosen lr and their run folders, whose
``predictions/dev_<split>.tsv`` the tests read), the paper's CSVs, ``results/inference_time.json`` (Table 2) and,
with the analyses, the robustness results and the runs' ``losses.csv`` (Figure 5).
"""

import math
import sys
from pathlib import Path

import numpy as np
import pandas as pd

try:
    import lrcbert  # noqa: F401
except ImportError:  # not installed: the repository this workflow lives in
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from lrcbert import stats as S  # noqa: E402
from lrcbert.results import check_cited, header, md_frame, read_json, write_table  # noqa: E402

ALL = ["mnli_m", "mnli_mm", "qqp", "sst2", "qnli", "mrpc", "rte", "cola", "stsb"]
LARGE = ["mnli_m", "mnli_mm", "qqp", "sst2", "qnli"]  # > 60k training examples
SMALL = ["mrpc", "rte", "cola", "stsb"]  # < 10k training examples
SMALL_MARGIN = 1.0  # points: "hurts little" / "keeps up" means within this of the reference
SHARE_TOLERANCE = 1.0  # points of the teacher share below the paper's 97.4% still counted as reaching it
RATIO_TOLERANCE = 0.10  # a speed or size ratio within 10% below the paper's counts as reaching it
PAPER_T1 = {
    "mnli_m": "mnli_m",
    "mnli_mm": "mnli_mm",
    "qqp": "qqp_f1",
    "sst2": "sst2",
    "qnli": "qnli",
    "mrpc": "mrpc_f1",
    "rte": "rte",
    "cola": "cola_mcc",
    "stsb": "stsb",
}


class Evidence:
    """Per-example predictions of the runs dev selection chose, loaded on demand."""

    def __init__(self, dev_files: list[str], systems: dict, n_resamples: int, seed: int = 0):
        self.devs = {}
        for f in dev_files:
            d = read_json(f)
            self.devs[d["system"]] = d
        check_cited(list(self.devs.values()))  # a claim never rests on a run folder that is gone
        self.systems, self.n_resamples, self.seed = systems, n_resamples, seed
        self._cache = {}

    def by_paper(self, paper_name: str) -> str | None:
        """The system of this configuration that stands for the paper's row ``paper_name``."""
        found = [n for n, info in self.systems.items() if info.get("paper") == paper_name and n in self.devs]
        return found[0] if found else None

    def runs(self, system: str, split: str) -> list[str]:
        for entry in self.devs[system]["tasks"].values():
            if split in entry["splits"]:
                return [
                    s["run"]
                    for _, s in sorted(entry["seeds"].items())
                    if (Path(s["run"]) / "predictions" / f"dev_{split}.tsv").is_file()
                ]
        return []

    def split(self, name: str, systems: list[str]) -> S.Split | None:
        key = (name, tuple(systems))
        if key not in self._cache:
            runs = {s: self.runs(s, name) for s in systems}
            self._cache[key] = S.load_split(name, runs) if all(runs.values()) else None
        return self._cache[key]

    def compare(
        self, systems: list[str], splits: list[str], value, kind: str, margin: float = 0.0, paper: float | None = None
    ) -> dict:
        """One claim's measurement: estimate, interval, verdict, seeds and, when inconclusive, seeds needed."""
        missing = [s for s in systems if s is None or s not in self.devs]
        if missing:
            return {"verdict": "inconclusive", "note": "a system of the claim is not in this configuration"}
        loaded = [self.split(x, systems) for x in splits]
        used = [sp for sp in loaded if sp is not None]
        absent = [x for x, sp in zip(splits, loaded) if sp is None]
        if absent:  # a claim over several splits is measured on all of them or not at all
            return {"verdict": "inconclusive", "note": f"no finished runs with dev predictions for {', '.join(absent)}"}
        est, lo, hi = S.bootstrap_ci(used, value, n_resamples=self.n_resamples, seed=self.seed)
        out = {
            "estimate": est,
            "low": lo,
            "high": hi,
            "verdict": S.verdict(kind, lo, hi, margin),
            "seeds": "/".join(str(len(used[0].preds[s])) for s in systems),
        }
        if out["verdict"] == "inconclusive" and kind == "greater" and paper:
            sd = S.pooled_sd(*[S.per_seed(used, s) for s in systems[:2]])
            if sd is None:
                out["seeds_needed"] = "unknown: seed variance needs 2+ seeds per system"
            else:
                n = S.seeds_needed(paper, sd)
                out["seeds_needed"] = (
                    f"{n} (paper's Δ {paper:+.2f}, seed sd {sd:.2f})" if n else f"> 10000 (seed sd {sd:.2f})"
                )
        return out


def paper_t1(paper: pd.DataFrame, name: str, split: str | list[str]) -> float | None:
    row = paper[paper["system"] == name]
    if row.empty:
        return None
    cols = [PAPER_T1[s] for s in ([split] if isinstance(split, str) else split)]
    return float(row.iloc[0][cols].astype(float).mean())


def claims(
    ev: Evidence, paper: dict, figures: pd.DataFrame, timing: dict | None, robustness: dict, losses: dict, ab: dict
) -> list[dict]:
    t1, t3, t4 = paper["table1"], paper["table3"], paper["table4"]
    lrc, teacher = ev.by_paper("LRC-BERT"), ev.by_paper("BERT-base (teacher)")
    rows = []

    def add(cid, claim, evidence, result, **extra):
        rows.append({"id": cid, "claim": claim, "evidence": evidence, **extra, **result})

    # 1. LRC-BERT beats DistilBERT, BERT-PKD and TinyBERT on every task
    for k, base in enumerate(("DistilBERT", "BERT-PKD", "TinyBERT")):
        other = ev.by_paper(base)
        subs = []
        for split in ALL + ["avg"]:
            splits = ALL if split == "avg" else [split]
            d = (paper_t1(t1, "LRC-BERT", splits) or 0) - (paper_t1(t1, base, splits) or 0)
            r = ev.compare([lrc, other], splits, S.difference(lrc, other, splits), "greater", paper=d)
            subs.append(r)
            add(
                f"1{'abc'[k]}.{split}",
                f"LRC-BERT > {base} on {split if split != 'avg' else 'the 9-task average'}",
                f"Table 1 (test server): Δ {d:+.1f}",
                r,
                paper_delta=d,
                group=f"1{'abc'[k]}",
            )
        verdicts = [r["verdict"] for r in subs[:-1]]
        overall = (
            "contradicted"
            if "contradicted" in verdicts
            else "supported"
            if all(v == "supported" for v in verdicts)
            else "inconclusive"
        )
        ahead = sum((paper_t1(t1, "LRC-BERT", s) or 0) > (paper_t1(t1, base, s) or 0) for s in ALL)
        tally = ", ".join(f"{verdicts.count(v)} {v}" for v in ("supported", "contradicted", "inconclusive"))
        rows.insert(
            len(rows) - len(subs),
            {
                "id": f"1{'abc'[k]}",
                "claim": f"LRC-BERT beats {base} on every GLUE task (Table 1)",
                "evidence": f"Table 1: LRC-BERT ahead on {ahead}/9 tasks",
                "verdict": overall,
                "note": f"the nine splits below: {tally}",
                "group": "summary",
            },
        )

    # 2. the average reaches 97.4% of the teacher's
    stated = figures[figures["figure"].str.contains("share of teacher", case=False)]
    share = float(str(stated.iloc[0]["value"]).rstrip("%")) if not stated.empty else 97.4
    add(
        "2",
        f"LRC-BERT's 9-task average reaches {share:g}% of the teacher's",
        f"paper text: {share:g}% (Table 1: 77.5 / 79.6 = 97.4%)",
        ev.compare(
            [lrc, teacher],
            ALL,
            lambda s: 100 * np.mean([s[lrc][x] for x in ALL]) / np.mean([s[teacher][x] for x in ALL]),
            "at_least",
            share - SHARE_TOLERANCE,
        ),
        unit="% of teacher",
    )

    # 3. LRC-BERT1 (no augmentation, no general distillation) behind on small tasks, level on large ones
    lrc1 = ev.by_paper("LRC-BERT1")
    d_small = (paper_t1(t1, "LRC-BERT", SMALL) or 0) - (paper_t1(t1, "LRC-BERT1", SMALL) or 0)
    d_large = (paper_t1(t1, "LRC-BERT", LARGE) or 0) - (paper_t1(t1, "LRC-BERT1", LARGE) or 0)
    add(
        "3a",
        "LRC-BERT1 falls behind LRC-BERT on the small tasks (MRPC, RTE, CoLA, STS-B average)",
        f"Table 1: Δ {d_small:+.1f}",
        ev.compare([lrc, lrc1], SMALL, S.difference(lrc, lrc1, SMALL), "greater", paper=d_small),
        paper_delta=d_small,
    )
    add(
        "3b",
        f"LRC-BERT1 keeps up on the large tasks (MNLI, QQP, SST-2, QNLI average within {SMALL_MARGIN:g})",
        f"Table 1: Δ {d_large:+.1f}",
        ev.compare([lrc, lrc1], LARGE, S.difference(lrc, lrc1, LARGE), "small", SMALL_MARGIN),
        paper_delta=d_large,
    )

    # 4. Table 3: removing COS-NCE hurts most, removing the soft or the hard loss little
    splits3 = [s for s in ab.get("table3_splits", [])]
    ref3 = t3[t3["variant"] == "LRC-BERT"]
    cols3 = [c for c in t3.columns if c not in ("variant", "removed")]

    def p3(variant):
        row = t3[t3["variant"] == variant]
        return float(row.iloc[0][cols3].astype(float).mean()) if not row.empty else None

    c_, s_, h_ = (ev.by_paper(v) for v in ("LRC-BERT_C", "LRC-BERT_S", "LRC-BERT_H"))
    if splits3 and not ref3.empty:
        for cid, a, b, variant_a, variant_b in (
            ("4a", lrc, c_, "LRC-BERT", "LRC-BERT_C"),
            ("4b", s_, c_, "LRC-BERT_S", "LRC-BERT_C"),
            ("4c", h_, c_, "LRC-BERT_H", "LRC-BERT_C"),
        ):
            d = p3(variant_a) - p3(variant_b)
            what = (
                "removing COS-NCE hurts"
                if cid == "4a"
                else f"removing COS-NCE hurts more than removing the {'soft' if cid == '4b' else 'hard'} loss"
            )
            add(
                cid,
                f"{what} (average of {', '.join(splits3)})",
                f"Table 3 (dev): {variant_a} - {variant_b} = {d:+.1f}",
                ev.compare([a, b], splits3, S.difference(a, b, splits3), "greater", paper=d),
                paper_delta=d,
            )
        for cid, v, variant in (("4d", s_, "LRC-BERT_S"), ("4e", h_, "LRC-BERT_H")):
            d = p3("LRC-BERT") - p3(variant)
            add(
                cid,
                f"removing the {'soft' if cid == '4d' else 'hard'} loss hurts little (within {SMALL_MARGIN:g})",
                f"Table 3 (dev): LRC-BERT - {variant} = {d:+.1f}",
                ev.compare([lrc, v], splits3, S.difference(lrc, v, splits3), "small", SMALL_MARGIN),
                paper_delta=d,
            )

    # 5. Table 4: the two-stage schedule beats 1:1:3 from the start (MNLI-m)
    two = ev.by_paper("LRC-BERT_2")
    d4 = float(t4[t4["variant"] == "LRC-BERT"].iloc[0, 1] - t4[t4["variant"] == "LRC-BERT_2"].iloc[0, 1])
    add(
        "5",
        "the two-stage schedule beats the 1:1:3 weights from the start on MNLI-m (Table 4)",
        f"Table 4 (dev): Δ {d4:+.1f}",
        ev.compare([lrc, two], ["mnli_m"], S.difference(lrc, two, ["mnli_m"]), "greater", paper=d4),
        paper_delta=d4,
    )

    # 6. COS-NCE beats MSE on the same layers (BERT_M)
    bm = ev.by_paper("BERT_M")
    bm_row = figures[figures["figure"].str.contains("BERT_M", regex=False)]
    d6 = 77.5 - float(bm_row.iloc[0]["value"]) if not bm_row.empty else None
    bm_splits = [s for s in ALL if bm and ev.runs(bm, s)] or ALL  # the splits BERT_M ran
    where = "GLUE average" if bm_splits == ALL else "average of " + ", ".join(bm_splits)
    add(
        "6",
        f"COS-NCE beats MSE on the same layers (BERT_M, {where})",
        f"paper text: BERT_M 77.0 vs LRC-BERT 77.5 (Δ {d6:+.1f})" if d6 is not None else "paper text",
        ev.compare([lrc, bm], bm_splits, S.difference(lrc, bm, bm_splits), "greater", paper=d6),
        paper_delta=d6,
    )

    # 7. gradient perturbation: lower training loss (Figure 5), more robust
    add(
        "7a",
        "gradient perturbation lowers the training loss (Figure 5)",
        "Figure 5 (curves, no number)",
        seed_level(losses, "greater"),
    )
    add(
        "7b",
        "gradient perturbation makes the student more robust (dev accuracy under gradient-direction "
        "embedding perturbations, mean over eps > 0)",
        "stated, no number",
        seed_level(robustness, "greater"),
    )

    # 8. Table 2: speed and size
    speed = figures[figures["figure"].str.contains("speedup", case=False)]
    size = figures[figures["figure"].str.contains("size ratio", case=False)]
    sp, sz = (float(str(x.iloc[0]["value"]).rstrip("x")) if not x.empty else None for x in (speed, size))
    add(
        "8a",
        f"the student is {sp:g}x faster than the teacher (Table 2)",
        f"Table 2: {sp:g}x (1 V100)",
        ratio_claim(timing, "seconds", sp),
        unit="x",
    )
    add(
        "8b",
        f"the student is {sz:g}x smaller than the teacher (Table 2)",
        f"Table 2: 109M / 14.5M = {sz:g}x",
        ratio_claim(timing, "params", sz),
        unit="x",
    )
    return rows


def seed_level(values: dict, kind: str) -> dict:
    """A claim measured once per seed (no per-example data): {"a": [...], "b": [...]} of a - b > 0, bootstrap
    over the seeds of each system (``scipy.stats.bootstrap``)."""
    if not values or not values.get("a") or not values.get("b"):
        return {
            "verdict": "inconclusive",
            "note": values.get("note", "not measured in this configuration")
            if values
            else "not measured in this configuration",
        }
    from scipy import stats as st

    a, b = np.asarray(values["a"], float), np.asarray(values["b"], float)
    est = float(a.mean() - b.mean())
    out = {"estimate": est, "seeds": f"{len(a)}/{len(b)}", "note": values.get("note", "")}
    if len(a) < 2 or len(b) < 2:
        return {
            **out,
            "verdict": "inconclusive",
            "note": (out["note"] + "; " if out["note"] else "") + "an interval needs 2+ seeds per system",
            "seeds_needed": "unknown: seed variance needs 2+ seeds per system",
        }
    res = st.bootstrap(
        (a, b),
        lambda x, y: x.mean() - y.mean(),
        n_resamples=2000,
        method="percentile",
        vectorized=False,
        random_state=np.random.default_rng(0),
    )
    lo, hi = float(res.confidence_interval.low), float(res.confidence_interval.high)
    return {**out, "low": lo, "high": hi, "verdict": S.verdict(kind, lo, hi)}


def ratio_claim(timing: dict | None, what: str, paper: float | None) -> dict:
    """Teacher / student ratio of inference time (bootstrap over the timing repeats) or of parameters (exact)."""
    if not timing or paper is None:
        return {"verdict": "inconclusive", "note": "not timed in this configuration"}
    t, s = timing["models"]["teacher"], timing["models"]["student"]
    floor = paper * (1 - RATIO_TOLERANCE)
    if what == "params":
        r = t["params"] / s["params"]
        return {
            "estimate": r,
            "low": r,
            "high": r,
            "verdict": S.verdict("at_least", r, r, floor),
            "note": "exact (parameter counts)",
        }
    from scipy import stats as st

    a, b = np.asarray(t["all_seconds"], float), np.asarray(s["all_seconds"], float)
    est = float(np.median(a) / np.median(b))
    if len(a) < 2 or len(b) < 2:
        return {"estimate": est, "verdict": "inconclusive", "note": "an interval needs 2+ timing repeats"}
    res = st.bootstrap(
        (a, b),
        lambda x, y: np.median(x) / np.median(y),
        n_resamples=2000,
        method="percentile",
        vectorized=False,
        random_state=np.random.default_rng(0),
    )
    lo, hi = float(res.confidence_interval.low), float(res.confidence_interval.high)
    return {
        "estimate": est,
        "low": lo,
        "high": hi,
        "verdict": S.verdict("at_least", lo, hi, floor),
        "note": f"median time ratio over {len(a)} repeats on {timing.get('device', 'this device')}; "
        "the paper timed a V100",
    }


def final_losses(ev: Evidence, system: str, task: str) -> list[float]:
    """Per seed: the mean clean training loss over the last 10% of logged steps (LRC-BERT logs it as
    ``loss_clean``; a run without perturbation logs it as ``total``)."""
    out = []
    if system not in ev.devs or task not in ev.devs[system]["tasks"]:
        return out
    for s in ev.devs[system]["tasks"][task]["seeds"].values():
        f = Path(s["run"]) / "losses.csv"
        if not f.is_file():
            continue
        frame = pd.read_csv(f)
        col = "loss_clean" if "loss_clean" in frame and frame["loss_clean"].notna().any() else "total"
        tail = frame[col].dropna().iloc[-max(1, len(frame) // 10) :]
        out.append(float(tail.mean()))
    return out


def robustness_values(files: dict, eps_positive: bool = True) -> dict:
    """Per seed: dev accuracy under gradient-direction perturbation, mean over eps > 0."""
    out = {}
    for key, f in files.items():
        res = read_json(f)
        vals = []
        for run in res["runs"].values():
            acc = run["accuracy"].get("gradient") or next(iter(run["accuracy"].values()))
            vals.append(float(np.mean([v for e, v in acc.items() if float(e) > 0 or not eps_positive])))
        out[key] = vals
    return out


def fmt(x, spec=".2f"):
    return "" if x is None or (isinstance(x, float) and not math.isfinite(x)) else format(x, spec)


def render(rows: list[dict], data_source: str, n_resamples: int) -> tuple[str, pd.DataFrame]:
    table = []
    for r in rows:
        unit = r.get("unit", "points")
        suffix = "%" if unit.startswith("%") else unit
        measured = (
            "not measured"
            if r.get("estimate") is None
            else (f"{r['estimate']:+.2f}" if unit == "points" else f"{r['estimate']:.2f}{suffix}")
        )
        if r.get("low") is not None:
            measured += f" [{r['low']:.2f}, {r['high']:.2f}]"
        table.append(
            {
                "#": r["id"],
                "Claim": r["claim"],
                "Paper": r["evidence"],
                "Measured (95% CI)": measured,
                "Seeds": r.get("seeds", ""),
                "Verdict": f"**{r['verdict']}**" if r.get("group") == "summary" else r["verdict"],
                "Seeds for 80% power": r.get("seeds_needed", ""),
                "Note": r.get("note", ""),
            }
        )
    frame = pd.DataFrame(
        [
            {
                k: r.get(k)
                for k in (
                    "id",
                    "claim",
                    "evidence",
                    "paper_delta",
                    "estimate",
                    "low",
                    "high",
                    "seeds",
                    "verdict",
                    "seeds_needed",
                    "note",
                )
            }
            for r in rows
        ]
    )
    counts = frame[~frame["id"].str.contains(r"\.")]["verdict"].value_counts().to_dict()
    lines = header("Claims of the paper, checked", data_source) + [
        "One row per quantitative claim of LRC-BERT (Fu et al., 2020), in our words, with the paper's evidence, "
        "the difference this suite measured on the GLUE **dev** sets (LRC-BERT minus the other system, in points "
        "of the task metric x100, unless a ratio) and its 95% interval, and a verdict. Rows 1a-1c summarise the "
        "per-split rows under them.",
        "",
        "**Verdicts so far** (summary rows): " + ", ".join(f"{v}: {n}" for v, n in sorted(counts.items())),
        "",
        "**Interval.** A percentile bootstrap (`scipy.stats.bootstrap`, "
        f"{n_resamples} resamples) that resamples, independently, (i) the dev examples of each split, with the "
        "same draw for both systems and all their seeds, so that the comparison is paired over examples, and "
        "(ii) each system's seeds (when it has two or more). It therefore covers both the luck of which examples "
        "the dev set holds and the luck of the training seeds. Each system's number is its mean over seeds at the "
        "learning rate chosen on dev (as in Table 1). Speed: bootstrap over the timing repeats; training loss and "
        "robustness: bootstrap over seeds (no per-example data).",
        "",
        f"**Rule.** {S.VERDICT_RULE} Margins used here: m = {SMALL_MARGIN:g} point; the teacher share counts as "
        f"reached within {SHARE_TOLERANCE:g} point of the paper's; ratio tolerance {100 * RATIO_TOLERANCE:g}%.",
        "",
        "**Seeds for 80% power** (inconclusive A > B rows only): seeds per system for a two-sided two-sample "
        "t-test at 5% to detect a difference of the paper's size, given the pooled seed standard deviation "
        "measured here (of the claim's quantity, per seed); few seeds make that sd itself uncertain.",
        "",
        "**Caveat.** The paper's Table 1 reports the GLUE test server; we measure dev sets, so a claim is checked "
        "as a direction and size on dev, never as equality with the paper's numbers.",
        "",
        md_frame(pd.DataFrame(table)).to_markdown(index=False),
        "",
    ]
    return "\n".join(lines), frame


if __name__ == "__main__":
    smk = snakemake  # noqa: F821
    with open(smk.log[0], "w") as log:
        sys.stdout = sys.stderr = log
        p = smk.params
        ev = Evidence(list(smk.input.dev), p.systems, p.n_resamples)
        paper = {
            "table1": pd.read_csv(smk.input.table1),
            "table3": pd.read_csv(smk.input.table3),
            "table4": pd.read_csv(smk.input.table4),
        }
        figures = pd.read_csv(smk.input.figures)
        timing = read_json(smk.input.timing) if smk.input.get("timing") else None
        rob = robustness_values(dict(zip(p.robustness_systems, smk.input.robustness)))
        robustness = (
            {"a": rob[p.reference], "b": rob[p.figure5_system]}
            if p.reference in rob and p.figure5_system in rob
            else {}
        )
        losses = {
            "a": final_losses(ev, p.figure5_system, p.figure5_task),
            "b": final_losses(ev, p.reference, p.figure5_task),
            "note": "LRC-BERT_g minus LRC-BERT: final clean training loss (mean of the last 10% of logged steps)",
        }
        rows = claims(ev, paper, figures, timing, robustness, losses, {"table3_splits": p.table3_splits})
        text, frame = render(rows, p.data_source, p.n_resamples)
        write_table(text, smk.output.md, frame, smk.output.csv)
        print(text)
