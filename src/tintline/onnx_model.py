"""ONNX: export a generator (``tintline export MODEL OUT.onnx``) and run a ``.onnx`` file wherever a MODEL is named.

The exported graph is the generator's *fill* path (what region-true inference uses): input ``input`` (B, C, H, W)
float32, outputs ``fill`` (B, 3, H, W) in [-1, 1] and, for a generator with a color-class head, ``classes``
(B, K, H/2, W/2) logits. Batch, height and width are dynamic (H and W multiples of the network's ``multiple``;
inference pads to it). Opset ``OPSET``, TorchScript-based exporter (no onnxscript needed). tintline's metadata
(architecture, hint encoding, training size, blend, multiple and the color-class palette) travels in the model's
``metadata_props`` under ``tintline``, so the file is self-describing like a .safetensors model.

:class:`OnnxNet` runs such a file with onnxruntime (CPU) behind the small interface
:class:`tintline.inference.Colorizer` uses: ``multiple``, ``blend``, ``classes`` (holding ``palette``),
``fill_and_classes`` and ``__call__``.
"""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from .checkpoint import CheckpointError, load_generator, resolve_model_path
from .models.generator import multiply_blend

OPSET = 18
META = "tintline"


class _FillGraph(nn.Module):
    """The exported function: x -> fill (and class logits)."""

    def __init__(self, net: nn.Module, classes: bool):
        super().__init__()
        self.net = net
        self.classes = classes

    def forward(self, x: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        fill, logits = self.net.fill_and_classes(x, self.classes)
        return (fill, logits) if self.classes else fill


def export_onnx(model: str | Path, out: Path, side: int = 256) -> Path:
    """Write ``out`` (.onnx, atomically) from a model spec (file, run, ``default``)."""
    import onnx

    src = resolve_model_path(model)
    net, meta = load_generator(src)
    if not hasattr(net, "fill_and_classes"):
        raise CheckpointError(f"{src}: this generator cannot be exported to ONNX")
    head = getattr(net, "classes", None)
    has_head = isinstance(head, nn.Module) and bool(head.palette.abs().sum() > 0)
    multiple = int(getattr(net, "multiple", 1))
    side = max(multiple, side // multiple * multiple)
    x = torch.zeros(1, int(meta.get("generator", {}).get("args", {}).get("in_channels", 5)), side, side)
    x[:, 0] = 1.0  # paper
    outputs = ["fill", "classes"] if has_head else ["fill"]
    dyn = {"input": {0: "batch", 2: "height", 3: "width"}, "fill": {0: "batch", 2: "height", 3: "width"}}
    if has_head:
        dyn["classes"] = {0: "batch", 2: "height_2", 3: "width_2"}
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    try:
        with warnings.catch_warnings():  # tracer notes on shape checks and instance norm: expected, not news
            warnings.simplefilter("ignore")
            torch.onnx.export(_FillGraph(net, has_head).eval(), (x,), str(tmp), dynamo=False, opset_version=OPSET,
                              input_names=["input"], output_names=outputs, dynamic_axes=dyn)
        proto = onnx.load(str(tmp))
        info = {**{k: v for k, v in meta.items() if k != "format"}, "exported_from": str(src),
                "multiple": multiple, "blend": getattr(net, "blend", "direct"),
                "palette": head.palette.float().tolist() if has_head else None}
        entry = proto.metadata_props.add()
        entry.key, entry.value = META, json.dumps(info)
        onnx.save(proto, str(tmp))
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
    return out


class _Palette(nn.Module):
    def __init__(self, palette: list):
        super().__init__()
        self.register_buffer("palette", torch.tensor(palette, dtype=torch.float32))


class OnnxNet:
    """A generator exported by :func:`export_onnx`, run by onnxruntime on the CPU."""

    def __init__(self, path: str | Path, threads: int = 0):
        import onnxruntime as ort

        opts = ort.SessionOptions()
        if threads:
            opts.intra_op_num_threads = threads
        try:
            self.session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        except Exception as e:  # onnxruntime raises its own exception types for a bad file
            raise CheckpointError(f"{path}: not a loadable ONNX model ({str(e).splitlines()[0][:120]})") from e
        raw = self.session.get_modelmeta().custom_metadata_map.get(META)
        if raw is None:
            raise CheckpointError(f"{path}: an ONNX file without tintline metadata (export it with 'tintline export')")
        self.meta: dict[str, Any] = json.loads(raw)
        self.multiple = int(self.meta.get("multiple", 1))
        self.blend = str(self.meta.get("blend", "direct"))
        palette = self.meta.get("palette")
        self.classes = _Palette(palette) if palette else None
        self.outputs = [o.name for o in self.session.get_outputs()]

    def eval(self) -> OnnxNet:
        return self

    def fill_and_classes(self, x: torch.Tensor, classes: bool = True) -> tuple[torch.Tensor, torch.Tensor | None]:
        res = self.session.run(None, {"input": np.ascontiguousarray(x.detach().cpu().numpy(), dtype=np.float32)})
        fill = torch.from_numpy(res[0])
        logits = torch.from_numpy(res[1]) if classes and len(res) > 1 else None
        return fill, logits

    def fill(self, x: torch.Tensor) -> torch.Tensor:
        return self.fill_and_classes(x, False)[0]

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        fill = self.fill(x)
        return multiply_blend(fill, x[:, :1]) if self.blend == "multiply" else fill


def is_onnx(model: str | Path) -> bool:
    return str(model).lower().endswith(".onnx")


def load_onnx(model: str | Path) -> tuple[OnnxNet, dict]:
    p = Path(model)
    if not p.is_file():
        raise CheckpointError(f"model not found: {p}")
    net = OnnxNet(p)
    return net, net.meta


__all__ = ["OPSET", "OnnxNet", "export_onnx", "is_onnx", "load_onnx"]
