"""The training loop: devices, optimizers, the time budget, logging, checkpoints and resume.

It owns no loss (see :mod:`tintline.objective`) and no architecture (see :mod:`tintline.models`). Devices,
distribution and precision go through Lightning Fabric: one CPU or GPU, DDP over several processes or GPUs (CPU DDP
uses gloo), several nodes, fp16/bf16 autocast. Rank 0 alone validates, logs and writes checkpoints; every rank
holds the same weights (checked: ``ddp/param_spread``), its own shard of each epoch (:class:`EpochSampler`) and its
own EMA copy (identical, since it follows identical weights).

Exact resume: the data order and every sample's crop and hints are functions of (seed, epoch, index), the
optimizers, EMA and torch RNG are in the checkpoint, and the hint drop schedule follows the step count when the
run has ``max_steps``: a run stopped and resumed logs the same losses as one that was never stopped.
"""

from __future__ import annotations

import contextlib
import copy
import json
import math
import os
import random
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from lightning_fabric import Fabric
from safetensors.torch import load_file
from torch.utils.data import DataLoader
from torch.utils.tensorboard import SummaryWriter
from tqdm import tqdm

from ..checkpoint import (
    code_version,
    flatten_optimizer,
    latest_checkpoint,
    load_generator,
    resolve_model_path,
    save_generator,
    unflatten_optimizer,
    write_checkpoint,
)
from ..config import LoopConfig, TrainConfig, dump_yaml
from ..data.dataset import EpochSampler, PairDataset, input_channels, load_pair
from ..data.store import open_for_training
from ..errors import UserError
from ..models import create_discriminator, create_generator
from ..monitor.images import sample_grid
from ..monitor.inspect import (
    ActivationProbe,
    first_nonfinite_grad,
    first_nonfinite_module,
    grad_norms,
    layer_group,
    log_internals,
    snapshot,
    update_ratios,
)
from ..objective import Pix2PixObjective
from ..regions.palette import fit_palette

PALETTE_IMAGES = 1000  # training pairs whose region colors fit the color-class palette (about 10 s)



def lr_factor(decay: str, min_scale: float, progress: float) -> float:
    """The learning rates' multiplier at ``progress`` (0 at the start, 1 at the end of the budget) under
    ``optim.decay``: 1 throughout for "constant"; a cosine or straight fall from 1 to ``min_scale``."""
    p = min(max(progress, 0.0), 1.0)
    if decay == "cosine":
        return min_scale + (1 - min_scale) * 0.5 * (1 + math.cos(math.pi * p))
    if decay == "linear":
        return 1 - (1 - min_scale) * p
    return 1.0

class TrainingError(UserError):
    """Training cannot go on (e.g. a NaN); a checkpoint has been saved when possible."""


def pick_accelerator(name: str) -> str:
    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and not torch.cuda.is_available():
        raise TrainingError("train.device=cuda but no CUDA device is available")
    return name


def make_fabric(t: LoopConfig) -> Fabric:
    """Lightning Fabric for ``train.device/devices/num_nodes/strategy/precision``; not launched yet."""
    accelerator = pick_accelerator(t.device)
    if accelerator == "cpu" and t.precision == "16-mixed":
        raise TrainingError("train.precision=16-mixed needs a GPU; use bf16-mixed or 32-true on CPU")
    strategy = "ddp" if t.strategy == "ddp" or t.devices * t.num_nodes > 1 else "auto"
    return Fabric(accelerator=accelerator, devices=t.devices, num_nodes=t.num_nodes, strategy=strategy,
                  precision=t.precision)


class _NoWriter:
    """What ranks other than 0 get instead of a SummaryWriter: every call does nothing."""

    def __getattr__(self, name: str):
        return lambda *args, **kwargs: None


def _raise_interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def _rng_state() -> dict[str, torch.Tensor]:
    state = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state()
    return state


