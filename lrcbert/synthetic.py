"""Synthetic GLUE: small rule-labelled stand-ins for the eight GLUE tasks, in the original TSV layout.

``make_synthetic(out_dir)`` writes CoLA, SST-2, MRPC, STS-B, QQP, MNLI, QNLI and RTE folders that a
reader driven by ``lrcbert.tasks`` parses like the real data, plus ``corpus.txt`` (one sentence or short
paragraph per line, for general distillation) and ``README.txt``, the marker written last (readers check it, so
generated data is never taken for GLUE; ``make_synthetic`` writes only into a folder that does not exist, holds
no files, or carries this marker). Sentences come from a small English-like
grammar (a few hundred words); every label is a deterministic function of the generated content, chosen so
that a model must read word order and scope, not just count words:

* SST-2: a clause says something positive or negative about a film (polarity adjective or verb). A
  negation ("not"/"never") inside the clause flips it. Two-clause sentences ("X , but Y" and
  "although X , Y") take their label from the final clause; the first clause has random polarity.
  Balanced classes. Unigram counts are not enough (negation flips, the first clause is noise).
* CoLA: acceptable (1) = a sentence of the grammar; unacceptable (0) = the same kind of sentence with one
  corruption: subject-verb agreement error (often across an attractor: "the dog near the cats chase"),
  wrong verb form after an auxiliary ("did not bought", "was buy"), dropped main verb, two adjacent
  words swapped, or a duplicated determiner. 70/30.
* MRPC: news-like statements. Paraphrase (1) = the same proposition re-rendered (synonyms, passive voice,
  fronted place/time, a reporting wrapper such as "sources said that"); non-paraphrase (0) = one slot
  changed (agent, verb, object, place, time, negation or the agent's adjective) or, for a quarter of
  them, an unrelated proposition. Content words up to synonyms are equal iff paraphrase. 68/32.
* QQP: questions = intent frame + slots (verb, object, optional adjective and city). Duplicate (1) = same
  intent (any of its equivalent frames: "how can I X" = "what is the best way to X") and the same slots
  up to synonyms; non-duplicate (0) = other intent with the same slots, one slot changed, or unrelated.
  37/63.
* STS-B: sentence 2 keeps each slot of sentence 1 (agent, verb, object, place, negation) with a per-pair
  probability, otherwise changes it, and is re-rendered with synonyms/voice. Score = weighted share of
  kept slots (agent 1.5, verb 1.25, object 1.25, place 0.5, negation 0.5; total 5) plus small noise
  (sd 0.15, at most 0.3), clipped to [0, 5], three decimals.
* MNLI: premise = a proposition (often with an agent adjective, object colour, place, time).
  Entailment = hypernym subject ("an animal"), dropped modifiers, passive restatement, the attribute
  restated ("the dog was small") or its antonym denied ("the dog was not big"). Contradiction = the event
  negated, the antonym asserted, the attribute denied, or an incompatible place. Neutral = an attribute
  of another kind ("the dog was old"), an added place/time/colour, or another object (possibly negated).
  For attribute hypotheses: entailment iff (same attribute) xor (negated); another kind is neutral.
  "not" occurs in every class. Train and dev/test matched use the everyday vocabulary (genres fiction,
  travel); mismatched mostly uses the public-affairs vocabulary and reporting templates (genres letters,
  oup), so MNLI-mm is harder. Balanced.
* QNLI: a wh-question (who/what/where/when) about an event and a one-to-three sentence context.
  Entailment iff the context states the same event and fills the asked slot. not_entailment = the same
  event without that slot (agentless passive, "something", no place/time), or another event (one slot the
  question mentions changed) that does fill the asked slot. Balanced.
* RTE: the MNLI construction with longer premises (the premise sentence plus one or two sentences about
  other agents) from both vocabularies; entailment vs not_entailment (neutral and contradiction merged).
  Balanced.

Train/dev files carry labels; test files carry an index and the text columns only. Each (task, file) has its
own random stream derived from the seed and the file name, so sizes of one file never change another.
"""

from __future__ import annotations

import os
import tempfile
import zlib
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from .errors import DataError
from .tasks import COLA_COLUMNS, TASKS

DEFAULT_SIZES = {"train": 512, "dev": 128, "test": 64}

# ------------------------------------------------------------------------------------------ lexicon
_IRREGULAR_PLURALS = {"child": "children", "person": "people"}

