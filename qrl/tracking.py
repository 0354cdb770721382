"""Experiment tracking with Weights & Biases (``qrl train --track``; the ``track`` extra).

A tracked run is a W&B run beside the run folder's TensorBoard events: W&B mirrors every
TensorBoard scalar (SB3's ``rollout/``, ``train/``, ``eval/`` and qrl's ``quantum/``) through
its TensorBoard sync, and gets the run's resolved configuration as its config. Its files go
to ``<run>/wandb/``; ``WANDB_MODE=offline`` keeps them there (``wandb sync`` uploads them
later). The W&B run's id is made from the run folder's absolute path, so a resumed run
continues the same W&B run.

Credentials come only from W&B itself: ``WANDB_API_KEY`` in the environment or the account
``wandb login`` saved; qrl never passes or records one.
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from qrl.errors import QrlError, install_hint
from qrl.presets import check_no_credentials
from qrl.runs import Run


@dataclass
class Tracking:
    """Where a tracked run goes in Weights & Biases.

    :param project: the W&B project
    :param entity: the W&B user or team; the account's default when None
    :param group: a group of runs (e.g. one comparison)
    :param tags: tags of the run
    """

    project: str = "qrl"
    entity: str | None = None
    group: str | None = None
    tags: list[str] = field(default_factory=list)


def wandb_run_id(run: Run) -> str:
    """The W&B run id of a run folder: stable across sessions, so a resume continues it."""
    digest = hashlib.sha256(str(run.path.resolve()).encode()).hexdigest()[:12]
    return f"{run.path.name[:40]}-{digest}"


def check_tracking(track: Tracking | None) -> None:
    """Refuse ``--track`` before any work when wandb is not installed."""
    if track is not None:
        _wandb()


def _wandb() -> Any:
    try:
        import wandb
    except ImportError:
        raise QrlError(f"--track needs Weights & Biases: {install_hint('track')}") from None
    return wandb


@contextlib.contextmanager
def tracking(track: Tracking | None, run: Run) -> Iterator[None]:
    """Track the training session inside the block in W&B (nothing when ``track`` is None).

    Start the block before SB3's TensorBoard writer is made: W&B's TensorBoard sync
    mirrors writers made after it starts.

    :param track: where the run goes, or None
    :param run: the run folder
    :raises QrlError: if wandb is not installed or cannot start
    """
    if track is None:
        yield
        return
    wandb = _wandb()
    config = run.config.to_dict()
    check_no_credentials(config, "tracked setting")
    try:
        session = wandb.init(
            project=track.project,
            entity=track.entity,
            group=track.group,
            tags=list(track.tags) or None,
            name=run.path.name,
            id=wandb_run_id(run),
            resume="allow",
            dir=str(run.path),
            config=config,
            sync_tensorboard=True,
            settings=wandb.Settings(console="off", silent=True),
        )
    except wandb.errors.Error as exc:
        raise QrlError(f"Weights & Biases could not start the run: {exc}") from None
    try:
        yield
    finally:
        session.finish()
