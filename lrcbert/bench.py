"""``lrcbert bench``: how close distillation runs to its compute floor, and what the speed features buy.

Every figure is a ratio of two timings taken in the same process, interleaved (A B A B ...), medians over
repeats: on a shared or noisy machine only such ratios mean something. Sections:

  1 step     one distillation step (``Trainer.train_step``: teacher forward, two student passes with gradient
             perturbation, losses, optimizer) over its floor, measured separately on the same batch: teacher
             forward without gradients + 2 x (student forward + backward);
  2 padding  tokens per second (real tokens) of fine-tuning, distillation and inference, fixed padding to 128
             vs dynamic padding with length-grouped batches, on generated lengths like SST-2's;
  3 infer    teacher vs student forward at batch 1 and 32, length 128, next to the paper's 9.6x and the FLOP
             ratio; the student exported to ONNX, onnxruntime fp32 and dynamic int8 at batch 1, with the dev
             metric of each;
  4 cache    distillation epoch time with and without the teacher-output cache;
  options    bf16 autocast and torch.compile of the distillation step, against fp32 eager.

Models are random-weight BERTs of the named shapes (time does not depend on the weights), except the ONNX
section's student, which is trained on the configured task (or given with ``--student``) so that its dev
metric means something. ``--quick`` shrinks every model and workload (the smoke workflow's bench job).
"""
from __future__ import annotations

import json
import math
import statistics
import time
from pathlib import Path

import datasets
import numpy as np
import torch
from tabulate import tabulate
from transformers import (AutoConfig, AutoModelForSequenceClassification, AutoTokenizer, BertConfig,
                          BertForSequenceClassification)

from . import data as D
from .config import load_config
from .engine import Trainer
from .models import OFFLINE_MINILM, resolve
from .objective import METHODS, Objective
from .runinfo import atomic_write_json, atomic_write_text, device_name
from .tasks import get_task

BERT_BASE = dict(num_hidden_layers=12, hidden_size=768, intermediate_size=3072, num_attention_heads=12)
PAPER_STUDENT = dict(num_hidden_layers=4, hidden_size=312, intermediate_size=1200, num_attention_heads=12)
SMOKE_TEACHER = dict(num_hidden_layers=4, hidden_size=64, intermediate_size=128, num_attention_heads=4)
SMOKE_STUDENT = dict(num_hidden_layers=2, hidden_size=32, intermediate_size=64, num_attention_heads=4)
PAPER_SPEEDUP = 9.6        # Table 2: BERT-base vs LRC-BERT inference time on a V100
# Token lengths (with [CLS] and [SEP], BERT uncased) of short-sentence tasks like SST-2's and CoLA's training
# sets: a log-normal with median 11 and geometric sd 1.75 tokens, clipped to [4, 66]. This is our own
# approximation of those tasks' published length statistics (mean ~13, 90th percentile ~25), not a
# measurement of GLUE itself, which this machine cannot download.
LENGTHS = {"name": "sst2_like", "dist": "lognormal", "median": 11.0, "gsd": 1.75, "min": 4, "max": 66}


def sample_lengths(n: int, seed: int = 0, spec=LENGTHS) -> list[int]:
    rng = np.random.default_rng(seed)
    x = np.exp(rng.normal(math.log(spec["median"]), math.log(spec["gsd"]), size=n))
    return np.clip(np.rint(x), spec["min"], spec["max"]).astype(int).tolist()


def encoder_flops(arch: dict, length: int) -> float:
    """Forward FLOPs per sequence of a BERT encoder (matrix products: 2 per multiply-add; embeddings, norms
    and softmax left out): per layer and token 4 d^2 (Q, K, V, output) + 2 d f (feed-forward) + 2 l d
    (scores and weighted sum) multiply-adds."""
    d, f, layers = arch["hidden_size"], arch["intermediate_size"], arch["num_hidden_layers"]
    return 2.0 * layers * length * (4 * d * d + 2 * d * f + 2 * length * d)


def synthetic_set(lengths: list[int], vocab: int = 30522, seed: int = 0, labels: int = 2) -> datasets.Dataset:
    """Tokenised examples of the given lengths: [CLS] random ids [SEP], random labels."""
    rng = np.random.default_rng(seed)
    ids = [[101, *rng.integers(1000, vocab - 1, size=n - 2).tolist(), 102] for n in lengths]
    return datasets.Dataset.from_dict({"input_ids": ids, "token_type_ids": [[0] * n for n in lengths],
                                       "attention_mask": [[1] * n for n in lengths],
                                       "label": rng.integers(0, labels, size=len(lengths)).tolist(),
                                       "idx": list(range(len(lengths)))})