DOMAINS = {
    "everyday": dict(
        agents=("dog", "cat", "horse", "teacher", "doctor", "farmer", "child", "student", "pilot", "nurse"),
        verbs=("buy", "fix", "find", "carry", "wash", "paint", "throw", "hide", "watch", "sell"),
        objects=("car", "bicycle", "sofa", "picture", "cup", "ball", "lamp", "box", "basket", "kettle"),
        places=("park", "garden", "kitchen", "market", "station", "beach", "school", "shop"),
        adj=("size", "age", "mood", "speed"),
    ),
    "public": dict(
        agents=("official", "senator", "judge", "researcher", "mayor", "committee", "agency", "council"),
        verbs=("approve", "reject", "review", "publish", "sign", "debate", "propose", "revise"),
        objects=("law", "budget", "contract", "report", "proposal", "treaty", "policy", "memo"),
        places=("office", "capital", "court", "ministry", "laboratory", "embassy", "chamber"),
        adj=("age", "temper", "wealth", "size"),
    ),
}
HYPERNYMS = {
    **{a: "animal" for a in ("dog", "cat", "horse")},
    **{
        a: "person"
        for a in (
            "teacher",
            "doctor",
            "farmer",
            "child",
            "student",
            "pilot",
            "nurse",
            "official",
            "senator",
            "judge",
            "researcher",
            "mayor",
        )
    },
    "committee": "group",
    "council": "group",
    "agency": "organization",
}
PREPOSITIONS = {"market": "at", "station": "at", "school": "at", "beach": "on", "office": "at", "court": "at"}
ADJ_CLASSES = {
    "size": ("small", "big"),
    "age": ("young", "old"),
    "mood": ("happy", "sad"),
    "speed": ("quick", "slow"),
    "temper": ("calm", "angry"),
    "wealth": ("rich", "poor"),
}
COLOURS = ("red", "blue", "green", "white", "black", "yellow")
TIMES = (
    "yesterday",
    "last week",
    "on monday",
    "on friday",
    "this morning",
    "last night",
    "in the evening",
    "last year",
)
PRESENT_TIMES = ("every day", "on mondays", "every morning", "in the evening", "on weekends")
# lemma -> (third person singular, past, past participle)
VERB_FORMS = {
    "buy": ("buys", "bought", "bought"),
    "purchase": ("purchases", "purchased", "purchased"),
    "fix": ("fixes", "fixed", "fixed"),
    "repair": ("repairs", "repaired", "repaired"),
    "find": ("finds", "found", "found"),
    "locate": ("locates", "located", "located"),
    "carry": ("carries", "carried", "carried"),
    "wash": ("washes", "washed", "washed"),
    "clean": ("cleans", "cleaned", "cleaned"),
    "paint": ("paints", "painted", "painted"),
    "throw": ("throws", "threw", "thrown"),
    "toss": ("tosses", "tossed", "tossed"),
    "hide": ("hides", "hid", "hidden"),
    "conceal": ("conceals", "concealed", "concealed"),
    "watch": ("watches", "watched", "watched"),
    "observe": ("observes", "observed", "observed"),
    "sell": ("sells", "sold", "sold"),
    "rent": ("rents", "rented", "rented"),
    "approve": ("approves", "approved", "approved"),
    "endorse": ("endorses", "endorsed", "endorsed"),
    "reject": ("rejects", "rejected", "rejected"),
    "refuse": ("refuses", "refused", "refused"),
    "review": ("reviews", "reviewed", "reviewed"),
    "examine": ("examines", "examined", "examined"),
    "publish": ("publishes", "published", "published"),
    "release": ("releases", "released", "released"),
    "sign": ("signs", "signed", "signed"),
    "debate": ("debates", "debated", "debated"),
    "discuss": ("discusses", "discussed", "discussed"),
    "propose": ("proposes", "proposed", "proposed"),
    "suggest": ("suggests", "suggested", "suggested"),
    "revise": ("revises", "revised", "revised"),
    "amend": ("amends", "amended", "amended"),
}
# words of one group are interchangeable (same sense, same part of speech); the first is canonical
SYNONYMS = (
    ("car", "automobile"),
    ("bicycle", "bike"),
    ("sofa", "couch"),
    ("picture", "photo"),
    ("cup", "mug"),
    ("shop", "store"),
    ("doctor", "physician"),
    ("child", "kid"),
    ("student", "pupil"),
    ("researcher", "scientist"),
    ("law", "statute"),
    ("contract", "agreement"),
    ("laboratory", "lab"),
    ("phone", "telephone"),
    ("apartment", "flat"),
    ("buy", "purchase"),
    ("fix", "repair"),
    ("find", "locate"),
    ("wash", "clean"),
    ("throw", "toss"),
    ("hide", "conceal"),
    ("watch", "observe"),
    ("approve", "endorse"),
    ("reject", "refuse"),
    ("review", "examine"),
    ("publish", "release"),
    ("debate", "discuss"),
    ("propose", "suggest"),
    ("revise", "amend"),
    ("big", "large"),
    ("small", "little"),
    ("happy", "cheerful"),
    ("sad", "unhappy"),
    ("quick", "fast"),
    ("old", "elderly"),
    ("angry", "furious"),
    ("rich", "wealthy"),
    ("cheap", "inexpensive"),
    ("used", "secondhand"),
)
_GROUP = {w: g for g in SYNONYMS for w in g}

# QQP: questions about doing something with an object; each intent has interchangeable frames
QQP_FRAMES = {
    "how": ("how can i {x}", "how do i {x}", "what is the best way to {x}", "what is the easiest way to {x}"),
    "where": ("where can i {x}", "where should i go to {x}", "which place is best to {x}"),
    "why": ("why do people {x}", "what makes people {x}", "for what reason do people {x}"),
    "should": ("should i {x}", "is it a good idea to {x}", "is it wise to {x}"),
    "cost": ("how much does it cost to {x}", "what is the price to {x}", "what does it cost to {x}"),
}
QQP_VERBS = ("buy", "sell", "rent", "fix", "wash", "find", "paint")
QQP_OBJECTS = ("car", "bicycle", "laptop", "phone", "apartment", "camera", "sofa", "ticket")
QQP_ADJS = ("cheap", "used", "new", "small", "big")
CITIES = ("london", "paris", "tokyo", "boston", "delhi", "berlin", "toronto", "sydney")

