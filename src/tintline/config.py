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
    """How `tintline data build` turns imported images into training pairs.

    Every filter is a function of measurements stored per image, so changing a threshold here and rebuilding
    re-decides every image without decoding anything again.
    """

    size: int = Field(256, ge=32, le=2048, description="Side of the square training images (pixels).")
    min_side: int = Field(64, ge=8, description="Filter too-small: reject images whose shorter side is below this.")
    max_pixels: int = Field(
        50_000_000, ge=1, description="Reject larger images before decoding (decompression-bomb guard)."
    )
    max_bytes: int = Field(64 * 1024 * 1024, ge=1, description="Reject files larger than this many bytes.")
    min_colorfulness: float = Field(
        0.04,
        ge=0,
        description="Filter no-color: reject images whose share of clearly colored content pixels "
        "(chroma > color_chroma) is below this (grayscale, monochrome, nearly gray).",
    )
    color_chroma: float = Field(
        0.12, ge=0, le=1, description="A pixel counts as colored when max(R,G,B)-min(R,G,B) exceeds this."
    )
    min_content: float = Field(
        0.005, ge=0, le=1, description="Filter blank: reject images whose non-paper share of the canvas is below this."
    )
    max_aspect: float = Field(
        4.5, ge=1, description="Filter aspect: reject subjects (margins trimmed) whose long side / short side exceeds "
        "this (banners, rules, borders).",
    )
    min_subject_frac: float = Field(
        0.01,
        ge=0,
        le=1,
        description="Filter subject-too-small: reject when the subject's bounding box (after trimming transparent "
        "and white margins) covers less than this share of the canvas.",
    )
    min_subject_side: int = Field(
        40, ge=0, description="Filter subject-too-small: reject when the subject's longer side is below this (pixels)."
    )
    placeholder_bits: int = Field(
        10, ge=0, le=128, description="Filter placeholder: reject images whose dHash is within this many bits of a "
        "known placeholder (a placeholder badge found anywhere in the drawing is rejected too).",
    )
    max_text_frac: float = Field(
        0.5, ge=0, le=1, description="Filter text: reject when more than this share of the drawing lies in text-like "
        "rows of dark letter- or word-sized shapes (diagrams of words, font samples, captions alone).",
    )
    max_ink: float = Field(
        0.38, ge=0, le=1, description="Filter entangled: reject when more than this share of the subject is ink in a "
        "reference line-art extraction (too dense to learn from).",
    )
    max_fragments: float = Field(
        55.0, ge=0, description="Filter entangled: reject when the reference line art breaks into more than this many "
        "pieces per 10,000 pixels of subject (hatching, noise, tiny detail).",
    )
    min_clf_score: float = Field(
        0.0, ge=0, le=1, description="Filter classifier: reject images whose learned-filter score (tintline data "
        "classify) is below this; 0 turns the filter off. Images without a score pass.",
    )
    disabled_filters: list[str] = Field(
        default_factory=list, description="Names of per-image filters to skip (e.g. [text, entangled])."
    )
    near_dup_bits: int = Field(
        16, ge=0, le=128, description="Near-duplicates: candidates whose 128-bit dHashes (of the subjects, margins "
        "trimmed) differ in at most this many bits; see near_dup_diff. Each group keeps its largest image.",
    )
    near_dup_diff: float = Field(
        3.0, ge=0, description="Near-duplicates: candidates whose 8x8 CIELAB thumbnails differ by at most this much "
        "(mean absolute difference, 0-255 scale): resized or re-encoded copies are about 1-2 apart; same-layout "
        "images in other colors (flags) or with another symbol (signs) much more.",
    )
    balance: int = Field(
        0, ge=0, description="Keep at most this many accepted images per tag (the rest: reason balance-cap, chosen "
        "deterministically by content hash); 0 disables.",
    )
    split: tuple[float, float, float] = Field(
        (0.7, 0.2, 0.1),
        description="Train / validation / test fractions, met within each top-level tag (first tag); near-duplicate "
        "groups never straddle, and an assigned split never changes.",
    )
    line_styles: dict[str, float] = Field(
        default_factory=lambda: {"xdog": 0.4, "adaptive": 0.2, "edges": 0.2, "alpha": 0.2},
        description="Share of training pairs per line-art extractor (xdog, adaptive, edges, alpha, manga); alpha "
        "applies only to sources with transparency, its share goes to the others elsewhere; manga (gray or "
        "screentoned pages, off by default) makes the input a manga page instead of line art. Merged into the "
        "defaults: set a style to 0 to turn it off.",
    )
    seed: int = Field(0, description="Seed for split assignment and per-sample line-art styles and parameters.")
    workers: int = Field(0, ge=0, description="Processes for decoding and line art; 0 means one per CPU core.")

    @model_validator(mode="after")
    def _check_split(self) -> DataConfig:
        if any(f < 0 for f in self.split) or abs(sum(self.split) - 1.0) > 1e-6:
            raise ValueError(f"split fractions must be >= 0 and sum to 1, got {self.split}")
        # the registries live in data/lineart.py and data/clean.py (no cv2 here); tests check these names match them
        styles = ("xdog", "adaptive", "edges", "alpha", "manga")
        filters = ("too-small", "blank", "aspect", "subject-too-small", "placeholder", "no-color", "text", "entangled",
                   "classifier")
        unknown = sorted(set(self.line_styles) - set(styles))
        if unknown:
            raise ValueError(f"unknown line styles {unknown}; known: {', '.join(styles)}")
        if any(v < 0 for v in self.line_styles.values()) or not any(
            v > 0 for k, v in self.line_styles.items() if k != "alpha"
        ):
            raise ValueError("line_styles shares must be >= 0 with at least one style besides alpha above 0")
        unknown = sorted(set(self.disabled_filters) - set(filters))
        if unknown:
            raise ValueError(f"unknown filters {unknown}; known: {', '.join(filters)}")
        return self


