"""``qrl tune``: multi-seed hyperparameter search on Optuna.

A trial trains its setting on K seeds side by side (:mod:`qrl.tuning.trials`) and scores it
by a statistic over the seeds, so that a setting that works on one lucky seed does not win;
the pruner reads the seeds' aggregate learning curve. Search spaces are YAML files
(:mod:`qrl.tuning.space`); the study lives in a SQLite file in the study folder or in any
database or journal file Optuna takes (:mod:`qrl.tuning.study`); the folder gets the trials'
runs, a CSV table, plots and ``best.yaml`` (:mod:`qrl.tuning.outputs`).

The study folder has one study: ``tune.yaml`` records what it tunes, and a later command
into the same folder must tune the same thing (it continues the study, up to ``--trials``
trials in all).
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml

from qrl.errors import QrlError
from qrl.presets import override_items, read_yaml, whole_number
from qrl.runs import hold, write_atomic
from qrl.tuning.space import load_space
from qrl.tuning.study import redacted
from qrl.tuning.trials import Objective, Task, TrialFailed, check_task

SETTINGS = "tune.yaml"


@dataclass
class Tuning:
    """A study: what it tunes and how it searches.

    :param task: what every trial trains
    :param out: the study folder
    :param trials: trials in the study in all (a rerun adds the missing ones)
    :param space: a search-space file of the user's (None: the shipped spaces)
    :param sampler: tpe, random, cmaes or qmc
    :param sampler_seed: the sampler's seed (see :func:`qrl.tuning.study.worker_seed`)
    :param pruner: median, halving, hyperband or none
    :param storage: an Optuna storage URL (None: SQLite in ``out``)
    :param workers: local processes running trials at once
    :param study_name: the study's name in the storage
    """

    task: Task
    out: Path
    trials: int
    space: str | None = None
    sampler: str = "tpe"
    sampler_seed: int | None = 0
    pruner: str = "median"
    storage: str | None = None
    workers: int = 1
    study_name: str | None = None
    record: dict[str, Any] = field(default_factory=dict)

    @property
    def name(self) -> str:
        """The study's name: given, or ``<env>-<agent>``."""
        return self.study_name or f"{self.task.env}-{Path(self.task.agent).stem}".replace("/", "_")


def tune(
    agent: str,
    env: str,
    trials: int,
    seeds: int = 3,
    timesteps: int | None = None,
    out: str | Path = "runs/tune",
    overrides: Sequence[str] | Mapping[str, Any] = (),
    space: str | Path | None = None,
    objective: str = "curve",
    sampler: str = "tpe",
    sampler_seed: int | None = 0,
    pruner: str = "median",
    storage: str | None = None,
    workers: int = 1,
    study_name: str | None = None,
    first_seed: int = 1000,
    points: int = 10,
    max_parameters: int | None = None,
    gym_packages: Sequence[str] = (),
) -> Any:
    """Search hyperparameters of an agent on a task: see the module docstring.

    :param agent: agent preset name or path
    :param env: env preset or Gymnasium id
    :param trials: trials in the study in all
    :param seeds: seeds per trial, trained side by side
    :param timesteps: budget of every run (the env preset's by default)
    :param out: the study folder
    :param overrides: settings fixed for every trial (``--set``), not searched
    :param space: a search-space file (None: the shipped spaces for the agent)
    :param objective: "curve" (IQM over seeds of the mean return over the learning curve)
        or "final" (of the final model's mean return)
    :param sampler: tpe, random, cmaes or qmc
    :param sampler_seed: the sampler's seed
    :param pruner: median, halving, hyperband or none
    :param storage: an Optuna storage URL (``postgresql://...``, ``journal:PATH``)
    :param workers: local processes running trials at once
    :param study_name: the study's name in the storage (``<env>-<agent>`` by default)
    :param first_seed: the seeds of every trial are ``first_seed .. first_seed + seeds - 1``
        (keep them apart from the seeds a result is verified on)
    :param points: learning-curve points per run, the pruner's checkpoints
    :param max_parameters: prune settings with more trainable parameters, before training
    :param gym_packages: modules that register the task
    :return: the Optuna study
    """
    from qrl.tuning.study import PRUNERS, SAMPLERS, make_pruner, make_sampler, storage_url

    seeds = whole_number(seeds, "--seeds", 1)
    trials = whole_number(trials, "--trials", 1)
    workers = whole_number(workers, "--workers", 1)
    points = whole_number(points, "--points", 1)
    first_seed = whole_number(first_seed, "--first-seed", 0)
    if sampler not in SAMPLERS:
        make_sampler(sampler, None)  # the error names the valid ones
    if pruner not in PRUNERS:
        make_pruner(pruner, 1)
    fixed = override_items(overrides)
    task = Task(
        agent=agent,
        env=env,
        seeds=list(range(first_seed, first_seed + seeds)),
        timesteps=0,
        fixed=fixed,
        objective=objective,
        points=points,
        max_parameters=max_parameters,
        gym_packages=list(gym_packages),
    )
    config = check_task(_with_budget(task, timesteps))
    task.timesteps = config.timesteps
    search = load_space(config, space, fixed)
    settings = Tuning(
        task, Path(out), trials, None if space is None else str(Path(space).resolve()),
        sampler, sampler_seed, pruner, storage, workers, study_name,
    )  # fmt: skip
    settings.record = {
        "space": [p.key for p in search.parameters],
        "space_files": list(search.sources),
    }
    settings.out.mkdir(parents=True, exist_ok=True)
    with hold(settings.out):
        _check_folder(settings)
        url = storage_url(storage, settings.out)
        from qrl.tuning.study import run_workers

        missing = settings.trials - len(_open(settings, url, settings.sampler_seed).trials)
        if missing > 0:  # no more workers than trials to run
            run_workers(min(workers, missing), functools.partial(_work, settings, url))
        return _finish(settings, url)


