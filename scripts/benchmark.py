"""Benchmark qrl's quantum layers and PPO end to end against SB3's MLP and PennyLane.

Three sections, each measured side by side in one process (or, end to end, one fresh
process per training run, interleaved):

- ``layer``: forward (inference, under ``torch.no_grad``) and forward+backward time of the
  policy's feature layer: qrl's ``QuantumExtractor`` on the ``torch`` executor (float32 and
  float64, entangled circuits on the compiled path where Numba is installed; for entangled
  circuits also ``torch-numpy``, float32 on the frame path's NumPy kernels, and ``torch-sv``,
  float32 on the general per-sample state-vector path), on PennyLane ``default.qubit``
  (backprop, broadcasting), on ``lightning.qubit`` (adjoint) and, when named and installed,
  ``lightning.kokkos`` (adjoint), and SB3's default ``MlpExtractor``
  (64x64 tanh, policy and value) on the same observation width. Executors are timed in
  interleaved rounds, so each ratio is paired within a round; medians and min/max over
  rounds are reported.
- ``e2e``: ``qrl train`` of PPO on CartPole-v1 with ``--agent mlp``, ``--agent unentangled``
  and, for a shorter budget extrapolated to the full one, ``--agent unentangled --executor
  default.qubit``; environment steps per second from each run's run.json.
- ``memory``: peak resident memory of one forward+backward pass of the simulator (12 qubits,
  batch 2048), each in a fresh process.
- ``products``: for entangled circuits, the group matrix products of one forward+backward
  pass of the frame path (the shared gates applied, lambda carried back, the weights'
  partial traces) timed alone on states of the pass's shape, next to the whole pass and the
  MLP, in interleaved rounds: the part of the time no reordering of the other work removes.
- ``peers`` (only when named): the same circuit, encoded inputs and weights on peer
  simulators (``scripts/peers.py``: tensorcircuit-ng + JAX, Qulacs, TorchQuantum), each
  checked against qrl's values and gradients before it is timed, skipped with a note where
  it is not installed; forward+backward in interleaved rounds, paired ratios to qrl.

Usage::

    python scripts/benchmark.py --out docs/benchmarks            # everything (~45 min)
    python scripts/benchmark.py --quick --out /tmp/bench          # a smoke run (~1 min)

It writes ``benchmark.json`` and ``benchmark.md`` into ``--out``.
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")

import gymnasium as gym
import numpy as np
import torch
from stable_baselines3.common.torch_layers import MlpExtractor
from torch import nn

from qrl.extractors import QuantumExtractor
from qrl.simulator import TorchSimulator
from qrl.simulator.backend import NumpyOps
from qrl.simulator.frame import Shared, apply_groups, groups, make_schedule, wire_traces

EXECUTORS = (
    "mlp",
    "torch-f32",
    "torch-f64",
    "torch-numpy",
    "torch-sv",
    "default.qubit",
    "lightning.qubit",
)
# Timed only when named (--executors ... lightning.kokkos): a PennyLane plugin qrl does not
# depend on; where it is not installed its rows say so.
OPTIONAL_EXECUTORS = ("lightning.kokkos",)
# torch-f32 and torch-f64 run entangled circuits on the compiled path where Numba is
# installed; torch-numpy: float32 on the frame path's NumPy kernels (the compiled path off),
# to measure what compiling gains; torch-sv: float32, entangled circuits on the general
# per-sample state-vector path instead of the frame path, to measure what the frame path gains
PENNYLANE = {
    "default.qubit": "backprop",
    "lightning.qubit": "adjoint",
    "lightning.kokkos": "adjoint",
}


@dataclass
class LayerResult:
    """Timings of one executor on one configuration, in milliseconds per call."""

    circuit: str
    qubits: int
    layers: int
    batch: int
    mode: str  # "fwd" or "fwd+bwd"
    executor: str
    median_ms: float | None = None
    min_ms: float | None = None
    max_ms: float | None = None
    rounds: int = 0
    calls_per_round: int = 0
    ratio_to_mlp: list[float] = field(default_factory=list)  # median, min, max (paired)
    note: str = ""


class MlpLayer(nn.Module):
    """SB3's default PPO network body (64x64 tanh for policy and value) as one module."""

    def __init__(self, width: int) -> None:
        super().__init__()
        self.body = MlpExtractor(width, {"pi": [64, 64], "vf": [64, 64]}, nn.Tanh)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pi, vf = self.body(x)
        return torch.cat([pi, vf], -1)


