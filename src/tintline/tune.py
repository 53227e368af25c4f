"""``tintline tune DATASET STUDY_DIR``: random, coarse-to-fine hyperparameter search on Optuna, with pruning.

The method's tuning advice as a command:

* a **search space** in YAML over any recipe field (``section.field``, generator arguments as
  ``model.generator.args.NAME``): ``{low, high}`` (uniform), ``{low, high, log: true}`` (log-uniform: learning
  rates, weights), ``{low, high, int: true}``, or ``{choices: [...]}`` (:data:`DEFAULT_SPACE` without ``--space``);
* **random search, coarse to fine**: the first ``coarse`` trials (default half) sample the whole space at random;
  the rest sample a box around the best quarter of the finished trials (each numeric range narrowed to theirs and
  widened by ``JITTER`` of its width, in log space for log ranges; categories narrowed to those the best used);
* every trial trains the recipe for ``--minutes-per-trial`` (equal time, so fast settings get more steps) and is
  scored by the mean validation PSNR with and without hints (higher is better); the trainer reports it at every
  validation and Optuna's median pruner stops trials that fall behind the median of earlier trials at that step;
* the study lives in ``sqlite:///STUDY_DIR/study.db`` unless ``--storage`` names another database (PostgreSQL,
  MySQL: start the same command on several machines and they share the trials). A killed run loses only its
  running trial: ``--resume`` marks this machine's orphaned trials failed and goes on until ``--trials`` trials
  have finished;
* ``STUDY_DIR/report.html`` (trial table, history, parameter importances) and ``STUDY_DIR/best.yaml`` (the best
  trial's recipe, which ``tintline train --config`` accepts) are rewritten after every trial.
"""

from __future__ import annotations

import json
import math
import os
import socket
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from .config import ConfigError, TrainConfig, dump_yaml, load_train_config
from .errors import UserError
from .monitor.html import line_plot, table, write_page

STUDY = "tintline"
JITTER = 0.2
DEFAULT_SPACE: dict[str, dict[str, Any]] = {
    "optim.lr_g": {"low": 1e-4, "high": 3e-3, "log": True},
    "loss.region": {"low": 0.0, "high": 4.0},
    "loss.classes": {"low": 0.0, "high": 4.0},
    "hints.p_region": {"low": 0.0, "high": 1.0},
}


@dataclass(frozen=True)
class Param:
    name: str
    low: float | None = None
    high: float | None = None
    log: bool = False
    integer: bool = False
    choices: tuple | None = None

    def spec(self) -> dict[str, Any]:
        if self.choices is not None:
            return {"choices": list(self.choices)}
        return {"low": self.low, "high": self.high, "log": self.log, "int": self.integer}


def _check_field(name: str, value: Any, config: str | Path | None) -> None:
    try:
        load_train_config(config, _overrides({name: value}, config))
    except ConfigError as e:
        raise UserError(f"search space: {name}: {e}") from e


def parse_space(raw: Any, config: str | Path | None = None) -> dict[str, Param]:
    """A YAML mapping (see the module docstring) -> checked parameters; one-line errors for unknown fields,
    empty ranges and bad specs."""
    if not isinstance(raw, dict) or not raw:
        raise UserError("search space: a YAML mapping of field -> {low, high[, log, int]} or {choices}")
    space: dict[str, Param] = {}
    for name, spec in raw.items():
        if not isinstance(spec, dict):
            raise UserError(f"search space: {name}: expected {{low, high}} or {{choices}}, got {spec!r}")
        unknown = set(spec) - {"low", "high", "log", "int", "choices"}
        if unknown:
            raise UserError(f"search space: {name}: unknown keys {sorted(unknown)}")
        if "choices" in spec:
            choices = spec["choices"]
            if not isinstance(choices, list) or not choices:
                raise UserError(f"search space: {name}: choices must be a non-empty list")
            for c in choices:
                _check_field(name, c, config)
            space[name] = Param(name, choices=tuple(choices))
            continue
        try:
            low, high = float(spec["low"]), float(spec["high"])
        except (KeyError, TypeError, ValueError) as e:
            raise UserError(f"search space: {name}: needs numbers low and high") from e
        if not low < high:
            raise UserError(f"search space: {name}: empty range [{low:g}, {high:g}]")
        log, integer = bool(spec.get("log", False)), bool(spec.get("int", False))
        if log and low <= 0:
            raise UserError(f"search space: {name}: a log range needs low > 0")
        p = Param(name, low, high, log, integer)
        for v in (low, high):
            _check_field(name, int(v) if integer else v, config)
        space[name] = p
    return space


def load_space(path: str | Path | None, config: str | Path | None = None) -> dict[str, Param]:
    if path is None:
        return parse_space(DEFAULT_SPACE, config)
    p = Path(path)
    if not p.is_file():
        raise UserError(f"search space not found: {p}")
    try:
        raw = yaml.safe_load(p.read_text())
    except yaml.YAMLError as e:
        raise UserError(f"{p}: not valid YAML ({str(e).splitlines()[0]})") from e
    return parse_space(raw, config)


