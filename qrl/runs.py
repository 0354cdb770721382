"""The run folder: one module owns it and every file in it.

A run folder holds::

    config.yaml      resolved configuration, versions, command, seed
    run.json         status (running, interrupted, finished), steps done, wall time, parameters
    model.zip        the latest model (saved at the end, or on interruption)
    checkpoints/     periodic checkpoints model_<steps>_steps.zip
    tb/              TensorBoard events
    curve.json       the learning curve: evaluations every ``eval_freq`` steps during training
    evaluations.npz  the same points in the format of SB3's EvalCallback
    best_model.zip   the model of the curve's best point (SB3's EvalCallback)
    vecnormalize.pkl VecNormalize statistics with model.zip (``normalize``; best_vecnormalize.pkl
                     with best_model.zip, checkpoints/model_vecnormalize_<steps>_steps.pkl)
    0.monitor.csv    SB3's Monitor: every training episode of environment 0 (1.monitor.csv, ...)
    eval.json        the final evaluation
    .lock            the lock of the process writing the folder, and who that is

Files are written atomically (:func:`write_atomic`): a reader sees the old file or the new
one, never a part of it. One process at a time writes a folder (:func:`hold`): training,
resuming, fine-tuning and evaluating into it take its lock, and a second process is refused
at once, told which process holds it.
"""

from __future__ import annotations

import contextlib
import fcntl
import io
import json
import os
import pickle
import platform
import re
import shlex
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field, fields, replace
from datetime import datetime
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.vec_env import VecNormalize

from qrl.agents import model_file_problem
from qrl.errors import DISTRIBUTION, QrlError
from qrl.presets import RunConfig, check_before_writing, read_yaml

CONFIG, STATUS, MODEL, CURVE, EVALUATION, LOCK = (
    "config.yaml",
    "run.json",
    "model.zip",
    "curve.json",
    "eval.json",
    ".lock",
)
# SB3's and rl-baselines3-zoo's names: EvalCallback's outputs, VecNormalize's statistics.
EVALUATIONS, BEST_MODEL, NORMALIZER, BEST_NORMALIZER = (
    "evaluations.npz",
    "best_model.zip",
    "vecnormalize.pkl",
    "best_vecnormalize.pkl",
)
# What a run writes into its folder: removed when a run that never saved a checkpoint starts
# again in place (train.log, written by ``qrl compare``, stays).
_RUN_FILES: tuple[str, ...] = (CONFIG, STATUS, MODEL, CURVE, EVALUATION, EVALUATIONS, BEST_MODEL)
_RUN_FILES += (NORMALIZER, BEST_NORMALIZER)
_MONITOR_FILES = "*.monitor.csv"
_RUN_FOLDERS = ("checkpoints", "tb", "evaluations", "wandb")


def _file_mode() -> int:
    """The mode a plainly created file gets: 0o666 less the process's umask."""
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


# Temporary files are created private (0o600); the renamed result gets the usual mode.
FILE_MODE = _file_mode()


