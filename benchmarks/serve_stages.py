"""Where one 512x512 request's time goes inside ``tintline serve``, stage by stage, with alternatives side by side.

Runs in one process (ratios are what compare: absolute CPU speed varies between processes): decode, normalize,
network forward (eager, channels_last, and a traced + frozen graph), output PNG encode (Pillow and OpenCV), the
full ``colorize_image`` path. Prints the machine, the command and the median of ``--repeat`` runs per stage.

    .venv/bin/python benchmarks/serve_stages.py                 # the shipped model
    .venv/bin/python benchmarks/serve_stages.py runs/exp1 --size 768
"""

from __future__ import annotations

import argparse
import io
import platform
import shlex
import statistics
import sys
import time

import cv2
import numpy as np
import torch
from load_serve import hints, line_art  # benchmarks/load_serve.py: the same request the load test sends
from machine import cpu_model
from PIL import Image

from tintline.data.hints import validate_hints
from tintline.data.imageio import Limits, decode_image, encode_png
from tintline.data.lineart import normalize_input
from tintline.inference import load_colorizer


def median_ms(fn, repeat: int) -> float:
    fn()  # warm-up (allocations, oneDNN primitive caches)
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1000)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model", nargs="?", default="default")
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--repeat", type=int, default=30)
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    a = ap.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)
    import json

    col = load_colorizer(a.model)
    data, h = line_art(a.size), validate_hints(json.loads(hints(a.size)))
    img = decode_image(data, Limits())
    rows: list[tuple[str, float]] = []
    rows.append(("decode PNG", median_ms(lambda: decode_image(data, Limits()), a.repeat)))
    rows.append(("normalize_input", median_ms(lambda: normalize_input(img), a.repeat)))
    rows.append(("colorize_image (whole path)", median_ms(lambda: col.colorize_image(img, h), a.repeat)))

    net = col.net
    side = col.max_side
    x = torch.zeros(1, net.down[0][0].in_channels if hasattr(net, "down") else 9, side, side)
    with torch.no_grad():
        rows.append((f"network eager {side}x{side}", median_ms(lambda: net(x), a.repeat)))
        net_cl = net.to(memory_format=torch.channels_last)
        x_cl = x.to(memory_format=torch.channels_last)
        rows.append(("network channels_last", median_ms(lambda: net_cl(x_cl), a.repeat)))
        net.to(memory_format=torch.contiguous_format)
        frozen = torch.jit.optimize_for_inference(torch.jit.freeze(torch.jit.trace(net.eval(), x)))
        rows.append(("network traced + frozen (oneDNN)", median_ms(lambda: frozen(x), a.repeat)))

    rgb = np.asarray(col.colorize_image(img, h))
    rows.append(("encode PNG Pillow level 1", median_ms(lambda: Image.fromarray(rgb).save(
        io.BytesIO(), format="PNG", compress_level=1), a.repeat)))
    bgr = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)
    rows.append(("encode PNG OpenCV level 1", median_ms(lambda: cv2.imencode(
        ".png", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_PNG_COMPRESSION, 1]), a.repeat)))
    rows.append(("encode_png (what serve uses)", median_ms(lambda: encode_png(rgb), a.repeat)))
    sizes = {"Pillow": len(_pil(rgb)), "OpenCV": len(cv2.imencode(".png", bgr, [cv2.IMWRITE_PNG_COMPRESSION, 1])[1]),
             "encode_png": len(encode_png(rgb))}

    print(f"machine: {cpu_model()}, {torch.get_num_threads()} torch threads, Python {platform.python_version()}, "
          f"torch {torch.__version__}")
    print(f"command: {shlex.join([sys.executable, *sys.argv])}")
    print(f"model: {a.model}, input {a.size}x{a.size}, median of {a.repeat}")
    for name, ms in rows:
        print(f"  {name:<36} {ms:8.1f} ms")
    print(f"  PNG bytes: {sizes}")


def _pil(rgb: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="PNG", compress_level=1)
    return buf.getvalue()


if __name__ == "__main__":
    main()