def psnr(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Per-image PSNR in dB for tensors in [-1, 1], (B, 3, H, W) -> (B,)."""
    mse = ((pred.clamp(-1, 1) - target) / 2).pow(2).flatten(1).mean(1)
    return 10 * torch.log10(1.0 / (mse + 1e-10))


def _widen_input(src: dict[str, torch.Tensor], dst: dict[str, torch.Tensor], src_in: int) -> dict[str, torch.Tensor]:
    """A source generator's weights for a network that takes more input channels (e.g. region -> tone encoding):
    the first convolution's (out, src_in, k, k) weight gets zero columns for the new channels, so the widened
    network starts computing exactly what the source did and learns to use the new inputs."""
    out = dict(src)
    for k, v in src.items():
        d = dst.get(k)
        if (d is not None and v.ndim == 4 and v.shape[1] == src_in and d.shape[1] > src_in
                and (v.shape[0], *v.shape[2:]) == (d.shape[0], *d.shape[2:])):
            out[k] = torch.cat([v, v.new_zeros(v.shape[0], d.shape[1] - src_in, *v.shape[2:])], 1)
    return out


class Trainer:
    def __init__(self, cfg: TrainConfig, dataset_dir: Path, run_dir: Path, resume: bool = False):
        self.cfg = cfg
        self.run_dir = run_dir
        t = cfg.train
        ckpt = latest_checkpoint(run_dir) if resume else None
        if not resume and run_dir.exists() and (run_dir / "checkpoints").exists():
            raise TrainingError(f"{run_dir} already holds a run; pass --resume to continue it or choose a new folder")
        if resume and ckpt is None:
            raise TrainingError(f"{run_dir}: nothing to resume (no checkpoint yet)")
        if t.init_from and resume:
            raise TrainingError("--init-from starts a new run; a resumed run continues from its own checkpoint")
        if t.freeze_encoder and not t.init_from:
            raise TrainingError("train.freeze_encoder needs --init-from (freezing random weights helps nothing)")

        # DDP: launch() starts the other processes (they re-run this same command) and joins the process group
        self.fabric = make_fabric(t)
        self.fabric.launch()
        self.rank, self.world = self.fabric.global_rank, self.fabric.world_size
        self.is_zero = self.fabric.is_global_zero
        self.device = self.fabric.device
        per_node = max(1, self.world // t.num_nodes)
        threads = t.threads or (max(1, (os.cpu_count() or 1) // per_node) if self.world > 1 and
                                self.device.type == "cpu" else 0)
        if threads:  # CPU DDP: the ranks share the cores instead of each starting one thread per core
            torch.set_num_threads(threads)

        torch.manual_seed(t.seed)  # the same initial weights on every rank (DDP also broadcasts rank 0's)
        random.seed(t.seed)
        np.random.seed(t.seed)

        self.store, self.data_cfg = open_for_training(dataset_dir)
        self.fingerprint = self.store.fingerprint()
        train_entries = self.store.entries("train")
        val_entries = self.store.entries("val") or train_entries
        crop = min(t.crop, self.data_cfg.size)
        enc = cfg.model.hint_encoding
        self.train_set = PairDataset(train_entries, cfg.hints, crop=crop, flip=t.flip, train=True, encoding=enc,
                                     scale=t.scale, seed=t.seed, p_tone=t.p_tone)
        batch_size = min(t.batch_size, len(self.train_set) // self.world)  # per process
        if batch_size < 1:
            raise TrainingError(f"{len(self.train_set)} training images cannot feed {self.world} processes")
        self.sampler = EpochSampler(len(self.train_set), batch_size, seed=t.seed, rank=self.rank, world=self.world)
        # Fixed validation images, the same in every run and every resume: half with hints, half without.
        val = val_entries[: t.val_images]
        self.val_hinted = PairDataset(val, cfg.hints, train=False, seed=1, hint_count=8, encoding=enc)
        self.val_plain = PairDataset(val, cfg.hints, train=False, seed=1, hint_count=0, encoding=enc)
        # a tone model is also watched on the same images given as gray pages (no hints): val/psnr_tone
        self.val_tone = (PairDataset(val, cfg.hints, train=False, seed=1, hint_count=0, encoding=enc, p_tone=1.0)
                         if enc == "tone" else None)

        m = cfg.model
        # the input channels follow from the hint encoding; recorded in the checkpoint with the other arguments
        self.g_args = {"in_channels": input_channels(enc), **m.generator.args}
        G = create_generator(m.generator.name, **self.g_args)
        multiple = getattr(G, "multiple", 1)
        if crop % multiple or self.data_cfg.size % multiple:
            raise TrainingError(
                f"crop {crop} and image size {self.data_cfg.size} must be multiples of {multiple} for this generator"
            )
        D = create_discriminator(m.discriminator.name, **m.discriminator.args) if cfg.loss.gan_weight > 0 else None
        o = cfg.optim
        lr_scale = t.finetune_lr_scale if t.init_from else 1.0
        self.frozen: list[torch.nn.Module] = []
        self.init_source: str | None = None
        if t.init_from:
            self._init_from(G, D, t.init_from, t.freeze_encoder)
        head = getattr(G, "classes", None)
        if isinstance(head, torch.nn.Module) and not bool(head.palette.abs().sum() > 0) and ckpt is None:
            # a new color-class head: its palette from the training pairs (a resumed run loads its own)
            head.palette.copy_(torch.from_numpy(fit_palette(
                [load_pair(e) for e in train_entries[:PALETTE_IMAGES]], len(head.palette), seed=t.seed)))
        opt_g = torch.optim.Adam([p for p in G.parameters() if p.requires_grad], lr=o.lr_g * lr_scale,
                                 betas=(o.beta1, o.beta2))
        # unwrapped modules: validation, EMA, inspection and checkpoints use these (rank 0 alone, no DDP sync)
        self.G_raw, self.D_raw = G, D
        # wrapped: moved to the device, DDP-synchronised when distributed, autocast by the precision plugin
        self.G, self.opt_g = self.fabric.setup(G, opt_g)
        self.D, self.opt_d = None, None
        if D is not None:
            opt_d = torch.optim.Adam(D.parameters(), lr=o.lr_d * lr_scale, betas=(o.beta1, o.beta2))
            self.D, self.opt_d = self.fabric.setup(D, opt_d)
        self.opt_g_raw, self.opt_d_raw = opt_g, (opt_d if D is not None else None)
        # each param group's starting rate: optim.decay scales these by lr_factor(progress) every step
        self.base_lrs = [[g["lr"] for g in o_.param_groups] for o_ in (opt_g, self.opt_d_raw) if o_ is not None]
        head = getattr(G, "classes", None)
        self.objective = Pix2PixObjective(self.G, self.D, cfg.loss, plain_discriminator=D,
                                          palette=head.palette if isinstance(head, torch.nn.Module) else None)
        # EMA copy of G: smoother weights for validation and export (the method's "ensembles of checkpoints")
        self.G_ema = copy.deepcopy(G).eval().requires_grad_(False) if t.ema_decay > 0 else None
        self.probe = ActivationProbe(G)
        # called with (step, validation metrics) after each validation during fit (rank 0)
        self.on_validate: Callable[[int, dict[str, float]], None] | None = None
        self.best = math.inf  # best validation score so far (mean L1 with and without hints)
        self.step = 0
        self.elapsed = 0.0  # training seconds over all sessions of this run
        self.images_seen = 0
        self._mark = time.monotonic()
        if ckpt is not None:
            self._load(ckpt)
        self.sampler.start_batch = self.step  # a resumed run continues the data order where the checkpoint was
        # its own generator: creating a loader iterator draws a seed, which must not shift the global torch RNG
        self.loader = DataLoader(self.train_set, batch_size=batch_size, sampler=self.sampler, num_workers=0,
                                 generator=torch.Generator())
        self.writer: SummaryWriter | _NoWriter = _NoWriter()
        if self.is_zero:
            run_dir.mkdir(parents=True, exist_ok=True)
            (run_dir / "config.yaml").write_text(dump_yaml(cfg))
            if ckpt is not None:
                self._forget_after(self.step)
            # purge_step: TensorBoard drops the events a killed session logged after the checkpoint it resumes from
            self.writer = SummaryWriter(str(run_dir), purge_step=self.step + 1 if ckpt is not None else None)

    def _init_from(self, G: torch.nn.Module, D: torch.nn.Module | None, source: str, freeze: int) -> None:
        """Transfer learning: G's weights from a model file or run (and D's, when the run kept one)."""
        src, meta = load_generator(source)  # a model file, a run, or "default" (the shipped model)
        state = _widen_input(src.state_dict(), G.state_dict(), int(meta["generator"]["args"].get("in_channels", 5)))
        try:
            missing, unexpected = G.load_state_dict(state, strict=False)
            # a source without a color-class head starts this run's head fresh; anything else must match
            if unexpected or any(not k.startswith("classes.") for k in missing):
                raise RuntimeError(f"missing {missing[:3]}, unexpected {unexpected[:3]}")
        except RuntimeError as e:
            raise TrainingError(f"--init-from {source}: its generator ({meta.get('generator')}) does not match this "
                                f"config's ({self.cfg.model.generator.name}, {self.g_args})") from e
        ckpt = latest_checkpoint(Path(source)) if Path(source).is_dir() else None
        if D is not None and ckpt is not None and (ckpt / "discriminator.safetensors").is_file():
            with contextlib.suppress(RuntimeError):  # another discriminator: it starts fresh, G keeps its weights
                D.load_state_dict(load_file(str(ckpt / "discriminator.safetensors")))
        self.init_source = str(resolve_model_path(source))
        if freeze:
            levels = len(getattr(G, "down", []))
            if freeze > levels:
                raise TrainingError(f"train.freeze_encoder={freeze} but the generator has {levels} encoder levels")
            self.frozen = [m for m in (getattr(G, "stem", None), *list(G.down)[:freeze]) if m is not None]
            for module in self.frozen:
                module.requires_grad_(False)

    def _train_mode(self) -> None:
        """G (and D) in training mode, except frozen encoder levels: their batch-norm statistics stay as loaded."""
        self.G.train()
        if self.D is not None:
            self.D.train()
        for module in self.frozen:
            module.eval()

    def _forget_after(self, step: int) -> None:
        """On resume: drop metrics.jsonl records a killed session wrote after the checkpoint (they are redone)."""
        path = self.run_dir / "metrics.jsonl"
        if not path.is_file():
            return
        keep = [line for line in path.read_text().splitlines() if line.strip() and json.loads(line)["step"] <= step]
        path.write_text("".join(line + "\n" for line in keep))

    # ------------------------------------------------------------------ checkpoints

    def _meta(self) -> dict[str, Any]:
        return {
            "step": self.step,
            "generator": {"name": self.cfg.model.generator.name, "args": self.g_args},
            "hint_encoding": self.cfg.model.hint_encoding,
            "config": self.cfg.model_dump(mode="json"),
            "dataset_fingerprint": self.fingerprint,
            "image_size": self.data_cfg.size,
            "world_size": self.world,
            **({"init_from": self.init_source} if self.init_source else {}),
            **code_version(),
        }

    def save(self) -> Path:
        """Write a full checkpoint (rank 0 only: the weights are the same on every rank)."""
        if not self.is_zero:
            return self.run_dir / "checkpoints"
        meta = self._meta()
        files: dict[str, tuple[dict[str, torch.Tensor], dict[str, str]]] = {
            "generator": (self.G_raw.state_dict(), {"tintline": json.dumps({"format": 1, **meta})}),
        }
        if self.G_ema is not None:
            files["generator_ema"] = (self.G_ema.state_dict(), {"tintline": json.dumps({"format": 1, **meta})})
        opt_tensors, opt_g_rest = flatten_optimizer(self.opt_g_raw, "g")
        state: dict[str, Any] = {"step": self.step, "elapsed": self.elapsed, "images_seen": self.images_seen,
                                 "best": self.best if math.isfinite(self.best) else None, "opt_g": opt_g_rest, **meta}
        if self.D_raw is not None and self.opt_d_raw is not None:
            files["discriminator"] = (self.D_raw.state_dict(), {})
            d_tensors, state["opt_d"] = flatten_optimizer(self.opt_d_raw, "d")
            opt_tensors.update(d_tensors)
        opt_tensors.update({f"rng.{k}": v for k, v in _rng_state().items()})
        files["optimizer"] = (opt_tensors, {})
        path = write_checkpoint(self.run_dir, self.step, files, state)
        save_generator(self.eval_net, self.run_dir / "model.safetensors", {**meta, "ema": self.G_ema is not None})
        return path

    @property
    def eval_net(self) -> torch.nn.Module:
        return self.G_ema if self.G_ema is not None else self.G_raw

    def _load(self, ckpt: Path) -> None:
        state = json.loads((ckpt / "state.json").read_text())
        # after fabric.setup: the weights are copied onto the device and optimizer state follows its parameters
        self.G_raw.load_state_dict(load_file(str(ckpt / "generator.safetensors")))
        if self.G_ema is not None:
            ema_file = ckpt / "generator_ema.safetensors"
            self.G_ema.load_state_dict(load_file(str(ema_file if ema_file.is_file() else
                                                     ckpt / "generator.safetensors")))
        opt = load_file(str(ckpt / "optimizer.safetensors"))
        unflatten_optimizer(self.opt_g_raw, opt, state["opt_g"], "g")
        if self.D_raw is not None and self.opt_d_raw is not None:
            if not (ckpt / "discriminator.safetensors").is_file():
                raise TrainingError(f"{ckpt}: no discriminator saved (was the run trained with gan_weight=0?)")
            self.D_raw.load_state_dict(load_file(str(ckpt / "discriminator.safetensors")))
            unflatten_optimizer(self.opt_d_raw, opt, state["opt_d"], "d")
        torch.set_rng_state(opt["rng.torch"])
        if "rng.cuda" in opt and torch.cuda.is_available():
            torch.cuda.set_rng_state(opt["rng.cuda"])
        self.step = int(state["step"])
        self.elapsed = float(state["elapsed"])
        self.images_seen = int(state.get("images_seen", 0))
        self.best = float(state["best"]) if state.get("best") is not None else math.inf

    # ------------------------------------------------------------------ validation and images

    @torch.no_grad()
    def validate(self) -> dict[str, float]:
        net = self.eval_net
        net.eval()
        out: dict[str, float] = {}
        grids = []
        for name, ds in (("hints", self.val_hinted), ("nohints", self.val_plain)):
            batch = [ds[i] for i in range(len(ds))]
            x = torch.stack([b["input"] for b in batch]).to(self.device)
            y = torch.stack([b["target"] for b in batch]).to(self.device)
            pred = net(x)
            out[f"val/l1_{name}"] = (pred - y).abs().mean().item()
            out[f"val/psnr_{name}"] = psnr(pred, y).mean().item()
            grids.append(sample_grid(x, pred, y))
        if self.val_tone is not None:  # watched, not part of the selection score
            batch = [self.val_tone[i] for i in range(len(self.val_tone))]
            pred = net(torch.stack([b["input"] for b in batch]).to(self.device))
            out["val/psnr_tone"] = psnr(pred, torch.stack([b["target"] for b in batch]).to(self.device)).mean().item()
        self._train_mode()
        for name, grid in zip(("val/samples_hints", "val/samples_nohints"), grids, strict=True):
            self.writer.add_image(name, grid, self.step, dataformats="HWC")
        score = 0.5 * (out["val/l1_hints"] + out["val/l1_nohints"])
        if score < self.best:  # keep the best generator by validation L1 (early stopping by selection)
            self.best = score
            save_generator(net, self.run_dir / "best.safetensors", {**self._meta(), "val": out})
        return out

    # ------------------------------------------------------------------ the loop

    def _fail(self, what: str, batch: dict[str, torch.Tensor], layer: str | None) -> None:
        """Stop on a NaN/Inf: save the weights as they are (to inspect them) and name the first bad layer."""
        path = self.save()
        where = f"; first non-finite value in layer {layer!r}" if layer else ""
        raise TrainingError(f"{what} at step {self.step + 1}{where}; checkpoint saved to {path}")

    def train_step(self, batch: dict[str, torch.Tensor], inspect: bool = False) -> dict[str, float]:
        batch = {k: v.to(self.device, non_blocking=True) for k, v in batch.items()}
        with self.fabric.autocast():  # mixed precision (a no-op at 32-true)
            if inspect:
                with self.probe:
                    fake = self.objective.generate(batch)  # (B, 3, H, W)
            else:
                fake = self.objective.generate(batch)
        logs: dict[str, float] = {}
        if not torch.isfinite(fake).all():
            self._fail("generator output became nan/inf", batch, first_nonfinite_module(self.G_raw, batch["input"]))
        if self.D is not None and self.opt_d is not None:
            with self.fabric.autocast():
                loss_d, ld = self.objective.d_step(batch, fake)
            if not math.isfinite(loss_d.item()):
                self._fail(f"discriminator loss became {loss_d.item()}", batch, first_nonfinite_module(
                    self.D_raw, torch.cat([batch["input"][:, :1], fake.detach()], 1)))
            self.opt_d.zero_grad(set_to_none=True)
            self.fabric.backward(loss_d)  # DDP: D's gradients are averaged over the ranks here
            self.opt_d.step()
            logs.update(ld)
        with self.fabric.autocast():
            loss_g, lg = self.objective.g_step(batch, fake)
        if not math.isfinite(loss_g.item()):
            self._fail(f"generator loss became {loss_g.item()}", batch,
                       first_nonfinite_module(self.G_raw, batch["input"]))
        self.opt_g.zero_grad(set_to_none=True)
        if self.D_raw is not None:
            self.D_raw.requires_grad_(False)  # G's step needs gradients through D, not of D
        self.fabric.backward(loss_g)
        if self.D_raw is not None:
            self.D_raw.requires_grad_(True)
        bad = first_nonfinite_grad(self.G_raw)
        if bad is not None:
            self._fail("a generator gradient became NaN/Inf", batch, bad)
        if self.cfg.optim.grad_clip > 0:
            logs["grad/norm_g"] = float(self.fabric.clip_gradients(self.G, self.opt_g,
                                                                  max_norm=self.cfg.optim.grad_clip))
        before = None
        if inspect:
            for group, norm in grad_norms(self.G_raw).items():
                logs[f"grad_norm/{group}"] = norm
            log_internals(self.writer, self.G_raw, self.probe, self.step + 1)
            before = snapshot(self.G_raw)
        self.opt_g.step()
        if before is not None:
            ratios: dict[str, list[float]] = {}
            for name, r in update_ratios(self.G_raw, before).items():
                ratios.setdefault(layer_group(name), []).append(r)
            logs.update({f"update_ratio/{g}": max(v) for g, v in ratios.items()})
            logs.update({f"dead/{n}": v for n, v in self.probe.dead.items()})
        if self.G_ema is not None:
            # warm-up: early on the average forgets fast, later it is a ~1/(1-decay)-step window
            d = min(self.cfg.train.ema_decay, (1 + self.step) / (10 + self.step))
            with torch.no_grad():
                for pe, p in zip(self.G_ema.parameters(), self.G_raw.parameters(), strict=True):
                    pe.lerp_(p, 1 - d)
                for be, b in zip(self.G_ema.buffers(), self.G_raw.buffers(), strict=True):
                    be.copy_(b)
        for i, group in enumerate(self.opt_g_raw.param_groups):
            logs[f"lr/g{i}"] = group["lr"]
        logs.update(lg)
        return logs

    def _set_lr(self, factor: float) -> None:
        for opt, bases in zip((o for o in (self.opt_g_raw, self.opt_d_raw) if o is not None), self.base_lrs,
                              strict=True):
            for group, base in zip(opt.param_groups, bases, strict=True):
                group["lr"] = base * factor

    def param_spread(self) -> float:
        """Largest difference between the ranks' sums of G's weights (0.0: in sync); every rank must call it."""
        total = torch.stack([p.detach().double().sum() for p in self.G_raw.parameters()]).sum().reshape(1)
        sums = self.fabric.all_gather(total)  # (world, 1)
        return float(sums.max() - sums.min())

    def _should_stop(self, now: float, budget: float) -> bool:
        t = self.cfg.train
        stop = now >= budget or bool(t.max_steps and self.step >= t.max_steps)
        if self.world > 1:  # rank 0's clock decides: ranks that stopped on different steps would wait forever
            stop = bool(self.fabric.broadcast(stop, src=0))
        return stop

    def fit(self) -> dict[str, Any]:
        t = self.cfg.train
        budget = t.minutes * 60.0
        start = time.monotonic()
        self._mark = start
        session_start_step = self.step
        metrics_file = (self.run_dir / "metrics.jsonl").open("a") if self.is_zero else None
        batches = iter(self.loader)
        if self.step == 0 and self.is_zero:
            first = next(iter(DataLoader(self.train_set, batch_size=self.sampler.batch_size,
                                         sampler=EpochSampler(len(self.train_set), self.sampler.batch_size,
                                                              seed=t.seed, rank=self.rank, world=self.world),
                                         generator=torch.Generator())))
            self.writer.add_image("train/inputs_at_start", sample_grid(first["input"], None, first["target"]), 0,
                                  dataformats="HWC")
        self._train_mode()
        # SIGTERM (kill, a job scheduler's stop) and SIGINT (Ctrl-C) both stop with a checkpoint; a background job
        # started from a script has SIGINT ignored, so SIGTERM is the one that reaches it
        previous = signal.signal(signal.SIGTERM, _raise_interrupt)
        bar = tqdm(total=int(budget), unit="s", desc="train", disable=not self.is_zero,
                   bar_format="{desc} {bar} {n_fmt}/{total_fmt} s {postfix}")
        window_start, window_images = time.monotonic(), 0
        last_saved = self.step
        try:
            while not self._should_stop(time.monotonic() - start, budget):
                now = time.monotonic() - start
                # denoising schedule; by steps when the run has a step budget (reproducible, resumable), else by time
                progress = self.step / t.max_steps if t.max_steps else now / budget
                d0, d1 = self.cfg.hints.drop
                self.train_set.drop = d0 + (d1 - d0) * min(1.0, progress)
                self._set_lr(lr_factor(self.cfg.optim.decay, self.cfg.optim.min_lr_scale, progress))
                batch = next(batches)
                inspect = bool(t.inspect_every) and (self.step + 1) % t.inspect_every == 0
                logs = self.train_step(batch, inspect=inspect)
                self.step += 1
                if inspect:
                    for k, v in logs.items():
                        if k.startswith(("grad_norm/", "update_ratio/", "dead/")):
                            self.writer.add_scalar(k, v, self.step)
                    logs = {k: v for k, v in logs.items() if not k.startswith(("grad_norm/", "update_ratio/", "dead/"))}
                n = batch["input"].shape[0] * self.world
                self.images_seen += n
                window_images += n
                if self.step % t.log_every == 0 or self.step == 1:
                    dt = time.monotonic() - window_start
                    record: dict[str, Any] = {
                        "step": self.step,
                        "elapsed": round(self.elapsed + time.monotonic() - self._mark, 2),
                        "images_per_s": round(window_images / max(dt, 1e-9), 3),
                        "hints/drop": round(self.train_set.drop, 4),
                        **{k: round(v, 6) for k, v in logs.items()},
                    }
                    window_start, window_images = time.monotonic(), 0
                    if self.step % t.sample_every == 0:
                        if self.world > 1:
                            record["ddp/param_spread"] = self.param_spread()
                        if self.is_zero:
                            val = self.validate()
                            record.update({k: round(v, 5) for k, v in val.items()})
                            if self.on_validate is not None:  # e.g. tune's pruning: may raise to stop the run
                                self.on_validate(self.step, val)
                        self.fabric.barrier()
                    for k, v in record.items():
                        if k != "step":
                            self.writer.add_scalar(k, v, self.step)
                    if metrics_file is not None:
                        metrics_file.write(json.dumps(record) + "\n")
                        metrics_file.flush()
                    bar.set_postfix_str(f"step {self.step} | {record['images_per_s']:.1f} img/s | "
                                        f"l1 {logs['loss/l1']:.3f}")
                tick = min(int(time.monotonic() - start), int(budget)) - bar.n
                if tick > 0:
                    bar.update(tick)  # at most once a second
                if self.step % t.ckpt_every == 0:
                    self.elapsed_until_now(start)
                    self.save()
                    last_saved = self.step
        except KeyboardInterrupt:
            self.elapsed_until_now(start)
            if self.step > last_saved:
                self.save()
            raise
        finally:
            signal.signal(signal.SIGTERM, previous)
            if metrics_file is not None:
                metrics_file.close()
            bar.close()
        self.elapsed_until_now(start)
        spread = self.param_spread() if self.world > 1 else None
        final: dict[str, float] = {}
        path = self.run_dir / "checkpoints"
        if self.is_zero:
            final = self.validate()
            record = {"step": self.step, "elapsed": round(self.elapsed, 2), "final": True, "world_size": self.world,
                      **({"ddp/param_spread": spread} if spread is not None else {}),
                      **{k: round(v, 5) for k, v in final.items()}}
            with (self.run_dir / "metrics.jsonl").open("a") as f:
                f.write(json.dumps(record) + "\n")
            path = self.save()
            hparams = {"generator": self.cfg.model.generator.name, "hint_encoding": self.cfg.model.hint_encoding,
                       "gan_mode": self.cfg.loss.gan_mode, "gan_weight": self.cfg.loss.gan_weight,
                       "lr_g": self.cfg.optim.lr_g, "lr_d": self.cfg.optim.lr_d, "batch_size": t.batch_size,
                       "crop": t.crop, "devices": self.world, **{f"g.{k}": str(v) for k, v in self.g_args.items()}}
            self.writer.add_hparams(hparams, {f"hparam/{k}": v for k, v in final.items()}, run_name="hparams")
        self.fabric.barrier()
        self.probe.remove()
        self.writer.flush()
        self.writer.close()
        self.store.close()
        return {"step": self.step, "seconds": time.monotonic() - start, "checkpoint": str(path),
                "steps_this_session": self.step - session_start_step, "rank": self.rank, **final}

    def elapsed_until_now(self, start: float) -> None:
        # elapsed accumulates across sessions; called right before each save
        now = time.monotonic()
        self.elapsed += now - self._mark
        self._mark = now


def train(cfg: TrainConfig, dataset_dir: Path, run_dir: Path, resume: bool = False) -> dict[str, Any]:
    try:
        trainer = Trainer(cfg, dataset_dir, run_dir, resume=resume)
    except UserError:
        raise
    except ValueError as e:  # e.g. a crop the network cannot take, reported by torch or a module
        raise TrainingError(str(e)) from e
    return trainer.fit()
