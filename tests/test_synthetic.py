"""Tests of the synthetic GLUE generator: layout, determinism, and that the documented label rules hold.

The rule checks below re-derive labels from the surface text with their own small parsers, using only the
generator's word tables, so a generator that mislabels or leaks labels makes them fail.
"""

import csv
import os
import re
from collections import Counter

import numpy as np
import pandas as pd
import pytest

from lrcbert import synthetic as syn
from lrcbert.tasks import COLA_COLUMNS, TASKS

HEADERS = {  # the original GLUE column names (train/dev, test)
    "SST-2": (["sentence", "label"], ["index", "sentence"]),
    "MRPC": (
        ["Quality", "#1 ID", "#2 ID", "#1 String", "#2 String"],
        ["index", "#1 ID", "#2 ID", "#1 String", "#2 String"],
    ),
    "STS-B": (
        ["index", "genre", "filename", "year", "old_index", "source1", "source2", "sentence1", "sentence2", "score"],
        ["index", "genre", "filename", "year", "old_index", "source1", "source2", "sentence1", "sentence2"],
    ),
    "QQP": (["id", "qid1", "qid2", "question1", "question2", "is_duplicate"], ["id", "question1", "question2"]),
    "MNLI": (
        ["index", "promptID", "pairID", "genre", "sentence1", "sentence2", "gold_label"],
        ["index", "promptID", "pairID", "genre", "sentence1", "sentence2"],
    ),
    "QNLI": (["index", "question", "sentence", "label"], ["index", "question", "sentence"]),
    "RTE": (["index", "sentence1", "sentence2", "label"], ["index", "sentence1", "sentence2"]),
    "CoLA": (None, ["index", "sentence"]),
}
SIZES = {"train": 512, "dev": 128, "test": 64}


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    out = tmp_path_factory.mktemp("syn")
    return out, syn.make_synthetic(out, seed=0)


def read(out, task, split):
    path = os.path.join(out, task.folder, task.files[split])
    if split != "test" and not task.header:
        return pd.read_csv(
            path,
            sep="\t",
            quoting=csv.QUOTE_NONE,
            header=None,
            names=list(COLA_COLUMNS),
            dtype=str,
            keep_default_na=False,
        )
    return pd.read_csv(path, sep="\t", quoting=csv.QUOTE_NONE, dtype=str, keep_default_na=False)


# ----------------------------------------------------------------------------- surface analysis helpers
def words(text):
    return re.findall(r"[a-z]+", text.lower())


_VERB = {f: lemma for lemma, forms in syn.VERB_FORMS.items() for f in (lemma, *forms)}
_NOUNS = {n for d in syn.DOMAINS.values() for k in ("agents", "objects", "places") for n in d[k]}
_NOUNS |= (
    set(syn.QQP_OBJECTS)
    | set(syn.HYPERNYMS.values())
    | {
        "kid",
        "automobile",
        "bike",
        "couch",
        "photo",
        "mug",
        "store",
        "physician",
        "pupil",
        "scientist",
        "statute",
        "agreement",
        "lab",
        "telephone",
        "flat",
    }
)
_ADJS = {a for pair in syn.ADJ_CLASSES.values() for a in pair} | set(syn.COLOURS) | set(syn.QQP_ADJS)
_ADJS |= {w for g in syn.SYNONYMS for w in g if g[0] in _ADJS}
_TIME = {w for t in syn.TIMES + syn.PRESENT_TIMES for w in t.split()} - {"last", "on", "this", "in", "the", "every"}
_CANON = {w: g[0] for g in syn.SYNONYMS for w in g}
AGENTS = {a for d in syn.DOMAINS.values() for a in d["agents"]}
OBJECTS = {o for d in syn.DOMAINS.values() for o in d["objects"]}
PLACES = {p for d in syn.DOMAINS.values() for p in d["places"]}


