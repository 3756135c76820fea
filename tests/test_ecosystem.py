"""The suite's ecosystem plumbing: the workflow scripts' common start (job_log), figure styles, model cards and
the push command, experiment trackers, logging."""

import logging
import re
import sys
import types
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "workflow" / "scripts"))


def _smk(log: Path):
    return types.SimpleNamespace(log=[str(log)])


def test_job_log_sends_prints_and_the_traceback_to_the_rule_log(tmp_path, capsys):
    from lrcbert.results import job_log

    log = tmp_path / "job.log"
    before = sys.stdout, sys.stderr
    with pytest.raises(KeyError, match="missing-key"), job_log(_smk(log)) as smk:
        assert smk.log == [str(log)]
        print("to stdout")
        print("to stderr", file=sys.stderr)
        {}["missing-key"]
    assert (sys.stdout, sys.stderr) == before
    text = log.read_text()
    assert text.startswith("to stdout\nto stderr\nTraceback")
    assert text.rstrip().endswith("KeyError: 'missing-key'")
    out = capsys.readouterr()
    assert "to stdout" not in out.out and "to stderr" not in out.err


def test_series_styles_nest_coinciding_curves():
    from lrcbert.results import series_style

    styles = [series_style(k, 5) for k in range(5)]
    assert len({s["marker"] for s in styles}) == 5
    sizes, widths = [s["markersize"] for s in styles], [s["linewidth"] for s in styles]
    assert sizes == sorted(sizes, reverse=True) and len(set(sizes)) == 5  # each later one inside
    assert widths == sorted(widths, reverse=True) and widths[-1] == 1.0


# -- model cards, push, tracking: one tiny teacher and one student distilled from it with TensorBoard on ----------


@pytest.fixture(scope="module")
def runs(glue_dir, tmp_path_factory):
    """A tiny teacher, and a student distilled from it with TensorBoard on that is killed between checkpoints
    (simulated: stopped at step 7, its step-7 checkpoint removed) and resumed from step 5."""
    import shutil

    from conftest import finetune_teacher, tiny_config

    from lrcbert.run import run

    root = tmp_path_factory.mktemp("eco")
    teacher = finetune_teacher(glue_dir, root / "teacher")

    def cfg(**train):
        return tiny_config(
            glue_dir,
            task="rte",
            model={"teacher": str(teacher / "model"), "teacher_random_init": False},
            train={"epochs": 2, "log_every": 1, "report_to": "tensorboard", "checkpoint_every": 5, **train},
        )

    student = root / "student"
    run(cfg(stop_after_steps=7), student, "distill")
    shutil.rmtree(student / "checkpoints" / "step-00000007")  # steps 6-7 were logged, their checkpoint is lost
    run(cfg(), student, "distill")
    return {"teacher": teacher, "student": student}


def test_saved_models_load_with_auto_classes_and_carry_a_parsable_card(runs):
    import json

    from huggingface_hub import ModelCard
    from transformers import AutoModelForSequenceClassification

    for name in ("teacher", "student"):
        model_dir = runs[name] / "model"
        model = AutoModelForSequenceClassification.from_pretrained(model_dir)
        assert model.config.num_labels == 2
        card = ModelCard.load(model_dir / "README.md")
        metrics = json.loads((runs[name] / "metrics.json").read_text())
        assert card.data.config_hash == metrics["config_hash"]
        assert card.data.license == "mit" and card.data.library_name == "transformers"
        assert card.data.eval_results is None  # generated data: no model-index entries
        acc = metrics["splits"]["rte"]["accuracy"]
        assert f"accuracy = {acc:.4g}" in card.text  # the dev metrics, in the text
        assert "generated (synthetic)" in card.text and "LRC-BERT" in card.text
        assert "AutoModelForSequenceClassification.from_pretrained" in card.text
    student = ModelCard.load(runs["student"] / "model" / "README.md")
    assert f"`{runs['teacher'] / 'model'}`" in student.text and "method:lrcbert" in student.data.tags


