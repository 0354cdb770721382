"""The ``qrl`` command: a thin layer over :mod:`qrl.training` and :mod:`qrl.evaluation`.

Progress and messages go to stderr; stdout carries results (the run folder's path after
``train``, the evaluation after ``evaluate``) so commands compose in a shell.
"""

from __future__ import annotations

import argparse
import errno
import json
import os
import shlex
import signal
import sys
from collections.abc import Sequence
from types import FrameType
from typing import Any

from qrl.errors import QrlError, install_hint


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="qrl", description="Reinforcement learning with quantum policies."
    )
    parser.add_argument("--debug", action="store_true", help="show tracebacks of errors")
    sub = parser.add_subparsers(dest="command", required=True)

    train = sub.add_parser("train", help="train an agent into a run folder, then evaluate it")
    train.add_argument("--agent", help="agent preset name or YAML path (see `qrl presets`)")
    train.add_argument("--env", help="env preset name or YAML path, or any Gymnasium id")
    train.add_argument("--seed", type=int, default=0)
    train.add_argument(
        "--timesteps",
        type=int,
        help="training budget (env preset's by default), rounded up to whole rollouts",
    )
    train.add_argument("--executor", help="circuit executor: torch (default) or a PennyLane device")
    train.add_argument("--run-dir", help="run folder (default runs/<env>-<agent>-s<seed>-<time>)")
    _set_option(
        train, "override a setting, e.g. policy.n_layers=3 or hyperparameters.learning_rate=1e-3"
    )
    train.add_argument(
        "--resume",
        metavar="RUN",
        help="continue a run from its newest readable checkpoint (from the start if it has none)",
    )
    train.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    _gym_packages_option(train)
    train.add_argument(
        "--track", action="store_true", help="log to Weights & Biases too (the track extra)"
    )
    train.add_argument("--wandb-project", default="qrl", help="W&B project (default qrl)")
    train.add_argument("--wandb-entity", help="W&B user or team (default: the account's)")

    ev = sub.add_parser("evaluate", help="evaluate a run folder or a saved model")
    ev.add_argument("target", metavar="RUN_OR_MODEL")
    ev.add_argument("--episodes", type=int, help="episodes (env preset's, usually 100)")
    ev.add_argument(
        "--executor",
        help="run the circuit on this executor (qiskit.aer, qiskit.remote, default.qubit, ...) "
        "and report it beside exact simulation",
    )
    ev.add_argument("--shots", type=int, help="shots per circuit")
    ev.add_argument(
        "--backend", help="device: a fake IBM device (fake_manila, ...) or an IBM Quantum name"
    )
    ev.add_argument(
        "--no-noise", action="store_true", help="qiskit.aer: the device's layout without noise"
    )
    ev.add_argument("--packing", help="policy circuits per device circuit (a number or auto)")
    ev.add_argument(
        "--option",
        dest="options",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="another executor option, e.g. optimization_level=3, retries=5, timeout_s=600",
    )
    ev.add_argument(
        "--dry-run", action="store_true", help="print the most the evaluation costs; run nothing"
    )
    ev.add_argument(
        "--no-reference", action="store_true", help="skip the exact and ideal-shots references"
    )
    ev.add_argument("--restart", action="store_true", help="discard a saved partial evaluation")
    ev.add_argument(
        "--seed",
        type=int,
        help="episode k starts from reset(seed=SEED + k) (default: the run's seed + 10000)",
    )
    ev.add_argument("--stochastic", action="store_true", help="sample actions")
    ev.add_argument(
        "--json",
        action="store_true",
        help="print the full result as JSON (the same shape on every executor)",
    )
    ev.add_argument("--video", metavar="DIR", help="record every episode as MP4 into DIR")
    ev.add_argument("--env", help="task of a model file that is not in a run folder")
    ev.add_argument(
        "--algo", help="algorithm of such a model file (default: the one the file names, or ppo)"
    )
    ev.add_argument(
        "--best",
        action="store_true",
        help="evaluate the run's best_model.zip (best learning-curve point), not model.zip",
    )
    _gym_packages_option(ev)

    ft = sub.add_parser(
        "finetune",
        help="continue training a trained run on another executor (shots, noise, hardware)",
        description="Load RUN's policy, switch its circuits to --executor and train it for "
        "--timesteps more steps into a new run folder (gradients by parameter shift). "
        "Circuits, shots and submissions are logged to TensorBoard under quantum/.",
    )
    ft.add_argument("source", metavar="RUN")
    ft.add_argument("--executor", required=True, help="qiskit.aer, qiskit.remote, default.qubit…")
    ft.add_argument(
        "--timesteps",
        type=int,
        default=256,
        help="steps of fine-tuning (256), rounded up to whole rollouts; at least one",
    )
    ft.add_argument("--shots", type=int, help="shots per circuit")
    ft.add_argument("--backend", help="a fake IBM device (fake_manila, ...) or an IBM device")
    ft.add_argument("--no-noise", action="store_true", help="qiskit.aer: no device noise")
    ft.add_argument("--packing", help="policy circuits per device circuit (a number or auto)")
    ft.add_argument("--option", dest="options", action="append", default=[], metavar="KEY=VALUE")
    _set_option(ft, "e.g. hyperparameters.n_epochs=1 or hyperparameters.learning_rate=1e-4")
    ft.add_argument("--run-dir", help="new run folder (default RUN-finetune-<executor>)")
    ft.add_argument(
        "--eval-episodes", type=int, default=0, help="final evaluation on the executor (0)"
    )
    ft.add_argument("--no-progress", action="store_true", help="hide the progress bar")

    cmp = sub.add_parser(
        "compare",
        help="train agents x envs x seeds (reusing finished runs) and compare them",
        description="Train a grid of runs in parallel, then write summary.md, summary.csv, "
        "runs.csv and plots into --out. Finished runs are reused and interrupted ones resume, "
        "so the same command continues a stopped grid, and re-plots a finished one.",
    )
    cmp.add_argument("--agents", nargs="+", help="agent presets (default: the grid in --out)")
    cmp.add_argument("--env", dest="envs", nargs="+", help="env presets or Gymnasium ids")
    cmp.add_argument("--seeds", type=int, help="number of seeds, 0..N-1 (default 10)")
    cmp.add_argument("--timesteps", type=int, help="budget of every run (env preset's)")
    _set_option(
        cmp, "a setting for every run, e.g. hyperparameters.learning_rate=1e-3", default=None
    )
    cmp.add_argument("--out", default="runs/compare", help="grid folder (default runs/compare)")
    cmp.add_argument(
        "--own-hyperparameters",
        action="store_true",
        help="each agent keeps its preset's hyperparameters (e.g. a tuned preset against "
        "the shipped one); by default agents of an env differ only in their policy",
    )
    cmp.add_argument("--workers", type=int, default=2, help="local runs at once (default 2)")
    cmp.add_argument("--ray-address", help="run on this Ray cluster (host:port or auto)")
    cmp.add_argument(
        "--run-timeout",
        type=float,
        metavar="SECONDS",
        help="stop a run that takes longer (it saves) and report it; the same command resumes",
    )

    curve = sub.add_parser(
        "curve", help="compute a finished run's learning curve from its checkpoints"
    )
    curve.add_argument("run", metavar="RUN")
    curve.add_argument("--episodes", type=int, help="episodes per point (the run's setting)")
    curve.add_argument(
        "--overwrite", action="store_true", help="replace the run's existing curve.json"
    )

    _tune_parser(sub)
    sub.add_parser("presets", help="list agent and env presets")
    return parser


