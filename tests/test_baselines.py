"""The baselines (baselines/): each loss on small hand-computed tensors, its invariants, agreement with independent
implementations (torch.nn.KLDivLoss / nn.MSELoss, and TextBrewer's ``textbrewer.losses`` when installed), the
TinyBERT attention implementation, CoDIR's negatives and memory bank, ACKD's reweighting, student initialisation
from teacher layers, the registry, and one short end-to-end run per baseline through ``lrcbert.run.run``."""

import json
import math
import sys
import types

import pytest
import torch
import torch.nn.functional as F
from conftest import TEACHER, finetune_teacher, tiny_config

import baselines
from baselines import ackd, codir, pkd, tinybert
from lrcbert import losses
from lrcbert.objective import Objective, get_method
from lrcbert.run import run


def textbrewer_losses():
    """TextBrewer's loss functions (test-only dependency, pinned in pyproject's test extra). TextBrewer imports a
    TensorBoard writer at package import time that these pure functions never use; a stand-in module keeps that
    import from needing TensorBoard."""
    if "tensorboardX" not in sys.modules:
        try:
            import tensorboardX  # noqa: F401
        except ImportError:
            sys.modules["tensorboardX"] = types.SimpleNamespace(SummaryWriter=None)
    return pytest.importorskip("textbrewer.losses")


# ---------------------------------------------------------------------------------------------- KD (DistilBERT, PKD)
def test_kd_loss_hand_computed_and_times_t_squared():
    s, t = torch.tensor([[0.0, math.log(3.0)]]), torch.tensor([[math.log(3.0), 0.0]])  # p_s = (1/4, 3/4), p_t reversed
    kl = 0.75 * math.log(0.75 / 0.25) + 0.25 * math.log(0.25 / 0.75)
    assert losses.soft_loss(s, t, tau=1.0).item() == pytest.approx(kl, abs=1e-6)
    # at tau = 2 the probabilities are softmax of halved logits: (1, sqrt 3) normalised; times tau^2 = 4
    a = 1 / (1 + math.sqrt(3))
    kl2 = (1 - a) * math.log((1 - a) / a) + a * math.log(a / (1 - a))
    assert losses.soft_loss(s, t, tau=2.0, t2=True).item() == pytest.approx(4 * kl2, abs=1e-6)


def test_kd_loss_agrees_with_torch_kldivloss_and_textbrewer():
    g = torch.Generator().manual_seed(0)
    s, t = torch.randn(16, 3, generator=g) * 3, torch.randn(16, 3, generator=g) * 3
    tau = 4.0
    ours = losses.soft_loss(s, t, tau, t2=True)
    kldiv = torch.nn.KLDivLoss(reduction="batchmean")(F.log_softmax(s / tau, -1), F.softmax(t / tau, -1)) * tau**2
    assert ours.item() == pytest.approx(kldiv.item(), rel=1e-5)
    tb = textbrewer_losses()
    # TextBrewer's kd_ce_loss is the cross-entropy: KL + the teacher's entropy (and not times tau^2)
    p_t = F.softmax(t / tau, -1)
    entropy = -(p_t * p_t.log()).sum(-1).mean()
    assert losses.soft_loss(s, t, tau).item() == pytest.approx((tb.kd_ce_loss(s, t, tau) - entropy).item(), rel=1e-5)
    assert tinybert.soft_cross_entropy(s, t, tau).item() == pytest.approx(tb.kd_ce_loss(s, t, tau).item(), rel=1e-6)


def test_hidden_mse_agrees_with_torch_mseloss_and_textbrewer():
    g = torch.Generator().manual_seed(1)
    s, t = torch.randn(4, 7, 5, generator=g), torch.randn(4, 7, 5, generator=g)
    full = torch.ones(4, 7)
    assert losses.masked_mse(s, t, full).item() == pytest.approx(torch.nn.MSELoss()(s, t).item(), rel=1e-6)
    mask = torch.tensor([[1] * 7, [1] * 3 + [0] * 4, [1] * 5 + [0] * 2, [1] + [0] * 6])
    keep = mask.bool()
    assert losses.masked_mse(s, t, mask).item() == pytest.approx(torch.nn.MSELoss()(s[keep], t[keep]).item(), rel=1e-6)
    tb = textbrewer_losses()
    assert losses.masked_mse(s, t, mask).item() == pytest.approx(tb.hid_mse_loss(s, t, mask).item(), rel=1e-6)


