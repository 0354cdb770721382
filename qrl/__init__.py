"""qrl: reinforcement learning with quantum policies, on Stable-Baselines3 and PennyLane.

Quick start::

    import qrl
    run = qrl.train("unentangled", "CartPole-v1", seed=0)
    print(qrl.evaluate(run.path)["mean_return"])

    from qrl.compare import GridSpec, compare, seed_list
    compare(GridSpec(("unentangled", "mlp"), ("CartPole-v1",), seed_list(10)), "runs/cmp")

Names are imported on first use, so that ``qrl --help`` does not wait for torch. Importing
qrl registers its partially observable tasks with Gymnasium (``qrl/CartPoleNoVel-v1``, ...).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from qrl import tasks as _tasks  # noqa: F401  (registers the qrl/ Gymnasium tasks; no torch import)

if TYPE_CHECKING:
    from qrl.circuits import CIRCUITS, Circuit, make_circuit
    from qrl.errors import QrlError
    from qrl.executors import make_executor
    from qrl.experiment import (
        Run,
        curve_from_checkpoints,
        evaluate,
        finetune,
        open_run,
        resume,
        train,
    )
    from qrl.extractors import DenseExtractor, QuantumExtractor, parameter_counts, set_executor
    from qrl.fast_weights import FastWeightCell, QFWPPolicy
    from qrl.hardware.evaluation import evaluate_executors, evaluation_cost

__version__ = "0.1.0"

_EXPORTS = {
    "CIRCUITS": "qrl.circuits",
    "Circuit": "qrl.circuits",
    "make_circuit": "qrl.circuits",
    "QrlError": "qrl.errors",
    "make_executor": "qrl.executors",
    "Run": "qrl.experiment",
    "curve_from_checkpoints": "qrl.experiment",
    "evaluate": "qrl.experiment",
    "finetune": "qrl.experiment",
    "evaluate_executors": "qrl.hardware.evaluation",
    "evaluation_cost": "qrl.hardware.evaluation",
    "open_run": "qrl.experiment",
    "resume": "qrl.experiment",
    "train": "qrl.experiment",
    "QuantumExtractor": "qrl.extractors",
    "DenseExtractor": "qrl.extractors",
    "parameter_counts": "qrl.extractors",
    "set_executor": "qrl.extractors",
    "FastWeightCell": "qrl.fast_weights",
    "QFWPPolicy": "qrl.fast_weights",
}

__all__ = [
    "CIRCUITS",
    "Circuit",
    "DenseExtractor",
    "FastWeightCell",
    "QFWPPolicy",
    "QrlError",
    "QuantumExtractor",
    "Run",
    "curve_from_checkpoints",
    "evaluate",
    "evaluate_executors",
    "evaluation_cost",
    "finetune",
    "make_circuit",
    "make_executor",
    "open_run",
    "parameter_counts",
    "resume",
    "set_executor",
    "train",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'qrl' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
