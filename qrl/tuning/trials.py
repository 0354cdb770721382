"""One trial of a study: the sampled setting trained on K seeds side by side, scored by a
statistic over the seeds, and pruned on the seeds' aggregate learning curve.

Each seed is a ``qrl train`` run in its own process (one thread each), in
``<out>/trials/<number>/seed<k>/``, a run folder like any other (TensorBoard events,
learning curve, final evaluation). While they train, the trial reads their curve.json
files: at every learning-curve point all K seeds have reached, it reports the IQM over the
seeds of the point's mean return to the pruner, and stops every run when the pruner says
so. A run that fails makes the trial fail, with the run's last output in the trial's
``error`` attribute.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import yaml

from qrl.agents import build_model, resolve_config
from qrl.compare.launch import run_process
from qrl.compare.stats import iqm
from qrl.envs import make_envs
from qrl.errors import QrlError
from qrl.extractors import parameter_counts
from qrl.presets import RunConfig
from qrl.runs import Curve, read_json
from qrl.tuning.space import Space

OBJECTIVES = {
    "curve": "IQM over seeds of the mean return over the learning curve",
    "final": "IQM over seeds of the final model's mean return",
}
_POLL_S = 1.0


class TrialFailed(Exception):
    """A run of a trial failed (its output is in the message)."""


@dataclass
class Task:
    """What every trial of a study trains.

    :param agent: agent preset
    :param env: env preset or Gymnasium id
    :param seeds: the seeds of every trial (the same for all)
    :param timesteps: budget of every run
    :param fixed: ``--set`` items fixed for the whole study
    :param objective: "curve" or "final" (:data:`OBJECTIVES`)
    :param points: learning-curve points per run (``eval_freq`` = timesteps / points),
        unless ``eval_freq`` is fixed
    :param max_parameters: prune a setting with more trainable parameters before training
    :param gym_packages: modules that register the task
    """

    agent: str
    env: str
    seeds: list[int]
    timesteps: int
    fixed: dict[str, Any] = field(default_factory=dict)
    objective: str = "curve"
    points: int = 10
    max_parameters: int | None = None
    gym_packages: list[str] = field(default_factory=list)

    def settings(self, sampled: Mapping[str, Any]) -> dict[str, Any]:
        """The ``--set`` items of a trial: the fixed ones, the sampled ones, and the
        learning-curve frequency."""
        items = {**self.fixed, **sampled}
        if "eval_freq" not in items:
            items["eval_freq"] = max(math.ceil(self.timesteps / self.points), 1)
        return items

    def config(self, items: Mapping[str, Any], seed: int) -> RunConfig:
        """The resolved configuration of one run (every value checked)."""
        return resolve_config(
            self.agent, self.env, seed, self.timesteps, None, dict(items), self.gym_packages
        )


def _yaml(value: Any) -> str:
    return (
        yaml.safe_dump(value, default_flow_style=True, width=10_000).strip().removesuffix("\n...")
    )


def train_command(task: Task, items: Mapping[str, Any], seed: int, folder: Path) -> list[str]:
    """The ``qrl train`` arguments of one run of a trial."""
    args = ["train", "--agent", task.agent, "--env", task.env, "--seed", str(seed)]
    args += ["--timesteps", str(task.timesteps), "--run-dir", str(folder), "--no-progress"]
    if task.gym_packages:
        args += ["--gym-packages", *task.gym_packages]
    for key, value in items.items():
        args += ["--set", f"{key}={_yaml(value)}"]
    return args


class Objective:
    """The objective Optuna calls: train the trial's setting on the task's seeds.

    :param task: what every trial trains
    :param space: the search space
    :param out: the study folder (runs go to ``out/trials/<number>/seed<k>``)
    """

    def __init__(self, task: Task, space: Space, out: Path) -> None:
        self.task, self.space, self.out = task, space, out

    def __call__(self, trial: optuna.Trial) -> float:
        """Train, report, score; raises ``TrialPruned`` when the pruner stops the trial, and
        records why in the trial's ``error`` attribute when it fails."""
        try:
            return self._run(trial)
        except (QrlError, TrialFailed) as exc:
            if "error" not in trial.user_attrs:
                trial.set_user_attr("error", str(exc))
            raise

    def _run(self, trial: optuna.Trial) -> float:
        items = self.task.settings(self.space.sample(trial))
        trial.set_user_attr("settings", {k: _yaml(v) for k, v in items.items()})
        config = self.task.config(items, self.task.seeds[0])  # bad values: the trial fails
        counts = _parameters(config)
        trial.set_user_attr("parameters", counts["total"])
        trial.set_user_attr("parameters_quantum", counts.get("quantum", 0))
        limit = self.task.max_parameters
        if limit is not None and counts["total"] > limit:
            trial.set_user_attr("pruned_because", f"{counts['total']} parameters > {limit}")
            raise optuna.TrialPruned(f"{counts['total']} trainable parameters, over {limit}")
        folder = self.out / "trials" / f"{trial.number:04d}"
        trial.set_user_attr("folder", str(folder))
        start = time.perf_counter()
        runs = {s: folder / f"seed{s}" for s in self.task.seeds}
        outcome = _train_side_by_side(self.task, items, runs, trial)
        trial.set_user_attr("wall_time_s", round(time.perf_counter() - start, 1))
        return self._score(trial, runs, outcome)

    def _score(self, trial: optuna.Trial, runs: dict[int, Path], codes: dict[int, int]) -> float:
        failed = {s: code for s, code in codes.items() if code != 0}
        if failed:
            seed, code = next(iter(failed.items()))
            log = (runs[seed] / "train.log").read_text(errors="replace")[-1500:]
            trial.set_user_attr("error", f"seed {seed} exited with {code}: {log}")
            raise TrialFailed(f"trial {trial.number}: seed {seed} exited with {code}")
        finals, curves = [], []
        for seed, path in runs.items():
            evaluation = read_json(path / "eval.json") or {}
            if "mean_return" not in evaluation:
                raise TrialFailed(f"trial {trial.number}: seed {seed} has no final evaluation")
            finals.append(float(evaluation["mean_return"]))
            curve = _curve(path)
            trained = (
                [r for t, r in zip(curve.timesteps, curve.returns, strict=True) if t > 0]
                if curve
                else []
            )
            means = [float(np.mean(r)) for r in trained] or [finals[-1]]
            curves.append(float(np.mean(means)))
        trial.set_user_attr("final_returns", finals)
        trial.set_user_attr("curve_means", curves)
        trial.set_user_attr("final_iqm", float(iqm(np.asarray(finals))))
        trial.set_user_attr("curve_iqm", float(iqm(np.asarray(curves))))
        values = finals if self.task.objective == "final" else curves
        return float(iqm(np.asarray(values)))