def test_distilbert_preset_is_kl_times_t2_plus_ce():
    m = get_method("distilbert")["method"]
    assert m["stage_split"] == 0.0 and m["soft_t2"] is True and m["stage2"] == {"soft": 0.5, "hard": 0.5}
    assert get_method("distilbert")["model"]["student_init"] == "teacher_layers"


# ---------------------------------------------------------------------------------------------- PKD
def test_pkd_loss_hand_computed_and_reductions():
    s, t = [torch.tensor([[3.0, 4.0]])], [torch.tensor([[1.0, 0.0]])]
    # unit vectors (0.6, 0.8) and (1, 0): squared differences 0.16 and 0.64
    assert pkd.pkd_loss(s, t, "sum").item() == pytest.approx(0.8)
    assert pkd.pkd_loss(s, t, "mean").item() == pytest.approx(0.4)
    assert pkd.pkd_loss(s * 2, t * 2, "sum").item() == pytest.approx(1.6)  # summed over layer pairs
    assert pkd.pkd_loss(s * 2, t * 2, "mean").item() == pytest.approx(0.4)  # averaged over them (released)


def test_pkd_loss_is_scale_invariant_and_agrees_with_textbrewer():
    g = torch.Generator().manual_seed(2)
    s, t = torch.randn(8, 6, generator=g), torch.randn(8, 6, generator=g)
    scale = torch.rand(8, 1, generator=g) * 10 + 0.1
    assert pkd.pkd_loss([s * scale], [t], "mean").item() == pytest.approx(
        pkd.pkd_loss([s], [t], "mean").item(), rel=1e-5
    )
    assert pkd.pkd_loss([s], [t], "sum").item() == pytest.approx(6 * pkd.pkd_loss([s], [t], "mean").item(), rel=1e-5)
    # the loss is not invariant to anything else: a different direction changes it
    assert pkd.pkd_loss([s + 1.0], [t]).item() != pytest.approx(pkd.pkd_loss([s], [t]).item(), rel=1e-3)
    tb = textbrewer_losses()
    assert pkd.pkd_loss([s], [t], "sum").item() == pytest.approx(tb.pkd_loss(s, t).item(), rel=1e-5)


def test_pkd_term_uses_cls_of_the_skip_layers():
    cfg = tiny_config(
        None, method=get_method("pkd")["method"], model={"student_arch": {**TEACHER, "num_hidden_layers": 2}}
    )
    from transformers import BertConfig

    from lrcbert.tasks import TASKS

    obj = Objective(cfg.method, TASKS["rte"], BertConfig(**{**TEACHER, "num_hidden_layers": 2}), BertConfig(**TEACHER))
    assert obj.phi == [2, 4]  # the pkd term uses (student 1, teacher 2); the last is the logits'
    hs_s = [torch.randn(2, 3, 32) for _ in range(3)]
    hs_t = [torch.randn(2, 3, 32) for _ in range(5)]
    out = pkd._pkd_term(obj, types.SimpleNamespace(hidden_states=hs_s), types.SimpleNamespace(hidden_states=hs_t), {})
    assert out.item() == pytest.approx(pkd.pkd_loss([hs_s[1][:, 0]], [hs_t[2][:, 0]]).item())
    assert set(pkd.GRID) == {"temperature", "alpha", "beta"} and pkd.T in pkd.GRID["temperature"]
    assert pkd.ALPHA in pkd.GRID["alpha"] and pkd.BETA in pkd.GRID["beta"]


