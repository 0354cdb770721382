"""SB3 callbacks: a progress bar on stderr, the ``quantum/`` TensorBoard namespace, and the
learning curve (SB3's ``EvalCallback`` on fixed episodes at fixed step intervals)."""

from __future__ import annotations

import sys
import time
from collections.abc import Mapping
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from stable_baselines3.common.callbacks import BaseCallback, EvalCallback
from stable_baselines3.common.logger import HParam
from stable_baselines3.common.vec_env import DummyVecEnv
from tqdm import tqdm

from qrl.evaluation.episodes import curve_point
from qrl.extractors import CircuitRunner, circuit_modules, executor_cost, parameter_counts
from qrl.runs import Curve, Run, save_model, save_normalizer

_TB_ONLY = ("stdout", "log", "json", "csv")


class ProgressBar(BaseCallback):
    """A tqdm bar over environment steps, on stderr so stdout stays for the run path.

    :param total: the run's total timesteps
    """

    def __init__(self, total: int) -> None:
        super().__init__()
        self.total = total
        self.bar: tqdm | None = None

    def _on_training_start(self) -> None:
        self.bar = tqdm(
            total=self.total,
            initial=self.model.num_timesteps,
            file=sys.stderr,
            unit="step",
            dynamic_ncols=True,
            mininterval=0.5,
            disable=None,  # no bar when stderr is not a terminal (logs, CI)
        )

    def _on_step(self) -> bool:
        assert self.bar is not None
        # Rollouts may overshoot the budget by a few steps; the bar stops at its total.
        self.bar.update(min(self.training_env.num_envs, self.total - self.bar.n))
        buffer = self.model.ep_info_buffer
        if buffer and self.n_calls % 50 == 0:
            self.bar.set_postfix(
                ep_return=f"{np.mean([e['r'] for e in buffer]):.1f}", refresh=False
            )
        return True

    def _on_training_end(self) -> None:
        self.close()

    def close(self) -> None:
        """Close the bar (also when training stops on an interruption)."""
        if self.bar is not None:
            self.bar.close()
            self.bar = None