def test_card_of_a_glue_run_lists_its_dev_metrics_as_model_index_results(glue_dir):
    from lrcbert.config import load_config
    from lrcbert.modelcard import build_card

    cfg = load_config(overrides=["task=mrpc", "data.source=tsv", "data.path=data/glue"])
    metrics = {
        "mrpc": {
            "split": "dev",
            "n": 408,
            "accuracy": 0.75,
            "f1": 0.8125,
            "score": 81.25,
            "test_predictions": "predictions/MRPC.tsv",
        }
    }
    card = build_card(cfg, "distill", metrics)
    got = {
        (r.dataset_type, r.dataset_config, r.dataset_split, r.metric_type): r.metric_value
        for r in card.data.eval_results
    }
    assert got == {
        ("nyu-mll/glue", "mrpc", "validation", "accuracy"): 0.75,
        ("nyu-mll/glue", "mrpc", "validation", "f1"): 0.8125,
    }
    assert card.data.datasets == ["nyu-mll/glue"] and card.data.base_model is None  # random student
    assert build_card(load_config(overrides=["task=sst2"]), "finetune", {}).data.base_model == "bert-base-uncased"
    # generated data read as TSV (as the smoke workflow does) is still named generated, with no model-index
    generated = build_card(
        load_config(overrides=["task=mrpc", "data.source=tsv", f"data.path={glue_dir}"]), "distill", metrics
    )
    assert generated.data.eval_results is None and generated.data.datasets is None
    assert "generated (synthetic)" in generated.text and "accuracy = 0.75" in generated.text


def test_tensorboard_holds_one_series_per_loss_term_equal_to_losses_csv(runs):
    """Each loss term one scalar series, equal to losses.csv step for step: the resumed run's events replace
    those logged after its checkpoint (no step twice)."""
    import pandas as pd
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(runs["student"] / "tracking"), size_guidance={"scalars": 0})
    events.Reload()
    tags = set(events.Tags()["scalars"])
    rows = pd.read_csv(runs["student"] / "losses.csv")
    terms = [c for c in ("layer", "soft", "hard") if rows[c].notna().any()]
    assert terms == ["layer", "soft", "hard"]  # LRC-BERT: both stages ran
    for term in terms:
        scalars = events.Scalars(f"loss/{term}")
        series = {e.step: e.value for e in scalars}
        expected = rows.dropna(subset=[term]).set_index("step")[term]
        assert [e.step for e in scalars] == list(expected.index)  # each step once, in order
        assert all(series[s] == pytest.approx(v, rel=1e-6) for s, v in expected.items())
    for tag in ("loss/total", "loss/clean", "lr", "weight/layer", "dev/rte/accuracy"):
        assert tag in tags
    lr = {e.step: e.value for e in events.Scalars("lr")}
    assert lr == pytest.approx(dict(zip(rows["step"], rows["lr"])), rel=1e-6)


def test_report_to_is_checked_and_not_hashed():
    from lrcbert.config import ConfigError, load_config

    with pytest.raises(ConfigError, match="train.report_to"):
        load_config(overrides=["train.report_to=comet"])
    assert load_config(overrides=["train.report_to=wandb"]).hash() == load_config().hash()


