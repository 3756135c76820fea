"""Issue 24: a method in one file, in a package of its own. The example of docs/add-a-method.md
(examples/logit-mse) is installed as a user would (pip, into a folder of its own: the shared environment is not
changed), found through its ``lrcbert.methods`` entry point and run one step through the command line, its own
setting given with --set and a bad value refused in one line."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from conftest import STUDENT, finetune_teacher, synthetic_sets

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """examples/logit-mse installed with pip into a folder (its .dist-info carries the entry point)."""
    tmp = tmp_path_factory.mktemp("plugin")
    shutil.copytree(ROOT / "examples" / "logit-mse", tmp / "src")  # the build writes next to its sources
    cmd = [sys.executable, "-m", "pip", "install", "--no-deps", "--no-build-isolation", "--no-index", "--quiet"]
    subprocess.run([*cmd, "--target", str(tmp / "site"), str(tmp / "src")], check=True, capture_output=True)
    return tmp / "site"


def lrcbert(site, *args):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")])}
    return subprocess.run([sys.executable, "-m", "lrcbert", *args], capture_output=True, text=True, env=env, cwd=ROOT)


def test_a_method_from_its_own_package_runs_through_the_command_line(site, glue_dir, tmp_path):
    teacher = finetune_teacher(glue_dir, tmp_path / "teacher", max_steps=2)
    out = tmp_path / "student"
    arch = [f"model.student_arch.{k}={v}" for k, v in STUDENT.items()]
    sets = synthetic_sets(glue_dir, f"model.teacher={teacher / 'model'}", "train.max_steps=1", "train.batch_size=8")
    sets += [w for kv in [*arch, "method.options.logit_scale=2.0"] for w in ("--set", kv)]
    p = lrcbert(site, "distill", "--method", "logit_mse", "--task", "rte", "--out", str(out), *sets)
    assert p.returncode == 0, p.stderr[-3000:]
    record = json.loads((out / "run.json").read_text())
    assert record["method"] == "logit_mse" and record["steps"] == 1
    config = yaml.safe_load((out / "config.yaml").read_text())
    assert config["method"]["options"] == {"logit_scale": 2.0, "center": False}  # checked, defaults filled in
    header = (out / "losses.csv").read_text().splitlines()[0].split(",")
    assert "logit_mse" in header and "hard" in header and "layer" not in header  # the run's own terms only

    for value, message in [
        (
            "method.options.logit_scale=0",
            "lrcbert: error: --set method.options.logit_scale=0: config key 'method.options.logit_scale' must be "
            "> 0.0, got 0",
        ),
        (
            "method.options.logit_scal=2",
            "lrcbert: error: --set method.options.logit_scal=2: unknown config key 'method.options.logit_scal'; "
            "did you mean 'logit_scale'? (known here: center, logit_scale)",
        ),
    ]:
        p = lrcbert(
            site, "distill", "--method", "logit_mse", "--task", "rte", "--out", str(tmp_path / "y"), "--set", value
        )
        assert p.returncode == 2 and p.stderr.strip() == message, p.stderr
    assert not (tmp_path / "y").exists()  # nothing half-written
