"""Every ``qrl ...`` command of the ``bash`` blocks of README.md, docs/usage.md and docs/sb3.md
runs and exits 0, with tiny budgets: the documented commands stay in step with the program.

A renamed flag, a refused setting or a subcommand that is gone makes the test of that doc line
fail (the test id names the file and the line). Each command runs in its own process, in a
temporary folder (``examples`` and the zoo's ``logs`` are linked into it), so nothing is
written into the checkout. The budget of each command is replaced by a tiny one (``_tiny``);
placeholders are substituted by runs and models the fixtures make (``RUN_PLACEHOLDERS``,
``ZOO_MODEL``), and the commands that cannot run here are listed in ``SKIP`` with the reason.
"""

from __future__ import annotations

import importlib.util
import os
import re
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
DOCS = ("README.md", "docs/usage.md", "docs/sb3.md", "docs/tuning.md")

# Commands that cannot run here: a substring of the documented command -> why.
SKIP: dict[str, str] = {
    "qiskit.remote": "needs IBM Quantum credentials and the network",
    "ibm_brisbane": "needs IBM Quantum credentials and the network",
    "db-host": "needs the PostgreSQL server it names (tests/test_tune.py starts one of its own)",
}
# Set-up lines (a virtual environment, `pip install`, then a nested
# `qrl evaluate "$(qrl train ...)"`): CI runs them as they are, separately, so here they are
# only reported as skipped. Set-up lines without a qrl command (`... && pytest`) are ignored.
SETUP_MARKER = "pip install"

# Placeholders and documented paths -> what stands for them (the fixture that makes it).
RUN_PLACEHOLDERS = ("runs/<run>", "RUN")  # a trained run: the `docs_run` fixture
ZOO_MODEL = "logs/ppo/CartPole-v1_1/CartPole-v1.zip"  # the `zoo_logs` fixture, linked as logs/
TUNED = "runs/tune-cartpole/best.yaml"  # the `docs_study` fixture's best setting

# A one-trial study of tiny runs (its space's n_steps and batch_size fixed small).
TUNE_SETTINGS = {
    "n_envs": "1",
    "hyperparameters.n_steps": "8",
    "hyperparameters.batch_size": "8",
    "hyperparameters.n_epochs": "1",
    "eval_episodes": "2",
    "eval_freq_episodes": "2",
}

ON_POLICY = {"ppo", "a2c", "trpo", "recurrent_ppo"}
TAKES_BATCH_SIZE = {"ppo", "recurrent_ppo", "trpo"}
OFF_POLICY = {"sac", "td3", "ddpg", "tqc", "dqn", "qrdqn", "crossq"}
ENV_ASSIGNMENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*=")
TIMEOUT_S = 600


@dataclass(frozen=True)
class DocCommand:
    """One command line of a doc's bash block."""

    file: str
    line: int
    text: str  # the line as documented, continuations joined, without its comment
    env: dict[str, str] = field(default_factory=dict)
    argv: tuple[str, ...] = ()
    skip: str = ""  # why it is not run
    error: str = ""  # why it cannot be understood (the test fails)

    @property
    def id(self) -> str:
        sub = self.argv[1] if len(self.argv) > 1 else "setup" if self.skip else "line"
        return f"{self.file}:{self.line}-{sub}"


def _bash_lines(path: Path) -> list[tuple[int, str]]:
    """The logical lines of the ```bash blocks of ``path``: (first line number, text)."""
    lines: list[tuple[int, str]] = []
    fence = ""
    in_bash = False
    pending: tuple[int, str] | None = None
    for number, raw in enumerate(path.read_text().splitlines(), start=1):
        stripped = raw.strip()
        if not fence:
            match = re.match(r"^(`{3,}|~{3,})\s*(\S*)", stripped)
            if match:
                fence = match.group(1)
                info = match.group(2)
                in_bash = info == "bash"
            continue
        if stripped.startswith(fence) and stripped.strip("`~") == "":
            fence = ""
            continue
        if not in_bash:
            continue
        start, text = pending if pending else (number, "")
        text = f"{text} {stripped}" if text else stripped
        if text.endswith("\\"):
            pending = (start, text[:-1].rstrip())
            continue
        pending = None
        lines.append((start, text))
    return lines