def circuit_options(label: str) -> dict[str, Any]:
    """A circuit of the grid: a family name, optionally with circuit options after slashes,
    e.g. ``entangled/entangler=crz/pattern=all``."""
    name, *options = label.split("/")
    return {"circuit": name} | dict(option.split("=", 1) for option in options)


def make_layer(executor: str, circuit: str, qubits: int, layers: int) -> nn.Module:
    """The module timed for one executor."""
    if executor == "mlp":
        return MlpLayer(qubits)
    space = gym.spaces.Box(-np.inf, np.inf, (qubits,), np.float32)
    kwargs: dict[str, Any] = circuit_options(circuit) | {"n_layers": layers}
    if executor.startswith("torch"):
        kwargs["dtype"] = "float64" if executor.endswith("f64") else "float32"
    else:
        kwargs["executor"] = executor
        kwargs["executor_options"] = {"diff_method": PENNYLANE[executor]}
    layer = QuantumExtractor(space, **kwargs)
    if executor == "torch-sv":
        layer._executor = TorchSimulator(frame=False)
    if executor == "torch-numpy":
        layer._executor = TorchSimulator(compiled=False)
    return layer


def _call(module: nn.Module, x: torch.Tensor, mode: str) -> Callable[[], None]:
    if mode == "fwd":

        def run() -> None:
            with torch.no_grad():
                module(x)

    else:

        def run() -> None:
            module.zero_grad(set_to_none=True)
            module(x).sum().backward()

    return run


def _time(fn: Callable[[], None], calls: int) -> float:
    start = time.perf_counter()
    for _ in range(calls):
        fn()
    return (time.perf_counter() - start) / calls


def bench_config(
    circuit: str,
    qubits: int,
    layers: int,
    batch: int,
    mode: str,
    executors: Sequence[str],
    rounds: int,
    target_s: float,
    budget_s: float,
) -> list[LayerResult]:
    """Time every executor on one configuration in interleaved rounds."""
    x = torch.randn(batch, qubits)
    results = {e: LayerResult(circuit, qubits, layers, batch, mode, e) for e in executors}
    runners: dict[str, tuple[Callable[[], None], int]] = {}
    for e in executors:
        try:
            fn = _call(make_layer(e, circuit, qubits, layers), x, mode)
            fn()  # warm-up: QNode construction, allocations
        except Exception as error:  # an optional device that is not installed here
            results[e].note = f"not available: {error}".splitlines()[0]
            continue
        first = _time(fn, 1)
        if first > budget_s:
            results[e].median_ms = results[e].min_ms = results[e].max_ms = first * 1e3
            results[e].rounds, results[e].calls_per_round = 1, 1
            results[e].note = f"one call only (over the {budget_s:g} s budget)"
            continue
        runners[e] = (fn, max(1, math.ceil(target_s / max(first, 1e-6))))
    samples: dict[str, list[float]] = {e: [] for e in runners}
    for _ in range(rounds):
        for e, (fn, calls) in runners.items():
            samples[e].append(_time(fn, calls))
    for e, times in samples.items():
        r = results[e]
        r.median_ms, r.min_ms, r.max_ms = (
            statistics.median(times) * 1e3,
            min(times) * 1e3,
            max(times) * 1e3,
        )
        r.rounds, r.calls_per_round = len(times), runners[e][1]
        if "mlp" in samples and e != "mlp":
            ratios = [t / m for t, m in zip(times, samples["mlp"], strict=True)]
            r.ratio_to_mlp = [statistics.median(ratios), min(ratios), max(ratios)]
    return list(results.values())


def layer_section(args: argparse.Namespace) -> list[LayerResult]:
    """The per-layer grid; slow executors skip larger batches once over budget."""
    out: list[LayerResult] = []
    over: set[tuple[str, str, int, int, str]] = set()
    grid = itertools.product(args.circuits, args.qubits, args.layers, ("fwd+bwd", "fwd"))
    for circuit, qubits, layers, mode in grid:
        for batch in args.batches:
            config = (circuit, qubits, layers, batch, mode)
            chosen = [
                e
                for e in args.executors
                if (e, circuit, qubits, layers, mode) not in over
                and (e != "torch-sv" or circuit.startswith("entangled"))
            ]
            rows = bench_config(*config, chosen, args.rounds, args.target, args.budget)
            skipped = "skipped: a smaller batch was over budget"
            rows += [
                LayerResult(*config, e, note=skipped)
                for e in args.executors
                if e not in chosen and (e != "torch-sv" or circuit.startswith("entangled"))
            ]
            for r in rows:
                if r.note.startswith("one call"):
                    over.add((r.executor, circuit, qubits, layers, mode))
            out.extend(rows)
            _progress(rows)
    return out