def noun_lemma(w):
    irregular = {"children": "child", "people": "person"}
    for cand in (
        irregular.get(w),
        w,
        w[:-1] if w.endswith("s") else None,
        w[:-2] if w.endswith("es") else None,
        w[:-3] + "y" if w.endswith("ies") else None,
    ):
        if cand in _NOUNS:
            return cand
    return None


def lemma(w):
    """Canonical content lemma of a word (synonyms merged, negations -> NEG), or None for function words."""
    if w in ("not", "never"):
        return "NEG"
    lem = _VERB.get(w) or noun_lemma(w) or (w if w in _ADJS | _TIME | set(syn.CITIES) else None)
    return _CANON.get(lem, lem)


def content(text):
    return Counter(x for x in map(lemma, words(text)) if x)


def ridge_accuracy(train_x, train_y, dev_x, dev_y, lam=1.0):
    """Bag-of-words linear classifier (ridge regression on one-hot targets), numpy only."""
    vocab = {w: i for i, w in enumerate(sorted({w for t in train_x for w in words(t)}))}

    def feats(texts):
        x = np.zeros((len(texts), len(vocab) + 1))
        x[:, -1] = 1
        for r, t in enumerate(texts):
            for w in words(t):
                if w in vocab:
                    x[r, vocab[w]] += 1
        return x

    classes = sorted(set(train_y))
    x, y = feats(train_x), np.array([[c == v for c in classes] for v in train_y], float)
    w = np.linalg.solve(x.T @ x + lam * np.eye(x.shape[1]), x.T @ y)
    pred = np.array(classes)[np.argmax(feats(dev_x) @ w, axis=1)]
    return float(np.mean(pred == np.array(dev_y)))


# ------------------------------------------------------------------------------------- layout and API
def test_deterministic_and_seed_dependent(tmp_path):
    a = syn.make_synthetic(tmp_path / "a", seed=3, sizes={"train": 40, "dev": 20, "test": 10}, corpus_lines=50)
    b = syn.make_synthetic(tmp_path / "b", seed=3, sizes={"train": 40, "dev": 20, "test": 10}, corpus_lines=50)
    c = syn.make_synthetic(tmp_path / "c", seed=4, sizes={"train": 40, "dev": 20, "test": 10}, corpus_lines=50)
    for pa, pb, pc in zip(a, b, c):
        data_a = open(pa, "rb").read()
        assert data_a == open(pb, "rb").read(), pa
        assert data_a != open(pc, "rb").read(), pa
    assert open(tmp_path / "a" / "README.txt").read() == open(tmp_path / "b" / "README.txt").read()


def test_files_are_independent_of_other_sizes(tmp_path):
    syn.make_synthetic(tmp_path / "a", seed=0, sizes={"train": 30, "dev": 10, "test": 5}, corpus_lines=5)
    syn.make_synthetic(
        tmp_path / "b", seed=0, sizes={"train": 30, "dev": 10, "test": 5, "SST-2": {"train": 99}}, corpus_lines=5
    )
    assert open(tmp_path / "a/SST-2/dev.tsv", "rb").read() == open(tmp_path / "b/SST-2/dev.tsv", "rb").read()
    assert open(tmp_path / "a/RTE/train.tsv", "rb").read() == open(tmp_path / "b/RTE/train.tsv", "rb").read()


def test_return_value_and_sizes(data):
    out, written = data
    expected = {os.path.join(out, t.folder, f): SIZES[s] for t in TASKS.values() for s, f in t.files.items()}
    expected[os.path.join(out, "corpus.txt")] = 2000
    assert {str(k): v for k, v in written.items()} == {str(k): v for k, v in expected.items()}
    assert len([p for p in written if "MNLI" in str(p)]) == 5
    leftovers = [f for _, _, fs in os.walk(out) for f in fs if f.startswith(".tmp-")]
    assert not leftovers
    readme = open(os.path.join(out, "README.txt")).read()
    assert "GENERATED" in readme and "seed=0" in readme and "SST-2" in readme


