"""The debugging toolkit: overfit a tiny set (pass, and diagnoses when it cannot), the learning-rate range test, and
ensembles (weight averages of checkpoints; output averages of models)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from tintline.checkpoint import save_generator
from tintline.cli import main
from tintline.data.hints import validate_hints
from tintline.debug.lrfind import lr_find, suggest
from tintline.debug.overfit import overfit
from tintline.ensemble import average_weights
from tintline.errors import UserError
from tintline.models import create_generator

TINY = ["model.generator.args={base: 8, depth: 4, max_width: 32, norm: instance, blend: multiply, classes: 8}"]


def test_overfit_memorizes_a_tiny_set(built_dataset, tmp_path):
    wider = ["model.generator.args={base: 16, depth: 4, max_width: 64, norm: instance, blend: multiply, classes: 8}",
             "optim.lr_g=0.002"]
    res = overfit(built_dataset, tmp_path / "of", images=2, steps=1200, target=0.06, overrides=wider,
                  progress=False)
    assert res.ok, res.diagnosis
    assert res.best <= 0.06 < res.start
    report = json.loads((tmp_path / "of" / "overfit.json").read_text())
    assert report["ok"] and len(report["curve"]) == res.steps
    assert (tmp_path / "of" / "overfit.html").is_file() and (tmp_path / "of" / "overfit_samples.png").is_file()


@pytest.mark.parametrize("lr, why", [("1e-9", "barely moved"), ("1e6", "too high")])
def test_overfit_fails_with_a_diagnosis(built_dataset, tmp_path, capsys, lr, why):
    code = main(["debug", "overfit", str(built_dataset), str(tmp_path / "of"), "--images", "2", "--steps", "40",
                 "--set", TINY[0], "--set", f"optim.lr_g={lr}"])
    assert code != 0
    err = capsys.readouterr().err.strip().splitlines()  # the progress bar, then one line of error
    assert err[-1].startswith("error: overfit failed") and why in err[-1]


def test_overfit_refuses_more_images_than_the_dataset_has(built_dataset, tmp_path):
    with pytest.raises(UserError, match="fewer than --images"):
        overfit(built_dataset, tmp_path / "of", images=10_000, steps=1, overrides=TINY, progress=False)


def test_suggest_picks_the_steepest_descent_before_the_minimum():
    lrs = np.logspace(-6, 0, 61)
    x = np.log10(lrs)
    loss = 2 - np.tanh(2 * (x + 2)) + np.where(x > -0.5, (x + 0.5) ** 2 * 20, 0)  # steepest at 1e-2, blows up > 0.3
    noisy_start = loss + np.where(x < -5, 0.3 * np.sin(40 * x), 0)  # early noise must not win
    assert suggest(lrs, loss) == pytest.approx(1e-2, rel=0.3)
    assert suggest(lrs, noisy_start) == pytest.approx(1e-2, rel=0.3)


def test_lr_find_writes_a_suggestion_inside_the_sweep(built_dataset, tmp_path):
    res = lr_find(built_dataset, tmp_path / "lr", start=1e-5, end=10.0, steps=40, overrides=TINY, progress=False)
    assert 1e-5 <= res.lr_g <= max(res.lrs)
    assert res.lr_d == pytest.approx(res.lr_g * 0.0002 / 0.0005)
    assert (tmp_path / "lr" / "lr_find.html").is_file()
    data = json.loads((tmp_path / "lr" / "lr_find.json").read_text())
    assert len(data["lrs"]) == len(data["smoothed"]) <= 40


def _model(path, seed, **over):
    args = {"in_channels": 9, "base": 8, "depth": 4, "max_width": 16, "norm": "instance", "blend": "multiply",
            **over}
    torch.manual_seed(seed)
    save_generator(create_generator("unet", **args), path, {"generator": {"name": "unet", "args": args},
                                                            "hint_encoding": "region", "image_size": 64})
    return path


def test_ensemble_averages_weights_and_refuses_incompatible_models(tmp_path, capsys):
    a, b = _model(tmp_path / "a.safetensors", 0), _model(tmp_path / "b.safetensors", 1)
    assert main(["ensemble", str(a), str(b), "-o", str(tmp_path / "avg.safetensors")]) == 0
    wa, wb, avg = (load_file(str(p)) for p in (a, b, tmp_path / "avg.safetensors"))
    for k in wa:
        if wa[k].is_floating_point():
            assert torch.allclose(avg[k], (wa[k] + wb[k]) / 2, atol=1e-6)
    wide = _model(tmp_path / "wide.safetensors", 2, base=16)
    assert main(["ensemble", str(a), str(wide), "-o", str(tmp_path / "bad.safetensors")]) != 0
    assert "another architecture" in capsys.readouterr().err
    with pytest.raises(UserError, match="at least two"):
        average_weights([a], tmp_path / "one.safetensors")


@pytest.fixture(scope="module")
def small_run(built_dataset, tmp_path_factory):
    run = tmp_path_factory.mktemp("run") / "r"
    sets = [*TINY, "train.batch_size=4", "train.crop=64", "train.ckpt_every=2", "train.sample_every=2",
            "train.val_images=2", "train.inspect_every=0"]
    assert main(["train", str(built_dataset), str(run), "--max-steps", "4",
                 *[x for s in sets for x in ("--set", s)]]) == 0
    return run


def test_ensemble_of_a_runs_last_checkpoints(small_run, tmp_path):
    run = small_run
    out, files = average_weights([run], tmp_path / "last2.safetensors", last=2)
    assert len(files) == 2 and all("checkpoints/step_" in str(f) for f in files)
    with pytest.raises(UserError, match="keeps"):
        average_weights([run], tmp_path / "x.safetensors", last=99)


def test_output_ensemble_averages_outputs(tmp_path):
    from tintline.inference import load_colorizer

    line = np.full((64, 64), 255, np.uint8)
    line[10:54, 10] = line[10:54, 53] = 0
    line[10, 10:54] = line[53, 10:54] = 0
    hints = validate_hints({"points": [{"x": 30, "y": 30, "color": "#c80000", "radius": 2}]})
    ens = load_colorizer("ensemble:region-fill,white")
    rf, wh = load_colorizer("region-fill"), load_colorizer("white")
    expect = (rf.colorize_lines(line, hints).astype(float) + wh.colorize_lines(line, hints)) / 2
    assert np.abs(ens.colorize_lines(line, hints) - expect).max() <= 0.5 + 1e-9


def test_check_gives_a_verdict_per_checklist_item(built_dataset, tmp_path, capsys):
    from tintline.debug.check import check_pairs

    assert main(["debug", "check", str(built_dataset), "region-fill", "-o", str(tmp_path / "c"),
                 "--set", TINY[0]]) == 0
    out = capsys.readouterr().out
    for name in ("pairs", "line art", "hints", "augmentation", "gradient check", "initialisation", "discriminator",
                 "model"):
        assert name in out
    assert "FAIL" not in out and (tmp_path / "c" / "augmentations.png").is_file()
    # a data bug: line art shifted against its color image is caught
    color = np.full((64, 64, 3), 255, np.uint8)
    line = np.full((64, 64), 255, np.uint8)
    for k in range(8, 56, 12):
        color[:, k : k + 6] = (200, 30, 30)
        line[:, k - 1 : k + 1] = 0
        line[:, k + 5 : k + 7] = 0
    shifted = np.roll(line, 3, axis=1)
    assert check_pairs([(color, line)] * 10).verdict == "PASS"
    assert check_pairs([(color, shifted)] * 10).verdict == "FAIL"
