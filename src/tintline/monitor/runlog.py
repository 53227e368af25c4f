"""Reading a run's ``metrics.jsonl`` (one JSON object per logging step, written by the trainer)."""

from __future__ import annotations

import json
from pathlib import Path


def read_metrics(run_dir: Path) -> list[dict]:
    """All records of ``run_dir/metrics.jsonl``; a last line cut by a kill is skipped."""
    path = run_dir / "metrics.jsonl"
    if not path.exists():
        return []
    out = []
    for line in path.read_text().splitlines():
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return out
