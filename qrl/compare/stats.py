"""Statistics of RL runs over seeds, after Agarwal et al. (2021), "Deep RL at the edge of the
statistical precipice" (the measures of rliable), computed with scipy.

Every confidence interval is a 95% percentile bootstrap over seeds: runs are resampled with
replacement within each agent and task (a stratified bootstrap when there are several
tasks, which are never pooled here).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats

CONFIDENCE = 0.95
RESAMPLES = 5000


@dataclass(frozen=True)
class Estimate:
    """A statistic with its 95% confidence interval."""

    value: float
    low: float
    high: float

    def format(self, digits: int = 1) -> str:
        """``value [low, high]``."""
        if math.isnan(self.value):
            return "-"
        return f"{_num(self.value, digits)} [{_num(self.low, digits)}, {_num(self.high, digits)}]"


def _num(x: float, digits: int) -> str:
    return "never" if math.isinf(x) else f"{x:.{digits}f}"


def iqm(values: np.ndarray, axis: int = -1) -> np.ndarray:
    """Interquartile mean: the mean of the middle 50% of the values (25% trimmed mean)."""
    return np.asarray(stats.trim_mean(values, 0.25, axis=axis))


def median(values: np.ndarray, axis: int = -1) -> np.ndarray:
    """The median (infinite values, "never reached", allowed)."""
    return np.asarray(np.median(values, axis=axis))


def bootstrap(
    values: Sequence[float], statistic: Callable[..., np.ndarray], seed: int = 0
) -> Estimate:
    """A statistic over seeds with its 95% percentile-bootstrap interval.

    :param values: one value per seed
    :param statistic: vectorized statistic taking an ``axis`` keyword (:func:`iqm`, ...)
    :param seed: seed of the resampling, for reproducible intervals
    """
    x = np.asarray(values, dtype=float)
    if x.size == 0:
        return Estimate(math.nan, math.nan, math.nan)
    value = float(statistic(x, axis=-1))
    if x.size == 1 or np.all(x == x[0]):
        return Estimate(value, value, value)
    if np.isinf(x).any():
        return _bootstrap_manual(x, statistic, seed, value)
    result = stats.bootstrap(
        (x,),
        statistic,
        confidence_level=CONFIDENCE,
        n_resamples=RESAMPLES,
        method="percentile",
        vectorized=True,
        random_state=np.random.default_rng(seed),
    )
    interval = result.confidence_interval
    return Estimate(value, float(interval.low), float(interval.high))


def _bootstrap_manual(
    x: np.ndarray, statistic: Callable[..., np.ndarray], seed: int, value: float
) -> Estimate:
    # scipy refuses infinite data; "never reached" is infinite and orders correctly.
    rng = np.random.default_rng(seed)
    samples = x[rng.integers(0, x.size, size=(RESAMPLES, x.size))]
    values = np.sort(statistic(samples, axis=-1))
    alpha = (1 - CONFIDENCE) / 2
    low = values[math.floor(alpha * (RESAMPLES - 1))]
    high = values[math.ceil((1 - alpha) * (RESAMPLES - 1))]
    return Estimate(value, float(low), float(high))


def probability_of_improvement(x: Sequence[float], y: Sequence[float], seed: int = 0) -> Estimate:
    """P(X > Y): the chance that a run of agent X ends above a run of agent Y (ties count
    half), the Mann-Whitney U statistic over the number of pairs, with a bootstrap interval
    that resamples both agents' seeds independently.
    """
    a = np.asarray(x, dtype=float)
    b = np.asarray(y, dtype=float)
    if a.size == 0 or b.size == 0:
        return Estimate(math.nan, math.nan, math.nan)

    def statistic(p: np.ndarray, q: np.ndarray, axis: int = -1) -> np.ndarray:
        p = np.moveaxis(p, axis, -1)[..., :, None]
        q = np.moveaxis(q, axis, -1)[..., None, :]
        return np.asarray(((p > q) + 0.5 * (p == q)).mean(axis=(-2, -1)))

    value = float(statistic(a, b))
    if (a.size == 1 and b.size == 1) or np.all(np.concatenate([a, b]) == a[0]):
        return Estimate(value, value, value)
    result = stats.bootstrap(
        (a, b),
        statistic,
        confidence_level=CONFIDENCE,
        n_resamples=RESAMPLES,
        method="percentile",
        vectorized=True,
        paired=False,
        random_state=np.random.default_rng(seed),
    )
    interval = result.confidence_interval
    return Estimate(value, float(interval.low), float(interval.high))


def steps_to_threshold(
    timesteps: Sequence[int], returns: Sequence[float], threshold: float
) -> float:
    """Environment steps at the first evaluation whose mean return reaches ``threshold``
    (infinite if none does)."""
    for t, r in zip(timesteps, returns, strict=True):
        if r >= threshold:
            return float(t)
    return math.inf


def area_under_curve(timesteps: Sequence[int], returns: Sequence[float]) -> float:
    """The learning curve's area over its span of steps: the mean return over training,
    by the trapezoidal rule (comparable between runs evaluated at the same steps)."""
    t = np.asarray(timesteps, dtype=float)
    r = np.asarray(returns, dtype=float)
    if t.size == 0:
        return math.nan
    if t.size == 1 or t[-1] == t[0]:
        return float(r.mean())
    return float(np.trapezoid(r, t) / (t[-1] - t[0]))


def curve_band(
    curves: Sequence[Sequence[float]], seed: int = 0
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """IQM over seeds at every point of aligned curves, with its bootstrap band.

    :param curves: one curve per seed, all of the same length
    :return: IQM, lower and upper bound, one value per point
    """
    matrix = np.asarray(curves, dtype=float)  # (seeds, points)
    center = iqm(matrix, axis=0)
    if matrix.shape[0] < 2:
        return center, center.copy(), center.copy()
    rng = np.random.default_rng(seed)
    n = matrix.shape[0]
    resamples = min(RESAMPLES, 2000)
    index = rng.integers(0, n, size=(resamples, n))
    samples = iqm(matrix[index], axis=1)  # (resamples, points)
    alpha = (1 - CONFIDENCE) / 2
    low = np.quantile(samples, alpha, axis=0)
    high = np.quantile(samples, 1 - alpha, axis=0)
    return center, low, high