# SST-2: opinions about films
SST_ITEMS = ("film", "movie", "story", "show", "book", "documentary", "sequel", "comedy", "drama", "thriller")
SST_ASPECTS = (
    "plot",
    "acting",
    "music",
    "ending",
    "dialogue",
    "script",
    "pacing",
    "cast",
    "soundtrack",
    "direction",
    "humor",
)
SST_POS = (
    "good",
    "great",
    "excellent",
    "wonderful",
    "charming",
    "clever",
    "funny",
    "moving",
    "beautiful",
    "fresh",
    "brilliant",
    "delightful",
)
SST_NEG = (
    "bad",
    "awful",
    "boring",
    "dull",
    "terrible",
    "weak",
    "clumsy",
    "tedious",
    "bland",
    "messy",
    "lifeless",
    "shallow",
)
SST_POS_VERBS = {"enjoy": "enjoyed", "love": "loved", "like": "liked", "admire": "admired"}
SST_NEG_VERBS = {"hate": "hated", "dislike": "disliked", "detest": "detested", "resent": "resented"}
SST_LINK_VERBS = {"seem": "seemed", "feel": "felt", "look": "looked"}
INTENSIFIERS = ("very", "really", "quite", "truly", "extremely", "rather")
SST_PREFIXES = ("honestly ,", "to be fair ,", "in the end ,", "for me ,", "after two hours ,", "as expected ,")
SST_SUFFIXES = ("from start to finish", "for most of its running time", "in every scene", "by the final act")

WRAPPERS = ("sources said that", "witnesses said that", "it was reported that", "according to sources ,")
MM_WRAPPERS = ("records show that", "the letter states that", "it is noted that", "the minutes say that")
FILLERS = (
    "It was a busy time.",
    "Nobody expected what happened next.",
    "The weather was mild.",
    "Things were quiet for a while.",
    "It had been a long season.",
    "Few details were made public.",
    "Something unusual happened there.",
    "The area was closed for a while.",
    "Several roads were blocked.",
)


def _plural(noun: str) -> str:
    if noun in _IRREGULAR_PLURALS:
        return _IRREGULAR_PLURALS[noun]
    if noun.endswith(("s", "x", "ch", "sh")):
        return noun + "es"
    if noun.endswith("y") and noun[-2] not in "aeiou":
        return noun[:-1] + "ies"
    return noun + "s"


def _pick(rng, seq):
    return seq[int(rng.integers(len(seq)))]


def _syn(rng, word, p):
    """``word`` or, with probability ``p``, a random member of its synonym group."""
    group = _GROUP.get(word)
    return _pick(rng, group) if group and rng.random() < p else word


def _art(word):
    return "an" if word[0] in "aeiou" and not word.startswith(("use", "uni")) else "a"


def _join(words, end="."):
    """Words -> sentence: capitalised, punctuation attached, ``end`` appended."""
    text = " ".join(words).replace(" ,", ",") + end
    return text[0].upper() + text[1:]


def _plan(rng, n, weights):
    """Exactly proportioned labels (largest remainder), shuffled."""
    keys = list(weights)
    raw = np.array([weights[k] for k in keys], float) * n / sum(weights.values())
    counts = np.floor(raw).astype(int)
    for i in np.argsort(-(raw - counts), kind="stable")[: n - counts.sum()]:
        counts[i] += 1
    labels = [k for k, c in zip(keys, counts) for _ in range(c)]
    return [labels[i] for i in rng.permutation(n)]


# -------------------------------------------------------------------------------------- propositions
@dataclass(frozen=True)
class Prop:
    """One event: ``agent verb obj`` with optional modifiers. Nouns and verbs are canonical lemmas."""

    agent: str
    verb: str
    obj: str
    plural: bool = False  # number of the agent (objects are singular)
    adj: str | None = None  # attribute of the agent, from ADJ_CLASSES
    colour: str | None = None  # attribute of the object
    place: str | None = None
    time: str | None = None
    neg: bool = False
    present: bool = False
    det: str = "the"  # "the", or "a" for an indefinite agent ("an animal", "some animals")
    near: str | None = None  # attractor noun after the agent ("near the cats"), opposite number


def _prop(rng, dom, adj=0.5, colour=0.3, place=0.6, time=0.4, neg=0.0, present=0.0, plural=0.3, near=0.0):
    d = DOMAINS[dom]
    cls, agent, is_present = _pick(rng, d["adj"]), _pick(rng, d["agents"]), bool(rng.random() < present)
    return Prop(
        agent=agent,
        verb=_pick(rng, d["verbs"]),
        obj=_pick(rng, d["objects"]),
        plural=bool(rng.random() < plural),
        adj=_pick(rng, ADJ_CLASSES[cls]) if rng.random() < adj else None,
        colour=_pick(rng, COLOURS) if rng.random() < colour else None,
        place=_pick(rng, d["places"]) if rng.random() < place else None,
        time=_pick(rng, _times(is_present)) if rng.random() < time else None,
        neg=bool(rng.random() < neg),
        present=is_present,
        near=_other(rng, d["agents"] + d["objects"], agent) if rng.random() < near else None,
    )


def _times(present):
    """Time phrases that fit the tense."""
    return PRESENT_TIMES if present else TIMES


def _other(rng, seq, old):
    return _pick(rng, [x for x in seq if x != old])


def _antonym(adj):
    return next(a for pair in ADJ_CLASSES.values() if adj in pair for a in pair if a != adj)


def _adj_class(adj):
    return next((c for c, pair in ADJ_CLASSES.items() if adj in pair), None)