def _progress(rows: list[LayerResult]) -> None:
    r0 = rows[0]
    cells = ", ".join(
        f"{r.executor} {r.median_ms:.3g} ms" if r.median_ms is not None else f"{r.executor} -"
        for r in rows
    )
    print(f"[layer] {r0.circuit} q={r0.qubits} L={r0.layers} b={r0.batch} {r0.mode}: {cells}")


@dataclass
class E2EResult:
    """One training run of the end-to-end section."""

    agent: str
    executor: str
    n_envs: int
    repeat: int
    timesteps: int
    wall_s: float
    steps_per_s: float
    extrapolated_to: int | None = None


def _train(agent: str, executor: str, n_envs: int, timesteps: int, seed: int) -> E2EResult:
    """``qrl train`` in a fresh process; steps/s and training wall time from run.json."""
    with tempfile.TemporaryDirectory() as tmp:
        run_dir = Path(tmp) / "run"
        cmd = [
            sys.executable,
            "-m",
            "qrl.cli",
            "train",
            "--agent",
            agent,
            "--env",
            "CartPole-v1",
            "--seed",
            str(seed),
            "--timesteps",
            str(timesteps),
            "--run-dir",
            str(run_dir),
            "--no-progress",
            "--set",
            "eval_episodes=0",  # no final evaluation
            "--set",
            "eval_freq=0",  # and no learning-curve evaluations: wall time is training alone
            "--set",
            f"n_envs={n_envs}",
        ]
        if agent != "mlp":
            cmd += ["--executor", executor]
        if n_envs == 1:  # keep 256 transitions per update, as with 8 environments x 32 steps
            cmd += ["--set", "hyperparameters.n_steps=256"]
        subprocess.run(
            cmd, check=True, stdout=subprocess.DEVNULL, env=os.environ | {"OMP_NUM_THREADS": "1"}
        )
        status = json.loads((run_dir / "run.json").read_text())
    return E2EResult(
        agent,
        executor,
        n_envs,
        seed,
        status["num_timesteps"],
        status["wall_time_s"],
        status["steps_per_s"],
    )


def e2e_section(args: argparse.Namespace) -> list[E2EResult]:
    """Per repeat, one after the other: the MLP, the unentangled agent on torch and, for a
    short budget extrapolated to the full one, on default.qubit; every ratio is paired."""
    out: list[E2EResult] = []
    runs = (
        ("mlp", "torch", args.e2e_timesteps),
        ("unentangled", "torch", args.e2e_timesteps),
        ("unentangled", "default.qubit", args.e2e_pennylane_timesteps),
    )
    for n_envs in args.envs:
        for repeat in range(args.e2e_repeats):
            for agent, executor, timesteps in runs:
                r = _train(agent, executor, n_envs, timesteps, repeat)
                if executor == "default.qubit":
                    r.extrapolated_to = args.e2e_timesteps
                out.append(r)
                print(f"[e2e] {agent} {executor} envs={n_envs} #{repeat}: {r.steps_per_s} steps/s")
    return out


_MEMORY_SNIPPET = """
import json, sys, torch
torch.set_num_threads(1)
import gymnasium as gym, numpy as np
from qrl.extractors import QuantumExtractor
circuit, qubits, layers, batch, dtype = sys.argv[1], *map(int, sys.argv[2:5]), sys.argv[5]
space = gym.spaces.Box(-np.inf, np.inf, (qubits,), np.float32)
layer = QuantumExtractor(space, circuit=circuit, n_layers=layers, dtype=dtype)
x = torch.randn(batch, qubits)
layer(x[:2]).sum().backward()
def status(key):
    for line in open("/proc/self/status"):
        if line.startswith(key):
            return int(line.split()[1]) / 1024
open("/proc/self/clear_refs", "w").write("5")  # reset the peak (VmHWM) to the current RSS
before = status("VmRSS")
layer(x).sum().backward()
print(json.dumps({"baseline_mib": before, "peak_mib": status("VmHWM")}))
"""


