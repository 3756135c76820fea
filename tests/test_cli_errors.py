"""The command line: an error a user causes is one line ``lrcbert: error: ...`` naming the culprit and exit 2; a
bug keeps its traceback; ``--debug`` shows every traceback; ``--help`` and a config error need no torch."""

import errno
import subprocess
import sys
from pathlib import Path

import pytest

from lrcbert import cli
from lrcbert.cli import main

ROOT = Path(__file__).resolve().parents[1]
HEAVY = ("torch", "transformers", "datasets")


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "lrcbert", *args], capture_output=True, text=True, cwd=ROOT)


def one_error_line(stderr: str) -> str:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("lrcbert: error: "), stderr
    return lines[0]


@pytest.mark.parametrize(
    "override, message",
    [
        ("train.max_steps=-1", "config key 'train.max_steps' must be >= 1, got -1"),
        ("train.epochs=.inf", "config key 'train.epochs' must be a finite number, got inf"),
        ("train.lr=nan", "config key 'train.lr' must be a number, got 'nan'"),
        ("train.seed=-1", "config key 'train.seed' must be >= 0, got -1"),
        ("model.student_arch.num_hidden_layer=1", "unknown config key 'model.student_arch.num_hidden_layer'"),
    ],
)
def test_bad_values_stop_with_one_line_naming_key_and_override(override, message, tmp_path, capsys):
    """Findings 7 and 9: each of these used to start (or finish) a run, or end in a traceback."""
    out = tmp_path / "run"
    code = main(
        [
            "distill",
            "--config",
            str(ROOT / "config/quickstart.yaml"),
            "--task",
            "sst2",
            "--out",
            str(out),
            "--set",
            override,
        ]
    )
    assert code == 2
    assert one_error_line(capsys.readouterr().err).startswith(f"lrcbert: error: --set {override}: {message}")
    assert not out.exists()


