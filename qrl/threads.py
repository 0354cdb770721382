"""CPU threads of training and evaluation: PyTorch's, and those of the BLAS under NumPy.

Policy networks and circuits are small: a second intra-op thread gains nothing, and on a
2-core machine extra threads competing for the cores slowed training severalfold
(docs/performance.md#threads). Training and evaluation run on one thread of each unless
``QRL_TORCH_THREADS`` says otherwise.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

import torch
from threadpoolctl import threadpool_limits

from qrl.errors import QrlError

THREADS_VARIABLE = "QRL_TORCH_THREADS"


def thread_count() -> int:
    """The CPU threads to run on: ``QRL_TORCH_THREADS``, or one."""
    value = os.environ.get(THREADS_VARIABLE, "1")
    try:
        return max(int(value), 1)
    except ValueError:
        raise QrlError(
            f"{THREADS_VARIABLE} must be a whole number of threads, got {value!r}"
        ) from None


@contextlib.contextmanager
def limited_threads(count: int) -> Iterator[None]:
    """Run PyTorch, and the BLAS library under NumPy, on ``count`` CPU threads inside the
    block; restore both settings after.

    The simulator's NumPy kernels call BLAS for small products; OpenBLAS's own threads (one
    per core by default) spun against the other processes of a busy machine.
    """
    before = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        with threadpool_limits(limits=count, user_api="blas"):
            yield
    finally:
        torch.set_num_threads(before)