def _change(rng, p: Prop, slot: str, dom: str) -> Prop:
    """``p`` with one slot set to a different canonical value (so the content words differ)."""
    d = DOMAINS[dom]
    if slot == "neg":
        return replace(p, neg=not p.neg)
    if slot == "adj":
        return replace(p, adj=_antonym(p.adj) if p.adj else _pick(rng, ADJ_CLASSES[_pick(rng, d["adj"])]))
    if slot == "time":
        return replace(p, time=_other(rng, _times(p.present), p.time))
    pool = {"agent": d["agents"], "verb": d["verbs"], "obj": d["objects"], "place": d["places"]}[slot]
    return replace(p, **{slot: _other(rng, pool, getattr(p, slot))})


def _agent_np(p: Prop, s, plural):
    noun = s(p.agent)
    head = ([p.adj and s(p.adj)] if p.adj else []) + [_plural(noun) if plural else noun]
    det = p.det if p.det in ("the", "no") else ("some" if plural else _art(head[0]))
    near = ["near", "the", p.near if plural else _plural(p.near)] if p.near else []
    return [det] + head + near


def _render(
    p: Prop,
    rng,
    vary=0.0,
    passive=False,
    front=None,
    wrapper=None,
    no_agent=False,
    no_object=False,
    agree_wrong=False,
    bad_form=False,
    drop_verb=False,
) -> list[str]:
    """Words of one sentence for ``p``. ``vary`` = synonym probability per word; ``front`` = "place" or
    "time" moves that phrase to the start; ``no_agent`` (passive only) leaves out "by <agent>",
    ``no_object`` says "something" instead of the object; the last three flags produce CoLA corruptions."""
    s = lambda w: _syn(rng, w, vary)  # noqa: E731
    lemma = s(p.verb)
    third, past, part = VERB_FORMS[lemma]
    obj_head = ([p.colour] if p.colour else []) + [s(p.obj)]
    obj = [_art(obj_head[0]) if rng.random() < 0.3 else "the"] + obj_head
    if no_object:
        obj = ["something"]
    singular = (True if passive else not p.plural) != agree_wrong
    negw = ("never" if rng.random() < 0.25 else "not") if p.neg else None
    if bad_form and not passive and negw != "not":
        negw = "not"
    if passive:
        aux = ("is" if singular else "are") if p.present else ("was" if singular else "were")
        verb = [aux] + ([negw] if negw else []) + [lemma if bad_form else part]
    elif negw == "not":
        aux = ("does" if singular else "do") if p.present else "did"
        verb = [aux, "not", (third if p.present else past) if bad_form else lemma]
    else:
        verb = ([negw] if negw else []) + [(third if singular else lemma) if p.present else past]
    if drop_verb:
        verb = verb[:-1]
    if passive:
        core = obj + verb + ([] if no_agent else ["by"] + _agent_np(p, s, p.plural))
    else:
        core = _agent_np(p, s, p.plural) + verb + obj
    place = [PREPOSITIONS.get(p.place, "in"), "the", s(p.place)] if p.place else []
    time = p.time.split() if p.time else []
    if front == "place" and place:
        core, place = place + [","] + core, []
    elif front == "time" and time:
        core, time = time + [","] + core, []
    return (wrapper.split() if wrapper else []) + core + place + time


def _sentence(p, rng, **kw):
    return _join(_render(p, rng, **kw))


def _attribute(rng, p: Prop, adj: str, neg: bool, vary=0.5):
    """ "The dog was (not) small." about the agent of ``p``."""
    noun = _syn(rng, p.agent, vary)
    be = ("are" if p.plural else "is") if p.present else ("were" if p.plural else "was")
    return _join(["the", _plural(noun) if p.plural else noun, be] + (["not"] if neg else []) + [_syn(rng, adj, vary)])


# ---------------------------------------------------------------------------------------------- tasks
def _sst_clause(rng, positive: bool) -> list[str]:
    """One opinion clause; its label is (polarity of the sentiment word) xor (negated)."""
    neg = rng.random() < 0.35
    good = positive != neg
    adj = _pick(rng, SST_POS if good else SST_NEG)
    item, aspect = _pick(rng, SST_ITEMS), _pick(rng, SST_ASPECTS)
    be = _pick(rng, ("was", "is"))
    negw = [_pick(rng, ("not", "not", "never"))] if neg else []
    intens = [_pick(rng, INTENSIFIERS)] if rng.random() < 0.3 else []
    kind = int(rng.integers(5))
    if kind == 0:
        return ["the", _pick(rng, (item, aspect)), be] + negw + intens + [adj]
    if kind == 1:
        lemma, past = _pick(rng, list((SST_POS_VERBS if good else SST_NEG_VERBS).items()))
        verb = ["did", "not", lemma] if negw == ["not"] else negw + [past]
        return ["i"] + verb + ["the", _pick(rng, (item, aspect))]
    if kind == 2:
        return ["it", be] + negw + [_art((intens + [adj])[0])] + intens + [adj, item]
    if kind == 3:
        lemma, past = _pick(rng, list(SST_LINK_VERBS.items()))
        return ["the", item] + (["did", "not", lemma] if negw == ["not"] else negw + [past]) + intens + [adj]
    head = intens + [adj, aspect]
    verb = ["does", "not", "have"] if negw == ["not"] else negw + ["had"]
    return ["this", item] + verb + [_art(head[0])] + head


