"""The network's speed: PyTorch eager vs onnxruntime, and its GFLOP/s against this CPU's plain matrix multiply.

    python benchmarks/onnx_speed.py [MODEL] [--sizes 512 2048] [--repeats 5]

For the model (default: the shipped one) and the pix2pix reference configuration (configs/pix2pix.yaml's U-Net,
untrained: speed does not depend on the weights), exported to ONNX in a temporary folder, each input size is run
``repeats`` times after a warm-up by PyTorch (eager, float32, no grad) and by onnxruntime (CPU provider); the
median is reported. The network's FLOPs are counted from its convolutions (2 x multiply-adds, forward hooks), and
set against the median rate of a float32 GEMM of 1024 x 1024 matrices in PyTorch (the best case of this CPU).
Prints a Markdown table; docs/benchmarks.md records it.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
from machine import cpu_model  # benchmarks/machine.py (scripts run from their folder)
from torch import nn

ROOT = Path(__file__).resolve().parents[1]


def gemm_gflops(n: int = 1024, repeats: int = 10) -> float:
    a, b = torch.randn(n, n), torch.randn(n, n)
    a @ b
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        a @ b
        times.append(time.perf_counter() - t)
    return 2 * n**3 / statistics.median(times) / 1e9


def conv_flops(net: nn.Module, x: torch.Tensor) -> float:
    """2 x multiply-adds of every convolution (transposed ones included) for input x."""
    total = 0.0

    def hook(m: nn.Module, inp: tuple, out: torch.Tensor) -> None:
        nonlocal total
        k = m.kernel_size[0] * m.kernel_size[1] * (m.in_channels // m.groups)
        if isinstance(m, nn.ConvTranspose2d):  # every input pixel scatters into k outputs
            total += 2.0 * inp[0].numel() // inp[0].shape[1] * m.in_channels * m.out_channels \
                * m.kernel_size[0] * m.kernel_size[1] / m.groups
        else:
            total += 2.0 * out.numel() * k

    hooks = [m.register_forward_hook(hook) for m in net.modules() if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d))]
    with torch.no_grad():
        net.fill(x) if hasattr(net, "fill") else net(x)
    for h in hooks:
        h.remove()
    return total


def timed(fn, repeats: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("model", nargs="?", default="default")
    ap.add_argument("--sizes", type=int, nargs="+", default=[512, 2048])
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    from tintline.checkpoint import load_generator, save_generator
    from tintline.config import load_train_config
    from tintline.data.dataset import input_channels
    from tintline.models import create_generator
    from tintline.onnx_model import OnnxNet, export_onnx

    torch.set_grad_enabled(False)
    peak = gemm_gflops()
    print(f"machine: {cpu_model()}, {torch.get_num_threads()} threads\ncommand: {' '.join(sys.argv)}\n"
          f"float32 GEMM 1024³: {peak:.1f} GFLOP/s\n")
    print("| network | input | FLOPs | PyTorch ms | onnxruntime ms | PyTorch GFLOP/s (% of GEMM) | ORT speed-up |")
    print("|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        cfg = load_train_config(ROOT / "configs" / "pix2pix.yaml")
        enc = cfg.model.hint_encoding
        ref_args = {"in_channels": input_channels(enc), **cfg.model.generator.args}
        ref_path = Path(tmp) / "pix2pix.safetensors"
        save_generator(create_generator(cfg.model.generator.name, **ref_args).eval(), ref_path,
                       {"generator": {"name": cfg.model.generator.name, "args": ref_args}, "hint_encoding": enc})
        for label, spec in ((str(args.model), args.model), ("pix2pix (reference)", ref_path)):
            net, meta = load_generator(spec)
            onnx_path = export_onnx(spec, Path(tmp) / "m.onnx")
            ort = OnnxNet(onnx_path)
            c = int(meta["generator"]["args"].get("in_channels", 5))
            for side in args.sizes:
                side = side // net.multiple * net.multiple
                x = torch.rand(1, c, side, side) * 2 - 1
                flops = conv_flops(net, x)
                t_pt = timed(lambda x=x, net=net: net.fill(x), args.repeats)
                t_ort = timed(lambda x=x, ort=ort: ort.fill(x), args.repeats)
                rate = flops / t_pt / 1e9
                print(f"| {label} | {side}² | {flops / 1e9:.1f} G | {t_pt * 1e3:.0f} | {t_ort * 1e3:.0f} |"
                      f" {rate:.1f} ({100 * rate / peak:.0f} %) | {t_pt / t_ort:.2f}x |", flush=True)


if __name__ == "__main__":
    main()
