"""What running circuits costs: circuits, shots, submissions and time, counted as they run."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any


@dataclass
class Cost:
    """Counters of an executor that runs circuits with shots.

    :param circuits: circuits sent to the device, each run ``shots`` times (after packing)
    :param policy_circuits: circuits the policy asked for: one per sample and measurement
        basis (before packing); ``policy_circuits / circuits`` is the packing factor reached
    :param shots: shots run in all
    :param submissions: jobs submitted (one per batched executor call, plus retries)
    :param retries: failed submissions that were retried
    :param seconds: wall time spent waiting for results
    """

    circuits: int = 0
    policy_circuits: int = 0
    shots: int = 0
    submissions: int = 0
    retries: int = 0
    seconds: float = 0.0

    def add(self, other: Cost) -> None:
        """Add another cost to this one."""
        for f in fields(self):
            setattr(self, f.name, getattr(self, f.name) + getattr(other, f.name))

    def since(self, start: Cost) -> Cost:
        """The cost accumulated after a copy ``start`` of these counters was taken."""
        return Cost(
            **{f.name: getattr(self, f.name) - getattr(start, f.name) for f in fields(self)}
        )

    def copy(self) -> Cost:
        """A snapshot of the counters."""
        return Cost(**asdict(self))

    def to_dict(self) -> dict[str, Any]:
        """Plain data, seconds rounded."""
        data = asdict(self)
        data["seconds"] = round(self.seconds, 3)
        return data