class QuantumLogger(BaseCallback):
    """Log the circuits of a policy under ``quantum/`` in TensorBoard.

    Once at the start: the circuit drawing, executor, qubit count, parameter counts and the
    hyperparameters (as TensorBoard hparams). After every rollout: norms of the circuit
    weights and of their gradients (mean over the minibatches of the last update), mean
    input and output scales, and the number of circuits executed (and, for executors with
    shots, the circuits, shots and submissions sent and the seconds waited); for fast-weight cells,
    the norms of the programmed angles (mean over the rollout's steps, maximum, mean at the
    end of episodes) and of their updates.

    :param hparams: flat run configuration to log as hyperparameters
    """

    def __init__(self, hparams: Mapping[str, Any] | None = None) -> None:
        super().__init__()
        self.hparams = dict(hparams or {})
        self.extractors: list[tuple[str, CircuitRunner]] = []
        self._grad_sums: dict[str, list[Any]] = {}  # key -> [sum of norms, count]
        self._handles: list[Any] = []

    def _key(self, path: str, name: str) -> str:
        if len(self.extractors) > 1:
            # sb3-contrib's names for the recurrent cells: lstm_actor, lstm_critic
            return f"quantum/{path.removeprefix('lstm_')}/{name}"
        return f"quantum/{name}"

    def _on_training_start(self) -> None:
        self.extractors = list(circuit_modules(self.model, trainable_only=True))
        for path, extractor in self.extractors:
            drawing = "\n".join("    " + line for line in extractor.circuit.draw().splitlines())
            self.logger.record(self._key(path, "circuit"), drawing, exclude=_TB_ONLY)
            self.logger.record(
                self._key(path, "executor"), extractor.executor_name, exclude=_TB_ONLY
            )
            self.logger.record(self._key(path, "n_qubits"), extractor.circuit.n_qubits)
            for name, param in extractor.named_parameters():
                if param.requires_grad:  # a frozen circuit (reservoir) has no gradients
                    self._hook(self._key(path, f"grad_norm/{name}"), param)
        for kind, count in parameter_counts(self.model).items():
            self.logger.record(f"quantum/parameters_{kind}", count)
        if self.hparams:
            metrics = {"rollout/ep_rew_mean": 0.0}
            self.logger.record("hparams", HParam(self.hparams, metrics), exclude=_TB_ONLY)
        self.logger.dump(self.model.num_timesteps)

    def _hook(self, key: str, param: torch.nn.Parameter) -> None:
        # Norms stay tensors until the rollout ends: no device sync on every minibatch.
        sums = self._grad_sums.setdefault(key, [0.0, 0])

        def record(p: torch.Tensor) -> None:
            if p.grad is not None:
                sums[0] = sums[0] + p.grad.detach().norm()
                sums[1] += 1

        self._handles.append(param.register_post_accumulate_grad_hook(record))

    def _on_step(self) -> bool:
        return True

    def _on_rollout_end(self) -> None:
        for path, extractor in self.extractors:
            for name, param in extractor.named_parameters():
                self.logger.record(
                    self._key(path, f"weight_norm/{name}"), float(param.detach().norm())
                )
            if extractor.input_scale is not None:
                value = float(extractor.input_scale.detach().mean())
                self.logger.record(self._key(path, "input_scale_mean"), value)
            if extractor.output_scale is not None:
                value = float(extractor.output_scale.detach().mean())
                self.logger.record(self._key(path, "output_scale_mean"), value)
            for name, value in extractor.pop_stats().items():
                self.logger.record(self._key(path, name), value)
        for key, sums in self._grad_sums.items():
            if sums[1]:
                self.logger.record(key, float(sums[0]) / sums[1])
                sums[0], sums[1] = 0.0, 0
        executions = sum(e.circuit_executions for _, e in circuit_modules(self.model))
        calls = sum(e.circuit_calls for _, e in circuit_modules(self.model))
        self.logger.record("quantum/circuit_executions", executions)
        self.logger.record("quantum/circuit_calls", calls)
        cost = executor_cost(self.model)
        if cost is not None:  # executors with shots: what the device was asked for
            for key, value in cost.to_dict().items():
                self.logger.record(f"quantum/{key}", value)

    def _on_training_end(self) -> None:
        self.close()

    def close(self) -> None:
        """Remove the gradient hooks (also when training stops on an interruption)."""
        for handle in self._handles:
            handle.remove()
        self._handles.clear()


