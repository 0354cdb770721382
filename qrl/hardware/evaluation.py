"""Evaluate one policy under exact simulation, finite shots and device noise, side by side.

Every variant plays the same episodes: episode ``i`` starts from ``reset(seed=seed + i)``,
and the environments of a round run in lockstep, so each step of a round is one batched
executor call (one submission) over the episodes still running. Progress is written after
every round, so an interrupted evaluation keeps its finished episodes and the same command
resumes it.
"""

from __future__ import annotations

import copy
import functools
import json
import math
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.policies import BasePolicy

from qrl.callbacks import executor_cost
from qrl.errors import QrlError
from qrl.experiment import EVAL_SEED_OFFSET, load_target, run_folder_of
from qrl.extractors import CircuitRunner, circuit_modules, parameter_counts, set_executor
from qrl.hardware.cost import Cost
from qrl.presets import RunConfig


@dataclass(frozen=True)
class Variant:
    """One way of running the policy's circuits.

    :param label: "exact", "shots", "device", or the executor's name (exact, not torch)
    :param executor: executor name
    :param options: its options (plain data, never credentials)
    """

    label: str
    executor: str
    options: Mapping[str, Any] = field(default_factory=dict)

    def describe(self) -> str:
        """A short description for tables, e.g. ``qiskit.aer fake_manila 1024 shots``."""
        return " ".join(self._parts("(no noise)", "{} shots", "packing {}"))

    def tag(self) -> str:
        """A file-name-safe name, e.g. ``qiskit.aer-fake_manila-1024shots``."""
        return "-".join(self._parts("nonoise", "{}shots", "pack{}"))

    def _parts(self, no_noise: str, shots: str, packing: str) -> list[str]:
        opts = self.options
        parts = [self.executor]
        if opts.get("backend"):
            parts.append(str(opts["backend"]))
            if not opts.get("noise", True):
                parts.append(no_noise)
        if opts.get("shots"):
            parts.append(shots.format(opts["shots"]))
        if opts.get("packing", 1) != 1:
            parts.append(packing.format(opts["packing"]))
        return parts


def variants(executor: str, options: Mapping[str, Any], reference: bool = True) -> list[Variant]:
    """The requested executor and, with ``reference``, what it is compared with.

    Exact simulation (the torch executor) always; for a qiskit executor on a device, also
    ideal sampling with the same shots on Aer (shot noise without device noise).
    """
    requested = dict(options)
    noisy = bool(requested.get("backend")) and requested.get("noise", True)
    label = "device" if noisy else ("shots" if requested.get("shots") else executor)
    out = [Variant(label, executor, requested)]
    if not reference or executor == "torch":
        return out
    if noisy and executor.startswith("qiskit.") and requested.get("shots"):
        ideal: dict[str, Any] = {k: requested[k] for k in ("shots", "seed") if k in requested}
        out.insert(0, Variant("shots", "qiskit.aer", ideal))
    out.insert(0, Variant("exact", "torch", {}))
    return out


def _slice_state(state: Any, keep: list[int]) -> Any:
    """Keep the recurrent states of the episodes still running (env axis 1)."""
    if state is None:
        return None
    if isinstance(state, tuple):
        return tuple(np.asarray(s)[:, keep] for s in state)
    return np.asarray(state)[:, keep]


@dataclass
class Episode:
    """One finished episode.

    :param seed: its reset seed
    :param ret: its return
    :param length: its steps
    :param agreeing: steps on which the action equals the reference policy's action
    """

    seed: int
    ret: float = 0.0
    length: int = 0
    agreeing: int = 0


@dataclass
class Clock:
    """Seconds spent in the reference policy (not the evaluated one), updated as it runs."""

    reference_s: float = 0.0