# ---------------------------------------------------------------------------------------------- TinyBERT
def test_attention_loss_hand_computed():
    s = torch.zeros(1, 1, 2, 2)
    t = torch.tensor([[[[1.0, 2.0], [3.0, 4.0]]]])
    mask = torch.tensor([[1, 1]])
    assert tinybert.attention_loss(s, t, mask, "scores").item() == pytest.approx((1 + 4 + 9 + 16) / 4)
    # probs: rows of s are uniform (0.5, 0.5); rows of t are softmax((1,2)) and softmax((3,4)), both (a, 1 - a)
    a = 1 / (1 + math.e)
    assert tinybert.attention_loss(s, t, mask, "probs").item() == pytest.approx((0.5 - a) ** 2)


@pytest.mark.parametrize("target", ["probs", "scores"])
def test_attention_loss_ignores_masked_positions(target):
    g = torch.Generator().manual_seed(3)
    s, t = torch.randn(2, 3, 5, 5, generator=g), torch.randn(2, 3, 5, 5, generator=g)
    mask = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]])
    base = tinybert.attention_loss(s, t, mask, target)
    s2, t2 = s.clone(), t.clone()
    s2[0, :, 3:, :] = 100.0  # padded queries
    t2[0, :, :, 3:] = -50.0  # padded keys
    assert tinybert.attention_loss(s2, t2, mask, target).item() == pytest.approx(base.item(), rel=1e-6)
    t3 = t.clone()
    t3[0, :, 1, 2] += 1.0  # a real (query, key) pair does count
    assert tinybert.attention_loss(s, t3, mask, target).item() != pytest.approx(base.item(), rel=1e-6)
    if target == "scores":
        tb = textbrewer_losses()
        assert base.item() == pytest.approx(tb.att_mse_loss(s, t, mask).item(), rel=1e-5)


def test_eager_scores_attention_matches_eager_and_returns_the_logits():
    from transformers import BertConfig, BertModel

    conf = BertConfig(vocab_size=50, **{**TEACHER, "num_hidden_layers": 2})
    conf._attn_implementation = "eager"
    eager = BertModel(conf).eval()
    conf2 = BertConfig(vocab_size=50, **{**TEACHER, "num_hidden_layers": 2})
    conf2._attn_implementation = tinybert.ATTN
    scores = BertModel(conf2).eval()
    scores.load_state_dict(eager.state_dict())
    ids = torch.randint(1, 50, (2, 6))
    mask = torch.tensor([[1] * 6, [1] * 4 + [0] * 2])
    a = eager(input_ids=ids, attention_mask=mask, output_attentions=True)
    b = scores(input_ids=ids, attention_mask=mask, output_attentions=True)
    assert torch.allclose(a.last_hidden_state, b.last_hidden_state, atol=1e-5)
    keys = mask[:, None, None, :].bool()
    probs = F.softmax(b.attentions[1].masked_fill(~keys, float("-inf")), dim=-1)
    assert torch.allclose(probs, a.attentions[1], atol=1e-5)
    assert not torch.allclose(b.attentions[1].sum(-1), torch.ones(1))  # raw scores, not probabilities


def test_tinybert_terms_share_one_projection_and_refuse_other_attention():
    from transformers import BertConfig

    method = tiny_config(None, method=get_method("tinybert_general")["method"]).method
    s_conf, t_conf = BertConfig(**{**TEACHER, "hidden_size": 16, "num_hidden_layers": 2}), BertConfig(**TEACHER)
    with pytest.raises(ValueError, match="eager_scores"):
        Objective(method, None, s_conf, t_conf)
    s_conf._attn_implementation = t_conf._attn_implementation = tinybert.ATTN
    obj = Objective(method, None, s_conf, t_conf)
    assert len(obj.proj) == 1 and obj.proj[0].weight.shape == (32, 16) and obj.phi == [2, 4]
    assert obj.outputs(obj.weights(0, 10)) == {"output_hidden_states": True, "output_attentions": True}


