"""The benchmark harness on a tiny grid: it times, pairs ratios and writes its report."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "benchmark.py"


@pytest.fixture(scope="module")
def benchmark():
    spec = importlib.util.spec_from_file_location("qrl_benchmark", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules["qrl_benchmark"] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(autouse=True)
def no_kernel_compile(benchmark, monkeypatch):
    """The report's Numba line without compiling the kernels twice in fresh processes."""
    times = {"version": "0", "compile_s": 1.0, "cached_s": 0.1}
    monkeypatch.setattr(benchmark, "kernel_times", lambda: times)


def test_layer_grid_and_report(benchmark, tmp_path):
    args = benchmark.parse_args(
        ["--out", str(tmp_path), "--qubits", "3", "--layers", "1", "--batches", "2"]
    )
    args.executors = ["mlp", "torch-f32", "torch-f64", "torch-sv"]
    args.rounds, args.target = 3, 0.002
    rows = benchmark.layer_section(args)
    assert {(r.circuit, r.mode, r.executor) for r in rows} == {
        (c, m, e)
        for c in args.circuits
        for m in ("fwd", "fwd+bwd")
        for e in args.executors
        if e != "torch-sv" or c == "entangled"  # the per-sample path: entangled circuits only
    }
    for r in rows:
        assert r.rounds == 3 and 0 < r.min_ms <= r.median_ms <= r.max_ms
        if r.executor != "mlp":
            low, high = r.ratio_to_mlp[1], r.ratio_to_mlp[2]
            assert 0 < low <= r.ratio_to_mlp[0] <= high
    data = {"machine": benchmark.machine(), "layer": [r.__dict__ for r in rows]}
    data["commands"] = {"layer": "python scripts/benchmark.py ..."}
    benchmark.write_report(tmp_path, data)
    report = (tmp_path / "benchmark.md").read_text()
    assert "| unentangled | 3 | 1 | 2 |" in report and "torch-f32 / MLP" in report
    assert json.loads((tmp_path / "benchmark.json").read_text())["layer"][0]["rounds"] == 3


def test_products_section_times_the_passes_products(benchmark, tmp_path):
    args = benchmark.parse_args(
        ["--out", str(tmp_path), "--qubits", "6", "--layers", "3", "--batches", "4"]
    )
    args.rounds, args.target = 3, 0.002
    (row,) = benchmark.products_section(args)
    # 3 layers: the first layer's shared gates act on the product state, two steps remain;
    # 6 qubits are two groups of three wires: 3 products per group and step
    assert (row.shared_steps, row.products) == (2, 12)
    assert min(row.products_ms, row.layer_ms, row.mlp_ms) > 0
    assert 0 < row.products_to_mlp[1] <= row.products_to_mlp[0] <= row.products_to_mlp[2]
    data = {"machine": benchmark.machine(), "products": [row.__dict__]}
    benchmark.write_report(tmp_path, data)
    assert "| 6 | 3 | 4 | 12 |" in (tmp_path / "benchmark.md").read_text()


def test_slow_executor_is_timed_once_then_skipped(benchmark, tmp_path):
    args = benchmark.parse_args(["--out", str(tmp_path), "--qubits", "2", "--layers", "1"])
    args.circuits, args.batches, args.executors = ["unentangled"], [1, 4], ["torch-f32"]
    args.rounds, args.budget = 2, 0.0  # every call is over this budget
    rows = [r for r in benchmark.layer_section(args) if r.mode == "fwd"]
    assert rows[0].rounds == 1 and rows[0].note.startswith("one call only")
    assert rows[1].median_ms is None and rows[1].note.startswith("skipped")


def test_end_to_end_ratios_are_paired_by_repeat(benchmark):
    def run(agent, executor, repeat, wall, timesteps=100, extrapolated=None):
        return benchmark.E2EResult(
            agent, executor, 8, repeat, timesteps, wall, timesteps / wall, extrapolated
        )

    rows = [
        run("mlp", "torch", 0, 10.0),
        run("unentangled", "torch", 0, 12.0),
        run("unentangled", "default.qubit", 0, 15.0, 10, 100),  # 150 s extrapolated
        run("mlp", "torch", 1, 20.0),
        run("unentangled", "torch", 1, 22.0),
        run("unentangled", "default.qubit", 1, 20.0, 10, 100),  # 200 s
    ]
    table = "\n".join(benchmark.e2e_table(rows))
    # unentangled over MLP: 1.2 and 1.1 per repeat; default.qubit over it: 12.5x and 9.1x
    assert "| 8 | unentangled | torch | 2 |" in table
    assert "1.15 (1.10-1.20) | 10.8x (9.1-12.5) |" in table
    # with a single default.qubit run the speed-up falls back to the ratio of medians
    table = "\n".join(benchmark.e2e_table(rows[:5]))
    assert "| 8.8x (medians) |" in table


def test_peers_are_checked_timed_or_reported_missing(benchmark, tmp_path):
    """qrl and the MLP are timed; a peer that is not installed gets a note, one that is gets
    timed only after its values and gradients matched qrl's."""
    sys.path.insert(0, str(SCRIPT.parent))
    import peers

    args = benchmark.parse_args(
        ["--out", str(tmp_path), "--circuits", "entangled", "--qubits", "3", "--layers", "1"]
    )
    args.batches, args.rounds, args.target = [4], 3, 0.002
    rows = {r.contender: r for r in benchmark.peers_section(args)}
    assert set(rows) == {"qrl", "mlp", *peers.PEERS}
    assert rows["qrl"].to_qrl[0] == 1.0 and rows["mlp"].median_ms > 0
    for name in peers.PEERS:
        assert (rows[name].median_ms is not None) != bool(rows[name].note)
    data = {"machine": benchmark.machine(), "peers": [r.__dict__ for r in rows.values()]}
    benchmark.write_report(tmp_path, data)
    assert "## Peer simulators" in (tmp_path / "benchmark.md").read_text()


def test_a_peer_that_disagrees_is_not_timed():
    sys.path.insert(0, str(SCRIPT.parent))
    import numpy as np
    import peers

    want = (np.zeros((2, 3)), {"theta": np.ones(4)})
    peers.check("same", (np.zeros((2, 3)), {"theta": np.ones(4)}), want, 1e-4)
    with pytest.raises(AssertionError, match="values differ"):
        peers.check("off", (np.full((2, 3), 0.1), {"theta": np.ones(4)}), want, 1e-4)
    with pytest.raises(AssertionError, match="gradient of theta"):
        peers.check("off", (np.zeros((2, 3)), {"theta": np.zeros(4)}), want, 1e-4)