def _tune_parser(sub: Any) -> None:
    tune = sub.add_parser(
        "tune",
        help="search hyperparameters on several seeds per trial (Optuna)",
        description="Each trial trains its setting on --seeds seeds side by side and scores "
        "it by the IQM over the seeds; the pruner reads their aggregate learning curve. "
        "Rerunning continues the study up to --trials trials in all. DIR gets the study "
        "(study.db), trials.csv, plots/*.png, best.yaml and every trial's runs.",
    )
    tune.add_argument("--agent", required=True, help="agent preset name or YAML path")
    tune.add_argument(
        "--env", required=True, help="env preset name or YAML path, or a Gymnasium id"
    )
    tune.add_argument("--trials", type=int, required=True, help="trials in the study in all")
    tune.add_argument("--seeds", type=int, default=3, help="seeds per trial (3)")
    tune.add_argument("--timesteps", type=int, help="budget of every run (env preset's)")
    tune.add_argument("--out", default="runs/tune", help="study folder (default runs/tune)")
    _set_option(tune, "a setting fixed for every trial (not searched)")
    tune.add_argument("--space", metavar="FILE", help="search space file (default: shipped)")
    tune.add_argument(
        "--objective",
        default="curve",
        help="curve: IQM over seeds of the mean return over the learning curve (default); "
        "final: of the final model's mean return",
    )
    tune.add_argument("--sampler", default="tpe", help="tpe (default), random, cmaes, qmc")
    tune.add_argument("--sampler-seed", type=int, default=0, help="the sampler's seed (0)")
    tune.add_argument(
        "--pruner", default="median", help="median (default), halving, hyperband, none"
    )
    tune.add_argument(
        "--storage", help="Optuna storage URL: postgresql://..., mysql://..., journal:PATH"
    )
    tune.add_argument("--workers", type=int, default=1, help="local processes running trials (1)")
    tune.add_argument("--study-name", help="the study's name in the storage (<env>-<agent>)")
    tune.add_argument(
        "--first-seed", type=int, default=1000, help="trials use seeds FIRST.. (default 1000)"
    )
    tune.add_argument("--points", type=int, default=10, help="learning-curve points per run (10)")
    tune.add_argument(
        "--max-parameters", type=int, help="prune settings with more trainable parameters"
    )
    _gym_packages_option(tune)