# ---------------------------------------------------------------------------------------------- CoDIR
# (the released CRD objective, its memory and its negatives: tests/test_fidelity.py)
def test_info_nce_hand_computed():
    a = torch.tensor([[1.0, 0.0]])
    p = torch.tensor([[1.0, 0.0]])
    n = torch.tensor([[[0.0, 1.0], [-1.0, 0.0]]])
    tau = 0.5
    want = -math.log(math.exp(2) / (math.exp(2) + math.exp(0) + math.exp(-2)))
    assert codir.info_nce(a, p, n, tau).item() == pytest.approx(want, rel=1e-6)
    want = -math.log(math.exp(2) / (math.exp(2) + 1.0))
    assert codir.info_nce(a, p, n[:, :1], tau).item() == pytest.approx(want, rel=1e-6)


# ---------------------------------------------------------------------------------------------- ACKD
def test_ackd_weights_increase_with_hardness():
    h = torch.tensor([0.05, 0.2, 0.2, 0.5, 0.9])
    w = ackd.sar_weights(h, 0.5)
    assert w.mean().item() == pytest.approx(1.0)
    assert (w[1:] - w[:-1] >= 0).all() and w[2] == w[1] and (w[3:] > w[2:-1]).all()
    assert torch.allclose(w, 5 * torch.softmax(h / 0.5, 0))


def test_ackd_loss_hand_computed_and_harder_samples_weigh_more():
    s = torch.tensor([[1.0, 0.0], [1.0, 0.0]])
    t = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    tau = 1.0
    # sample 0: cos with t0 = 1, with t1 = 0; sample 1: cos with t1 (its positive) = 0, with t0 = 1
    p0, p1 = math.e / (math.e + 1), 1 / (math.e + 1)
    w0, w1 = (2 * torch.softmax(torch.tensor([1 - p0, 1 - p1]), 0)).tolist()
    loss, w = ackd.adaptive_contrastive_loss(s, t, tau, 1.0)
    assert w.tolist() == pytest.approx([w0, w1]) and w[1] > w[0]  # sample 1 is the hard one
    assert loss.item() == pytest.approx((w0 * -math.log(p0) + w1 * -math.log(p1)) / 2, rel=1e-6)
    assert "ackd" in baselines.RECONSTRUCTIONS and "reconstruction" in ackd.__doc__


# ---------------------------------------------------------------------------------------------- student init, size
def test_student_from_teacher_layers_copies_the_chosen_layers():
    from transformers import BertConfig, BertForSequenceClassification

    from lrcbert.models import ModelError, student_from_teacher_layers
    from lrcbert.tasks import TASKS

    teacher = BertForSequenceClassification(BertConfig(vocab_size=60, num_labels=2, **TEACHER))
    student = student_from_teacher_layers(teacher, TASKS["rte"], {**TEACHER, "num_hidden_layers": 2}, [1, 3])
    assert student.config.num_hidden_layers == 2
    for i, j in ((0, 0), (1, 2)):
        for (n, a), (_, b) in zip(
            student.bert.encoder.layer[i].named_parameters(), teacher.bert.encoder.layer[j].named_parameters()
        ):
            assert torch.equal(a, b), n
    assert torch.equal(student.bert.embeddings.word_embeddings.weight, teacher.bert.embeddings.word_embeddings.weight)
    default = student_from_teacher_layers(teacher, TASKS["rte"], {**TEACHER, "num_hidden_layers": 2}, None)
    assert torch.equal(
        default.bert.encoder.layer[0].output.dense.weight, teacher.bert.encoder.layer[1].output.dense.weight
    )
    with pytest.raises(ModelError, match="hidden_size"):
        student_from_teacher_layers(teacher, TASKS["rte"], {**TEACHER, "hidden_size": 16}, None)
    with pytest.raises(ModelError, match="model.student_layers"):
        student_from_teacher_layers(teacher, TASKS["rte"], {**TEACHER, "num_hidden_layers": 2}, [1, 9])


