"""Noise and hardware benchmark: a simulator-trained CartPole policy on shots, fake IBM
devices and packed wide circuits, and a short fine-tuning on a noisy device.

    python scripts/hardware.py --out docs/hardware --runs runs/hardware [--run RUN] [--episodes 10]

Trains ``qrl train --agent unentangled --env CartPole-v1 --seed 0`` on the exact torch
simulator (or takes ``--run``), then evaluates it through ``qrl.evaluate_executors`` (what
``qrl evaluate RUN --executor ...`` runs) on the same episodes everywhere:

- exact simulation (torch);
- ideal sampling on Aer with 128, 1024 and 8192 shots;
- two fake IBM devices with their calibrated noise (qiskit.aer), and one of them through
  the qiskit.remote path (IBM Runtime's local testing mode);
- packing: exact Aer unpacked and packed 8 per circuit (identical results expected), and
  ideal sampling packed onto the 127-qubit fake_sherbrooke;
- ``qrl finetune`` on a noisy fake device for a small budget, then its evaluation there.

Writes ``<out>/hardware.json`` and ``<out>/hardware.md`` (the tables of docs/hardware.md).
Evaluations are saved in the run folder as they go, so a stopped benchmark resumes.
"""

from __future__ import annotations

import argparse
import json
import platform
import shlex
import sys
import time
from pathlib import Path
from typing import Any

import qrl
from qrl.evaluation.comparison import evaluate_executors
from qrl.runs import open_run, versions
from qrl.training import finetune

SHOTS = (128, 1024, 8192)
DEVICES = ("fake_manila", "fake_nairobi")
WIDE = "fake_sherbrooke"


def _policy(args: argparse.Namespace) -> Path:
    if args.run:
        return Path(args.run)
    path = args.runs / "cartpole-unentangled-s0"
    if not (path / "model.zip").is_file():
        print(f"training {path}", file=sys.stderr)
        qrl.train("unentangled", "CartPole-v1", seed=0, run_dir=path, progress=False)
    return path


def _row(name: str, variant: dict[str, Any], solved: float | None) -> dict[str, Any]:
    cost = variant["cost"]
    return {
        "row": name,
        "label": variant["label"],
        "executor": variant["description"],
        "mean_return": round(variant["mean_return"], 1),
        "sem_return": round(variant["sem_return"], 1),
        "min_return": variant["min_return"],
        "solved_episodes": sum(r >= (solved or 0) for r in variant["returns"]),
        "action_agreement": variant.get("action_agreement"),
        "episodes": len(variant["returns"]),
        "circuits": cost["circuits"],
        "policy_circuits": cost["policy_circuits"],
        "shots": cost["shots"],
        "submissions": cost["submissions"],
        "steps": sum(variant["lengths"]),
        "wall_s": variant["wall_s"],
        "transpiled": variant.get("transpiled", []),
        "returns": variant["returns"],
    }


def evaluations(run: Path, episodes: int) -> list[dict[str, Any]]:
    """Every evaluation row of the table, on the same episodes."""
    rows: list[dict[str, Any]] = []

    def add(name: str, executor: str, options: dict[str, Any], reference: bool) -> None:
        start = time.perf_counter()
        report = evaluate_executors(run, executor, options, episodes, reference=reference)
        print(f"{name}: {time.perf_counter() - start:.0f} s", file=sys.stderr, flush=True)
        for variant in report["variants"]:
            if variant["executor"] == "torch":  # exact simulation: one row
                if not any(r["row"] == "exact" for r in rows):
                    rows.append(_row("exact", variant, report["solved_threshold"]))
                continue
            rows.append(_row(name, variant, report["solved_threshold"]))

    for shots in SHOTS:
        add(f"shots {shots}", "qiskit.aer", {"shots": shots, "seed": 1}, reference=True)
    for device in DEVICES:
        add(device, "qiskit.aer", {"backend": device, "shots": 1024, "seed": 1}, False)
    add("remote", "qiskit.remote", {"backend": DEVICES[0], "shots": 1024, "seed": 1}, False)
    add("exact aer", "qiskit.aer", {"shots": None}, False)
    add("exact aer packed", "qiskit.aer", {"shots": None, "packing": 8}, False)
    wide = {"backend": WIDE, "shots": 1024, "seed": 1, "noise": False, "packing": "auto"}
    add("wide packed", "qiskit.aer", wide, False)
    return rows


