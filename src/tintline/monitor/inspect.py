"""Looking inside a network while it trains: histograms, dead units, gradient norms, update/weight ratios.

The method's checklist (part 4): weights and biases per layer, pre-activations, dead-node counts, per-layer
gradients (vanishing if they shrink toward the input), and the update-to-weight ratio (~1e-3 is healthy).
"""

from __future__ import annotations

from collections import defaultdict

import torch
from torch import nn

ACTIVATIONS = (nn.ReLU, nn.LeakyReLU, nn.PReLU)


def layer_group(name: str) -> str:
    """Parameter name -> its group for gradient norms: 'down.3.1.weight' -> 'down.3'."""
    parts = name.split(".")
    return ".".join(parts[:2]) if len(parts) > 2 and parts[1].isdigit() else parts[0]


class ActivationProbe:
    """Forward hooks on every activation module; records pre-activations and dead units while armed.

    A unit (channel) is dead on a batch when its activation input is <= 0 at every position of every sample: a ReLU
    then outputs zero and passes no gradient. Reported per activation module as the fraction of dead channels.
    """

    def __init__(self, model: nn.Module):
        self.armed = False
        self.pre: dict[str, torch.Tensor] = {}
        self.dead: dict[str, float] = {}
        self._handles = [m.register_forward_hook(self._hook(n)) for n, m in model.named_modules()
                         if isinstance(m, ACTIVATIONS)]

    def _hook(self, name: str):
        def fn(module: nn.Module, inputs: tuple[torch.Tensor, ...], output: torch.Tensor) -> None:
            if not self.armed:
                return
            x = inputs[0].detach()  # (B, C, H, W) pre-activation
            alive = (x > 0).flatten(2).any(dim=2).any(dim=0)  # (C,)
            self.dead[name] = 1.0 - alive.float().mean().item()
            flat = x.flatten()
            self.pre[name] = flat[torch.randint(0, flat.numel(), (min(4096, flat.numel()),))].float().cpu()

        return fn

    def __enter__(self) -> ActivationProbe:
        self.armed = True
        self.pre.clear()
        self.dead.clear()
        return self

    def __exit__(self, *exc: object) -> None:
        self.armed = False

    def remove(self) -> None:
        for h in self._handles:
            h.remove()


def grad_norms(model: nn.Module) -> dict[str, float]:
    """L2 norm of the gradients per layer group (encoder levels, decoder levels, ...)."""
    sq: dict[str, float] = defaultdict(float)
    for name, p in model.named_parameters():
        if p.grad is not None:
            sq[layer_group(name)] += float(p.grad.detach().float().pow(2).sum())
    return {k: v**0.5 for k, v in sq.items()}


def snapshot(model: nn.Module) -> dict[str, torch.Tensor]:
    return {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}


def update_ratios(model: nn.Module, before: dict[str, torch.Tensor]) -> dict[str, float]:
    """||Δw|| / ||w|| per weight tensor after an optimizer step (biases left out: their norms are tiny)."""
    out = {}
    for n, p in model.named_parameters():
        if n in before and p.dim() > 1:
            out[n] = float((p.detach() - before[n]).norm() / (before[n].norm() + 1e-12))
    return out


def first_nonfinite_module(model: nn.Module, x: torch.Tensor) -> str | None:
    """Run ``model(x)`` with hooks on every leaf module; the name of the first whose output is NaN/Inf."""
    found: list[str] = []
    handles = []
    for name, m in model.named_modules():
        if len(list(m.children())) == 0:
            def hook(mod, inp, out, name=name):
                if not found and torch.is_tensor(out) and not torch.isfinite(out).all():
                    found.append(name)
            handles.append(m.register_forward_hook(hook))
    try:
        with torch.no_grad():
            model(x)
    finally:
        for h in handles:
            h.remove()
    return found[0] if found else None


def first_nonfinite_grad(model: nn.Module) -> str | None:
    """Parameters are listed input-to-output; the first with a NaN/Inf gradient."""
    for n, p in model.named_parameters():
        if p.grad is not None and not torch.isfinite(p.grad).all():
            return n
    return None


def log_internals(writer, model: nn.Module, probe: ActivationProbe, step: int, prefix: str = "G") -> None:
    """Histograms of weights, biases, gradients and pre-activations (dead-unit fractions go to scalars)."""
    for n, p in model.named_parameters():
        kind = "bias" if n.endswith("bias") else "weight"
        writer.add_histogram(f"{prefix}/{kind}/{n}", p.detach().float().cpu(), step)
        if p.grad is not None:
            writer.add_histogram(f"{prefix}/grad/{n}", p.grad.detach().float().cpu(), step)
    for n, v in probe.pre.items():
        writer.add_histogram(f"{prefix}/preact/{n}", v, step)
