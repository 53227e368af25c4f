"""tintline tune: the search space is checked, trials train and report, one is pruned, a killed study resumes
(losing only its running trial), the coarse-to-fine narrowing, the report and the best recipe."""

from __future__ import annotations

import json
import socket

import optuna
import pytest

from tintline.cli import main
from tintline.config import load_train_config
from tintline.errors import UserError
from tintline.tune import Param, narrow, parse_space, run_tune

TINY = ["model.generator.args={base: 8, depth: 5, max_width: 32, classes: 8}", "train.batch_size=4",
        "train.crop=64", "train.sample_every=1", "train.log_every=1", "train.val_images=2", "train.inspect_every=0",
        "train.ckpt_every=1000"]


class PruneTrialOne(optuna.pruners.BasePruner):
    """Prunes trial 1 at its first report (deterministic, unlike the median rule on a tiny run)."""

    def prune(self, study, trial):
        return trial.number == 1


@pytest.mark.parametrize("space, message", [
    ({"optim.no_such_field": {"low": 0, "high": 1}}, "no_such_field"),
    ({"optim.lr_g": {"low": 0.01, "high": 0.01}}, "empty range"),
    ({"optim.lr_g": {"low": 0, "high": 1, "log": True}}, "log range"),
    ({"optim.lr_g": {"choices": []}}, "non-empty list"),
    ({"optim.lr_g": [1, 2]}, "expected"),
])
def test_bad_search_spaces_get_one_line_errors(space, message):
    with pytest.raises(UserError, match=message):
        parse_space(space)


def test_narrow_shrinks_ranges_around_the_best():
    space = {"lr": Param("lr", 1e-5, 1e-1, log=True), "w": Param("w", 0.0, 10.0),
             "c": Param("c", choices=("a", "b", "c"))}
    out = narrow(space, [{"lr": 1e-3, "w": 2.0, "c": "b"}, {"lr": 2e-3, "w": 4.0, "c": "b"}])
    assert 1e-5 < out["lr"].low < 1e-3 and 2e-3 < out["lr"].high < 1e-1
    assert out["w"].low == pytest.approx(1.6) and out["w"].high == pytest.approx(4.4)
    assert out["c"].choices == ("b",)


def test_tune_prunes_resumes_and_writes_the_best_recipe(built_dataset, tmp_path, capsys):
    study = tmp_path / "study"
    space = tmp_path / "space.yaml"
    space.write_text("optim.lr_g: {low: 0.0001, high: 0.003, log: true}\nloss.region: {low: 0, high: 4}\n")
    kw = {"space_path": space, "overrides": TINY, "max_steps": 2, "pruner": PruneTrialOne()}
    first = run_tune(built_dataset, study, trials=2, minutes=5, **kw)
    assert first["complete"] == 1 and first["pruned"] == 1
    # a killed run: a trial left running by a process that no longer exists
    s = optuna.load_study(study_name="tintline", storage=f"sqlite:///{study / 'study.db'}")
    orphan = s.ask()
    orphan.set_user_attr("worker", f"{socket.gethostname()}:999999999")
    with pytest.raises(UserError, match="--resume"):
        run_tune(built_dataset, study, trials=3, minutes=5, **kw)
    done = run_tune(built_dataset, study, trials=3, minutes=5, resume=True, **kw)
    assert done["complete"] == 2 and done["pruned"] == 1 and done["failed"] == 1  # the orphan: lost, not redone
    states = {t.number: t.state for t in s.get_trials()}
    assert states[orphan.number] == optuna.trial.TrialState.FAIL
    assert [t.user_attrs["stage"] for t in s.get_trials() if "stage" in t.user_attrs][-1] == "fine"
    best = load_train_config(study / "best.yaml")
    assert best.optim.lr_g == pytest.approx(done["best_params"]["optim.lr_g"])
    assert "Trials" in (study / "report.html").read_text()
    assert json.loads((study / "summary.json").read_text())["complete"] == 2
    other = tmp_path / "other.yaml"
    other.write_text("optim.lr_g: {low: 0.0001, high: 0.001}\n")
    with pytest.raises(UserError, match="another space"):
        run_tune(built_dataset, study, trials=4, minutes=5, resume=True, space_path=other, overrides=TINY)
    assert main(["tune", str(built_dataset), str(tmp_path / "s2"), "--trials", "1", "--minutes-per-trial", "0"]) != 0
