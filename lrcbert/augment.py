"""TinyBERT-style data augmentation of a GLUE training set (LRC-BERT augments RTE and CoLA 20x this way).

The recipe, per sentence (each sentence of a pair on its own):
  1. Split the sentence into words (runs of letters/digits; punctuation and spacing are left in place).
     Stopwords (``STOPWORDS``) are never touched; every other word is a *slot*.
  2. Find up to ``top_k`` replacement candidates for each slot, once, in the original sentence:
       - a word that is one word piece of the tokenizer: mask it and take the masked LM's ``top_k`` most
         likely whole-word tokens (no ``##`` pieces, no special or ``[unused]`` tokens, not the word itself);
       - a word of several pieces: its ``top_k`` cosine nearest neighbours in a GloVe file when one is given
         and holds the word, else the masked LM with the whole word replaced by a single mask.
  3. Make ``n_aug`` copies: in each, every slot independently, with probability ``p``, becomes a candidate
     drawn uniformly (keeping the capitalisation of the original word).
The output holds each original example followed by its ``n_aug`` copies, labels unchanged, written as a TSV in
the task's train layout so that ``data.train_file=<out>`` trains on it. Everything is drawn from one
``numpy.random.default_rng(seed)`` in a fixed order, so a seed gives the same file.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .config import ConfigError
from .data import load_split
from .models import resolve
from .runinfo import atomic_write_text
from .tasks import COLA_COLUMNS, Task

WORD = re.compile(r"[^\W_]+")  # a word: letters and digits (BERT also splits on "_" and other punctuation)

STOPWORDS = frozenset(
    """
