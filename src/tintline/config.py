"""Typed, grouped configuration.

Two configs exist, because they live in different places and change at different times:

* :class:`DataConfig` belongs to a dataset directory (``DATASET/dataset.yaml``) and says how raw images become
  training pairs (filters, thresholds, split, size).
* :class:`TrainConfig` belongs to a run directory (``RUN_DIR/config.yaml``, written at start) and groups the
  model, loss, optimizer, hint simulation and loop settings.

Both load from YAML and accept ``section.field=value`` overrides from the command line. Unknown keys are errors,
so a typo in a recipe fails at once with the key's name instead of being silently ignored.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from .errors import UserError


class ConfigError(UserError):
    """A configuration file or override is invalid; the message is meant for the user."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


# --------------------------------------------------------------------------------------------- data


class DataConfig(_Strict):
    """How `tintline data build` turns imported images into training pairs."""

    size: int = Field(256, ge=32, le=2048, description="Side of the square training images (pixels).")
    min_side: int = Field(64, ge=8, description="Reject images whose shorter side is below this.")
    max_pixels: int = Field(
        50_000_000, ge=1, description="Reject larger images before decoding (decompression-bomb guard)."
    )
    max_bytes: int = Field(64 * 1024 * 1024, ge=1, description="Reject files larger than this many bytes.")
    min_colorfulness: float = Field(
        0.04,
        ge=0,
        description="Reject images whose share of clearly colored pixels (chroma > color_chroma) is below this.",
    )
    color_chroma: float = Field(
        0.12, ge=0, le=1, description="A pixel counts as colored when max(R,G,B)-min(R,G,B) exceeds this."
    )
    near_dup_bits: int = Field(
        10, ge=0, le=64, description="Images whose 128-bit dHashes differ in at most this many bits are duplicates."
    )
    split: tuple[float, float, float] = Field(
        (0.7, 0.2, 0.1), description="Train / validation / test fractions; near-duplicate groups never straddle."
    )
    seed: int = Field(0, description="Seed for split assignment and per-sample line-art parameters.")
    workers: int = Field(0, ge=0, description="Processes for decoding and line art; 0 means one per CPU core.")

    @model_validator(mode="after")
    def _check_split(self) -> DataConfig:
        if any(f < 0 for f in self.split) or abs(sum(self.split) - 1.0) > 1e-6:
            raise ValueError(f"split fractions must be >= 0 and sum to 1, got {self.split}")
        return self


# --------------------------------------------------------------------------------------------- training


class NetConfig(_Strict):
    """A network chosen by registry name; ``args`` go to its constructor (checked when it is built)."""

    name: str
    args: dict[str, Any] = Field(default_factory=dict)


class ModelConfig(_Strict):
    hint_encoding: Literal["sparse", "region"] = Field(
        "region",
        description="sparse: hint marks only (5 input channels); region: marks plus the marks flooded into their "
        "closed line-art regions (9 channels), a classical prior the network corrects.",
    )
    generator: NetConfig = Field(
        default_factory=lambda: NetConfig(
            name="unet", args={"base": 24, "depth": 6, "max_width": 192, "norm": "instance", "blend": "multiply"}
        )
    )
    discriminator: NetConfig = Field(default_factory=lambda: NetConfig(name="patchgan", args={"base": 16}))


class LossConfig(_Strict):
    gan_mode: Literal["lsgan", "vanilla"] = Field("lsgan", description="Adversarial loss.")
    gan_weight: float = Field(1.0, ge=0, description="Weight of the adversarial term; 0 trains with L1 alone.")
    l1_weight: float = Field(100.0, ge=0, description="Weight of the L1 reconstruction term.")

    @model_validator(mode="after")
    def _check_some_loss(self) -> LossConfig:
        if self.gan_weight == 0 and self.l1_weight == 0:
            raise ValueError("gan_weight and l1_weight are both 0: nothing to train")
        return self


class OptimConfig(_Strict):
    lr_g: float = Field(5e-4, gt=0, description="Adam learning rate of the generator.")
    lr_d: float = Field(2e-4, gt=0, description="Adam learning rate of the discriminator.")
    beta1: float = Field(0.5, ge=0, lt=1)
    beta2: float = Field(0.999, ge=0, lt=1)
    grad_clip: float = Field(0.0, ge=0, description="Clip the global gradient norm to this; 0 disables.")


