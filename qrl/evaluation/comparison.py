"""Evaluate one policy under exact simulation, finite shots and device noise, side by side.

Every variant plays the same episodes with the one episode runner
(:func:`qrl.evaluation.episodes.play_episodes`, as ``qrl evaluate`` on the trained executor and the
learning curve do): episode ``k`` starts from ``reset(seed=seed + k)``, and the environments
of a round run in lockstep, so each step of a round is one batched executor call (one
submission) over the episodes still running. Progress is written after every episode that
ends, so an interrupted evaluation keeps its finished episodes and the same command resumes
it. The report has the shape of every evaluation (:func:`qrl.evaluation.models.evaluation_report`)
for the requested executor, and the compared variants in ``variants``.
"""

from __future__ import annotations

import contextlib
import copy
import functools
import json
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.policies import BasePolicy

from qrl.envs import episode_step_limit
from qrl.errors import QrlError
from qrl.evaluation.episodes import (
    Clock,
    Episode,
    check_episodes,
    episode_count,
    evaluation_seed,
    play_episodes,
    statistics,
)
from qrl.evaluation.models import evaluation_report, load_target
from qrl.executors import option_defaults
from qrl.executors.cost import Cost
from qrl.extractors import CircuitRunner, circuit_modules, executor_cost, set_executor
from qrl.presets import RunConfig
from qrl.runs import add_executor_evaluation, hold, holds_run, run_folder_of, write_json


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
    ideal sampling with the same shots on Aer (shot noise without device noise). Shots left
    out are the executor's default (:func:`~qrl.executors.option_defaults`), written into
    the options, so that rows, costs and file names say what runs.
    """
    requested = dict(options)
    default_shots = option_defaults(executor).get("shots")
    if "shots" not in requested and default_shots is not None:
        requested["shots"] = default_shots
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


def exact_reference(model: BaseAlgorithm) -> BasePolicy:
    """A copy of the model's policy that runs its circuits on the exact torch simulator."""
    policy = copy.deepcopy(model.policy)
    set_executor(policy, "torch")
    return policy


def _spent(model: BaseAlgorithm) -> Cost:
    """The summed counters of every circuit executor of a model (zero for exact ones)."""
    return executor_cost(model) or Cost()


def transpile_info(model: BaseAlgorithm, batch: int) -> list[dict[str, Any]]:
    """Transpilation reports of every circuit of a model on its current executor."""
    out = []
    for path, module in circuit_modules(model):
        report = module.executor.transpile_report(module.circuit, batch)
        if report is not None:
            out.append({"module": path or "features_extractor"} | report)
    return out


class _Recorder:
    """Records each finished episode of a variant, with the cost and time spent so far."""

    def __init__(
        self, model: BaseAlgorithm, entry: dict[str, Any], save: Callable[[dict[str, Any]], None]
    ) -> None:
        self.model, self.entry, self.save = model, entry, save
        self.spent, self.wall = Cost(**entry["cost"]), float(entry["wall_s"])
        self.before, self.start, self.clock = _spent(model), time.perf_counter(), Clock()

    def __call__(self, episode: Episode) -> None:
        cost = self.spent.copy()
        cost.add(_spent(self.model).since(self.before))
        elapsed = time.perf_counter() - self.start - self.clock.reference_s
        self.entry["cost"] = cost.to_dict()
        self.entry["wall_s"] = round(self.wall + elapsed, 2)
        self.entry["episodes"][str(episode.seed)] = [episode.ret, episode.length, episode.agreeing]
        self.save(self.entry)