def write_atomic(path: Path, text: str | bytes) -> None:
    """Write a file through a temporary name in its folder, flushed to disk, then renamed
    over the target: an interruption leaves the old file or the new one, never a part.

    :param path: the file
    :param text: its new contents (bytes for a binary file)
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, FILE_MODE)
        with os.fdopen(fd, "wb" if isinstance(text, bytes) else "w") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


class DamagedFile(QrlError):
    """A file of a run or grid folder that cannot be read (truncated, not JSON, ...)."""


def save_model(model: BaseAlgorithm, path: Path) -> None:
    """SB3's ``save`` into a temporary file of the same folder, flushed to disk and renamed
    over ``path``: a kill while saving leaves the previous model whole.

    :param model: the model
    :param path: the ``.zip`` file
    """
    fd, temporary = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=".zip", dir=path.parent)
    os.close(fd)
    try:
        os.chmod(temporary, FILE_MODE)
        model.save(temporary)
        with open(temporary, "rb") as handle:
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def normalizer_problem(path: Path) -> str | None:
    """What is wrong with a saved ``VecNormalize`` file, or None if it unpickles."""
    if not path.is_file():
        return f"its VecNormalize statistics {path.name} are missing"
    try:
        pickle.loads(path.read_bytes())
    except Exception as exc:  # a cut-off pickle raises any of several errors
        return f"its VecNormalize statistics {path.name} are damaged ({type(exc).__name__})"
    return None


def save_normalizer(normalizer: VecNormalize, path: Path) -> None:
    """Save ``VecNormalize`` statistics as SB3's ``VecNormalize.save`` does (a pickle, which
    ``VecNormalize.load`` reads), atomically."""
    write_atomic(path, pickle.dumps(normalizer))


def read_json(path: Path) -> dict[str, Any] | None:
    """A JSON file of a run folder, None if absent.

    :raises DamagedFile: naming the file if it is not valid JSON
    """
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DamagedFile(
            f"{path} is damaged (not valid JSON: {exc}); delete it or start the run again"
        ) from None
    if not isinstance(data, dict):
        raise DamagedFile(f"{path} is damaged (not a JSON object)")
    return data


def write_json(path: Path, data: dict[str, Any], indent: int | None = 2) -> None:
    """Write a JSON file of a run folder atomically."""
    check_before_writing(data, path)
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


def this_command() -> str:
    """The command line of this process, as a user would type it (``qrl ...``)."""
    name = Path(sys.argv[0]).name if sys.argv and sys.argv[0] else "python"
    if name in ("qrl", "cli.py", "__main__.py"):
        name = "qrl"
    return shlex.join([name, *sys.argv[1:]])


# Locks this process holds: folder -> [file descriptor, depth] (a holder may take it again).
_HELD: dict[Path, list[int]] = {}
_HOLDER_WAIT_S = 1.0  # how long a refused process waits for the holder to say who it is


@contextlib.contextmanager
def hold(folder: Path, command: str | None = None) -> Iterator[None]:
    """Hold a folder's lock while the block runs: one writer per run (or grid) folder.

    The lock is ``fcntl.flock`` on ``.lock`` in the folder, which records the holder's pid,
    host and command; the system releases it when the process ends, however it ends, so a
    killed process leaves no stale lock. The process that holds it may take it again.

    :param folder: an existing folder
    :param command: the holder's command line, for the message of a refused process
    :raises QrlError: at once, naming the holder, if another process holds it
    """
    key = folder.resolve()
    if key in _HELD:
        _HELD[key][1] += 1
        try:
            yield
        finally:
            _HELD[key][1] -= 1
        return
    fd = _acquire(folder, command or this_command())
    _HELD[key] = [fd, 1]
    try:
        yield
    finally:
        del _HELD[key]
        os.close(fd)  # releases the lock


def _acquire(folder: Path, command: str) -> int:
    try:
        fd = os.open(folder / LOCK, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        raise QrlError(f"cannot write into {folder}: {exc.strerror or exc}") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise QrlError(
            f"{folder} is in use by {_describe_holder(folder)}; one process at a time "
            "writes into it: wait for that one to end, or stop it"
        ) from None
    record = {
        "pid": os.getpid(),
        "host": platform.node(),
        "command": command,
        "since": datetime.now().isoformat(timespec="seconds"),
    }
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, (json.dumps(record) + "\n").encode(), 0)
    except BaseException:  # a full disk: release the lock rather than keep it forever
        os.close(fd)
        raise
    return fd


def _describe_holder(folder: Path) -> str:
    """Who holds a folder's lock, in words (it writes that just after locking)."""
    deadline = time.monotonic() + _HOLDER_WAIT_S
    while True:
        try:
            record = json.loads((folder / LOCK).read_text())
            pid, command = int(record["pid"]), str(record["command"])
        except (OSError, ValueError, KeyError, TypeError):
            if time.monotonic() < deadline:
                time.sleep(0.05)
                continue
            return "another process"
        where = record.get("host")
        host = f" on {where}" if where and where != platform.node() else ""
        since = f" since {record['since']}" if record.get("since") else ""
        return f"process {pid}{host} ({' '.join(command.split())}){since}"


