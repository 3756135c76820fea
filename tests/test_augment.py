"""TinyBERT-style augmentation: file layout and round trip, labels, stopwords, p=0 / p=1, the masked LM's own
top-k, GloVe neighbours for multi-piece words, determinism and errors (tiny random MLM, real uncased vocab)."""

import re

import pytest
import torch
from transformers import BertConfig, BertForMaskedLM

from lrcbert.augment import STOPWORDS, AugmentConfig, augment_task, glove_neighbours
from lrcbert.config import load_config
from lrcbert.data import load_split
from lrcbert.tasks import get_task

WORD = re.compile(r"[^\W_]+")
RTE = [
    ("The Photosynthesis of green plants needs sunlight, doesn't it?", "Plants need light.", "entailment"),
    ("A cat plays the xylophone and a hippopotamus dances.", "Nobody plays music.", "not_entailment"),
    ("The Photosynthesis of green plants needs sunlight, doesn't it?", "Plants are purple.", "not_entailment"),
]
COLA = [("gj04", "1", "", "The old cat slept on the warm mat."), ("gj04", "0", "*", "Cat the slept mat on.")]
STSB = [("A man is playing a guitar.", "A man plays guitar.", "4.250"), ("Dogs run.", "Stocks fell.", "0.000")]


@pytest.fixture
def glue(tmp_path):
    def write(rel, lines):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text("\n".join("\t".join(r) for r in lines) + "\n")

    write("RTE/train.tsv", [("index", "sentence1", "sentence2", "label")] + [(str(i), *r) for i, r in enumerate(RTE)])
    write("CoLA/train.tsv", COLA)
    write(
        "STS-B/train.tsv", [("index", "sentence1", "sentence2", "score")] + [(str(i), *r) for i, r in enumerate(STSB)]
    )
    return tmp_path


@pytest.fixture(scope="module")
def mlm(tokenizer):
    """A tiny random masked LM over the real uncased vocabulary, and that tokenizer (one CPU thread: a model
    this small only loses time to thread hand-offs, badly so on a loaded machine)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    model = BertForMaskedLM(
        BertConfig(
            vocab_size=tokenizer.vocab_size,
            hidden_size=32,
            num_hidden_layers=2,
            num_attention_heads=4,
            intermediate_size=64,
        )
    ).eval()
    yield model, tokenizer
    torch.set_num_threads(threads)


def cfg_for(path, task="rte", **data):
    return load_config(base={"task": task, "data": {"source": "tsv", "path": str(path), **data}})


def groups(cfg, task, out, n_aug):
    """The written examples, one list of (n_aug + 1) (text_a, text_b, label) per source example."""
    ds = load_split(
        load_config(base={**cfg.to_dict(), "data": {**cfg.to_dict()["data"], "train_file": str(out)}}), task, "train"
    )
    rows = list(zip(ds["text_a"], ds["text_b"] if task.text_b else [None] * len(ds), ds["label"]))
    return [rows[i : i + n_aug + 1] for i in range(0, len(rows), n_aug + 1)]


def own_topk(model, tok, text, start, end, k):
    """The model's top-k whole-word tokens for ``text`` with ``text[start:end]`` masked, in one unpadded pass."""
    if not hasattr(tok, "_test_words"):  # whole-word tokens of the vocabulary (no ##pieces, [unused], [CLS])
        tok._test_words = torch.tensor([t.isalnum() for t in tok.convert_ids_to_tokens(list(range(len(tok))))])
    enc = tok(text[:start] + tok.mask_token + text[end:], return_tensors="pt")
    with torch.no_grad():
        logits = model(**enc).logits[0, enc["input_ids"][0].tolist().index(tok.mask_token_id)]
    keep = tok._test_words.clone()
    keep[tok.convert_tokens_to_ids(text[start:end].lower())] = False
    return set(tok.convert_ids_to_tokens(logits.masked_fill(~keep, -float("inf")).topk(k).indices.tolist()))


@pytest.mark.parametrize("name", ["rte", "cola", "stsb"])
def test_layout_labels_stopwords_round_trip(glue, mlm, name):
    task, n_aug = get_task(name), 3
    cfg, out = cfg_for(glue, name), glue / f"{name}_aug.tsv"
    stats = augment_task(cfg, task, out, AugmentConfig(p=0.5, n_aug=n_aug, top_k=5), *mlm)
    source = load_split(cfg, task, "train")
    assert stats["examples"] == len(source) and stats["written"] == len(source) * (n_aug + 1)
    assert 0 < stats["replaced_fraction"] < 1
    first = out.read_text().splitlines()[0].split("\t")
    assert first == (
        {"rte": ["index", "sentence1", "sentence2", "label"], "stsb": ["index", "sentence1", "sentence2", "score"]}.get(
            name
        )
        or ["aug", "1", "", COLA[0][3]]
    )
    if name == "stsb":
        assert out.read_text().splitlines()[1].endswith("\t4.250")
    changed = 0
    for group, a, b, y in zip(
        groups(cfg, task, out, n_aug),
        source["text_a"],
        source["text_b"] if task.text_b else [None] * len(source),
        source["label"],
    ):
        assert group[0] == (a, b, y)  # the original comes first, unchanged
        for ca, cb, cy in group[1:]:
            assert cy == y
            for orig, copy in ((a, ca), (b, cb)) if b is not None else ((a, ca),):
                assert WORD.sub("", copy) == WORD.sub("", orig)  # punctuation and spacing untouched
                ow, cw = WORD.findall(orig), WORD.findall(copy)
                assert len(ow) == len(cw)
                assert all(c == o for o, c in zip(ow, cw) if o.lower() in STOPWORDS)
                changed += ow != cw
    assert changed > 0