def test_student_layers_from_a_pretrained_encoder_not_the_finetuned_teacher(tmp_path):
    """BERT-PKD as released: the student's layers come from pre-trained BERT (model.student_layers_from), not
    from the fine-tuned teacher it is distilled from; the new key is refused without teacher_layers."""
    from transformers import BertConfig, BertForSequenceClassification, BertModel

    from lrcbert.config import ConfigError, load_config
    from lrcbert.models import build_student
    from lrcbert.tasks import TASKS

    torch.manual_seed(0)
    pretrained = BertModel(BertConfig(vocab_size=60, **TEACHER))
    pretrained.save_pretrained(tmp_path / "pretrained")
    teacher = BertForSequenceClassification(BertConfig(vocab_size=60, num_labels=2, **TEACHER))
    arch = f"model.student_arch={json.dumps({**TEACHER, 'num_hidden_layers': 2})}"
    base = ["task=rte", "model.student_init=teacher_layers", "model.student_layers=[1, 3]", arch]
    cfg = load_config(overrides=[*base, f"model.student_layers_from={tmp_path / 'pretrained'}"])
    student = build_student(cfg, TASKS["rte"], teacher.config, teacher)
    for i, j in ((0, 0), (1, 2)):
        mine, source = student.bert.encoder.layer[i], pretrained.encoder.layer[j]
        assert all(torch.equal(a, b) for a, b in zip(mine.parameters(), source.parameters()))
        assert not torch.equal(mine.output.dense.weight, teacher.bert.encoder.layer[j].output.dense.weight)
    from_teacher = build_student(load_config(overrides=base), TASKS["rte"], teacher.config, teacher)
    assert torch.equal(
        from_teacher.bert.encoder.layer[1].output.dense.weight, teacher.bert.encoder.layer[2].output.dense.weight
    )
    with pytest.raises(ConfigError, match="model.student_layers_from"):
        load_config(overrides=["task=rte", f"model.student_layers_from={tmp_path}"])


def test_parameter_counts_of_the_table_rows():
    """4 x 768 (BERT-base shape): 52.78M as trained (with BERT's pooler), 52.19M = the paper's 52.2M without it;
    4 x 312: 14.35M (the paper's ~14.5M)."""
    from transformers import BertConfig, BertForSequenceClassification

    from lrcbert.models import count_parameters

    with torch.device("meta"):
        wide = BertForSequenceClassification(BertConfig(num_hidden_layers=4, num_labels=2))
        tiny = BertForSequenceClassification(
            BertConfig(num_hidden_layers=4, hidden_size=312, intermediate_size=1200, num_labels=2)
        )
    pooler = sum(p.numel() for n, p in wide.named_parameters() if "pooler" in n)
    assert count_parameters(wide) == 52_780_802
    assert round((count_parameters(wide) - pooler) / 1e6, 1) == 52.2
    assert round(count_parameters(tiny) / 1e6, 1) == 14.4


# ---------------------------------------------------------------------------------------------- registry, CLI
def test_every_baseline_comes_through_the_entry_point_door_and_the_cli_accepts_it():
    """Issue 24: the core names no plug-in; the baselines are found through pyproject.toml's ``lrcbert.methods``
    entry points like any package's, and each is accepted by the command of its declared kind."""
    from lrcbert import presets
    from lrcbert.cli import build_parser

    presets.load_plugins()
    found = [m for ep in presets._entry_points() if ep.value.startswith("baselines.") for m in _as_list(ep.load())]
    assert sorted(m.name for m in found) == baselines.BASELINES and len(baselines.BASELINES) == 8
    assert not hasattr(presets, "PLUGINS")  # no list of plug-ins in the core
    parser = build_parser()
    for m in found:
        command = {"task": "distill", "general": "general-distill"}[m.kind]
        task = ["--task", "rte"] if command == "distill" else []
        assert parser.parse_args([command, "--method", m.name, *task, "--out", "x"]).method == m.name
        assert presets.DECLARED[m.name] is m and get_method(m.name)["method"]["perturb"] is False  # no perturbation
    assert presets.method_kind("tinybert_general") == "general" and presets.method_kind("tinybert") == "task"


def _as_list(x):
    return list(x) if isinstance(x, list | tuple) else [x]