def _set_option(parser: argparse.ArgumentParser, text: str, default: Any = ()) -> None:
    """The repeatable ``--set KEY=VALUE`` option of a command."""
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[] if default == () else default,
        metavar="KEY=VALUE",
        help=text,
    )


def _gym_packages_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--gym-packages",
        nargs="+",
        default=[],
        metavar="MODULE",
        help="modules to import first, whose import registers Gymnasium tasks",
    )


def _tracking(args: argparse.Namespace) -> Any:
    from qrl.tracking import Tracking

    return Tracking(args.wandb_project, args.wandb_entity) if args.track else None


def _train(args: argparse.Namespace) -> int:
    from qrl.training import resume, train

    if args.resume:
        names = ("agent", "env", "executor", "run_dir", "gym_packages")
        extra = [n for n in names if getattr(args, n)]
        if extra or args.overrides:
            raise QrlError(
                "--resume continues a run as configured; drop "
                + ", ".join(
                    f"--{n.replace('_', '-')}" for n in extra + (["set"] if args.overrides else [])
                )
            )
        run = resume(
            args.resume,
            timesteps=args.timesteps,
            progress=not args.no_progress,
            command=shlex.join(["qrl", *sys.argv[1:]]),
            track=_tracking(args),
        )
    else:
        if not args.agent or not args.env:
            raise QrlError("qrl train needs --agent and --env (or --resume RUN)")
        run = train(
            args.agent,
            args.env,
            seed=args.seed,
            timesteps=args.timesteps,
            executor=args.executor,
            overrides=args.overrides,
            run_dir=args.run_dir,
            progress=not args.no_progress,
            command=shlex.join(["qrl", *sys.argv[1:]]),
            gym_packages=args.gym_packages,
            track=_tracking(args),
        )
    status = run.status()
    if status.status == "interrupted":
        print(
            f"interrupted after {status.num_timesteps} steps; saved. "
            f"Continue with: qrl train --resume {run.path}",
            file=sys.stderr,
        )
        print(run.path)
        return 130
    result = run.evaluation()
    if result is not None:
        print(_summary(result), file=sys.stderr)
    print(run.path)
    return 0


def _summary(result: dict[str, Any]) -> str:
    line = (
        f"{result['env']} {result['agent']} ({result['executor'] or 'classical'}): "
        f"return {result['mean_return']:.1f} +/- {result['std_return']:.1f} "
        f"[{result['min_return']:.1f}, {result['max_return']:.1f}], "
        f"length {result['mean_length']:.1f} +/- {result['std_length']:.1f} "
        f"[{result['min_length']}, {result['max_length']}] over {result['episodes']} episodes"
    )
    if "solved" in result:
        line += f"; solved (>= {result['solved_threshold']}): {'yes' if result['solved'] else 'no'}"
    return line


def _executor_options(args: argparse.Namespace) -> dict[str, Any]:
    from qrl.presets import parse_override

    options: dict[str, Any] = {}
    for item in args.options:
        if "=" not in item:
            raise QrlError(f"--option takes key=value, got {item!r}")
        key, value = parse_override(item, "--option")
        options[key] = value
    if args.shots is not None:  # 0 is refused by the executor, not taken for "default"
        options["shots"] = args.shots
    if args.backend:
        options["backend"] = args.backend
    if args.no_noise:
        options["noise"] = False
    if args.packing:
        packing = args.packing  # a number or "auto"; the executor refuses anything else
        options["packing"] = int(packing) if packing.isdigit() else packing
    return options


