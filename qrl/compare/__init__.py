"""``qrl compare``: train a grid of agents x envs x seeds and compare them with statistics.

- :mod:`qrl.compare.grid`: the grid, its folder layout, and what each run still needs
  (finished runs are reused, interrupted ones resume);
- :mod:`qrl.compare.launch`: running the runs on local processes or on a Ray cluster;
- :mod:`qrl.compare.stats`: IQM, bootstrap confidence intervals, steps to threshold, area
  under the curve, probability of improvement;
- :mod:`qrl.compare.report` and :mod:`qrl.compare.plots`: summary.md, summary.csv,
  runs.csv and the plots.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from qrl.compare.grid import (
    Cell,
    GridSpec,
    check_grid,
    plan,
    prepare,
    read_grid,
    seed_list,
    train_arguments,
    training_settings,
)
from qrl.compare.grid import write_grid as _write_grid
from qrl.compare.launch import (
    TIMED_OUT,
    Job,
    Outcome,
    check_ray_address,
    run_local,
    run_ray,
)
from qrl.compare.report import (
    IMPROVEMENT_FIELDS,
    RUN_FIELDS,
    SUMMARY_FIELDS,
    RunRecord,
    agent_table,
    header,
    improvement_table,
    improvements,
    read_record,
    run_row,
    runs_table,
    summarize,
    summary_row,
    write_csv,
)
from qrl.errors import QrlError
from qrl.runs import DamagedFile, claim, holds_run

__all__ = ["CompareResult", "GridSpec", "compare", "read_grid", "seed_list", "write_report"]


@dataclass
class CompareResult:
    """What a comparison did and where its outputs are."""

    out: Path
    cells: list[Cell]
    reused: int = 0
    failed: list[str] = field(default_factory=list)
    outputs: list[Path] = field(default_factory=list)


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def compare(
    spec: GridSpec,
    out: str | Path,
    workers: int = 2,
    ray_address: str | None = None,
    command: str = "",
    run_timeout_s: float | None = None,
) -> CompareResult:
    """Train every run of a grid that is not finished yet, then write the comparison.

    The process holds the grid folder's lock (:func:`qrl.runs.hold`) throughout: a second
    ``qrl compare`` on the same folder is refused while this one runs. A grid whose budget
    or ``--set`` values differ from those recorded in the folder's grid.json is refused
    before any work.

    :param spec: agents, envs, seeds, budget and overrides
    :param out: the grid's folder
    :param workers: local processes at once (one thread each); ignored with Ray
    :param ray_address: run on the Ray cluster at this address instead
    :param command: the command line, recorded in grid.json and summary.md
    :param run_timeout_s: stop a run that takes longer (it saves; the same command resumes
        it) and report it as timed out, so that one stuck run does not hold up the grid
    :return: what was done; ``failed`` lists runs whose process failed, or whose folder
        holds a damaged file (named)
    :raises KeyboardInterrupt: after the running jobs saved what they trained
    """
    folder = Path(out)
    if workers < 1:
        raise QrlError(f"--workers must be at least 1, got {workers}")
    if ray_address is not None:
        check_ray_address(ray_address)
    if run_timeout_s is not None and run_timeout_s <= 0:
        raise QrlError(f"--run-timeout must be a positive number of seconds, got {run_timeout_s}")
    with claim(folder, command or None):
        check_grid(folder, spec)
        cells = plan(spec, folder)  # every name and every existing folder checked first
        _write_grid(folder, spec, command)
        return _run_grid(spec, folder, cells, workers, ray_address, command, run_timeout_s)


def _run_grid(
    spec: GridSpec,
    folder: Path,
    cells: list[Cell],
    workers: int,
    ray_address: str | None,
    command: str,
    run_timeout_s: float | None = None,
) -> CompareResult:
    """Run the jobs of the cells that need one, then write the report."""
    todo = [c for c in cells if c.action not in ("done", "failed")]
    done = sum(c.action == "done" for c in cells)
    result = CompareResult(folder, cells, reused=done)
    result.failed += [f"{c.label}: {'; '.join(c.notes)}" for c in cells if c.action == "failed"]
    counts = {a: sum(c.action == a for c in cells) for a in ("resume", "train", "curve")}
    _log(
        f"{len(cells)} runs: {done} finished (reused), {counts['resume']} to resume, "
        f"{counts['train']} to train, {counts['curve']} learning curves to compute"
        + (f", {len(result.failed)} damaged (left alone)" if result.failed else "")
        + (f"; on Ray at {ray_address}" if ray_address else f"; {workers} at a time")
    )
    jobs = []
    for cell in todo:
        prepare(cell)
        jobs.append(Job(cell.label, train_arguments(cell, spec), cell.path / "train.log"))
    finished = [0]

    def progress(outcome: Outcome) -> None:
        finished[0] += 1
        timed_out = f"TIMED OUT after {run_timeout_s} s (stopped and saved)"
        state = {0: "done", 130: "stopped", TIMED_OUT: timed_out}.get(outcome.returncode, "FAILED")
        _log(f"[{finished[0]}/{len(jobs)}] {outcome.job.label}: {state}")
        if outcome.returncode == TIMED_OUT:
            result.failed.append(f"{outcome.job.label} timed out (see {outcome.job.log})")
        elif outcome.returncode not in (0, 130):
            result.failed.append(f"{outcome.job.label} (see {outcome.job.log})")

    if jobs:
        if ray_address is not None:
            run_ray(jobs, ray_address, progress, run_timeout_s)
        else:
            run_local(jobs, workers, progress, run_timeout_s)
    result.outputs = write_report(folder, cells, command)
    return result


def _record(cell: Cell) -> RunRecord | None:
    """A cell's record, or None if it has not finished or a file of it is damaged."""
    try:
        return read_record(cell)
    except DamagedFile:
        return None


