"""Each ablation differs from LRC-BERT in exactly the intended term (paper Tables 3-5, Fig. 5)."""

import pytest
import torch

from lrcbert import losses
from lrcbert.config import load_config
from lrcbert.objective import METHODS, Objective
from lrcbert.tasks import get_task

INTENDED = {
    "lrcbert_c": {"stage_split", "stage1", "stage2"},
    "lrcbert_s": {"stage2"},
    "lrcbert_h": {"stage2"},
    "lrcbert_g": {"perturb"},
    "lrcbert_2": {"stage_split"},
    "bert_m": {"layer_loss"},
}
S, T = (
    type("S", (), {"num_hidden_layers": 2, "hidden_size": 4}),
    type("T", (), {"num_hidden_layers": 4, "hidden_size": 8}),
)


def method(name):
    return load_config(base={"method": METHODS[name]}).method


def weights_over_run(name, total=10):
    obj = Objective(method(name), get_task("mnli"), S, T)
    return [obj.weights(step, total) for step in range(total)]


@pytest.mark.parametrize("name", sorted(INTENDED))
def test_only_the_intended_keys_differ(name):
    base, variant = vars(method("lrcbert")), vars(method(name))
    assert {k for k in base if base[k] != variant[k]} == INTENDED[name]


def test_weights_over_the_run():
    full = weights_over_run("lrcbert")
    assert full[:8] == [{"layer": 1.0}] * 8 and full[8:] == [{"layer": 1.0, "soft": 1.0, "hard": 3.0}] * 2
    assert weights_over_run("lrcbert_c") == [{"soft": 1.0, "hard": 3.0}] * 10  # never the layer term
    assert weights_over_run("lrcbert_s")[:8] == full[:8] and weights_over_run("lrcbert_s")[9] == {
        "layer": 1.0,
        "hard": 3.0,
    }
    assert weights_over_run("lrcbert_h")[:8] == full[:8] and weights_over_run("lrcbert_h")[9] == {
        "layer": 1.0,
        "soft": 1.0,
    }
    assert weights_over_run("lrcbert_2")[0] == {"layer": 1.0, "soft": 1.0, "hard": 3.0}  # soft, hard from step 0
    assert weights_over_run("lrcbert_g") == full and weights_over_run("bert_m") == full


def test_lrcbert_c_has_no_projection():
    assert not Objective(method("lrcbert_c"), get_task("mnli"), S, T).uses_layers
    assert Objective(method("lrcbert"), get_task("mnli"), S, T).uses_layers


def test_bert_m_layer_loss_is_mse_where_cos_nce_is_scale_blind(tokenizer, tmp_path):
    h = torch.randn(4, 6, 8)
    mask = torch.ones(4, 6, dtype=torch.long)
    assert losses.masked_mse(h, h.clone(), mask).item() == 0.0
    mse = [losses.masked_mse(h * (1 + d), h, mask).item() for d in (0.1, 0.5, 1.0)]
    assert mse[0] < mse[1] < mse[2]
    cos = [
        losses.in_batch_cos_nce(losses.layer_vectors(h * (1 + d), mask), losses.layer_vectors(h, mask)).item()
        for d in (0.1, 0.5, 1.0)
    ]
    assert cos == pytest.approx([cos[0]] * 3, rel=1e-5)


def test_lrcbert_g_runs_one_forward_pass_per_step(tokenizer, tmp_path):
    from test_engine import setup

    for name, passes in (("lrcbert_g", 1), ("lrcbert", 2)):
        cfg, trainer = setup(tokenizer, tmp_path / name, method=METHODS[name])
        calls = []
        trainer.student.bert.encoder.layer[0].register_forward_pre_hook(lambda *a, calls=calls: calls.append(1))
        trainer.train_step(next(iter(trainer.loader)))
        assert len(calls) == passes, name


def test_bert_m_and_lrcbert_layer_terms_use_the_same_layers_and_projection():
    """Through the objective: BERT_M's layer term is 0 for a student whose projected layers equal the teacher's
    mapped layers and grows with their distance; LRC-BERT's COS-NCE term does not see a rescaling of the student,
    and both read the same layers phi(i) through the same W."""
    from types import SimpleNamespace

    same = type("Same", (), {"num_hidden_layers": 2, "hidden_size": 8})
    objs = {n: Objective(method(n), get_task("mnli"), same, T) for n in ("bert_m", "lrcbert")}
    for obj in objs.values():
        with torch.no_grad():
            obj.proj[0].weight.copy_(torch.eye(8))
    assert objs["bert_m"].phi == objs["lrcbert"].phi == [2, 4]
    t_hidden = [torch.randn(4, 5, 8) for _ in range(5)]
    batch = {"attention_mask": torch.ones(4, 5, dtype=torch.long)}

    def term(name, scale=1.0, noise=0.0):
        s_hidden = [None, *(scale * t_hidden[j] + noise * torch.randn(4, 5, 8) for j in (2, 4))]
        out = objs[name](
            SimpleNamespace(hidden_states=s_hidden), SimpleNamespace(hidden_states=t_hidden), batch, {"layer": 1.0}
        )
        return out["layer"].item()

    assert term("bert_m") == pytest.approx(0.0, abs=1e-10)
    torch.manual_seed(0)
    mse = [term("bert_m", noise=d) for d in (0.1, 0.5, 1.0)]
    assert mse[0] < mse[1] < mse[2]
    assert term("bert_m", scale=3.0) > 1.0
    assert term("lrcbert", scale=3.0) == pytest.approx(term("lrcbert"), rel=1e-5)
