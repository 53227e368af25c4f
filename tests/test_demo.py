"""`tintline demo` continues after an interrupt: nothing imported twice, the build not redone, the training resumed
from the checkpoint the interrupt saved, and the report written at the end (README's promise)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from synth import make_corpus

# the demo on a small generated corpus instead of the built-in one (whose import alone takes minutes)
SCRIPT = """
import sys
from pathlib import Path
import tintline.demo as demo
demo.BUILTIN = [sys.argv[1]]
demo.EVAL_IMAGES = 3
try:
    print("REPORT", demo.run_demo(Path(sys.argv[2]), minutes=float(sys.argv[3])), flush=True)
except KeyboardInterrupt:
    sys.exit(130)
"""


def _demo(corpus: Path, work: Path, minutes: float) -> subprocess.Popen:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen([sys.executable, "-c", SCRIPT, str(corpus), str(work), str(minutes)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)


def test_demo_resumes_after_an_interrupt(tmp_path):
    corpus, work = tmp_path / "corpus", tmp_path / "work"
    make_corpus(corpus, n_good=24, size=160)
    first = _demo(corpus, work, 0.5)
    seen = []
    deadline = time.monotonic() + 240
    for line in first.stdout:  # wait until training has run a little, then stop it as a scheduler would
        seen.append(line)
        if "3/5 train" in line:
            metrics = work / "run" / "metrics.jsonl"
            while time.monotonic() < deadline and not (metrics.is_file() and metrics.read_text().strip()):
                time.sleep(0.2)
            first.send_signal(signal.SIGTERM)
            break
    assert first.wait(timeout=120) == 130, "".join(seen)
    assert not (work / "report.html").exists()
    ckpt = (work / "run" / "checkpoints" / "latest").read_text().strip()
    step_at_stop = int(ckpt.split("_")[1])
    assert step_at_stop > 0
    # again: the same command continues
    second = _demo(corpus, work, 0.5)
    out = second.communicate(timeout=600)[0]
    assert second.returncode == 0, out
    assert " 0 new" in out and "already stored" in out  # nothing imported twice
    assert "(resuming)" in out
    assert (work / "report.html").is_file() and f"REPORT {work / 'report.html'}" in out
    recs = [json.loads(x) for x in (work / "run" / "metrics.jsonl").read_text().splitlines()]
    steps = [r["step"] for r in recs if not r.get("final")]
    assert steps == sorted(set(steps)) and max(steps) > step_at_stop  # continued, no step logged twice
    # a third run keeps the finished training and rewrites the report
    third = _demo(corpus, work, 0.5)
    out3 = third.communicate(timeout=600)[0]
    assert third.returncode == 0 and "already finished" in out3, out3
