"""Where a study lives and how it searches: storage, sampler, pruner, workers.

Storage is a SQLite file in the study folder by default; ``--storage URL`` takes any
database Optuna takes (``postgresql://user@host/db``, ``mysql://...``) or an Optuna journal
file (``journal:PATH``), so that workers on many machines share one study. Databases get a
heartbeat: a trial whose process died is marked failed when the study next runs, not left
running forever.
"""

from __future__ import annotations

import multiprocessing
import os
import re
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import optuna
from optuna.storages import JournalStorage, RDBStorage
from optuna.storages.journal import JournalFileBackend

from qrl.errors import QrlError, choices_hint, install_hint
from qrl.processes import PARENT_VARIABLE

HEARTBEAT_S = 30  # a running trial says it is alive this often
GRACE_S = 120  # and is marked failed after this long without a word

SAMPLERS = ("tpe", "random", "cmaes", "qmc")
PRUNERS = ("median", "halving", "hyperband", "none")


def storage_url(storage: str | None, out: Path) -> str:
    """The storage's URL: ``storage``, or the SQLite file ``out/study.db``."""
    return storage or f"sqlite:///{(out / 'study.db').resolve()}"


def make_storage(url: str) -> optuna.storages.BaseStorage:
    """Optuna's storage for a URL (see the module docstring).

    :raises QrlError: for a URL Optuna cannot use, naming the URL without its password
    """
    if url.startswith("journal:"):
        path = Path(url.removeprefix("journal:"))
        path.parent.mkdir(parents=True, exist_ok=True)
        return JournalStorage(JournalFileBackend(str(path)))
    engine: dict[str, Any] = {}
    if url.startswith("sqlite:"):
        engine = {"connect_args": {"timeout": 60}}  # several local workers share the file
    for attempt in range(_ATTEMPTS):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                return RDBStorage(
                    url,
                    engine_kwargs=engine,
                    heartbeat_interval=HEARTBEAT_S,
                    grace_period=GRACE_S,
                )
        except ModuleNotFoundError as exc:
            raise QrlError(
                f"--storage {redacted(url)} needs the database driver {exc.name!r}: "
                f"{install_hint('tune')}"
            ) from None
        except Exception as exc:  # SQLAlchemy's errors: unreachable server, bad URL, ...
            if attempt + 1 < _ATTEMPTS and _racing(exc):
                time.sleep(1.0 + attempt)  # another worker is creating the tables
                continue
            first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise QrlError(f"cannot open the study storage {redacted(url)}: {first}") from None
    raise AssertionError("unreachable")  # pragma: no cover


_ATTEMPTS = 5


def _racing(exc: Exception) -> bool:
    """Whether opening a storage failed because another process created its tables at the
    same moment (Optuna's table creation is not atomic across processes)."""
    text = str(exc).lower()
    return any(word in text for word in ("duplicate", "already exists", "unique"))


def redacted(url: str) -> str:
    """A storage URL with its password hidden (``postgresql://user:***@host/db``, and a
    ``password=`` query parameter)."""
    url = re.sub(r"(?i)(password=)[^&;]*", r"\1***", url)
    scheme, sep, rest = url.partition("://")
    if not sep or "@" not in rest:
        return url
    credentials, _, host = rest.rpartition("@")
    user = credentials.partition(":")[0]
    return f"{scheme}://{user}{':***' if ':' in credentials else ''}@{host}"


def make_sampler(name: str, seed: int | None) -> optuna.samplers.BaseSampler:
    """A sampler by name: ``tpe`` (default), ``random``, ``cmaes``, ``qmc``.

    :raises QrlError: for an unknown name or a missing package
    """
    if name == "tpe":
        return optuna.samplers.TPESampler(seed=seed)
    if name == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if name == "qmc":
        return optuna.samplers.QMCSampler(seed=seed, scramble=True, warn_independent_sampling=False)
    if name == "cmaes":
        try:
            import cmaes  # noqa: F401
        except ImportError:
            raise QrlError(
                f"--sampler cmaes needs the cmaes package: {install_hint('tune')}"
            ) from None
        return optuna.samplers.CmaEsSampler(seed=seed, warn_independent_sampling=False)
    raise QrlError(f"unknown sampler {name!r}; {choices_hint(name, SAMPLERS)}")


def worker_seed(name: str, seed: int | None, worker: int, existing: int) -> int | None:
    """The sampler seed of one worker joining a study that holds ``existing`` trials.

    A seeded sampler draws the same first points whenever it starts, so a continued study
    would repeat the settings of its first trials (TPE and CMA-ES begin with random
    ones): the seed mixes in the worker and the number of trials so far. The same command
    on the same study still draws the same points. QMC keeps its seed: its sequence
    continues from the trials so far, and one scramble keeps it low-discrepancy.
    """
    if seed is None or name == "qmc":
        return seed
    if existing == 0:
        return seed + worker
    return int(np.random.SeedSequence([seed, worker, existing]).generate_state(1)[0])


def make_pruner(name: str, timesteps: int, points: int = 10) -> optuna.pruners.BasePruner:
    """A pruner by name: ``median`` (a trial below the median of earlier trials at the same
    learning-curve point stops, after two trials and never in the first third of the
    budget, as rl-baselines3-zoo does), ``halving`` (successive halving from the first
    point), ``hyperband``, ``none``. Points are reported from the first trained one: the
    untrained policy says nothing about a setting.

    :param name: the pruner
    :param timesteps: the budget of every run
    :param points: learning-curve points per run
    :raises QrlError: for an unknown name
    """
    first = max(timesteps // max(points, 1), 1)
    if name == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=timesteps // 3)
    if name == "halving":
        return optuna.pruners.SuccessiveHalvingPruner(min_resource=first)
    if name == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=first, max_resource=timesteps)
    if name == "none":
        return optuna.pruners.NopPruner()
    raise QrlError(f"unknown pruner {name!r}; {choices_hint(name, PRUNERS)}")


def open_study(
    name: str, url: str, sampler: optuna.samplers.BaseSampler, pruner: optuna.pruners.BasePruner
) -> optuna.Study:
    """Create the study, or load it to continue (the same name in the same storage)."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna.create_study(
        study_name=name,
        storage=make_storage(url),
        sampler=sampler,
        pruner=pruner,
        direction="maximize",
        load_if_exists=True,
    )


def run_workers(workers: int, work: Callable[[int], None]) -> None:
    """Run ``work(i)`` for i = 0 .. workers-1: worker 0 here, the others in processes of
    their own (spawned: a clean interpreter each), all against the same storage.

    :raises QrlError: if a worker process fails
    """
    context = multiprocessing.get_context("spawn")
    processes = [context.Process(target=work, args=(i,)) for i in range(1, workers)]
    os.environ[PARENT_VARIABLE] = str(os.getpid())  # workers stop if this process dies
    try:
        for process in processes:
            process.start()
    finally:
        os.environ.pop(PARENT_VARIABLE, None)
    try:
        work(0)
    except BaseException:
        for process in processes:
            process.terminate()  # they stop their trials' runs (SIGTERM) and end
        raise
    finally:
        for process in processes:
            process.join()
    failed = [p.exitcode for p in processes if p.exitcode not in (0, None)]
    if failed:
        raise QrlError(f"{len(failed)} tuning worker(s) failed (exit status {failed[0]})")
