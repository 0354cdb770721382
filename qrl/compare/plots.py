"""Plots of a grid, one set per env, each as PNG and SVG: learning curves (IQM over seeds with
a 95% bootstrap band), final-return distributions, and final return against parameter count.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure

from qrl.compare.report import AgentSummary, RunRecord
from qrl.compare.stats import curve_band

FORMATS = ("png", "svg")


def _save(fig: Figure, folder: Path, name: str) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for fmt in FORMATS:
        path = folder / f"{name}.{fmt}"
        fig.savefig(path, dpi=120, bbox_inches="tight")
        paths.append(path)
    plt.close(fig)
    return paths


def _aligned(records: Sequence[RunRecord]) -> tuple[list[int], list[list[float]]]:
    """The curve points every run has, and each run's returns at them."""
    if not records:
        return [], []
    common = set(records[0].curve_steps)
    for r in records[1:]:
        common &= set(r.curve_steps)
    steps = sorted(common)
    curves = []
    for r in records:
        lookup = dict(zip(r.curve_steps, r.curve_returns, strict=True))
        curves.append([lookup[t] for t in steps])
    return steps, curves


def learning_curves(
    env: str, by_agent: dict[str, list[RunRecord]], threshold: float | None, folder: Path
) -> list[Path]:
    """IQM of the evaluation return over seeds against environment steps, with CI bands."""
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for agent, records in by_agent.items():
        steps, curves = _aligned(records)
        if not steps:
            continue
        center, low, high = curve_band(curves)
        (line,) = ax.plot(steps, center, label=f"{agent} ({len(records)} seeds)")
        ax.fill_between(steps, low, high, color=line.get_color(), alpha=0.2, linewidth=0)
    if threshold is not None:
        ax.axhline(float(threshold), color="grey", linestyle="--", linewidth=1, label="solved")
    ax.set_xlabel("environment steps")
    ax.set_ylabel("evaluation return (IQM over seeds, 95% CI)")
    ax.set_title(f"{env}: learning curves")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return _save(fig, folder, f"{_name(env)}-curves")


def final_distributions(
    env: str, by_agent: dict[str, list[RunRecord]], threshold: float | None, folder: Path
) -> list[Path]:
    """Final returns of every seed, per agent: a box plot with the seeds as points."""
    agents = list(by_agent)
    fig, ax = plt.subplots(figsize=(max(4.0, 1.3 * len(agents) + 2), 4.5))
    data = [[r.final for r in by_agent[a]] for a in agents]
    ax.boxplot(data, showfliers=False, whis=(0, 100))
    ax.set_xticks(range(1, len(agents) + 1), agents)
    rng = np.random.default_rng(0)
    for i, values in enumerate(data, start=1):
        x = i + rng.uniform(-0.15, 0.15, size=len(values))
        ax.scatter(x, values, s=14, alpha=0.7, zorder=3)
    if threshold is not None:
        ax.axhline(float(threshold), color="grey", linestyle="--", linewidth=1)
    ax.set_ylabel("final return (100 episodes), one point per seed")
    ax.set_title(f"{env}: final returns")
    ax.grid(axis="y", alpha=0.3)
    return _save(fig, folder, f"{_name(env)}-final")


def return_vs_parameters(env: str, summaries: Sequence[AgentSummary], folder: Path) -> list[Path]:
    """Final-return IQM (95% CI) against trainable parameters, log scale."""
    fig, ax = plt.subplots(figsize=(6, 4.5))
    seen: dict[int, int] = {}
    for s in summaries:
        count = s.parameters.get("total", 0)
        # Agents with equal counts side by side rather than on top of each other.
        total = count * (1 + 0.06 * seen.get(count, 0))
        seen[count] = seen.get(count, 0) + 1
        est = s.final_iqm
        ax.errorbar(
            [total],
            [est.value],
            yerr=[[est.value - est.low], [est.high - est.value]],
            fmt="o",
            capsize=4,
            label=s.agent,
        )
        ax.annotate(s.agent, (total, est.value), textcoords="offset points", xytext=(6, 4))
    ax.set_xscale("log")
    ax.set_xlabel("trainable parameters")
    ax.set_ylabel("final return (IQM over seeds, 95% CI)")
    ax.set_title(f"{env}: return against parameters")
    ax.grid(alpha=0.3)
    return _save(fig, folder, f"{_name(env)}-parameters")


def _name(env: str) -> str:
    return env.replace("/", "_")
