"""A grid of runs (agents x envs x seeds) in one folder, and what each run still needs.

The folder holds ``grid.json`` (the latest grid run in it) and one run folder per cell,
``<env>/<agent>/seed<k>``, each an ordinary ``qrl train`` run folder. A cell's state is read
from its folder, so a grid that was interrupted, or extended with more seeds or agents,
continues where it stopped: finished runs are reused, interrupted ones resume from their
latest checkpoint, and a folder trained with different settings is refused.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from qrl.agents import resolve_config
from qrl.errors import QrlError
from qrl.presets import RunConfig, parse_override
from qrl.runs import Run, holds_run, open_run

# Settings that change how a run is evaluated, not how it trains.
EVALUATION_KEYS = ("eval_episodes", "eval_freq", "eval_freq_episodes")

Action = Literal["done", "curve", "train", "resume"]


@dataclass(frozen=True)
class GridSpec:
    """What a comparison trains: every agent on every env with every seed.

    :param agents: agent preset names or paths
    :param envs: env preset names or paths, or Gymnasium ids
    :param seeds: the seeds
    :param timesteps: training budget of every run; each env preset's by default
    :param overrides: ``key=value`` settings applied to every run
    """

    agents: tuple[str, ...]
    envs: tuple[str, ...]
    seeds: tuple[int, ...]
    timesteps: int | None = None
    overrides: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """Plain data, for grid.json."""
        return {
            "agents": list(self.agents),
            "envs": list(self.envs),
            "seeds": list(self.seeds),
            "timesteps": self.timesteps,
            "overrides": list(self.overrides),
        }


@dataclass
class Cell:
    """One run of a grid: its configuration, folder and what it still needs.

    :param agent: the agent as given on the command line
    :param env: the env as given on the command line
    :param config: the configuration the grid trains it with
    :param path: its run folder
    :param action: "done" (finished and evaluated), "curve" (finished, learning curve to
        compute from its checkpoints), "train" (start), "resume" (continue from a checkpoint)
    """

    agent: str
    env: str
    config: RunConfig
    path: Path
    action: Action = "train"
    notes: list[str] = field(default_factory=list)

    @property
    def label(self) -> str:
        """``env/agent/seed``, for messages."""
        return f"{self.config.env}/{self.config.agent}/seed{self.config.seed}"


def _safe(name: str) -> str:
    return name.replace("/", "_").replace(os.sep, "_")


def cell_path(out: Path, config: RunConfig) -> Path:
    """The run folder of a cell."""
    return out / _safe(config.env) / _safe(config.agent) / f"seed{config.seed}"


def _flat(value: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(value, Mapping):
        out: dict[str, Any] = {}
        for key, inner in value.items():
            out |= _flat(inner, f"{prefix}.{key}" if prefix else str(key))
        return out
    return {prefix: value}


def config_differences(expected: RunConfig, found: RunConfig) -> list[str]:
    """The training settings in which a run folder differs from what the grid asks for.

    Evaluation settings (``eval_episodes``, ``eval_freq``, ``eval_freq_episodes``) are not
    compared: they do not change what is trained.
    """
    want, have = _flat(expected.to_dict()), _flat(found.to_dict())
    keys = sorted(set(want) | set(have))
    return [
        f"{k}: grid {want.get(k)!r}, folder {have.get(k)!r}"
        for k in keys
        if k.split(".")[0] not in EVALUATION_KEYS and want.get(k) != have.get(k)
    ]


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def cell_action(run: Run, expected: RunConfig) -> Action:
    """What a run folder that holds a configuration still needs.

    :raises QrlError: if the folder was trained with other settings, or is being trained
        by a live process on this machine
    """
    differences = config_differences(expected, run.config)
    if differences:
        raise QrlError(
            f"{run.path} holds a run from a different grid ("
            + "; ".join(differences[:4])
            + (f"; and {len(differences) - 4} more" if len(differences) > 4 else "")
            + "). Give another --out folder, or move that run away"
        )
    status = run.status()
    state = status.status
    if state == "running" and status.host == platform.node():
        pid = status.pid
        if isinstance(pid, int) and _process_alive(pid):
            raise QrlError(f"{run.path} is being trained by process {pid}; wait or stop it")
    if state == "finished" and (run.evaluation() is not None or expected.eval_episodes == 0):
        if expected.eval_freq > 0 and run.curve() is None:
            return "curve"
        return "done"
    return "resume" if run.latest_checkpoint() is not None else "train"


def plan(spec: GridSpec, out: Path) -> list[Cell]:
    """Resolve every cell of a grid and decide what each still needs, before any work.

    :raises QrlError: on an unknown agent or env, a bad override, no seeds, duplicate
        names, or a run folder from a different grid
    """
    if not spec.agents:
        raise QrlError("give at least one agent, e.g. --agents unentangled mlp")
    if not spec.envs:
        raise QrlError("give at least one env, e.g. --env CartPole-v1")
    if not spec.seeds:
        raise QrlError("--seeds must be at least 1")
    if spec.timesteps is not None and spec.timesteps < 1:
        raise QrlError(f"--timesteps must be positive, got {spec.timesteps}")
    overrides = dict(parse_override(o) for o in spec.overrides)
    cells: list[Cell] = []
    seen: dict[Path, str] = {}
    for env in spec.envs:
        for agent in spec.agents:
            for seed in spec.seeds:
                config = resolve_config(agent, env, seed, spec.timesteps, None, overrides)
                path = cell_path(out, config)
                if path in seen and seen[path] != f"{agent}|{env}":
                    raise QrlError(
                        f"{seen[path].split('|')[0]!r} and {agent!r} share the preset name "
                        f"{config.agent!r}: rename one"
                    )
                if path in seen:
                    raise QrlError(f"agent {agent!r} or env {env!r} is listed twice")
                seen[path] = f"{agent}|{env}"
                cells.append(Cell(agent, env, config, path))
    _check_same_hyperparameters(cells)
    for cell in cells:  # after every name is known to be valid
        if holds_run(cell.path):
            cell.action = cell_action(open_run(cell.path), cell.config)
    return cells


def _check_same_hyperparameters(cells: Sequence[Cell]) -> None:
    """Agents of one env must differ only in their policy (and recurrent or not)."""
    first: dict[str, Cell] = {}
    for cell in cells:
        ref = first.setdefault(cell.config.env, cell)
        a, b = ref.config, cell.config
        differ = sorted(
            k
            for k in set(a.hyperparameters) | set(b.hyperparameters)
            if a.hyperparameters.get(k) != b.hyperparameters.get(k)
        )
        if differ:
            raise QrlError(
                f"agents {a.agent!r} and {b.agent!r} would train {a.env} with different "
                f"hyperparameters ({', '.join(differ)}): a comparison keeps everything but "
                "the policy the same. Move the settings to the env preset or to --set"
            )


def prepare(cell: Cell) -> None:
    """Make a cell's folder ready for its job (a run that never saved a checkpoint starts
    over: there is nothing of it to keep)."""
    if cell.action == "train" and holds_run(cell.path):
        shutil.rmtree(cell.path)
    cell.path.mkdir(parents=True, exist_ok=True)


def train_arguments(cell: Cell, spec: GridSpec) -> list[str]:
    """The ``qrl`` command-line arguments of a cell's job."""
    path = str(cell.path)
    if cell.action == "resume":
        return ["train", "--resume", path, "--no-progress"]
    if cell.action == "curve":
        return ["curve", path]
    args = ["train", "--agent", cell.agent, "--env", cell.env, "--seed", str(cell.config.seed)]
    args += ["--run-dir", path, "--no-progress"]
    if spec.timesteps is not None:
        args += ["--timesteps", str(spec.timesteps)]
    for override in spec.overrides:
        args += ["--set", override]
    return args


