"""Self-describing checkpoints in safetensors (never pickle), and loading a generator from one.

A generator file carries, in its safetensors metadata under the key ``tintline``, a JSON object with the
generator's registry name and arguments, the full training config, the step, the code version (package version and
git commit) and the dataset fingerprint. ``colorize``, ``eval`` and the server rebuild the network from that alone.

A run directory looks like::

    RUN_DIR/config.yaml                 final config of the run
    RUN_DIR/model.safetensors           generator of the latest checkpoint (what `colorize RUN_DIR` loads)
    RUN_DIR/checkpoints/latest          name of the newest complete checkpoint folder
    RUN_DIR/checkpoints/step_00001000/  generator / discriminator / optimizer .safetensors + state.json

A checkpoint folder is written under a temporary name and renamed when complete, so a kill while saving leaves the
previous checkpoint as the latest.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, safe_open, save_file
from torch import nn

from . import __version__
from .errors import UserError
from .models import create_generator

FORMAT = 1
META_KEY = "tintline"
# the model shipped in the package; the name "default" means it wherever a model is named
SHIPPED_MODEL = Path(__file__).parent / "weights" / "default.safetensors"
# tensors under this prefix ride along with a generator's weights (a character file's references) and are not loaded
# into the network
NON_WEIGHT_PREFIX = "character."


class CheckpointError(UserError):
    """A model path is missing, not a tintline checkpoint, or inconsistent."""


def code_version() -> dict[str, str]:
    """Package version and, when running from a git checkout, ``git describe`` and the commit."""
    out = {"version": __version__, "git_commit": "unknown", "git_describe": "unknown"}
    here = Path(__file__).resolve().parent
    try:
        out["git_commit"] = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True, timeout=5, check=True
        ).stdout.strip()
        out["git_describe"] = subprocess.run(
            ["git", "describe", "--tags", "--always", "--dirty"], cwd=here, capture_output=True, text=True,
            timeout=5, check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        pass
    return out


def _plain(sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    # safetensors needs contiguous tensors that share no memory
    return {k: v.detach().cpu().contiguous().clone() for k, v in sd.items()}


def save_generator(model: nn.Module, path: Path, meta: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    save_file(_plain(model.state_dict()), str(tmp), metadata={META_KEY: json.dumps({"format": FORMAT, **meta})})
    tmp.replace(path)


def read_meta(path: Path) -> dict[str, Any]:
    try:
        with safe_open(str(path), framework="pt") as f:
            raw = (f.metadata() or {}).get(META_KEY)
    except (SafetensorError, OSError, ValueError) as e:
        raise CheckpointError(f"{path}: not a safetensors file ({e.__class__.__name__})") from e
    if raw is None:
        raise CheckpointError(f"{path}: safetensors file without tintline metadata")
    meta = json.loads(raw)
    if meta.get("format") != FORMAT:
        raise CheckpointError(f"{path}: checkpoint format {meta.get('format')} not supported (expected {FORMAT})")
    return meta


def resolve_model_path(model: str | Path) -> Path:
    """A .safetensors file, a checkpoint folder, a run directory, or ``default`` (the shipped model; a path of that
    name wins) -> the generator file to load."""
    p = Path(model)
    if str(model) == "default" and not p.exists():
        if not SHIPPED_MODEL.is_file():
            raise CheckpointError("no model is shipped with this installation; name a run directory or checkpoint")
        return SHIPPED_MODEL
    if p.is_file():
        return p
    if p.is_dir():
        for cand in (p / "model.safetensors", p / "generator.safetensors"):
            if cand.is_file():
                return cand
        latest = latest_checkpoint(p)
        if latest is not None:
            return latest / "generator.safetensors"
        raise CheckpointError(f"{p}: no model.safetensors or checkpoint inside (has training written one yet?)")
    raise CheckpointError(f"model not found: {p}")


def load_generator(model: str | Path, device: str | torch.device = "cpu") -> tuple[nn.Module, dict[str, Any]]:
    """Rebuild the generator from its file's metadata and load the weights; returns (model in eval mode, meta)."""
    path = resolve_model_path(model)
    meta = read_meta(path)
    g = meta.get("generator") or {}
    net = create_generator(g.get("name", "?"), **g.get("args", {}))
    try:
        weights = {k: v for k, v in load_file(str(path)).items() if not k.startswith(NON_WEIGHT_PREFIX)}
        net.load_state_dict(weights)  # float16 exports are cast to the network's float32 here
    except RuntimeError as e:
        raise CheckpointError(f"{path}: weights do not match the recorded architecture ({str(e)[:120]})") from e
    return net.to(device).eval(), meta


