"""Running the jobs of a grid: a local process pool, or a Ray cluster.

Every job is one ``qrl`` command (``train``, ``train --resume`` or ``curve``) in its own
process with one thread, its output appended to ``train.log`` in its run folder. Stopping
the grid (Ctrl-C, SIGTERM) stops every job the way Ctrl-C stops ``qrl train``: each saves
what it trained, so the same command resumes the grid. On Linux, local jobs are also sent
SIGTERM by the kernel if the grid process dies without a word (SIGKILL, a crash): no job
trains on unattended.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from qrl.errors import QrlError, install_hint
from qrl.processes import PARENT_VARIABLE

# One thread per job: parallel runs on a small machine are slower with more.
THREAD_LIMITS = {
    "OMP_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
    "OPENBLAS_NUM_THREADS": "1",
}
STOP_GRACE_S = 120.0  # how long a stopped job may take to save its model


@dataclass
class Job:
    """One ``qrl`` command of a grid.

    :param label: the cell it serves, for messages
    :param args: arguments of ``qrl`` (``["train", ...]``)
    :param log: file that receives the command's output
    """

    label: str
    args: list[str]
    log: Path


TIMED_OUT = 124  # the exit status of a job stopped at its time limit (as timeout(1) uses)


@dataclass
class Outcome:
    """How a job ended: its exit status (0 done, 130 stopped, 124 stopped at its time limit,
    else failed)."""

    job: Job
    returncode: int


def _command(args: Sequence[str]) -> list[str]:
    return [sys.executable, "-m", "qrl.cli", *args]


def _environment() -> dict[str, str]:
    return os.environ | THREAD_LIMITS


def run_process(
    args: Sequence[str],
    log: Path,
    stop: threading.Event | None = None,
    stop_with_parent: bool = False,
    timeout_s: float | None = None,
) -> int:
    """Run one ``qrl`` command to its end, or stop it (SIGTERM, it saves) when asked.

    :param args: arguments of ``qrl``
    :param log: file to append its output to
    :param stop: when set, the command is stopped
    :param stop_with_parent: on Linux, have the kernel stop the command (SIGTERM) if this
        process dies first (local grids; Ray manages its own workers)
    :param timeout_s: stop the command (SIGTERM: it saves) after this many seconds, and
        return :data:`TIMED_OUT`; a stuck run (an episode that never ends) does not hold
        up the grid
    :return: the command's exit status
    """
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("a") as out:
        out.write(f"$ qrl {' '.join(args)}\n")
        out.flush()
        # A session of its own: a Ctrl-C in the terminal reaches the grid only, which then
        # stops each job once (a second signal while a job saves could corrupt its model).
        process = subprocess.Popen(
            _command(args),
            stdout=out,
            stderr=subprocess.STDOUT,
            env=_environment() | ({PARENT_VARIABLE: str(os.getpid())} if stop_with_parent else {}),
            start_new_session=True,
        )
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        try:
            while True:
                try:
                    return process.wait(timeout=0.5)
                except subprocess.TimeoutExpired:
                    if stop is not None and stop.is_set():
                        return _stop(process)
                    if deadline is not None and time.monotonic() > deadline:
                        _stop(process)
                        out.write(f"qrl compare: stopped after its time limit of {timeout_s} s\n")
                        return TIMED_OUT
        except BaseException:
            _stop(process)
            raise


def _stop(process: subprocess.Popen[Any]) -> int:
    process.send_signal(signal.SIGTERM)
    try:
        return process.wait(timeout=STOP_GRACE_S)
    except subprocess.TimeoutExpired:
        process.kill()
        return process.wait()


def run_local(
    jobs: Sequence[Job],
    workers: int,
    report: Callable[[Outcome], None],
    timeout_s: float | None = None,
) -> list[Outcome]:
    """Run jobs on a pool of ``workers`` processes.

    :param jobs: the jobs, started in order
    :param workers: processes at once
    :param report: called as each job ends
    :param timeout_s: the time limit of each job (see :func:`run_process`)
    :return: the outcomes of the jobs that ran
    :raises KeyboardInterrupt: after stopping the running jobs, if interrupted
    """
    if workers < 1:
        raise QrlError(f"--workers must be at least 1, got {workers}")
    stop = threading.Event()
    outcomes: list[Outcome] = []
    with ThreadPoolExecutor(max_workers=workers) as pool:
        futures: dict[Future[int], Job] = {}
        for job in jobs:
            futures[pool.submit(_guarded, job, stop, timeout_s)] = job
        pending = set(futures)
        try:
            while pending:
                done, pending = wait(pending, timeout=1.0, return_when=FIRST_COMPLETED)
                for future in done:
                    outcome = Outcome(futures[future], future.result())
                    outcomes.append(outcome)
                    report(outcome)
        except BaseException:
            stop.set()  # queued jobs return at once, running ones are stopped and save
            for future in pending:
                future.cancel()
            wait(pending)
            raise
    return outcomes


def _guarded(job: Job, stop: threading.Event, timeout_s: float | None) -> int:
    if stop.is_set():
        return 130
    return run_process(job.args, job.log, stop, stop_with_parent=True, timeout_s=timeout_s)


def check_ray_address(address: str, timeout: float = 5.0) -> None:
    """Fail fast, with a clear message, if Ray is missing or the address does not answer.

    :param address: "auto", "host:port" of a cluster's head, or "ray://host:port"
    """
    try:
        import ray  # noqa: F401
    except ImportError:
        raise QrlError(
            f"--ray-address needs Ray, an optional extra: {install_hint('ray')}"
        ) from None
    if address == "auto":
        return
    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not host or not port.isdigit():
        raise QrlError(
            f"--ray-address takes host:port (e.g. 127.0.0.1:6379) or auto, not {address!r}"
        )
    try:
        with socket.create_connection((host, int(port)), timeout=timeout):
            pass
    except OSError as exc:
        raise QrlError(
            f"cannot reach a Ray cluster at {address} ({exc.strerror or exc}); start one with "
            "`ray start --head` and pass the address it prints, or drop --ray-address to "
            "run on local processes"
        ) from None


def _ray_job(args: list[str], log: str, timeout_s: float | None) -> int:
    """A job on a Ray worker: the same ``qrl`` process as locally (stopped on cancel)."""
    return run_process(args, Path(log), timeout_s=timeout_s)


def run_ray(
    jobs: Sequence[Job],
    address: str,
    report: Callable[[Outcome], None],
    timeout_s: float | None = None,
) -> list[Outcome]:
    """Run jobs as Ray tasks of one CPU each on the cluster at ``address``.

    Run folders are written by the workers: on a cluster of several machines, the output
    folder must be on a file system they all see.

    :raises KeyboardInterrupt: after cancelling the tasks (each saves), if interrupted
    """
    import ray

    check_ray_address(address)
    try:
        ray.init(address=address, log_to_driver=False, logging_level=logging.ERROR)
    except Exception as exc:  # Ray raises several types for an unusable cluster
        raise QrlError(f"cannot connect to the Ray cluster at {address}: {exc}") from None
    try:
        task = ray.remote(num_cpus=1, max_retries=0)(_ray_job)
        refs = {task.remote(job.args, str(job.log), timeout_s): job for job in jobs}
        pending = list(refs)
        outcomes: list[Outcome] = []
        try:
            while pending:
                done, pending = ray.wait(pending, num_returns=1, timeout=1.0)
                for ref in done:
                    try:
                        code = int(ray.get(ref))
                    except ray.exceptions.RayError:
                        code = 1
                    outcome = Outcome(refs[ref], code)
                    outcomes.append(outcome)
                    report(outcome)
        except BaseException:
            for ref in pending:
                ray.cancel(ref)  # a KeyboardInterrupt in the task: its job stops and saves
            ray.wait(pending, num_returns=len(pending), timeout=STOP_GRACE_S)
            raise
        return outcomes
    finally:
        ray.shutdown()
