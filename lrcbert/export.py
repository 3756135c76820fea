"""A BERT classifier for edge deployment: exported to ONNX, fused, quantised, run with onnxruntime.

    paths = export_all(model, "onnx/student")         # .onnx (plain), .fused.onnx, .int8.onnx
    logits = OnnxClassifier(paths["int8"], threads=1)(input_ids, attention_mask, token_type_ids)

Steps:
  1. ``export_onnx``: torch.onnx.export with dynamic batch and length. The model is traced with transformers'
     ``eager`` attention (the graph of matrix products and softmax that onnxruntime's fusion recognises;
     the ``sdpa`` path exports as masks with Where/IsNaN that it does not).
  2. ``fuse``: onnxruntime's own BERT optimizer (``onnxruntime.transformers.optimizer.optimize_model`` with
     ``model_type="bert"``): one Attention node per layer, EmbedLayerNormalization, SkipLayerNormalization,
     BiasGelu. We use it rather than Hugging Face Optimum: Optimum's ONNX part (optimum-onnx) pins
     transformers < 4.58 and this suite runs transformers 5, while the optimizer ships inside the onnxruntime
     wheel the suite already depends on (Optimum calls the same optimizer underneath).
  3. ``quantize_int8``: ``onnxruntime.quantization.quantize_dynamic`` of the fused graph: weights int8
     (signed, per tensor), activations quantised at run time (Attention becomes QAttention, MatMul
     MatMulInteger / DynamicQuantizeMatMul).
Sessions (``session_options``): every onnxruntime graph optimisation on (ORT_ENABLE_ALL), sequential
execution, ``threads`` intra-op threads (pinned, stated by whoever times them), one inter-op thread.
"""

from __future__ import annotations

import collections
from pathlib import Path

import numpy as np
import torch

INPUTS = ("input_ids", "attention_mask", "token_type_ids")
# ops of an unfused attention / GELU (what fusion removes) and of a fused BERT layer (what it adds)
UNFUSED_OPS = ("MatMul", "Softmax", "Erf", "Where", "IsNaN")
FUSED_OPS = (
    "Attention",
    "QAttention",
    "EmbedLayerNormalization",
    "QEmbedLayerNormalization",
    "SkipLayerNormalization",
    "BiasGelu",
    "FastGelu",
    "Gelu",
)


class _Logits(torch.nn.Module):
    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, input_ids, attention_mask, token_type_ids):
        return self.model(input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids).logits


def _set_attention(model, impl: str) -> str:
    before = model.config._attn_implementation
    if hasattr(model, "set_attn_implementation"):
        model.set_attn_implementation(impl)
    else:
        model.config._attn_implementation = impl
    return before


def export_onnx(model, path: str | Path, length: int = 16) -> Path:
    """Write ``model`` (a sequence classifier) to ``path`` with dynamic batch and sequence axes, traced with
    eager attention (the model's own attention implementation is put back afterwards)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    before = _set_attention(model, "eager")
    try:
        wrapped = _Logits(model).eval()
        example = (torch.ones(2, length, dtype=torch.long),) * 2 + (torch.zeros(2, length, dtype=torch.long),)
        axes = {name: {0: "batch", 1: "length"} for name in INPUTS}
        with torch.no_grad():
            torch.onnx.export(
                wrapped,
                example,
                str(path),
                input_names=list(INPUTS),
                output_names=["logits"],
                dynamic_axes={**axes, "logits": {0: "batch"}},
                dynamo=False,
                opset_version=17,
            )
    finally:
        _set_attention(model, before)
    return path


def fuse(src: str | Path, dst: str | Path, num_heads: int, hidden_size: int) -> Path:
    """onnxruntime's BERT fusion of ``src`` (attention, layer norms, GELU) written to ``dst``."""
    from onnxruntime.transformers.optimizer import optimize_model

    # opt_level 0: only the Python fusions here; the session applies onnxruntime's own graph optimisations
    opt = optimize_model(
        str(src), model_type="bert", num_heads=num_heads, hidden_size=hidden_size, opt_level=0, use_gpu=False
    )
    opt.save_model_to_file(str(dst))
    return Path(dst)


def quantize_int8(src: str | Path, dst: str | Path) -> Path:
    """Dynamic int8 quantisation of the weights of ``src`` (activations quantised at run time)."""
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    # ONNX shape inference cannot type the outputs of onnxruntime's fused (com.microsoft) nodes: they are float
    quantize_dynamic(
        str(src), str(dst), weight_type=QuantType.QInt8, extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT}
    )
    return Path(dst)


def export_all(model, stem: str | Path) -> dict[str, Path]:
    """Plain ONNX, fused fp32 and fused int8 files of ``model`` next to ``stem`` (a path without suffix)."""
    stem = Path(stem)
    conf = model.config
    plain = export_onnx(model, stem.with_suffix(".onnx"))
    fused = fuse(plain, stem.with_suffix(".fused.onnx"), conf.num_attention_heads, conf.hidden_size)
    return {"plain": plain, "fp32": fused, "int8": quantize_int8(fused, stem.with_suffix(".int8.onnx"))}


def op_counts(path: str | Path) -> dict[str, int]:
    """How many nodes of each operator type the graph in ``path`` has."""
    import onnx

    return dict(collections.Counter(n.op_type for n in onnx.load(str(path), load_external_data=False).graph.node))


def fusion_report(path: str | Path, layers: int) -> dict:
    """The fused and unfused operator counts of ``path`` and whether it is fused: one attention node per
    layer, no Softmax, Erf, Where or IsNaN left, and at most 3 matrix products per layer (attention output and
    the two feed-forward products) plus the pooler's and the classifier's. An unfused layer has 8: Q, K, V,
    Q K^T, P V, output, two feed-forward."""
    counts = op_counts(path)
    attention = counts.get("Attention", 0) + counts.get("QAttention", 0)
    matmul = sum(v for k, v in counts.items() if "MatMul" in k or k == "Gemm")
    fused = (
        attention == layers
        and not any(counts.get(k) for k in ("Softmax", "Erf", "Where", "IsNaN"))
        and matmul <= 3 * layers + 2
    )
    return {
        "fused": fused,
        "attention_nodes": attention,
        "matmul_nodes": matmul,
        **{k: counts.get(k, 0) for k in (*FUSED_OPS, *UNFUSED_OPS)},
    }


def session_options(threads: int):
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    return opts


SESSION_SETTINGS = "graph_optimization_level=ORT_ENABLE_ALL, execution_mode=ORT_SEQUENTIAL, inter_op_num_threads=1"


class OnnxClassifier:
    """An onnxruntime session on the CPU returning logits as a torch tensor; ``threads`` intra-op threads
    (default: torch's current thread count)."""

    def __init__(self, path: str | Path, threads: int | None = None):
        import onnxruntime as ort

        self.threads = threads or torch.get_num_threads()
        self.session = ort.InferenceSession(
            str(path), session_options(self.threads), providers=["CPUExecutionProvider"]
        )

    def __call__(self, input_ids, attention_mask, token_type_ids) -> torch.Tensor:
        feed = {"input_ids": input_ids, "attention_mask": attention_mask, "token_type_ids": token_type_ids}
        feed = {
            k: np.ascontiguousarray(v.numpy() if torch.is_tensor(v) else v, dtype=np.int64) for k, v in feed.items()
        }
        return torch.from_numpy(self.session.run(["logits"], feed)[0])