def test_p0_keeps_every_copy_and_needs_no_model(glue):
    task, cfg, out = get_task("rte"), cfg_for(glue), glue / "p0.tsv"
    stats = augment_task(cfg, task, out, AugmentConfig(p=0.0, n_aug=4, mlm="/nonexistent/model"))
    assert stats == {"examples": 3, "written": 15, "replaced_fraction": 0.0}
    for group in groups(cfg, task, out, 4):
        assert all(row == group[0] for row in group)


def check_p1(glue, mlm, out, aug, glove_words=None):
    """With p=1 every slot changes; each replacement is one of its candidates (GloVe list or own MLM top-k)."""
    model, tok = mlm
    task, cfg = get_task("rte"), cfg_for(glue)
    stats = augment_task(cfg, task, out, aug, model, tok)
    assert stats["replaced_fraction"] == 1.0
    seen = {}
    for group in groups(cfg, task, out, aug.n_aug):
        for col in (0, 1):
            orig = group[0][col]
            slots = [m for m in WORD.finditer(orig) if m.group().lower() not in STOPWORDS]
            allowed = [
                (glove_words or {}).get(m.group().lower()) or own_topk(model, tok, orig, *m.span(), aug.top_k)
                for m in slots
            ]
            for row in group[1:]:
                words = [m.group() for m in WORD.finditer(row[col])]
                new = [w for w, m in zip(words, WORD.finditer(orig)) if m.group().lower() not in STOPWORDS]
                for m, w, ok in zip(slots, new, allowed):
                    assert w.lower() != m.group().lower() and w.lower() in ok, (m.group(), w, ok)
                    assert not w[0].isalpha() or w[0].isupper() == m.group()[0].isupper()  # case kept
                    seen.setdefault(m.group(), set()).add(w.lower())
    assert max(len(v) for v in seen.values()) > 1  # draws vary between copies
    return seen


def test_p1_single_and_multi_piece_words_use_the_mlm_top_k(glue, mlm):
    _, tok = mlm
    assert len(tok.tokenize("photosynthesis")) > 1 and len(tok.tokenize("cat")) == 1
    check_p1(glue, mlm, glue / "p1.tsv", AugmentConfig(p=1.0, n_aug=6, top_k=4, batch_size=5))


def test_multi_piece_words_use_glove_neighbours(glue, mlm):
    vecs = {
        "photosynthesis": [1, 0, 0],
        ",": [1, 0, 0],
        "Photosynthesis": [1, 0, 0.01],
        "chlorophyll": [0.9, 0.1, 0],
        "sunlight": [0.8, 0.3, 0],
        "banana": [0, 0, 1],
        "xylophone": [0, 1, 0],
        "marimba": [0.1, 1, 0],
        "drum": [0.2, 0.9, 0.1],
        "cat": [0, 0.1, 1],
        "kitten": [0, 0.1, 0.9],
        "broken": [1, 2],
    }
    path = glue / "glove.txt"
    path.write_text("".join(f"{w} {' '.join(map(str, v))}\n" for w, v in vecs.items()))
    expected = {"photosynthesis": ["chlorophyll", "sunlight"], "xylophone": ["marimba", "drum"]}
    assert glove_neighbours(path, ["Photosynthesis", "xylophone", "absent"], 2) == expected
    assert glove_neighbours(path, ["Photosynthesis", "xylophone"], 2, chunk=2) == expected
    # hippopotamus (several pieces, not in the file) and cat (one piece) come from the MLM
    seen = check_p1(
        glue, mlm, glue / "glove_aug.tsv", AugmentConfig(p=1.0, n_aug=6, top_k=2, glove=str(path)), glove_words=expected
    )
    assert seen["Photosynthesis"] == {"chlorophyll", "sunlight"} and "kitten" not in seen["cat"]


def test_deterministic_for_a_seed(glue, mlm):
    task, cfg = get_task("rte"), cfg_for(glue)
    texts = [
        (
            augment_task(cfg, task, glue / f"s{i}.tsv", AugmentConfig(n_aug=4, seed=s), *mlm),
            (glue / f"s{i}.tsv").read_text(),
        )
        for i, s in enumerate((7, 7, 8))
    ]
    assert texts[0] == texts[1] and texts[0][1] != texts[2][1]


@pytest.mark.parametrize(
    "kw, message",
    [
        ({"p": 1.5}, "p must lie in [0, 1], got 1.5"),
        ({"p": -0.1}, "got -0.1"),
        ({"n_aug": -1}, "n_aug must be >= 0, got -1"),
        ({"top_k": 0}, "top_k must be >= 1, got 0"),
        ({"glove": "/nonexistent/glove.txt"}, "GloVe file not found: /nonexistent/glove.txt"),
    ],
)
def test_bad_values_named_in_one_line(glue, kw, message):
    with pytest.raises(ValueError) as e:
        augment_task(cfg_for(glue), get_task("rte"), glue / "x.tsv", AugmentConfig(**kw))
    assert message in str(e.value) and "\n" not in str(e.value)
    assert not (glue / "x.tsv").exists()