def test_sizes_override_and_validation(tmp_path):
    written = syn.make_synthetic(tmp_path, sizes={"train": 7, "dev": 5, "test": 3, "MNLI": {"dev": 4}}, corpus_lines=3)
    counts = {os.path.relpath(p, tmp_path): n for p, n in written.items()}
    assert counts["SST-2/train.tsv"] == 7 and counts["QQP/test.tsv"] == 3
    assert counts["MNLI/dev_matched.tsv"] == counts["MNLI/dev_mismatched.tsv"] == 4
    assert counts["MNLI/test_mismatched.tsv"] == 3 and counts["corpus.txt"] == 3
    assert len(pd.read_csv(tmp_path / "MNLI/dev_mismatched.tsv", sep="\t", quoting=csv.QUOTE_NONE)) == 4
    with pytest.raises(ValueError):
        syn.make_synthetic(tmp_path, sizes={"validation": 3})
    with pytest.raises(ValueError):
        syn.make_synthetic(tmp_path, sizes={"SST-2": {"valid": 3}})


@pytest.mark.parametrize("name", list(TASKS))
def test_layout_matches_tasks(data, name):
    out, _ = data
    task = TASKS[name]
    for split in ("train", "dev", "test"):
        path = os.path.join(out, task.folder, task.files[split])
        raw = open(path, encoding="utf-8").read()
        assert '"' not in raw and "\r" not in raw and raw.endswith("\n")
        header = HEADERS[task.folder][split == "test"]
        lines = raw.splitlines()
        ncol = len(header) if header else len(COLA_COLUMNS)
        assert all(line.count("\t") == ncol - 1 for line in lines), path  # no tab inside any field
        assert len(lines) == SIZES[split] + (header is not None)
        df = read(out, task, split)
        assert len(df) == SIZES[split]
        if split == "test":
            assert list(df.columns) == header and task.label_col not in df.columns
            assert list(df.iloc[:, 0]) == [str(i) for i in range(len(df))]
        else:
            assert list(df.columns) == (header or list(COLA_COLUMNS))
            assert {task.text_a, task.label_col, task.text_b} - {None} <= set(df.columns)
            if task.labels:
                assert set(df[task.label_col]) <= set(task.labels)
            else:
                scores = df[task.label_col].astype(float)
                assert scores.between(0, 5).all()
                assert df[task.label_col].str.fullmatch(r"\d\.\d{3}").all()
        for col in (task.text_a, task.text_b):
            if col:
                assert (df[col].str.len() > 0).all()


def test_cola_original_label_column(data):
    df = read(data[0], TASKS["cola"], "train")
    assert ((df.original_label == "*") == (df.label == "0")).all()


def test_class_balance(data):
    out, _ = data
    targets = {
        "cola": ("1", 0.70),
        "sst2": ("1", 0.50),
        "mrpc": ("1", 0.68),
        "qqp": ("1", 0.37),
        "mnli_m": ("entailment", 1 / 3),
        "qnli": ("entailment", 0.5),
        "rte": ("entailment", 0.5),
    }
    for name, (label, share) in targets.items():
        task = TASKS[name]
        for split in ("train", "dev"):
            dist = read(out, task, split)[task.label_col].value_counts(normalize=True)
            assert dist.max() < 0.75, (name, split, dict(dist))
            assert len(dist) == len(task.labels)
            assert abs(dist[label] - share) < 0.01, (name, split, dict(dist))
    scores = read(out, TASKS["stsb"], "train").score.astype(float)
    assert scores.std() > 1.0 and (scores < 1).mean() > 0.05 and (scores > 4).mean() > 0.05


def test_sentence_lengths_vary(data):
    out, _ = data
    lengths = [
        len(words(s))
        for name in ("sst2", "cola", "mrpc", "mnli_m")
        for s in read(out, TASKS[name], "train")[TASKS[name].text_a]
    ]
    assert min(lengths) <= 6 and max(lengths) >= 20
    rte = read(out, TASKS["rte"], "train").sentence1.map(lambda s: len(words(s)))
    assert rte.max() >= 30