def _doc_command(file: str, number: int, text: str) -> DocCommand | None:
    """The command of one logical line, or None for a line that is not a qrl command."""
    try:
        tokens = shlex.split(text, comments=True)
    except ValueError as exc:
        return DocCommand(file, number, text, error=f"cannot split the line: {exc}")
    nested = "qrl" in tokens[1:] or any("qrl " in token for token in tokens)
    if SETUP_MARKER in text:
        if not nested:
            return None
        reason = "set-up line (virtual environment and pip install): CI runs it separately"
        return DocCommand(file, number, text, skip=reason)
    env: dict[str, str] = {}
    while tokens and ENV_ASSIGNMENT.match(tokens[0]):
        name, _, value = tokens.pop(0).partition("=")
        env[name] = value
    if tokens and tokens[0] == "qrl":
        shown = shlex.join([*(f"{k}={v}" for k, v in env.items()), *tokens])
        for marker, reason in SKIP.items():
            if marker in text:
                return DocCommand(file, number, shown, env, tuple(tokens), skip=reason)
        return DocCommand(file, number, shown, env, tuple(tokens))
    if nested:
        error = "a qrl command in a form this test does not run: handle it here or in SKIP"
        return DocCommand(file, number, text, error=error)
    return None  # another program (tensorboard, python scripts/...), or a comment


def _doc_commands() -> list[DocCommand]:
    commands = []
    for file in DOCS:
        for number, text in _bash_lines(ROOT / file):
            command = _doc_command(file, number, text)
            if command is not None:
                commands.append(command)
    return commands


COMMANDS = _doc_commands()


# --- the argument list, edited -------------------------------------------------------------


def _option_index(argv: list[str], flag: str) -> int | None:
    """Index of the value of ``flag`` (``--flag V`` or ``--flag=V``), if given."""
    for i, token in enumerate(argv):
        if token == flag and i + 1 < len(argv):
            return i + 1
        if token.startswith(f"{flag}="):
            return i
    return None


def _set_option(argv: list[str], flag: str, value: str) -> None:
    """Give ``flag`` the value ``value``, replacing the documented one."""
    i = _option_index(argv, flag)
    if i is None:
        argv += [flag, value]
    elif argv[i].startswith(f"{flag}="):
        argv[i] = f"{flag}={value}"
    else:
        argv[i] = value


def _add_flag(argv: list[str], flag: str) -> None:
    if flag not in argv:
        argv.append(flag)


def _overrides(argv: list[str]) -> dict[str, int]:
    """``--set key=value`` overrides: key -> index of the token that holds ``key=value``."""
    found = {}
    for i, token in enumerate(argv):
        if token == "--set" and i + 1 < len(argv):
            found[argv[i + 1].partition("=")[0]] = i + 1
        elif token.startswith("--set="):
            found[token[len("--set=") :].partition("=")[0]] = i
    return found


def _set_override(argv: list[str], key: str, value: str) -> None:
    """``--set key=value``, replacing the documented value of ``key``."""
    i = _overrides(argv).get(key)
    if i is None:
        argv += ["--set", f"{key}={value}"]
    else:
        argv[i] = f"--set={key}={value}" if argv[i].startswith("--set=") else f"{key}={value}"


def _override_value(argv: list[str], key: str) -> str | None:
    i = _overrides(argv).get(key)
    return None if i is None else argv[i].removeprefix("--set=").partition("=")[2]


def _agent_algorithm(argv: list[str]) -> str:
    """The algorithm a train command uses: its ``--set algorithm=``, else its agent preset's."""
    algorithm = _override_value(argv, "algorithm")
    if algorithm:
        return algorithm
    i = _option_index(argv, "--agent")
    agent = argv[i].removeprefix("--agent=") if i is not None else "unentangled"
    path = ROOT / agent if agent.endswith((".yaml", ".yml")) else ROOT / "agents" / f"{agent}.yaml"
    data = yaml.safe_load(path.read_text()) if path.is_file() else {}
    return str(data.get("algorithm", "ppo"))


def _n_envs(argv: list[str]) -> int:
    """Environments of a train command: its ``--set n_envs=``, its env preset's, or 1."""
    n_envs = _override_value(argv, "n_envs")
    if n_envs is None:
        i = _option_index(argv, "--env")
        env = argv[i].removeprefix("--env=") if i is not None else "CartPole-v1"
        path = ROOT / env if env.endswith((".yaml", ".yml")) else ROOT / "envs" / f"{env}.yaml"
        data = yaml.safe_load(path.read_text()) if path.is_file() else {}
        n_envs = str(data.get("n_envs", 1))
    return int(float(n_envs))