def memory_section(args: argparse.Namespace) -> list[dict[str, Any]]:
    """Peak RSS increase of one forward+backward pass, each case in a fresh process (Linux)."""
    out = []
    for circuit in ("unentangled", "entangled"):
        for dtype in ("float32", "float64"):
            argv = [circuit, "12", "3", str(args.memory_batch), dtype]
            proc = subprocess.run(
                [sys.executable, "-c", _MEMORY_SNIPPET, *argv],
                check=True,
                capture_output=True,
                text=True,
            )
            data = json.loads(proc.stdout.strip().splitlines()[-1])
            row = {"circuit": circuit, "qubits": 12, "layers": 3, "batch": args.memory_batch}
            row |= {"dtype": dtype, **data, "increase_mib": data["peak_mib"] - data["baseline_mib"]}
            out.append(row)
            print(f"[memory] {circuit} {dtype}: +{row['increase_mib']:.0f} MiB")
    return out


@dataclass
class ProductsResult:
    """The matrix products of one entangled forward+backward pass, timed alone."""

    qubits: int
    layers: int
    batch: int
    shared_steps: int  # shared steps after the product prefix, each one product per group
    products: int  # per forward+backward pass
    products_ms: float
    layer_ms: float
    mlp_ms: float
    products_to_mlp: list[float]  # median, min, max (paired by round)
    layer_to_mlp: list[float]


def _products_of_pass(layer: QuantumExtractor, batch: int) -> tuple[Callable[[], None], int]:
    """The group products one forward+backward pass of the frame path computes, on random
    float32 data of the same shapes: per shared step after the product prefix, the step
    applied, lambda carried back through it and the weights' partial traces."""
    schedule = make_schedule(layer.circuit)
    steps = sum(isinstance(st, Shared) for st in schedule.steps[schedule.prefix :])
    n, sizes = layer.circuit.n_qubits, groups(layer.circuit.n_qubits)
    rng = np.random.default_rng(0)

    def complex_array(*shape: int) -> np.ndarray:
        return (rng.standard_normal(shape) + 1j * rng.standard_normal(shape)).astype(np.complex64)

    operators = [complex_array(2**k, 2**k) for k in sizes]
    daggers = [np.ascontiguousarray(o.conj().T) for o in operators]
    state, lam = complex_array(2**n, batch), complex_array(2**n, batch)

    def run() -> None:
        for _ in range(steps):
            apply_groups(NumpyOps, operators, state, sizes)
            apply_groups(NumpyOps, daggers, lam, sizes)
            wire_traces(NumpyOps, state, lam, sizes)

    return run, steps


def products_section(args: argparse.Namespace) -> list[ProductsResult]:
    """Entangled circuits: products alone, the whole layer and the MLP, interleaved rounds."""
    out = []
    for qubits, layers, batch in itertools.product(args.qubits, args.layers, args.batches):
        layer = make_layer("torch-f32", "entangled", qubits, layers)
        assert isinstance(layer, QuantumExtractor)
        x = torch.randn(batch, qubits)
        products, steps = _products_of_pass(layer, batch)
        fns = {
            "products": products,
            "layer": _call(layer, x, "fwd+bwd"),
            "mlp": _call(make_layer("mlp", "entangled", qubits, layers), x, "fwd+bwd"),
        }
        times = _interleaved(fns, args.rounds, args.target)
        r = ProductsResult(
            qubits,
            layers,
            batch,
            steps,
            3 * steps * len(groups(qubits)),
            statistics.median(times["products"]) * 1e3,
            statistics.median(times["layer"]) * 1e3,
            statistics.median(times["mlp"]) * 1e3,
            _paired(times["products"], times["mlp"]),
            _paired(times["layer"], times["mlp"]),
        )
        print(
            f"[products] entangled q={qubits} L={layers} b={batch}: {r.products} products "
            f"{r.products_ms:.3g} ms ({r.products_to_mlp[0]:.1f}x MLP), layer "
            f"{r.layer_ms:.3g} ms ({r.layer_to_mlp[0]:.1f}x), MLP {r.mlp_ms:.3g} ms"
        )
        out.append(r)
    return out


@dataclass
class PeerResult:
    """One contender on one configuration: forward + backward of the same circuit."""

    circuit: str
    qubits: int
    layers: int
    batch: int
    contender: str
    median_ms: float | None = None
    to_qrl: list[float] = field(default_factory=list)  # median, min, max (paired by round)
    compile_s: float | None = None
    note: str = ""