@pytest.mark.parametrize("name", ["pkd", "tinybert", "codir", "ackd"])
def test_every_method_setting_is_typed_and_has_a_range(name):
    """The baselines' keys are their own settings (``method.options``), checked by the method's class: every number
    refuses -1 and (floats) NaN with the usual one line; a setting of another method, or one at the old place
    (``method.nce_k``), is refused with the way to write it."""
    import dataclasses

    from lrcbert.config import ConfigError, load_config, method_settings_class

    cls = method_settings_class(name)
    base = get_method(name)
    for f in dataclasses.fields(cls):
        if isinstance(f.default, str | bool):  # enumerations and switches: checked by their Literal / bool type
            continue
        for bad in ["-1"] + ([".nan"] if isinstance(f.default, float) else ["1.5"]):
            with pytest.raises(ConfigError) as e:
                load_config(overrides=[f"method.options.{f.name}={bad}"], base=base)
            assert str(e.value).startswith(f"--set method.options.{f.name}={bad}: config key 'method.options.{f.name}'")
    with pytest.raises(ConfigError, match=r"unknown config key 'method.options.no_such_key' \(known here: "):
        load_config(overrides=["method.options.no_such_key=1"], base=base)
    with pytest.raises(ConfigError, match=r"unknown config key 'method.nce_k'; did you mean 'method.options.nce_k'\?"):
        load_config(overrides=["method.nce_k=5"], base=base)


def test_method_settings_keep_the_config_hash_of_the_keys_they_were():
    """A setting that moved from ``method.X`` to ``method.options.X`` hashes as before (run identities unchanged):
    the hash of each baseline's preset, and with a setting changed, is the one recorded before the move."""
    from lrcbert.assemble import command_config

    before = {  # Config.hash() of `lrcbert distill --method NAME --task rte [--set method.KEY=VALUE]` before issue 24
        ("pkd", ()): "fa53efb077c2",
        ("codir", ()): "ea8d8a2a4740",
        ("codir_pooled", ()): "256195330333",
        ("ackd", ()): "11bc621d0f0a",
        ("tinybert", ()): "beb23cae5ef6",
        ("pkd", ("pkd_reduction=sum",)): "f3bcf2869967",
        ("codir", ("nce_k=20", "head=mlp")): "6003f8ca55c9",
        ("ackd", ("sar_temperature=2.0",)): "0c8a576a7e39",
        ("tinybert", ("tinybert_padding=all",)): "db7a20bbebbe",
    }
    for (name, sets), digest in before.items():
        overrides = [f"method.options.{s}" for s in sets]
        assert command_config("distill", name, "rte", (), overrides).hash() == digest, (name, sets)


def test_a_record_written_before_the_move_is_read_with_its_settings_in_options():
    from lrcbert.config import config_from_dict, load_config

    old = load_config(base=get_method("codir")).to_dict()
    old["method"].update(old["method"].pop("options"), nce_k=7, pkd_reduction="mean")  # the old layout
    cfg = config_from_dict(old)
    assert cfg.method.options["nce_k"] == 7 and "pkd_reduction" not in cfg.method.options


# ---------------------------------------------------------------------------------------------- end to end
@pytest.fixture(scope="module")
def teacher_run(glue_dir, tmp_path_factory):
    return finetune_teacher(glue_dir, tmp_path_factory.mktemp("bteacher"), epochs=1)


def baseline_cfg(glue_dir, teacher, name, train=None, **sections):
    preset = {k: dict(v) for k, v in get_method(name).items()}
    for k, v in sections.items():
        preset.setdefault(k, {}).update(v)
    preset.setdefault("model", {}).update({"teacher": str(teacher / "model"), "teacher_random_init": False})
    preset["train"] = {"max_steps": 4, **(train or {})}
    return tiny_config(glue_dir, task="rte", **preset)


WIDE = {"student_arch": {**TEACHER, "num_hidden_layers": 2}}


