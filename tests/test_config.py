"""Configuration: every ambiguity of the paper is a key with the documented default; bad input is refused
with a message naming the key."""

import pytest

from lrcbert.config import ConfigError, load_config
from lrcbert.objective import METHODS, load_plugins


def test_paper_defaults():
    cfg = load_config()
    m = cfg.method
    # spec section 7: representation, negatives, shared W, one-hot target, no T^2, per-example norm, step 1
    assert (m.representation, m.negatives, m.projection, m.hard_target, m.soft_t2) == (
        "flatten",
        "in_batch",
        "shared",
        "one_hot",
        False,
    )
    assert (m.perturb, m.perturb_norm, m.perturb_eps) == (True, "per_example", 1.0)
    assert cfg.model.student_init == "random"
    # sections 2 and 4: tau 1.1, 80% stage split, 1:0:0 then 1:1:3, batch 16, length 128, 4L-312-1200-12
    assert m.temperature == 1.1 and m.stage_split == 0.8
    assert m.stage1 == {"layer": 1.0, "soft": 0.0, "hard": 0.0} and m.stage2 == {"layer": 1.0, "soft": 1.0, "hard": 3.0}
    assert cfg.train.batch_size == 16 and cfg.data.max_length == 128
    assert cfg.model.student_arch == dict(
        num_hidden_layers=4, hidden_size=312, intermediate_size=1200, num_attention_heads=12
    )


def test_yaml_file_then_overrides(tmp_path):
    f = tmp_path / "c.yaml"
    f.write_text("train: {lr: 1e-4, epochs: 2}\nmethod: {perturb: false}\n")
    cfg = load_config([f], ["train.epochs=5", "method.stage2={layer: 1, soft: 2, hard: 4}"])
    assert cfg.train.lr == 1e-4 and cfg.train.epochs == 5.0 and cfg.method.perturb is False
    assert cfg.method.stage2 == {"layer": 1, "soft": 2, "hard": 4}
    assert type(cfg.train.epochs) is float and type(cfg.method.stage2["soft"]) is int  # weights kept as written


def test_dotted_overrides_merge_into_mappings(tmp_path):
    """Finding 2: a dotted key inside a mapping changes that entry only (the student stays 312 wide, stage 2 keeps
    its layer and soft terms); a file, a whole mapping given by --set and a later override merge the same way."""
    arch = dict(num_hidden_layers=1, hidden_size=312, intermediate_size=1200, num_attention_heads=12)
    assert load_config(overrides=["model.student_arch.num_hidden_layers=1"]).model.student_arch == arch
    assert load_config(overrides=["model.student_arch={num_hidden_layers: 1}"]).model.student_arch == arch
    assert load_config(overrides=["method.stage2.hard=5"]).method.stage2 == {"layer": 1.0, "soft": 1.0, "hard": 5}
    f = tmp_path / "c.yaml"
    f.write_text("model: {student_arch: {num_hidden_layers: 1}}\nmethod:\n  stage2: {hard: 5}\n")
    cfg = load_config([f], ["method.stage2.soft=0"])
    assert cfg.model.student_arch == arch and cfg.method.stage2 == {"layer": 1.0, "soft": 0, "hard": 5}
    # a preset is complete: the terms it leaves out weigh nothing, and overrides merge over the preset
    general = load_config(overrides=["method.stage2.layer=2"], base={"method": METHODS["general"]}).method
    assert general.stage1 == {"layer": 1.0} and general.stage2 == {"layer": 2}
    # a run's saved config reads back as it was written (no merging with the defaults)
    from lrcbert.config import config_from_dict

    assert config_from_dict(load_config(base={"method": METHODS["general"]}).to_dict()).method.stage2 == {"layer": 1.0}