def lock_holder(folder: Path) -> str | None:
    """Who holds a folder's lock, or None if no other process does (nothing is written)."""
    path = folder / LOCK
    if folder.resolve() in _HELD or not path.is_file():
        return None
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return _describe_holder(folder)
    finally:
        os.close(fd)
    return None


@contextlib.contextmanager
def claim(folder: Path, command: str | None = None) -> Iterator[None]:
    """Make a folder if needed and hold its lock (:func:`hold`); a folder made here that is
    still empty afterwards (the command failed before writing anything) is removed."""
    made = not folder.exists()
    folder.mkdir(parents=True, exist_ok=True)
    try:
        with hold(folder, command):
            yield
    finally:
        if made and {p.name for p in folder.iterdir()} <= {LOCK}:
            shutil.rmtree(folder, ignore_errors=True)


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


_PACKAGES = {  # as recorded, and the distribution whose version it is
    "qrl": DISTRIBUTION,
    **{p: p for p in ("torch", "stable-baselines3", "sb3-contrib", "pennylane", "gymnasium")},
    "numpy": "numpy",
}


def versions() -> dict[str, str]:
    """Versions of Python and of the packages a run depends on."""
    out = {"python": platform.python_version()}
    for name, distribution in _PACKAGES.items():
        try:
            out[name] = metadata.version(distribution)
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
        """Write the learning curve: curve.json, and the same points as evaluations.npz."""
        write_json(self.path / CURVE, curve.to_dict(), indent=None)
        self.write_evaluations(curve)

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
        check_before_writing(config.to_dict() | meta, self.path / CONFIG)
        data = config.to_dict() | meta
        write_atomic(self.path / CONFIG, yaml.safe_dump(data, sort_keys=False))

    def update_config(self, **values: Any) -> None:
        """Change top-level values of config.yaml (e.g. a new ``timesteps`` budget)."""
        data = read_yaml(self.path / CONFIG) | values
        write_atomic(self.path / CONFIG, yaml.safe_dump(data, sort_keys=False))

    def write_evaluations(self, curve: Curve) -> None:
        """Write evaluations.npz from the learning curve, in the format of SB3's
        ``EvalCallback`` (``timesteps``, ``results`` and ``ep_lengths``, one row per point),
        which rl-baselines3-zoo's plotting scripts read."""
        buffer = io.BytesIO()
        np.savez(
            buffer,
            timesteps=np.asarray(curve.timesteps, dtype=np.int64),
            results=np.asarray(curve.returns, dtype=np.float64),
            ep_lengths=np.asarray(curve.lengths, dtype=np.int64),
        )
        write_atomic(self.path / EVALUATIONS, buffer.getvalue())

    @property
    def best_model_path(self) -> Path:
        """The model of the best learning-curve point (SB3's ``best_model.zip``)."""
        return self.path / BEST_MODEL

    def normalizer_path(self, best: bool = False) -> Path:
        """The ``VecNormalize`` statistics saved with model.zip (or with best_model.zip)."""
        return self.path / (BEST_NORMALIZER if best else NORMALIZER)

    def checkpoint_normalizer_path(self, steps: int) -> Path:
        """The ``VecNormalize`` statistics saved with a checkpoint (SB3's naming)."""
        return self.checkpoint_dir / f"model_vecnormalize_{steps}_steps.pkl"

    def checkpoint_path(self, steps: int) -> Path:
        """The periodic checkpoint after ``steps`` environment steps (SB3's naming)."""
        return self.checkpoint_dir / f"model_{steps}_steps.zip"

    def replay_buffer_path(self, steps: int) -> Path:
        """The replay buffer saved with that checkpoint (off-policy algorithms)."""
        return self.checkpoint_dir / f"model_replay_buffer_{steps}_steps.pkl"

    def checkpoints(self) -> list[tuple[int, Path]]:
        """The periodic checkpoints as (timesteps, file), in order."""
        return checkpoint_files(self.checkpoint_dir)

    def latest_checkpoint(self) -> tuple[Path, int] | None:
        """The checkpoint with the most timesteps, and that number."""
        found = self.checkpoints()
        if not found:
            return None
        steps, path = found[-1]
        return path, steps

    def readable_checkpoint(
        self, normalized: bool = False
    ) -> tuple[Path, int, list[tuple[Path, str]]] | None:
        """The newest checkpoint that is a whole model file, its timesteps, and the newer
        ones skipped with what is wrong with each; None if there is no checkpoint at all.

        A process killed while SB3 wrote a checkpoint leaves a truncated zip behind, or a
        whole zip without the ``VecNormalize`` statistics SB3 writes after it.

        :param normalized: the run normalises observations: a checkpoint also needs its
            statistics, whole
        :raises QrlError: naming the files, if no checkpoint is readable
        """
        skipped: list[tuple[Path, str]] = []
        for steps, path in reversed(self.checkpoints()):
            problem = model_file_problem(path)
            if problem is None and normalized:
                problem = normalizer_problem(self.checkpoint_normalizer_path(steps))
            if problem is None:
                return path, steps, skipped
            skipped.append((path, problem))
        if not skipped:
            return None
        named = [f"{p.relative_to(self.path)} ({why})" for p, why in skipped[:3]]
        raise QrlError(
            f"no checkpoint of {self.path} is readable: "
            + ", ".join(named)
            + (f" and {len(skipped) - 3} more" if len(skipped) > 3 else "")
            + f"; to train it again from the start, delete {self.checkpoint_dir} and model.zip"
        )

    def set_aside(self, path: Path) -> Path:
        """Rename a damaged file of the folder to ``<name>.damaged``, out of the way of
        :meth:`checkpoints` but kept to look at."""
        target = path.with_name(path.name + ".damaged")
        os.replace(path, target)
        return target

    def meta(self) -> dict[str, Any]:
        """Everything in config.yaml: the configuration, the command, the versions, ..."""
        return read_yaml(self.path / CONFIG)

    def clear(self, keep_config: bool = False) -> None:
        """Remove what a run wrote into the folder, to train it again from the start.

        :param keep_config: keep config.yaml (to train again as recorded)
        """
        for name in _RUN_FILES:
            if not (keep_config and name == CONFIG):
                (self.path / name).unlink(missing_ok=True)
        for name in _RUN_FOLDERS:
            shutil.rmtree(self.path / name, ignore_errors=True)
        for monitor in self.path.glob(_MONITOR_FILES):
            monitor.unlink()

    def close_monitors(self, since: float) -> None:
        """Before a resumed session: drop the episodes the monitor files recorded after
        ``since`` (the time of the checkpoint resumed from; those steps are trained again)
        and keep each session's files under names of their own (``<i>.<session>.monitor.csv``),
        each with its header, as SB3's ``load_results`` reads them.

        :param since: the checkpoint's time (seconds since the epoch)
        """
        for path in sorted(self.path.glob(_MONITOR_FILES)):
            lines = path.read_text().splitlines(keepends=True)
            try:
                start = float(json.loads(lines[0][1:])["t_start"])
            except (IndexError, KeyError, TypeError, ValueError):
                continue  # not a monitor file SB3 wrote: left alone
            kept = lines[:2] + [line for line in lines[2:] if _episode_end(line, start) <= since]
            target = path
            if re.fullmatch(r"\d+\.monitor\.csv", path.name):  # this session's name
                target = self._session_name(path)
            write_atomic(target, "".join(kept))
            if target != path:
                path.unlink()

    def _session_name(self, path: Path) -> Path:
        """A free ``<i>.<session>.monitor.csv`` name for a finished session's file."""
        index = path.name.split(".")[0]
        session = 1
        while (self.path / f"{index}.{session}.monitor.csv").exists():
            session += 1
        return self.path / f"{index}.{session}.monitor.csv"

    def trim_tensorboard(self, steps: int) -> int:
        """Drop the TensorBoard events a session resuming from the checkpoint at ``steps``
        logs again: those after ``steps``, and those at ``steps`` of earlier sessions that
        started there (each session logs its settings when it starts). TensorBoard would
        otherwise show both.

        :return: the number of events dropped
        """
        from tensorboard.backend.event_processing.event_file_loader import RawEventFileLoader
        from tensorboard.compat.proto.event_pb2 import Event
        from tensorboard.summary.writer.record_writer import RecordWriter

        dropped = 0
        folder = self.path / "tb"
        for path in sorted(folder.rglob("events.out.tfevents.*")) if folder.is_dir() else []:
            records = list(RawEventFileLoader(str(path)).Load())
            events = [Event.FromString(r) for r in records]
            last = steps - 1 if _session_start(events) >= steps else steps
            kept = [r for r, e in zip(records, events, strict=True) if e.step <= last]
            dropped += len(records) - len(kept)
            if not any(e.summary.value for e in events if e.step <= last):
                path.unlink()  # a session that logged nothing before the checkpoint
            elif len(kept) < len(records):
                buffer = _Bytes()
                for record in kept:
                    RecordWriter(buffer).write(record)
                write_atomic(path, bytes(buffer.data))
        return dropped


