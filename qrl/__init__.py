"""qrl: reinforcement learning with quantum policies, on Stable-Baselines3 and PennyLane.

Quick start::

    import qrl
    run = qrl.train("unentangled", "CartPole-v1", seed=0)
    print(qrl.evaluate(run.path)["mean_return"])
"""

from qrl.circuits import CIRCUITS, Circuit, make_circuit
from qrl.errors import QrlError
from qrl.executors import make_executor
from qrl.experiment import Run, evaluate, open_run, resume, train
from qrl.extractors import QuantumExtractor, parameter_counts, set_executor

__version__ = "0.1.0"

__all__ = [
    "CIRCUITS",
    "Circuit",
    "QrlError",
    "QuantumExtractor",
    "Run",
    "evaluate",
    "make_circuit",
    "make_executor",
    "open_run",
    "parameter_counts",
    "resume",
    "set_executor",
    "train",
]