def write_report(out: Path, cells: Sequence[Cell], command: str) -> list[Path]:
    """Write summary.md, summary.csv, runs.csv and the plots of a grid's finished runs.

    :return: the files written
    """
    from qrl.compare import plots

    started = [c for c in cells if holds_run(c.path)]
    records = [r for r in map(_record, started) if r is not None]
    missing = [c.label for c in cells if not any(r.path == c.path for r in records)]
    envs = list(dict.fromkeys(c.config.env for c in cells))
    agents = list(dict.fromkeys(c.config.agent for c in cells))
    plot_dir = out / "plots"
    written: list[Path] = []
    sections = [f"# Comparison\n\n{header(command)}\n"]
    if _own_hyperparameters(cells):
        sections.append(
            "Agents of an env train with **their own presets' hyperparameters** "
            "(--own-hyperparameters): the comparison is of whole presets, not of policies alone.\n"
        )
    if missing:
        sections.append(
            f"**{len(missing)} of {len(cells)} runs have not finished** and are left out: "
            + ", ".join(missing[:20])
            + (" ..." if len(missing) > 20 else "")
            + ". Run the same command again to finish them.\n"
        )
    summary_rows = []
    run_rows = []
    improvement_rows: list[dict[str, Any]] = []
    for env in envs:
        by_agent: dict[str, list[RunRecord]] = {}
        for agent in agents:
            chosen = [r for r in records if r.env == env and r.agent == agent]
            if chosen:
                by_agent[agent] = sorted(chosen, key=lambda r: r.seed)
        if not by_agent:
            continue
        summaries = [summarize(env, a, rs) for a, rs in by_agent.items()]
        summary_rows += [summary_row(s) for s in summaries]
        run_rows += [run_row(r) for rs in by_agent.values() for r in rs]
        threshold = summaries[0].threshold
        finals = improvements(
            env, "final_return", {a: [r.final for r in rs] for a, rs in by_agent.items()}
        )
        areas = improvements(env, "auc", {a: [r.auc for r in rs] for a, rs in by_agent.items()})
        improvement_rows += finals + areas
        name = env.replace("/", "_")
        cautions = small_sample_warnings(env, by_agent)
        for caution in cautions:
            _log(f"warning: {caution}")
        written += plots.learning_curves(env, by_agent, threshold, plot_dir)
        written += plots.final_distributions(env, by_agent, threshold, plot_dir)
        written += plots.return_vs_parameters(env, summaries, plot_dir)
        warned = "".join(f"**Warning**: {c}\n\n" for c in cautions)
        sections.append(
            f"## {env}\n\n{warned}{agent_table(summaries)}\n\n"
            f"Probability of improvement, final return:\n\n"
            f"{improvement_table(list(by_agent), finals)}\n\n"
            f"Probability of improvement, mean return over training (faster learning):\n\n"
            f"{improvement_table(list(by_agent), areas)}\n\n"
            f"![learning curves](plots/{name}-curves.png)\n"
            f"![final returns](plots/{name}-final.png)\n"
            f"![return against parameters](plots/{name}-parameters.png)\n\n"
            f"<details><summary>Every run</summary>\n\n"
            f"{runs_table([r for rs in by_agent.values() for r in rs])}\n\n</details>\n"
        )
    sections.append(_NOTES)
    (out / "summary.md").write_text("\n".join(sections))
    write_csv(out / "summary.csv", SUMMARY_FIELDS, summary_rows)
    write_csv(out / "runs.csv", RUN_FIELDS, run_rows)
    write_csv(out / "improvement.csv", IMPROVEMENT_FIELDS, improvement_rows)
    tables = ("summary.md", "summary.csv", "runs.csv", "improvement.csv")
    return [*(out / name for name in tables), *written]