def test_corpus(data):
    out, _ = data
    lines = open(os.path.join(out, "corpus.txt"), encoding="utf-8").read().splitlines()
    assert len(lines) == 2000 and all(line.strip() and "\t" not in line for line in lines)
    corpus_vocab = {w for line in lines for w in words(line)}
    task_vocab = {
        w
        for name in ("sst2", "mnli_m", "mnli_mm", "qqp", "qnli")
        for col in (TASKS[name].text_a, TASKS[name].text_b)
        if col
        for s in read(out, TASKS[name], "train" if name != "mnli_mm" else "dev")[col]
        for w in words(s)
    }
    assert len(task_vocab - corpus_vocab) / len(task_vocab) < 0.05, sorted(task_vocab - corpus_vocab)


# ------------------------------------------------------------------------------------------ label rules
def test_sst2_rule(data):
    """Label = polarity of the sentiment word in the final clause, flipped by not/never in that clause."""
    pos = set(syn.SST_POS) | {f for kv in syn.SST_POS_VERBS.items() for f in kv}
    neg = set(syn.SST_NEG) | {f for kv in syn.SST_NEG_VERBS.items() for f in kv}
    df = read(data[0], TASKS["sst2"], "train")
    for sentence, label in zip(df.sentence, df.label):
        last = sentence.split(",")[-1].split()
        polar = [w for w in last if w in pos | neg]
        assert len(polar) == 1, sentence
        negated = "not" in last or "never" in last
        assert label == str(int((polar[0] in pos) != negated)), sentence


def cola_errors(sentence):
    """Violations a simple checker finds: doubled determiner, agreement, verb form after auxiliary, no verb."""
    w = words(sentence)
    errors = [f"{a} {b}" for a, b in zip(w, w[1:]) if a in ("the", "a", "an") and b in ("the", "a", "an")]
    head = next((i for i, x in enumerate(w) if noun_lemma(x)), None)
    if head is None:
        return errors + ["no subject"]
    plural = noun_lemma(w[head]) != w[head]
    number = {"is": False, "was": False, "does": False, "are": True, "were": True, "do": True}
    for i in range(head + 1, len(w)):
        x = w[i]
        third = {f: lem for lem, (f, _, _) in syn.VERB_FORMS.items()}
        if x in number:
            if number[x] != plural:
                errors.append(f"agreement {w[head]} {x}")
            nxt = w[i + 2] if i + 1 < len(w) and w[i + 1] in ("not", "never") else (w[i + 1] if i + 1 < len(w) else "")
            if x in ("does", "do") and nxt not in syn.VERB_FORMS:
                errors.append(f"form {x} {nxt}")
            if x in ("is", "are", "was", "were") and (nxt not in _VERB or nxt in syn.VERB_FORMS):
                errors.append(f"form {x} {nxt}")
            return errors
        if x == "did":
            nxt = w[i + 2] if i + 2 < len(w) else ""
            return errors + ([] if nxt in syn.VERB_FORMS else [f"form did {nxt}"])
        if x in third:
            return errors + ([f"agreement {w[head]} {x}"] if plural else [])
        if x in syn.VERB_FORMS and w[i - 1] not in ("the", "a", "an"):
            return errors + ([] if plural else [f"agreement {w[head]} {x}"])
        if x in _VERB and _VERB[x] != x:
            return errors
    return errors + ["no verb"]


def test_cola_rule(data):
    df = read(data[0], TASKS["cola"], "train")
    flagged = df.sentence.map(lambda s: bool(cola_errors(s)))
    good = df[df.label == "1"]
    assert not flagged[df.label == "1"].any(), [(s, cola_errors(s)) for s in good.sentence if cola_errors(s)][:5]
    assert flagged[df.label == "0"].mean() > 0.75  # all but word-order swaps are caught


