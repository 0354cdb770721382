"""What a study leaves in its folder: the table of trials, plots, and the best setting as an
agent preset that ``qrl train --agent DIR/best.yaml`` uses directly."""

from __future__ import annotations

import io
import math
import warnings
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only, no display

import matplotlib.pyplot as plt
import optuna
import yaml
from optuna.trial import TrialState

from qrl.presets import ZOO_KEYS, check_before_writing
from qrl.runs import write_atomic
from qrl.tuning.trials import OBJECTIVES, Task, fixed_config

COLUMNS = ("number", "state", "value", "duration", "params_*", "user_attrs_*")


def write_trials_csv(study: optuna.Study, path: Path) -> int:
    """Write every trial (number, state, value, parameters, seeds' returns, parameter count,
    wall time) as CSV.

    :return: the number of trials written
    """
    frame = study.trials_dataframe(multi_index=False)
    keep = [c for c in frame.columns if not c.startswith(("datetime_", "system_attrs"))]
    keep = [c for c in keep if c != "user_attrs_settings"]
    buffer = io.StringIO()
    frame[keep].to_csv(buffer, index=False)
    write_atomic(path, buffer.getvalue())
    return len(frame)


def write_plots(study: optuna.Study, folder: Path) -> list[str]:
    """Optimisation history, parameter importances, slice and parallel-coordinate plots as
    PNG; those a study cannot draw yet (importances need two finished trials that differ)
    are left out.

    :return: the files written
    """
    folder.mkdir(parents=True, exist_ok=True)
    finished = [t for t in study.trials if t.state == TrialState.COMPLETE]
    plots: dict[str, Any] = {
        "history": optuna.visualization.matplotlib.plot_optimization_history,
        "importances": optuna.visualization.matplotlib.plot_param_importances,
        "slice": optuna.visualization.matplotlib.plot_slice,
        "parallel": optuna.visualization.matplotlib.plot_parallel_coordinate,
        "intermediate": optuna.visualization.matplotlib.plot_intermediate_values,
    }
    written = []
    for name, plot in plots.items():
        if name != "intermediate" and not finished:
            continue
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # Optuna marks its matplotlib plots experimental
                axes = plot(study)
        except (ValueError, RuntimeError, ZeroDivisionError):
            continue  # not drawable from these trials yet
        figure = _figure(axes)
        buffer = io.BytesIO()
        figure.savefig(buffer, format="png", dpi=100, bbox_inches="tight")
        plt.close(figure)
        write_atomic(folder / f"{name}.png", buffer.getvalue())
        written.append(f"{name}.png")
    return written


def _figure(axes: Any) -> Any:
    first = axes.flat[0] if hasattr(axes, "flat") else axes
    return first.get_figure()


def best_preset(study: optuna.Study, task: Task) -> dict[str, Any] | None:
    """The best trial's setting as an agent preset (None before a trial completes).

    Every policy option and hyperparameter of the resolved configuration is written out,
    so the preset trains the same agent whatever the env preset's defaults are; the zoo's
    task options the setting changes (``normalize``, ``n_envs``, ...) go among the
    hyperparameters, where presets read them.
    """
    try:
        best = study.best_trial
    except ValueError:
        return None
    settings = {k: _read(v) for k, v in best.user_attrs.get("settings", {}).items()}
    config = fixed_config(task, settings)
    default = fixed_config(task, {})
    hyper = dict(config.hyperparameters)
    for key in (*ZOO_KEYS, "n_envs"):  # task options the setting changes
        if getattr(config, key) != getattr(default, key):
            hyper[key] = getattr(config, key)
    values = ", ".join(f"{v:.1f}" for v in best.user_attrs.get("final_returns", []))
    return {
        "description": (
            f"{task.agent} tuned by qrl tune on {task.env} (study {study.study_name!r}, "
            f"trial {best.number}): {OBJECTIVES[task.objective]} = {best.value:.1f} over "
            f"seeds {task.seeds} at {task.timesteps} steps; final returns {values}"
        ),
        "algorithm": config.algorithm,
        "policy": config.policy,
        "hyperparameters": hyper,
    }


def _read(text: Any) -> Any:
    return yaml.safe_load(text) if isinstance(text, str) else text


def write_best(study: optuna.Study, task: Task, path: Path) -> bool:
    """Write best.yaml (nothing before a trial completes).

    :return: whether it was written
    """
    preset = best_preset(study, task)
    if preset is None:
        return False
    check_before_writing(preset, path)
    write_atomic(path, yaml.safe_dump(preset, sort_keys=False))
    return True


def summary(study: optuna.Study) -> str:
    """Counts of trials by state, and the best value."""
    counts: dict[str, int] = {}
    for trial in study.trials:
        counts[trial.state.name.lower()] = counts.get(trial.state.name.lower(), 0) + 1
    text = ", ".join(f"{n} {state}" for state, n in sorted(counts.items()))
    try:
        best = study.best_trial
    except ValueError:
        return f"{len(study.trials)} trials ({text}); none completed yet"
    value = best.value if best.value is not None and math.isfinite(best.value) else float("nan")
    return f"{len(study.trials)} trials ({text}); best: trial {best.number}, {value:.1f}"