def evaluate_variant(
    model: BaseAlgorithm,
    config: RunConfig,
    variant: Variant,
    episodes: int,
    seed: int,
    n_envs: int,
    deterministic: bool,
    done: Mapping[str, Any] | None,
    save: Callable[[dict[str, Any]], None],
) -> dict[str, Any]:
    """Play the evaluation's episodes on one variant, saving as each episode ends.

    Episode ``k`` starts from ``reset(seed=seed + k)``
    (:func:`~qrl.evaluation.episodes.play_episodes`), in rounds of ``n_envs`` episodes in
    lockstep; episodes already finished are not played again.

    :param model: the model; its circuits are switched to the variant's executor
    :param config: its run configuration
    :param variant: how to run the circuits
    :param episodes: number of episodes
    :param seed: seed of episode 0
    :param n_envs: episodes played at once (one executor call per step)
    :param deterministic: take the most likely action
    :param done: this variant's saved progress (its finished episodes), to resume from
    :param save: called with the progress whenever an episode ends
    :return: the variant's report: returns and lengths in episode order, their
        :func:`~qrl.evaluation.episodes.statistics`, cost, wall time and, against exact simulation,
        the share of steps with the same action
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
    todo = [k for k in range(episodes) if str(seed + k) not in entry["episodes"]]
    recorder = _Recorder(model, entry, save)
    play_episodes(
        model,
        config,
        todo,
        seed,
        deterministic,
        n_envs=n_envs,
        reference=reference,
        on_episode=recorder,
        clock=recorder.clock,
    )
    played = [entry["episodes"][str(seed + k)] for k in range(episodes)]
    entry["returns"] = [float(e[0]) for e in played]
    entry["lengths"] = [int(e[1]) for e in played]
    if compared:  # the share of steps on which the action is exact simulation's action
        entry["action_agreement"] = sum(e[2] for e in played) / max(sum(entry["lengths"]), 1)
    return entry | statistics(entry["returns"], entry["lengths"])


def dry_run(
    model: BaseAlgorithm,
    config: RunConfig,
    variant: Variant,
    episodes: int,
    n_envs: int,
) -> dict[str, Any]:
    """What an evaluation would cost at most, without running any circuit.

    Every episode is assumed to last the step limit its environments apply
    (:func:`qrl.envs.episode_step_limit`: ``max_episode_steps``, the task's own, or qrl's
    default for a task without one). The shots are those of the executor the real run
    builds from the same options (its default when left out), and
    ``max_shots`` counts them on every circuit.
    """
    set_executor(model, variant.executor, variant.options)
    max_steps = episode_step_limit(config)
    rounds = [min(n_envs, episodes - i) for i in range(0, episodes, n_envs)]
    circuits = submissions = policy_circuits = shots = 0
    modules: list[CircuitRunner] = [m for _, m in circuit_modules(model)]
    for size in rounds:
        for module in modules:
            info = module.executor.transpile_report(module.circuit, size)
            if info is not None:
                per_call, policy = info["circuits_per_call"], info["policy_circuits_per_call"]
            else:
                per_call = policy = size
            circuits += per_call * max_steps
            policy_circuits += policy * max_steps
            shots += per_call * max_steps * int(getattr(module.executor, "shots", None) or 0)
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
        "max_shots": shots,
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
        return sum(len(v.get("episodes", {})) for v in self.variants.values())

    def save(self, label: str, entry: dict[str, Any]) -> None:
        """Record a variant's progress (atomically)."""
        self.variants[label] = entry
        write_json(self.path, {"settings": self.settings, "variants": self.variants}, None)


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
    algorithm: str | None = "ppo",
) -> dict[str, Any]:
    """Evaluate a saved policy on an executor, beside exact simulation and ideal shots.

    The report goes into the run's ``eval.json`` under ``executors``; progress is kept in
    ``evaluations/<tag>.json`` of the run folder (beside a model file outside one), so an
    interrupted evaluation resumes where it stopped and a finished one is not run again.
    The evaluation holds the run folder's lock (:func:`qrl.runs.hold`): it is refused while
    another process trains or evaluates into the folder.

    :param target: run folder or model file
    :param executor: executor name ("qiskit.aer", "qiskit.remote", "default.qubit", ...)
    :param options: its options (shots, backend, noise, packing, ...)
    :param episodes: episodes per variant; the env preset's by default
    :param seed: seed of episode 0 (episode k uses seed + k); the run's seed + 10000
    :param deterministic: take the most likely action
    :param reference: also run exact simulation and ideal shots
    :param restart: discard saved progress
    :param env: task of a model file outside a run folder
    :param algorithm: algorithm of such a model file
    :return: the report: :func:`~qrl.evaluation.models.evaluation_report` of the requested
        executor (``mean_return``, ``std_return``, ``returns``, ``lengths``, ...; sample
        standard deviation), ``n_envs``, and in ``variants`` one entry per variant (the
        requested one last), with its returns, statistics and costs
    """
    check_episodes(episodes)  # before the model is loaded
    given = Path(target)
    run = given if given.is_dir() and holds_run(given) else run_folder_of(given)
    # The evaluation writes into the run folder (progress, eval.json): one writer at a time.
    with hold(run) if run is not None else contextlib.nullcontext():
        model, config, model_path = load_target(target, env, algorithm)
        episodes = episode_count(episodes, config)
        first = evaluation_seed(seed, config)
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
        done = progress.episodes_done()
        if 0 < done < episodes * len(todo):  # a finished evaluation is reported, not resumed
            print(f"qrl: resuming {name}: {done} episodes done ({progress.path})", file=sys.stderr)
        results = []
        for variant in todo:
            entry = evaluate_variant(
                model,
                config,
                variant,
                episodes,
                first,
                n_envs,
                deterministic,
                progress.variants.get(variant.label),
                functools.partial(progress.save, variant.label),
            )
            results.append(entry)
        requested = results[-1]  # the top level describes the requested executor's variant
        report = evaluation_report(
            model,
            config,
            requested["returns"],
            requested["lengths"],
            first,
            deterministic,
            requested["executor"],
            n_envs,
        )
        report["variants"] = results
        _store(model_path, name, report)
        return report


def evaluation_cost(
    target: str | Path,
    executor: str,
    options: Mapping[str, Any] | None = None,
    episodes: int | None = None,
    reference: bool = True,
    env: str | None = None,
    algorithm: str | None = "ppo",
) -> dict[str, Any]:
    """The most an evaluation would cost (``qrl evaluate --dry-run``): nothing is run.

    :return: per variant, the bound on submissions, circuits and shots, and the transpiled
        circuits' depth and gate counts
    """
    check_episodes(episodes)  # before the model is loaded
    model, config, _ = load_target(target, env, algorithm)
    episodes = episode_count(episodes, config)
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
    if run is not None:
        add_executor_evaluation(run, name, report)
