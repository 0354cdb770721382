"""The regression net for bad input: every case runs through the ``qrl`` entry point and must
end with exit status 2 and one line ``qrl: error: ...`` that names the problem, without a
traceback and before any work (no run folder is left behind).

Each row is something a careful user tried; a new kind of bad input gets a row here.
"""

from __future__ import annotations

import errno
import importlib.util
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import gymnasium as gym
import pytest
from gymnasium import spaces

from qrl.cli import main

SECRET = "qrl-planted-token-8d1e4b27"
HAS_QISKIT = all(
    importlib.util.find_spec(m) for m in ("qiskit", "qiskit_aer", "qiskit_ibm_runtime")
)


class TextEnv(gym.Env):
    """A task that observes text: no vectorised environment can hold its observations."""

    metadata = {"render_modes": ["rgb_array"]}
    observation_space = spaces.Text(8)
    action_space = spaces.Discrete(2)

    def reset(self, seed=None, options=None):
        super().reset(seed=seed)
        return "a", {}

    def step(self, action):
        return "a", 0.0, True, False, {}


TEXT_ENV = "qrl-test/Text-v0"
if TEXT_ENV not in gym.registry:
    gym.register(TEXT_ENV, entry_point=TextEnv, max_episode_steps=10)


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory, tiny_run: Path) -> dict[str, Path]:
    """Model files outside run folders: plain SB3 models and a truncated one."""
    from stable_baselines3 import DQN, PPO

    folder = tmp_path_factory.mktemp("models")
    DQN("MlpPolicy", "CartPole-v1", learning_starts=0).save(folder / "dqn.zip")
    PPO("MlpPolicy", "CartPole-v1").save(folder / "ppo.zip")
    data = (tiny_run / "model.zip").read_bytes()
    (folder / "truncated.zip").write_bytes(data[: len(data) // 2])
    return {p.stem: p for p in folder.glob("*.zip")}


@dataclass
class Where:
    """The paths a case may use: a copy of the tiny run, model files, a scratch folder."""

    run: Path
    models: dict[str, Path]
    tmp: Path


@dataclass(frozen=True)
class Case:
    """One bad input: the command, what the one-line message must say, and what it needs.

    :param argv: the command line (after ``qrl``), from the paths of :class:`Where`
    :param says: substrings of the message
    :param setup: prepares files or monkeypatches before the command
    :param qiskit: needs the IBM extra
    :param no_folder: a folder (relative to ``tmp``) that must not exist afterwards
    :param hides: a substring the message must not contain
    """

    argv: Callable[[Where], list[str]]
    says: tuple[str, ...]
    setup: Callable[[Where, pytest.MonkeyPatch], None] | None = None
    qiskit: bool = False
    no_folder: str | None = None
    hides: tuple[str, ...] = field(default_factory=tuple)


def _train(*extra: str, budget: bool = True) -> Callable[[Where], list[str]]:
    """``qrl train`` of the mlp agent into ``tmp/out``, 64 steps unless ``budget`` is off."""
    steps = ["--timesteps", "64"] if budget else []
    return lambda w: [
        "train",
        "--agent",
        "mlp",
        "--env",
        "CartPole-v1",
        *steps,
        "--no-progress",
        *extra,
        "--run-dir",
        str(w.tmp / "out"),
    ]


def _on_aer(*extra: str) -> Callable[[Where], list[str]]:
    return lambda w: ["evaluate", str(w.run), "--executor", "qiskit.aer", "--episodes", "1", *extra]


def _write(name: str, content: bytes) -> Callable[[Where, pytest.MonkeyPatch], None]:
    def setup(w: Where, monkeypatch: pytest.MonkeyPatch) -> None:
        (w.tmp / name).write_bytes(content)

    return setup


def _read_only(w: Where, monkeypatch: pytest.MonkeyPatch) -> None:
    """A folder nobody may write into; as root (who may), the system's answer is simulated."""
    folder = w.tmp / "readonly"
    folder.mkdir()
    folder.chmod(0o555)
    if os.geteuid() != 0:
        return
    real_mkdir, real_open = os.mkdir, os.open

    def refuse(path: os.PathLike | str) -> None:
        if Path(path).resolve().is_relative_to(folder.resolve()):
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), os.fspath(path))

    def mkdir(path, *args, **kwargs):
        refuse(path)
        return real_mkdir(path, *args, **kwargs)

    def open_(path, flags, *args, **kwargs):
        if flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT):
            refuse(path)
        return real_open(path, flags, *args, **kwargs)

    monkeypatch.setattr(os, "mkdir", mkdir)
    monkeypatch.setattr(os, "open", open_)


