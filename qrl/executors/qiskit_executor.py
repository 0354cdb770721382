"""Executors ``qiskit.aer`` and ``qiskit.remote``: circuits with shots, noise and real devices.

Both turn a batch into a few parametrised templates, transpiled once to the device's basis
gates and layout, and submit the whole batch (every environment of a step, or every shifted
circuit of a gradient) as **one** job of Qiskit primitive PUBs. ``qiskit.aer`` samples on the
local Aer simulator, ideal or with a device's noise model; ``qiskit.remote`` goes through
IBM Runtime's ``SamplerV2``: a real device with credentials, or, for a ``fake_*`` backend,
the same code path in IBM Runtime's local testing mode.

Each sample and measurement basis is one *unit*; ``packing`` places several units side by
side on disjoint qubits of one wide circuit, dividing the circuits (and shots) a batch costs.
Gradients use the parameter-shift rule, evaluated with the same shots and noise.
"""

from __future__ import annotations

import inspect
import math
import time
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch

from qrl.circuits import Circuit
from qrl.errors import QrlError
from qrl.executors import qiskit_circuits as qc
from qrl.executors.backends import is_fake, require_qiskit, resolve_backend
from qrl.executors.cost import Cost
from qrl.executors.jobs import submit_with_retries
from qrl.presets import SEED_MAX, bad_value, boolean, real_number, whole_number

QISKIT_EXECUTORS = ("qiskit.aer", "qiskit.remote")
OPTIONS = (
    "shots",
    "backend",
    "noise",
    "packing",
    "optimization_level",
    "seed",
    "retries",
    "backoff_s",
    "timeout_s",
    "method",
    "diff_method",
    "max_circuits",
)
AER_METHODS = (
    "automatic",
    "statevector",
    "density_matrix",
    "stabilizer",
    "matrix_product_state",
    "extended_stabilizer",
    "unitary",
    "superop",
    "tensor_network",
)
_DENSITY_MATRIX_MAX = 8  # noisy templates this narrow are simulated as density matrices
_STATEVECTOR_MAX = 14  # wider ones (packed circuits) as matrix product states