def _evaluate(args: argparse.Namespace) -> int:
    options = _executor_options(args)
    if options and args.executor in (None, "torch"):
        raise QrlError(
            "--shots, --backend, --packing and --option need an --executor, "
            "e.g. --executor qiskit.aer or --executor default.qubit"
        )
    if args.executor not in (None, "torch"):
        return _evaluate_on_executor(args, options)
    if args.dry_run:
        raise QrlError("--dry-run needs an --executor: exact simulation costs no device time")
    from qrl.evaluation.models import evaluate

    result = evaluate(
        args.target,
        episodes=args.episodes,
        executor=args.executor,
        seed=args.seed,
        deterministic=not args.stochastic,
        video=args.video,
        env=args.env,
        algorithm=args.algo,
        best=args.best,
        gym_packages=args.gym_packages,
    )
    print(json.dumps(result, indent=2) if args.json else _summary(result))
    return 0


def _evaluate_on_executor(args: argparse.Namespace, options: dict[str, Any]) -> int:
    from qrl.evaluation.comparison import evaluate_executors, evaluation_cost
    from qrl.evaluation.report import format_cost, format_report
    from qrl.executors.jobs import SubmissionError

    if args.video:
        raise QrlError("--video records exact simulation only; drop --executor")
    common = dict(
        target=args.target,
        executor=args.executor,
        options=options,
        episodes=args.episodes,
        reference=not args.no_reference,
        env=args.env,
        algorithm=args.algo,
    )
    if args.dry_run:
        cost = evaluation_cost(**common)
        print(json.dumps(cost, indent=2) if args.json else format_cost(cost))
        return 0
    try:
        report = evaluate_executors(
            **common, seed=args.seed, deterministic=not args.stochastic, restart=args.restart
        )
    except KeyboardInterrupt:
        print(
            "qrl: evaluation interrupted; its finished episodes are saved. "
            "Run the same command to continue it.",
            file=sys.stderr,
        )
        return 130
    except SubmissionError as exc:
        raise SubmissionError(
            f"{exc}. The finished episodes are saved; run the same command to continue"
        ) from None
    print(json.dumps(report, indent=2) if args.json else format_report(report))
    return 0


def _finetune(args: argparse.Namespace) -> int:
    from qrl.training import finetune

    run = finetune(
        args.source,
        args.executor,
        _executor_options(args),
        timesteps=args.timesteps,
        overrides=args.overrides,
        run_dir=args.run_dir,
        eval_episodes=args.eval_episodes,
        progress=not args.no_progress,
        command=shlex.join(["qrl", *sys.argv[1:]]),
    )
    status = run.status()
    cost = status.quantum_cost
    if cost:
        print(
            f"sent {cost['circuits']} circuits ({cost['policy_circuits']} policy circuits), "
            f"{cost['shots']} shots in {cost['submissions']} submissions "
            f"({cost['retries']} retried), {cost['seconds']:.1f} s waiting",
            file=sys.stderr,
        )
    if status.status == "interrupted":
        print(f"interrupted; continue with: qrl train --resume {run.path}", file=sys.stderr)
        print(run.path)
        return 130
    print(run.path)
    return 0


def _compare(args: argparse.Namespace) -> int:
    from pathlib import Path

    from qrl.compare import GridSpec, compare, read_grid, seed_list

    out = Path(args.out)
    if args.agents is None:
        if args.envs or args.seeds is not None or args.timesteps or args.overrides:
            raise QrlError("give --agents (and --env): the grid is not complete without them")
        spec = read_grid(out)
    else:
        if not args.envs:
            raise QrlError("qrl compare needs --env (one or more env presets)")
        spec = GridSpec(
            agents=tuple(args.agents),
            envs=tuple(args.envs),
            seeds=seed_list(10 if args.seeds is None else args.seeds),
            timesteps=args.timesteps,
            overrides=tuple(args.overrides or ()),
            own_hyperparameters=args.own_hyperparameters,
        )
    command = shlex.join(["qrl", *sys.argv[1:]])
    try:
        result = compare(spec, out, args.workers, args.ray_address, command, args.run_timeout)
    except KeyboardInterrupt:
        print(
            f"qrl: compare stopped; the running runs saved what they trained. "
            f"Continue with the same command (or: qrl compare --out {out})",
            file=sys.stderr,
        )
        return 130
    summary = out / "summary.md"
    print(f"{result.reused} runs reused; summary: {summary}", file=sys.stderr)
    if result.failed:
        print(f"qrl: {len(result.failed)} runs failed:", file=sys.stderr)
        for line in result.failed:
            print(f"  {line}", file=sys.stderr)
        print(summary)
        return 1
    print(summary)
    return 0


def _curve(args: argparse.Namespace) -> int:
    import numpy as np

    from qrl.evaluation.models import curve_from_checkpoints

    curve = curve_from_checkpoints(args.run, args.episodes, overwrite=args.overwrite)
    for steps, returns in zip(curve.timesteps, curve.returns, strict=True):
        print(f"{steps}\t{np.mean(returns):.1f}")
    return 0