def write_grid(out: Path, spec: GridSpec, command: str) -> None:
    """Record the grid last run in a folder."""
    out.mkdir(parents=True, exist_ok=True)
    data = spec.to_dict() | {"command": command}
    (out / "grid.json").write_text(json.dumps(data, indent=2) + "\n")


def read_grid(out: Path) -> GridSpec:
    """The grid last run in a folder (to re-plot it).

    :raises QrlError: if the folder holds no grid
    """
    path = out / "grid.json"
    if not path.is_file():
        raise QrlError(f"{out} holds no comparison (no grid.json); run qrl compare with --agents")
    data = json.loads(path.read_text())
    return GridSpec(
        agents=tuple(data["agents"]),
        envs=tuple(data["envs"]),
        seeds=tuple(int(s) for s in data["seeds"]),
        timesteps=data.get("timesteps"),
        overrides=tuple(data.get("overrides", ())),
    )


def seed_list(seeds: int | Sequence[int]) -> tuple[int, ...]:
    """``--seeds N`` means seeds 0..N-1; a list is taken as given."""
    if isinstance(seeds, int):
        if seeds < 1:
            raise QrlError(f"--seeds must be at least 1, got {seeds}")
        return tuple(range(seeds))
    values = tuple(int(s) for s in seeds)
    if len(set(values)) != len(values):
        raise QrlError(f"seeds repeat: {list(values)}")
    return values
