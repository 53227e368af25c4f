"""A tiny end-to-end CPU run: train -> checkpoint -> colorize -> resume -> eval, through the real CLI."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file

from tintline.checkpoint import CheckpointError, load_generator, read_meta
from tintline.cli import main

TINY = [
    "model.generator.args={base: 8, depth: 5, max_width: 32, classes: 8}",
    "model.discriminator.args={base: 8, n_layers: 2}",
    "train.batch_size=4",
    "train.crop=64",
    "train.log_every=1",
    "train.sample_every=2",
    "train.ckpt_every=2",
    "train.val_images=2",
    "train.inspect_every=2",
]


def _train(dataset: Path, run: Path, *extra: str) -> int:
    args = ["train", str(dataset), str(run)]
    for s in TINY:
        args += ["--set", s]
    return main(args + list(extra))


@pytest.fixture(scope="module")
def run_dir(built_dataset, tmp_path_factory) -> Path:
    run = tmp_path_factory.mktemp("run") / "r"
    assert _train(built_dataset, run, "--max-steps", "3") == 0
    return run


def test_training_writes_checkpoint_config_metrics_and_tensorboard(run_dir):
    assert (run_dir / "model.safetensors").is_file()
    assert (run_dir / "config.yaml").is_file()
    latest = (run_dir / "checkpoints" / "latest").read_text().strip()
    assert latest == "step_00000003"
    state = json.loads((run_dir / "checkpoints" / latest / "state.json").read_text())
    assert state["step"] == 3 and len(state["git_commit"]) > 0 and state["dataset_fingerprint"]
    meta = read_meta(run_dir / "model.safetensors")
    assert meta["generator"]["args"]["depth"] == 5 and meta["step"] == 3
    recs = [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines()]
    steps = [r for r in recs if not r.get("final")]
    assert [r["step"] for r in steps] == [1, 2, 3]
    for r in steps:
        assert {"elapsed", "images_per_s", "loss/l1", "loss/region", "loss/classes", "loss/g"} <= set(r)  # no D
    assert "val/psnr_hints" in steps[1] and recs[-1]["final"]
    assert list(run_dir.glob("events.out.tfevents.*"))


def test_tensorboard_has_scalars_and_images(run_dir):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(run_dir))
    acc.Reload()
    tags = acc.Tags()
    assert "loss/l1" in tags["scalars"] and "val/psnr_nohints" in tags["scalars"]
    assert "train/inputs_at_start" in tags["images"] and "val/samples_hints" in tags["images"]
    # the inside of the network (inspect_every=2): histograms, dead units, gradient norms, update ratios
    assert any(t.startswith("G/weight/") for t in tags["histograms"])
    assert any(t.startswith("G/grad/") for t in tags["histograms"])
    assert any(t.startswith("G/preact/") for t in tags["histograms"])
    assert any(t.startswith("dead/") for t in tags["scalars"])
    assert any(t.startswith("grad_norm/down.") for t in tags["scalars"])
    assert any(t.startswith("update_ratio/") for t in tags["scalars"])
    assert (run_dir / "best.safetensors").is_file()


def test_colorize_loads_run_dir_any_size(run_dir, tmp_path):
    line = np.full((45, 70), 255, np.uint8)
    line[10:35, 20] = 0
    line[10, 20:60] = 0
    src = tmp_path / "in.png"
    Image.fromarray(line).save(src)
    rgba = tmp_path / "alpha.png"
    Image.fromarray(np.dstack([np.zeros((33, 50, 3), np.uint8), np.full((33, 50), 128, np.uint8)])).save(rgba)
    hints = tmp_path / "h.json"
    hints.write_text(json.dumps({"points": [{"x": 30, "y": 20, "color": "#ff0000", "radius": 3}],
                                 "strokes": [{"points": [[5, 5], [15, 9]], "color": "#00ff00", "width": 2}]}))
    out = tmp_path / "out"
    assert main(["colorize", str(run_dir), str(src), str(rgba), "-o", str(out), "--hints", str(hints)]) == 0
    assert Image.open(out / "in.png").size == (70, 45)
    assert Image.open(out / "alpha.png").size == (50, 33)
    assert Image.open(out / "in.png").mode == "RGB"


def _records(run: Path) -> list[dict]:
    """metrics.jsonl as written, one record per line (the final summary included)."""
    return [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]


def _losses(run: Path) -> dict[int, dict[str, float]]:
    return {r["step"]: {k: v for k, v in r.items() if k.startswith(("loss/", "d/"))}
            for r in _records(run) if not r.get("final")}


def _tb_scalars(run: Path, tag: str) -> list[tuple[int, float]]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(run))
    acc.Reload()
    return [(e.step, e.value) for e in acc.Scalars(tag)]


def test_killed_run_resumes_exactly_same_losses_and_weights(built_dataset, tmp_path):
    """A run killed with SIGKILL mid-way and resumed logs exactly the losses of one that was never stopped and
    ends with the same weights: weights, optimizers, EMA, RNG, data order, each sample's crop and hints and the hint
    drop schedule all continue from the checkpoint; the steps the killed process logged after its last checkpoint
    are redone and kept once (in metrics.jsonl and, through TensorBoard's purge, in the event files)."""
    n = 20
    steps = ["--max-steps", str(n), "--set", "train.ckpt_every=5", "--set", "train.sample_every=10",
             "--set", "train.inspect_every=0"]
    whole, killed = tmp_path / "whole", tmp_path / "killed"
    assert _train(built_dataset, whole, *steps) == 0
    cmd = [sys.executable, "-m", "tintline.cli", "train", str(built_dataset), str(killed)]
    for s in TINY:
        cmd += ["--set", s]
    proc = subprocess.Popen(cmd + steps, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    metrics = killed / "metrics.jsonl"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        lines = metrics.read_text().splitlines() if metrics.is_file() else []
        if lines and json.loads(lines[-1])["step"] >= 12:
            proc.kill()  # SIGKILL: no handler runs, nothing is saved
            break
        time.sleep(0.01)
    assert proc.wait(timeout=60) == -9, "the run finished before it could be killed"
    at_kill = [r["step"] for r in _records(killed)]
    last_ckpt = int((killed / "checkpoints" / "latest").read_text().strip().split("_")[1])
    # the kill came after a checkpoint and after more steps were logged: those steps must be redone
    assert 5 <= last_ckpt < max(at_kill) < n, (last_ckpt, at_kill)
    assert at_kill == list(range(1, max(at_kill) + 1))
    # event files are named events.out.tfevents.<seconds>.<host>.<pid>: a resume within the same second as the
    # killed start (the tiny run takes under a second) would sort before it by pid and TensorBoard would read the
    # sessions in the wrong order; a real resume comes seconds later
    time.sleep(1.05)
    assert _train(built_dataset, killed, *steps, "--resume") == 0
    # the raw lines: every step once, in order, and one final summary (a step logged twice must not hide in a dict)
    recs = _records(killed)
    assert [r["step"] for r in recs if not r.get("final")] == list(range(1, n + 1))
    assert [r.get("final", False) for r in recs].count(True) == 1 and recs[-1]["final"]
    a, b = _losses(whole), _losses(killed)
    assert a == b
    # TensorBoard: the resumed session tells readers to drop the killed session's events after the checkpoint
    from tensorboard.backend.event_processing.event_file_loader import EventFileLoader

    events = sorted(killed.glob("events.out.tfevents.*"), key=lambda f: f.stat().st_mtime)
    assert len(events) == 2
    starts = [e.step for e in EventFileLoader(str(events[-1])).Load()
              if e.HasField("session_log") and e.session_log.status == e.session_log.START]
    assert starts == [last_ckpt + 1]
    tb = _tb_scalars(killed, "loss/l1")
    assert [s for s, _ in tb] == list(range(1, n + 1))
    assert tb == _tb_scalars(whole, "loss/l1")
    ref = load_file(str(whole / "checkpoints" / f"step_{n:08d}" / "generator.safetensors"))
    out = load_file(str(killed / "checkpoints" / f"step_{n:08d}" / "generator.safetensors"))
    assert all(torch.equal(ref[k], out[k]) for k in ref)
    ref_ema = load_file(str(whole / "model.safetensors"))
    assert all(torch.equal(v, load_file(str(killed / "model.safetensors"))[k]) for k, v in ref_ema.items())


def test_sigterm_stops_training_with_a_checkpoint_of_the_last_step(built_dataset, tmp_path):
    """SIGTERM (a scheduler's stop, `kill`) saves the step reached, though no periodic checkpoint was due."""
    import signal

    run = tmp_path / "term"
    cmd = [sys.executable, "-m", "tintline.cli", "train", str(built_dataset), str(run)]
    for s in TINY:
        cmd += ["--set", s]
    cmd += ["--max-steps", "500", "--set", "train.ckpt_every=1000", "--set", "train.sample_every=1000",
            "--set", "train.inspect_every=0"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    metrics = run / "metrics.jsonl"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        lines = metrics.read_text().splitlines() if metrics.is_file() else []
        if lines and json.loads(lines[-1])["step"] >= 3:
            proc.send_signal(signal.SIGTERM)
            break
        time.sleep(0.02)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err[-2000:]
    assert "interrupted" in err and "saved" in err
    logged = max(r["step"] for r in _records(run))
    latest = (run / "checkpoints" / "latest").read_text().strip()
    saved = int(latest.split("_")[1])
    # the last step trained (the signal may land between a step and its log line), not an older one
    assert logged >= 3 and saved in (logged, logged + 1), (latest, logged)
    assert json.loads((run / "checkpoints" / latest / "state.json").read_text())["step"] == saved
    assert (run / "checkpoints" / latest / "generator.safetensors").is_file()


def test_new_run_refuses_to_overwrite_and_resume_needs_a_checkpoint(built_dataset, run_dir, tmp_path, capsys):
    assert _train(built_dataset, run_dir, "--max-steps", "1") == 2
    assert "already holds a run" in capsys.readouterr().err
    assert _train(built_dataset, tmp_path / "empty", "--max-steps", "1", "--resume") == 2
    assert "nothing to resume" in capsys.readouterr().err


def test_l1_only_baseline_trains_without_discriminator(built_dataset, tmp_path):
    run = tmp_path / "l1"
    assert _train(built_dataset, run, "--config", "configs/l1.yaml", "--max-steps", "2") == 0
    ckpt = run / "checkpoints" / "step_00000002"
    assert not (ckpt / "discriminator.safetensors").exists()
    rec = json.loads((run / "metrics.jsonl").read_text().splitlines()[0])
    assert "loss/d" not in rec and "loss/l1" in rec


def _other_model(path: Path) -> Path:
    """A checkpoint of the tiny test network with untrained weights: a model that is not the run's."""
    from tintline.checkpoint import save_generator
    from tintline.models import create_generator

    args = {"base": 8, "depth": 5, "max_width": 32}
    with torch.random.fork_rng():  # leave the global generator as the other tests expect it
        torch.manual_seed(123)
        net = create_generator("unet", **args)
    save_generator(net, path, {"generator": {"name": "unet", "args": args}, "step": 0, "image_size": 64})
    return path


def test_eval_writes_metrics_and_html(run_dir, built_dataset, tmp_path):
    out = tmp_path / "report"
    other = _other_model(tmp_path / "other.safetensors")
    assert main(["eval", str(run_dir), str(built_dataset), "--split", "test", "-o", str(out),
                 "--baseline", "white", "--baseline", "region-fill", "--baseline", "mean-color",
                 "--baseline", f"pix2pix={other}", "--baseline", f"again={other}"]) == 0
    report = json.loads((out / "metrics.json").read_text())
    assert report["images"] >= 1 and report["hint_counts"] == [0, 8]
    # a trained baseline (LABEL=MODEL) is reported under its label, scored with the weights of its own path
    assert set(report["models"]) == {str(run_dir), "white", "region-fill", "mean-color", "pix2pix", "again"}
    assert report["models"]["pix2pix"]["summary"] == report["models"]["again"]["summary"]
    assert report["models"]["pix2pix"]["summary"] != report["models"][str(run_dir)]["summary"]
    assert report["models"]["pix2pix"]["meta"]["step"] == 0 and report["models"][str(run_dir)]["meta"]["step"] == 3
    for m in report["models"].values():
        assert set(m["summary"]["0"]) >= {"psnr", "ssim", "delta_e00", "chroma", "region_acc", "hint_adherence"}
        assert len(m["per_image"]) == report["images"]
    white = report["models"]["white"]["summary"]
    assert white["0"]["chroma"] < 1 and white["0"]["psnr"] == white["8"]["psnr"]  # white ignores hints
    fill = report["models"]["region-fill"]["summary"]
    assert fill["8"]["hint_adherence"] > 0.9  # region fill honours every hint it can
    html = (out / "index.html").read_text()
    assert "<table>" in html and "worst_delta_e00.png" in html and "Failure statistics" in html
    # the galleries show MODEL's failures, not those of whichever baseline was scored first (mean-color is)
    assert f"by ΔE00 without hints ({run_dir})" in html
    assert Image.open(out / "samples.png").size[0] > 64


def test_eval_predictions_and_compare(run_dir, built_dataset, tmp_path):
    inputs = tmp_path / "inputs"
    assert main(["eval", str(built_dataset), "--write-inputs", str(inputs)]) == 0
    files = sorted(inputs.glob("*.png"))
    assert files
    # "another tool": returns the line art unchanged -> must score exactly like the white baseline
    preds = tmp_path / "preds"
    preds.mkdir()
    for f in files:
        Image.open(f).convert("RGB").save(preds / f.name)
    out = tmp_path / "r"
    assert main(["eval", str(built_dataset), "--predictions", str(preds), "--baseline", "white", "-o", str(out)]) == 0
    models = json.loads((out / "metrics.json").read_text())["models"]
    ext = models[f"predictions:{preds}"]["summary"]["0"]
    assert abs(ext["delta_e00"] - models["white"]["summary"]["0"]["delta_e00"]) < 1e-9
    files[0].unlink()
    (preds / files[0].name).unlink()
    assert main(["eval", str(built_dataset), "--predictions", str(preds), "-o", str(out)]) == 2



HINTLESS = ("0", "none")  # the protocol keys without hints


def test_compare_known_answers(run_dir, built_dataset, tmp_path):
    # two different models: region fill beats the bare line art once there are hints, and is it without them
    out = tmp_path / "cmp"
    assert main(["eval", str(built_dataset), "--split", "train", "--compare", "region-fill", "white",
                 "-o", str(out)]) == 0
    report = json.loads((out / "metrics.json").read_text())
    cmp, models = report["comparison"], report["models"]
    assert report["images"] >= 10
    assert set(cmp["0"]["delta_e00"]) == {"mean_diff", "ci95"}
    for key in HINTLESS:  # no hints: region fill leaves the line art as it is
        for metric, d in cmp[key].items():
            if metric != "hint_adherence":  # undefined without hints
                assert d == {"mean_diff": 0.0, "ci95": [0.0, 0.0]}, (key, metric)
    better = {"delta_e00": -1, "psnr": 1, "hint_adherence": 1}  # the sign of "region fill is better"
    for metric, sign in better.items():
        d = cmp["8"][metric]
        lo, hi = d["ci95"]
        assert sign * d["mean_diff"] > 0 and sign * lo > 0 and sign * hi > 0, (metric, d)  # CI excludes 0
        assert lo <= d["mean_diff"] <= hi
        want = models["region-fill"]["summary"]["8"][metric] - models["white"]["summary"]["8"][metric]
        assert d["mean_diff"] == pytest.approx(want), metric  # A minus B, not B minus A
    assert (out / "differ_most.png").is_file()

    # a model compared with itself (loaded twice, under two labels): no difference, an interval of exactly 0
    out = tmp_path / "self"
    assert main(["eval", str(run_dir), str(built_dataset), "--compare", f"again={run_dir}", "-o", str(out)]) == 0
    cmp = json.loads((out / "metrics.json").read_text())["comparison"]
    for key, metrics in cmp.items():
        for metric, d in metrics.items():
            if not (key in HINTLESS and metric == "hint_adherence"):
                assert d["mean_diff"] == 0.0 and d["ci95"][0] <= 0.0 <= d["ci95"][1], (key, metric, d)


def test_eval_limit_hint_curve_and_gaps(built_dataset, tmp_path):
    from tintline.data.store import Store

    with Store.open(built_dataset) as store:
        n_train = len(store.entries("train"))
    assert n_train > 3
    out = tmp_path / "lim"
    assert main(["eval", "white", str(built_dataset), "--split", "train", "--limit", "3", "--hint-curve",
                 "-o", str(out)]) == 0
    report = json.loads((out / "metrics.json").read_text())
    assert report["images"] == 3 and len(report["models"]["white"]["per_image"]) == 3  # --limit
    assert report["hint_counts"] == [0, 1, 2, 4, 8, 16, 32]  # --hint-curve
    assert set(map(str, report["hint_counts"])) <= set(report["models"]["white"]["summary"])
    assert report["gaps"] is False
    # --gaps: the lines the models see (and --write-inputs writes) have segments erased, the same ones every time
    plain, gapped, again = tmp_path / "plain", tmp_path / "gapped", tmp_path / "again"
    assert main(["eval", str(built_dataset), "--split", "train", "--limit", "3", "--write-inputs", str(plain)]) == 0
    for d in (gapped, again):
        assert main(["eval", str(built_dataset), "--split", "train", "--limit", "3", "--gaps",
                     "--write-inputs", str(d)]) == 0
    names = sorted(f.name for f in plain.glob("*.png"))
    assert len(names) == 3 and names == sorted(f.name for f in gapped.glob("*.png"))
    for name in names:
        a, b = (np.asarray(Image.open(d / name).convert("L")).astype(int) for d in (plain, gapped))
        assert (b >= a).all() and (b > a).any(), name  # only erased (lightened), and something was
        assert np.array_equal(b, np.asarray(Image.open(again / name).convert("L")))
    out = tmp_path / "gaps"
    assert main(["eval", "white", str(built_dataset), "--split", "train", "--limit", "3", "--gaps",
                 "-o", str(out)]) == 0
    gap_report = json.loads((out / "metrics.json").read_text())
    assert gap_report["gaps"] is True
    assert gap_report["models"]["white"]["summary"]["0"] != report["models"]["white"]["summary"]["0"]


def test_nan_stops_training_with_a_checkpoint_and_names_the_layer(built_dataset, tmp_path, capsys):
    run = tmp_path / "nan"
    assert _train(built_dataset, run, "--max-steps", "1") == 0
    # poison one weight of the saved checkpoint, then resume: the next step must stop and say where
    from safetensors.torch import save_file

    ckpt = run / "checkpoints" / "step_00000001" / "generator.safetensors"
    weights = load_file(str(ckpt))
    key = "down.2.1.weight"
    weights[key][0, 0, 0, 0] = float("nan")
    save_file(weights, str(ckpt), metadata=read_meta(ckpt) and {"tintline": json.dumps(read_meta(ckpt))})
    assert _train(built_dataset, run, "--max-steps", "3", "--resume", "--set", "train.ema_decay=0") == 2
    err = capsys.readouterr().err
    last = [x for x in err.replace("\r", "\n").splitlines() if "error:" in x]
    assert len(last) == 1 and last[0].startswith("error: generator output became nan"), last
    assert "'down.2.1'" in last[0] and "checkpoint saved" in last[0], last


def test_export_half_precision_loads_and_matches(run_dir, tmp_path):
    import torch

    out = tmp_path / "m.safetensors"
    assert main(["export", str(run_dir), str(out)]) == 0
    assert read_meta(out)["dtype"] == "float16"
    full, _ = load_generator(run_dir)
    half, meta = load_generator(out)
    assert next(half.parameters()).dtype == torch.float32 and meta["step"] == 3
    x = torch.rand(1, full.down[0][0].in_channels, 64, 96) * 2 - 1
    with torch.no_grad():
        assert (full(x) - half(x)).abs().max() < 0.02  # float16 rounding only
    assert out.stat().st_size < (run_dir / "model.safetensors").stat().st_size * 0.6


def test_export_best_exports_the_best_checkpoint_not_the_last(run_dir, tmp_path):
    import shutil

    run = tmp_path / "run"
    shutil.copytree(run_dir, run)
    # a short run's best is its last model; make it another one, so that the two can be told apart
    _other_model(run / "best.safetensors")
    best, last = load_file(str(run / "best.safetensors")), load_file(str(run / "model.safetensors"))
    assert any(not torch.equal(best[k], last[k]) for k in best)
    out = tmp_path / "best.safetensors"
    assert main(["export", str(run), str(out), "--best", "--float32"]) == 0
    exported = load_file(str(out))
    assert exported.keys() == best.keys() and all(torch.equal(exported[k], best[k]) for k in best)
    assert read_meta(out)["step"] == 0
    assert main(["export", str(run), str(out), "--float32"]) == 0  # without --best: the run's model
    assert read_meta(out)["step"] == 3


def test_load_generator_refuses_non_tintline_files(tmp_path):
    bad = tmp_path / "x.safetensors"
    bad.write_bytes(b"\x00" * 64)
    with pytest.raises(CheckpointError):
        load_generator(bad)
    with pytest.raises(CheckpointError, match="not found"):
        load_generator(tmp_path / "missing")


@pytest.mark.parametrize(
    "args, message",
    [
        (["colorize", "MISSING_MODEL", "x.png", "-o", "o"], "input not found"),
        (["train", "/nonexistent/ds", "RUN"], "not a tintline dataset"),
        (["data", "build", "/nonexistent/ds"], "not a tintline dataset"),
        (["data", "import", "DS", "/no/such/folder"], "no such folder or built-in corpus"),
        (["train", "DS", "RUN", "--set", "train.batch_size=0"], "batch_size"),
        (["train", "DS", "RUN", "--set", "nosuch.field=1"], "nosuch"),
        (["eval", "DS", "-o", "r", "--baseline", "bogus"], "--baseline bogus"),
    ],
)
def test_cli_bad_input_one_line_error(args, message, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    r = subprocess.run([sys.executable, "-m", "tintline.cli", *args], capture_output=True, text=True)
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and message in lines[0], r.stderr


def test_viz_serves_tensorboard_on_loopback(run_dir, tmp_path):
    import socket
    import time
    import urllib.request

    assert main(["viz", str(tmp_path)]) == 2  # no logs there: one-line error
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-m", "tintline.cli", "viz", str(run_dir), "--port", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline, body = time.time() + 90, b""
        while time.time() < deadline and proc.poll() is None:
            try:
                body = urllib.request.urlopen(f"http://127.0.0.1:{port}/data/runs", timeout=2).read()
                break
            except OSError:
                time.sleep(0.5)
        assert b"." in body, "TensorBoard did not answer on 127.0.0.1"
    finally:
        proc.terminate()
        proc.wait(timeout=20)


def test_init_from_loads_weights_freezes_the_encoder_and_lowers_the_learning_rate(run_dir, built_dataset, tmp_path):
    run = tmp_path / "ft"
    assert _train(built_dataset, run, "--max-steps", "2", "--init-from", str(run_dir), "--freeze-encoder", "2") == 0
    src = load_file(str(run_dir / "model.safetensors"))  # what --init-from RUN loads: the run's (EMA) model
    out = load_file(str(run / "checkpoints" / "step_00000002" / "generator.safetensors"))
    frozen = [k for k in src if k.startswith(("down.0.", "down.1."))]
    # the frozen levels did not move, batch-norm statistics included (frozen layers stay in eval mode)
    assert frozen and all(torch.equal(src[k], out[k]) for k in frozen)
    assert any(not torch.equal(src[k], out[k]) for k in src if k.startswith("up."))  # the rest trained
    rec = json.loads((run / "metrics.jsonl").read_text().splitlines()[0])
    assert rec["lr/g0"] == pytest.approx(5e-4 * 0.1)  # default lr_g x finetune_lr_scale
    assert read_meta(run / "model.safetensors")["init_from"].endswith("model.safetensors")


@pytest.mark.parametrize("args, message", [
    (["--freeze-encoder", "1"], "needs --init-from"),
    (["--init-from", "no/such/model"], "model not found"),
    (["--precision", "16-mixed"], "needs a GPU"),
    (["--init-from", "default"], "does not match"),  # the tiny test network is not the shipped one
])
def test_training_flags_bad_input(args, message, built_dataset, tmp_path, capsys):
    assert _train(built_dataset, tmp_path / "r", "--max-steps", "1", *args) == 2
    assert message in capsys.readouterr().err


# Loaded into every Python process of the DDP run (PYTHONPATH): each training sample a process loads is written to
# TRACE_DIR/<pid>.txt as "rank epoch index", so the test sees what each rank really trained on.
DDP_TRACE = """
import os

from tintline.data.dataset import PairDataset

_get = PairDataset.__getitem__


def _traced(self, key):
    if self.train and isinstance(key, tuple):
        import torch.distributed as dist

        rank = dist.get_rank() if dist.is_initialized() else -1
        with open(os.path.join(os.environ["TINTLINE_TRACE_DIR"], f"{os.getpid()}.txt"), "a") as f:
            f.write(f"{rank} {int(key[0])} {int(key[1])}\\n")
    return _get(self, key)


PairDataset.__getitem__ = _traced
"""


def test_ddp_on_cpu_two_processes_stay_in_sync(built_dataset, tmp_path):
    """`--devices 2` on CPU: Lightning Fabric starts a second process (gloo); both train on their own shard of each
    epoch (disjoint images, seen in each process) and end with the same weights."""
    import os

    run = tmp_path / "ddp"
    hook, trace = tmp_path / "hook", tmp_path / "trace"
    hook.mkdir()
    trace.mkdir()
    (hook / "sitecustomize.py").write_text(DDP_TRACE)
    env = {**os.environ, "TINTLINE_TRACE_DIR": str(trace),
           "PYTHONPATH": os.pathsep.join([str(hook), *filter(None, [os.environ.get("PYTHONPATH")])])}
    cmd = [sys.executable, "-m", "tintline.cli", "train", str(built_dataset), str(run), "--devices", "2",
           "--max-steps", "3"]
    for s in TINY:
        cmd += ["--set", s]
    # a GAN with DRAGAN too (the default recipe has no D): the penalty goes through the unwrapped D, which must not
    # upset DDP's bookkeeping
    cmd += ["--set", "train.batch_size=2", "--set", "loss.gan_weight=1.0", "--set", "loss.dragan_weight=1.0"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    recs = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    final = recs[-1]
    assert final["final"] and final["world_size"] == 2
    assert final["ddp/param_spread"] == 0.0  # the ranks hold identical weights
    assert [r["step"] for r in recs if "ddp/param_spread" in r and not r.get("final")] == [2]
    assert all(r["ddp/param_spread"] == 0.0 for r in recs if "ddp/param_spread" in r)
    assert read_meta(run / "model.safetensors")["world_size"] == 2
    assert proc.stdout.count("trained to step 3") == 1  # rank 0 reports, rank 1 stays quiet
    # the shards: two processes, ranks 0 and 1, each loaded 3 steps x 2 samples of its own, none in common
    seen: dict[int, set] = {}
    for f in trace.glob("*.txt"):
        rows = {tuple(map(int, line.split())) for line in f.read_text().splitlines()}
        (rank,) = {r for r, _, _ in rows}
        assert rank not in seen, "two processes trained as the same rank"
        seen[rank] = {(e, i) for _, e, i in rows}
    assert set(seen) == {0, 1}
    assert len(seen[0]) == len(seen[1]) == 6
    assert not seen[0] & seen[1]


def test_bf16_mixed_precision_trains_on_cpu(built_dataset, tmp_path):
    run = tmp_path / "bf16"
    assert _train(built_dataset, run, "--max-steps", "2", "--precision", "bf16-mixed") == 0
    recs = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert all(np.isfinite(r["loss/g"]) for r in recs if not r.get("final"))
    assert read_meta(run / "model.safetensors")["config"]["train"]["precision"] == "bf16-mixed"
    weights = load_file(str(run / "model.safetensors"))
    assert all(v.dtype == torch.float32 for v in weights.values() if v.is_floating_point())  # stored in fp32


def test_init_from_the_shipped_model(built_dataset, tmp_path):
    run = tmp_path / "ft"
    shipped_args = ("model.generator.args={base: 24, depth: 6, max_width: 192, norm: instance, blend: multiply, "
                    "classes: 128}")
    assert _train(built_dataset, run, "--max-steps", "1", "--init-from", "default", "--set", shipped_args) == 0
    assert read_meta(run / "model.safetensors")["init_from"].endswith("default.safetensors")
    # the color-class head and its palette come from the shipped model when it has them, else they start fresh
    # (the palette fitted to this dataset: white first)
    palette = load_file(str(run / "model.safetensors"))["classes.palette"]
    assert palette.shape == (128, 3) and palette[0].tolist() == [100.0, 0.0, 0.0]


@pytest.mark.parametrize("decay", ["cosine", "linear"])
def test_learning_rate_decays_over_the_step_budget(decay, built_dataset, tmp_path):
    """optim.decay lowers the logged Adam rate step by step from lr_g to min_lr_scale * lr_g (by steps when the run
    has max_steps); the constant default keeps it."""
    from tintline.train.trainer import lr_factor

    assert lr_factor(decay, 0.1, 0.0) == 1.0 and lr_factor(decay, 0.1, 1.0) == pytest.approx(0.1)
    assert lr_factor(decay, 0.1, 0.5) == pytest.approx(0.55) and lr_factor("constant", 0.1, 0.7) == 1.0
    run = tmp_path / decay
    assert _train(built_dataset, run, "--config", "configs/l1.yaml", "--max-steps", "4", "--set",
                  f"optim.decay={decay}", "--set", "optim.min_lr_scale=0.1", "--set", "optim.lr_g=0.001") == 0
    lrs = {r["step"]: r["lr/g0"] for r in _records(run) if "lr/g0" in r}
    assert sorted(lrs) == [1, 2, 3, 4]
    for step, lr in lrs.items():  # the rate used by step s was set at progress (s - 1) / 4
        assert lr == pytest.approx(0.001 * lr_factor(decay, 0.1, (step - 1) / 4), abs=1e-6)  # logged to 6 places
    assert lrs[1] > lrs[2] > lrs[3] > lrs[4]