def fine_tuning(run: Path, runs: Path, episodes: int) -> dict[str, Any]:
    """Fine-tune on a noisy fake device for one rollout, then evaluate it there."""
    options = {"backend": DEVICES[0], "shots": 1024, "seed": 2}
    path = runs / f"finetune-{DEVICES[0]}"
    overrides = ["hyperparameters.n_epochs=1", "hyperparameters.learning_rate=1e-4"]
    if not (path / "model.zip").is_file():
        finetune(
            run,
            "qiskit.aer",
            options,
            timesteps=256,
            overrides=overrides,
            run_dir=path,
            progress=False,
        )
    status = open_run(path).status()
    report = evaluate_executors(path, "qiskit.aer", options, episodes, reference=False)
    device = report["variants"][-1]
    return {
        "command": f"qrl finetune {run} --executor qiskit.aer --backend {DEVICES[0]} "
        f"--shots 1024 --timesteps 256 --set {overrides[0]} --set {overrides[1]}",
        "timesteps": status.num_timesteps,
        "wall_s": status.wall_time_s,
        "cost": status.quantum_cost,
        "after": _row("after fine-tuning", device, report["solved_threshold"]),
    }


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.2f}%"


def packing_check(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Exact Aer unpacked against packed: the same returns, and what each step cost."""
    single = next(r for r in rows if r["row"] == "exact aer")
    packed = next(r for r in rows if r["row"] == "exact aer packed")
    return {
        "identical_returns": single["returns"] == packed["returns"],
        "circuits": [single["circuits"], packed["circuits"]],
        "policy_circuits": single["policy_circuits"],
    }


def markdown(data: dict[str, Any]) -> str:
    """The tables of docs/hardware.md."""
    lines = [
        f"Policy: `{data['run']}` ({data['parameters']['total']} parameters, "
        f"{data['parameters']['quantum']} in the circuit); {data['episodes']} episodes per "
        f"row, the same seeds in every row, {data['n_envs']} at a time (one submission per "
        "step).",
        "",
        "| row | executor | return (mean ± s.e.) | min | solved | same action as exact "
        "| circuits | policy circuits | shots | submissions | wall s |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in data["rows"]:
        lines.append(
            f"| {r['row']} | {r['executor']} | {r['mean_return']} ± "
            f"{r['sem_return']} | {r['min_return']:.0f} | {r['solved_episodes']}/{r['episodes']} "
            f"| {_percent(r['action_agreement'])} | {r['circuits']} | {r['policy_circuits']} "
            f"| {r['shots']} | {r['submissions']} | {r['wall_s']:.0f} |"
        )
    lines += ["", "Transpiled circuits (per step of the evaluation):", ""]
    seen = set()
    for r in data["rows"]:
        for info in r["transpiled"]:
            key = (info["backend"], info["packing"])
            if info["backend"] and key not in seen:
                seen.add(key)
                gates = ", ".join(f"{k} {v}" for k, v in sorted(info["gates"].items()))
                lines.append(
                    f"- {info['backend']} ({info['device_qubits']} qubits), packing "
                    f"{info['packing']}: depth {info['depth']}, {gates}; "
                    f"{info['circuits_per_call']} circuits for "
                    f"{info['policy_circuits_per_call']} policy circuits"
                )
    check = data["packing"]
    lines += [
        "",
        f"Packing on a simulator: exact Aer unpacked and packed 8 per circuit give identical "
        f"returns: {check['identical_returns']}; {check['circuits'][0]} against "
        f"{check['circuits'][1]} circuits for {check['policy_circuits']} policy circuits.",
    ]
    ft = data["finetune"]
    cost = ft["cost"]
    after = ft["after"]
    lines += [
        "",
        f"Fine-tuning: `{ft['command']}`: {ft['timesteps']} steps in {ft['wall_s']:.0f} s; "
        f"{cost['circuits']} circuits, {cost['shots']} shots, {cost['submissions']} "
        f"submissions. Then on {after['executor']}: {after['mean_return']} ± "
        f"{after['sem_return']} ({after['solved_episodes']}/{after['episodes']} solved, same "
        f"action as exact simulation of the fine-tuned weights on "
        f"{_percent(after['action_agreement'])} of steps).",
    ]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("docs/hardware"))
    parser.add_argument("--runs", type=Path, default=Path("runs/hardware"), help="run folders")
    parser.add_argument("--run", help="a trained CartPole run (default: train one in --runs)")
    parser.add_argument("--episodes", type=int, default=10)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    run = _policy(args)
    config = open_run(run).config
    rows = evaluations(run, args.episodes)
    data = {
        "command": shlex.join(["python", *sys.argv]),
        "machine": f"{platform.machine()}, {platform.processor() or 'cpu'}, "
        f"{__import__('os').cpu_count()} cores",
        "versions": versions() | _qiskit_versions(),
        "run": str(run),
        "episodes": args.episodes,
        "n_envs": min(config.n_envs, args.episodes),
        "parameters": open_run(run).status().parameters,
        "rows": rows,
        "packing": packing_check(rows),
        "finetune": fine_tuning(run, args.runs, args.episodes),
    }
    (args.out / "hardware.json").write_text(json.dumps(data, indent=2) + "\n")
    (args.out / "hardware.md").write_text(markdown(data))
    print(markdown(data))


def _qiskit_versions() -> dict[str, str]:
    from importlib import metadata

    return {p: metadata.version(p) for p in ("qiskit", "qiskit-aer", "qiskit-ibm-runtime")}


if __name__ == "__main__":
    main()