def _overrides(params: dict[str, Any], config: str | Path | None) -> list[str]:
    """Trial parameters -> ``--set`` overrides; network arguments are merged into the recipe's (the config replaces
    a network's ``args`` as a whole)."""
    out, nets = [], {}
    for name, value in params.items():
        for net in ("model.generator.args.", "model.discriminator.args."):
            if name.startswith(net):
                nets.setdefault(net[:-1], {})[name[len(net):]] = value
                break
        else:
            out.append(f"{name}={json.dumps(value)}")
    if nets:
        base = load_train_config(config).model
        for key, extra in nets.items():
            args = dict((base.generator if "generator" in key else base.discriminator).args)
            args.update(extra)
            out.append(f"{key}={json.dumps(args)}")
    return out


def _distributions(space: dict[str, Param]) -> dict[str, Any]:
    import optuna.distributions as D

    out: dict[str, Any] = {}
    for name, p in space.items():
        if p.choices is not None:
            out[name] = D.CategoricalDistribution(list(p.choices))
        elif p.integer:
            out[name] = D.IntDistribution(int(p.low), int(p.high), log=p.log)
        else:
            out[name] = D.FloatDistribution(p.low, p.high, log=p.log)
    return out


def narrow(space: dict[str, Param], best: list[dict[str, Any]], jitter: float = JITTER) -> dict[str, Param]:
    """The fine stage's space: each range shrunk to the values of the ``best`` trials' parameters, widened by
    ``jitter`` of its width (of the full range when they agree), clipped to the original range."""
    if not best:
        return space
    out = {}
    for name, p in space.items():
        vals = [b[name] for b in best if name in b]
        if not vals:
            out[name] = p
        elif p.choices is not None:
            keep = tuple(c for c in p.choices if c in vals)
            out[name] = Param(name, choices=keep or p.choices)
        else:
            f = (lambda v: math.log(v)) if p.log else (lambda v: v)
            g = (lambda v: math.exp(v)) if p.log else (lambda v: v)
            lo, hi = f(min(vals)), f(max(vals))
            span = (hi - lo) or (f(p.high) - f(p.low))
            lo, hi = max(f(p.low), lo - jitter * span), min(f(p.high), hi + jitter * span)
            low, high = g(lo), g(hi)
            if p.integer:
                low, high = math.floor(low), math.ceil(high)
            if not low < high:
                low, high = p.low, p.high
            out[name] = Param(name, low, high, p.log, p.integer)
    return out


def score(metrics: dict[str, float]) -> float:
    """The objective: mean validation PSNR with and without hints (dB; higher is better)."""
    return 0.5 * (metrics["val/psnr_hints"] + metrics["val/psnr_nohints"])


def _worker() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def _alive(worker: str) -> bool:
    host, _, pid = worker.rpartition(":")
    if host != socket.gethostname():
        return True  # another machine's trial: not ours to judge
    try:
        os.kill(int(pid), 0)
    except (OSError, ValueError):
        return False
    return True


def open_study(study_dir: Path, storage: str | None, resume: bool, space: dict[str, Param], pruner: Any = None):
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = storage or f"sqlite:///{study_dir / 'study.db'}"
    try:
        names = [s.study_name for s in optuna.get_all_study_summaries(storage)]
    except Exception as e:  # sqlalchemy: locked, unreachable, not a database
        raise UserError(f"study storage {storage}: {str(e).splitlines()[0][:160]}") from e
    if STUDY in names and not resume:
        raise UserError(f"{storage} already holds a study; pass --resume to continue it (or another STUDY_DIR)")
    if STUDY not in names and resume:
        raise UserError(f"{storage}: no study to resume")
    try:
        study = optuna.create_study(study_name=STUDY, storage=storage, direction="maximize", load_if_exists=True,
                                    pruner=pruner or optuna.pruners.MedianPruner(n_startup_trials=2))
    except Exception as e:
        raise UserError(f"study storage {storage}: {str(e).splitlines()[0][:160]}") from e
    spec = json.dumps({k: p.spec() for k, p in sorted(space.items())}, sort_keys=True)
    known = study.user_attrs.get("space")
    if known is not None and known != spec:
        raise UserError(f"{storage}: this study searched another space ({known[:120]}...); use another STUDY_DIR")
    if known is None:
        study.set_user_attr("space", spec)
    return study