def _sst(rng, label):
    pos = label == "1"
    r = rng.random()
    if r < 0.2:
        words = _sst_clause(rng, rng.random() < 0.5) + [",", "but"] + _sst_clause(rng, pos)
    elif r < 0.3:
        words = ["although"] + _sst_clause(rng, rng.random() < 0.5) + [","] + _sst_clause(rng, pos)
    else:
        words = _sst_clause(rng, pos)
    if rng.random() < 0.25:
        words = _pick(rng, SST_PREFIXES).split() + words
    if rng.random() < 0.2:
        words = words + _pick(rng, SST_SUFFIXES).split()
    return dict(a=" ".join(words), label=label)


def _cola(rng, label):
    """Grammar sentence (1) or one corrupted sentence (0)."""
    kind = _pick(rng, ("agree", "agree", "form", "drop", "swap", "double")) if label == "0" else None
    passive = rng.random() < 0.2
    # active past tense shows no agreement, so an agreement error needs the present tense
    present = 1.0 if kind == "agree" and not passive else 0.5
    p = _prop(
        rng, _pick(rng, list(DOMAINS)), adj=0.4, place=0.5, time=0.3, neg=0.25, present=present, plural=0.4, near=0.25
    )
    if label == "1":
        return dict(a=_sentence(p, rng, passive=passive), label=label)
    words = _render(
        p, rng, passive=passive, agree_wrong=kind == "agree", bad_form=kind == "form", drop_verb=kind == "drop"
    )
    if kind == "swap":
        i = int(rng.integers(len(words) - 1))
        words[i], words[i + 1] = words[i + 1], words[i]
        if words[i] == words[i + 1]:
            words.insert(i, "the")
    elif kind == "double":
        i = _pick(rng, [k for k, w in enumerate(words) if w == "the"])
        words.insert(i, _pick(rng, ("the", "a")))
    return dict(a=_join(words), label=label)


def _mrpc(rng, label):
    dom = _pick(rng, list(DOMAINS))
    p = _prop(rng, dom, adj=0.5, place=0.7, time=0.6, neg=0.15)

    def say(q, vary):
        return _sentence(
            q,
            rng,
            vary=vary,
            passive=rng.random() < 0.3,
            front=_pick(rng, ("place", "time", None)),
            wrapper=_pick(rng, WRAPPERS) if rng.random() < 0.4 else None,
        )

    if label == "1":
        q = p
    elif rng.random() < 0.75:
        q = _change(rng, p, _pick(rng, ("agent", "verb", "obj", "place", "time", "neg", "adj")), dom)
    else:
        q = p
        while q == p:
            q = _prop(rng, dom, adj=0.5, place=0.7, time=0.6, neg=0.15)
    return dict(a=say(p, 0.3), b=say(q, 0.5), label=label)


def _qqp_question(rng, intent, slots, vary):
    verb, adj, obj, city = slots
    head = ([_syn(rng, adj, vary)] if adj else []) + [_syn(rng, obj, vary)]
    x = [_syn(rng, verb, vary), _art(head[0])] + head + (["in", city] if city else [])
    words = _pick(rng, QQP_FRAMES[intent]).format(x=" ".join(x)).split()
    return _join([("I" if w == "i" else w.capitalize() if w in CITIES else w) for w in words], "?")


def _qqp(rng, label):
    def slots():
        return (
            _pick(rng, QQP_VERBS),
            _pick(rng, QQP_ADJS) if rng.random() < 0.5 else None,
            _pick(rng, QQP_OBJECTS),
            _pick(rng, CITIES) if rng.random() < 0.5 else None,
        )

    intent, s1 = _pick(rng, list(QQP_FRAMES)), slots()
    intent2, s2 = intent, s1
    r = rng.random()
    if label == "0" and r < 0.4:
        intent2 = _other(rng, list(QQP_FRAMES), intent)
    elif label == "0" and r < 0.8:
        k = int(rng.integers(4))
        pool = (QQP_VERBS, QQP_ADJS, QQP_OBJECTS, CITIES)[k]
        s2 = tuple(_other(rng, pool, v) if i == k else v for i, v in enumerate(s1))
    elif label == "0":
        while (intent2, s2) == (intent, s1):
            intent2, s2 = _pick(rng, list(QQP_FRAMES)), slots()
    return dict(a=_qqp_question(rng, intent, s1, 0.3), b=_qqp_question(rng, intent2, s2, 0.5), label=label)


STS_WEIGHTS = {"agent": 1.5, "verb": 1.25, "obj": 1.25, "place": 0.5, "neg": 0.5}


def _stsb(rng, label=None):
    dom = _pick(rng, list(DOMAINS))
    p = _prop(rng, dom, adj=0.3, place=1.0, time=0.3, neg=0.2)
    keep = rng.random()
    q, score = p, 0.0
    for slot, w in STS_WEIGHTS.items():
        if rng.random() < keep:
            score += w
        else:
            q = _change(rng, q, slot, dom)
    score = float(np.clip(score + np.clip(rng.normal(0, 0.15), -0.3, 0.3), 0, 5))
    return dict(
        a=_sentence(p, rng, vary=0.2),
        b=_sentence(q, rng, vary=0.5, passive=rng.random() < 0.3),
        label=f"{score:.3f}",
        genre=_pick(rng, ("main-captions", "main-news", "main-forums")),
    )