class QiskitExecutor:
    """Run circuits through Qiskit primitives, a whole batch per submission.

    :param name: "qiskit.aer" (local Aer simulator) or "qiskit.remote" (IBM Runtime)
    :param shots: shots per circuit; None (qiskit.aer only) for exact expectation values
    :param backend: a fake IBM device (``fake_manila``, ``fake_sherbrooke``, ...) or, for
        qiskit.remote, an IBM Quantum device name; circuits are transpiled to its basis
        gates and coupling map. qiskit.aer without a backend is an ideal, all-to-all simulator
    :param noise: on qiskit.aer with a backend, simulate that device's calibrated noise
        (False: its basis and layout with shot noise only)
    :param packing: policy circuits per device circuit, side by side on disjoint qubits;
        "auto" fills the backend
    :param optimization_level: Qiskit transpiler optimisation level (0-3)
    :param seed: seed of the transpiler and of the simulator's shots (None: random shots)
    :param retries: further attempts for a failed or timed-out submission
    :param backoff_s: wait before the first retry, doubled each time
    :param timeout_s: limit on waiting for one submission (None: no limit)
    :param method: Aer simulation method ("automatic", "density_matrix", ...); by default
        density matrices for narrow noisy circuits, matrix product states for wide ones
    :param diff_method: "parameter-shift" (or "best", the same): the only gradient a device
        can give
    :param max_circuits: split a batch into jobs of at most this many device circuits (a
        provider's limit on the size of one job); None: one job per batch
    """

    def __init__(
        self,
        name: str,
        shots: int | None = 1024,
        backend: str | None = None,
        noise: bool = True,
        packing: int | str = 1,
        optimization_level: int = 1,
        seed: int | None = None,
        retries: int = 3,
        backoff_s: float = 2.0,
        timeout_s: float | None = None,
        method: str | None = None,
        diff_method: str = "parameter-shift",
        max_circuits: int | None = None,
    ) -> None:
        require_qiskit()
        if diff_method not in ("parameter-shift", "best"):
            raise QrlError(
                f"qiskit executors differentiate by 'parameter-shift' only, got {diff_method!r}"
            )
        if name not in QISKIT_EXECUTORS:
            raise QrlError(f"unknown qiskit executor {name!r}; valid: {list(QISKIT_EXECUTORS)}")
        self.name = name
        self.shots = _check_shots(name, shots)
        self.noise = boolean(noise, "executor option noise")
        self.packing = _check_packing(packing)
        self.optimization_level = whole_number(
            optimization_level, "executor option optimization_level", 0, 3
        )
        self.seed = whole_number(seed, "executor option seed", 0, SEED_MAX, allow_none=True)
        self.retries = whole_number(retries, "executor option retries", 0)
        self.backoff_s = real_number(backoff_s, "executor option backoff_s", 0)
        self.timeout_s = real_number(
            timeout_s, "executor option timeout_s", 0, above=True, allow_none=True
        )
        if method is not None and method not in AER_METHODS:
            raise bad_value("executor option method", method, f"null or one of {AER_METHODS}")
        self.method = method
        self.max_circuits = whole_number(
            max_circuits, "executor option max_circuits", 1, allow_none=True
        )
        if backend is not None and not isinstance(backend, str):
            raise bad_value("executor option backend", backend, "a device name, e.g. fake_manila")
        if name == "qiskit.remote" and not backend:
            raise QrlError(
                "qiskit.remote needs a backend: an IBM Quantum device such as ibm_brisbane, "
                "or offline a fake device such as fake_manila"
            )
        if name == "qiskit.remote" and not self.noise:
            raise QrlError("qiskit.remote runs with its device's own noise; use qiskit.aer")
        self.backend_name = backend
        self.device: Any = resolve_backend(backend) if backend else None
        self.cost = Cost()
        self._compiled: dict[tuple[Circuit, tuple[str | None, ...]], Any] = {}
        self._noise_model: Any = None
        self._rng = np.random.default_rng(seed)

    # -- layout ---------------------------------------------------------------------------

    @property
    def device_qubits(self) -> int | None:
        """Qubits of the backend (None: a simulator without a device)."""
        return None if self.device is None else int(self.device.num_qubits)

    def bases(self, circuit: Circuit) -> tuple[str | None, ...]:
        """Measurement bases of one sample: one per observable, or one unmeasured unit."""
        return (None,) if self.shots is None else tuple(circuit.observables)

    def packing_factor(self, circuit: Circuit) -> int:
        """Units per device circuit for ``circuit`` (before capping at the batch)."""
        n, cap = circuit.n_qubits, self.device_qubits
        if cap is not None and n > cap:
            raise QrlError(f"a {n}-qubit circuit does not fit {self.backend_name} ({cap} qubits)")
        if self.packing == "auto":
            k = 1 if cap is None else cap // n
        else:
            k = int(self.packing)
            if cap is not None and k * n > cap:
                raise QrlError(
                    f"packing {k} circuits of {n} qubits needs {k * n} qubits; "
                    f"{self.backend_name} has {cap} (at most packing {cap // n})"
                )
        settings = len(self.bases(circuit))
        if k >= settings > 1:
            k -= k % settings  # every full circuit then has the same bases
        return max(k, 1)

    def compiled(self, circuit: Circuit, bases: tuple[str | None, ...]) -> Any:
        """The template of units measured in ``bases``, transpiled for the backend (cached)."""
        key = (circuit, bases)
        if key not in self._compiled:
            from qiskit import transpile

            template = qc.template(circuit, bases)
            if self.device is None:  # Aer runs the template's own gates, at any width
                self._compiled[key] = qc.for_aer(template, circuit)
            else:
                self._compiled[key] = transpile(
                    template,
                    backend=self.device,
                    optimization_level=self.optimization_level,
                    seed_transpiler=0 if self.seed is None else self.seed,
                )
        return self._compiled[key]

    def transpile_report(self, circuit: Circuit, batch: int = 1) -> dict[str, Any]:
        """Depth, gate counts, qubits and packing of the device circuit for ``batch`` samples.

        :param circuit: the policy circuit
        :param batch: samples per call (e.g. the number of environments)
        """
        bases = self.bases(circuit)
        units = batch * len(bases)
        k = min(self.packing_factor(circuit), units)
        pattern = tuple(bases[j % len(bases)] for j in range(k))
        info = qc.report(self.compiled(circuit, pattern), k, circuit.n_qubits)
        info["packing"] = k
        info["circuits_per_call"] = math.ceil(units / k)
        info["policy_circuits_per_call"] = units
        info["backend"] = self.backend_name
        info["device_qubits"] = self.device_qubits
        return info

    # -- execution ------------------------------------------------------------------------

    def __call__(
        self, circuit: Circuit, inputs: torch.Tensor, weights: Mapping[str, torch.Tensor]
    ) -> torch.Tensor:
        """Expectation values of a batch (see :class:`qrl.executors.Executor`)."""
        batch = inputs.shape[0]
        angles = [a.expand(batch, -1) for a in circuit.angles(inputs, weights) if a is not None]
        flat = torch.cat(angles, dim=1)
        return _ParameterShift.apply(flat, self, circuit)

    def expectations(self, circuit: Circuit, angles: np.ndarray) -> np.ndarray:
        """Estimated expectation values of a batch, in one submission (or, beyond
        ``max_circuits``, in as few as fit).

        :param circuit: the policy circuit
        :param angles: shape (batch, n_angles): every unit's angles in template order
        :return: shape (batch, circuit.n_outputs)
        """
        bases = self.bases(circuit)
        units = [(b, s) for b in range(angles.shape[0]) for s in range(len(bases))]
        k = self.packing_factor(circuit)
        chunks = [units[i : i + k] for i in range(0, len(units), k)]
        step = self.max_circuits or len(chunks)
        out = np.zeros((angles.shape[0], circuit.n_outputs))
        for i in range(0, len(chunks), step):
            self._run_chunks(circuit, angles, chunks[i : i + step], out)
        return out

    def _run_chunks(
        self,
        circuit: Circuit,
        angles: np.ndarray,
        chunks: list[list[tuple[int, int]]],
        out: np.ndarray,
    ) -> None:
        """Submit one job for ``chunks`` (device circuits of (sample, basis) units) and write
        their expectation values into ``out``."""
        bases = self.bases(circuit)
        groups: dict[tuple[str | None, ...], list[list[tuple[int, int]]]] = {}
        for chunk in chunks:
            groups.setdefault(tuple(bases[s] for _, s in chunk), []).append(chunk)
        pubs: list[tuple[Any, ...]] = []
        for pattern, members in groups.items():
            compiled = self.compiled(circuit, pattern)
            values = np.stack([np.concatenate([angles[b] for b, _ in c]) for c in members])
            if self.shots is None:
                obs = [
                    o.apply_layout(compiled.layout) for o in qc.observables(circuit, len(pattern))
                ]
                pubs.append((compiled, [obs], values[:, None, :]))
            else:
                pubs.append((compiled, values))
        units = sum(len(c) for c in chunks)
        results = self._submit(pubs, circuits=len(chunks), policy_circuits=units)
        n, per_qubit = circuit.n_qubits, len(circuit.observables)
        for members, result in zip(groups.values(), results, strict=True):
            if self.shots is None:
                evs = np.asarray(result.data.evs).reshape(len(members), -1)
                for c, chunk in enumerate(members):
                    for j, (b, _) in enumerate(chunk):
                        out[b] = evs[c, j * circuit.n_outputs : (j + 1) * circuit.n_outputs]
                continue
            bits = result.data.c.to_bool_array(order="little")  # (circuits, shots, bits)
            z = 1.0 - 2.0 * bits.reshape(len(members), self.shots, -1).mean(axis=1)
            for c, chunk in enumerate(members):
                for j, (b, s) in enumerate(chunk):
                    out[b, s::per_qubit] = z[c, j * n : (j + 1) * n]

    def _submit(self, pubs: list[Any], circuits: int, policy_circuits: int) -> Any:
        start = time.perf_counter()
        result, retries = submit_with_retries(
            lambda: self._primitive(pubs).run(pubs),
            self.retries,
            self.backoff_s,
            self.timeout_s,
            what=f"{self.name} submission ({circuits} circuits)",
        )
        cost = self.cost
        cost.seconds += time.perf_counter() - start
        cost.submissions += 1 + retries
        cost.retries += retries
        cost.circuits += circuits
        cost.policy_circuits += policy_circuits
        cost.shots += circuits * (self.shots or 0)
        return result

    def _primitive(self, pubs: list[Any]) -> Any:
        """A sampler (or, without shots, an estimator) for one submission."""
        seed = None if self.seed is None else int(self._rng.integers(2**31))
        if self.name == "qiskit.remote":
            from qiskit_ibm_runtime import SamplerV2

            sampler = SamplerV2(mode=self.device)
            sampler.options.default_shots = self.shots
            if seed is not None and is_fake(str(self.backend_name)):
                sampler.options.simulator.seed_simulator = seed
            return sampler
        width = max(pub[0].num_qubits if self.device is None else _active(pub[0]) for pub in pubs)
        options: dict[str, Any] = {"method": self.method or self._method(width)}
        if self.noise and self.device is not None:
            options["noise_model"] = self.noise_model()
        if self.shots is None:
            from qiskit_aer.primitives import EstimatorV2

            return EstimatorV2(
                options={"backend_options": options, "run_options": {"seed_simulator": seed}}
            )
        from qiskit_aer.primitives import SamplerV2 as AerSampler

        return AerSampler(default_shots=self.shots, seed=seed, options={"backend_options": options})

    def _method(self, width: int) -> str:
        noisy = self.noise and self.device is not None
        if noisy and (width <= _DENSITY_MATRIX_MAX or self.shots is None):
            return "density_matrix"
        return "matrix_product_state" if width > _STATEVECTOR_MAX else "automatic"

    def noise_model(self) -> Any:
        """The backend's calibrated noise model (built once)."""
        if self._noise_model is None:
            from qiskit_aer.noise import NoiseModel

            self._noise_model = NoiseModel.from_backend(self.device)
        return self._noise_model


