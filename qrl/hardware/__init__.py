"""Beyond the simulator: shots, device noise and quantum hardware.

- :mod:`~qrl.hardware.backends`: fake IBM devices offline, IBM Quantum devices online
- :mod:`~qrl.hardware.qiskit_executor`: the ``qiskit.aer`` and ``qiskit.remote`` executors
- :mod:`~qrl.hardware.qiskit_circuits`: circuits as Qiskit templates, packed side by side
- :mod:`~qrl.hardware.jobs`: submissions with time limits, retries and backoff
- :mod:`~qrl.hardware.cost`: circuits, shots, submissions and time spent
- :mod:`~qrl.hardware.evaluation`: evaluation under exact, sampled and noisy execution
"""

from qrl.hardware.cost import Cost

__all__ = ["Cost"]