def _hypothesis(rng, p: Prop, dom: str, label: str) -> str:
    """A hypothesis for premise ``p`` with the given NLI label (rules in the module docstring)."""
    d = DOMAINS[dom]
    mods = [s for s in ("colour", "place", "time") if getattr(p, s)]
    missing = [s for s in ("place", "time") + (() if p.neg else ("colour",)) if getattr(p, s) is None]
    if not p.neg:
        kinds = {
            "entailment": ["restate", "hyper"] + ["drop"] * bool(mods or p.adj) + ["same", "anti"] * bool(p.adj),
            "contradiction": ["negate", "nobody"] + ["place"] * bool(p.place) + ["anto", "deny"] * bool(p.adj),
            "neutral": ["other_attr", "other_obj"] + ["add", "hyper_add"] * bool(missing),
        }[label]
    else:  # under negation, adding modifiers is entailed and dropping them is not
        kinds = {
            "entailment": ["restate"] + ["add"] * bool(missing) + ["same", "anti"] * bool(p.adj),
            "contradiction": ["negate"] + ["anto", "deny"] * bool(p.adj),
            "neutral": ["other_attr", "other_obj"] + ["drop"] * bool(mods),
        }[label]
    kind = _pick(rng, kinds)
    if kind in ("same", "anti", "anto", "deny"):
        adj = p.adj if kind in ("same", "deny") else _antonym(p.adj)
        return _attribute(rng, p, adj, neg=kind in ("anti", "deny"))
    if kind == "other_attr":
        cls = _other(rng, list(ADJ_CLASSES), _adj_class(p.adj))
        return _attribute(rng, p, _pick(rng, ADJ_CLASSES[cls]), neg=rng.random() < 0.4)
    h = replace(p, near=None)
    if kind == "drop":  # drop the agent adjective and/or modifiers (at least one of them)
        gone = [s for s in mods if rng.random() < 0.5] or ([_pick(rng, mods)] if p.neg or not p.adj else [])
        h = replace(h, adj=None if not p.neg or rng.random() < 0.5 else p.adj, **{s: None for s in gone})
    elif kind in ("add", "hyper_add"):
        slot = _pick(rng, missing)
        h = replace(h, **{slot: _pick(rng, {"colour": COLOURS, "place": d["places"], "time": _times(p.present)}[slot])})
    elif kind == "negate":  # a positive premise is denied in general; a negated one is affirmed exactly
        h = (
            replace(h, neg=not p.neg)
            if p.neg or rng.random() < 0.5
            else replace(h, neg=True, adj=None, colour=None, place=None, time=None)
        )
    elif kind == "place":
        h = replace(h, place=_other(rng, d["places"], p.place), colour=None, time=None)
    elif kind == "other_obj":
        h = replace(h, obj=_other(rng, d["objects"], p.obj), colour=None, neg=rng.random() < 0.4)
    if kind in ("hyper", "hyper_add", "nobody"):
        h = replace(
            h,
            agent=HYPERNYMS[p.agent],
            det="no" if kind == "nobody" else "a",
            adj=None,
            plural=p.plural and kind != "nobody",
        )
    return _sentence(h, rng, vary=0.4, passive=kind != "nobody" and rng.random() < 0.3)


def _nli_premise(rng, dom, mismatched=False):
    p = _prop(rng, dom, adj=0.7, colour=0.4, place=0.6, time=0.5, present=0.2, neg=0.25)
    if mismatched:
        wrapper = _pick(rng, MM_WRAPPERS) if rng.random() < 0.6 else None
        return p, _sentence(p, rng, vary=0.3, front="time", wrapper=wrapper)
    return p, _sentence(p, rng, vary=0.3, front="place" if rng.random() < 0.3 else None)


def _mnli(rng, label, mismatched=False):
    dom = ("public" if rng.random() < 0.7 else "everyday") if mismatched else "everyday"
    p, premise = _nli_premise(rng, dom, mismatched)
    genre = _pick(rng, ("letters", "oup") if mismatched else ("fiction", "travel"))
    return dict(a=premise, b=_hypothesis(rng, p, dom, label), label=label, genre=genre)


def _rte(rng, label):
    dom = _pick(rng, list(DOMAINS))
    p, premise = _nli_premise(rng, dom, mismatched=rng.random() < 0.5)
    parts = [premise]
    for _ in range(1 + int(rng.integers(2))):  # context about other agents, without agent attributes
        extra = replace(
            _prop(rng, _pick(rng, list(DOMAINS)), adj=0.0, time=0.3, neg=0.2),
            agent=_other(rng, DOMAINS["everyday"]["agents"] + DOMAINS["public"]["agents"], p.agent),
        )
        parts.insert(int(rng.integers(len(parts) + 1)), _sentence(extra, rng, vary=0.3))
    nli = _pick(rng, ("neutral", "contradiction")) if label == "not_entailment" else "entailment"
    return dict(a=" ".join(parts), b=_hypothesis(rng, p, dom, nli), label=label)