def play_round(
    model: BaseAlgorithm,
    config: RunConfig,
    seeds: list[int],
    deterministic: bool,
    reference: BasePolicy | None = None,
    on_episode: Callable[[Episode], None] | None = None,
    clock: Clock | None = None,
) -> list[Episode]:
    """Play one episode per seed in lockstep; one policy call per step for all running ones.

    :param reference: a policy asked for its action on the same observations at every step
        (exact simulation of the same weights), to count the steps on which both agree
    :param on_episode: called as each episode ends
    :param clock: accumulates the time spent in ``reference``
    :return: the episodes, in seed order
    """
    envs = [gym.make(config.env_id, **config.env_kwargs) for _ in seeds]
    clock = clock or Clock()
    try:
        obs = [env.reset(seed=s)[0] for env, s in zip(envs, seeds, strict=True)]
        episodes = [Episode(s) for s in seeds]
        active = list(range(len(seeds)))
        state: Any = None
        ref_state: Any = None
        starts = np.ones(len(active), dtype=bool)
        while active:
            batch = np.stack([obs[i] for i in active])
            actions, state = model.predict(
                batch, state=state, episode_start=starts, deterministic=deterministic
            )
            same = np.zeros(len(active), dtype=bool)
            if reference is not None:
                tick = time.perf_counter()
                expected, ref_state = reference.predict(
                    batch, state=ref_state, episode_start=starts, deterministic=True
                )
                same = np.all(
                    np.reshape(expected, (len(active), -1))
                    == np.reshape(actions, (len(active), -1)),
                    axis=1,
                )
                clock.reference_s += time.perf_counter() - tick
            keep = []
            for j, i in enumerate(active):
                obs[i], reward, terminated, truncated, _ = envs[i].step(actions[j])
                episode = episodes[i]
                episode.ret += float(reward)
                episode.length += 1
                episode.agreeing += int(same[j])
                if not (terminated or truncated):
                    keep.append(j)
                elif on_episode is not None:
                    on_episode(episode)
            if len(keep) < len(active):
                state, ref_state = _slice_state(state, keep), _slice_state(ref_state, keep)
            active = [active[j] for j in keep]
            starts = np.zeros(len(active), dtype=bool)
        return episodes
    finally:
        for env in envs:
            env.close()


def exact_reference(model: BaseAlgorithm) -> BasePolicy:
    """A copy of the model's policy that runs its circuits on the exact torch simulator."""
    policy = copy.deepcopy(model.policy)
    set_executor(policy, "torch")
    return policy


def total_cost(model: BaseAlgorithm) -> Cost:
    """The summed counters of every circuit executor of a model (zero for exact ones)."""
    return executor_cost(model) or Cost()


def summary(returns: list[float]) -> dict[str, Any]:
    """Mean, standard deviation, standard error, min and max of returns."""
    r = np.asarray(returns, dtype=float)
    std = float(r.std(ddof=1)) if len(r) > 1 else 0.0
    return {
        "mean_return": float(r.mean()),
        "std_return": std,
        "sem_return": std / math.sqrt(len(r)),
        "min_return": float(r.min()),
        "max_return": float(r.max()),
    }


def transpile_info(model: BaseAlgorithm, batch: int) -> list[dict[str, Any]]:
    """Transpilation reports of every circuit of a model on its current executor."""
    out = []
    for path, module in circuit_modules(model):
        report = getattr(module.executor, "transpile_report", None)
        if report is not None:
            out.append({"module": path or "features_extractor"} | report(module.circuit, batch))
    return out


class _Recorder:
    """Records each finished episode of a round, with the cost and time spent so far."""

    def __init__(
        self, model: BaseAlgorithm, entry: dict[str, Any], save: Callable[[dict[str, Any]], None]
    ) -> None:
        self.model, self.entry, self.save = model, entry, save
        self.spent, self.wall = Cost(**entry["cost"]), float(entry["wall_s"])
        self.before, self.start, self.clock = total_cost(model), time.perf_counter(), Clock()

    def __call__(self, episode: Episode) -> None:
        cost = self.spent.copy()
        cost.add(total_cost(self.model).since(self.before))
        elapsed = time.perf_counter() - self.start - self.clock.reference_s
        self.entry["cost"] = cost.to_dict()
        self.entry["wall_s"] = round(self.wall + elapsed, 2)
        self.entry["episodes"][str(episode.seed)] = [episode.ret, episode.length, episode.agreeing]
        self.save(self.entry)


