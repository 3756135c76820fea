"""The deployment path (lrcbert/export.py, lrcbert/deploy.py) on tiny random BERTs: the fused graph is really
fused, every export gives PyTorch's logits (padding and segments included), and the deployment report states
what it measured. No timing is asserted (speed is measured by the report, never tested)."""

import json
import re

import pytest
import torch
from conftest import MINILM, assert_tables_well_formed
from transformers import BertConfig, BertForSequenceClassification

from lrcbert import deploy
from lrcbert.export import OnnxClassifier, export_all, fusion_report, op_counts

LAYERS = 2


def tiny_classifier(vocab=1000, layers=LAYERS, hidden=32, labels=2, seed=0):
    torch.manual_seed(seed)
    conf = BertConfig(
        vocab_size=vocab,
        hidden_size=hidden,
        num_hidden_layers=layers,
        num_attention_heads=4,
        intermediate_size=2 * hidden,
        num_labels=labels,
    )
    conf._attn_implementation = "sdpa"
    return BertForSequenceClassification(conf).eval()


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    model = tiny_classifier()
    return model, export_all(model, tmp_path_factory.mktemp("onnx") / "m")


def test_fused_graph_has_one_attention_node_per_layer_and_no_softmax(exported):
    model, paths = exported
    assert model.config._attn_implementation == "sdpa"  # export put the model's attention back
    plain, fp32, int8 = (op_counts(paths[k]) for k in ("plain", "fp32", "int8"))
    # the plain export: per layer Q, K, V, QK^T, PV, output, two feed-forward products; softmax; GELU from Erf
    assert plain["MatMul"] == 8 * LAYERS and plain["Softmax"] == LAYERS and plain["Erf"] == LAYERS
    assert "Attention" not in plain and not fusion_report(paths["plain"], LAYERS)["fused"]
    # fused: one Attention per layer, 2 SkipLayerNorm per layer, the GELU fused with its bias, 3 MatMul per layer
    assert fp32["Attention"] == LAYERS and fp32["SkipLayerNormalization"] == 2 * LAYERS
    assert fp32["BiasGelu"] == LAYERS and fp32["MatMul"] == 3 * LAYERS and fp32["EmbedLayerNormalization"] == 1
    assert not {"Softmax", "Erf", "Where", "IsNaN"} & set(fp32)
    assert fusion_report(paths["fp32"], LAYERS)["fused"]
    # int8: the same fused layers with quantised attention and integer matrix products
    assert int8["QAttention"] == LAYERS and int8["MatMulInteger"] == 3 * LAYERS + 2 and "MatMul" not in int8
    assert fusion_report(paths["int8"], LAYERS)["fused"]
    assert paths["int8"].stat().st_size < paths["fp32"].stat().st_size / 2


def test_every_export_gives_pytorch_logits_with_padding_and_segments(exported):
    model, paths = exported
    g = torch.Generator().manual_seed(1)
    ids = torch.randint(5, 1000, (3, 12), generator=g)
    mask = torch.ones_like(ids)
    mask[1, 7:] = 0
    mask[2, 3:] = 0
    types = torch.zeros_like(ids)
    types[:, 6:] = 1
    with torch.no_grad():
        ref = model(input_ids=ids, attention_mask=mask, token_type_ids=types).logits
    for k, tol in (("plain", 1e-5), ("fp32", 1e-5), ("int8", 0.05)):
        out = OnnxClassifier(paths[k], threads=1)(ids, mask, types)
        torch.testing.assert_close(out, ref, atol=tol, rtol=0)
    # padding changes nothing in the fused graph: example 2 alone, unpadded
    alone = OnnxClassifier(paths["fp32"], threads=1)(ids[2:, :3], mask[2:, :3], types[2:, :3])
    torch.testing.assert_close(alone, ref[2:], atol=1e-5, rtol=0)


def test_spread_and_interleaving_by_hand():
    s = deploy.spread([4.0, 1.0, 3.0, 2.0, 5.0])
    assert (s["median"], s["q1"], s["q3"], s["min"], s["max"], s["n"]) == (3.0, 2.0, 4.0, 1.0, 5.0, 5)
    order = []
    t = deploy.interleaved({"a": lambda: order.append("a"), "b": lambda: order.append("b")}, repeats=3, warmup=2)
    assert order == ["a", "b"] * 5 and t["a"]["wall"]["n"] == t["b"]["cpu"]["n"] == 3