MIN_SEEDS = 5  # below this, bootstrap intervals over seeds are too wide to be evidence


def small_sample_warnings(env: str, by_agent: dict[str, list[RunRecord]]) -> list[str]:
    """What the numbers of a grid's env cannot support: too few seeds for intervals, or no
    learning-curve point inside the runs (no steps to threshold, no mean over training).

    :param env: the env
    :param by_agent: its finished runs by agent
    :return: one sentence per problem
    """
    out = []
    few = {a: len(rs) for a, rs in by_agent.items() if len(rs) < MIN_SEEDS}
    if few:
        counts = ", ".join(f"{a} {n}" for a, n in few.items())
        out.append(
            f"{env}: fewer than {MIN_SEEDS} seeds ({counts}): intervals and probabilities of "
            "improvement from so few seeds are not evidence; run more seeds (--seeds N)"
        )
    flat = [a for a, rs in by_agent.items() if all(len(r.curve_steps) < 2 for r in rs)]
    if flat:
        out.append(
            f"{env}: no learning-curve point inside the runs of {', '.join(flat)} (eval_freq "
            "larger than the budget, or 0): steps to threshold and the mean return over "
            "training are not measured; lower eval_freq (--set eval_freq=N)"
        )
    return out


_NOTES = """## How to read this

- **Final return**: the mean return of each run's final evaluation (the env preset's
  `eval_episodes` deterministic episodes, on environments seeded apart from training); the
  IQM (interquartile mean) is the mean of the middle half of the seeds.
- **95% CI**: percentile bootstrap over seeds (5,000 resamples), within each agent and env.
- **Steps to threshold**: environment steps at the first point of the learning curve whose
  mean return reaches the env's "solved" threshold ("never" if none did; the median is
  "never" when fewer than half the seeds got there). A curve point is the mean of
  `eval_freq_episodes` deterministic episodes, fewer than the final evaluation's.
- **Mean return over training**: the area under the learning curve divided by its span of
  steps.
- **P(row > column)**: the probability that a run of the row's agent scores higher than a
  run of the column's (ties count half), with its bootstrap CI; 0.5 means no difference,
  and a CI that contains 0.5 does not separate the two.
- Parameters are trainable ones; the quantum count is the circuit's share. Wall time
  includes the evaluations during training; steps/s excludes them.
"""


def _own_hyperparameters(cells: Sequence[Cell]) -> bool:
    """Whether agents of one env train with different hyperparameters."""
    seen: dict[str, dict[str, Any]] = {}
    for cell in cells:
        settings = training_settings(cell.config)
        if seen.setdefault(cell.config.env, settings) != settings:
            return True
    return False
