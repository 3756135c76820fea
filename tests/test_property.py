"""Property: a configuration made of a YAML file and dotted ``--set`` overrides, with valid and invalid values,
either loads as exactly what was asked (each key's last value, merged key by key into the defaults) or stops with
one line naming a key whose value was invalid. The ranges below are written out independently of lrcbert/config.py.
"""

import math

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lrcbert.config import Config, ConfigError, load_config

INF = math.inf
# key -> (kind, low, high, low_open, high_open, nullable); kinds: int, float, weight (int or float), bool, text, enum
SPEC = {
    "train.seed": ("int", 0, 2**32 - 1, False, False, False),
    "train.epochs": ("float", 0, INF, True, True, False),
    "train.max_steps": ("int", 1, INF, False, True, True),
    "train.lr": ("float", 0, INF, True, True, False),
    "train.warmup": ("float", 0, 1, False, True, False),
    "train.batch_size": ("int", 1, INF, False, True, False),  # and >= 2 with COS-NCE (bad_keys)
    "train.grad_clip": ("float", 0, INF, False, True, False),
    "train.checkpoint_every": ("int", 0, INF, False, True, False),
    "method.temperature": ("float", 0, INF, True, True, False),
    "method.stage_split": ("float", 0, 1, False, False, False),
    "method.perturb_eps": ("float", 0, INF, False, True, False),
    "method.stage1.layer": ("weight", 0, INF, False, True, False),
    "method.stage2.soft": ("weight", 0, INF, False, True, False),
    "method.stage2.hard": ("weight", 0, INF, False, True, False),
    "model.student_arch.num_hidden_layers": ("int", 1, INF, False, True, False),
    "model.student_arch.intermediate_size": ("int", 1, INF, False, True, False),
    "model.student_arch.hidden_dropout_prob": ("weight", 0, 1, False, False, False),  # absent by default
    "data.max_length": ("int", 8, 512, False, False, False),
    "data.max_train_examples": ("int", 1, INF, False, True, True),
    "method.perturb": ("bool",) + (None,) * 5,
    "data.pad_to_max_length": ("bool",) + (None,) * 5,
    "method.layer_loss": ("enum", ("cos_nce", "mse")) + (None,) * 4,
    "train.lr_schedule": ("enum", ("linear", "constant", "linear_per_stage")) + (None,) * 4,
    "model.teacher": ("text",) + (None,) * 5,
    "data.corpus": ("text", None, None, None, None, True),
}


def valid(key, value) -> bool:
    kind, low, high, low_open, high_open, nullable = SPEC[key]
    if value is None:
        return bool(nullable)
    if kind == "bool":
        return isinstance(value, bool)
    if kind == "enum":
        return value in low
    if kind == "text":
        return isinstance(value, str)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return False
    if kind == "int" and not isinstance(value, int):
        return False
    above = value > low if low_open else value >= low
    below = value < high if high_open else value <= high
    return above and below


def values(key):
    kind, low, high, low_open, high_open, _ = SPEC[key]
    wrong = st.sampled_from(["x", [1], {"a": 1}, None, True])
    if kind == "bool":
        return st.one_of(st.booleans(), wrong, st.integers(0, 1))
    if kind == "enum":
        return st.one_of(st.sampled_from(low), st.sampled_from(["", "l1", low[0].upper()]), wrong)
    if kind == "text":
        return st.one_of(st.text("abc/._-019", min_size=1, max_size=8), st.integers(0, 99))
    edge = st.sampled_from(
        [low, -1, 0, 1, 0.5, 1.5, 1e-5, 512, 513, 7, 2**32, -0.0, math.nan, INF, -INF] + ([high] if high < INF else [])
    )
    ints = st.integers(-3, 10**6)
    floats = st.floats(min_value=-10.0, max_value=10**6, allow_nan=False)
    top = min(high, low + 1000)
    good = (
        st.integers(int(low) + low_open, int(top) - (high_open and top == high))
        if kind == "int"
        else st.floats(low, top, exclude_min=low_open, exclude_max=high_open and top == high)
    )
    if kind == "weight":
        good = st.one_of(good, st.integers(int(low), int(top)))
    return st.one_of(good, good, edge, ints, floats, wrong)


def as_yaml(value) -> str:
    return yaml.safe_dump(value, default_flow_style=True, width=10**6).strip().removesuffix("\n...").strip()


def nest(key, value) -> dict:
    for part in reversed(key.split(".")):
        value = {part: value}
    return value


def deep_merge(a: dict, b: dict) -> dict:
    out = dict(a)
    for k, v in b.items():
        out[k] = deep_merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def bad_keys(final: dict) -> list[str]:
    """The keys whose final value lrcbert must refuse; the one rule across keys: a batch of one has no in-batch
    negative for COS-NCE (the default layer loss)."""
    bad = [k for k, v in final.items() if not valid(k, v)]
    if final.get("train.batch_size") == 1 and final.get("method.layer_loss", "cos_nce") == "cos_nce":
        bad.append("train.batch_size")
    return sorted(set(bad))


def read_as(key, value, via_set: bool):
    """The value lrcbert is given: on the command line, a number written to a text key is the text written."""
    if via_set and SPEC[key][0] == "text" and isinstance(value, (int, float)) and not isinstance(value, bool):
        return as_yaml(value)
    return value


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_a_config_is_what_was_asked_or_one_line_naming_a_bad_key(data, tmp_path):
    keys = data.draw(st.lists(st.sampled_from(sorted(SPEC)), min_size=1, max_size=6))
    assignments = [(k, data.draw(values(k), label=k)) for k in keys]
    in_file = data.draw(st.integers(0, len(assignments)))  # the first ones come from a YAML file
    file_part, set_part = assignments[:in_file], assignments[in_file:]
    tree = {}
    for k, v in file_part:
        tree = deep_merge(tree, nest(k, v))
    f = tmp_path / "c.yaml"
    f.write_text(yaml.safe_dump(tree))
    overrides = [f"{k}={as_yaml(v)}" for k, v in set_part]

    final = {}  # each key's last value: what the user asked for
    for (k, v), via_set in [(a, False) for a in file_part] + [(a, True) for a in set_part]:
        final[k] = read_as(k, v, via_set)
    bad = bad_keys(final)
    try:
        cfg = load_config([f], overrides)
    except ConfigError as e:
        message = str(e)
        assert bad, f"refused a valid config: {message}"
        assert "\n" not in message
        assert any(f"'{k}'" in message for k in bad), (message, bad)
        return
    assert not bad, f"accepted invalid values {[(k, final[k]) for k in bad]}"
    expected = Config().to_dict()
    for k, v in final.items():
        expected = deep_merge(expected, nest(k, v))
    got = cfg.to_dict()
    assert got == expected
    for k, v in final.items():  # ints given to float keys become floats, nothing else
        node = got
        for part in k.split("."):
            node = node[part]
        assert type(node) is (float if SPEC[k][0] == "float" else type(v)), (k, v, node)


@pytest.mark.parametrize("key", sorted(SPEC))
def test_the_spec_matches_the_defaults(key):
    """The independent spec above agrees with every default (so the property is about the same keys)."""
    node = Config().to_dict()
    for part in key.split("."):
        node = node.get(part)
    assert valid(key, node) or (node is None and key == "model.student_arch.hidden_dropout_prob")