@pytest.mark.parametrize(
    "name, sections",
    [
        ("distilbert", {"model": WIDE}),
        ("pkd", {"model": {**WIDE, "student_layers": [1, 2]}}),
        ("tinybert_intermediate", {"method": {"projection_init": "new"}}),  # a random student: no W to continue
        ("tinybert", {}),
        ("codir", {}),
        ("codir_pooled", {}),
        ("ackd", {}),
    ],
)
def test_each_baseline_runs_end_to_end(glue_dir, teacher_run, tmp_path, name, sections):
    result = run(baseline_cfg(glue_dir, teacher_run, name, **sections), tmp_path, "distill")
    assert (tmp_path / "metrics.json").is_file() and 0 <= result["splits"]["rte"]["accuracy"] <= 1
    record = json.loads((tmp_path / "run.json").read_text())
    assert record["method"] == name and record["steps"] == 4
    rows = (tmp_path / "losses.csv").read_text().splitlines()
    header = rows[0].split(",")
    terms = [t for t, w in get_method(name)["method"]["stage2"].items() if w]
    last = dict(zip(header, rows[-1].split(",")))
    assert all(last[t] != "" and math.isfinite(float(last[t])) for t in terms), last


def test_tinybert_stage1_continues_the_projection_of_general_distillation(glue_dir, teacher_run, tmp_path):
    """General distillation saves W; task stage 1 (preset: method.projection_init=student) starts from it. With a
    learning rate of 1e-12 the W that stage 1 saves is still the general one; with projection_init=new it is not."""
    from safetensors.torch import load_file

    cfg = baseline_cfg(glue_dir, teacher_run, "tinybert_general", data={"corpus": str(glue_dir / "corpus.txt")})
    run(cfg, tmp_path / "general", "general")
    general_w = load_file(str(tmp_path / "general" / "model" / "objective.safetensors"))["proj.0.weight"]
    assert (tmp_path / "general" / "metrics.json").is_file()

    def stage1(out, **method):
        model = {"student": str(tmp_path / "general" / "model"), "student_init": "path"}
        run(
            baseline_cfg(
                glue_dir,
                teacher_run,
                "tinybert_intermediate",
                train={"max_steps": 2, "lr": 1e-12},
                model=model,
                method=method,
            ),
            tmp_path / out,
            "distill",
        )
        return load_file(str(tmp_path / out / "model" / "objective.safetensors"))["proj.0.weight"]

    assert get_method("tinybert_intermediate")["method"]["projection_init"] == "student"
    torch.testing.assert_close(stage1("continued"), general_w, rtol=0, atol=1e-9)
    assert (stage1("fresh", projection_init="new") - general_w).abs().max() > 1e-3


def test_projection_init_student_refuses_what_it_cannot_continue(glue_dir, teacher_run, tmp_path):
    from lrcbert.config import ConfigError
    from lrcbert.run import RunError

    with pytest.raises(ConfigError, match="method.projection_init"):  # a random student has no earlier W
        baseline_cfg(glue_dir, teacher_run, "tinybert_intermediate")
    # a student folder without objective.safetensors (a fine-tuned model trains no W)
    cfg = baseline_cfg(
        glue_dir,
        teacher_run,
        "tinybert_intermediate",
        model={"student": str(teacher_run / "model"), "student_init": "path"},
    )
    with pytest.raises(RunError, match="no saved W at .*objective.safetensors"):
        run(cfg, tmp_path / "nofile", "distill")
    assert not (tmp_path / "nofile" / "metrics.json").exists()
    # a W of another shape: a per-layer projection cannot start from one shared W
    general = tmp_path / "general"
    run(
        baseline_cfg(
            glue_dir,
            teacher_run,
            "tinybert_general",
            data={"corpus": str(glue_dir / "corpus.txt")},
            train={"max_steps": 1},
        ),
        general,
        "general",
    )
    cfg = baseline_cfg(
        glue_dir,
        teacher_run,
        "tinybert_intermediate",
        method={"projection": "per_layer"},
        model={"student": str(general / "model"), "student_init": "path"},
    )
    with pytest.raises(RunError, match="W in .* has shapes"):
        run(cfg, tmp_path / "shape", "distill")
