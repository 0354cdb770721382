"""From the run folders of a grid to its tables: summary.md, summary.csv and runs.csv."""

from __future__ import annotations

import csv
import math
import os
import platform
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np

from qrl.compare.grid import Cell
from qrl.compare.stats import (
    Estimate,
    area_under_curve,
    bootstrap,
    iqm,
    median,
    probability_of_improvement,
    steps_to_threshold,
)
from qrl.runs import open_run, versions


@dataclass
class RunRecord:
    """What the statistics need from one finished run folder."""

    env: str
    agent: str
    seed: int
    path: Path
    final: float  # mean return of the final evaluation
    solved: bool | None
    threshold: float | None
    parameters: dict[str, int]
    timesteps: int
    wall_time_s: float
    steps_per_s: float | None
    curve_steps: list[int]
    curve_returns: list[float]  # mean return of each evaluation of the curve

    @property
    def steps_to_threshold(self) -> float:
        """Steps to the first curve point at or above the threshold (inf: never, nan: no
        threshold)."""
        if self.threshold is None or not self.curve_steps:
            return math.nan
        return steps_to_threshold(self.curve_steps, self.curve_returns, float(self.threshold))

    @property
    def auc(self) -> float:
        """Mean return over the learning curve."""
        return area_under_curve(self.curve_steps, self.curve_returns)


def read_record(cell: Cell) -> RunRecord | None:
    """The record of a cell's run, or None if it has not finished."""
    run = open_run(cell.path)
    status = run.status()
    result = run.evaluation()
    if status.status != "finished" or result is None:
        return None
    curve = run.curve()
    return RunRecord(
        env=run.config.env,
        agent=run.config.agent,
        seed=run.config.seed,
        path=run.path,
        final=float(result["mean_return"]),
        solved=result.get("solved"),
        threshold=run.config.solved,
        parameters=dict(status.parameters),
        timesteps=status.num_timesteps,
        wall_time_s=status.wall_time_s,
        steps_per_s=status.steps_per_s,
        curve_steps=[] if curve is None else list(curve.timesteps),
        curve_returns=[] if curve is None else [float(np.mean(r)) for r in curve.returns],
    )


@dataclass
class AgentSummary:
    """The statistics of one agent on one env."""

    env: str
    agent: str
    runs: int
    parameters: dict[str, int]
    final_iqm: Estimate
    final_mean: float
    final_std: float
    solved: int
    threshold: float | None
    steps_to_threshold: Estimate
    reached: int
    auc_iqm: Estimate
    wall_time_s: float
    steps_per_s: float
    timesteps: int


def summarize(env: str, agent: str, records: Sequence[RunRecord]) -> AgentSummary:
    """Statistics over the seeds of one agent on one env."""
    finals = [r.final for r in records]
    to_threshold = [r.steps_to_threshold for r in records]
    speeds = [r.steps_per_s for r in records if r.steps_per_s]
    threshold = records[0].threshold if records else None
    reachable = [s for s in to_threshold if not math.isnan(s)]
    return AgentSummary(
        env=env,
        agent=agent,
        runs=len(records),
        parameters=records[0].parameters if records else {},
        final_iqm=bootstrap(finals, iqm),
        final_mean=float(np.mean(finals)) if finals else math.nan,
        final_std=float(np.std(finals, ddof=1)) if len(finals) > 1 else 0.0,
        solved=sum(bool(r.solved) for r in records),
        threshold=threshold,
        steps_to_threshold=bootstrap(reachable, median),
        reached=sum(not math.isinf(s) for s in reachable),
        auc_iqm=bootstrap([r.auc for r in records if not math.isnan(r.auc)], iqm),
        wall_time_s=float(np.median([r.wall_time_s for r in records])) if records else math.nan,
        steps_per_s=float(np.median(speeds)) if speeds else math.nan,
        timesteps=int(np.median([r.timesteps for r in records])) if records else 0,
    )


SUMMARY_FIELDS = [
    "env",
    "agent",
    "runs",
    "parameters_total",
    "parameters_quantum",
    "parameters_classical",
    "final_iqm",
    "final_iqm_low",
    "final_iqm_high",
    "final_mean",
    "final_std",
    "solved_runs",
    "threshold",
    "steps_to_threshold_median",
    "steps_to_threshold_low",
    "steps_to_threshold_high",
    "runs_reaching_threshold",
    "auc_iqm",
    "auc_iqm_low",
    "auc_iqm_high",
    "wall_time_s_median",
    "steps_per_s_median",
    "timesteps",
]


def summary_row(s: AgentSummary) -> dict[str, Any]:
    """One row of summary.csv."""
    return {
        "env": s.env,
        "agent": s.agent,
        "runs": s.runs,
        "parameters_total": s.parameters.get("total"),
        "parameters_quantum": s.parameters.get("quantum"),
        "parameters_classical": s.parameters.get("classical"),
        "final_iqm": s.final_iqm.value,
        "final_iqm_low": s.final_iqm.low,
        "final_iqm_high": s.final_iqm.high,
        "final_mean": s.final_mean,
        "final_std": s.final_std,
        "solved_runs": s.solved,
        "threshold": s.threshold,
        "steps_to_threshold_median": s.steps_to_threshold.value,
        "steps_to_threshold_low": s.steps_to_threshold.low,
        "steps_to_threshold_high": s.steps_to_threshold.high,
        "runs_reaching_threshold": s.reached,
        "auc_iqm": s.auc_iqm.value,
        "auc_iqm_low": s.auc_iqm.low,
        "auc_iqm_high": s.auc_iqm.high,
        "wall_time_s_median": s.wall_time_s,
        "steps_per_s_median": s.steps_per_s,
        "timesteps": s.timesteps,
    }