def test_unknown_keys_inside_mappings():
    with pytest.raises(
        ConfigError,
        match=r"unknown config key 'model.student_arch.num_hidden_layer'; "
        r"did you mean 'num_hidden_layers'\? \(known here: ",
    ):
        load_config(overrides=["model.student_arch.num_hidden_layer=1"])
    with pytest.raises(ConfigError, match=r"unknown config key 'model.teacher_overrides.hidden'"):
        load_config(base={"model": {"teacher_overrides": {"hidden": 3}}})
    with pytest.raises(
        ConfigError, match=r"unknown config key 'method.stage2.hrad'; did you mean 'hard'\?.*hard, layer"
    ):
        load_config(overrides=["method.stage2.hrad=5"])
    load_plugins()
    assert load_config(overrides=["method.stage2.pkd=100"]).method.stage2["pkd"] == 100  # a plug-in's term


def test_bert_arch_keys_are_bertconfigs_own():
    import inspect
    from typing import get_type_hints

    from transformers import BertConfig

    from lrcbert.config import BertArch

    own = {n for n, p in inspect.signature(BertConfig.__init__).parameters.items() if p.kind is p.KEYWORD_ONLY}
    assert set(get_type_hints(BertArch)) == own


def test_one_registry_of_terms():
    """The terms a stage map may weigh are the terms the objective computes: one registry (lrcbert.presets)."""
    from lrcbert import objective, presets

    load_plugins()
    assert objective.TERMS is presets.TERMS and presets.term_names() == set(presets.TERMS) >= {"layer", "pkd"}
    assert not hasattr(presets, "TERM_NAMES") and not hasattr(presets, "PLUGINS")


def _numeric_keys():
    """Every int or float key of the config (dotted), with its Python type, found by walking the dataclasses."""
    import dataclasses
    import typing

    from lrcbert.config import Config

    def walk(cls, prefix):
        for f in dataclasses.fields(cls):
            typ = typing.get_type_hints(cls)[f.name]
            if dataclasses.is_dataclass(typ):
                yield from walk(typ, f"{prefix}{f.name}.")
            elif {int, float} & set(typing.get_args(typ) or (typ,)):
                yield f"{prefix}{f.name}", float if float in (typing.get_args(typ) or (typ,)) else int

    return list(walk(Config, ""))


def test_numeric_keys_are_found():
    keys = dict(_numeric_keys())
    assert keys["train.seed"] is int and keys["train.lr"] is float and keys["train.max_steps"] is int
    assert len(keys) >= 25  # the methods' own numbers (method.options): test_baselines.py, every setting has a range


@pytest.mark.parametrize("key, typ", _numeric_keys())
def test_every_number_has_a_range(key, typ):
    """Findings 7 and 9: no numeric key takes a negative value, and no float key takes NaN or infinity."""
    bad = ["-1", "-0.5"] + ([".nan", ".inf", "-.inf"] if typ is float else ["1.5", "true"])
    for value in bad:
        with pytest.raises(ConfigError) as e:
            load_config(overrides=[f"{key}={value}"])
        assert f"config key '{key}'" in str(e.value) and f"--set {key}={value}" in str(e.value)
        assert "\n" not in str(e.value)


@pytest.mark.parametrize(
    "override, message",
    [
        (["train.max_steps=-1"], "config key 'train.max_steps' must be >= 1, got -1"),
        (["train.epochs=.inf"], "config key 'train.epochs' must be a finite number, got inf"),
        (["train.lr=nan"], "config key 'train.lr' must be a number, got 'nan'"),
        (["train.lr=.nan"], "config key 'train.lr' must be a finite number, got nan"),
        (["train.seed=-1"], "config key 'train.seed' must be >= 0, got -1"),
        (["train.seed=4294967296"], "config key 'train.seed' must be <= 4294967295"),
        (
            ["model.student_arch.hidden_dropout_prob=1.5"],
            "'model.student_arch.hidden_dropout_prob' must be <= 1, got 1.5",
        ),
        (
            ["model.student_arch.hidden_size=100"],
            "'model.student_arch.hidden_size' (100) must be a multiple of num_attention_heads (12)",
        ),
        (["model.student_layers=[1, 0]"], "config key 'model.student_layers.1' must be >= 1, got 0"),
        (["task=sst3"], "config key 'task': unknown task 'sst3'; known: cola, mnli,"),
        (["method.stage2=5"], "config key 'method.stage2' must be a mapping, got 5"),
        (["train=5"], "config key 'train' must be a mapping, got 5"),
    ],
)
def test_out_of_range_values_name_the_key_and_the_override(override, message):
    with pytest.raises(ConfigError) as e:
        load_config(overrides=override)
    assert str(e.value).startswith(f"--set {override[0]}: ") and message in str(e.value)
    assert "\n" not in str(e.value)


