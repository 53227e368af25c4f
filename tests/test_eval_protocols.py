"""Evaluation hint protocols (``tintline eval --hints``): simulated, none, per-region, largest:K."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from synth import cartoon

from tintline.baselines import BASELINES
from tintline.cli import main
from tintline.data.hints import render_hint_items
from tintline.data.store import Entry
from tintline.errors import UserError
from tintline.evaluate.region_metrics import default_min_area, scored_regions
from tintline.evaluate.run import (
    CURVE_COUNTS,
    Case,
    HintBook,
    Protocol,
    parse_protocols,
    protocol_hints,
    score,
)
from tintline.regions import label_regions

DEFAULT_KEYS = ["0", "8", "per-region", "largest:4", "none"]


def clean_case(i: int, size: int = 256) -> Case:
    """A synthetic flat-colored drawing whose line art is exactly its outlines: every closed region is one color.

    256 px, the size the protocol's minimum region area (48 px) is defined at."""
    color = cartoon(i, size, size)
    line = np.where((color == 20).all(axis=2), 0, 255).astype(np.uint8)  # synth draws outlines in (20, 20, 20)
    entry = Entry(i, f"{i:064x}", "test", Path("unused.png"), Path("unused.png"), ("cats" if i % 2 else "dogs",))
    return Case(i, entry, color, line, line)


@pytest.fixture(scope="module")
def clean_cases() -> list[Case]:
    return [clean_case(i) for i in range(8)]


def baseline(name: str):
    b = BASELINES.create(name)
    return lambda case, hints: b.colorize_lines(case.line, hints)


# ------------------------------------------------------------------------------------------- parsing


def test_default_protocols_keys_labels_and_order():
    prots = parse_protocols()
    assert [p.key for p in prots] == DEFAULT_KEYS
    assert [p.label for p in prots] == ["0 hints", "8 hints", "a dot in every region", "dots in the 4 largest regions",
                                        "none"]
    assert [p.key for p in parse_protocols(["simulated"], hint_curve=True)] == [str(c) for c in CURVE_COUNTS]
    # repeated and overlapping values are scored once, in the order first given
    assert [p.key for p in parse_protocols(["largest:2", "none", "largest:2", "per-region"])] == [
        "largest:2", "none", "per-region"]
    assert Protocol("largest", 1).label == "a dot in the largest region"
    assert Protocol("none").hintless and Protocol("simulated", 0).hintless and not Protocol("per-region").hintless


@pytest.mark.parametrize("spec", ["largest:x", "largest:0", "largest:-1", "largest", "largest:", "foo", "simulated:8",
                                  ""])
def test_malformed_protocol_is_a_user_error(spec):
    with pytest.raises(UserError, match="--hints"):
        parse_protocols([spec])


def test_hint_curve_needs_the_simulated_protocol():
    with pytest.raises(UserError, match="--hint-curve"):
        parse_protocols(["per-region"], hint_curve=True)


@pytest.mark.parametrize("spec", ["largest:x", "largest:0", "foo"])
def test_cli_bad_protocol_one_line_error(spec, tmp_path):
    # the protocol is checked before the (missing) dataset is read
    r = subprocess.run([sys.executable, "-m", "tintline.cli", "eval", str(tmp_path / "DS"), "-o", str(tmp_path / "r"),
                        "--hints", spec], capture_output=True, text=True)
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: --hints {spec}:"), r.stderr


# ------------------------------------------------------------------------------------------- hints


def test_scored_region_size_scales_with_image_area():
    assert default_min_area((256, 256)) == 48
    assert default_min_area((300, 512, 3)) == 192  # the longer side counts
    assert default_min_area((64, 64)) == 3 and default_min_area((8, 8)) == 1
    line = clean_case(3, 128).clean_line
    assert scored_regions(line).n == scored_regions(line, default_min_area(line.shape)).n


def test_per_region_puts_one_dot_of_the_true_color_in_every_scored_region(clean_cases):
    for case in clean_cases:
        hints = protocol_hints(case, Protocol("per-region"), seed=0)
        reg = scored_regions(case.clean_line)
        assert reg.n >= 1 and not hints["strokes"]
        dotted = {int(reg.labels[int(p["y"]), int(p["x"])]) for p in hints["points"]}
        assert set(range(1, reg.n + 1)) <= dotted  # every scored region has its dot
        labels, _ = label_regions(case.clean_line)
        ids, _ = render_hint_items(hints, *case.clean_line.shape)
        for k, p in enumerate(hints["points"], start=1):
            x, y = int(p["x"]), int(p["y"])
            assert case.clean_line[y, x] == 255  # on paper, not on a line
            assert p["color"] == tuple(int(v) for v in case.color[y, x])  # flat regions: median = any pixel
            painted = (ids == k) & (case.clean_line == 255)
            assert (labels[painted] == labels[y, x]).all()  # the dot stays inside its own region


def test_largest_k_places_k_dots_in_the_largest_regions(clean_cases):
    for case in clean_cases:
        labels, n = label_regions(case.clean_line)
        everywhere = protocol_hints(case, Protocol("per-region"), seed=0)["points"]
        one = protocol_hints(case, Protocol("largest", 1), seed=0)["points"]
        assert len(one) == 1  # exactly one dot
        # ... in the largest region that gets a dot at all
        areas = np.bincount(labels.ravel(), minlength=n + 1)
        assert areas[labels[int(one[0]["y"]), int(one[0]["x"])]] == max(
            areas[labels[int(p["y"]), int(p["x"])]] for p in everywhere)
        assert one[0] in everywhere  # the same dot as per-region's
        assert len(protocol_hints(case, Protocol("largest", 2), seed=0)["points"]) == min(2, len(everywhere))
        assert len(protocol_hints(case, Protocol("largest", 1000), seed=0)["points"]) == len(everywhere)