def _active(circuit: Any) -> int:
    """Qubits a transpiled circuit acts on (Aer simulates only those)."""
    return len({q for inst in circuit.data for q in inst.qubits})


def _check_shots(name: str, shots: int | None) -> int | None:
    if shots is None:
        if name == "qiskit.remote":
            raise QrlError("qiskit.remote needs a number of shots (a device only samples)")
        return None
    allowed = "a whole number >= 1" + (" or null (exact)" if name == "qiskit.aer" else "")
    if isinstance(shots, bool) or not isinstance(shots, int | float) or shots < 1:
        raise bad_value("executor option shots", shots, allowed)
    return whole_number(shots, "executor option shots", 1)


def _check_packing(packing: int | str) -> int | str:
    if packing == "auto":
        return packing
    if isinstance(packing, bool) or not isinstance(packing, int | float) or packing < 1:
        raise bad_value("executor option packing", packing, "a whole number >= 1 or auto")
    return whole_number(packing, "executor option packing", 1)


def option_defaults() -> dict[str, Any]:
    """The options of :class:`QiskitExecutor` that have defaults, with them: the one source
    of what an option left out means (a dry run reads the shots it will cost here)."""
    parameters = inspect.signature(QiskitExecutor.__init__).parameters
    return {n: p.default for n, p in parameters.items() if p.default is not p.empty}