def peers_section(args: argparse.Namespace) -> list[PeerResult]:
    """qrl against peer simulators (scripts/peers.py) and the MLP, interleaved rounds: the
    same circuit, encoded inputs and weights, float32, values and gradients checked first."""
    import peers

    out: list[PeerResult] = []
    grid = itertools.product(args.circuits, args.qubits, args.layers, args.batches)
    for label, qubits, layers, batch in grid:
        layer = make_layer("torch-f32", label, qubits, layers)
        assert isinstance(layer, QuantumExtractor)
        circuit = layer.circuit
        rng = np.random.default_rng(0)
        weights = {
            k: (rng.normal(size=s) * 1.5).astype(np.float32)
            for k, s in circuit.weight_shapes.items()
        }
        inputs = rng.normal(size=(batch, qubits, circuit.features_per_qubit)).astype(np.float32)
        mix = np.linspace(-1, 1, batch * circuit.n_outputs, dtype=np.float32)
        mix = mix.reshape(batch, circuit.n_outputs)
        qrl_run = peers.qrl_runner(circuit, inputs, weights, mix)
        want = qrl_run()
        mlp_call = _call(
            make_layer("mlp", label, qubits, layers), torch.randn(batch, qubits), "fwd+bwd"
        )
        fns: dict[str, Callable[[], Any]] = {"qrl": qrl_run, "mlp": mlp_call}
        rows = {name: PeerResult(label, qubits, layers, batch, name) for name in fns}
        for name in peers.PEERS:
            row = rows[name] = PeerResult(label, qubits, layers, batch, name)
            why = peers.missing(name)
            if why is None and name not in peers.RUNNERS:
                why = f"{name}: no runner"
            if why is not None:
                row.note = why
                continue
            try:
                run, row.compile_s = peers.RUNNERS[name](circuit, inputs, weights, mix)
                peers.check(name, run(), want, 1e-4)
            except Exception as error:  # a contender that fails or disagrees is reported
                row.note = f"{type(error).__name__}: {error}".splitlines()[0]
                continue
            fns[name] = run
        times = _interleaved(fns, args.rounds, args.target)
        for name, values in times.items():
            rows[name].median_ms = statistics.median(values) * 1e3
            rows[name].to_qrl = _paired(values, times["qrl"])
        summary = ", ".join(
            f"{r.contender} {_ms(r.median_ms)} ms" if r.median_ms else f"{r.contender} -"
            for r in rows.values()
        )
        print(f"[peers] {label} q={qubits} L={layers} b={batch}: {summary}")
        out += rows.values()
    return out


