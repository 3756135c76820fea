"""What a newcomer meets first (issue 24): a top-level `--set` key that is the last part of a known dotted key
suggests it, every option of `lrcbert make-synthetic` has a help text, and `lrcbert status` without a plan
suggests snakemake commands that write the plan of the smoke grid and of the paper's grid."""

import argparse
import re
import shlex
from pathlib import Path

import pytest

from lrcbert.cli import build_parser, main
from lrcbert.config import ConfigError, load_config

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize(
    "override, guess",
    [
        ("lr=1e-3", "did you mean 'train.lr'?"),
        ("temperature=2", "did you mean 'method.temperature'?"),
        ("method.seed=1", "did you mean 'train.seed'?"),
        ("hidden_size=64", "did you mean 'model.teacher_overrides.hidden_size' or 'model.student_arch.hidden_size'?"),
    ],
)
def test_unknown_key_suggests_the_dotted_key_it_ends(override, guess):
    with pytest.raises(ConfigError) as e:
        load_config(overrides=[override])
    assert f"--set {override}: unknown config key '{override.split('=')[0]}'; {guess} (known here: " in str(e.value)


def test_set_lr_on_the_command_line_is_one_line_with_the_suggestion(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["distill", "--task", "rte", "--out", str(out), "--set", "lr=1e-3"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        "lrcbert: error: --set lr=1e-3: unknown config key 'lr'; did you mean 'train.lr'? "
        "(known here: data, method, model, task, train)"
    ]
    assert not out.exists()


def test_every_make_synthetic_option_has_help(capsys):
    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    parser = sub.choices["make-synthetic"]
    options = [a for a in parser._actions if a.option_strings and a.help != argparse.SUPPRESS]
    assert {o for a in options for o in a.option_strings} >= {"--out", "--seed", "--train", "--corpus-lines"}
    assert all(a.help for a in options), [a.option_strings for a in options if not a.help]
    from lrcbert.synthetic import DEFAULT_SIZES

    assert main(["make-synthetic", "--help"]) == 0
    text = " ".join(capsys.readouterr().out.split())
    for split, n in DEFAULT_SIZES.items():  # the defaults the help states are the generator's
        assert re.search(rf"--{split} {split.upper()} .*?\(default {n}\)", text), split
    assert "(default 2000)" in text and "(default 0)" in text


def test_status_without_a_plan_suggests_the_smoke_and_the_paper_plan(tmp_path, capsys):
    from snakemake.cli import get_argument_parser

    assert main(["status", "--plan", str(tmp_path / "results" / "plan.json")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"lrcbert: error: no plan at {tmp_path / 'results' / 'plan.json'}; ")
    commands = [shlex.split(c) for c in re.findall(r"`(snakemake [^`]+)`", err[0])]
    parsed = [get_argument_parser().parse_args(c[1:]) for c in commands]
    # each command must write the plan (a target, not a config file: `--configfile` takes every word after it)
    assert [sorted(map(str, a.targets)) for a in parsed] == [["results/plan.json"], ["results/plan.json"]]
    smoke, paper = parsed
    assert [str(p) for p in smoke.configfile] == ["config/smoke.yaml"] and (ROOT / "config/smoke.yaml").is_file()
    assert not paper.configfile
    assert "smoke grid" in err[0] and "paper's full grid" in err[0]
    assert err[0].endswith("; then give --plan results/plan.json")  # the commands write results/plan.json


@pytest.mark.parametrize("option", ["--train", "--dev", "--test"])
def test_make_synthetic_refuses_zero_examples_instead_of_the_default(option, tmp_path, capsys):
    # `--train 0` used to write the default 512 rows (a falsy size was taken for "not given")
    assert main(["make-synthetic", "--out", str(tmp_path / "d"), option, "0"]) == 2
    assert f"argument {option}: 0 is not in [1, inf]" in capsys.readouterr().err
    assert not (tmp_path / "d").exists()