class _ParameterShift(torch.autograd.Function):
    """Expectation values of sampled circuits, differentiated by the parameter-shift rule.

    Every angle enters one gate, so d<O>/da is the sum of c <O>(a + s) over the (c, s) of the
    gate's shift rule (:attr:`qrl.circuits.Gate.shift_rule`: two terms, +-pi/2, for
    rotations; four for controlled rotations), with the same shots and noise as the forward
    pass. For a product circuit each output depends only on its own qubit's angles, so one
    moment's angles are shifted on all qubits at once (one set of circuits per moment
    instead of one per angle).
    """

    @staticmethod
    def forward(
        ctx: Any, flat: torch.Tensor, executor: QiskitExecutor, circuit: Circuit
    ) -> torch.Tensor:
        values = executor.expectations(circuit, flat.detach().cpu().double().numpy())
        ctx.save_for_backward(flat)
        ctx.executor, ctx.circuit = executor, circuit
        return torch.as_tensor(values, dtype=flat.dtype, device=flat.device)

    @staticmethod
    def backward(ctx: Any, grad_out: torch.Tensor) -> tuple[torch.Tensor | None, None, None]:
        (flat,) = ctx.saved_tensors
        executor, circuit = ctx.executor, ctx.circuit
        x = flat.detach().cpu().double().numpy()
        g = grad_out.detach().cpu().double().numpy()
        batch = x.shape[0]
        groups = _shift_groups(circuit)
        shifted = []
        for indices, rule in groups:
            for _, shift in rule:
                y = x.copy()
                y[:, indices] += shift
                shifted.append(y)
        f = executor.expectations(circuit, np.concatenate(shifted)).reshape(-1, batch, g.shape[1])
        grad = np.zeros_like(x)
        term = 0
        for indices, rule in groups:
            d = sum(c * f[term + t] for t, (c, _) in enumerate(rule))  # (batch, outputs)
            term += len(rule)
            if circuit.entangling:
                grad[:, indices[0]] = (g * d).sum(-1)
            else:  # output o of qubit q depends on the angle of qubit q alone
                per_qubit = len(circuit.observables)
                dq = (g * d).reshape(batch, circuit.n_qubits, per_qubit).sum(-1)
                grad[:, indices] = dq
        return torch.as_tensor(grad, dtype=flat.dtype, device=flat.device), None, None


def _shift_groups(circuit: Circuit) -> list[tuple[list[int], tuple[tuple[float, float], ...]]]:
    """The angles shifted together, with their gate's shift rule: one angle at a time for an
    entangling circuit, one moment's (every qubit's) angles at once for a product circuit."""
    slots = qc.angle_slots(circuit)
    rules = [circuit.moments[m].spec.shift_rule for m, _ in slots]
    if circuit.entangling:
        return [([j], rules[j]) for j in range(len(slots))]
    by_moment: dict[int, list[int]] = {}
    for j, (m, _) in enumerate(slots):
        by_moment.setdefault(m, []).append(j)
    return [(indices, rules[indices[0]]) for indices in by_moment.values()]