def evaluate_variant(
    model: BaseAlgorithm,
    config: RunConfig,
    variant: Variant,
    seeds: list[int],
    n_envs: int,
    deterministic: bool,
    done: Mapping[str, Any] | None,
    save: Callable[[dict[str, Any]], None],
) -> dict[str, Any]:
    """Play every seed's episode on one variant, saving as each episode ends.

    :param done: this variant's saved progress (its finished episodes), to resume from
    :param save: called with the progress whenever an episode ends
    :return: the variant's report: returns and lengths in seed order, cost, wall time
    """
    set_executor(model, variant.executor, variant.options)
    entry: dict[str, Any] = {
        "label": variant.label,
        "executor": variant.executor,
        "options": dict(variant.options),
        "description": variant.describe(),
        "episodes": {},
        "cost": Cost().to_dict(),
        "wall_s": 0.0,
    }
    if done:
        entry |= {k: done[k] for k in ("episodes", "cost", "wall_s") if k in done}
    entry["transpiled"] = transpile_info(model, n_envs)
    compared = deterministic and variant.executor != "torch"
    reference = exact_reference(model) if compared else None
    todo = [s for s in seeds if str(s) not in entry["episodes"]]
    for i in range(0, len(todo), n_envs):
        recorder = _Recorder(model, entry, save)
        play_round(
            model, config, todo[i : i + n_envs], deterministic, reference, recorder, recorder.clock
        )
    played = [entry["episodes"][str(s)] for s in seeds]
    entry["returns"] = [float(e[0]) for e in played]
    entry["lengths"] = [int(e[1]) for e in played]
    if compared:  # the share of steps on which the action is exact simulation's action
        entry["action_agreement"] = sum(e[2] for e in played) / max(sum(entry["lengths"]), 1)
    return entry | summary(entry["returns"])


def dry_run(
    model: BaseAlgorithm,
    config: RunConfig,
    variant: Variant,
    episodes: int,
    n_envs: int,
) -> dict[str, Any]:
    """What an evaluation would cost at most, without running any circuit.

    Every episode is assumed to last the task's step limit (``max_episode_steps``).
    """
    set_executor(model, variant.executor, variant.options)
    max_steps = gym.spec(config.env_id).max_episode_steps
    if max_steps is None:
        raise QrlError(f"{config.env_id} has no step limit; a dry run cannot bound its cost")
    rounds = [min(n_envs, episodes - i) for i in range(0, episodes, n_envs)]
    circuits = submissions = policy_circuits = 0
    modules: list[CircuitRunner] = [m for _, m in circuit_modules(model)]
    shots = int(variant.options.get("shots") or 0)
    for size in rounds:
        for module in modules:
            executor = module.executor
            report = getattr(executor, "transpile_report", None)
            if report is not None:
                info = report(module.circuit, size)
                per_call, policy = info["circuits_per_call"], info["policy_circuits_per_call"]
            else:
                per_call = policy = size
            circuits += per_call * max_steps
            policy_circuits += policy * max_steps
            submissions += max_steps
    return {
        "label": variant.label,
        "description": variant.describe(),
        "episodes": episodes,
        "rounds": len(rounds),
        "max_steps_per_episode": max_steps,
        "max_submissions": submissions,
        "max_circuits": circuits,
        "max_policy_circuits": policy_circuits,
        "max_shots": circuits * shots,
        "transpiled": transpile_info(model, n_envs),
    }


class Progress:
    """The evaluation's progress file: settings, and per variant its finished episodes.

    :param path: the JSON file
    :param settings: what identifies this evaluation (model, seeds, variants); progress made
        under other settings is not reused
    """

    def __init__(self, path: Path, settings: dict[str, Any], restart: bool = False) -> None:
        self.path = path
        self.settings = settings
        self.variants: dict[str, Any] = {}
        if path.is_file() and not restart:
            try:
                data = json.loads(path.read_text())
            except (OSError, json.JSONDecodeError):
                data = {}
            if data.get("settings") == settings:
                self.variants = dict(data.get("variants", {}))

    def episodes_done(self) -> int:
        """Episodes already played, over all variants."""
        return sum(len(v.get("returns", [])) for v in self.variants.values())

    def save(self, label: str, entry: dict[str, Any]) -> None:
        """Record a variant's progress (atomically)."""
        self.variants[label] = entry
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps({"settings": self.settings, "variants": self.variants}) + "\n")
        tmp.replace(self.path)