def test_hints_are_deterministic_and_identical_for_every_model(clean_cases):
    prots = parse_protocols()
    seen: dict[str, list] = {"a": [], "b": []}

    def recorder(name: str):
        def predict(case: Case, hints: dict) -> np.ndarray:
            seen[name].append(json.dumps(hints, sort_keys=True))
            return case.color
        return predict

    score(recorder("a"), clean_cases[:3], prots, 0, "a", False)  # each model with its own HintBook
    score(recorder("b"), clean_cases[:3], prots, 0, "b", False)
    assert seen["a"] == seen["b"]
    book = HintBook(0)
    for p in prots:
        assert book(clean_cases[0], p) == protocol_hints(clean_cases[0], p, 0) == protocol_hints(clean_cases[0], p, 0)


# ------------------------------------------------------------------------------------------- scoring


def test_region_fill_is_region_true_under_per_region_and_white_is_not(clean_cases):
    prots = parse_protocols(["per-region", "largest:1", "none"])
    fill = score(baseline("region-fill"), clean_cases, prots, 0, "fill", False)
    white = score(baseline("white"), clean_cases, prots, 0, "white", False)
    # a dot of the true color in every region + a fill that floods each region with its dot's color = every region
    assert [r["results"]["per-region"]["region_acc"] for r in fill] == [1.0] * len(clean_cases)
    assert all(r["results"]["per-region"]["hint_adherence"] == 1.0 for r in fill)

    def mean(recs: list[dict], key: str) -> float:
        return float(np.mean([r["results"][key]["region_acc"] for r in recs]))

    assert mean(white, "per-region") < 0.5 < mean(fill, "per-region")
    # fewer hinted regions, fewer right ones; white ignores hints altogether
    assert mean(fill, "none") < mean(fill, "largest:1") < mean(fill, "per-region")
    assert mean(white, "none") == mean(white, "largest:1") == mean(white, "per-region")


def test_none_equals_zero_and_is_scored_once(clean_cases):
    calls: list[int] = []

    def predict(case: Case, hints: dict) -> np.ndarray:
        calls.append(case.index)
        return baseline("region-fill")(case, hints)

    recs = score(predict, clean_cases[:3], parse_protocols(["simulated", "none"]), 0, "x", False)
    assert len(calls) == 3 * 2  # 0 and 8 hints; "none" reuses "0"
    for r in recs:
        assert r["results"]["none"] == r["results"]["0"]


# ------------------------------------------------------------------------------------------- CLI and report


def test_eval_reports_every_protocol_for_every_model(built_dataset, tmp_path):
    out = tmp_path / "report"
    assert main(["eval", str(built_dataset), "--compare", "region-fill", "white", "-o", str(out)]) == 0
    report = json.loads((out / "metrics.json").read_text())
    assert report["protocols"] == DEFAULT_KEYS and report["hint_counts"] == [0, 8]
    assert set(report["models"]) == {"region-fill", "white"}
    for m in report["models"].values():
        assert list(m["summary"]) == DEFAULT_KEYS
        assert m["summary"]["none"] == m["summary"]["0"]
        assert all(list(r["results"]) == DEFAULT_KEYS for r in m["per_image"])
        assert all(set(d) >= set(DEFAULT_KEYS) for d in m["per_tag"].values())
    fill, white = report["models"]["region-fill"]["summary"], report["models"]["white"]["summary"]
    assert fill["per-region"]["region_acc"] > white["per-region"]["region_acc"]
    assert fill["per-region"]["region_acc"] >= fill["largest:4"]["region_acc"] >= fill["none"]["region_acc"]
    assert list(report["comparison"]) == DEFAULT_KEYS  # intervals for every protocol
    html = (out / "index.html").read_text()
    for label in ("0 hints", "8 hints", "a dot in every region", "dots in the 4 largest regions", "none"):
        assert f"<td>{label}</td>" in html
    assert "Protocol × model: region accuracy" in html and "Failure statistics (region-fill, a dot in every region)" \
        in html and "by region accuracy with a dot in every region (region-fill)" in html
    assert html.index("Protocol × model") < html.index("All metrics")  # the compact table comes first
    assert (out / "samples.png").is_file() and (out / "differ_most.png").is_file()


def test_eval_chosen_protocols_only(built_dataset, tmp_path):
    out = tmp_path / "r"
    assert main(["eval", "region-fill", str(built_dataset), "--hints", "largest:1", "--hints", "none",
                 "-o", str(out)]) == 0
    report = json.loads((out / "metrics.json").read_text())
    assert report["protocols"] == ["largest:1", "none"] and report["hint_counts"] == []
    assert list(report["models"]["region-fill"]["summary"]) == ["largest:1", "none"]
    html = (out / "index.html").read_text()
    assert "by ΔE00 without hints (region-fill)" in html and "a dot in the largest region" in html


def test_predictions_are_scored_without_hints_only(built_dataset, tmp_path):
    inputs = tmp_path / "inputs"
    assert main(["eval", str(built_dataset), "--write-inputs", str(inputs)]) == 0
    preds = tmp_path / "preds"
    preds.mkdir()
    for f in inputs.glob("*.png"):
        Image.open(f).convert("RGB").save(preds / f.name)
    out = tmp_path / "r"
    assert main(["eval", str(built_dataset), "--predictions", str(preds), "--baseline", "white", "-o", str(out)]) == 0
    report = json.loads((out / "metrics.json").read_text())
    assert report["protocols"] == ["0", "none"] and report["hint_counts"] == [0]
    assert all(list(m["summary"]) == ["0", "none"] for m in report["models"].values())
    assert main(["eval", str(built_dataset), "--predictions", str(preds), "--hints", "per-region",
                 "-o", str(out)]) == 2