def _full_disk(w: Where, monkeypatch: pytest.MonkeyPatch) -> None:
    """The disk fills up: every flush to disk fails as a full disk does."""

    def fsync(fd: int) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "fsync", fsync)


def _ibm_offline(w: Where, monkeypatch: pytest.MonkeyPatch) -> None:
    """A token in the environment, and a network that does not resolve IBM's name: the
    service raises what the real one raised on this machine (an "invalid token" error caused
    by the connection error)."""
    import qiskit_ibm_runtime
    import requests
    from qiskit_ibm_runtime.accounts.exceptions import InvalidAccountError

    class Offline:
        def __init__(self, *args, **kwargs):
            try:
                raise requests.exceptions.ConnectionError(
                    "HTTPSConnectionPool(host='iam.cloud.ibm.com', port=443): Max retries "
                    "exceeded (Failed to resolve 'iam.cloud.ibm.com')"
                )
            except requests.exceptions.ConnectionError:
                raise InvalidAccountError(
                    "Unable to retrieve instances. Please check that you are using a valid "
                    "API token."
                ) from None

    monkeypatch.setenv("QISKIT_IBM_TOKEN", SECRET)
    monkeypatch.setattr(qiskit_ibm_runtime, "QiskitRuntimeService", Offline)


LONG = "r" * 300