def run_tune(dataset: str | Path, study_dir: str | Path, trials: int, minutes: float, storage: str | None = None,
             space_path: str | Path | None = None, resume: bool = False, config: str | Path | None = None,
             overrides: list[str] | None = None, coarse: int | None = None, max_steps: int = 0, seed: int = 0,
             pruner: Any = None, on_trial: Callable[[Any], None] | None = None) -> dict[str, Any]:
    """Run trials until ``trials`` have finished (complete or pruned) in the study; returns a summary."""
    import optuna

    from .train.trainer import Trainer, TrainingError

    if trials < 1 or minutes <= 0:
        raise UserError("--trials must be >= 1 and --minutes-per-trial > 0")
    study_dir = Path(study_dir)
    study_dir.mkdir(parents=True, exist_ok=True)
    space = load_space(space_path, config)
    study = open_study(study_dir, storage, resume, space, pruner)
    for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
        if not _alive(str(t.user_attrs.get("worker", ""))):  # a killed run's trial: lost, not to be waited for
            study.tell(t.number, state=optuna.trial.TrialState.FAIL)
    coarse = max(1, trials // 2) if coarse is None else coarse
    sampler = optuna.samplers.RandomSampler(seed=seed + len(study.trials))
    study.sampler = sampler
    finished_states = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)
    while len(study.get_trials(deepcopy=False, states=finished_states)) < trials:
        done = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
        fine = len(study.get_trials(deepcopy=False, states=finished_states)) >= coarse and len(done) >= 1
        stage_space = space
        if fine:
            ranked = sorted(done, key=lambda t: t.value, reverse=True)
            stage_space = narrow(space, [t.params for t in ranked[: max(2, len(ranked) // 4)]])
        trial = study.ask(_distributions(stage_space))
        trial.set_user_attr("stage", "fine" if fine else "coarse")
        trial.set_user_attr("worker", _worker())
        sets = [*(overrides or []), *_overrides(trial.params, config), f"train.minutes={minutes}"]
        if max_steps:
            sets.append(f"train.max_steps={max_steps}")
        cfg = load_train_config(config, sets)
        run_dir = study_dir / f"trial_{trial.number:04d}"

        def report(step: int, metrics: dict[str, float], trial=trial) -> None:
            trial.report(score(metrics), step)
            if trial.should_prune():
                raise optuna.TrialPruned()

        try:
            trainer = Trainer(cfg, Path(dataset), run_dir)
            trainer.on_validate = report
            result = trainer.fit()
            study.tell(trial, score(result))
        except optuna.TrialPruned:
            study.tell(trial, state=optuna.trial.TrialState.PRUNED)
        except TrainingError as e:  # NaN, a crop the network cannot take: this trial failed, the study goes on
            trial.set_user_attr("error", str(e)[:300])
            study.tell(trial, state=optuna.trial.TrialState.FAIL)
        (study_dir / f"trial_{trial.number:04d}.yaml").write_text(dump_yaml(cfg))
        write_report(study, study_dir, config, overrides)
        if on_trial is not None:
            on_trial(trial)
    return write_report(study, study_dir, config, overrides)


def _importances(study: Any) -> dict[str, float]:
    import optuna

    if len(study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))) < 4:
        return {}  # too few to say anything
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return optuna.importance.get_param_importances(
                study, evaluator=optuna.importance.PedAnovaImportanceEvaluator())
    except Exception:  # a single-valued parameter, or too few distinct values
        return {}


def write_report(study: Any, study_dir: Path, config: str | Path | None, overrides: list[str] | None
                 ) -> dict[str, Any]:
    import optuna

    trials = study.get_trials(deepcopy=False)
    complete = [t for t in trials if t.state == optuna.trial.TrialState.COMPLETE]
    best = max(complete, key=lambda t: t.value) if complete else None
    summary: dict[str, Any] = {"trials": len(trials), "complete": len(complete),
                               "pruned": sum(t.state == optuna.trial.TrialState.PRUNED for t in trials),
                               "failed": sum(t.state == optuna.trial.TrialState.FAIL for t in trials)}
    if best is not None:
        cfg: TrainConfig = load_train_config(config, [*(overrides or []), *_overrides(best.params, config)])
        (study_dir / "best.yaml").write_text(f"# tintline tune: trial {best.number}, validation PSNR "
                                             f"{best.value:.3f} dB\n" + dump_yaml(cfg))
        summary.update({"best_trial": best.number, "best_value": best.value, "best_params": best.params})
    hist, running_best, top = [], [], -math.inf
    for t in complete:
        hist.append((t.number, t.value))
        top = max(top, t.value)
        running_best.append((t.number, top))
    rows = [[t.number, t.state.name.lower(), t.user_attrs.get("stage", ""),
             "" if t.value is None else f"{t.value:.3f}",
             ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in t.params.items())]
            for t in trials]
    imp = _importances(study)
    body = (f"<p>{summary['complete']} complete, {summary['pruned']} pruned, {summary['failed']} failed. "
            + (f"Best: trial {best.number}, {best.value:.3f} dB (<code>best.yaml</code>).</p>" if best else "</p>")
            + line_plot({"trial": hist, "best so far": running_best}, "validation PSNR (mean of with / without "
                        "hints)", xlabel="trial")
            + ("<h2>Parameter importances</h2>" + table(["parameter", "importance"],
                                                        [[k, f"{v:.3f}"] for k, v in imp.items()])
               if imp else "<p>Parameter importances: after more complete trials.</p>")
            + "<h2>Trials</h2>" + table(["#", "state", "stage", "PSNR dB", "parameters"], rows))
    write_page(study_dir / "report.html", "tintline tune", body)
    (study_dir / "summary.json").write_text(json.dumps(summary, indent=1, default=str))
    return summary
