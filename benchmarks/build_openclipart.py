"""Dataset build speed on the whole openclipart corpus: raw files -> training-ready pairs, then a rebuild.

Runs the user's commands in a fresh temporary dataset, each as its own process (start-up included):

    tintline data import TMP openclipart      # copy the corpus into the content-addressed store
    tintline data build TMP                   # decode, measure, filter, near-duplicates, split, line art
    tintline data build TMP                   # again, nothing new: must only re-decide

and prints the machine, the commands and the numbers (wall time, CPU time of the command and its workers, the
CPU use as cores busy = CPU time / wall time, images per second, load average of the machine before each step,
which tells how much of the 2 cores other processes were taking). Targets from issue 3: raw -> pairs <= 120 s on
2 cores using both; a rebuild with nothing new <= 10 s. The numbers go to the "Data" section of
docs/benchmarks.md (other sections are left alone).

    .venv/bin/python benchmarks/build_openclipart.py            # all cores (workers = one per core)
    .venv/bin/python benchmarks/build_openclipart.py --keep /tmp/oc_bench --no-write
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from machine import cpu_model  # benchmarks/machine.py (scripts run from their folder)

ROOT = Path(__file__).resolve().parents[1]


def _childrencpu_model() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def run(args: list[str]) -> dict:
    """Run ``tintline ARGS`` as a process; wall time, CPU time (it and its workers), load before, last line."""
    cmd = [sys.executable, "-m", "tintline.cli", *args]
    load = os.getloadavg()[0]
    cpu0, t0 = _childrencpu_model(), time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    wall, cpu = time.perf_counter() - t0, _childrencpu_model() - cpu0
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(args)} failed:\n{proc.stderr[-2000:]}")
    last = proc.stdout.strip().splitlines()[-1] if proc.stdout.strip() else ""
    return {"command": "tintline " + " ".join(args), "wall_s": wall, "cpu_s": cpu, "cores_busy": cpu / wall,
            "load_before": load, "output": last}


def write_section(text: str) -> None:
    path = ROOT / "docs" / "benchmarks.md"
    doc = path.read_text() if path.exists() else "# Benchmarks\n"
    section = f"## Data\n\n{text.strip()}\n"
    if re.search(r"^## Data\n", doc, flags=re.M):
        doc = re.sub(r"^## Data\n.*?(?=^## |\Z)", section + "\n", doc, flags=re.S | re.M).rstrip() + "\n"
    else:
        doc = doc.rstrip() + "\n\n" + section
    path.write_text(doc)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--source", default="openclipart", help="corpus to import (default: the built-in openclipart)")
    ap.add_argument("--keep", type=Path, help="build here and keep it (default: a temporary folder, removed)")
    ap.add_argument("--no-write", action="store_true", help="print only; do not update docs/benchmarks.md")
    a = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="tintline-bench-"))
    ds = a.keep or tmp / "ds"
    if ds.exists():
        shutil.rmtree(ds)
    try:
        steps = [run(["data", "import", str(ds), a.source])]
        steps.append(run(["data", "build", str(ds)]))
        steps.append(run(["data", "build", str(ds)]))
        n = sum(1 for _ in (ds / "objects").rglob("*") if _.is_file())
        counts = json.loads(subprocess.run(
            [sys.executable, "-c", "import json,sys; from tintline.data.store import Store; s=Store.open(sys.argv[1]);"
             " print(json.dumps({'counts': s.counts(), 'reasons': s.reason_counts(), 'splits': s.split_counts()}))",
             str(ds)], capture_output=True, text=True, check=True).stdout)
    finally:
        if not a.keep:
            shutil.rmtree(tmp, ignore_errors=True)
    imp, build, rebuild = steps
    raw_to_pairs = imp["wall_s"] + build["wall_s"]
    machine = (f"{os.cpu_count()} CPU cores ({cpu_model()}), {platform.system()} {platform.release()}, "
               f"Python {platform.python_version()}")
    rows = [f"| `{s['command'].replace(str(ds), 'DATASET')}` | {s['wall_s']:.1f} | {s['cpu_s']:.1f} |"
            f" {s['cores_busy']:.2f} | {s['load_before']:.2f} |" for s in steps]
    acc = counts["counts"].get("accepted", 0)
    text = "\n".join([
        f"Benchmark: `python benchmarks/build_openclipart.py` ({time.strftime('%Y-%m-%d')}), corpus `{a.source}`:"
        f" {n} stored files; machine: {machine}.",
        "",
        "| step | wall s | CPU s (with workers) | cores busy | load average before |",
        "|---|---:|---:|---:|---:|",
        *rows,
        "",
        f"- raw -> training-ready pairs (import + build): **{raw_to_pairs:.1f} s** (target <= 120 s on 2 cores),"
        f" {n / build['wall_s']:.0f} images/s in the build; {acc} pairs accepted.",
        f"- rebuild with nothing new: **{rebuild['wall_s']:.1f} s** (target <= 10 s).",
        f"- outcome: {json.dumps(counts['reasons'])}; splits {json.dumps(counts['splits'])}.",
        "- \"cores busy\" is CPU time / wall time of the command and its worker processes: about 2 when the build"
        " has both cores to itself; the load average before each step shows what else was running (a load above 2"
        " on 2 cores means the build shared them with other processes and its wall time is longer than on an idle"
        " machine).",
    ])
    print(text)
    if not a.no_write:
        write_section(text)
        print(f"\nwritten to {ROOT / 'docs' / 'benchmarks.md'} (section Data)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
