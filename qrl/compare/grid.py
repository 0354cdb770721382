"""A grid of runs (agents x envs x seeds) in one folder, and what each run still needs.

The folder holds ``grid.json`` (the latest grid run in it) and one run folder per cell,
``<env>/<agent>/seed<k>``, each an ordinary ``qrl train`` run folder. A cell's state is read
from its folder, so a grid that was interrupted, or extended with more seeds or agents,
continues where it stopped: finished runs are reused, interrupted ones resume from their
latest checkpoint, and a grid or run folder trained with different settings is refused.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from qrl.agents import resolve_config
from qrl.errors import QrlError
from qrl.presets import ZOO_KEYS, RunConfig, parse_override
from qrl.runs import (
    DamagedFile,
    Run,
    has_trained,
    holds_run,
    lock_holder,
    open_run,
    read_json,
    write_json,
)

# Settings that change how a run is evaluated, not how it trains.
EVALUATION_KEYS = ("eval_episodes", "eval_freq", "eval_freq_episodes")
GRID = "grid.json"

Action = Literal["done", "curve", "train", "resume", "failed"]


@dataclass(frozen=True)
class GridSpec:
    """What a comparison trains: every agent on every env with every seed.

    :param agents: agent preset names or paths
    :param envs: env preset names or paths, or Gymnasium ids
    :param seeds: the seeds
    :param timesteps: training budget of every run; each env preset's by default
    :param overrides: ``key=value`` settings applied to every run
    :param own_hyperparameters: let agents of an env train with different hyperparameters
        (a tuned preset against the shipped one); by default agents must differ only in
        their policy
    """

    agents: tuple[str, ...]
    envs: tuple[str, ...]
    seeds: tuple[int, ...]
    timesteps: int | None = None
    overrides: tuple[str, ...] = ()
    own_hyperparameters: bool = False

    def to_dict(self) -> dict[str, Any]:
        """Plain data, for grid.json."""
        return {
            "agents": list(self.agents),
            "envs": list(self.envs),
            "seeds": list(self.seeds),
            "timesteps": self.timesteps,
            "overrides": list(self.overrides),
            "own_hyperparameters": self.own_hyperparameters,
        }


@dataclass
class Cell:
    """One run of a grid: its configuration, folder and what it still needs.

    :param agent: the agent as given on the command line
    :param env: the env as given on the command line
    :param config: the configuration the grid trains it with
    :param path: its run folder
    :param action: "done" (finished and evaluated), "curve" (finished, learning curve to
        compute from its checkpoints), "train" (start), "resume" (continue from a checkpoint),
        "failed" (a file of its folder is damaged: left alone, reported)
    :param notes: why it failed
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


def cell_action(run: Run, expected: RunConfig) -> Action:
    """What a run folder that holds a configuration still needs.

    :raises QrlError: if the folder was trained with other settings, or another process
        holds its lock (trains or evaluates into it)
    :raises DamagedFile: naming a file of the folder that cannot be read
    """
    differences = config_differences(expected, run.config)
    if differences:
        raise QrlError(
            f"{run.path} holds a run from a different grid ("
            + "; ".join(differences[:4])
            + (f"; and {len(differences) - 4} more" if len(differences) > 4 else "")
            + "). Give another --out folder, or move that run away"
        )
    holder = lock_holder(run.path)
    if holder is not None:
        raise QrlError(f"{run.path} is in use by {holder}; wait for it to end, or stop it")
    state = run.status().status
    if state == "finished" and (run.evaluation() is not None or expected.eval_episodes == 0):
        if expected.eval_freq > 0 and run.curve() is None:
            return "curve"
        return "done"
    return "resume" if has_trained(run.path) else "train"


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
    if not spec.own_hyperparameters:
        _check_same_hyperparameters(cells)
    for cell in cells:  # after every name is known to be valid
        if holds_run(cell.path):
            try:
                cell.action = cell_action(open_run(cell.path), cell.config)
            except DamagedFile as exc:  # reported as failed; the other runs go on
                cell.action = "failed"
                cell.notes.append(str(exc))
    return cells