def test_text_keys_take_numbers_as_written():
    cfg = load_config(overrides=["data.source=tsv", "data.path=2024", "model.teacher=1e-4", "task=rte"])
    assert cfg.data.path == "2024" and cfg.model.teacher == "1e-4"


@pytest.mark.parametrize(
    "override, message",
    [
        (["train.lrr=1"], "unknown config key 'train.lrr'"),
        (["nosuch.key=1"], "unknown config key 'nosuch'"),
        (["train.epochs=many"], "config key 'train.epochs' must be a number, got 'many'"),
        (["train.batch_size=1.5"], "config key 'train.batch_size' must be an integer, got 1.5"),
        (["method.perturb=maybe"], "config key 'method.perturb' must be true or false, got 'maybe'"),
        (["method.perturb=1"], "config key 'method.perturb' must be true or false, got 1"),
        (["method.layer_loss=l1"], "config key 'method.layer_loss' is 'l1'; allowed: cos_nce, mse"),
        (["method.stage_split=1.5"], "config key 'method.stage_split' must be <= 1.0, got 1.5"),
        (["method.stage2={soft: -1}"], "config key 'method.stage2.soft' must be >= 0, got -1"),
        (["method.stage2={soft: .inf}"], "config key 'method.stage2.soft' must be a finite number, got inf"),
        (["train.batch_size=1"], "must be >= 2"),
        (["data.source=tsv"], "config key 'data.path' is required"),
        (["model.student_init=path"], "config key 'model.student' is required"),
        (["train.lr"], "--set train.lr: not of the form key=value"),
        (["train..lr=1"], "not of the form key=value"),
        (["method.stage2={hard: 1"], "--set method.stage2={hard: 1: YAML syntax error"),
    ],
)
def test_bad_values_name_the_key(override, message):
    with pytest.raises(ConfigError) as e:
        load_config(overrides=override)
    assert message in str(e.value) and "\n" not in str(e.value)


def test_bad_file_key_names_the_file_and_line(tmp_path):
    f = tmp_path / "bad.yaml"
    f.write_text("method:\n  temprature: 2\n")
    with pytest.raises(ConfigError, match=r"bad.yaml:2: unknown config key 'method.temprature'"):
        load_config([f])
    f.write_text("# lr\ntrain:\n  seed: 1\n  lr: -1e-4\n")
    with pytest.raises(ConfigError, match=r"bad.yaml:4: config key 'train.lr' must be > 0.0, got -0.0001$"):
        load_config([f])
    with pytest.raises(ConfigError, match="config file not found"):
        load_config([tmp_path / "missing.yaml"])
    f.write_bytes(b"train: {lr: 1}\n# caf\xe9\n")
    with pytest.raises(ConfigError, match=r"bad.yaml: not UTF-8 text"):
        load_config([f])
    f.write_text("- train\n")
    with pytest.raises(ConfigError, match=r"bad.yaml: a config file must hold a mapping, got list"):
        load_config([f])


def test_repeated_yaml_keys_are_refused(tmp_path):
    """Finding 7: a second ``train:`` block used to replace the first silently (its lr was lost)."""
    f = tmp_path / "dup.yaml"
    f.write_text("train:\n  lr: 1.0e-4\nmethod: {perturb: false}\ntrain:\n  epochs: 2\n")
    with pytest.raises(ConfigError) as e:
        load_config([f])
    assert str(e.value) == (
        f"{f}:4: key 'train' is given twice (first on line 1); YAML would silently keep only the last"
    )
    f.write_text("method:\n  stage2: {layer: 1, soft: 1, layer: 2}\n")
    with pytest.raises(ConfigError, match=r"dup.yaml:2: key 'layer' is given twice \(first on line 2\)"):
        load_config([f])
    from lrcbert.config import parse_yaml  # an anchor merged, then a key overridden, is no repeat

    assert parse_yaml("a: &b {x: 1, y: 2}\nc: {<<: *b, x: 3}\n", "t")["c"] == {"x": 3, "y": 2}