# --------------------------------------------------------------------------------------------- training


class NetConfig(_Strict):
    """A network chosen by registry name; ``args`` go to its constructor (checked when it is built)."""

    name: str
    args: dict[str, Any] = Field(default_factory=dict)


class ModelConfig(_Strict):
    hint_encoding: Literal["sparse", "region", "tone"] = Field(
        "tone",
        description="sparse: hint marks only (5 input channels); region: marks plus the marks flooded into their "
        "closed line-art regions (9 channels), a classical prior the network corrects; tone: region plus a gray "
        "page's own shading and a has-tone plane (11 channels; a share train.p_tone of samples get the tone), so "
        "the network sees a manga page's grays, not only its lines.",
    )
    generator: NetConfig = Field(
        default_factory=lambda: NetConfig(
            name="unet", args={"base": 24, "depth": 6, "max_width": 192, "norm": "instance", "blend": "multiply",
                                    "classes": 128}
        )
    )
    discriminator: NetConfig = Field(default_factory=lambda: NetConfig(name="patchgan", args={"base": 16}))


class LossConfig(_Strict):
    """The training objective: an adversarial term (optional) plus weighted reconstruction terms.

    Total generator loss = ``gan_weight`` * adversarial(``gan_mode``) + sum of ``weight * term`` over ``recon``;
    discriminator loss = adversarial + ``dragan_weight`` * DRAGAN penalty. Names are entries of the registries in
    :mod:`tintline.losses`. Older configs wrote ``l1_weight: X``; it is still read, as ``recon: {l1: X}``.
    """

    gan_mode: Literal["lsgan", "vanilla", "hinge"] = Field(
        "lsgan",
        description="Adversarial loss: lsgan (least squares), vanilla (cross-entropy, non-saturating G) or hinge.",
    )
    gan_weight: float = Field(
        0.0, ge=0, description="Weight of the adversarial term in G's loss; 0 (the default recipe) trains without a "
        "discriminator. configs/pix2pix.yaml sets 1."
    )
    dragan_weight: float = Field(
        0.0,
        ge=0,
        description="Weight of the DRAGAN gradient penalty added to D's loss (its paper uses 10); 0 disables. "
        "Needs gan_weight > 0.",
    )
    recon: dict[Literal["l1", "mse", "lab"], float] = Field(
        default_factory=lambda: {"l1": 100.0},
        description="Reconstruction terms, name -> weight: l1 and mse on RGB in [-1, 1], lab = L1 in CIELAB units "
        "(about 60x an RGB L1, so lab: 1.5 weighs about like l1: 100). Merged into the default {l1: 100}: "
        "set l1: 0 to drop it. The old key l1_weight: X is read as recon.l1 = X.",
    )

    region: float = Field(
        2.0, ge=0,
        description="Weight of the region-pooled color loss: each closed region's mean predicted color against its "
        "mean true color, L1 in CIELAB units, every region counting once (what region accuracy measures). 0: off.",
    )
    classes: float = Field(
        2.0, ge=0,
        description="Weight of the region-pooled color-class loss: cross-entropy of each region's pooled class "
        "logits against the palette color nearest its true mean color. Needs a generator with a color-class head "
        "(generator arg classes: K, the palette size); 0 or no head: off.",
    )

    @model_validator(mode="before")
    @classmethod
    def _legacy_l1_weight(cls, data: Any) -> Any:
        """``l1_weight: X`` (configs before the loss registries) -> ``recon.l1 = X``."""
        if not isinstance(data, dict) or "l1_weight" not in data:
            return data
        data = dict(data)
        legacy = data.pop("l1_weight")
        recon = data.get("recon")
        recon = dict(recon) if isinstance(recon, dict) else {}
        # recon.l1 equal to its default may only come from the defaults the config was merged onto
        if recon.get("l1", 100.0) not in (100.0, legacy):
            raise ValueError(f"l1_weight ({legacy}) and recon.l1 ({recon['l1']}) disagree; write only recon.l1")
        recon["l1"] = legacy
        data["recon"] = recon
        return data

    @model_validator(mode="after")
    def _check_some_loss(self) -> LossConfig:
        negative = [k for k, w in self.recon.items() if w < 0]
        if negative:
            raise ValueError(f"recon weights must be >= 0: {', '.join(negative)}")
        if self.gan_weight == 0 and not any(self.recon.values()):
            raise ValueError("gan_weight and every recon weight are 0: nothing to train")
        if self.dragan_weight > 0 and self.gan_weight == 0:
            raise ValueError("dragan_weight > 0 needs a discriminator (gan_weight > 0)")
        return self

    @property
    def l1_weight(self) -> float:
        """Weight of the L1 term (read-only; kept for code written before ``recon``)."""
        return self.recon.get("l1", 0.0)