def peers_table(rows: list[PeerResult]) -> list[str]:
    """Markdown: every contender's time and its ratio to qrl's (paired by round)."""
    lines = [
        "| circuit | qubits | layers | batch | contender | ms per call | vs qrl (median, min-max) "
        "| compile s | note |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        ratio = "-"
        if r.to_qrl:
            ratio = f"{r.to_qrl[0]:.2f}x ({r.to_qrl[1]:.2f}-{r.to_qrl[2]:.2f})"
        compile_s = "-" if not r.compile_s else f"{r.compile_s:.1f}"
        lines.append(
            f"| {r.circuit} | {r.qubits} | {r.layers} | {r.batch} | {r.contender} "
            f"| {_ms(r.median_ms)} | {ratio} | {compile_s} | {r.note} |"
        )
    return lines


def _interleaved(
    fns: dict[str, Callable[[], Any]], rounds: int, target_s: float
) -> dict[str, list[float]]:
    """Seconds per call of each function, in interleaved rounds of about ``target_s`` each."""
    calls = {}
    for name, fn in fns.items():
        fn()
        calls[name] = max(1, math.ceil(target_s / max(_time(fn, 1), 1e-6)))
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(rounds):
        for name, fn in fns.items():
            times[name].append(_time(fn, calls[name]))
    return times


def _paired(times: list[float], reference: list[float]) -> list[float]:
    """Median, min and max of the ratios of two executors' times, round by round."""
    ratios = [t / m for t, m in zip(times, reference, strict=True)]
    return [statistics.median(ratios), min(ratios), max(ratios)]


def products_table(rows: list[ProductsResult]) -> list[str]:
    """Markdown: the products alone and the whole pass, each over the MLP (paired)."""
    lines = [
        "| qubits | layers | batch | group products per pass | products ms | whole pass ms "
        "| MLP ms | products / MLP | whole pass / MLP |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        p, w = r.products_to_mlp, r.layer_to_mlp
        lines.append(
            f"| {r.qubits} | {r.layers} | {r.batch} | {r.products} | {_ms(r.products_ms)} "
            f"| {_ms(r.layer_ms)} | {_ms(r.mlp_ms)} | {p[0]:.1f} ({p[1]:.1f}-{p[2]:.1f}) "
            f"| {w[0]:.1f} ({w[1]:.1f}-{w[2]:.1f}) |"
        )
    return lines


def machine() -> dict[str, Any]:
    """What the numbers were measured on."""
    import pennylane
    import stable_baselines3

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "numba": kernel_times(),
        "memory_gib": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": np.__version__,
        "pennylane": pennylane.__version__,
        "stable_baselines3": stable_baselines3.__version__,
        "torch_threads": torch.get_num_threads(),
        "date": time.strftime("%Y-%m-%d"),
    }


_KERNEL_TIME = (
    "import numpy, time; from qrl.simulator.kernels import compile_all; "
    "print(compile_all(numpy.float32) + compile_all(numpy.float64))"
)


def kernel_times() -> dict[str, Any] | None:
    """Numba's version and the seconds the compiled path's kernels take to be ready (float32
    and float64) in a fresh process: compiled into an empty cache, then loaded from it."""
    try:
        import numba
    except ImportError:
        return None
    seconds = []
    with tempfile.TemporaryDirectory() as cache:
        env = os.environ | {"NUMBA_CACHE_DIR": cache}
        for _ in range(2):
            out = subprocess.run(
                [sys.executable, "-c", _KERNEL_TIME], env=env, capture_output=True, text=True
            )
            seconds.append(float(out.stdout.strip()) if out.returncode == 0 else None)
    return {"version": numba.__version__, "compile_s": seconds[0], "cached_s": seconds[1]}


def _ms(value: float | None) -> str:
    return "-" if value is None else (f"{value:.3g}" if value < 100 else f"{value:,.0f}")


def layer_table(rows: list[LayerResult], mode: str) -> list[str]:
    """Markdown: one line per configuration, median ms per executor, and the key ratios."""
    known = EXECUTORS + OPTIONAL_EXECUTORS
    executors = [e for e in known if any(r.executor == e for r in rows)]
    head = ["circuit", "qubits", "layers", "batch", *[f"{e} ms" for e in executors]]
    head += ["torch-f32 / MLP", "default.qubit / torch-f32", "torch-sv / torch-f32"]
    head += ["torch-numpy / torch-f32"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    configs: dict[tuple[str, int, int, int], dict[str, LayerResult]] = {}
    for r in rows:
        if r.mode == mode:
            configs.setdefault((r.circuit, r.qubits, r.layers, r.batch), {})[r.executor] = r
    for (circuit, qubits, layers, batch), cells in configs.items():
        values = [_ms(cells[e].median_ms) if e in cells else "-" for e in executors]
        t32 = cells.get("torch-f32")
        ratio = "-"
        if t32 is not None and t32.ratio_to_mlp:
            med, lo, hi = t32.ratio_to_mlp
            ratio = f"{med:.2f} ({lo:.2f}-{hi:.2f})"
        dq = cells.get("default.qubit")
        speed = "-"
        if t32 and dq and t32.median_ms and dq.median_ms:
            speed = f"{dq.median_ms / t32.median_ms:.0f}x"
        gains = []
        for other in ("torch-sv", "torch-numpy"):
            row = cells.get(other)
            gain = "-"
            if t32 and row and t32.median_ms and row.median_ms:
                gain = f"{row.median_ms / t32.median_ms:.2f}x"
            gains.append(gain)
        lines.append(
            f"| {circuit} | {qubits} | {layers} | {batch} | "
            + " | ".join(values)
            + f" | {ratio} | {speed} | {' | '.join(gains)} |"
        )
    return lines


def e2e_table(rows: list[E2EResult]) -> list[str]:
    """Markdown: steps/s and wall time per agent and environment count, with ratios.

    Ratios are paired by repeat (the runs of one repeat ran one after the other); where the
    default.qubit run has no partner of the same repeat (reports with one such run), its
    extrapolated wall time is divided by the medians instead.
    """
    lines = [
        "| envs | agent | executor | runs | steps | steps/s median (min-max) | training wall s "
        "| wall / MLP (paired runs: median, min-max) | default.qubit / this |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for n_envs in sorted({r.n_envs for r in rows}, reverse=True):
        group = [r for r in rows if r.n_envs == n_envs]
        mlp = {r.repeat: _wall(r) for r in group if r.agent == "mlp"}
        pennylane = {r.repeat: _wall(r) for r in group if r.executor == "default.qubit"}
        for key in (("mlp", "torch"), ("unentangled", "torch"), ("unentangled", "default.qubit")):
            runs = [r for r in group if (r.agent, r.executor) == key]
            if not runs:
                continue
            rates = [r.steps_per_s for r in runs]
            wall = statistics.median(_wall(r) for r in runs)
            steps = f"{runs[0].timesteps:,}"
            label = f"{wall:,.0f}"
            if runs[0].extrapolated_to:
                steps += f" (scaled to {runs[0].extrapolated_to:,})"
                label += " (extrapolated)"
            ratio = _ratio_cell(mlp, runs, 2, "")
            speedup = _ratio_cell(pennylane, runs, 1, "x", invert=True)
            lines.append(
                f"| {n_envs} | {key[0]} | {key[1]} | {len(runs)} | {steps} | "
                f"{statistics.median(rates):,.0f} ({min(rates):,.0f}-{max(rates):,.0f}) | "
                f"{label} | {ratio} | {speedup} |"
            )
    return lines


def _ratio_cell(
    reference: dict[int, float], runs: list[E2EResult], digits: int, unit: str, invert: bool = False
) -> str:
    """Wall time over the reference's (or its inverse), paired by repeat: median (min-max);
    the ratio of the medians where fewer than all runs have a partner of their repeat."""
    if not reference:
        return "-"
    ratios = [_wall(r) / reference[r.repeat] for r in runs if r.repeat in reference]
    if invert:
        ratios = [1 / x for x in ratios]
    if len(ratios) < len(runs) or len(ratios) < len(reference):
        wall = statistics.median(_wall(r) for r in runs)
        median = statistics.median(reference.values())
        return f"{(median / wall if invert else wall / median):.{digits}f}{unit} (medians)"
    low, mid, high = min(ratios), statistics.median(ratios), max(ratios)
    return f"{mid:.{digits}f}{unit} ({low:.{digits}f}-{high:.{digits}f})"


def _wall(r: E2EResult) -> float:
    """Training wall time, scaled to the extrapolation target if any."""
    target = r.extrapolated_to or r.timesteps
    return r.wall_s * target / r.timesteps


def _threads(count: int) -> str:
    return f"{count} thread" + ("" if count == 1 else "s")


def write_report(out: Path, data: dict[str, Any]) -> None:
    """benchmark.json and benchmark.md in ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "benchmark.json").write_text(json.dumps(data, indent=2) + "\n")
    m = data["machine"]
    commands = data.get("commands", {})
    lines = [
        "# qrl benchmark",
        "",
        "Commands, per section: " + "; ".join(f"{k}: `{v}`" for k, v in commands.items()) + ".",
        "",
        f"Machine: {m['cpu']}, {m['cores']} cores, {m['memory_gib']} GiB; Python {m['python']}, "
        f"torch {m['torch']} ({_threads(m['torch_threads'])}), NumPy {m['numpy']}, PennyLane "
        f"{m['pennylane']}, SB3 {m['stable_baselines3']}; {m['date']}.",
        "",
    ]
    kernels = m.get("numba")
    if kernels:
        lines += [
            f"Numba {kernels['version']}: the compiled path's kernels take "
            f"{kernels['compile_s']:.1f} s to compile in a fresh process (float32 and float64), "
            f"{kernels['cached_s']:.2f} s to load from Numba's cache afterwards.",
            "",
        ]
    elif "numba" in m:
        lines += ["Numba not installed: entangled circuits ran on the frame path.", ""]
    layers = [LayerResult(**r) for r in data.get("layer", [])]
    for mode, title in (("fwd+bwd", "Forward + backward"), ("fwd", "Forward (no_grad)")):
        if any(r.mode == mode for r in layers):
            lines += [f"## {title}, ms per call (median of interleaved rounds)", ""]
            lines += [*layer_table(layers, mode), ""]
    notes = sorted({f"{r.executor}: {r.note}" for r in layers if r.note})
    if notes:
        lines += ["Notes: " + "; ".join(notes) + ".", ""]
    if data.get("e2e"):
        lines += ["## PPO on CartPole-v1, end to end", ""]
        lines += [*e2e_table([E2EResult(**r) for r in data["e2e"]]), ""]
    if data.get("memory"):
        lines += ["## Peak memory, one forward+backward pass", ""]
        lines += ["| circuit | qubits | layers | batch | dtype | peak RSS increase MiB |"]
        lines += ["|---|---|---|---|---|---|"]
        for r in data["memory"]:
            lines.append(
                f"| {r['circuit']} | {r['qubits']} | {r['layers']} | {r['batch']} | {r['dtype']} "
                f"| {r['increase_mib']:,.0f} |"
            )
        lines.append("")
    if data.get("products"):
        lines += ["## Entangled circuits: the group products of one pass, timed alone", ""]
        lines += [*products_table([ProductsResult(**r) for r in data["products"]]), ""]
    if data.get("peers"):
        lines += ["## Peer simulators: the same circuit, forward + backward, float32", ""]
        lines += [*peers_table([PeerResult(**r) for r in data["peers"]]), ""]
    (out / "benchmark.md").write_text("\n".join(lines))


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, required=True, help="folder for benchmark.json/.md")
    p.add_argument(
        "--sections",
        nargs="+",
        default=["layer", "e2e", "memory"],
        choices=["layer", "e2e", "memory", "products", "peers"],
    )
    p.add_argument("--quick", action="store_true", help="a small grid, for a smoke test")
    p.add_argument(
        "--circuits",
        nargs="+",
        default=["unentangled", "entangled"],
        help="circuit families, options after slashes: entangled/entangler=crz/pattern=all",
    )
    p.add_argument("--qubits", nargs="+", type=int, default=[4, 8, 12])
    p.add_argument("--layers", nargs="+", type=int, default=[1, 3])
    p.add_argument("--batches", nargs="+", type=int, default=[1, 64, 256, 2048])
    p.add_argument(
        "--executors",
        nargs="+",
        default=list(EXECUTORS),
        choices=EXECUTORS + OPTIONAL_EXECUTORS,
    )
    p.add_argument("--rounds", type=int, default=7, help="interleaved rounds per configuration")
    p.add_argument(
        "--threads", type=int, default=1, help="PyTorch threads of the layer and products timings"
    )
    p.add_argument("--target", type=float, default=0.05, help="seconds per timing sample")
    p.add_argument(
        "--budget", type=float, default=3.0, help="seconds above which a call is timed once"
    )
    p.add_argument("--envs", nargs="+", type=int, default=[8, 1])
    p.add_argument("--e2e-repeats", type=int, default=3)
    p.add_argument("--e2e-timesteps", type=int, default=100_000)
    p.add_argument("--e2e-pennylane-timesteps", type=int, default=5_000)
    p.add_argument("--memory-batch", type=int, default=2048)
    p.add_argument(
        "--report-only", action="store_true", help="rewrite benchmark.md from benchmark.json"
    )
    args = p.parse_args(argv)
    if args.quick:
        args.qubits, args.layers, args.batches, args.rounds = [4], [1], [1, 64], 3
        args.envs, args.e2e_repeats = [8], 1
        args.e2e_timesteps, args.e2e_pennylane_timesteps = 2_048, 512
        args.memory_batch, args.target = 64, 0.01
    return args


def main(argv: Sequence[str] | None = None) -> None:
    """Run the chosen sections and write the report."""
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.report_only:
        source = args.out / "benchmark.json"
        if not source.is_file():
            sys.exit(f"benchmark.py: error: --report-only needs {source}; run a section first")
        write_report(args.out, json.loads(source.read_text()))
        return
    command = "python scripts/benchmark.py " + " ".join(sys.argv[1:] if argv is None else argv)
    # Sections not run this time are kept from an earlier report in the same folder.
    previous = args.out / "benchmark.json"
    data: dict[str, Any] = json.loads(previous.read_text()) if previous.is_file() else {}
    data["machine"] = machine()
    old = data.pop("command", None)  # reports that kept one command for all sections
    commands = data.setdefault(
        "commands", {s: old for s in ("layer", "e2e", "memory") if s in data}
    )
    runners: dict[str, Callable[[argparse.Namespace], Sequence[Any]]] = {
        "layer": layer_section,
        "e2e": e2e_section,
        "memory": memory_section,
        "products": products_section,
        "peers": peers_section,
    }
    for section in args.sections:
        rows = runners[section](args)
        data[section] = [asdict(r) if hasattr(r, "__dataclass_fields__") else r for r in rows]
        commands[section] = f"{command}  # {time.strftime('%Y-%m-%d')}"
    write_report(args.out, data)
    print(f"wrote {args.out / 'benchmark.md'} and benchmark.json")


if __name__ == "__main__":
    main()
