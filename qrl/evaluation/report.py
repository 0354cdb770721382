"""Plain-text tables of hardware evaluations and of their dry-run costs."""

from __future__ import annotations

from typing import Any


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(header, widths, strict=True)).rstrip()]
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    return lines


def describe_transpiled(info: dict[str, Any]) -> str:
    """One line: depth, gates and packing of a transpiled circuit."""
    gates = ", ".join(f"{name} {count}" for name, count in sorted(info["gates"].items()))
    device = (
        f"{info['backend']} ({info['device_qubits']} qubits)"
        if info["backend"]
        else "Aer (the circuit as written)"
    )
    return (
        f"{device}: {info['logical_qubits']} qubits used, depth {info['depth']}, gates {gates}, "
        f"{info['two_qubit_gates']} two-qubit; packing {info['packing']}: "
        f"{info['circuits_per_call']} circuits per step for {info['policy_circuits_per_call']} "
        "policy circuits"
    )


def format_report(report: dict[str, Any]) -> str:
    """The side-by-side table of :func:`~qrl.evaluation.comparison.evaluate_executors`."""
    head = (
        f"{report['env']} {report['agent']} ({report['num_timesteps']} steps trained): "
        f"{report['episodes']} episodes, seeds {report['seed']}.."
        f"{report['seed'] + report['episodes'] - 1}, {report['n_envs']} at a time"
    )
    rows = []
    for v in report["variants"]:
        cost = v["cost"]
        local = v["executor"] == "torch"
        rows.append(
            [
                v["label"],
                v["description"],
                f"{v['mean_return']:.1f} +/- {v['sem_return']:.1f}",
                f"[{v['min_return']:.0f}, {v['max_return']:.0f}]",
                f"{100 * v['action_agreement']:.1f}%" if "action_agreement" in v else "-",
                "-" if local else str(cost["circuits"]),
                "-" if local else str(cost["shots"]),
                "-" if local else str(cost["submissions"]),
                f"{v['wall_s']:.1f}",
            ]
        )
    header = ["", "executor", "return (mean +/- s.e.)", "range", "same action", "circuits"]
    header += ["shots", "jobs", "s"]
    lines = [head, *_table(header, rows)]
    for v in report["variants"]:
        for info in v.get("transpiled", []):
            lines.append(f"{v['label']} on {describe_transpiled(info)}")
    return "\n".join(lines)


def format_cost(cost: dict[str, Any]) -> str:
    """The table of :func:`~qrl.evaluation.comparison.evaluation_cost`."""
    rows = []
    for v in cost["variants"]:
        local = v["description"] == "torch"  # exact simulation: nothing is sent anywhere
        counts = [v["max_submissions"], v["max_circuits"], v["max_shots"]]
        rows.append(
            [v["label"], v["description"], str(v["episodes"])]
            + ["-" if local else str(c) for c in counts]
        )
    first = cost["variants"][0]
    lines = [
        f"dry run: {cost['env']} {cost['agent']}; at most, every episode lasting "
        f"{first['max_steps_per_episode']} steps, {cost['n_envs']} episodes at a time:",
        *_table(["", "executor", "episodes", "jobs", "circuits", "shots"], rows),
    ]
    for v in cost["variants"]:
        for info in v.get("transpiled", []):
            lines.append(f"{v['label']} on {describe_transpiled(info)}")
    lines.append("nothing was run")
    return "\n".join(lines)
