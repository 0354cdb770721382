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
import importlib.util
from typing import TYPE_CHECKING, Any

from qrl import tasks as _tasks  # noqa: F401  (registers the qrl/ Gymnasium tasks; no torch import)

if TYPE_CHECKING:
    from qrl.circuits import (
        CIRCUITS,
        GATES,
        PATTERNS,
        Circuit,
        Gate,
        InputAngle,
        Moment,
        WeightAngle,
        make_circuit,
        register_circuit,
        register_gate,
        register_pattern,
    )
    from qrl.errors import QrlError
    from qrl.evaluation.comparison import evaluate_executors, evaluation_cost
    from qrl.evaluation.models import curve_from_checkpoints, evaluate
    from qrl.executors import make_executor
    from qrl.extractors import DenseExtractor, QuantumExtractor, parameter_counts, set_executor
    from qrl.fast_weights import FastWeightCell, QFWPPolicy
    from qrl.runs import Run, open_run
    from qrl.tracking import Tracking
    from qrl.training import finetune, resume, train
    from qrl.tuning import tune

__version__ = "0.1.0"

_EXPORTS = {
    "CIRCUITS": "qrl.circuits",
    "GATES": "qrl.circuits",
    "PATTERNS": "qrl.circuits",
    "Circuit": "qrl.circuits",
    "Gate": "qrl.circuits",
    "InputAngle": "qrl.circuits",
    "Moment": "qrl.circuits",
    "WeightAngle": "qrl.circuits",
    "make_circuit": "qrl.circuits",
    "register_circuit": "qrl.circuits",
    "register_gate": "qrl.circuits",
    "register_pattern": "qrl.circuits",
    "QrlError": "qrl.errors",
    "make_executor": "qrl.executors",
    "Run": "qrl.runs",
    "Tracking": "qrl.tracking",
    "curve_from_checkpoints": "qrl.evaluation.models",
    "evaluate": "qrl.evaluation.models",
    "finetune": "qrl.training",
    "evaluate_executors": "qrl.evaluation.comparison",
    "evaluation_cost": "qrl.evaluation.comparison",
    "open_run": "qrl.runs",
    "resume": "qrl.training",
    "train": "qrl.training",
    "tune": "qrl.tuning",
    "QuantumExtractor": "qrl.extractors",
    "DenseExtractor": "qrl.extractors",
    "parameter_counts": "qrl.extractors",
    "set_executor": "qrl.extractors",
    "FastWeightCell": "qrl.fast_weights",
    "QFWPPolicy": "qrl.fast_weights",
}

__all__ = [
    "CIRCUITS",
    "GATES",
    "PATTERNS",
    "Circuit",
    "DenseExtractor",
    "FastWeightCell",
    "Gate",
    "InputAngle",
    "Moment",
    "QFWPPolicy",
    "QrlError",
    "QuantumExtractor",
    "Run",
    "Tracking",
    "WeightAngle",
    "curve_from_checkpoints",
    "evaluate",
    "evaluate_executors",
    "evaluation_cost",
    "finetune",
    "make_circuit",
    "make_executor",
    "open_run",
    "parameter_counts",
    "register_circuit",
    "register_gate",
    "register_pattern",
    "resume",
    "set_executor",
    "train",
    "tune",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is not None:
        return getattr(importlib.import_module(module), name)
    if importlib.util.find_spec(f"qrl.{name}") is not None:  # a submodule: qrl.circuits, ...
        return importlib.import_module(f"qrl.{name}")
    raise AttributeError(f"module 'qrl' has no attribute {name!r}")