def classifier(arch: dict, vocab_size: int, seed: int = 0):
    torch.manual_seed(seed)
    conf = BertConfig(vocab_size=vocab_size, num_labels=2, **arch)
    conf._attn_implementation = "sdpa"
    return BertForSequenceClassification(conf)


def paired(fns: dict, repeats: int, warmup: int = 1) -> dict:
    """Median seconds of each callable, run interleaved ``repeats`` times after ``warmup`` untimed rounds."""
    times = {k: [] for k in fns}
    for r in range(warmup + repeats):
        for k, fn in fns.items():
            start = time.perf_counter()
            fn()
            if torch.cuda.is_available():
                torch.cuda.synchronize()
            if r >= warmup:
                times[k].append(time.perf_counter() - start)
    return {k: statistics.median(v) for k, v in times.items()}


class Bench:
    def __init__(self, cfg_files=(), overrides=(), quick: bool = False, student: str | None = None,
                 repeats: int | None = None, work: str | Path = "runs/bench", bf16: bool = True,
                 compile: bool = False, log=print):
        self.quick, self.student_path, self.log = quick, student, log
        self.teacher_arch = SMOKE_TEACHER if quick else BERT_BASE
        self.student_arch = SMOKE_STUDENT if quick else PAPER_STUDENT
        self.repeats = repeats or (2 if quick else 3)
        self.work = Path(work)
        self.bf16, self.compile = bf16, compile
        self.cfg_files, self.overrides = list(cfg_files), list(overrides)
        base = {"model": {"teacher": OFFLINE_MINILM}}
        self.base_cfg = load_config(self.cfg_files, self.overrides, base=base)
        self.tokenizer = None
        from .models import load_tokenizer
        self.tokenizer = load_tokenizer(self.base_cfg)
        self.vocab = AutoConfig.from_pretrained(resolve(self.base_cfg.model.teacher)).vocab_size
        self.device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
        self.results: dict = {"device": device_name(self.device), "threads": torch.get_num_threads(),
                              "quick": quick, "teacher_arch": self.teacher_arch, "student_arch": self.student_arch,
                              "length_distribution": {**LENGTHS}}

    # -- helpers -------------------------------------------------------------------------------------------
    def cfg(self, method: str = "lrcbert", **train):
        sets = {"method": {"name": method, **METHODS[method]},
                "train": {"teacher_cache": "off", "checkpoint_every": 0, "batch_size": 16, "epochs": 1,
                          "warmup": 0.0, **train},
                "model": {"teacher": self.base_cfg.model.teacher}}
        if method == "lrcbert":      # stage 2: every term weighted, the most expensive stage
            sets["method"]["stage_split"] = 0.0
        return load_config([], [], base=sets)

    def trainer(self, cfg, train_set, teacher_arch=None, student_arch=None, pad=False, run_dir=None):
        task = get_task("sst2")
        teacher = classifier(teacher_arch or self.teacher_arch, self.vocab, 1) if cfg.method.name != "finetune" else None
        student = classifier(student_arch or self.student_arch, self.vocab, 2)
        objective = Objective(cfg.method, task, student.config, teacher.config if teacher is not None else None)
        collate = D.Collator(self.tokenizer, 128, pad)
        from accelerate.state import AcceleratorState
        AcceleratorState._reset_state()       # each trainer may ask for another mixed precision
        run_dir = Path(run_dir or self.work / "trainer")
        run_dir.mkdir(parents=True, exist_ok=True)
        return Trainer(cfg, run_dir, student, objective, train_set, collate, teacher)

    # -- 1: distillation step vs. its floor ------------------------------------------------------------------
    def step_vs_floor(self, batch_size: int = 16, length: int = 128):
        self.log("bench: distillation step vs floor")
        ds = synthetic_set([length] * batch_size * 2, self.vocab)
        out = {}
        variants = [("fp32", {})]
        if self.bf16:
            variants.append(("bf16", {"mixed_precision": "bf16"}))
        if self.compile:
            variants.append(("compile", {"compile": True}))
        for name, train in variants:
            tr = self.trainer(self.cfg(batch_size=batch_size, **train), ds)
            batch = next(iter(tr.loader))
            inputs = {k: batch[k] for k in ("input_ids", "attention_mask", "token_type_ids")}
            student = tr.accelerator.unwrap_model(tr.student)

            def teacher_fwd():
                with torch.no_grad(), tr.accelerator.autocast():
                    tr.teacher(**inputs, output_hidden_states=True)

            def student_fwd_bwd():
                with tr.accelerator.autocast():
                    o = student(**inputs, output_hidden_states=True)
                    loss = o.logits.float().sum() + sum(h.float().mean() for h in o.hidden_states[1:])
                loss.backward()
                student.zero_grad(set_to_none=True)

            def student_input_grad():      # pass 1 of the perturbation needs dL/de only, no parameter gradients
                tr.tap.leaf = True
                try:
                    with tr.accelerator.autocast():
                        o = student(**inputs, output_hidden_states=True)
                        loss = o.logits.float().sum() + sum(h.float().mean() for h in o.hidden_states[1:])
                    torch.autograd.grad(loss, tr.tap.input)
                finally:
                    tr.tap.leaf = False

            t = paired({"step": lambda: tr.train_step(batch), "teacher": teacher_fwd,
                        "student": student_fwd_bwd, "student_input_grad": student_input_grad}, self.repeats)
            floor = t["teacher"] + 2 * t["student"]
            tight = t["teacher"] + t["student"] + t["student_input_grad"]
            out[name] = {"step_s": t["step"], "teacher_fwd_s": t["teacher"], "student_fwd_bwd_s": t["student"],
                         "student_fwd_input_grad_s": t["student_input_grad"], "floor_s": floor,
                         "ratio": t["step"] / floor, "tight_floor_s": tight, "tight_ratio": t["step"] / tight}
            self.log(f"  {name}: step {t['step']:.3f}s floor {floor:.3f}s ratio {t['step'] / floor:.3f} "
                     f"(tight floor {tight:.3f}s, ratio {t['step'] / tight:.3f})")
        self.results["step"] = {"batch_size": batch_size, "length": length, **out}
        self.results["distill_step_over_floor"] = out["fp32"]["ratio"]
        self.results["distill_step_over_tight_floor"] = out["fp32"]["tight_ratio"]
        if "bf16" in out:
            self.results["bf16_step_speedup"] = out["fp32"]["step_s"] / out["bf16"]["step_s"]
        if "compile" in out:
            self.results["compile_step_speedup"] = out["fp32"]["step_s"] / out["compile"]["step_s"]

    # -- 2: fixed vs dynamic padding -------------------------------------------------------------------------
    def padding(self, batches: int | None = None, batch_size: int = 16):
        self.log("bench: fixed-128 vs dynamic padding with length-grouped batches")
        batches = batches or (3 if self.quick else 4)
        pool = sample_lengths(batch_size * 50, seed=1)
        ds = synthetic_set(pool, self.vocab)
        spec = self.results["length_distribution"]
        spec.update(mean=float(np.mean(pool)), p50=float(np.median(pool)), p90=float(np.percentile(pool, 90)),
                    observed_max=int(max(pool)), examples=len(pool))
        out = {}
        for kind, method, arch in (("finetune", "finetune", self.teacher_arch), ("distill", "lrcbert", None),
                                   ("inference", None, None)):
            rates = {}
            for pad in (True, False):
                tr = self.trainer(self.cfg(method or "lrcbert", length_grouped=True, batch_size=batch_size), ds,
                                  student_arch=arch, pad=pad)
                it = iter(tr.loader)
                chosen = [next(it) for _ in range(batches)]
                tokens = sum(int(b["attention_mask"].sum()) for b in chosen)
                if kind == "inference":
                    model = tr.accelerator.unwrap_model(tr.student).eval()

                    def work():
                        with torch.no_grad():
                            for b in chosen:
                                model(**{k: b[k] for k in ("input_ids", "attention_mask", "token_type_ids")})
                else:
                    def work():
                        for b in chosen:
                            tr.train_step(b)
                if kind == "inference":
                    secs = paired({"w": work}, self.repeats, warmup=1)["w"]
                else:       # one untimed step (lazy initialisation), then every batch once
                    tr.train_step(chosen[0])
                    secs = paired({"w": work}, 1, warmup=0)["w"]
                rates["fixed" if pad else "dynamic"] = tokens / secs
            out[kind] = {"fixed_tokens_per_s": rates["fixed"], "dynamic_tokens_per_s": rates["dynamic"],
                         "speedup": rates["dynamic"] / rates["fixed"],
                         "model": "teacher shape" if kind == "finetune" else "student shape"}
            self.log(f"  {kind}: {out[kind]['speedup']:.2f}x")
        self.results["padding"] = {"batches": batches, "batch_size": batch_size, **out}
        self.results["dynamic_padding_speedup"] = out["distill"]["speedup"]

    # -- 3: inference teacher vs student, ONNX ---------------------------------------------------------------
    def inference(self, length: int = 128):
        self.log("bench: inference teacher vs student")
        teacher = classifier(self.teacher_arch, self.vocab).eval()
        student = classifier(self.student_arch, self.vocab).eval()
        out = {}
        for bs in (1, 32):
            ids = torch.randint(1000, self.vocab - 1, (bs, length), generator=torch.Generator().manual_seed(bs))
            kw = {"input_ids": ids, "attention_mask": torch.ones_like(ids), "token_type_ids": torch.zeros_like(ids)}

            def run(model):
                with torch.inference_mode():
                    model(**kw)
            t = paired({"teacher": lambda: run(teacher), "student": lambda: run(student)},
                       self.repeats if bs == 32 else 5 * self.repeats)
            out[f"batch{bs}"] = {"teacher_s": t["teacher"], "student_s": t["student"],
                                 "speedup": t["teacher"] / t["student"],
                                 "student_sequences_per_s": bs / t["student"]}
            self.log(f"  batch {bs}: {t['teacher'] / t['student']:.2f}x")
        flops = encoder_flops(BERT_BASE, length) / encoder_flops(PAPER_STUDENT, length)
        self.results["inference"] = {"length": length, **out, "paper_speedup": PAPER_SPEEDUP,
                                     "flop_ratio_bert_base_vs_4L312": flops}
        self.results["student_inference_speedup"] = out["batch32"]["speedup"]

    def onnx(self, length: int = 128):
        from .evaluation import compute_metrics, predict, to_predictions
        from .export import OnnxClassifier, export_onnx, quantize_int8
        self.log("bench: ONNX export, onnxruntime fp32 and int8")
        model_dir, task = self._student_for_onnx()
        model = AutoModelForSequenceClassification.from_pretrained(model_dir).eval()
        tokenizer = AutoTokenizer.from_pretrained(model_dir)
        onnx_dir = self.work / "onnx"
        fp32 = export_onnx(model, onnx_dir / "student.onnx")
        int8 = quantize_int8(fp32, onnx_dir / "student.int8.onnx")
        sessions = {"onnx_fp32": OnnxClassifier(fp32), "onnx_int8": OnnxClassifier(int8)}
        ids = torch.randint(1000, self.vocab - 1, (1, length), generator=torch.Generator().manual_seed(3))
        kw = (ids, torch.ones_like(ids), torch.zeros_like(ids))

        def torch_fwd():
            with torch.inference_mode():
                model(input_ids=kw[0], attention_mask=kw[1], token_type_ids=kw[2])
        fns = {"torch_fp32": torch_fwd, **{k: (lambda s=s: s(*kw)) for k, s in sessions.items()}}
        t = paired(fns, 10 * self.repeats, warmup=3)
        # dev metric of each: the task's dev split, dynamic padding
        cfg = self.base_cfg
        dev = D.tokenize(D.load_split(cfg, task, "dev"), tokenizer, cfg.data.max_length)
        collate = D.Collator(tokenizer, cfg.data.max_length, False)
        logits, labels, _ = predict(model, dev, collate, 32)
        scores = {"torch_fp32": compute_metrics(task, to_predictions(task, logits), labels)["score"]}
        loader = torch.utils.data.DataLoader(dev, batch_size=32, collate_fn=collate)
        for name, sess in sessions.items():
            lg = torch.cat([sess(b["input_ids"], b["attention_mask"], b["token_type_ids"]) for b in loader]).numpy()
            scores[name] = compute_metrics(task, to_predictions(task, lg), labels)["score"]
        self.results["onnx"] = {"student": str(model_dir), "task": task.name, "dev_examples": len(dev),
                                "metric": task.metric, "batch1_length": length,
                                **{f"{k}_batch1_s": v for k, v in t.items()},
                                **{f"{k}_dev_score": v for k, v in scores.items()},
                                "onnx_fp32_speedup_batch1": t["torch_fp32"] / t["onnx_fp32"]}
        self.results["onnx_int8_speedup_batch1"] = t["torch_fp32"] / t["onnx_int8"]
        self.results["onnx_int8_metric_change"] = scores["onnx_int8"] - scores["torch_fp32"]
        self.log(f"  int8 batch-1 speed-up {self.results['onnx_int8_speedup_batch1']:.2f}x, "
                 f"dev {scores['torch_fp32']:.2f} -> {scores['onnx_int8']:.2f}")

    def _student_for_onnx(self):
        from .run import run
        task = get_task(self.base_cfg.task)
        if self.student_path:
            return resolve(self.student_path), task
        out = self.work / "student"
        self.log(f"  training a student of shape {self.student_arch} on {task.name} ({out})")
        sets = [f"model.teacher={self.base_cfg.model.teacher}", "model.teacher_random_init=true",
                f"model.teacher_overrides={json.dumps(self.student_arch)}", "train.checkpoint_every=0",
                f"train.epochs={2 if self.quick else 10}", "train.lr=3e-4", "train.batch_size=32",
                f"task={task.name}"]
        cfg = load_config(self.cfg_files, self.overrides + sets,
                          base={"method": {"name": "finetune", **METHODS["finetune"]}})
        run(cfg, out, "finetune")
        return out / "model", task

    # -- 4: cached vs uncached teacher -----------------------------------------------------------------------
    def cache(self, batches: int | None = None, batch_size: int = 16):
        self.log("bench: cached vs uncached teacher epochs (smoke student)")
        n = batch_size * (batches or (8 if self.quick else 24))
        ds = synthetic_set(sample_lengths(n, seed=2), self.vocab)
        out = {}
        for mode in ("off", "on"):
            tr = self.trainer(self.cfg(teacher_cache=mode, batch_size=batch_size), ds, student_arch=SMOKE_STUDENT,
                              run_dir=self.work / f"cache_{mode}")
            start = time.perf_counter()
            tr.prepare_teacher_cache()
            build = time.perf_counter() - start
            epochs = []
            for epoch in range(2):
                tr.sampler.position(epoch)
                start = time.perf_counter()
                for batch in tr.loader:
                    tr.train_step(batch)
                epochs.append(time.perf_counter() - start)
            out[mode] = {"epoch_s": min(epochs), "build_s": build}
        self.results["cache"] = {"examples": n, "teacher_arch": self.teacher_arch, "student_arch": SMOKE_STUDENT,
                                 "uncached_epoch_s": out["off"]["epoch_s"], "cached_epoch_s": out["on"]["epoch_s"],
                                 "cache_build_s": out["on"]["build_s"]}
        self.results["cached_teacher_speedup"] = out["off"]["epoch_s"] / out["on"]["epoch_s"]
        self.log(f"  {self.results['cached_teacher_speedup']:.2f}x")

    def run(self, sections) -> dict:
        for s in sections:
            getattr(self, {"step": "step_vs_floor"}.get(s, s))()
        return self.results


