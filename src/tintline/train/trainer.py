"""The training loop: devices, optimizers, the time budget, logging, checkpoints and resume.

It owns no loss (see :mod:`tintline.objective`) and no architecture (see :mod:`tintline.models`).
"""

from __future__ import annotations

import copy
import json
import math
import random
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file
from torch.utils.data import DataLoader
from torch.utils.tensorboard import SummaryWriter
from tqdm import tqdm

from ..checkpoint import (
    code_version,
    flatten_optimizer,
    latest_checkpoint,
    save_generator,
    unflatten_optimizer,
    write_checkpoint,
)
from ..config import TrainConfig, dump_yaml
from ..data.dataset import PairDataset, input_channels
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


class TrainingError(UserError):
    """Training cannot go on (e.g. a NaN); a checkpoint has been saved when possible."""


def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise TrainingError("train.device=cuda but no CUDA device is available")
    return torch.device(name)


def _raise_interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def _batches(loader: DataLoader) -> Iterator[dict[str, torch.Tensor]]:
    while True:  # epochs forever; the loop stops on the time or step budget
        yield from loader


def _rng_state() -> dict[str, torch.Tensor]:
    state = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state()
    return state


def psnr(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Per-image PSNR in dB for tensors in [-1, 1], (B, 3, H, W) -> (B,)."""
    mse = ((pred.clamp(-1, 1) - target) / 2).pow(2).flatten(1).mean(1)
    return 10 * torch.log10(1.0 / (mse + 1e-10))


class Trainer:
    def __init__(self, cfg: TrainConfig, dataset_dir: Path, run_dir: Path, resume: bool = False):
        self.cfg = cfg
        self.run_dir = run_dir
        t = cfg.train
        if t.threads:
            torch.set_num_threads(t.threads)
        self.device = pick_device(t.device)
        ckpt = latest_checkpoint(run_dir) if resume else None
        if not resume and run_dir.exists() and (run_dir / "checkpoints").exists():
            raise TrainingError(f"{run_dir} already holds a run; pass --resume to continue it or choose a new folder")
        if resume and ckpt is None:
            raise TrainingError(f"{run_dir}: nothing to resume (no checkpoint yet)")

        torch.manual_seed(t.seed)
        random.seed(t.seed)
        np.random.seed(t.seed)

        self.store, self.data_cfg = open_for_training(dataset_dir)
        self.fingerprint = self.store.fingerprint()
        train_entries = self.store.entries("train")
        val_entries = self.store.entries("val") or train_entries
        crop = min(t.crop, self.data_cfg.size)
        enc = cfg.model.hint_encoding
        self.train_set = PairDataset(train_entries, cfg.hints, crop=crop, flip=t.flip, train=True, encoding=enc,
                                     scale=t.scale)
        self.loader = DataLoader(self.train_set, batch_size=min(t.batch_size, len(self.train_set)), shuffle=True,
                                 drop_last=True, num_workers=0)
        # Fixed validation images, the same in every run and every resume: half with hints, half without.
        val = val_entries[: t.val_images]
        self.val_hinted = PairDataset(val, cfg.hints, train=False, seed=1, hint_count=8, encoding=enc)
        self.val_plain = PairDataset(val, cfg.hints, train=False, seed=1, hint_count=0, encoding=enc)

        m = cfg.model
        # the input channels follow from the hint encoding; recorded in the checkpoint with the other arguments
        self.g_args = {"in_channels": input_channels(enc), **m.generator.args}
        self.G = create_generator(m.generator.name, **self.g_args).to(self.device)
        multiple = getattr(self.G, "multiple", 1)
        if crop % multiple or self.data_cfg.size % multiple:
            raise TrainingError(
                f"crop {crop} and image size {self.data_cfg.size} must be multiples of {multiple} for this generator"
            )
        self.D = (create_discriminator(m.discriminator.name, **m.discriminator.args).to(self.device)
                  if cfg.loss.gan_weight > 0 else None)
        o = cfg.optim
        self.opt_g = torch.optim.Adam(self.G.parameters(), lr=o.lr_g, betas=(o.beta1, o.beta2))
        self.opt_d = (torch.optim.Adam(self.D.parameters(), lr=o.lr_d, betas=(o.beta1, o.beta2))
                      if self.D is not None else None)
        self.objective = Pix2PixObjective(self.G, self.D, cfg.loss)
        # EMA copy of G: smoother weights for validation and export (the method's "ensembles of checkpoints")
        self.G_ema = copy.deepcopy(self.G).eval().requires_grad_(False) if t.ema_decay > 0 else None
        self.probe = ActivationProbe(self.G)
        self.best = math.inf  # best validation score so far (mean L1 with and without hints)
        self.step = 0
        self.elapsed = 0.0  # training seconds over all sessions of this run
        self.images_seen = 0
        self._mark = time.monotonic()
        if ckpt is not None:
            self._load(ckpt)
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / "config.yaml").write_text(dump_yaml(cfg))
        self.writer = SummaryWriter(str(run_dir))

    # ------------------------------------------------------------------ checkpoints

    def _meta(self) -> dict[str, Any]:
        return {
            "step": self.step,
            "generator": {"name": self.cfg.model.generator.name, "args": self.g_args},
            "hint_encoding": self.cfg.model.hint_encoding,
            "config": self.cfg.model_dump(mode="json"),
            "dataset_fingerprint": self.fingerprint,
            "image_size": self.data_cfg.size,
            **code_version(),
        }

    def save(self) -> Path:
        meta = self._meta()
        files: dict[str, tuple[dict[str, torch.Tensor], dict[str, str]]] = {
            "generator": (self.G.state_dict(), {"tintline": json.dumps({"format": 1, **meta})}),
        }
        if self.G_ema is not None:
            files["generator_ema"] = (self.G_ema.state_dict(), {"tintline": json.dumps({"format": 1, **meta})})
        opt_tensors, opt_g_rest = flatten_optimizer(self.opt_g, "g")
        state: dict[str, Any] = {"step": self.step, "elapsed": self.elapsed, "images_seen": self.images_seen,
                                 "best": self.best if math.isfinite(self.best) else None, "opt_g": opt_g_rest, **meta}
        if self.D is not None and self.opt_d is not None:
            files["discriminator"] = (self.D.state_dict(), {})
            d_tensors, state["opt_d"] = flatten_optimizer(self.opt_d, "d")
            opt_tensors.update(d_tensors)
        opt_tensors.update({f"rng.{k}": v for k, v in _rng_state().items()})
        files["optimizer"] = (opt_tensors, {})
        path = write_checkpoint(self.run_dir, self.step, files, state)
        save_generator(self.eval_net, self.run_dir / "model.safetensors", {**meta, "ema": self.G_ema is not None})
        return path

    @property
    def eval_net(self) -> torch.nn.Module:
        return self.G_ema if self.G_ema is not None else self.G

    def _load(self, ckpt: Path) -> None:
        state = json.loads((ckpt / "state.json").read_text())
        self.G.load_state_dict(load_file(str(ckpt / "generator.safetensors")))
        if self.G_ema is not None:
            ema_file = ckpt / "generator_ema.safetensors"
            self.G_ema.load_state_dict(load_file(str(ema_file if ema_file.is_file() else
                                                     ckpt / "generator.safetensors")))
        opt = load_file(str(ckpt / "optimizer.safetensors"))
        unflatten_optimizer(self.opt_g, opt, state["opt_g"], "g")
        if self.D is not None and self.opt_d is not None:
            if not (ckpt / "discriminator.safetensors").is_file():
                raise TrainingError(f"{ckpt}: no discriminator saved (was the run trained with gan_weight=0?)")
            self.D.load_state_dict(load_file(str(ckpt / "discriminator.safetensors")))
            unflatten_optimizer(self.opt_d, opt, state["opt_d"], "d")
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
        self.G.train()
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
        if inspect:
            with self.probe:
                fake = self.objective.generate(batch)  # (B, 3, H, W)
        else:
            fake = self.objective.generate(batch)
        logs: dict[str, float] = {}
        if not torch.isfinite(fake).all():
            self._fail("generator output became nan/inf", batch, first_nonfinite_module(self.G, batch["input"]))
        if self.D is not None and self.opt_d is not None:
            loss_d, ld = self.objective.d_step(batch, fake)
            if not math.isfinite(loss_d.item()):
                self._fail(f"discriminator loss became {loss_d.item()}", batch,
                           first_nonfinite_module(self.D, torch.cat([batch["input"][:, :1], fake.detach()], 1)))
            self.opt_d.zero_grad(set_to_none=True)
            loss_d.backward()
            self.opt_d.step()
            logs.update(ld)
        loss_g, lg = self.objective.g_step(batch, fake)
        if not math.isfinite(loss_g.item()):
            self._fail(f"generator loss became {loss_g.item()}", batch, first_nonfinite_module(self.G, batch["input"]))
        self.opt_g.zero_grad(set_to_none=True)
        if self.D is not None:
            self.D.requires_grad_(False)  # G's step needs gradients through D, not of D
        loss_g.backward()
        if self.D is not None:
            self.D.requires_grad_(True)
        bad = first_nonfinite_grad(self.G)
        if bad is not None:
            self._fail("a generator gradient became NaN/Inf", batch, bad)
        if self.cfg.optim.grad_clip > 0:
            logs["grad/norm_g"] = float(torch.nn.utils.clip_grad_norm_(self.G.parameters(), self.cfg.optim.grad_clip))
        before = None
        if inspect:
            for group, norm in grad_norms(self.G).items():
                logs[f"grad_norm/{group}"] = norm
            log_internals(self.writer, self.G, self.probe, self.step + 1)
            before = snapshot(self.G)
        self.opt_g.step()
        if before is not None:
            ratios: dict[str, list[float]] = {}
            for name, r in update_ratios(self.G, before).items():
                ratios.setdefault(layer_group(name), []).append(r)
            logs.update({f"update_ratio/{g}": max(v) for g, v in ratios.items()})
            logs.update({f"dead/{n}": v for n, v in self.probe.dead.items()})
        if self.G_ema is not None:
            # warm-up: early on the average forgets fast, later it is a ~1/(1-decay)-step window
            d = min(self.cfg.train.ema_decay, (1 + self.step) / (10 + self.step))
            with torch.no_grad():
                for pe, p in zip(self.G_ema.parameters(), self.G.parameters(), strict=True):
                    pe.lerp_(p, 1 - d)
                for be, b in zip(self.G_ema.buffers(), self.G.buffers(), strict=True):
                    be.copy_(b)
        for i, group in enumerate(self.opt_g.param_groups):
            logs[f"lr/g{i}"] = group["lr"]
        logs.update(lg)
        return logs

    def fit(self) -> dict[str, Any]:
        t = self.cfg.train
        budget = t.minutes * 60.0
        start = time.monotonic()
        self._mark = start
        session_start_step = self.step
        metrics_file = (self.run_dir / "metrics.jsonl").open("a")
        batches = _batches(self.loader)
        if self.step == 0:
            first = next(iter(self.loader))
            self.writer.add_image("train/inputs_at_start", sample_grid(first["input"], None, first["target"]), 0,
                                  dataformats="HWC")
        self.G.train()
        if self.D is not None:
            self.D.train()
        # SIGTERM (kill, a job scheduler's stop) and SIGINT (Ctrl-C) both stop with a checkpoint; a background job
        # started from a script has SIGINT ignored, so SIGTERM is the one that reaches it
        previous = signal.signal(signal.SIGTERM, _raise_interrupt)
        bar = tqdm(total=int(budget), unit="s", desc="train", bar_format="{desc} {bar} {n_fmt}/{total_fmt} s {postfix}")
        window_start, window_images = time.monotonic(), 0
        last_saved = self.step
        try:
            while True:
                now = time.monotonic() - start
                if now >= budget or (t.max_steps and self.step >= t.max_steps):
                    break
                progress = now / budget if not t.max_steps else max(now / budget, self.step / t.max_steps)
                d0, d1 = self.cfg.hints.drop
                self.train_set.drop = d0 + (d1 - d0) * min(1.0, progress)  # denoising schedule
                batch = next(batches)
                inspect = bool(t.inspect_every) and (self.step + 1) % t.inspect_every == 0
                logs = self.train_step(batch, inspect=inspect)
                self.step += 1
                if inspect:
                    for k, v in logs.items():
                        if k.startswith(("grad_norm/", "update_ratio/", "dead/")):
                            self.writer.add_scalar(k, v, self.step)
                    logs = {k: v for k, v in logs.items() if not k.startswith(("grad_norm/", "update_ratio/", "dead/"))}
                n = batch["input"].shape[0]
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
                        record.update({k: round(v, 5) for k, v in self.validate().items()})
                    for k, v in record.items():
                        if k != "step":
                            self.writer.add_scalar(k, v, self.step)
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
            metrics_file.close()
            bar.close()
        self.elapsed_until_now(start)
        final = self.validate()
        record = {"step": self.step, "elapsed": round(self.elapsed, 2), "final": True,
                  **{k: round(v, 5) for k, v in final.items()}}
        (self.run_dir / "metrics.jsonl").open("a").write(json.dumps(record) + "\n")
        path = self.save()
        hparams = {"generator": self.cfg.model.generator.name, "hint_encoding": self.cfg.model.hint_encoding,
                   "gan_mode": self.cfg.loss.gan_mode, "gan_weight": self.cfg.loss.gan_weight,
                   "lr_g": self.cfg.optim.lr_g, "lr_d": self.cfg.optim.lr_d, "batch_size": t.batch_size,
                   "crop": t.crop, **{f"g.{k}": str(v) for k, v in self.g_args.items()}}
        self.writer.add_hparams(hparams, {f"hparam/{k}": v for k, v in final.items()}, run_name="hparams")
        self.probe.remove()
        self.writer.flush()
        self.writer.close()
        self.store.close()
        return {"step": self.step, "seconds": time.monotonic() - start, "checkpoint": str(path),
                "steps_this_session": self.step - session_start_step, **final}

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
