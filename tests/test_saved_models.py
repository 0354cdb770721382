"""Models saved by qrl 0.1.0 (tests/data/models-0.1.0) load in a fresh process and compute
what they computed when they were saved: the same action probabilities on the recorded
observations, the same deterministic actions (the recurrent qfwp policy over a sequence)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

DATA = Path(__file__).parent / "data" / "models-0.1.0"
EXPECTED = json.loads((DATA / "expected.json").read_text())

SCRIPT = """
import json, sys
import numpy as np, torch
import qrl  # noqa: F401  (registers the qrl/ tasks)
from sb3_contrib import RecurrentPPO
from stable_baselines3 import PPO

path, recorded = sys.argv[1], json.loads(sys.argv[2])
algo = RecurrentPPO if recorded["env"].startswith("qrl/") else PPO
model = algo.load(path, device="cpu")
observations = np.asarray(recorded["observations"], dtype=np.float32)
out = {"actions": []}
state, start = None, np.ones(1, dtype=bool)
for obs in observations:
    action, state = model.predict(obs[None], state=state, episode_start=start, deterministic=True)
    out["actions"].append(int(action[0]))
    start = np.zeros(1, dtype=bool)
if algo is PPO:
    with torch.no_grad():
        dist = model.policy.get_distribution(torch.as_tensor(observations))
    out["probs"] = dist.distribution.probs.numpy().tolist()
print(json.dumps(out))
"""


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_model_of_0_1_0_loads_and_computes_the_same(name: str) -> None:
    recorded = EXPECTED[name]
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(DATA / f"{name}.zip"), json.dumps(recorded)],
        capture_output=True,
        text=True,
        check=True,
    )
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["actions"] == recorded["actions"]
    if "probs" in recorded:
        for got, want in zip(result["probs"], recorded["probs"], strict=True):
            assert got == pytest.approx(want, abs=1e-6)