CASES: dict[str, Case] = {
    # -- names (already handled before this table) -----------------------------------------
    "unknown agent": Case(
        lambda w: ["train", "--agent", "unentangld", "--env", "CartPole-v1"],
        ("unknown agent 'unentangld'", "did you mean 'unentangled'"),
    ),
    "unknown env": Case(
        lambda w: ["train", "--agent", "mlp", "--env", "CartPole-v9"],
        ("unknown environment 'CartPole-v9'",),
    ),
    "unknown executor": Case(
        lambda w: ["train", "--agent", "unentangled", "--env", "CartPole-v1", "--executor", "x"],
        ("unknown executor 'x'",),
    ),
    "unknown --set key": Case(_train("--set", "epochs=3"), ("unknown --set key 'epochs'",)),
    # -- values of the command line and presets ---------------------------------------------
    "--set timesteps=abc": Case(
        _train("--set", "timesteps=abc", budget=False),
        ("bad timesteps: 'abc'", "allowed: a whole number >= 1"),
        no_folder="out",
    ),
    "compare --set timesteps=abc": Case(
        lambda w: [
            "compare",
            "--agents",
            "mlp",
            "--env",
            "CartPole-v1",
            "--seeds",
            "1",
            "--set",
            "timesteps=abc",
            "--out",
            str(w.tmp / "grid"),
        ],
        ("bad timesteps: 'abc'", "a whole number >= 1"),
    ),
    "--set hyperparameters.gamma=abc": Case(
        _train("--set", "hyperparameters.gamma=abc"),
        ("bad hyperparameters.gamma: 'abc'", "allowed: a number from 0 to 1"),
        no_folder="out",
    ),
    "--set hyperparameters.gamma=2": Case(
        _train("--set", "hyperparameters.gamma=2"), ("bad hyperparameters.gamma: 2",)
    ),
    "--set hyperparameters.n_steps=2.5": Case(
        _train("--set", "hyperparameters.n_steps=2.5"),
        ("bad hyperparameters.n_steps: 2.5", "a whole number >= 1"),
    ),
    "--set hyperparameters.learning_rate=lin_abc": Case(
        _train("--set", "hyperparameters.learning_rate=lin_abc"),
        ("bad hyperparameters.learning_rate: 'lin_abc'", "lin_<number>"),
    ),
    "--set hyperparameters.normalize_advantage=yes please": Case(
        _train("--set", "hyperparameters.normalize_advantage=yes please"),
        ("bad hyperparameters.normalize_advantage", "true or false"),
    ),
    "--set hyperparameters.device=abc": Case(
        _train("--set", "hyperparameters.device=abc"), ("bad hyperparameters.device: 'abc'",)
    ),
    "--set policy.ortho_init=abc": Case(
        _train("--set", "policy.ortho_init=abc"), ("bad policy.ortho_init: 'abc'", "true or false")
    ),
    "--set seed=abc": Case(_train("--set", "seed=abc"), ("bad seed: 'abc'", "whole number")),
    "--seed -1": Case(_train("--seed", "-1"), ("bad seed: -1", "from 0 to")),
    "--set n_envs=2.5": Case(_train("--set", "n_envs=2.5"), ("bad n_envs: 2.5", "whole number")),
    "--set eval_episodes=-1": Case(
        _train("--set", "eval_episodes=-1"), ("bad eval_episodes: -1", "a whole number >= 0")
    ),
    "--set max_episode_steps=0": Case(
        _train("--set", "max_episode_steps=0"), ("bad max_episode_steps: 0",)
    ),
    "--set with malformed YAML": Case(
        _train("--set", "policy.net_arch=[64"), ("malformed YAML in --set policy.net_arch=[64",)
    ),
    "a Text observation space": Case(
        lambda w: ["train", "--agent", "mlp", "--env", TEXT_ENV, "--run-dir", str(w.tmp / "out")],
        ("observation space Text(", "is not supported"),
        no_folder="out",
    ),
    "a binary agent preset": Case(
        lambda w: ["train", "--agent", str(w.tmp / "bin.yaml"), "--env", "CartPole-v1"],
        ("bin.yaml is not a YAML text file", "not UTF-8"),
        setup=_write("bin.yaml", b"algorithm: ppo\n\x00\xff\xfe\x81\n"),
    ),
    "a binary env preset": Case(
        lambda w: ["train", "--agent", "mlp", "--env", str(w.tmp / "bin.yaml")],
        ("bin.yaml is not a YAML text file",),
        setup=_write("bin.yaml", b"\xff\xd8\xff\xe0 a JPEG"),
    ),
    "a malformed agent preset": Case(
        lambda w: ["train", "--agent", str(w.tmp / "bad.yaml"), "--env", "CartPole-v1"],
        ("malformed YAML in", "bad.yaml", "(line "),
        setup=_write("bad.yaml", b"algorithm: ppo\npolicy: {a: [1,\n"),
    ),
    "a preset value of the wrong type": Case(
        lambda w: ["train", "--agent", "mlp", "--env", str(w.tmp / "env.yaml")],
        ("bad n_envs: 'lots'", "whole number"),
        setup=_write("env.yaml", b"id: CartPole-v1\nn_envs: lots\n"),
    ),
    # -- executor options ----------------------------------------------------------------
    "--option retries=abc": Case(
        _on_aer("--option", "retries=abc"),
        ("bad executor option retries: 'abc'", "a whole number >= 0"),
        qiskit=True,
    ),
    "--option timeout_s=abc": Case(
        _on_aer("--option", "timeout_s=abc"),
        ("bad executor option timeout_s: 'abc'", "a number > 0"),
        qiskit=True,
    ),
    "--option shots=abc": Case(
        _on_aer("--option", "shots=abc"), ("bad executor option shots: 'abc'",), qiskit=True
    ),
    "--option retries=-1": Case(
        _on_aer("--option", "retries=-1"),
        ("bad executor option retries: -1",),
        qiskit=True,
        hides=("NoneType", "after 0 attempts"),
    ),
    "--option optimization_level=9": Case(
        _on_aer("--backend", "fake_manila", "--option", "optimization_level=9"),
        ("bad executor option optimization_level: 9", "from 0 to 3"),
        qiskit=True,
    ),
    "--option without =": Case(_on_aer("--option", "retries"), ("--option takes key=value",)),
    "--shots 0": Case(
        _on_aer("--shots", "0", "--dry-run"), ("bad executor option shots: 0",), qiskit=True
    ),
    "--episodes 0": Case(
        lambda w: ["evaluate", str(w.run), "--episodes", "0"], ("bad --episodes: 0",)
    ),
    "--episodes 0 on a device": Case(
        lambda w: ["evaluate", str(w.run), "--executor", "qiskit.aer", "--episodes", "0"],
        ("bad --episodes: 0",),
        qiskit=True,
    ),
    "--episodes 0 in a dry run": Case(
        _on_aer("--dry-run", "--episodes", "0"), ("bad --episodes: 0",), qiskit=True
    ),
    "evaluate --seed -5": Case(
        lambda w: ["evaluate", str(w.run), "--episodes", "1", "--seed", "-5"],
        ("bad --seed: -5",),
    ),
    "an offline IBM device": Case(
        lambda w: [
            "evaluate",
            str(w.run),
            "--executor",
            "qiskit.remote",
            "--backend",
            "ibm_brisbane",
            "--shots",
            "10",
            "--dry-run",
        ],
        ("IBM Quantum is unreachable", "network", "fake backend"),
        setup=_ibm_offline,
        qiskit=True,
        hides=("API token", SECRET),
    ),
    # -- model files ---------------------------------------------------------------------
    "a truncated model.zip": Case(
        lambda w: ["evaluate", str(w.models["truncated"]), "--env", "CartPole-v1"],
        ("truncated.zip is unusable",),
    ),
    "a DQN model evaluated with --algo ppo": Case(
        lambda w: ["evaluate", str(w.models["dqn"]), "--env", "CartPole-v1", "--algo", "ppo"],
        ("holds a dqn model, not ppo", "--algo dqn"),
    ),
    "a CartPole model on Acrobot": Case(
        lambda w: ["evaluate", str(w.models["ppo"]), "--env", "Acrobot-v1"],
        ("was trained on observations and actions Box(4,), Discrete(2)", "Acrobot-v1 has Box(6,)"),
    ),
    # -- the file system -----------------------------------------------------------------
    "--run-dir under a regular file": Case(
        lambda w: [*_train()(w)[:-1], str(w.tmp / "afile" / "run")],
        ("afile/run", "Not a directory"),
        setup=_write("afile", b"a file"),
    ),
    "a read-only output folder": Case(
        lambda w: [*_train()(w)[:-1], str(w.tmp / "readonly" / "run")],
        ("readonly", "Permission denied"),
        setup=_read_only,
    ),
    "a very long run name": Case(
        lambda w: [*_train()(w)[:-1], str(w.tmp / LONG)],
        ("File name too long", "shorter name"),
    ),
    "a full disk": Case(
        _train(), ("out/config.yaml", "No space left on device", "disk is full"), setup=_full_disk
    ),
    # -- credentials ---------------------------------------------------------------------
    "a token in policy.executor_options": Case(
        lambda w: [
            "train",
            "--agent",
            "unentangled",
            "--env",
            "CartPole-v1",
            "--run-dir",
            str(w.tmp / "out"),
            "--set",
            f"policy.executor_options={{device_options: {{api_key: {SECRET}}}}}",
        ],
        ("'policy.executor_options.device_options.api_key' looks like a credential", "environment"),
        no_folder="out",
        hides=(SECRET,),
    ),
    "a token in --option device_options": Case(
        lambda w: [
            "evaluate",
            str(w.run),
            "--executor",
            "default.qubit",
            "--option",
            f"device_options={{Token: {SECRET}}}",
        ],
        ("executor option 'device_options.Token' looks like a credential", "saved account"),
        hides=(SECRET,),
    ),
}


