"""The student for edge deployment: exported to ONNX, run with onnxruntime in fp32 or dynamic int8.

    path = export_onnx(model, "student.onnx")           # torch.onnx.export, dynamic batch and length
    int8 = quantize_int8(path, "student.int8.onnx")     # onnxruntime.quantization.quantize_dynamic (weights int8)
    logits = OnnxClassifier(int8)(input_ids, attention_mask, token_type_ids)
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

INPUTS = ("input_ids", "attention_mask", "token_type_ids")


class _Logits(torch.nn.Module):
    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, input_ids, attention_mask, token_type_ids):
        return self.model(input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids).logits


def export_onnx(model, path: str | Path, length: int = 16) -> Path:
    """Write ``model`` (a sequence classifier) to ``path`` with dynamic batch and sequence axes."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    model = _Logits(model).eval()
    example = (torch.ones(2, length, dtype=torch.long),) * 2 + (torch.zeros(2, length, dtype=torch.long),)
    axes = {name: {0: "batch", 1: "length"} for name in INPUTS}
    with torch.no_grad():
        torch.onnx.export(model, example, str(path), input_names=list(INPUTS), output_names=["logits"],
                          dynamic_axes={**axes, "logits": {0: "batch"}}, dynamo=False, opset_version=17)
    return path


def quantize_int8(src: str | Path, dst: str | Path) -> Path:
    """Dynamic int8 quantisation of the weights of ``src`` (activations quantised at run time)."""
    from onnxruntime.quantization import QuantType, quantize_dynamic
    quantize_dynamic(str(src), str(dst), weight_type=QuantType.QInt8)
    return Path(dst)


class OnnxClassifier:
    """An onnxruntime session on the CPU returning logits as a torch tensor."""

    def __init__(self, path: str | Path, threads: int | None = None):
        import onnxruntime as ort
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads or torch.get_num_threads()
        opts.inter_op_num_threads = 1
        self.session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])

    def __call__(self, input_ids, attention_mask, token_type_ids) -> torch.Tensor:
        feed = {"input_ids": input_ids, "attention_mask": attention_mask, "token_type_ids": token_type_ids}
        feed = {k: np.ascontiguousarray(v.numpy() if torch.is_tensor(v) else v, dtype=np.int64) for k, v in feed.items()}
        return torch.from_numpy(self.session.run(["logits"], feed)[0])