def test_a_tracker_that_is_not_installed_stops_the_run_before_any_work(tmp_path, monkeypatch, capsys):
    from accelerate import utils

    from lrcbert.cli import main

    monkeypatch.setattr(utils, "is_wandb_available", lambda: False)
    code = main(["finetune", "--task", "rte", "--set", "train.report_to=wandb", "--out", str(tmp_path / "run")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and err[-1].startswith("lrcbert: error: config key 'train.report_to' is 'wandb'")
    assert not (tmp_path / "run").exists()


class HubStandIn:
    """A stand-in for the few Hugging Face hub endpoints an upload of small files uses, on 127.0.0.1: create a
    repository, validate a card's YAML, the pre-upload check (answering "regular" for every file, so contents
    come inline with the commit rather than through LFS) and the commit itself, whose files it keeps."""

    def __init__(self):
        import base64
        import json
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        self.repos, self.files, self.calls = [], {}, []
        hub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _reply(self, obj, status=200):
                body = json.dumps(obj).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                path = self.path.split("?")[0]
                hub.calls.append(path)
                base = f"http://127.0.0.1:{self.server.server_port}"
                if path == "/api/repos/create":
                    req = json.loads(body)
                    repo = f"{req['organization']}/{req['name']}" if req.get("organization") else req["name"]
                    hub.repos.append(repo)
                    return self._reply({"url": f"{base}/{repo}"})
                if path == "/api/validate-yaml":
                    return self._reply({})
                if "/preupload/" in path:
                    files = json.loads(body)["files"]
                    return self._reply(
                        {"files": [{"path": f["path"], "uploadMode": "regular", "shouldIgnore": False} for f in files]}
                    )
                if "/commit/" in path:
                    for line in body.decode().splitlines():
                        item = json.loads(line)
                        if item["key"] == "file":
                            hub.files[item["value"]["path"]] = base64.b64decode(item["value"]["content"])
                    repo = path.split("/api/models/")[1].split("/commit/")[0]
                    return self._reply({"commitUrl": f"{base}/{repo}/commit/abc123", "commitOid": "abc123"})
                return self._reply({"error": f"stand-in: no endpoint {path}"}, 404)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def test_push_uploads_the_model_folder_with_its_card(runs, monkeypatch, capsys):
    import json

    from huggingface_hub import constants

    from lrcbert.cli import main

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setenv("HF_TOKEN", "stand-in-token")
    hub = HubStandIn()
    try:
        assert main(["push", str(runs["student"]), "--repo-id", "org/lrc-student", "--endpoint", hub.url]) == 0
    finally:
        hub.close()
    assert hub.repos == ["org/lrc-student"]
    model = runs["student"] / "model"
    local = {p.name: p.read_bytes() for p in model.iterdir() if p.is_file()}
    assert "README.md" in local and "model.safetensors" in local
    assert hub.files == local  # every file, byte for byte
    out = json.loads(capsys.readouterr().out)
    assert out["commit"].endswith("/org/lrc-student/commit/abc123")


def test_push_refuses_what_it_cannot_upload(runs, tmp_path, monkeypatch, capsys):
    from huggingface_hub import constants

    from lrcbert.cli import main

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    assert main(["push", str(runs["student"]), "--repo-id", "org/x"]) == 2
    assert "HF_HUB_OFFLINE" in capsys.readouterr().err
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    assert main(["push", str(tmp_path), "--repo-id", "org/x", "--endpoint", "http://127.0.0.1:9"]) == 2
    assert "not a finished run folder" in capsys.readouterr().err


@pytest.mark.parametrize("verbosity", ["quiet", "normal", "verbose"])
def test_logging_levels_and_transformers_load_report(verbosity, tmp_path):
    """In a fresh process, as in a job: lrcbert's messages in one format, transformers' load report (a model
    with a new head) only when verbose."""
    import os
    import subprocess

    from conftest import MINILM

    script = tmp_path / "job.py"
    script.write_text(
        "import logging\n"
        "from lrcbert.log import setup\n"
        f"setup({verbosity!r})\n"
        "logging.getLogger('lrcbert.run').info('an info message')\n"
        "logging.getLogger('lrcbert.run').warning('a warning')\n"
        "from transformers import AutoModelForSequenceClassification\n"
        f"AutoModelForSequenceClassification.from_pretrained({MINILM!r}, num_labels=2)\n"
    )
    env = {k: v for k, v in os.environ.items() if k not in ("TRANSFORMERS_VERBOSITY", "DATASETS_VERBOSITY")}
    env["PYTHONPATH"] = str(ROOT)
    res = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, env=env, timeout=600)
    assert res.returncode == 0, res.stderr
    assert ("an info message" in res.stderr) == (verbosity != "quiet")
    assert re.search(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d WARNING lrcbert.run: a warning$", res.stderr, re.M)
    assert ("LOAD REPORT" in res.stderr) == (verbosity == "verbose")


def test_logging_setup_after_transformers_was_imported(monkeypatch):
    import transformers

    from lrcbert.log import setup

    for var in ("TRANSFORMERS_VERBOSITY", "DATASETS_VERBOSITY"):
        monkeypatch.delenv(var, raising=False)  # restored afterwards
    before = transformers.utils.logging.get_verbosity()
    try:
        setup("verbose")
        assert transformers.utils.logging.get_verbosity() == logging.INFO
        setup("quiet")
        assert transformers.utils.logging.get_verbosity() == logging.ERROR
    finally:
        transformers.utils.logging.set_verbosity(before)