def _parameters(config: RunConfig) -> dict[str, int]:
    """Trainable parameters of a configuration's model (built, not trained)."""
    envs = make_envs(config, seed=config.seed)
    try:
        return parameter_counts(build_model(config, envs))
    finally:
        envs.close()


def _curve(path: Path) -> Curve | None:
    """A run's learning curve so far (curve.json is written atomically: read at any time)."""
    data = read_json(path / "curve.json")
    return None if data is None else Curve.from_dict(data)


def _train_side_by_side(
    task: Task, items: Mapping[str, Any], runs: dict[int, Path], trial: optuna.Trial
) -> dict[int, int]:
    """Train every seed in its own process at once; report the aggregate learning curve to
    the pruner as points arrive; stop them all (they save) when it prunes.

    :return: each seed's exit status
    :raises optuna.TrialPruned: when the pruner stops the trial
    """
    stop = threading.Event()
    codes: dict[int, int] = {}

    def launch(seed: int, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        args = train_command(task, items, seed, folder)
        codes[seed] = run_process(args, folder / "train.log", stop, stop_with_parent=True)

    threads = [threading.Thread(target=launch, args=(s, f), daemon=True) for s, f in runs.items()]
    for thread in threads:
        thread.start()
    reported = 0
    try:
        while any(t.is_alive() for t in threads):
            time.sleep(_POLL_S)
            if any(code != 0 for code in codes.values()):  # a seed failed: so does the trial
                stop.set()
                for thread in threads:
                    thread.join()
                return codes
            reported, prune = _report(trial, runs, reported)
            if prune:
                stop.set()
                for thread in threads:
                    thread.join()
                raise optuna.TrialPruned(f"pruned at point {reported}")
    except BaseException:
        stop.set()
        for thread in threads:
            thread.join()
        raise
    reported, prune = _report(trial, runs, reported)
    if prune:  # the last points arrived as the runs ended
        raise optuna.TrialPruned(f"pruned at point {reported}")
    return codes


def _report(trial: optuna.Trial, runs: dict[int, Path], reported: int) -> tuple[int, bool]:
    """Report, one at a time, the learning-curve points every seed has reached since the
    last report, asking the pruner after each.

    :return: the number of points reported so far, and whether the pruner stops the trial
    """
    curves = [_curve(path) for path in runs.values()]
    if any(c is None for c in curves):
        return reported, False
    ready = min(len(c.timesteps) for c in curves if c is not None)
    for index in range(reported, ready):
        means = [float(np.mean(c.returns[index])) for c in curves if c is not None]
        step = max(c.timesteps[index] for c in curves if c is not None)
        if step == 0:  # the untrained policy: nothing to judge a setting by
            continue
        trial.report(float(iqm(np.asarray(means))), step)
        if trial.should_prune():
            return index + 1, True
    return max(ready, reported), False


def check_task(task: Task) -> RunConfig:
    """Check a task before a study starts: its configuration resolves and builds.

    :raises QrlError: naming the problem
    """
    if task.objective not in OBJECTIVES:
        raise QrlError(f"unknown objective {task.objective!r}; valid: {', '.join(OBJECTIVES)}")
    config = task.config(task.settings({}), task.seeds[0])
    _parameters(config)
    return config


def fixed_config(task: Task, sampled: Mapping[str, Any]) -> RunConfig:
    """The resolved configuration of a setting (for best.yaml)."""
    return task.config(task.settings(sampled), task.seeds[0])