def _episode_end(line: str, start: float) -> float:
    """When a monitor row's episode ended (infinite for a row cut short: dropped)."""
    fields = line.rstrip("\n").split(",")
    try:
        return start + float(fields[2]) if line.endswith("\n") else float("inf")
    except (IndexError, ValueError):
        return float("inf")


def _session_start(events: list[Any]) -> int:
    """The step a TensorBoard events file's session started at: that of its first summary
    (hyperparameter summaries, written at step 0 by every session, aside)."""
    starts = [
        e.step for e in events if any(not v.tag.startswith("_hparams_/") for v in e.summary.value)
    ]
    return min(starts, default=0)


def open_run(path: str | Path) -> Run:
    """Open an existing run folder.

    :raises QrlError: if the folder holds no qrl configuration
    """
    folder = Path(path)
    config_path = folder / CONFIG
    if not config_path.is_file():
        raise QrlError(f"{folder} is not a qrl run folder (no config.yaml)")
    try:
        return Run(folder, RunConfig.from_dict(read_yaml(config_path), str(config_path)))
    except QrlError as exc:
        raise DamagedFile(str(exc)) from None


class _Bytes:
    """A file-like buffer for tensorboard's RecordWriter."""

    def __init__(self) -> None:
        self.data = bytearray()

    def write(self, data: bytes) -> None:
        self.data += data

    def flush(self) -> None:
        pass

    def close(self) -> None:
        pass