def training_settings(config: RunConfig) -> dict[str, Any]:
    """What an agent trains with besides its policy: the hyperparameters, the number of
    environments and the zoo's task options (``normalize``, ``frame_stack``, ...)."""
    task = {key: getattr(config, key) for key in ("n_envs", *ZOO_KEYS)}
    return {**config.hyperparameters, **task}


def _check_same_hyperparameters(cells: Sequence[Cell]) -> None:
    """Agents of one env must differ only in their policy (and recurrent or not)."""
    first: dict[str, Cell] = {}
    for cell in cells:
        ref = first.setdefault(cell.config.env, cell)
        a, b = training_settings(ref.config), training_settings(cell.config)
        differ = sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k))
        if differ:
            raise QrlError(
                f"agents {ref.config.agent!r} and {cell.config.agent!r} would train "
                f"{cell.config.env} with different "
                f"hyperparameters ({', '.join(differ)}): a comparison keeps everything but "
                "the policy the same. Move the settings to the env preset or to --set, or "
                "compare whole presets with --own-hyperparameters"
            )


def prepare(cell: Cell) -> None:
    """Make a cell's folder ready for its job, which writes its log there (a run that never
    saved a checkpoint is started over in place by its ``qrl train`` job)."""
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
    write_json(out / GRID, spec.to_dict() | {"command": command})


def read_grid(out: Path) -> GridSpec:
    """The grid last run in a folder (to re-plot it).

    :raises QrlError: if the folder holds no grid, or its grid.json is damaged
    """
    path = out / GRID
    data = read_json(path)
    if data is None:
        raise QrlError(f"{out} holds no comparison (no grid.json); run qrl compare with --agents")
    try:
        return GridSpec(
            agents=tuple(data["agents"]),
            envs=tuple(data["envs"]),
            seeds=tuple(int(s) for s in data["seeds"]),
            timesteps=data.get("timesteps"),
            overrides=tuple(data.get("overrides", ())),
            own_hyperparameters=bool(data.get("own_hyperparameters", False)),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise DamagedFile(f"{path} is damaged ({type(exc).__name__}: {exc})") from None


_UNSET = object()


def _training_settings(spec: GridSpec) -> dict[str, Any]:
    """The settings a grid gives every run that change what is trained: its budget and
    its ``--set`` values other than evaluation ones (the last of a repeated key)."""
    out: dict[str, Any] = {"--timesteps": spec.timesteps}
    for key, value in map(parse_override, spec.overrides):
        if key.split(".")[0] not in EVALUATION_KEYS:
            out[f"--set {key}"] = value
    return out


def grid_differences(recorded: GridSpec, spec: GridSpec) -> list[str]:
    """How a grid's training settings differ from those recorded in its folder.

    Agents, envs and seeds may be added (the grid is extended); evaluation settings may
    change. The budget and every other ``--set`` value must stay the same, or the folder
    would mix runs trained differently.
    """
    before, now = _training_settings(recorded), _training_settings(spec)
    out = []
    for key in sorted(set(before) | set(now)):
        old, new = before.get(key, _UNSET), now.get(key, _UNSET)
        if old != new:
            shown = ["not given" if v in (_UNSET, None) else repr(v) for v in (old, new)]
            out.append(f"{key}: folder {shown[0]}, this command {shown[1]}")
    return out


def check_grid(out: Path, spec: GridSpec) -> None:
    """Refuse a grid whose training settings differ from those recorded in ``out``.

    :raises QrlError: naming every difference, before any work
    """
    if not (out / GRID).is_file():
        return
    differences = grid_differences(read_grid(out), spec)
    if differences:
        raise QrlError(
            f"{out} holds a grid trained with other settings ("
            + "; ".join(differences)
            + "): give another --out folder, or the same settings"
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
