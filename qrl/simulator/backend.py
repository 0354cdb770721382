"""The few array operations the simulator kernels need, for NumPy and for PyTorch.

Policy circuits are small, so the kernels spend their time in per-call overhead. On the CPU
they run on NumPy arrays that share memory with the tensors (a NumPy call costs a fraction of
a PyTorch dispatch); on any other device (CUDA) the same code runs on PyTorch tensors.
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np
import torch


class NumpyOps:
    """Kernel operations on NumPy arrays (CPU tensors, zero-copy)."""

    xp: Any = np

    @staticmethod
    def wrap(t: torch.Tensor) -> Any:
        """A NumPy view of a CPU tensor."""
        return t.detach().numpy()

    @staticmethod
    def unwrap(a: Any, like: torch.Tensor) -> torch.Tensor:
        """A tensor sharing memory with the array."""
        return torch.from_numpy(np.ascontiguousarray(a))

    @staticmethod
    @functools.lru_cache(maxsize=512)
    def index(values: tuple[int, ...], device: Any = None) -> Any:
        """An integer index array."""
        return np.asarray(values, dtype=np.intp)

    @staticmethod
    def zeros(shape: tuple[int, ...], like: Any, complex_: bool = False) -> Any:
        """Zeros of the dtype of ``like`` (or its complex counterpart)."""
        dtype = np.result_type(like.dtype, np.complex64) if complex_ else like.dtype
        return np.zeros(shape, dtype=dtype)

    @staticmethod
    def index_add(target: Any, axis: int, idx: Any, values: Any) -> None:
        """target[..., idx, ...] += values along ``axis``, repeated indices accumulating."""
        np.add.at(target, (slice(None),) * axis + (idx,), values)

    @staticmethod
    def permute(a: Any, *axes: int) -> Any:
        """The array with its axes reordered."""
        return a.transpose(axes)

    @staticmethod
    def const(values: np.ndarray, like: Any) -> Any:
        """A constant in the dtype of ``like``."""
        return values.astype(like.dtype)

    @staticmethod
    def contiguous(a: Any) -> Any:
        """The array in C order (broadcast results can come out batch-innermost)."""
        return np.ascontiguousarray(a)

    @staticmethod
    def matmul(a: Any, b: Any) -> Any:
        """Batched matrix product (through PyTorch's batched GEMM, faster for complex)."""
        # Broadcast results can come out batch-innermost; GEMM wants it outermost.
        a, b = np.ascontiguousarray(a), np.ascontiguousarray(b)
        return (torch.from_numpy(a) @ torch.from_numpy(b)).numpy()


class TorchOps:
    """Kernel operations on PyTorch tensors (any device)."""

    xp: Any = torch

    @staticmethod
    def wrap(t: torch.Tensor) -> Any:
        """The tensor itself, detached (gradients are computed by the kernels)."""
        return t.detach()

    @staticmethod
    def unwrap(a: Any, like: torch.Tensor) -> torch.Tensor:
        """The tensor itself."""
        return a

    @staticmethod
    @functools.lru_cache(maxsize=512)
    def index(values: tuple[int, ...], device: Any = None) -> Any:
        """An integer index tensor on ``device``."""
        return torch.tensor(values, dtype=torch.long, device=device)

    @staticmethod
    def zeros(shape: tuple[int, ...], like: Any, complex_: bool = False) -> Any:
        """Zeros of the dtype and device of ``like`` (or its complex counterpart)."""
        if complex_ and not like.is_complex():
            dtype = torch.complex128 if like.dtype == torch.float64 else torch.complex64
            return like.new_zeros(shape, dtype=dtype)
        return like.new_zeros(shape)

    @staticmethod
    def index_add(target: Any, axis: int, idx: Any, values: Any) -> None:
        """target[..., idx, ...] += values along ``axis``, repeated indices accumulating."""
        target.index_add_(axis, idx, values)

    @staticmethod
    def permute(a: Any, *axes: int) -> Any:
        """The tensor with its dimensions reordered."""
        return a.permute(axes)

    @staticmethod
    def const(values: np.ndarray, like: Any) -> Any:
        """A constant in the dtype and on the device of ``like``."""
        return torch.as_tensor(values, dtype=like.dtype, device=like.device)

    @staticmethod
    def contiguous(a: Any) -> Any:
        """The tensor in row-major order."""
        return a.contiguous()

    @staticmethod
    def matmul(a: Any, b: Any) -> Any:
        """Batched matrix product."""
        return a @ b


Ops = type[NumpyOps] | type[TorchOps]


def ops_for(t: torch.Tensor, force_torch: bool = False) -> Ops:
    """NumPy kernels for CPU tensors, PyTorch kernels elsewhere (or when forced)."""
    if t.device.type == "cpu" and not force_torch:
        return NumpyOps
    return TorchOps


def needs_graph(*tensors: torch.Tensor | None) -> bool:
    """Whether autograd must record this call (grad mode on and some input requires grad)."""
    return torch.is_grad_enabled() and any(t is not None and t.requires_grad for t in tensors)


def device_of(a: Any) -> Any:
    """The device of a tensor, None for a NumPy array."""
    return getattr(a, "device", None)


def wrap_all(ops: Ops, *tensors: torch.Tensor | None) -> tuple[Any, ...]:
    """:meth:`wrap` each tensor, keeping None."""
    return tuple(None if t is None else ops.wrap(t) for t in tensors)


def unwrap_all(ops: Ops, arrays: tuple[Any, ...], like: torch.Tensor) -> tuple[Any, ...]:
    """:meth:`unwrap` each array, keeping None."""
    return tuple(None if a is None else ops.unwrap(a, like) for a in arrays)