def _tune(args: argparse.Namespace) -> int:
    try:
        import optuna  # noqa: F401
    except ImportError:
        raise QrlError(f"qrl tune needs Optuna: {install_hint('tune')}") from None
    from qrl.tuning import tune

    tune(
        args.agent,
        args.env,
        trials=args.trials,
        seeds=args.seeds,
        timesteps=args.timesteps,
        out=args.out,
        overrides=args.overrides,
        space=args.space,
        objective=args.objective,
        sampler=args.sampler,
        sampler_seed=args.sampler_seed,
        pruner=args.pruner,
        storage=args.storage,
        workers=args.workers,
        study_name=args.study_name,
        first_seed=args.first_seed,
        points=args.points,
        max_parameters=args.max_parameters,
        gym_packages=args.gym_packages,
    )
    print(args.out)
    return 0


def _presets(args: argparse.Namespace) -> int:
    from qrl.presets import preset_descriptions

    for kind in ("agents", "envs"):
        print(f"{kind}:")
        rows = preset_descriptions(kind)
        width = max(len(name) for name, _ in rows)
        for name, description in rows:
            print(f"  {name:<{width}}  {description}")
    return 0


def _sigterm(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt  # stop like Ctrl-C, so the run saves what it trained


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``qrl`` command."""
    from qrl.processes import stop_with_parent

    stop_with_parent()
    args = _parser().parse_args(argv)
    signal.signal(signal.SIGTERM, _sigterm)
    commands = {
        "train": _train,
        "evaluate": _evaluate,
        "finetune": _finetune,
        "compare": _compare,
        "curve": _curve,
        "presets": _presets,
        "tune": _tune,
    }
    try:
        return commands[args.command](args)
    except QrlError as exc:
        if args.debug:
            raise
        print(f"qrl: error: {_one_line(str(exc))}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("qrl: interrupted", file=sys.stderr)
        return 130
    except OSError as exc:  # the file system or the network said no
        if args.debug:
            raise
        print(f"qrl: error: {_os_error(exc)}", file=sys.stderr)
        return 2
    except Exception as exc:  # a bug: one line, and the way to its traceback
        if args.debug:
            raise
        print(
            f"qrl: internal error: {type(exc).__name__}: {_one_line(str(exc))[:300]}; "
            "this is a bug in qrl: rerun with --debug for the traceback and report it",
            file=sys.stderr,
        )
        return 1


def _one_line(text: str) -> str:
    return " ".join(text.split())


# What to do about the file system errors a user meets, by errno.
_OS_HINTS = {
    errno.EACCES: "choose a folder you may write to (--run-dir, --out) or change its permissions",
    errno.EPERM: "choose a folder you may write to (--run-dir, --out) or change its permissions",
    errno.EROFS: "the file system is read-only: choose another folder (--run-dir, --out)",
    errno.ENAMETOOLONG: "use a shorter name (--run-dir, preset file names)",
    errno.ENOSPC: "the disk is full: free some space, or choose another disk (--run-dir, --out)",
    errno.EDQUOT: "the disk quota is used up: free some space, or choose another disk",
    errno.ENOTDIR: "a part of the path is a file, not a folder: choose another path",
    errno.EEXIST: "it already exists: choose another path",
    errno.EISDIR: "it is a folder, not a file",
    errno.ENOENT: "check the path",
}
_PATH_NAMES = ("path", "temporary", "file", "filename", "save_path", "folder", "target")
# Errors of writing a file that the system may report without its name (on write or flush).
_WRITE_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EIO, errno.EROFS, errno.EACCES}


def _os_error(exc: OSError) -> str:
    """One line for an OSError: the path, what the system said and what to do."""
    path = exc.filename
    if path is None and exc.errno in _WRITE_ERRNOS:
        path = _path_in_traceback(exc)
    where = f"{os.fsdecode(path)}: " if path is not None else ""
    reason = exc.strerror or _one_line(str(exc)) or type(exc).__name__
    hint = _OS_HINTS.get(exc.errno or 0)
    return f"{where}{reason}" + (f"; {hint}" if hint else "")


def _path_in_traceback(exc: BaseException) -> Any:
    """The path being written when an error without a file name was raised (a full disk
    says so on write or flush): the innermost frame's local variable that names one."""
    tb = exc.__traceback__
    frames = []
    while tb is not None:
        frames.append(tb.tb_frame)
        tb = tb.tb_next
    for frame in reversed(frames):
        for name in _PATH_NAMES:
            value = frame.f_locals.get(name)
            if isinstance(value, str | os.PathLike):
                return value
    return None


if __name__ == "__main__":
    sys.exit(main())