def test_yaml_errors_name_file_line_and_column(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("train:\n  lr: 1e-4\n  epochs: [1, 2\n")
    assert main(["finetune", "--config", str(bad), "--task", "rte", "--out", str(tmp_path / "r")]) == 2
    assert one_error_line(capsys.readouterr().err).startswith(f"lrcbert: error: {bad}:4:1: YAML syntax error: ")
    bad.write_text("train:\n  lr: 1.0e-4\ntrain:\n  epochs: 2\n")
    assert main(["finetune", "--config", str(bad), "--task", "rte", "--out", str(tmp_path / "r")]) == 2
    assert one_error_line(capsys.readouterr().err) == (
        f"lrcbert: error: {bad}:3: key 'train' is given twice (first on line 1); YAML would silently keep only the last"
    )


def test_method_presets_are_checked_on_one_line(tmp_path, capsys):
    args = ["--task", "rte", "--out", str(tmp_path / "r")]
    for argv, known in (
        (["distill", *args, "--method", "pdk"], "'ackd', 'bert_m', 'codir',"),
        (["distill", *args, "--method", "general"], "'tinybert_intermediate'"),
        (
            ["general-distill", "--out", str(tmp_path / "g"), "--method", "lrcbert"],
            "(choose from 'general', 'tinybert_general')",
        ),
    ):
        code = main(argv)
        err = capsys.readouterr().err.strip().splitlines()
        assert code == 2 and len(err) == 1, err
        assert err[0].startswith(f"lrcbert {argv[0]}: error: argument --method: invalid choice: '{argv[-1]}'")
        assert known in err[0]
    from lrcbert.assemble import command_config  # the same check for callers of command_config (the workflow)
    from lrcbert.config import ConfigError

    with pytest.raises(
        ConfigError, match="--method 'general' is not a preset for 'distill'; choose from: ackd, bert_m,"
    ):
        command_config("distill", "general", "rte")
    with pytest.raises(ConfigError, match="unknown method 'pdk'; known: ackd,"):
        command_config("distill", "pdk", "rte")


def test_distill_help_lists_lrcbert_presets_without_loading_the_baselines(capsys):
    from lrcbert.presets import METHODS

    assert main(["distill", "--help"]) == 0
    text = " ".join(capsys.readouterr().out.split())
    for name in ("lrcbert", "intermediate", "lrcbert_c", "lrcbert_s", "lrcbert_h", "lrcbert_g", "lrcbert_2", "bert_m"):
        assert name in METHODS and (f"{name}," in text or f"{name})" in text), name


def test_command_line_mistakes_are_one_line(capsys):
    assert main(["make-synthetic", "--out", "x", "--seed", "-1"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        "lrcbert make-synthetic: error: argument --seed: -1 is not in [0, inf] (see lrcbert make-synthetic --help)"
    ]


def _raising(exc):
    def fail(*args, **kwargs):
        raise exc

    return fail


@pytest.mark.parametrize(
    "exc, message",
    [
        (
            OSError(errno.ENOSPC, "No space left on device", "runs/x/model.safetensors"),
            "lrcbert: error: runs/x/model.safetensors: No space left on device",
        ),
        (
            FileNotFoundError(errno.ENOENT, "No such file or directory", "teachers/rte"),
            "lrcbert: error: teachers/rte: No such file or directory",
        ),
    ],
)
def test_file_system_errors_are_one_line_naming_the_file(exc, message, monkeypatch, tmp_path, capsys):
    import lrcbert.run

    monkeypatch.setattr(lrcbert.run, "run", _raising(exc))
    assert main(["finetune", "--task", "rte", "--out", str(tmp_path / "r")]) == 2
    assert one_error_line(capsys.readouterr().err) == message


def test_a_truncated_safetensors_file_is_one_line(monkeypatch, tmp_path, capsys):
    import torch
    from safetensors.torch import load_file, save_file

    import lrcbert.run

    path = tmp_path / "model.safetensors"
    save_file({"w": torch.zeros(64, 64)}, str(path))
    path.write_bytes(path.read_bytes()[:1000])
    with pytest.raises(Exception) as real:  # the error safetensors itself raises
        load_file(str(path))
    monkeypatch.setattr(lrcbert.run, "run", _raising(real.value))
    assert main(["finetune", "--task", "rte", "--out", str(tmp_path / "r")]) == 2
    assert one_error_line(capsys.readouterr().err).startswith("lrcbert: error: cannot read a safetensors file: ")


def test_a_bug_keeps_its_traceback_and_debug_shows_every_traceback(monkeypatch, tmp_path, capsys):
    import lrcbert.run

    monkeypatch.setattr(lrcbert.run, "run", _raising(ZeroDivisionError("a bug")))
    with pytest.raises(ZeroDivisionError):
        main(["finetune", "--task", "rte", "--out", str(tmp_path / "r")])
    from lrcbert.config import ConfigError

    monkeypatch.setattr(lrcbert.run, "run", _raising(ConfigError("a user error")))
    assert main(["finetune", "--task", "rte", "--out", str(tmp_path / "r")]) == 2
    for argv in (["--debug", "finetune"], ["finetune", "--debug"]):
        with pytest.raises(ConfigError, match="a user error"):
            main([*argv, "--task", "rte", "--out", str(tmp_path / "r")])


def test_ctrl_c_outside_training_is_one_line(monkeypatch, tmp_path, capsys):
    import lrcbert.run

    monkeypatch.setattr(lrcbert.run, "run", _raising(KeyboardInterrupt()))
    assert main(["finetune", "--task", "rte", "--out", str(tmp_path / "r")]) == cli.EXIT_INTERRUPTED == 130
    assert capsys.readouterr().err.strip().splitlines() == ["lrcbert: interrupted (Ctrl-C)"]
    with pytest.raises(KeyboardInterrupt):
        main(["--debug", "finetune", "--task", "rte", "--out", str(tmp_path / "r")])


def test_end_to_end_exit_status_and_traceback_in_a_fresh_process(tmp_path):
    args = ["finetune", "--task", "rte", "--out", str(tmp_path / "r"), "--set", "train.lr=-1"]
    p = run_cli(*args)
    assert p.returncode == 2 and "Traceback" not in p.stderr
    assert one_error_line(p.stderr) == "lrcbert: error: --set train.lr=-1: config key 'train.lr' must be > 0.0, got -1"
    p = run_cli("--debug", *args)
    assert p.returncode == 1 and "Traceback (most recent call last)" in p.stderr and "ConfigError" in p.stderr


SNIPPET = """
import sys
from lrcbert.cli import main
try:
    code = main(sys.argv[1:])
except SystemExit as e:
    code = e.code
print(code, sorted(m for m in {heavy} if m in sys.modules))
"""


@pytest.mark.parametrize(
    "argv, code",
    [
        (["--help"], 0),
        (["distill", "--help"], 0),
        (["distill", "--task", "sst2", "--out", "/nonexistent/x", "--set", "train.lr=nan"], 2),
        (["distill", "--task", "sst2", "--out", "/nonexistent/x", "--config", "/nonexistent.yaml"], 2),
    ],
)
def test_help_and_config_errors_import_no_torch(argv, code):
    """Issue 15 item 0: the parser and configuration loading stay light (sys.modules, not a stopwatch)."""
    p = subprocess.run(
        [sys.executable, "-c", SNIPPET.format(heavy=HEAVY), *argv], capture_output=True, text=True, cwd=ROOT
    )
    assert p.stdout.strip().splitlines()[-1] == f"{code} []", p.stdout + p.stderr
