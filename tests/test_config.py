"""Configuration: every ambiguity of the paper is a key with the documented default; bad input is refused
with a message naming the key."""
import pytest

from lrcbert.config import ConfigError, load_config
from lrcbert.objective import METHODS, load_plugins


def test_paper_defaults():
    cfg = load_config()
    m = cfg.method
    # spec section 7: representation, negatives, shared W, one-hot target, no T^2, per-example norm, step 1
    assert (m.representation, m.negatives, m.projection, m.hard_target, m.soft_t2) == \
        ("flatten", "in_batch", "shared", "one_hot", False)
    assert (m.perturb, m.perturb_norm, m.perturb_eps) == (True, "per_example", 1.0)
    assert cfg.model.student_init == "random"
    # sections 2 and 4: tau 1.1, 80% stage split, 1:0:0 then 1:1:3, batch 16, length 128, 4L-312-1200-12
    assert m.temperature == 1.1 and m.stage_split == 0.8
    assert m.stage1 == {"layer": 1.0, "soft": 0.0, "hard": 0.0} and m.stage2 == {"layer": 1.0, "soft": 1.0, "hard": 3.0}
    assert cfg.train.batch_size == 16 and cfg.data.max_length == 128
    assert cfg.model.student_arch == dict(num_hidden_layers=4, hidden_size=312, intermediate_size=1200,
                                          num_attention_heads=12)


def test_yaml_file_then_overrides(tmp_path):
    f = tmp_path / "c.yaml"
    f.write_text("train: {lr: 1e-4, epochs: 2}\nmethod: {perturb: false}\n")
    cfg = load_config([f], ["train.epochs=5", "method.stage2={layer: 1, soft: 2, hard: 4}"])
    assert cfg.train.lr == 1e-4 and cfg.train.epochs == 5.0 and cfg.method.perturb is False
    assert cfg.method.stage2 == {"layer": 1, "soft": 2, "hard": 4}


@pytest.mark.parametrize("override, message", [
    (["train.lrr=1"], "unknown config key 'train.lrr'"),
    (["nosuch.key=1"], "unknown config key 'nosuch'"),
    (["train.epochs=many"], "config key 'train.epochs' must be of type float"),
    (["train.batch_size=1.5"], "config key 'train.batch_size' must be of type int"),
    (["method.perturb=maybe"], "config key 'method.perturb' must be of type bool"),
    (["method.layer_loss=l1"], "config key 'method.layer_loss' is 'l1'; allowed: cos_nce, mse"),
    (["method.stage_split=1.5"], "config key 'method.stage_split' must lie in [0, 1]"),
    (["method.stage2={soft: -1}"], "config key 'method.stage2.soft' must be a number >= 0"),
    (["train.batch_size=1"], "must be >= 2"),
    (["data.source=tsv"], "config key 'data.path' is required"),
    (["model.student_init=path"], "config key 'model.student' is required"),
    (["train.lr"], "is not of the form key=value"),
])
def test_bad_values_name_the_key(override, message):
    with pytest.raises(ConfigError) as e:
        load_config(overrides=override)
    assert message in str(e.value) and "\n" not in str(e.value)


def test_bad_file_key_names_the_file(tmp_path):
    f = tmp_path / "bad.yaml"
    f.write_text("method:\n  temprature: 2\n")
    with pytest.raises(ConfigError, match=r"bad.yaml: unknown config key 'method.temprature'"):
        load_config([f])
    with pytest.raises(ConfigError, match="config file not found"):
        load_config([tmp_path / "missing.yaml"])


def test_hash_changes_with_any_key():
    a, b = load_config(), load_config(overrides=["method.perturb_eps=0.5"])
    assert a.hash() == load_config().hash() and a.hash() != b.hash()


def test_hash_covers_only_settings_that_differ_from_the_defaults():
    """So that a key added later with a backward-compatible default keeps every existing run's hash."""
    import hashlib
    import json
    assert load_config(overrides=["method.temperature=1.1"]).hash() == load_config().hash()     # the default
    assert load_config(overrides=["train.checkpoint_every=7"]).hash() == load_config().hash()   # book-keeping
    cfg = load_config(overrides=["method.perturb_eps=0.5", "task=rte"])
    diff = {"task": "rte", "data": {}, "model": {}, "method": {"perturb_eps": 0.5}, "train": {}}
    assert cfg.hash() == hashlib.sha256(json.dumps(diff, sort_keys=True).encode()).hexdigest()[:12]


def test_presets_are_diffs_of_known_keys():
    load_plugins()                          # the baselines' presets too, whatever ran before
    assert "tinybert_intermediate" in METHODS
    # a student to continue from: TinyBERT's stage-1 preset takes W from it (method.projection_init: student)
    student = {"student_init": "path", "student": "runs/general/x/model"}
    for name, diff in METHODS.items():
        cfg = load_config(base={"method": diff, "model": student})
        for k, v in diff.items():
            assert getattr(cfg.method, k) == v, (name, k)
    assert load_config(base={"method": METHODS["finetune"]}).method.perturb is False