THRESHOLDS = {"distill_step_over_floor": ("<=", 1.10), "dynamic_padding_speedup": (">=", 2.0),
              "student_inference_speedup": (">=", 12.0), "cached_teacher_speedup": (">=", 3.0)}


def markdown(r: dict) -> str:
    def f(x, nd=2):
        return "-" if x is None else (f"{x:.{nd}f}" if isinstance(x, float) else str(x))

    def verdict(key):
        op, v = THRESHOLDS[key]
        x = r.get(key)
        return "-" if x is None else ("met" if (x <= v if op == "<=" else x >= v) else "NOT met")
    lines = [f"# Speed benchmark ({'quick, ' if r.get('quick') else ''}{r['device']}, {r['threads']} threads)", "",
             "Each figure is a ratio of timings taken in one process, interleaved, medians over repeats. "
             f"Teacher shape {r['teacher_arch']}, student shape {r['student_arch']}, random weights "
             "(except the ONNX student).", ""]
    rows = []
    for key, what in (("distill_step_over_floor", "distillation step / floor (teacher fwd + 2 x student fwd/bwd)"),
                      ("dynamic_padding_speedup", "distillation tokens/s, dynamic + length-grouped vs fixed 128"),
                      ("student_inference_speedup", "teacher / student inference time, batch 32, length 128"),
                      ("cached_teacher_speedup", "uncached / cached epoch time, smoke student")):
        op, v = THRESHOLDS[key]
        rows.append([what, f(r.get(key)), f"{op} {v}", verdict(key)])
    for key, what in (("onnx_int8_speedup_batch1", "ONNX int8 vs PyTorch fp32, batch 1 (speed-up)"),
                      ("onnx_int8_metric_change", "ONNX int8 dev-metric change (points)"),
                      ("bf16_step_speedup", "distillation step, fp32 / bf16 autocast"),
                      ("compile_step_speedup", "distillation step, eager / torch.compile")):
        if key in r:
            rows.append([what, f(r[key], 3 if "change" in key else 2), "reported", ""])
    lines += [tabulate(rows, ["figure", "measured", "target", ""], tablefmt="github"), ""]
    if "step" in r:
        s = r["step"]
        lines += [f"## 1. Step vs floor (batch {s['batch_size']}, length {s['length']})", "",
                  tabulate([[k, f(v["step_s"], 3), f(v["teacher_fwd_s"], 3), f(v["student_fwd_bwd_s"], 3),
                             f(v["student_fwd_input_grad_s"], 3), f(v["floor_s"], 3), f(v["ratio"], 3),
                             f(v["tight_ratio"], 3)] for k, v in s.items() if isinstance(v, dict)],
                           ["precision", "step s", "teacher fwd s", "student fwd+bwd s", "student fwd + dL/de s",
                            "floor s", "step / floor", "step / tight floor"], tablefmt="github"), "",
                  "floor = teacher fwd + 2 x student fwd+bwd (the issue's definition); tight floor = teacher fwd + "
                  "student fwd + dL/de only (pass 1 of the perturbation needs no parameter gradients) + student "
                  "fwd+bwd.", ""]
    if "padding" in r:
        p, d = r["padding"], r["length_distribution"]
        lines += [f"## 2. Padding ({p['batches']} batches of {p['batch_size']})", "",
                  f"Lengths: {d['name']} ({d['dist']}, median {d['median']}, geometric sd {d['gsd']}, clipped to "
                  f"[{d['min']}, {d['max']}]); sample mean {f(d.get('mean'), 1)}, 90th percentile "
                  f"{f(d.get('p90'), 1)}.", "",
                  tabulate([[k, v["model"], f(v["fixed_tokens_per_s"], 0), f(v["dynamic_tokens_per_s"], 0),
                             f(v["speedup"])] for k, v in p.items() if isinstance(v, dict)],
                           ["work", "model", "fixed-128 tokens/s", "dynamic tokens/s", "speed-up"],
                           tablefmt="github"), ""]
    if "inference" in r:
        i = r["inference"]
        lines += [f"## 3. Inference, length {i['length']}", "",
                  tabulate([[k, f(v["teacher_s"], 4), f(v["student_s"], 4), f(v["speedup"])]
                            for k, v in i.items() if isinstance(v, dict)],
                           ["batch", "teacher s", "student s", "speed-up"], tablefmt="github"), "",
                  f"Paper (Table 2, V100): {i['paper_speedup']}x. FLOP ratio BERT-base / 4L-312 at length "
                  f"{i['length']}: {i['flop_ratio_bert_base_vs_4L312']:.1f}x.", ""]
    if "onnx" in r:
        o = r["onnx"]
        lines += [f"ONNX (student {o['student']}, {o['task']} dev, {o['dev_examples']} examples, "
                  f"metric {o['metric']} x100; batch 1, length {o['batch1_length']}):", "",
                  tabulate([[k, f(o[f"{k}_batch1_s"] * 1000, 2), f(o[f"{k}_dev_score"])]
                            for k in ("torch_fp32", "onnx_fp32", "onnx_int8")],
                           ["runtime", "batch-1 ms", "dev score"], tablefmt="github"), ""]
    if "cache" in r:
        c = r["cache"]
        lines += [f"## 4. Teacher cache ({c['examples']} examples, teacher {c['teacher_arch']})", "",
                  f"uncached epoch {c['uncached_epoch_s']:.2f}s, cached epoch {c['cached_epoch_s']:.2f}s, "
                  f"building the cache (one teacher pass) {c['cache_build_s']:.2f}s.", ""]
    return "\n".join(lines)


SECTIONS = ("step", "padding", "inference", "onnx", "cache")


def bench(out_json: str | Path, out_md: str | Path | None = None, sections=SECTIONS, **kw) -> dict:
    b = Bench(**kw)
    results = b.run(sections)
    atomic_write_json(out_json, results)
    if out_md:
        atomic_write_text(out_md, markdown(results) + "\n")
    return results
