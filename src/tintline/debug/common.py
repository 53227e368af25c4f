"""Pieces the debugging tools share: a recipe's generator and objective built outside the trainer."""

from __future__ import annotations

from pathlib import Path

import torch

from ..config import TrainConfig, load_train_config
from ..data.dataset import input_channels, load_pair
from ..data.store import Entry, open_for_training
from ..errors import UserError
from ..models import create_generator
from ..objective import Pix2PixObjective
from ..regions.palette import fit_palette


def recipe(config: str | Path | None, overrides: list[str] | None) -> TrainConfig:
    """The training recipe: ``config`` (a YAML) or the built-in defaults, with ``--set`` overrides."""
    return load_train_config(config, list(overrides or []))


def train_entries(dataset: str | Path) -> tuple[list[Entry], int]:
    """-> (accepted training entries, image size) of a built dataset."""
    store, data_cfg = open_for_training(Path(dataset))
    try:
        entries = store.entries("train")
    finally:
        store.close()
    return entries, int(data_cfg.size)


def build(cfg: TrainConfig, entries: list[Entry], seed: int = 0) -> tuple[torch.nn.Module, Pix2PixObjective]:
    """A fresh generator of the recipe (its color-class palette fitted to ``entries``) and its objective, without
    a discriminator (the debugging tools check the generator's learning)."""
    torch.manual_seed(seed)
    args = {"in_channels": input_channels(cfg.model.hint_encoding), **cfg.model.generator.args}
    try:
        g = create_generator(cfg.model.generator.name, **args)
    except (TypeError, ValueError) as e:
        raise UserError(f"generator {cfg.model.generator.name} {args}: {e}") from e
    head = getattr(g, "classes", None)
    palette = None
    if isinstance(head, torch.nn.Module):
        head.palette.copy_(torch.from_numpy(fit_palette([load_pair(e) for e in entries[:200]], len(head.palette),
                                                        seed=seed)))
        palette = head.palette
    loss = cfg.loss.model_copy(update={"gan_weight": 0.0})
    return g, Pix2PixObjective(g, None, loss, palette=palette)