def export_generator(model: str | Path, dst: Path, half: bool = True, extra_meta: dict | None = None) -> Path:
    """Copy a generator (run dir, checkpoint or file) into one self-describing file, in float16 by default
    (half the size; inference casts back to float32 on load)."""
    src = resolve_model_path(model)
    meta = {**read_meta(src), **(extra_meta or {}), "exported_from": str(src), "dtype": "float16" if half else
            "float32"}
    meta.pop("format", None)
    tensors = load_file(str(src))
    if half:
        tensors = {k: v.half() if v.is_floating_point() else v for k, v in tensors.items()}
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = dst.with_name(dst.name + ".tmp")
    save_file(_plain(tensors), str(tmp), metadata={META_KEY: json.dumps({"format": FORMAT, **meta})})
    os.chmod(tmp, 0o644)  # a file to share and install: readable by everyone
    tmp.replace(dst)
    return dst


# ------------------------------------------------------------------------------ full training checkpoints


def flatten_optimizer(opt: torch.optim.Optimizer, prefix: str) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Optimizer state -> (tensors for safetensors, JSON-able rest)."""
    sd = opt.state_dict()
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, Any] = {}
    for idx, st in sd["state"].items():
        for k, v in st.items():
            if torch.is_tensor(v):
                tensors[f"{prefix}.{idx}.{k}"] = v
            else:
                scalars[f"{idx}.{k}"] = v
    return tensors, {"param_groups": sd["param_groups"], "scalars": scalars}


def unflatten_optimizer(opt: torch.optim.Optimizer, tensors: dict[str, torch.Tensor], rest: dict[str, Any],
                        prefix: str) -> None:
    state: dict[int, dict[str, Any]] = {}
    for key, v in tensors.items():
        if key.startswith(prefix + "."):
            idx, name = key[len(prefix) + 1 :].split(".", 1)
            state.setdefault(int(idx), {})[name] = v
    for key, v in rest["scalars"].items():
        idx, name = key.split(".", 1)
        state.setdefault(int(idx), {})[name] = v
    opt.load_state_dict({"state": state, "param_groups": rest["param_groups"]})


def latest_checkpoint(run_dir: Path) -> Path | None:
    marker = run_dir / "checkpoints" / "latest"
    if not marker.is_file():
        return None
    d = run_dir / "checkpoints" / marker.read_text().strip()
    return d if (d / "state.json").is_file() else None


def write_checkpoint(run_dir: Path, step: int, files: dict[str, tuple[dict[str, torch.Tensor], dict[str, str]]],
                     state: dict[str, Any], keep: int = 3) -> Path:
    """Write ``{name: (tensors, metadata)}`` + state.json into ``checkpoints/step_N`` atomically; mark it latest."""
    root = run_dir / "checkpoints"
    final = root / f"step_{step:08d}"
    tmp = root / f".tmp_step_{step:08d}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    for name, (tensors, metadata) in files.items():
        save_file(_plain(tensors), str(tmp / f"{name}.safetensors"), metadata=metadata)
    (tmp / "state.json").write_text(json.dumps(state, indent=1))
    shutil.rmtree(final, ignore_errors=True)
    tmp.rename(final)
    marker_tmp = root / "latest.tmp"
    marker_tmp.write_text(final.name)
    os.replace(marker_tmp, root / "latest")
    # keep the newest few (and whatever is marked best later)
    olds = sorted(p for p in root.glob("step_*") if p.is_dir())
    for p in olds[:-keep]:
        shutil.rmtree(p, ignore_errors=True)
    return final