class OptimConfig(_Strict):
    lr_g: float = Field(5e-4, gt=0, description="Adam learning rate of the generator.")
    lr_d: float = Field(2e-4, gt=0, description="Adam learning rate of the discriminator.")
    beta1: float = Field(0.5, ge=0, lt=1)
    beta2: float = Field(0.999, ge=0, lt=1)
    grad_clip: float = Field(0.0, ge=0, description="Clip the global gradient norm to this; 0 disables.")
    decay: Literal["constant", "cosine", "linear"] = Field(
        "constant", description="Learning-rate schedule over the run (by steps with max_steps, else by time): "
        "constant, or a cosine / linear fall from the full rate to min_lr_scale of it at the end.")
    min_lr_scale: float = Field(0.1, ge=0, le=1, description="With decay: the rates' final fraction.")


class HintConfig(_Strict):
    """Simulated user hints: dots and short strokes of the true local color, "denoised" by dropping.

    The method's hint roadmap (spatial hints -> fewer hints -> none): ``p_none`` of the samples get no hint at all,
    and of the rest a fraction ``drop`` of the marks is removed, rising linearly from ``drop[0]`` at the start of
    training to ``drop[1]`` at its end.
    """

    p_none: float = Field(0.5, ge=0, le=1, description="Share of samples trained with no hint at all.")
    mean_count: float = Field(8.0, gt=0, description="Mean number of marks (geometric distribution) when hinted.")
    max_count: int = Field(32, ge=1)
    radius: tuple[int, int] = Field((1, 3), description="Dot radius range (pixels, inclusive).")
    p_stroke: float = Field(0.3, ge=0, le=1, description="Share of marks that are short strokes instead of dots.")
    stroke_length: tuple[int, int] = Field((6, 20), description="Stroke length range (pixels).")
    color_noise: float = Field(3.0, ge=0, description="Std of the noise added to each mark's color (0..255 units).")
    min_region: int = Field(48, ge=0, description="Marks go into closed regions of at least this many pixels.")
    drop: tuple[float, float] = Field(
        (0.0, 0.3), description="Fraction of marks dropped at the start and at the end of training (linear)."
    )
    p_region: float = Field(
        0.5, ge=0, le=1,
        description="Share of hinted samples whose hints are the evaluation's region dots instead of random marks: "
        "one dot per closed region in its median color, in a random share of the regions or in the K largest.",
    )


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
    inspect_every: int = Field(
        100, ge=0, description="Steps between histograms, dead-unit counts, gradient norms and update ratios; 0: never."
    )
    ema_decay: float = Field(
        0.999, ge=0, lt=1, description="Decay of the generator's EMA copy used for validation and export; 0: no EMA."
    )
    seed: int = Field(0)
    device: Literal["auto", "cpu", "cuda"] = Field("auto", description="Fabric accelerator; auto: CUDA if any.")
    devices: int = Field(1, ge=1, description="Processes (CPU) or GPUs per node; above 1 trains with DDP.")
    num_nodes: int = Field(1, ge=1, description="Machines for multi-node DDP (launched by torchrun or a scheduler).")
    strategy: Literal["auto", "ddp"] = Field("auto", description="Fabric strategy; auto is DDP when devices > 1.")
    precision: Literal["32-true", "16-mixed", "bf16-mixed"] = Field(
        "32-true", description="Fabric precision: 16-mixed (fp16 autocast + loss scaling) and bf16-mixed on GPU."
    )
    threads: int = Field(0, ge=0, description="torch CPU threads per process; 0: torch's default, split between "
                         "the processes of a CPU DDP run.")
    init_from: str = Field("", description="Transfer learning: start G (and D when the source is a run) from this "
                           "model file or run folder; the learning rates are scaled by finetune_lr_scale.")
    freeze_encoder: int = Field(0, ge=0, description="With init_from: freeze the stem and the first N encoder levels.")
    finetune_lr_scale: float = Field(0.1, gt=0, le=1, description="Learning-rate factor when init_from is set.")
    p_tone: float = Field(0.5, ge=0, le=1, description="With model.hint_encoding tone: share of training samples "
                          "that also get their gray page's tone (the rest: line art alone, as a user's drawing).")


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
