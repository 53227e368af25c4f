"""Load test of ``tintline serve`` on loopback: N concurrent clients posting line art for a bounded time.

Starts the server itself (a subprocess on 127.0.0.1, an ephemeral port), posts the same generated line art with a few
hints from ``--clients`` concurrent clients for ``--seconds`` (and at most ``--max-requests``), then prints the
machine, the command and the numbers: requests/s, p50/p95 latency of successful requests, errors by status.
Target from issue 7 (2 CPU cores, 512x512): >= 10 requests/s, p95 <= 1 s, no errors besides deliberate 503s.

    .venv/bin/python benchmarks/load_serve.py                       # region-fill, 8 clients, 30 s, 512x512
    .venv/bin/python benchmarks/load_serve.py runs/exp1 --seconds 60 --size 768

Clients and server share the machine's cores: the numbers are for the pair, on loopback.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import os
import platform
import shlex
import socket
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import cv2
import httpx
import numpy as np
from machine import cpu_model  # benchmarks/machine.py (scripts run from their folder)
from PIL import Image


def line_art(size: int) -> bytes:
    """Closed shapes on white paper (PNG bytes), deterministic."""
    a = np.full((size, size), 255, np.uint8)
    s = size / 512
    cv2.rectangle(a, (int(40 * s), int(60 * s)), (int(250 * s), int(300 * s)), 0, max(1, int(3 * s)))
    cv2.circle(a, (int(370 * s), int(150 * s)), int(90 * s), 0, max(1, int(3 * s)))
    cv2.ellipse(a, (int(260 * s), int(410 * s)), (int(200 * s), int(60 * s)), 0, 0, 360, 0, max(1, int(3 * s)))
    cv2.line(a, (0, int(480 * s)), (size, int(480 * s)), 0, max(1, int(3 * s)))
    buf = io.BytesIO()
    Image.fromarray(a).save(buf, format="PNG")
    return buf.getvalue()


def hints(size: int) -> str:
    s = size / 512
    return json.dumps({
        "points": [{"x": 140 * s, "y": 180 * s, "color": "#e8433a", "radius": 6 * s},
                   {"x": 370 * s, "y": 150 * s, "color": "#f7d84a", "radius": 6 * s}],
        "strokes": [{"points": [[150 * s, 410 * s], [360 * s, 415 * s]], "color": "#3a8ee8", "width": 8 * s}],
    })


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


async def run_load(url: str, clients: int, seconds: float, max_requests: int, image: bytes, hint_json: str,
                   model: str) -> dict:
    latencies: list[float] = []
    statuses: Counter = Counter()
    exceptions: Counter = Counter()
    sent = 0
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=url, timeout=60, limits=limits) as client:
        r = await client.post("/api/colorize", files={"image": ("a.png", image)},
                              data={"hints": hint_json, "model": model})  # warm-up, not counted
        if r.status_code != 200:
            raise SystemExit(f"warm-up request failed: {r.status_code} {r.text[:200]}")
        deadline = time.perf_counter() + seconds

        async def worker() -> None:
            nonlocal sent
            while time.perf_counter() < deadline and sent < max_requests:
                sent += 1
                t0 = time.perf_counter()
                try:
                    r = await client.post("/api/colorize", files={"image": ("a.png", image)},
                                          data={"hints": hint_json, "model": model})
                except httpx.HTTPError as e:
                    exceptions[type(e).__name__] += 1
                    continue
                statuses[r.status_code] += 1
                if r.status_code == 200:
                    latencies.append(time.perf_counter() - t0)
                elif r.status_code == 503:
                    await asyncio.sleep(min(5.0, float(r.headers.get("retry-after", "1"))))

        t_start = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(clients)))
        elapsed = time.perf_counter() - t_start
    return {"elapsed_s": elapsed, "latencies": latencies, "statuses": dict(statuses), "exceptions": dict(exceptions)}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("model", nargs="?", default="region-fill", help="model to serve (default region-fill)")
    p.add_argument("--clients", type=int, default=8, help="concurrent clients (default 8)")
    p.add_argument("--seconds", type=float, default=30.0, help="duration (default 30)")
    p.add_argument("--max-requests", type=int, default=100_000, help="stop after this many requests")
    p.add_argument("--size", type=int, default=512, help="side of the square input (default 512)")
    p.add_argument("--queue-size", type=int, default=8, help="server queue size (default 8)")
    p.add_argument("--timeout", type=float, default=30.0, help="server per-request time limit (default 30)")
    p.add_argument("--json", help="also write the results to this JSON file")
    a = p.parse_args(argv)
    if not (1 <= a.clients <= 256 and 0 < a.seconds <= 600 and 16 <= a.size <= 4096):
        p.error("bounded: 1-256 clients, at most 600 s, size 16-4096")

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    server_cmd = [sys.executable, "-m", "tintline.cli", "serve", a.model, "--host", "127.0.0.1", "--port", str(port),
                  "--queue-size", str(a.queue_size), "--timeout", str(a.timeout)]
    server = subprocess.Popen(server_cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 120
        while True:
            if server.poll() is not None:
                print(server.stdout.read() if server.stdout else "", file=sys.stderr)
                raise SystemExit("the server exited before it was ready")
            try:
                models = httpx.get(f"{url}/api/models", timeout=2).json()
                break
            except httpx.HTTPError:
                if time.monotonic() > deadline:
                    raise SystemExit("the server did not come up within 120 s") from None
                time.sleep(0.2)
        model_name = models["default"]
        res = asyncio.run(run_load(url, a.clients, a.seconds, a.max_requests, line_art(a.size), hints(a.size),
                                   model_name))
    finally:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()

    lat = res["latencies"]
    ok = res["statuses"].get(200, 0)
    rps = ok / res["elapsed_s"]
    p50, p95 = percentile(lat, 50), percentile(lat, 95)
    bad = {s: n for s, n in res["statuses"].items() if s not in (200, 503)}
    affinity = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    print(f"machine: {cpu_model()}, {os.cpu_count()} CPUs ({affinity} usable), {platform.system()} "
          f"{platform.release()}, Python {platform.python_version()}")
    print(f"command: {shlex.join([Path(sys.executable).name, *sys.argv])}")
    print(f"server:  {shlex.join(['tintline', *server_cmd[3:]])}")
    print(f"model: {model_name} ({next(m['description'] for m in models['models'] if m['name'] == model_name)}); "
          f"input {a.size}x{a.size} PNG with 3 hints; {a.clients} clients for {res['elapsed_s']:.1f} s")
    print(f"requests: {sum(res['statuses'].values())} answered, {ok} ok; {rps:.1f} requests/s")
    print(f"latency (ok): p50 {p50 * 1000:.0f} ms, p95 {p95 * 1000:.0f} ms, max {max(lat, default=0) * 1000:.0f} ms")
    print(f"status counts: {dict(sorted(res['statuses'].items()))}; client exceptions: {res['exceptions'] or 0}")
    target = rps >= 10 and p95 <= 1.0 and not bad and not res["exceptions"]
    print(f"target (>= 10 req/s, p95 <= 1 s, no errors besides 503): {'met' if target else 'NOT met'}")
    if a.json:
        Path(a.json).write_text(json.dumps({
            "machine": {"cpu": cpu_model(), "cpus": os.cpu_count(), "usable": affinity},
            "command": sys.argv, "model": model_name, "size": a.size, "clients": a.clients,
            "elapsed_s": res["elapsed_s"], "requests_per_s": rps, "p50_s": p50, "p95_s": p95,
            "statuses": res["statuses"], "exceptions": res["exceptions"]}, indent=1))
    return 1 if bad or res["exceptions"] else 0


if __name__ == "__main__":
    sys.exit(main())