def test_mrpc_rule(data):
    """Paraphrase iff the content words agree up to synonyms (voice, word order and wrappers aside)."""
    df = read(data[0], TASKS["mrpc"], "train")
    same = [content(a) == content(b) for a, b in zip(df["#1 String"], df["#2 String"])]
    assert [str(int(s)) for s in same] == list(df.Quality)
    assert (df["#1 String"] != df["#2 String"]).mean() > 0.8


def qqp_parse(question):
    q = " ".join(words(question))
    prefixes = [(f.split("{x}")[0].strip(), intent) for intent, fs in syn.QQP_FRAMES.items() for f in fs]
    prefix, intent = max(((p, i) for p, i in prefixes if q.startswith(p + " ")), key=lambda pi: len(pi[0]))
    return intent, content(q[len(prefix) :])


def test_qqp_rule(data):
    """Duplicate iff same intent (any of its frames) and same slots up to synonyms."""
    df = read(data[0], TASKS["qqp"], "train")
    assert df.question1.str.endswith("?").all() and df.question2.str.endswith("?").all()
    dup = [qqp_parse(a) == qqp_parse(b) for a, b in zip(df.question1, df.question2)]
    assert [str(int(d)) for d in dup] == list(df.is_duplicate)
    hard = [
        qqp_parse(a)[0] != qqp_parse(b)[0] and qqp_parse(a)[1] == qqp_parse(b)[1]
        for a, b in zip(df.question1, df.question2)
    ]
    assert np.mean(hard) > 0.15  # many non-duplicates share every content word


def test_stsb_rule(data):
    """Score follows the share of common content; identical content scores near 5."""
    df = read(data[0], TASKS["stsb"], "train")
    score = df.score.astype(float).to_numpy()
    bags = [(set(content(a)), set(content(b))) for a, b in zip(df.sentence1, df.sentence2)]
    jaccard = np.array([len(a & b) / len(a | b) for a, b in bags])
    assert all(s >= 4.6 for s, (a, b) in zip(score, bags) if a == b)
    rank = lambda v: pd.Series(v).rank().to_numpy()  # noqa: E731
    assert np.corrcoef(rank(jaccard), rank(score))[0, 1] > 0.8


ATTRIBUTE = re.compile(r"^the (\w+) (was|were|is|are) (not )?(\w+)\.$")


def check_attribute_hypotheses(premises, hypotheses, labels, binary=False):
    """For "The X was (not) ADJ.": entailment iff the premise gives X that attribute xor the hypothesis negates;
    an attribute of another kind is neutral. Returns how many pairs were checked."""
    cls = {a: c for c, pair in syn.ADJ_CLASSES.items() for a in pair}
    checked = 0
    for p, h, label in zip(premises, hypotheses, labels):
        m = ATTRIBUTE.match(h.lower())
        if not m:
            continue
        adj = _CANON.get(m.group(4), m.group(4))
        assert noun_lemma(m.group(1)) and _CANON.get(noun_lemma(m.group(1)), noun_lemma(m.group(1))) in content(p)
        given = [a for a in content(p) if cls.get(a) == cls[adj]]
        if not given:
            expected = "neutral"
        else:
            expected = "entailment" if (given[0] == adj) != bool(m.group(3)) else "contradiction"
        if binary:
            expected = "entailment" if expected == "entailment" else "not_entailment"
        assert label == expected, (p, h, label)
        checked += 1
    return checked


def check_scope(premises, hypotheses, labels):
    """Event hypotheses whose content words contain or are contained in the premise's: equal content is
    entailed; fewer words are entailed by a positive premise but not by a negated one (and more words the
    reverse); flipping the negation alone contradicts. Returns how many pairs were checked."""
    checked = 0
    for p, h, label in zip(premises, hypotheses, labels):
        cp, ch = content(p), content(h)
        if ATTRIBUTE.match(h.lower()):
            continue
        if cp["NEG"] != ch["NEG"]:
            if cp - Counter({"NEG": 1}) == ch - Counter({"NEG": 1}):
                assert label == "contradiction", (p, h, label)
                checked += 1
            continue
        if ch == cp:
            expected = "entailment"
        elif ch < cp:
            expected = "neutral" if cp["NEG"] else "entailment"
        elif cp < ch:
            expected = "entailment" if cp["NEG"] else "neutral"
        else:
            continue
        assert label == expected, (p, h, label)
        checked += 1
    return checked


