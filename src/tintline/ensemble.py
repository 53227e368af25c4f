"""Ensembles (the method's cheap accuracy gain): weight averages of checkpoints, and output averages of models.

* :func:`average_weights` (``tintline ensemble MODEL_OR_RUN ... -o OUT.safetensors [--last K]``): the last ``K``
  checkpoints of a run (their EMA generators when the run kept them), or several compatible model files and runs,
  averaged tensor by tensor into one model (a Polyak / "model soup" average: one network, no extra inference
  cost). All members must have the same architecture (generator name and arguments, tensor names and shapes) and
  the same color-class palette;
* :class:`OutputEnsemble` (the model spec ``ensemble:A,B,...`` wherever a MODEL is named, e.g. ``tintline eval``):
  each member colorizes, and the outputs are averaged per pixel (costs every member's time).
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from .checkpoint import FORMAT, META_KEY, NON_WEIGHT_PREFIX, CheckpointError, read_meta, resolve_model_path
from .errors import UserError

PREFIX = "ensemble:"


def checkpoint_files(run: Path, last: int) -> list[Path]:
    """The generator files of the last ``last`` checkpoints of a run (EMA weights when saved), oldest first."""
    steps = sorted(p for p in (run / "checkpoints").glob("step_*") if (p / "state.json").is_file())
    if not steps:
        raise UserError(f"{run}: no checkpoints to average")
    if last > len(steps):
        raise UserError(f"{run}: --last {last} but the run keeps {len(steps)} checkpoint(s)")
    out = []
    for d in steps[-last:]:
        ema = d / "generator_ema.safetensors"
        out.append(ema if ema.is_file() else d / "generator.safetensors")
    return out


def members(specs: Sequence[str | Path], last: int = 1) -> list[Path]:
    """Model specs (run directories: their last ``last`` checkpoints; files, ``default``) -> generator files."""
    if last < 1:
        raise UserError(f"--last {last}: at least 1")
    files: list[Path] = []
    for s in specs:
        p = Path(s)
        if p.is_dir() and (p / "checkpoints").is_dir():
            files += checkpoint_files(p, last)
        else:
            files.append(resolve_model_path(s))
    return files


def average_weights(specs: Sequence[str | Path], out: str | Path, last: int = 1) -> tuple[Path, list[Path]]:
    """Average the members' weights into ``out`` (float32, atomically); returns (out, the member files)."""
    files = members(specs, last)
    if len(files) < 2:
        raise UserError("an ensemble needs at least two members (more runs, or --last K >= 2)")
    metas = [read_meta(f) for f in files]
    arch = metas[0].get("generator")
    sums: dict[str, torch.Tensor] = {}
    ref_keys: dict[str, tuple] = {}
    for i, (f, meta) in enumerate(zip(files, metas, strict=True)):
        if meta.get("generator") != arch or meta.get("hint_encoding") != metas[0].get("hint_encoding"):
            raise UserError(f"{f}: another architecture than {files[0]} ({meta.get('generator')} vs {arch}); "
                            "only compatible models can be averaged")
        tensors = {k: v for k, v in load_file(str(f)).items() if not k.startswith(NON_WEIGHT_PREFIX)}
        shapes = {k: tuple(v.shape) for k, v in tensors.items()}
        if i == 0:
            ref_keys = shapes
        elif shapes != ref_keys:
            raise UserError(f"{f}: its tensors differ from {files[0]}'s; only compatible models can be averaged")
        for k, v in tensors.items():
            if k.endswith("palette"):  # a buffer that must agree, not a weight to average
                if k in sums and not torch.allclose(sums[k], v.float(), atol=0.05):
                    raise UserError(f"{f}: another color-class palette than {files[0]}; cannot average")
                sums[k] = v.float()
                continue
            if not v.is_floating_point():
                sums.setdefault(k, v)
                continue
            sums[k] = sums[k] + v.float() if k in sums else v.float().clone()
    n = len(files)
    avg = {k: (v / n if v.is_floating_point() and not k.endswith("palette") else v).contiguous()
           for k, v in sums.items()}
    meta = {k: v for k, v in metas[-1].items() if k != "format"}
    meta["ensemble"] = [str(f) for f in files]
    meta["description"] = f"weight average of {n} checkpoints/models"
    out = Path(out)
    if out.suffix.lower() != ".safetensors":
        raise UserError(f"-o {out}: an ensemble is written as a .safetensors file")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    try:
        save_file(avg, str(tmp), metadata={META_KEY: json.dumps({"format": FORMAT, **meta})})
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
    return out, files


class OutputEnsemble:
    """``ensemble:A,B,...``: every member colorizes, the outputs are averaged per pixel (rounded)."""

    def __init__(self, spec: str, device: str = "cpu"):
        from .inference import load_colorizer

        names = [s for s in spec[len(PREFIX):].split(",") if s]
        if len(names) < 2:
            raise CheckpointError(f"{spec}: an output ensemble names at least two models, comma-separated")
        self.members = [load_colorizer(n, device=device) for n in names]
        self.soft_hints = False
        self.meta: dict[str, Any] = {"description": f"output average of {', '.join(names)}"}

    def _average(self, outputs: Sequence[np.ndarray]) -> np.ndarray:
        acc = np.zeros(outputs[0].shape, np.float32)
        for out in outputs:
            acc += out
        return np.clip(acc / len(outputs) + 0.5, 0, 255).astype(np.uint8)

    def colorize_lines(self, line: np.ndarray, hints: dict | None = None, soft_hints: bool | None = None) -> np.ndarray:
        """line (H, W) uint8 -> (H, W, 3) uint8: the members' outputs averaged."""
        return self._average([np.asarray(m.colorize_lines(line, hints, soft_hints=soft_hints)) for m in self.members])

    def colorize_image(self, img: Any, hints: dict | None = None, soft_hints: bool | None = None) -> np.ndarray:
        return self._average([np.asarray(m.colorize_image(img, hints, soft_hints=soft_hints)) for m in self.members])