def _qnli(rng, label):
    """Question about one slot of an event; the context answers it or not (see the module docstring)."""
    dom = _pick(rng, list(DOMAINS))
    p = _prop(rng, dom, adj=0.3, colour=0.2, place=1.0, time=1.0)
    wh = _pick(rng, ("who", "what", "where", "when"))
    said = {s: wh == {"place": "where", "time": "when"}[s] or rng.random() < 0.5 for s in ("place", "time")}
    asked = {s: wh == {"place": "where", "time": "when"}[s] for s in ("place", "time")}
    place = [PREPOSITIONS.get(p.place, "in"), "the", p.place] if said["place"] and not asked["place"] else []
    time = p.time.split() if said["time"] and not asked["time"] else []
    obj = ["the"] + ([p.colour] if p.colour else []) + [p.obj]
    agent = ["the", _plural(p.agent) if p.plural else p.agent]
    question = {
        "who": ["who", VERB_FORMS[p.verb][1]] + obj,
        "what": ["what", "did"] + agent + [p.verb],
        "where": ["where", "did"] + agent + [p.verb] + obj,
        "when": ["when", "did"] + agent + [p.verb] + obj,
    }[wh]
    # the context states what the question says, the asked slot, and maybe more
    k = replace(p, **{s: getattr(p, s) if said[s] or rng.random() < 0.5 else None for s in ("place", "time")})
    passive = rng.random() < 0.3
    if label == "entailment":
        key = _sentence(k, rng, vary=0.4, passive=passive)
    elif rng.random() < 0.6:  # the same event, but the asked slot is missing
        if wh in ("who", "what"):
            key = _sentence(k, rng, vary=0.4, passive=wh == "who", no_agent=wh == "who", no_object=wh == "what")
        else:
            key = _sentence(replace(k, **{"place" if wh == "where" else "time": None}), rng, vary=0.4, passive=passive)
    else:  # another event (a slot the question mentions changed) that fills the asked slot
        slot = _pick(rng, {"who": ("verb", "obj"), "what": ("agent", "verb")}.get(wh, ("agent", "verb", "obj")))
        key = _sentence(_change(rng, k, slot, dom), rng, vary=0.4, passive=passive)
    parts = [_pick(rng, FILLERS) for _ in range(int(rng.integers(3)))]
    parts.insert(int(rng.integers(len(parts) + 1)), key)
    return dict(a=_join(question + place + time, "?"), b=" ".join(parts), label=label)


def _corpus_line(rng) -> str:
    """One line of ``corpus.txt``: statements, short paragraphs, opinions, questions and word facts."""
    dom, r = _pick(rng, list(DOMAINS)), rng.random()

    def statement():
        p = _prop(rng, dom, neg=0.2, present=0.3, near=0.1)
        return _sentence(
            p,
            rng,
            vary=0.4,
            passive=rng.random() < 0.25,
            front=_pick(rng, ("place", "time", None)),
            wrapper=_pick(rng, WRAPPERS + MM_WRAPPERS) if rng.random() < 0.2 else None,
        )

    if r < 0.3:
        return statement()
    if r < 0.45:
        return " ".join(statement() for _ in range(2 + int(rng.integers(2))))
    if r < 0.58:
        return _sst(rng, _pick(rng, ("0", "1")))["a"]
    if r < 0.65:
        return _qqp(rng, "1")["a"]
    if r < 0.77:
        return _qnli(rng, _pick(rng, ("entailment", "not_entailment")))[_pick(rng, ("a", "b"))]
    if r < 0.87:
        return _mnli(rng, _pick(rng, ("entailment", "neutral", "contradiction")), dom == "public")["b"]
    kind = int(rng.integers(3))
    if kind == 0:
        agent = _pick(rng, DOMAINS[dom]["agents"])
        return _join([_art(agent), agent, "is", "a", "kind", "of", HYPERNYMS[agent]])
    if kind == 1:
        w1, w2 = _pick(rng, SYNONYMS)
        if w1 in VERB_FORMS:
            return _join(["to", w1, "something", "is", "to", w2, "it"])
        if _adj_class(w1) or w1 in ("cheap", "used"):
            return _join(["being", w1, "means", "being", w2])
        return _join([_art(w2), w2, "is", _art(w1), w1])
    a, b = _pick(rng, list(ADJ_CLASSES.values()))
    return _join(["something", "that", "is", a, "is", "not", b])


# --------------------------------------------------------------------------------------------- files
_GENERATORS = {  # folder -> (example generator, label proportions; None = regression)
    "CoLA": (_cola, {"1": 0.7, "0": 0.3}),
    "SST-2": (_sst, {"0": 0.5, "1": 0.5}),
    "MRPC": (_mrpc, {"1": 0.68, "0": 0.32}),
    "STS-B": (_stsb, None),
    "QQP": (_qqp, {"1": 0.37, "0": 0.63}),
    "MNLI": (_mnli, {"entailment": 1, "neutral": 1, "contradiction": 1}),
    "QNLI": (_qnli, {"entailment": 1, "not_entailment": 1}),
    "RTE": (_rte, {"entailment": 1, "not_entailment": 1}),
}
_HEADERS = {  # folder -> (train/dev header or None, test header)
    "CoLA": (None, ["index", "sentence"]),
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
}


def _layout():
    """folder -> (Task, {file name: split}) in the order of ``TASKS``."""
    out = {}
    for task in TASKS.values():
        out.setdefault(task.folder, (task, {}))[1].update({f: s for s, f in task.files.items()})
    return out


def _sizes(folder, sizes):
    """Rows per split for ``folder``: defaults, then global split keys, then the folder's own dict."""
    out = dict(DEFAULT_SIZES)
    for key, value in (sizes or {}).items():
        if key in DEFAULT_SIZES:
            out[key] = int(value)
        elif key not in _GENERATORS:
            raise ValueError(f"sizes: unknown key {key!r}; use train/dev/test or a folder name {list(_GENERATORS)}")
    for split, value in (sizes or {}).get(folder, {}).items():
        if split not in DEFAULT_SIZES:
            raise ValueError(f"sizes[{folder!r}]: unknown split {split!r}")
        out[split] = int(value)
    if min(out.values()) < 0:
        raise ValueError("sizes must be non-negative")
    return out