def test_mnli_rules_and_genres(data):
    out, _ = data
    train = read(out, TASKS["mnli_m"], "train")
    assert check_attribute_hypotheses(train.sentence1, train.sentence2, train.gold_label) > 50
    assert check_scope(train.sentence1, train.sentence2, train.gold_label) > 100
    matched, mismatched = read(out, TASKS["mnli_m"], "dev"), read(out, TASKS["mnli_mm"], "dev")
    assert set(matched.genre) <= set(train.genre)
    assert not set(mismatched.genre) & set(train.genre)
    public = set(syn.DOMAINS["public"]["agents"])
    share = lambda df: np.mean([bool(set(content(p)) & public) for p in df.sentence1])  # noqa: E731
    assert share(train) == 0 and share(matched) == 0 and share(mismatched) > 0.5
    assert check_attribute_hypotheses(mismatched.sentence1, mismatched.sentence2, mismatched.gold_label) > 10


def test_rte_rule(data):
    df = read(data[0], TASKS["rte"], "train")
    assert check_attribute_hypotheses(df.sentence1, df.sentence2, df.label, binary=True) > 30


def test_qnli_rule(data):
    """When the context states everything the question says, entailment iff it also fills the asked slot."""
    fills = {"who": AGENTS, "what": OBJECTS, "where": PLACES, "when": _TIME}
    df = read(data[0], TASKS["qnli"], "train")
    checked = 0
    for q, s, label in zip(df.question, df.sentence, df.label):
        wh, qbag, sbag = words(q)[0], content(q), content(s)
        assert wh in fills and q.endswith("?")
        states_event = all(sbag[k] >= v for k, v in qbag.items())
        assert states_event or label == "not_entailment", (q, s, label)
        if states_event:
            assert label == ("entailment" if set(sbag) & fills[wh] else "not_entailment"), (q, s, label)
            checked += 1
    assert checked > 0.6 * len(df)


# --------------------------------------------------------------------------------- learnable, not trivial
@pytest.fixture(scope="module")
def big(tmp_path_factory):
    out = tmp_path_factory.mktemp("big")
    syn.make_synthetic(
        out,
        seed=1,
        corpus_lines=1,
        sizes={
            "train": 4,
            "dev": 4,
            "test": 2,
            "SST-2": {"train": 2000, "dev": 500},
            "MNLI": {"train": 2000, "dev": 500},
        },
    )
    return out


def test_sst2_bag_of_words_is_above_chance_but_far_from_solved(big):
    train, dev = read(big, TASKS["sst2"], "train"), read(big, TASKS["sst2"], "dev")
    acc = ridge_accuracy(list(train.sentence), list(train.label), list(dev.sentence), list(dev.label))
    assert 0.58 < acc < 0.8, acc
    # the majority class and the single best keyword do no better
    best_word = max(
        0.5,
        *(
            max(
                np.mean((dev.sentence.str.split().map(lambda ws, w=w: w in ws)) == (dev.label == v)) for v in ("0", "1")
            )
            for w in ("not", "never", "good", "bad", "but")
        ),
    )
    assert best_word < 0.7


def test_mnli_hypothesis_only_baseline_is_weak(big):
    train, dev = read(big, TASKS["mnli_m"], "train"), read(big, TASKS["mnli_m"], "dev")
    acc = ridge_accuracy(list(train.sentence2), list(train.gold_label), list(dev.sentence2), list(dev.gold_label))
    assert acc < 0.6, acc  # about 0.5 measured: no strong hypothesis-only artefacts