def default_run_dir(config: RunConfig, root: Path = Path("runs")) -> Path:
    """Make a new, empty run folder ``<root>/<env>-<agent>-s<seed>-<time>``.

    The folder is created here, atomically: two runs started in the same second get two
    folders (the second with a ``-2`` suffix), never one.

    :return: the folder
    """
    root.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    name = f"{config.env.replace('/', '_')}-{config.agent}-s{config.seed}-{stamp}"
    suffix = 1
    while True:
        path = root / (name if suffix == 1 else f"{name}-{suffix}")
        try:
            path.mkdir()
        except FileExistsError:
            suffix += 1
            continue
        return path


def holds_run(folder: Path) -> bool:
    """Whether a folder holds a run (its config.yaml)."""
    return (folder / CONFIG).is_file()


def checkpoint_files(folder: Path) -> list[tuple[int, Path]]:
    """The checkpoints ``model_<steps>_steps.zip`` in a folder as (steps, file), in order."""
    found = []
    for path in folder.glob("model_*_steps.zip"):
        match = re.fullmatch(r"model_(\d+)_steps\.zip", path.name)
        if match:
            found.append((int(match.group(1)), path))
    return sorted(found)


def has_trained(folder: Path) -> bool:
    """Whether a run folder holds anything trained: a model or a checkpoint (a run that
    stopped before its first checkpoint holds neither, and may start again in place)."""
    return (folder / MODEL).is_file() or bool(checkpoint_files(folder / "checkpoints"))


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
