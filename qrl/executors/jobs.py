"""Submissions to a backend: wait with a time limit, retry with exponential backoff."""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Callable
from typing import Any

from qrl.errors import QrlError


class SubmissionError(QrlError):
    """A submission that still failed after every retry."""


def wait(job: Any, timeout_s: float | None, poll_s: float = 0.05) -> Any:
    """The result of a primitive job, waiting at most ``timeout_s`` seconds.

    :raises TimeoutError: when the job is not done in time (it is cancelled)
    """
    if timeout_s is None:
        return job.result()
    deadline = time.monotonic() + timeout_s
    while not job.done():
        if time.monotonic() > deadline:
            with contextlib.suppress(Exception):  # one that cannot be cancelled runs on
                job.cancel()
            raise TimeoutError(f"no result within {timeout_s:g} s")
        time.sleep(poll_s)
    return job.result()


def submit_with_retries(
    submit: Callable[[], Any],
    retries: int = 3,
    backoff_s: float = 2.0,
    timeout_s: float | None = None,
    what: str = "submission",
    sleep: Callable[[float], None] = time.sleep,
) -> tuple[Any, int]:
    """Submit a job and wait for its result, retrying failures and timeouts.

    :param submit: starts the job and returns it (``.result()``, ``.done()``, ``.cancel()``)
    :param retries: further attempts after the first failure
    :param backoff_s: wait before the first retry; doubled before each next one
    :param timeout_s: limit on each attempt's wait (None: wait as long as it takes)
    :param what: what is submitted, for messages
    :param sleep: the wait function (tests replace it)
    :return: the result and the number of retries it took
    :raises SubmissionError: after the last attempt failed, with its error
    :raises QrlError: for a negative number of retries (nothing is submitted)
    """
    if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
        raise QrlError(f"bad retries: {retries!r}; allowed: a whole number >= 0")
    last: BaseException | None = None
    for attempt in range(retries + 1):
        try:
            return wait(submit(), timeout_s), attempt
        # Errors of the submission itself (a bad circuit or option) would fail the same way
        # again; everything else (network, queue, runtime, time limit) is retried.
        except (QrlError, TypeError, ValueError, AttributeError, LookupError, NotImplementedError):
            raise
        except Exception as exc:  # backends raise many kinds: network, queue, runtime
            last = exc
            if attempt < retries:
                delay = backoff_s * 2**attempt
                print(
                    f"qrl: {what} failed ({type(exc).__name__}: {exc}); "
                    f"retry {attempt + 1} of {retries} in {delay:g} s",
                    file=sys.stderr,
                )
                sleep(delay)
    raise SubmissionError(
        f"{what} failed after {retries + 1} attempts; last error: {type(last).__name__}: {last}"
    )