def _tiny_train(argv: list[str], work: Path) -> None:
    _set_option(argv, "--timesteps", "64")
    _add_flag(argv, "--no-progress")
    _set_override(argv, "eval_episodes", "2")
    if _override_value(argv, "eval_freq") is None:
        _set_override(argv, "eval_freq", "0")
    if _option_index(argv, "--run-dir") is None:
        argv += ["--run-dir", str(work / "run")]
    algorithm = _agent_algorithm(argv)
    if algorithm in ON_POLICY:
        _set_override(argv, "hyperparameters.n_steps", "8")
        if algorithm in TAKES_BATCH_SIZE:
            # 64, or the whole rollout where it is shorter (SB3 warns of a truncated batch)
            size = min(64, 8 * _n_envs(argv))
            _set_override(argv, "hyperparameters.batch_size", str(size))
    elif algorithm in OFF_POLICY:
        _set_override(argv, "hyperparameters.learning_starts", "16")
    else:
        pytest.fail(f"no tiny budget for algorithm {algorithm!r}: add it to this test")


def _tiny(command: DocCommand, work: Path) -> list[str]:
    """The command with tiny budgets in place of the documented ones."""
    argv = list(command.argv)
    sub = argv[1] if len(argv) > 1 else ""
    if sub == "train":
        _tiny_train(argv, work)
    elif sub == "evaluate":
        if "--dry-run" not in argv:
            _set_option(argv, "--episodes", "2")
    elif sub == "finetune":
        _set_option(argv, "--timesteps", "8")
        _set_override(argv, "hyperparameters.n_steps", "1")
        _set_override(argv, "hyperparameters.n_epochs", "1")
        _add_flag(argv, "--no-progress")
    elif sub == "compare":
        _set_option(argv, "--seeds", "1")
        _set_option(argv, "--timesteps", "64")
        _set_option(argv, "--out", str(work / "grid"))
        _set_override(argv, "hyperparameters.n_steps", "8")
        _set_override(argv, "eval_episodes", "2")
    elif sub == "tune":
        _set_option(argv, "--trials", "1")
        _set_option(argv, "--seeds", "1")
        _set_option(argv, "--timesteps", "64")
        _set_option(argv, "--out", str(work / "study"))
        for key, value in TUNE_SETTINGS.items():
            _set_override(argv, key, value)
    elif sub == "curve":
        _set_option(argv, "--episodes", "2")
    elif sub != "presets":
        pytest.fail(f"no tiny budget for `qrl {sub}`: add one to this test")
    return argv


# --- what the placeholders stand for --------------------------------------------------------


def _qrl() -> str:
    beside = Path(sys.executable).with_name("qrl")
    return str(beside) if beside.exists() else shutil.which("qrl") or "qrl"


def _env(extra: dict[str, str]) -> dict[str, str]:
    return os.environ | {"OMP_NUM_THREADS": "1", "MPLBACKEND": "Agg"} | extra


def _run(argv: list[str], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [_qrl(), "--debug", *argv[1:]],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
    )