RUN_FIELDS = [
    "env",
    "agent",
    "seed",
    "final_return",
    "solved",
    "steps_to_threshold",
    "auc",
    "parameters_total",
    "parameters_quantum",
    "timesteps",
    "wall_time_s",
    "steps_per_s",
    "path",
]


def run_row(r: RunRecord) -> dict[str, Any]:
    """One row of runs.csv."""
    return {
        "env": r.env,
        "agent": r.agent,
        "seed": r.seed,
        "final_return": r.final,
        "solved": r.solved,
        "steps_to_threshold": r.steps_to_threshold,
        "auc": r.auc,
        "parameters_total": r.parameters.get("total"),
        "parameters_quantum": r.parameters.get("quantum"),
        "timesteps": r.timesteps,
        "wall_time_s": r.wall_time_s,
        "steps_per_s": r.steps_per_s,
        "path": str(r.path),
    }


def write_csv(path: Path, fields: list[str], rows: Sequence[dict[str, Any]]) -> None:
    """Write rows as CSV (infinite steps as ``inf``, missing values empty)."""
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=fields)
        writer.writeheader()
        for row in rows:
            writer.writerow({k: "" if v is None else v for k, v in row.items()})


def _steps(x: float) -> str:
    if math.isnan(x):
        return "-"
    if math.isinf(x):
        return "never"
    return f"{x / 1000:.0f}k" if x >= 1000 else f"{x:.0f}"


def _params(p: dict[str, int]) -> str:
    return f"{p.get('total', 0):,} ({p.get('quantum', 0):,})"


def agent_table(summaries: Sequence[AgentSummary]) -> str:
    """Markdown table: one row per agent of an env."""
    threshold = summaries[0].threshold if summaries else None
    lines = [
        "| agent | seeds | parameters (quantum) | final return, IQM [95% CI] | mean +/- std "
        f"| solved (>= {threshold}) | steps to {threshold}, median [95% CI] | reached "
        "| mean return over training, IQM [95% CI] | wall time (s) | steps/s |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for s in summaries:
        ci = s.steps_to_threshold
        steps = f"{_steps(ci.value)} [{_steps(ci.low)}, {_steps(ci.high)}]"
        if math.isnan(ci.value):
            steps = "-"
        lines.append(
            f"| {s.agent} | {s.runs} | {_params(s.parameters)} | {s.final_iqm.format()} "
            f"| {s.final_mean:.1f} +/- {s.final_std:.1f} | {s.solved}/{s.runs} | {steps} "
            f"| {s.reached}/{s.runs} | {s.auc_iqm.format()} | {s.wall_time_s:.0f} "
            f"| {s.steps_per_s:.0f} |"
        )
    return "\n".join(lines)


IMPROVEMENT_FIELDS = ["env", "measure", "agent", "other", "probability", "low", "high"]


def improvements(env: str, measure: str, values: dict[str, list[float]]) -> list[dict[str, Any]]:
    """P(a run of ``agent`` scores higher than a run of ``other``) for every ordered pair.

    :param values: per agent, one value per seed
    :return: rows of improvement.csv
    """
    rows = []
    for a in values:
        for b in values:
            if a != b:
                est = probability_of_improvement(values[a], values[b])
                rows.append(
                    {
                        "env": env,
                        "measure": measure,
                        "agent": a,
                        "other": b,
                        "probability": est.value,
                        "low": est.low,
                        "high": est.high,
                    }
                )
    return rows


def improvement_table(agents: Sequence[str], rows: Sequence[dict[str, Any]]) -> str:
    """Markdown matrix of P(row agent > column agent), with CIs, from :func:`improvements`."""
    found = {(r["agent"], r["other"]): r for r in rows}
    lines = ["| P(row > column) | " + " | ".join(agents) + " |"]
    lines.append("|---|" + "---:|" * len(agents))
    for a in agents:
        cells = []
        for b in agents:
            r = found.get((a, b))
            cells.append(
                "-" if r is None else Estimate(r["probability"], r["low"], r["high"]).format(2)
            )
        lines.append(f"| {a} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def runs_table(records: Sequence[RunRecord]) -> str:
    """Markdown table of every run."""
    lines = [
        "| agent | seed | final return | solved | steps to threshold "
        "| mean return over training | wall time (s) | steps/s |",
        "|---|---:|---:|:---:|---:|---:|---:|---:|",
    ]
    for r in records:
        solved = {True: "yes", False: "no", None: "-"}[r.solved]
        speed = f"{r.steps_per_s:.0f}" if r.steps_per_s else "-"
        lines.append(
            f"| {r.agent} | {r.seed} | {r.final:.1f} | {solved} | {_steps(r.steps_to_threshold)} "
            f"| {r.auc:.1f} | {r.wall_time_s:.0f} | {speed} |"
        )
    return "\n".join(lines)


def header(command: str) -> str:
    """Where and how the numbers were made."""
    v = versions()
    names = ("torch", "stable-baselines3", "pennylane", "gymnasium")
    libs = ", ".join(f"{k} {v[k]}" for k in names)
    return (
        f"`{command}`\n\n"
        f"{datetime.now().isoformat(timespec='minutes')} on {platform.node()} "
        f"({platform.machine()}, {os.cpu_count()} CPUs), Python "
        f"{v['python']}, {libs}."
    )