def evaluate_executors(
    target: str | Path,
    executor: str,
    options: Mapping[str, Any] | None = None,
    episodes: int | None = None,
    seed: int | None = None,
    deterministic: bool = True,
    reference: bool = True,
    restart: bool = False,
    env: str | None = None,
    algorithm: str = "ppo",
) -> dict[str, Any]:
    """Evaluate a saved policy on an executor, beside exact simulation and ideal shots.

    The report goes into the run's ``eval.json`` under ``executors``; progress is kept in
    ``evaluations/<tag>.json`` of the run folder (beside a model file outside one), so an
    interrupted evaluation resumes where it stopped and a finished one is not run again.

    :param target: run folder or model file
    :param executor: executor name ("qiskit.aer", "qiskit.remote", "default.qubit", ...)
    :param options: its options (shots, backend, noise, packing, ...)
    :param episodes: episodes per variant; the env preset's by default
    :param seed: seed of episode 0 (episode i uses seed + i); the run's seed + 10000
    :param deterministic: take the most likely action
    :param reference: also run exact simulation and ideal shots
    :param restart: discard saved progress
    :param env: task of a model file outside a run folder
    :param algorithm: algorithm of such a model file
    :return: the report: settings and one entry per variant, with returns and costs
    """
    model, config, model_path = load_target(target, env, algorithm)
    episodes = episodes or config.eval_episodes
    if episodes < 1:
        raise QrlError(f"--episodes must be at least 1, got {episodes}")
    first = config.seed + EVAL_SEED_OFFSET if seed is None else seed
    todo = variants(executor, dict(options or {}), reference)
    _check_quantum(model, executor)
    for variant in todo:  # unknown names, options, backends, credentials: before any work
        set_executor(model, variant.executor, variant.options)
    n_envs = max(1, min(config.n_envs, episodes))
    stat = model_path.stat()
    settings = {
        "format": 2,  # progress is kept per episode
        "model": str(model_path.resolve()),
        "model_version": [stat.st_size, stat.st_mtime_ns],
        "episodes": episodes,
        "seed": first,
        "deterministic": deterministic,
        "n_envs": n_envs,
        "variants": [[v.label, v.executor, dict(v.options)] for v in todo],
    }
    name = todo[-1].tag()
    progress = Progress(_progress_path(model_path, name), settings, restart)
    if progress.episodes_done():
        print(
            f"qrl: resuming {name}: {progress.episodes_done()} episodes done ({progress.path})",
            file=sys.stderr,
        )
    seeds = [first + i for i in range(episodes)]
    results = []
    for variant in todo:
        entry = evaluate_variant(
            model,
            config,
            variant,
            seeds,
            n_envs,
            deterministic,
            progress.variants.get(variant.label),
            functools.partial(progress.save, variant.label),
        )
        results.append(entry)
    report = {
        "env": config.env_id,
        "agent": config.agent,
        "episodes": episodes,
        "seed": first,
        "deterministic": deterministic,
        "n_envs": n_envs,
        "num_timesteps": int(model.num_timesteps),
        "parameters": parameter_counts(model),
        "solved_threshold": config.solved,
        "variants": results,
    }
    _store(model_path, name, report)
    return report


def evaluation_cost(
    target: str | Path,
    executor: str,
    options: Mapping[str, Any] | None = None,
    episodes: int | None = None,
    reference: bool = True,
    env: str | None = None,
    algorithm: str = "ppo",
) -> dict[str, Any]:
    """The most an evaluation would cost (``qrl evaluate --dry-run``): nothing is run.

    :return: per variant, the bound on submissions, circuits and shots, and the transpiled
        circuits' depth and gate counts
    """
    model, config, _ = load_target(target, env, algorithm)
    episodes = episodes or config.eval_episodes
    _check_quantum(model, executor)
    n_envs = max(1, min(config.n_envs, episodes))
    rows = [
        dry_run(model, config, v, episodes, n_envs)
        for v in variants(executor, dict(options or {}), reference)
    ]
    return {"env": config.env_id, "agent": config.agent, "n_envs": n_envs, "variants": rows}


def _check_quantum(model: BaseAlgorithm, executor: str) -> None:
    if not any(True for _ in circuit_modules(model)):
        raise QrlError(f"executor {executor!r} given, but this policy has no quantum circuit")


def _progress_path(model_path: Path, name: str) -> Path:
    run = run_folder_of(model_path)
    if run is not None:
        return run / "evaluations" / f"{name}.json"
    return model_path.with_name(f"{model_path.stem}.{name}.json")


def _store(model_path: Path, name: str, report: dict[str, Any]) -> None:
    """Put the report into the run's eval.json, under ``executors``."""
    run = run_folder_of(model_path)
    if run is None:
        return
    path = run / "eval.json"
    try:
        data = json.loads(path.read_text()) if path.is_file() else {}
    except (OSError, json.JSONDecodeError):
        data = {}
    data.setdefault("executors", {})[name] = report
    path.write_text(json.dumps(data, indent=2) + "\n")