def _run_here(
    argv: list[str], cwd: Path, env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> subprocess.CompletedProcess[str]:
    """Run ``qrl ARGV`` in this process (no interpreter start-up: the suite stays fast), in
    ``cwd`` with ``env`` set; its output captured like :func:`_run`'s."""
    import contextlib
    import io

    from qrl.cli import main

    monkeypatch.chdir(cwd)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(["--debug", *argv[1:]])
    return subprocess.CompletedProcess(argv, code, out.getvalue(), err.getvalue())


def _check(proc: subprocess.CompletedProcess[str], shown: str) -> None:
    assert proc.returncode == 0, (
        f"exit status {proc.returncode} of\n  {shown}\nstderr (end):\n{proc.stderr[-2000:]}"
    )


def _train_run(folder: Path, eval_freq: int) -> Path:
    """A tiny CartPole run trained through the CLI (best_model.zip, checkpoints, a curve)."""
    run = folder / "docs-run"
    argv = [
        "qrl",
        "train",
        "--agent",
        "unentangled",
        "--env",
        "CartPole-v1",
        "--timesteps",
        "64",
        "--set",
        f"eval_freq={eval_freq}",
        "--set",
        "eval_freq_episodes=2",
        "--set",
        "eval_episodes=2",
        "--set",
        "hyperparameters.n_steps=8",
        "--set",
        "hyperparameters.batch_size=64",
        "--no-progress",
        "--run-dir",
        str(run),
    ]
    _check(_run(argv, folder, _env({})), shlex.join(argv))
    return run


@pytest.fixture(scope="session")
def docs_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The trained run that ``runs/<run>`` and ``RUN`` stand for."""
    run = _train_run(tmp_path_factory.mktemp("docs-runs"), eval_freq=32)
    assert (run / "best_model.zip").is_file() and (run / "curve.json").is_file()
    assert any((run / "checkpoints").glob("model_*_steps.zip"))
    return run


@pytest.fixture(scope="session")
def docs_study(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The study folder whose best.yaml ``runs/tune-cartpole/best.yaml`` stands for."""
    out = tmp_path_factory.mktemp("docs-study") / "study"
    argv = [_qrl(), "tune", "--agent", "unentangled", "--env", "CartPole-v1", "--trials", "1"]
    argv += ["--seeds", "1", "--timesteps", "64", "--out", str(out)]
    for key, value in TUNE_SETTINGS.items():
        argv += ["--set", f"{key}={value}"]
    _check(_run(argv, out.parent, _env({})), shlex.join(argv))
    assert (out / "best.yaml").is_file()
    return out


@pytest.fixture(scope="session")
def zoo_logs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A plain SB3 PPO CartPole model with VecNormalize, laid out as rl-baselines3-zoo does:
    ``logs/ppo/CartPole-v1_1/CartPole-v1.zip`` and ``.../CartPole-v1/vecnormalize.pkl``."""
    from stable_baselines3 import PPO
    from stable_baselines3.common.env_util import make_vec_env
    from stable_baselines3.common.vec_env import VecNormalize

    logs = tmp_path_factory.mktemp("zoo") / "logs"
    model_path = logs / ZOO_MODEL.removeprefix("logs/")
    venv = VecNormalize(make_vec_env("CartPole-v1", n_envs=2, seed=0))
    model = PPO("MlpPolicy", venv, n_steps=16, batch_size=32, n_epochs=1, seed=0)
    model.learn(32)
    model_path.parent.mkdir(parents=True)
    model.save(model_path)
    stats = model_path.with_suffix("") / "vecnormalize.pkl"
    stats.parent.mkdir()
    venv.save(str(stats))
    venv.close()
    return logs


def _substitute(argv: list[str], work: Path, request: pytest.FixtureRequest) -> list[str]:
    """Placeholders and documented paths replaced by what the fixtures made."""
    out = []
    for token in argv:
        if token in RUN_PLACEHOLDERS:
            if argv[1] == "curve" and "--overwrite" not in argv:
                # `qrl curve RUN` is documented for a run trained without a curve.
                token = str(_train_run(work, eval_freq=0))
            else:
                token = str(request.getfixturevalue("docs_run"))
        elif token == TUNED:
            token = str(request.getfixturevalue("docs_study") / "best.yaml")
        elif token == ZOO_MODEL:
            (work / "logs").symlink_to(request.getfixturevalue("zoo_logs"))
        elif "<" in token and ">" in token:
            pytest.fail(f"placeholder {token!r}: make what it stands for here, or SKIP it")
        out.append(token)
    return out


@pytest.mark.parametrize("command", COMMANDS, ids=[c.id for c in COMMANDS])
def test_documented_command(
    command: DocCommand,
    tmp_path: Path,
    request: pytest.FixtureRequest,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The documented command, with a tiny budget, exits 0 (in this process, except with
    ``--track``: W&B's TensorBoard sync patches the writer class of the process)."""
    if command.error:
        pytest.fail(f"{command.file}:{command.line}: {command.error}:\n  {command.text}")
    if command.skip:
        pytest.skip(command.skip)
    env = dict(command.env)
    if "--track" in command.argv:
        if importlib.util.find_spec("wandb") is None:
            pytest.skip("--track needs wandb (the track extra), which is not installed")
        wandb_dir = str(tmp_path / "wandb-home")
        env |= {
            "WANDB_MODE": "offline",
            "WANDB_SILENT": "true",
            "WANDB_CONFIG_DIR": wandb_dir,
            "WANDB_CACHE_DIR": wandb_dir,
            "WANDB_DATA_DIR": wandb_dir,
        }
    (tmp_path / "examples").symlink_to(ROOT / "examples")
    argv = _tiny(command, tmp_path)
    argv = _substitute(argv, tmp_path, request)
    shown = shlex.join([*(f"{k}={v}" for k, v in command.env.items()), *argv])
    if "--track" in argv:
        proc = _run(argv, tmp_path, _env(env))
    else:
        proc = _run_here(argv, tmp_path, {"MPLBACKEND": "Agg", **env}, monkeypatch)
    _check(proc, f"{shown}\n(documented: {command.text})")


def test_docs_have_commands() -> None:
    """The parser finds the documented commands (a changed fence would silently find none)."""
    ran = {c.file for c in COMMANDS if not c.skip and not c.error}
    assert ran == set(DOCS)
    assert sum(c.argv[1:2] == ("train",) for c in COMMANDS) >= 10