class LearningCurve(EvalCallback):
    """SB3's ``EvalCallback`` on qrl's fixed episodes: evaluate the policy every ``freq``
    environment steps, into the run folder.

    Every evaluation runs the same ``episodes`` deterministic episodes (:func:`curve_point`),
    one environment each: episode ``k`` starts from ``reset(seed=seed + k)``, so the points
    of a curve (and the curves of different agents with the same seed) start from the same
    states, which are also the first episodes of ``qrl evaluate`` with that seed. The first
    point is the untrained policy. Observations are normalised with the training
    environments' current ``VecNormalize`` statistics, if any.

    As ``EvalCallback`` does, each point goes to TensorBoard as ``eval/mean_reward`` and
    ``eval/mean_ep_length`` (logged at the step it was evaluated at), to evaluations.npz
    (SB3's format), and a new best mean return saves best_model.zip (with
    best_vecnormalize.pkl) and calls ``callback_on_new_best``; ``callback_after_eval`` is
    called after every point. The points also go to curve.json (:class:`qrl.runs.Curve`),
    written after every evaluation, so an interrupted run keeps its curve.

    :param run: the run folder
    :param freq: environment steps between evaluations
    :param episodes: episodes per evaluation
    :param seed: seed of episode 0
    :param callback_on_new_best: called when a point has a new best mean return
    :param callback_after_eval: called after every point
    """

    def __init__(
        self,
        run: Run,
        freq: int,
        episodes: int,
        seed: int,
        callback_on_new_best: BaseCallback | None = None,
        callback_after_eval: BaseCallback | None = None,
    ) -> None:
        super().__init__(
            _NoEnvironment(),
            callback_on_new_best=callback_on_new_best,
            callback_after_eval=callback_after_eval,
            n_eval_episodes=int(episodes),
            eval_freq=int(freq),
            log_path=str(run.path),
            best_model_save_path=str(run.path),
            deterministic=True,
            verbose=0,
        )
        self.run = run
        self.freq = int(freq)
        self.episodes = int(episodes)
        self.seed = int(seed)
        self.curve = Curve(self.freq, self.episodes, self.seed)
        self.seconds = 0.0  # time spent evaluating in this process

    def _init_callback(self) -> None:
        # The run folder exists and episodes are played by qrl's runner: nothing to set up
        # but the callbacks (EvalCallback checks its evaluation environment here).
        for callback in (self.callback, self.callback_on_new_best):
            if callback is not None:
                callback.init_callback(self.model)

    def _on_training_start(self) -> None:
        self.curve = self.run.curve() or self.curve
        self.evaluations_timesteps = list(self.curve.timesteps)
        self.evaluations_results = [list(r) for r in self.curve.returns]
        self.evaluations_length = [list(n) for n in self.curve.lengths]
        means = [float(np.mean(r)) for r in self.curve.returns]
        self.best_mean_reward = max(means, default=-np.inf)
        self.last_mean_reward = means[-1] if means else -np.inf
        # The untrained policy, or a point an interruption skipped before a resume.
        due = (self.num_timesteps // self.freq) * self.freq
        self._stopped = False  # a callback of the first point asked to stop training
        if not self.curve.timesteps or self.curve.timesteps[-1] < due:
            self._stopped = not self._evaluate()
        self._next = (self.num_timesteps // self.freq + 1) * self.freq

    def _on_step(self) -> bool:
        if self._stopped:
            return False
        if self.num_timesteps >= self._next:
            self._next = (self.num_timesteps // self.freq + 1) * self.freq
            return self._evaluate()
        return True

    def _evaluate(self) -> bool:
        start = time.perf_counter()
        returns, lengths = curve_point(self.model, self.run.config, self.episodes, self.seed)
        self.curve.add(self.num_timesteps, returns, lengths)
        self.run.write_curve(self.curve)  # and evaluations.npz
        self.evaluations_timesteps.append(self.num_timesteps)
        self.evaluations_results.append(returns)
        self.evaluations_length.append(lengths)
        mean = float(np.mean(returns))
        self.last_mean_reward = mean
        self.logger.record("eval/mean_reward", mean)
        self.logger.record("eval/mean_ep_length", float(np.mean(lengths)))
        self.logger.dump(self.num_timesteps)  # at the step curve.json records
        continue_training = True
        if mean > self.best_mean_reward:
            self.best_mean_reward = mean
            # The old best goes first: never a best model beside another one's statistics.
            self.run.best_model_path.unlink(missing_ok=True)
            normalizer = self.model.get_vec_normalize_env()
            if normalizer is not None:
                save_normalizer(normalizer, self.run.normalizer_path(best=True))
            save_model(self.model, self.run.best_model_path)
            if self.callback_on_new_best is not None:
                continue_training = self.callback_on_new_best.on_step()
        if self.callback is not None:
            continue_training = continue_training and self._on_event()
        self.seconds += time.perf_counter() - start
        return continue_training


class _NoEnvironment(DummyVecEnv):
    """The evaluation environment :class:`LearningCurve` hands to ``EvalCallback``, which
    requires one: qrl's episode runner makes its own environments per point."""

    def __init__(self) -> None:
        super().__init__([lambda: _Idle()])


class _Idle(gym.Env[np.ndarray, int]):
    def __init__(self) -> None:
        self.observation_space = gym.spaces.Box(0.0, 1.0, (1,))
        self.action_space = gym.spaces.Discrete(1)  # type: ignore[assignment]