def _open(settings: Tuning, url: str, seed: int | None) -> Any:
    """The study (created on first use), with the settings' sampler and pruner."""
    from qrl.tuning.study import make_pruner, make_sampler, open_study

    return open_study(
        settings.name,
        url,
        make_sampler(settings.sampler, seed),
        make_pruner(settings.pruner, settings.task.timesteps, settings.task.points),
    )


def _with_budget(task: Task, timesteps: int | None) -> Task:
    """The task with its budget: given, or the env preset's (resolved by the caller)."""
    if timesteps is not None:
        task.timesteps = whole_number(timesteps, "--timesteps", 1)
        return task
    from qrl.agents import resolve_config

    config = resolve_config(task.agent, task.env, 0, None, None, task.fixed, task.gym_packages)
    task.timesteps = config.timesteps
    return task


def _record(settings: Tuning) -> dict[str, Any]:
    """What tune.yaml records: what is tuned, which a continuing command must match."""
    task = asdict(settings.task)
    return {
        "study": settings.name,
        "task": task,
        "space": settings.space,
        "parameters": settings.record.get("space"),
        "storage": redacted(settings.storage) if settings.storage else "sqlite (study.db)",
    }


def _check_folder(settings: Tuning) -> None:
    """Write tune.yaml for a new study; refuse a folder that holds another study.

    :raises QrlError: naming what differs
    """
    path = settings.out / SETTINGS
    record = _record(settings)
    if path.is_file():
        before = read_yaml(path)
        differs = [
            k for k in ("study", "task", "space", "parameters") if before.get(k) != record[k]
        ]
        if differs:
            raise QrlError(
                f"{settings.out} holds another study ({', '.join(differs)} differ; see "
                f"{path}): use another --out, or the same settings to continue it"
            )
        return
    write_atomic(path, yaml.safe_dump(record, sort_keys=False))


def _work(settings: Tuning, url: str, worker: int) -> None:
    """One worker: run trials until the study holds ``settings.trials`` of them."""
    import optuna

    from qrl.processes import stop_with_parent
    from qrl.tuning.study import make_sampler, worker_seed

    if worker:
        stop_with_parent()
    study = _open(settings, url, None)
    seed = worker_seed(settings.sampler, settings.sampler_seed, worker, len(study.trials))
    study.sampler = make_sampler(settings.sampler, seed)
    config = check_task(settings.task)
    space = load_space(config, settings.space, settings.task.fixed)
    objective = Objective(settings.task, space, settings.out)
    missing = settings.trials - len(study.trials)
    if missing <= 0:
        return
    study.optimize(
        objective,
        n_trials=missing,
        catch=(TrialFailed, QrlError),
        callbacks=[optuna.study.MaxTrialsCallback(settings.trials, states=None)],
    )


def _finish(settings: Tuning, url: str) -> Any:
    """Write trials.csv, the plots and best.yaml; print the summary on stderr."""
    from qrl.tuning.outputs import summary, write_best, write_plots, write_trials_csv

    study = _open(settings, url, settings.sampler_seed)
    write_trials_csv(study, settings.out / "trials.csv")
    write_plots(study, settings.out / "plots")
    written = write_best(study, settings.task, settings.out / "best.yaml")
    print(f"qrl tune: {summary(study)}", file=sys.stderr)
    if written:
        print(f"qrl tune: best setting in {settings.out / 'best.yaml'}", file=sys.stderr)
    return study