def test_yaml_syntax_errors_name_file_line_and_column(tmp_path):
    f = tmp_path / "syntax.yaml"
    f.write_text("train:\n  lr: 1e-4\n  epochs: [1, 2\n")
    with pytest.raises(ConfigError) as e:
        load_config([f])
    assert str(e.value).startswith(f"{f}:4:1: YAML syntax error: ") and "\n" not in str(e.value)
    f.write_text("train:\n  lr: 1e-4\n epochs: 2\n")
    with pytest.raises(ConfigError, match=r"syntax.yaml:3:\d+: YAML syntax error: .*"):
        load_config([f])


def test_yaml_reads_exponents_as_numbers(tmp_path):
    """YAML 1.1 reads 1e-4 as text; lrcbert reads it as the number it means, in files and overrides alike."""
    f = tmp_path / "c.yaml"
    f.write_text("train: {lr: 1e-4}\nmodel: {teacher_overrides: {layer_norm_eps: 1e-12}}\n")
    cfg = load_config([f])
    assert cfg.train.lr == 1e-4 and cfg.model.teacher_overrides == {"layer_norm_eps": 1e-12}
    assert cfg.hash() == load_config([], ["train.lr=1.0e-4", "model.teacher_overrides.layer_norm_eps=1.0e-12"]).hash()


def test_hash_changes_with_any_key():
    a, b = load_config(), load_config(overrides=["method.perturb_eps=0.5"])
    assert a.hash() == load_config().hash() and a.hash() != b.hash()


def test_hash_covers_only_settings_that_differ_from_the_defaults():
    """So that a key added later with a backward-compatible default keeps every existing run's hash."""
    import hashlib
    import json

    assert load_config(overrides=["method.temperature=1.1"]).hash() == load_config().hash()  # the default
    assert load_config(overrides=["train.checkpoint_every=7"]).hash() == load_config().hash()  # book-keeping
    cfg = load_config(overrides=["method.perturb_eps=0.5", "task=rte"])
    diff = {"task": "rte", "data": {}, "model": {}, "method": {"perturb_eps": 0.5}, "train": {}}
    assert cfg.hash() == hashlib.sha256(json.dumps(diff, sort_keys=True).encode()).hexdigest()[:12]


def test_presets_are_diffs_of_known_keys():
    load_plugins()  # the baselines' presets too, whatever ran before
    assert "tinybert_intermediate" in METHODS
    # a student to continue from: TinyBERT's stage-1 preset takes W from it (method.projection_init: student)
    student = {"student_init": "path", "student": "runs/general/x/model"}
    for name, diff in METHODS.items():
        cfg = load_config(base={"method": {"name": name, **diff}, "model": student})
        for k, v in diff.items():
            got = getattr(cfg.method, k)
            assert ({o: got[o] for o in v} if k == "options" else got) == v, (name, k)  # options: with defaults
    assert load_config(base={"method": METHODS["finetune"]}).method.perturb is False


def test_a_folder_with_the_hub_source_is_refused_not_ignored():
    # the package default is the hub (as the workflow's); a folder given with it would be silently not read
    assert load_config(overrides=["task=rte"]).data.source == "hub"
    with pytest.raises(ConfigError, match=r"--set data.path=/my/glue: config key 'data.path' .* data.source is 'hub'"):
        load_config(overrides=["task=rte", "data.path=/my/glue"])
    assert load_config(overrides=["task=rte", "data.source=tsv", "data.path=/my/glue"]).data.path == "/my/glue"


def test_per_position_reading_takes_in_batch_negatives_only():
    cfg = load_config(overrides=["method.representation=per_position"])
    assert cfg.method.representation == "per_position"
    with pytest.raises(ConfigError, match="method.negatives.*per_position.*in-batch negatives only"):
        load_config(overrides=["method.representation=per_position", "method.negatives=sampled"])