a about above after again against ain all am an and any are aren as at be because been before being below
between both but by can couldn d did didn do does doesn doing don down during each few for from further had
hadn has hasn have haven having he her here hers herself him himself his how i if in into is isn it its itself
just ll m ma me mightn more most mustn my myself needn no nor not now o of off on once only or other our ours
ourselves out over own re s same shan she should shouldn so some such t than that the their theirs them
themselves then there these they this those through to too under until up ve very was wasn we were weren what
when where which while who whom why will with won wouldn y you your yours yourself yourselves
""".split()
)


@dataclass
class AugmentConfig:
    p: float = 0.4  # probability that a slot (non-stopword word) is replaced in a copy
    n_aug: int = 20  # augmented copies per example (the original is kept besides)
    top_k: int = 15  # candidates per slot (masked-LM top-k or GloVe neighbours)
    mlm: str = "bert-base-uncased"  # masked LM (and its tokenizer): the pre-trained teacher
    glove: str | None = None  # GloVe text file ("word v1 v2 ...") for words of several word pieces
    seed: int = 0
    batch_size: int = 64  # masked sentences per forward pass
    max_examples: int | None = None  # augment only the first N training examples


def check(aug: AugmentConfig) -> None:
    if not 0.0 <= aug.p <= 1.0:
        raise ConfigError(f"augment: p must lie in [0, 1], got {aug.p}")
    if aug.n_aug < 0:
        raise ConfigError(f"augment: n_aug must be >= 0, got {aug.n_aug}")
    if aug.top_k < 1:
        raise ConfigError(f"augment: top_k must be >= 1, got {aug.top_k}")
    if aug.batch_size < 1:
        raise ConfigError(f"augment: batch_size must be >= 1, got {aug.batch_size}")
    if aug.glove and not Path(aug.glove).is_file():
        raise ConfigError(f"augment: GloVe file not found: {aug.glove}")


def word_slots(text: str) -> list[tuple[int, int, str]]:
    """(start, end, word) of each word of ``text`` that may be replaced (i.e. is not a stopword)."""
    return [(m.start(), m.end(), m.group()) for m in WORD.finditer(text) if m.group().lower() not in STOPWORDS]


def match_case(new: str, old: str) -> str:
    if len(old) > 1 and old.isupper():
        return new.upper()
    return new[:1].upper() + new[1:] if old[:1].isupper() else new


@torch.no_grad()
def mlm_candidates(model, tokenizer, queries: list[tuple[str, str]], k: int, batch_size: int) -> list[list[str]]:
    """The ``k`` most likely whole-word tokens at the (first) mask of each ``(masked_text, original_word)``,
    the original word excluded. Sentences of similar length are batched together; only the masked positions
    go through the LM head."""
    model.eval()
    device = next(model.parameters()).device
    n_vocab = model.get_output_embeddings().weight.shape[0]
    tokens = tokenizer.convert_ids_to_tokens(list(range(min(n_vocab, len(tokenizer)))))
    blocked = torch.ones(n_vocab, dtype=torch.bool)
    blocked[: len(tokens)] = torch.tensor([WORD.fullmatch(t) is None for t in tokens])
    blocked = blocked.to(device)
    max_len = min(tokenizer.model_max_length, getattr(model.config, "max_position_embeddings", 512), 512)
    out: list[list[str]] = [[] for _ in queries]
    order = sorted(range(len(queries)), key=lambda i: len(queries[i][0]))
    for s in range(0, len(order), batch_size):
        idx = order[s : s + batch_size]
        enc = tokenizer(
            [queries[i][0] for i in idx], padding=True, truncation=True, max_length=max_len, return_tensors="pt"
        ).to(device)
        hit = enc["input_ids"] == tokenizer.mask_token_id
        pos = hit.int().argmax(1)  # first mask of each row (none: truncated away)
        rows = torch.arange(len(idx), device=device)
        if hasattr(model, "bert") and hasattr(model, "cls"):  # BERT: LM head on the masked positions only
            logits = model.cls(model.bert(**enc).last_hidden_state[rows, pos])
        else:
            logits = model(**enc).logits[rows, pos]
        logits = logits.float().masked_fill(blocked, -math.inf)
        top = logits.topk(min(k + 1, n_vocab), dim=-1)
        for r, i in enumerate(idx):
            if not hit[r].any():
                continue
            word = queries[i][1].lower()
            cands = [
                tokenizer.convert_ids_to_tokens(int(t)) for t, v in zip(top.indices[r], top.values[r]) if v > -math.inf
            ]
            out[i] = [c for c in cands if c.lower() != word][:k]
    return out


def _glove_rows(path):
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            word, _, rest = line.rstrip("\n").partition(" ")
            yield word, rest


def _unit(m: np.ndarray) -> np.ndarray:
    return m / np.maximum(np.linalg.norm(m, axis=-1, keepdims=True), 1e-12)


def glove_neighbours(path, words, k: int, chunk: int = 50_000) -> dict[str, list[str]]:
    """The ``k`` cosine nearest neighbours (whole words, not the word itself) of each of ``words`` (compared
    lower-cased) in the GloVe text file at ``path``. Two streaming passes keep memory small: the first reads
    the vectors of the query words only, the second scores the file's words a chunk at a time against all
    queries, keeping a running top-k. Words absent from the file are absent from the result."""
    want = {w.lower() for w in words}
    query: dict[str, np.ndarray] = {}
    for word, rest in _glove_rows(path):
        if word in want and word not in query:
            query[word] = np.array(rest.split(), dtype=np.float32)
    dim = len(next(iter(query.values()), []))
    query = {w: v for w, v in query.items() if len(v) == dim > 0}  # drop malformed lines
    if not query:
        return {}
    names = np.array(list(query))
    q = _unit(np.stack(list(query.values())))
    best_s = np.zeros((len(names), 0), np.float32)
    best_w = np.zeros((len(names), 0), object)
    buf_w, buf_v = [], []

    def flush():
        nonlocal best_s, best_w
        cand = np.array(buf_w, dtype=object)
        s = q @ _unit(np.stack(buf_v)).T
        s[names[:, None] == np.char.lower(cand.astype(str))[None, :]] = -np.inf
        all_s = np.concatenate([best_s, s], 1)
        all_w = np.concatenate([best_w, np.broadcast_to(cand, s.shape)], 1)
        top = np.argsort(-all_s, axis=1, kind="stable")[:, :k]
        best_s, best_w = np.take_along_axis(all_s, top, 1), np.take_along_axis(all_w, top, 1)
        buf_w.clear(), buf_v.clear()

    for word, rest in _glove_rows(path):
        if WORD.fullmatch(word):
            v = np.array(rest.split(), dtype=np.float32)
            if len(v) == dim:
                buf_w.append(word), buf_v.append(v)
                if len(buf_w) >= chunk:
                    flush()
    if buf_w:
        flush()
    return {n: [w for w, s in zip(ws, ss) if s > -np.inf] for n, ws, ss in zip(names, best_w, best_s)}


def find_candidates(sentences, aug: AugmentConfig, model, tokenizer) -> dict[str, list[list[str]]]:
    """For each sentence, the candidate list of each of its slots (order of ``word_slots``)."""
    pieces: dict[str, bool] = {}

    def single(w):
        if w not in pieces:
            t = tokenizer.tokenize(w)
            pieces[w] = len(t) == 1 and t[0] != tokenizer.unk_token
        return pieces[w]

    slots = {s: word_slots(s) for s in sentences}
    multi = {w for sl in slots.values() for *_, w in sl if not single(w)}
    glove = glove_neighbours(aug.glove, multi, aug.top_k) if aug.glove and multi else {}
    out = {s: [[] for _ in sl] for s, sl in slots.items()}
    queries, where = [], []
    for s, sl in slots.items():
        for j, (a, b, w) in enumerate(sl):
            if not single(w) and glove.get(w.lower()):
                out[s][j] = glove[w.lower()]
            else:
                queries.append((s[:a] + tokenizer.mask_token + s[b:], w))
                where.append((s, j))
    for (s, j), cands in zip(where, mlm_candidates(model, tokenizer, queries, aug.top_k, aug.batch_size)):
        out[s][j] = cands
    return out


def augment_sentence(text: str, candidates: list[list[str]], n_aug: int, p: float, rng) -> tuple[list[str], int]:
    """``n_aug`` copies of ``text``: each slot (``word_slots(text)``) with candidates is, with probability ``p``,
    replaced by one of them drawn uniformly. Returns the copies and the number of words replaced."""
    slots = word_slots(text)
    copies, replaced = [], 0
    for _ in range(n_aug):
        u, pick = rng.random(len(slots)), rng.random(len(slots))
        parts, last = [], 0
        for (a, b, w), cands, ui, pi in zip(slots, candidates, u, pick):
            if ui < p and cands:
                parts += [text[last:a], match_case(cands[int(pi * len(cands))], w)]
                last, replaced = b, replaced + 1
        copies.append("".join(parts) + text[last:])
    return copies, replaced


def _tsv(task: Task, rows: list[tuple]) -> str:
    """``rows`` of (text_a, text_b | None, label) in the task's train layout (CoLA: headerless 4 columns)."""

    def label(y):
        return f"{y:.3f}" if task.is_regression else task.labels[y]

    if not task.header:  # CoLA: source, label, original_label ("*" = unacceptable), sentence
        lines = [
            "\t".join(
                {"source": "aug", task.label_col: label(y), "original_label": "*" if y == 0 else "", task.text_a: a}[c]
                for c in COLA_COLUMNS
            )
            for a, _, y in rows
        ]
    else:
        cols = ["index", task.text_a] + ([task.text_b] if task.text_b else []) + [task.label_col]
        lines = ["\t".join(cols)] + [
            "\t".join([str(i), a] + ([b] if task.text_b else []) + [label(y)]) for i, (a, b, y) in enumerate(rows)
        ]
    return "\n".join(lines) + "\n"