def test_paper_ratios_from_the_repository_csv():
    p = deploy.paper_ratios("results/paper/table2_speed.csv")
    assert p["speedup"] == pytest.approx(121.4 / 12.7) and round(p["speedup"], 1) == 9.6
    assert p["size"] == pytest.approx(109 / 14.5) and round(p["size"], 1) == 7.5


def _saved(tmp_path, name, layers, hidden, tokenizer):
    from transformers import AutoConfig

    vocab = AutoConfig.from_pretrained(MINILM).vocab_size
    model = tiny_classifier(vocab=vocab, layers=layers, hidden=hidden)
    model.save_pretrained(tmp_path / name)
    tokenizer.save_pretrained(tmp_path / name)
    return tmp_path / name


def test_deployment_report_on_generated_data(tmp_path, glue_dir, tokenizer):
    teacher = _saved(tmp_path, "teacher", 4, 32, tokenizer)
    student = _saved(tmp_path, "student", 2, 16, tokenizer)
    out = tmp_path / "results" / "deployment.json"
    rc = deploy.main(
        [
            "--teacher",
            str(teacher),
            "--student",
            f"tiny4={student}",
            "--task",
            "rte",
            "--set",
            "data.source=tsv",
            "--set",
            f"data.path={glue_dir}",
            "--paper",
            "results/paper/table2_speed.csv",
            "--out",
            str(out),
            "--work",
            str(tmp_path / "onnx"),
            "--threads",
            "1",
            "--length",
            "16",
            "--batch-sizes",
            "1",
            "4",
            "--repeats",
            "3",
            "--warmup",
            "1",
            "--generated",
        ]
    )
    assert rc == 0
    r = json.loads(out.read_text())
    assert (
        r["threads"] == 1
        and r["clock"] == "cpu"
        and r["generated"] is True
        and set(r["models"]) == {"teacher", "tiny4"}
    )
    t, s = r["models"]["teacher"], r["models"]["tiny4"]
    assert s["params"] == sum(p.numel() for p in BertForSequenceClassification.from_pretrained(student).parameters())
    assert t["params"] > s["params"] and s["layers"] == 2 and t["layers"] == 4
    for m in (t, s):
        assert m["fusion"]["fp32"]["fused"] and m["fusion"]["int8"]["fused"]
        assert m["dev"]["pytorch_fp32"]["max_abs_logit_diff"] == 0.0
        for k in ("onnx_fp32", "onnx_fp32_plain"):  # fused and plain graphs compute the same logits
            assert m["dev"][k]["max_abs_logit_diff"] < 1e-4
            assert abs(m["dev"][k]["dev_score"] - m["dev"]["pytorch_fp32"]["dev_score"]) < 1e-9
        for b in ("batch1", "batch4"):
            for k in deploy.RUNTIMES:
                lat = m["latency"][b][k]
                assert lat["wall"]["n"] == (3 if b == "batch1" else 5) and lat["wall"]["min"] <= lat["wall"]["median"]
                assert lat["tokens_per_s"] == pytest.approx(int(b[5:]) * 16 / lat["cpu"]["median"])
        assert m["disk_bytes"]["onnx_int8"] < m["disk_bytes"]["onnx_fp32"]
    assert r["dev_examples"] == 48
    md = out.with_suffix(".md").read_text()
    assert "Generated data" in md and "1 thread(s)" in md and "9.6x faster" in md and "7.5x smaller" in md
    assert "Latency: median CPU time of the process" in md and "wall-clock" not in md  # r["clock"] is "cpu"
    assert_tables_well_formed(md)
    assert "the 4 runtimes alternate" in md and re.search(r"\|\s*ONNX fp32 \(plain\)\s*\|", md)


def test_deployment_refuses_a_missing_model_before_writing(tmp_path, capsys):
    out = tmp_path / "d.json"
    rc = deploy.main(
        [
            "--teacher",
            str(tmp_path / "nope"),
            "--task",
            "rte",
            "--paper",
            "x.csv",
            "--out",
            str(out),
            "--work",
            str(tmp_path),
        ]
    )
    err = capsys.readouterr().err
    assert rc == 2 and "teacher" in err and "nope" in err and err.count("\n") == 1 and not out.exists()
