"""The run folder: one module owns it and every file in it.

A run folder holds::

    config.yaml      resolved configuration, versions, command, seed
    run.json         status (running, interrupted, finished), steps done, wall time, parameters
    model.zip        the latest model (saved at the end, or on interruption)
    checkpoints/     periodic checkpoints model_<steps>_steps.zip
    tb/              TensorBoard events
    curve.json       the learning curve: evaluations every ``eval_freq`` steps during training
    eval.json        the final evaluation

Files are written atomically (:func:`write_atomic`): a reader sees the old file or the new
one, never a part of it.
"""

from __future__ import annotations

import json
import os
import platform
import re
import tempfile
from dataclasses import asdict, dataclass, field, fields, replace
from datetime import datetime
from importlib import metadata
from pathlib import Path
from typing import Any

import yaml

from qrl.errors import QrlError
from qrl.presets import RunConfig, read_yaml

CONFIG, STATUS, MODEL, CURVE, EVALUATION = (
    "config.yaml",
    "run.json",
    "model.zip",
    "curve.json",
    "eval.json",
)


def write_atomic(path: Path, text: str) -> None:
    """Write a file through a temporary name in its folder, flushed to disk, then renamed
    over the target: an interruption leaves the old file or the new one, never a part.

    :param path: the file
    :param text: its new contents
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def read_json(path: Path) -> dict[str, Any] | None:
    """A JSON file of a run folder, None if absent.

    :raises QrlError: naming the file if it is not valid JSON
    """
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise QrlError(
            f"{path} is damaged (not valid JSON: {exc}); delete it or start the run again"
        ) from None
    if not isinstance(data, dict):
        raise QrlError(f"{path} is damaged (not a JSON object)")
    return data


def write_json(path: Path, data: dict[str, Any], indent: int | None = 2) -> None:
    """Write a JSON file of a run folder atomically."""
    write_atomic(path, json.dumps(data, indent=indent) + "\n")


def add_executor_evaluation(folder: Path, name: str, report: dict[str, Any]) -> None:
    """Put an evaluation on another executor (``qrl evaluate --executor``) into a run's
    eval.json, under ``executors``; a damaged eval.json is replaced."""
    path = folder / EVALUATION
    try:
        data = read_json(path) or {}
    except QrlError:
        data = {}
    data.setdefault("executors", {})[name] = report
    write_json(path, data)


@dataclass
class RunStatus:
    """run.json: where training stands.

    :param status: "running", "interrupted" or "finished" ("" before training starts)
    :param num_timesteps: environment steps trained
    :param wall_time_s: wall time of training over every session, evaluations included
    :param eval_time_s: of which learning-curve evaluations
    :param steps_per_s: training steps per second of the last session (evaluations excluded)
    :param parameters: trainable parameters: quantum, classical, total
    :param quantum_cost: circuits, shots and submissions sent (executors with shots)
    :param pid: the process training it, while it runs
    :param host: that process's machine
    """

    status: str = ""
    num_timesteps: int = 0
    wall_time_s: float = 0.0
    eval_time_s: float = 0.0
    steps_per_s: float | None = None
    parameters: dict[str, int] = field(default_factory=dict)
    quantum_cost: dict[str, Any] | None = None
    pid: int | None = None
    host: str | None = None

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunStatus:
        """The record of a run.json (unknown keys of other versions are ignored)."""
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})

    def to_dict(self) -> dict[str, Any]:
        """Plain data for run.json."""
        return asdict(self)


@dataclass
class Curve:
    """curve.json: the learning curve, one evaluation of ``episodes`` deterministic episodes
    per point, episode ``k`` started from ``reset(seed=seed + k)`` at every point.

    :param freq: environment steps between points (None for a curve computed from
        checkpoints)
    :param episodes: episodes per point
    :param seed: seed of episode 0
    :param deterministic: whether actions were the most likely ones
    :param source: "training" (evaluated while training) or "checkpoints" (``qrl curve``)
    :param timesteps: steps trained at each point
    :param returns: the episodes' returns at each point
    :param lengths: their lengths
    """

    freq: int | None
    episodes: int
    seed: int
    deterministic: bool = True
    source: str = "training"
    timesteps: list[int] = field(default_factory=list)
    returns: list[list[float]] = field(default_factory=list)
    lengths: list[list[int]] = field(default_factory=list)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Curve:
        """The record of a curve.json (files of earlier versions read the same way)."""
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})

    def to_dict(self) -> dict[str, Any]:
        """Plain data for curve.json."""
        return asdict(self)

    def add(self, timesteps: int, returns: list[float], lengths: list[int]) -> None:
        """Append a point."""
        self.timesteps.append(int(timesteps))
        self.returns.append([float(r) for r in returns])
        self.lengths.append([int(n) for n in lengths])

    def upto(self, timesteps: int) -> Curve:
        """The points at or before ``timesteps`` (a run resumed from a checkpoint)."""
        keep = [i for i, t in enumerate(self.timesteps) if t <= timesteps]
        return replace(
            self,
            timesteps=[self.timesteps[i] for i in keep],
            returns=[self.returns[i] for i in keep],
            lengths=[self.lengths[i] for i in keep],
        )


_PACKAGES = ("qrl", "torch", "stable-baselines3", "sb3-contrib", "pennylane", "gymnasium", "numpy")


def versions() -> dict[str, str]:
    """Versions of Python and of the packages a run depends on."""
    out = {"python": platform.python_version()}
    for name in _PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


@dataclass
class Run:
    """A run folder and its configuration."""

    path: Path
    config: RunConfig

    @property
    def model_path(self) -> Path:
        """The latest saved model."""
        return self.path / MODEL

    @property
    def checkpoint_dir(self) -> Path:
        """Periodic checkpoints."""
        return self.path / "checkpoints"

    def status(self) -> RunStatus:
        """run.json (an empty record before training starts)."""
        return RunStatus.from_dict(read_json(self.path / STATUS) or {})

    def write_status(self, **values: Any) -> None:
        """Update fields of run.json."""
        write_json(self.path / STATUS, replace(self.status(), **values).to_dict())

    def curve(self, upto: int | None = None) -> Curve | None:
        """The learning curve, if one was recorded.

        :param upto: drop points after this many steps
        """
        data = read_json(self.path / CURVE)
        if data is None:
            return None
        curve = Curve.from_dict(data)
        return curve if upto is None else curve.upto(upto)

    def write_curve(self, curve: Curve) -> None:
        """Write the learning curve."""
        write_json(self.path / CURVE, curve.to_dict(), indent=None)

    def evaluation(self) -> dict[str, Any] | None:
        """The final evaluation, if the run finished (and was evaluated)."""
        data = read_json(self.path / EVALUATION) or {}
        return data if "mean_return" in data else None

    def write_evaluation(self, result: dict[str, Any]) -> None:
        """Write the final evaluation; evaluations on other executors already in eval.json
        (``qrl evaluate --executor``) stay."""
        executors = (read_json(self.path / EVALUATION) or {}).get("executors")
        if executors:
            result = result | {"executors": executors}
        write_json(self.path / EVALUATION, result)

    def write_config(self, config: RunConfig, meta: dict[str, Any]) -> None:
        """Write config.yaml: the resolved configuration and what describes the run."""
        data = config.to_dict() | meta
        write_atomic(self.path / CONFIG, yaml.safe_dump(data, sort_keys=False))

    def update_config(self, **values: Any) -> None:
        """Change top-level values of config.yaml (e.g. a new ``timesteps`` budget)."""
        data = read_yaml(self.path / CONFIG) | values
        write_atomic(self.path / CONFIG, yaml.safe_dump(data, sort_keys=False))

    def checkpoint_path(self, steps: int) -> Path:
        """The periodic checkpoint after ``steps`` environment steps (SB3's naming)."""
        return self.checkpoint_dir / f"model_{steps}_steps.zip"

    def replay_buffer_path(self, steps: int) -> Path:
        """The replay buffer saved with that checkpoint (off-policy algorithms)."""
        return self.checkpoint_dir / f"model_replay_buffer_{steps}_steps.pkl"

    def checkpoints(self) -> list[tuple[int, Path]]:
        """The periodic checkpoints as (timesteps, file), in order."""
        found = []
        for path in self.checkpoint_dir.glob("model_*_steps.zip"):
            match = re.fullmatch(r"model_(\d+)_steps\.zip", path.name)
            if match:
                found.append((int(match.group(1)), path))
        return sorted(found)

    def latest_checkpoint(self) -> tuple[Path, int] | None:
        """The checkpoint with the most timesteps, and that number."""
        found = self.checkpoints()
        if not found:
            return None
        steps, path = found[-1]
        return path, steps


def open_run(path: str | Path) -> Run:
    """Open an existing run folder.

    :raises QrlError: if the folder holds no qrl configuration
    """
    folder = Path(path)
    config_path = folder / CONFIG
    if not config_path.is_file():
        raise QrlError(f"{folder} is not a qrl run folder (no config.yaml)")
    return Run(folder, RunConfig.from_dict(read_yaml(config_path), str(config_path)))


def default_run_dir(config: RunConfig, root: Path = Path("runs")) -> Path:
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    name = f"{config.env.replace('/', '_')}-{config.agent}-s{config.seed}-{stamp}"
    path = root / name
    suffix = 1
    while path.exists():
        suffix += 1
        path = root / f"{name}-{suffix}"
    return path


def holds_run(folder: Path) -> bool:
    """Whether a folder holds a run (its config.yaml)."""
    return (folder / CONFIG).is_file()


def run_folder_of(model_path: Path) -> Path | None:
    """The run folder a model file belongs to (its own folder or, for checkpoints, the one
    above), or None."""
    for folder in (model_path.parent, model_path.parent.parent):
        if holds_run(folder):
            return folder
    return None


def locate(target: str | Path) -> tuple[Path, RunConfig | None]:
    """Find the model file and configuration of a run folder or a model file.

    A model file's configuration is looked up in its folder and the one above it (a run's
    ``checkpoints/``).
    """
    path = Path(target)
    if path.is_dir():
        run = open_run(path)
        if not run.model_path.is_file():
            latest = run.latest_checkpoint()
            if latest is None:
                raise QrlError(f"run {path} has no model.zip and no checkpoint yet")
            return latest[0], run.config
        return run.model_path, run.config
    if not path.exists():
        raise QrlError(f"{path} does not exist: give a run folder or a model .zip file")
    folder = run_folder_of(path)
    return path, None if folder is None else open_run(folder).config