def augment_task(cfg, task: Task, out_path, aug: AugmentConfig, mlm_model=None, tokenizer=None) -> dict:
    """Write ``task``'s training set (from ``cfg``'s data source) with ``aug.n_aug`` augmented copies after each
    example to ``out_path``; returns counts and the fraction of slots replaced in the copies."""
    check(aug)
    ds = load_split(cfg, task, "train")
    if aug.max_examples is not None and len(ds) > aug.max_examples:
        ds = ds.select(range(aug.max_examples))
    torch.manual_seed(aug.seed)
    rng = np.random.default_rng(aug.seed)
    clean = lambda t: re.sub(r"[\t\r\n]", " ", t)  # noqa: E731  (no tabs or newlines inside a TSV field)
    text_a = [clean(t) for t in ds["text_a"]]
    text_b = [clean(t) for t in ds["text_b"]] if task.text_b else [None] * len(ds)
    sentences = sorted(set(text_a) | (set(text_b) - {None}))
    if aug.p > 0 and aug.n_aug > 0:
        if tokenizer is None:
            from transformers import AutoTokenizer

            tokenizer = AutoTokenizer.from_pretrained(resolve(aug.mlm))
        if mlm_model is None:
            from transformers import AutoModelForMaskedLM

            mlm_model = AutoModelForMaskedLM.from_pretrained(resolve(aug.mlm))
            mlm_model.to("cuda" if torch.cuda.is_available() else "cpu")
        cands = find_candidates(sentences, aug, mlm_model, tokenizer)
    else:
        cands = {s: [[] for _ in word_slots(s)] for s in sentences}
    rows, replaced, slots = [], 0, 0
    for a, b, y in zip(text_a, text_b, ds["label"]):
        copies_a, ra = augment_sentence(a, cands[a], aug.n_aug, aug.p, rng)
        copies_b, rb = ([None] * aug.n_aug, 0) if b is None else augment_sentence(b, cands[b], aug.n_aug, aug.p, rng)
        rows += [(a, b, y)] + [(ca, cb, y) for ca, cb in zip(copies_a, copies_b)]
        replaced += ra + rb
        slots += aug.n_aug * (len(cands[a]) + (len(cands[b]) if b is not None else 0))
    atomic_write_text(out_path, _tsv(task, rows))
    return {"examples": len(ds), "written": len(rows), "replaced_fraction": replaced / slots if slots else 0.0}