@pytest.fixture
def where(tiny_run: Path, models: dict[str, Path], tmp_path: Path) -> Where:
    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    return Where(run, models, scratch)


@pytest.mark.parametrize("name", list(CASES))
def test_bad_input_is_one_clear_line(
    name: str, where: Where, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
):
    case = CASES[name]
    if case.qiskit and not HAS_QISKIT:
        pytest.skip("needs the IBM extra (qiskit, qiskit-aer, qiskit-ibm-runtime)")
    if case.setup is not None:
        case.setup(where, monkeypatch)
    before = {p for p in where.run.rglob("*")}
    status = main(case.argv(where))
    err = capsys.readouterr().err
    assert status == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("qrl: error: "), err
    assert "Traceback" not in err
    for text in case.says:
        assert text in err, f"{text!r} not in {err!r}"
    for text in case.hides:
        assert text not in err
    if case.no_folder is not None:
        assert not (where.tmp / case.no_folder).exists()
    assert {p for p in where.run.rglob("*")} == before  # nothing written into the run


def test_a_bug_is_one_line_too_and_debug_shows_it(monkeypatch, capsys):
    def broken(*args, **kwargs):
        raise ZeroDivisionError("a bug")

    monkeypatch.setattr("qrl.presets.load_agent_preset", broken)
    assert main(["train", "--agent", "mlp", "--env", "CartPole-v1"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "internal error: ZeroDivisionError: a bug" in err
    assert "--debug" in err and "Traceback" not in err
    with pytest.raises(ZeroDivisionError):
        main(["--debug", "train", "--agent", "mlp", "--env", "CartPole-v1"])


def test_a_fresh_process_prints_no_traceback(tmp_path: Path):
    """The installed entry point, as a user runs it: one line, status 2."""
    argv = ["train", "--agent", "mlp", "--env", "CartPole-v1", "--run-dir", str(tmp_path / "out")]
    done = subprocess.run(
        [sys.executable, "-m", "qrl.cli", *argv, "--set", "hyperparameters.gamma=abc"],
        capture_output=True,
        text=True,
        env=os.environ | {"PYTHONWARNINGS": "ignore"},
    )
    assert done.returncode == 2
    assert done.stderr.strip() == (
        "qrl: error: bad hyperparameters.gamma: 'abc'; allowed: a number from 0 to 1"
    )
    assert not (tmp_path / "out").exists()


def _files_holding(folder: Path, text: str) -> list[Path]:
    return [p for p in folder.rglob("*") if p.is_file() and text.encode() in p.read_bytes()]


def test_a_planted_token_never_reaches_the_disk(where: Where, capsys, monkeypatch):
    """Nested device options with a token: every command that could save them is refused
    before it writes anything, and no file under the run folders holds the token."""
    monkeypatch.setenv("QISKIT_IBM_TOKEN", SECRET)
    nested = f"{{nested: [{{api_key: {SECRET}}}]}}"
    run, tuned, trained = str(where.run), str(where.tmp / "tuned"), str(where.tmp / "trained")
    on_device = ["--executor", "default.qubit"]
    setting = ["--set", f"policy.executor_options={{device_options: {nested}}}"]
    commands = [
        ["evaluate", run, *on_device, "--episodes", "1", "--option", f"device_options={nested}"],
        [
            "evaluate",
            run,
            *on_device,
            "--dry-run",
            "--option",
            f"device_options={{password: {SECRET}}}",
        ],
        ["finetune", run, *on_device, "--run-dir", tuned, "--option", f"secret={SECRET}"],
        ["train", "--agent", "unentangled", "--env", "CartPole-v1", "--run-dir", trained, *setting],
    ]
    for argv in commands:
        assert main(argv) == 2, argv
        err = capsys.readouterr().err
        assert "looks like a credential" in err and SECRET not in err
    assert not (where.tmp / "tuned").exists() and not (where.tmp / "trained").exists()
    assert _files_holding(where.run, SECRET) == []
    assert _files_holding(where.tmp, SECRET) == []


def test_the_last_check_refuses_to_write_a_credential(tmp_path: Path, monkeypatch):
    """write_json and write_config refuse a credential-like key at any depth, and any value
    that holds a credential of the environment; nothing is written."""
    from qrl.errors import QrlError
    from qrl.presets import RunConfig
    from qrl.runs import Run, write_json

    monkeypatch.setenv("QISKIT_IBM_TOKEN", SECRET)
    path = tmp_path / "eval.json"
    with pytest.raises(QrlError, match=r"refusing to write .*eval\.json: key 'a\.b\[0\]\.apiKey'"):
        write_json(path, {"a": {"b": [{"apiKey": "x"}]}})
    with pytest.raises(QrlError, match=r"command holds the value of \$QISKIT_IBM_TOKEN"):
        write_json(path, {"command": f"qrl evaluate run --option backend={SECRET}"})
    assert not path.exists()
    config = RunConfig(agent="a", env="CartPole-v1", env_id="CartPole-v1", algorithm="ppo")
    config.policy = {"executor_options": {"device_options": {"Secret_Key": "x"}}}
    with pytest.raises(QrlError, match="refusing to write"):
        Run(tmp_path, config).write_config(config, {})
    assert not (tmp_path / "config.yaml").exists()
    write_json(path, {"shots": 1024, "backend": "fake_manila"})  # plain data passes
    assert path.is_file()