class HintConfig(_Strict):
    """Simulated user hints: dots of the true local color, dropped entirely for a share of samples."""

    p_none: float = Field(0.5, ge=0, le=1, description="Share of samples trained with no hint at all.")
    mean_count: float = Field(8.0, gt=0, description="Mean number of dots when a sample has hints.")
    max_count: int = Field(32, ge=1)
    radius: tuple[int, int] = Field((1, 3), description="Dot radius range (pixels, inclusive).")


class LoopConfig(_Strict):
    batch_size: int = Field(8, ge=1)
    crop: int = Field(128, ge=16, description="Random square crop used for training (pixels).")
    flip: bool = Field(True, description="Random horizontal flip, applied to line art and color together.")
    scale: tuple[float, float] = Field(
        (0.5, 1.0), description="Random zoom range before cropping; below 1 the crop sees more of the drawing."
    )
    minutes: float = Field(8.0, gt=0, description="Wall-clock training budget.")
    max_steps: int = Field(0, ge=0, description="Stop after this many steps; 0 means only the time budget.")
    log_every: int = Field(25, ge=1, description="Steps between scalar logs (TensorBoard and metrics.jsonl).")
    sample_every: int = Field(250, ge=1, description="Steps between sample grids and validation metrics.")
    ckpt_every: int = Field(500, ge=1, description="Steps between checkpoints (one is always written at the end).")
    val_images: int = Field(8, ge=1, description="Fixed validation images for metrics and sample grids.")
    seed: int = Field(0)
    device: Literal["auto", "cpu", "cuda"] = Field("auto")
    threads: int = Field(0, ge=0, description="torch CPU threads; 0 keeps torch's default.")


class TrainConfig(_Strict):
    model: ModelConfig = Field(default_factory=ModelConfig)
    loss: LossConfig = Field(default_factory=LossConfig)
    optim: OptimConfig = Field(default_factory=OptimConfig)
    hints: HintConfig = Field(default_factory=HintConfig)
    train: LoopConfig = Field(default_factory=LoopConfig)


# --------------------------------------------------------------------------------------------- loading


def _set_path(tree: dict[str, Any], dotted: str, value: Any) -> None:
    keys = dotted.split(".")
    node = tree
    for k in keys[:-1]:
        node = node.setdefault(k, {})
        if not isinstance(node, dict):
            raise ConfigError(f"override {dotted!r}: {k!r} is not a section")
    node[keys[-1]] = value


def parse_overrides(items: list[str] | None) -> dict[str, Any]:
    """``["train.batch_size=4", "loss.gan_weight=0"]`` -> nested dict; values parse as YAML scalars."""
    tree: dict[str, Any] = {}
    for item in items or []:
        if "=" not in item:
            raise ConfigError(f"override {item!r} must look like section.field=value")
        key, raw = item.split("=", 1)
        _set_path(tree, key.strip(), yaml.safe_load(raw))
    return tree


def _merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    """Deep merge, except that a network's ``args`` are replaced as a whole (they belong to one constructor)."""
    out = dict(base)
    for k, v in extra.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict) and k != "args":
            out[k] = _merge(out[k], v)
        else:
            out[k] = v
    return out


def _format_error(err: ValidationError, where: str) -> str:
    first = err.errors()[0]
    loc = ".".join(str(p) for p in first["loc"]) or "(top)"
    return f"{where}: {loc}: {first['msg']}"


def load_yaml(path: str | Path) -> dict[str, Any]:
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"config file not found: {p}")
    try:
        data = yaml.safe_load(p.read_text()) or {}
    except yaml.YAMLError as e:
        raise ConfigError(f"{p}: not valid YAML ({e.__class__.__name__})") from e
    if not isinstance(data, dict):
        raise ConfigError(f"{p}: top level must be a mapping")
    return data


def build_config(cls: type[BaseModel], *layers: dict[str, Any], where: str = "config") -> Any:
    """Validate ``cls`` from its defaults overlaid with layered dicts (later layers win)."""
    merged: dict[str, Any] = cls().model_dump(mode="json")
    for layer in layers:
        merged = _merge(merged, layer)
    try:
        return cls.model_validate(merged)
    except ValidationError as e:
        raise ConfigError(_format_error(e, where)) from e


def load_train_config(path: str | Path | None = None, overrides: list[str] | None = None) -> TrainConfig:
    base = load_yaml(path) if path else {}
    return build_config(TrainConfig, base, parse_overrides(overrides), where=str(path or "config"))


def dump_yaml(cfg: BaseModel) -> str:
    return yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False)