def _row(task, i, ex, test):
    if task.folder == "CoLA" and not test:  # headerless, in COLA_COLUMNS order; "*" marks unacceptable
        values = {
            "source": f"syn{i % 7:02d}",
            "label": ex["label"],
            "original_label": "*" if ex["label"] == "0" else "",
            "sentence": ex["a"],
        }
        return [values[c] for c in COLA_COLUMNS]
    values = {
        "index": str(i),
        "id": str(i),
        "qid1": str(2 * i + 1),
        "qid2": str(2 * i + 2),
        "#1 ID": str(1000000 + 2 * i),
        "#2 ID": str(1000001 + 2 * i),
        "promptID": str(10000 + i),
        "pairID": str(100000 + i),
        "genre": ex.get("genre", ""),
        "filename": "synthetic",
        "year": "2024",
        "old_index": str(i),
        "source1": "none",
        "source2": "none",
        task.text_a: ex["a"],
        task.label_col: ex["label"],
    }
    if task.text_b:
        values[task.text_b] = ex["b"]
    return [values[c] for c in _HEADERS[task.folder][test]]


def _write_atomic(path, text):
    folder = os.path.dirname(path)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".tmp-", suffix=".part")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as f:
            f.write(text)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def _tsv(header, rows):
    for row in rows:
        for field in row:
            if any(c in field for c in '\t\n\r"'):
                raise ValueError(f"field would break the TSV layout: {field!r}")
    return "".join("\t".join(r) + "\n" for r in ([header] if header else []) + rows)


# The file that marks a folder as made by make_synthetic (written last, so its presence also says the folder is
# complete). Generation writes only into a folder that does not exist, holds no files, or holds it; readers
# (lrcbert.data) and the workflow refuse any other data.path for generated data, and run records and tables say
# when data were generated.
MARKER = "README.txt"
MARKER_FIRST_LINE = "GENERATED DATA, NOT GLUE."


def is_generated(folder) -> bool:
    """Whether ``folder`` was made by ``make_synthetic`` (its marker is there and says so)."""
    path = os.path.join(folder, MARKER)
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return f.readline().startswith(MARKER_FIRST_LINE)
    except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
        return False


def check_target(out_dir) -> None:
    """Refuse (DataError, one line) to generate into a folder that holds files ``make_synthetic`` did not make."""
    out = Path(out_dir)
    if not out.exists() or is_generated(out):
        return
    if not out.is_dir():
        raise DataError(f"{out} (data.path) is a file, not a folder; generated data needs a new folder")
    found = next((p for p in sorted(out.rglob("*")) if not p.is_dir()), None)
    if found is not None:
        raise DataError(
            f"{out} (data.path) holds files that lrcbert make-synthetic did not write (e.g. "
            f"{found.relative_to(out)}; no {MARKER} marker): refusing to write generated data "
            "there; give a new folder (for a GLUE folder use data.source=tsv)"
        )


def make_synthetic(out_dir, seed=0, sizes=None, corpus_lines=2000) -> dict:
    """Write synthetic GLUE folders, ``corpus.txt`` and ``README.txt`` under ``out_dir``.

    ``sizes`` (optional) sets rows per split. Keys ``"train"``, ``"dev"``, ``"test"`` apply to every task;
    a folder key maps to its own split dict and wins, e.g. ``{"train": 256, "MNLI": {"train": 1024}}``.
    Defaults: train 512, dev 128, test 64; MNLI's dev and test counts apply to each of matched and
    mismatched. ``corpus_lines`` is the number of lines of ``corpus.txt``. The same ``seed`` gives
    byte-identical files. Returns ``{path: rows}`` for every data file (rows exclude the header) and for
    ``corpus.txt`` (lines); ``README.txt`` is written next to them.
    """
    if int(seed) != seed or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    check_target(out_dir)
    written, lines = {}, []
    for folder, (task, files) in _layout().items():
        counts = _sizes(folder, sizes)
        os.makedirs(os.path.join(out_dir, folder), exist_ok=True)
        generate, weights = _GENERATORS[folder]
        for fname, split in files.items():
            rng = np.random.default_rng([int(seed), zlib.crc32(f"{folder}/{fname}".encode())])
            n = counts[split]
            kw = {"mismatched": True} if "mismatched" in fname else {}
            examples = [generate(rng, label, **kw) for label in (_plan(rng, n, weights) if weights else [None] * n)]
            test = split == "test"
            header = _HEADERS[folder][test] if (test or task.header) else None
            path = os.path.join(out_dir, folder, fname)
            _write_atomic(path, _tsv(header, [_row(task, i, ex, test) for i, ex in enumerate(examples)]))
            written[path] = n
            lines.append(f"  {folder}/{fname}: {n}")
    rng = np.random.default_rng([int(seed), zlib.crc32(b"corpus.txt")])
    path = os.path.join(out_dir, "corpus.txt")
    _write_atomic(path, "".join(_corpus_line(rng) + "\n" for _ in range(int(corpus_lines))))
    written[path] = int(corpus_lines)
    _write_atomic(
        os.path.join(out_dir, MARKER),
        f"{MARKER_FIRST_LINE} Synthetic stand-ins in the GLUE TSV layout, written by\n"
        f"lrcbert.synthetic.make_synthetic(seed={int(seed)}). Rows per file:\n"
        + "\n".join(lines)
        + f"\n  corpus.txt: {int(corpus_lines)} lines\n\nRules:\n"
        + __doc__,
    )
    return written
