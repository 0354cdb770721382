"""Qiskit backends by name: IBM's fake devices offline, IBM Quantum devices online.

A backend name that starts with ``fake_`` is one of Qiskit's fake devices: a snapshot of a
real IBM device's qubits, coupling map, basis gates and calibrated errors, simulated locally
by Aer. Any other name is looked up on IBM Quantum through ``QiskitRuntimeService``, whose
credentials come only from the environment (``QISKIT_IBM_TOKEN``, ``QISKIT_IBM_INSTANCE``,
``QISKIT_IBM_CHANNEL``) or from the account Qiskit saved on this machine. qrl never takes a
credential as an option, at any depth of the options (:func:`check_no_secrets`), and never
writes one (:func:`qrl.presets.check_before_writing`).
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import cache
from typing import Any

from qrl.errors import QrlError, choices_hint, install_hint
from qrl.presets import check_no_credentials

IBM_EXTRA = install_hint("ibm")
BRAKET_EXTRA = install_hint("braket")


def require_qiskit() -> None:
    """Raise a clear error when the IBM extra (Qiskit, Aer, IBM Runtime) is missing."""
    try:
        import qiskit  # noqa: F401
        import qiskit_aer  # noqa: F401
        import qiskit_ibm_runtime  # noqa: F401
    except ImportError as exc:
        raise QrlError(
            f"the qiskit executors need Qiskit, Aer and IBM Runtime ({exc.name} is missing); "
            f"install them with: {IBM_EXTRA}"
        ) from None


@cache
def _fake_backends() -> dict[str, Any]:
    import warnings

    from qiskit_ibm_runtime.fake_provider import FakeProviderForBackendV2

    with warnings.catch_warnings():  # some snapshots warn about deprecated devices
        warnings.simplefilter("ignore")
        return {b.name: b for b in FakeProviderForBackendV2().backends()}


def fake_backend_names() -> list[str]:
    """Names of Qiskit's fake IBM devices, e.g. ``fake_manila`` (5 qubits), ``fake_sherbrooke``
    (127)."""
    require_qiskit()
    return sorted(_fake_backends())


def fake_backend(name: str) -> Any:
    """A fresh fake IBM device by name.

    :raises QrlError: for an unknown name, listing the valid ones
    """
    require_qiskit()
    backends = _fake_backends()
    if name not in backends:
        raise QrlError(f"unknown fake backend {name!r}; {choices_hint(name, backends)}")
    return type(backends[name])()


def is_fake(name: str) -> bool:
    """Whether a backend name names one of Qiskit's fake devices."""
    return name.startswith("fake_")


def check_no_secrets(options: Mapping[str, Any]) -> None:
    """Refuse credentials passed as executor options, at any depth (``device_options:
    {api_key: ...}``): options are saved with the model and the run.

    :raises QrlError: naming the key (never its value) and where credentials come from
    """
    check_no_credentials(options, "executor option")


def _network_error(exc: BaseException) -> BaseException | None:
    """The network failure behind an exception (a name that does not resolve, a refused or
    timed-out connection), following its causes; None if there is none. An HTTP error
    (a response came back, e.g. 401 for a bad token) is not one."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        module = type(current).__module__.split(".")[0]
        network = isinstance(current, OSError) or module in ("requests", "urllib3")
        if network and getattr(current, "response", None) is None:
            return current
        current = current.__cause__ or current.__context__
    return None


def _unreachable(exc: BaseException) -> QrlError | None:
    """The error to report when IBM Quantum could not be reached, or None."""
    network = _network_error(exc)
    if network is None:
        return None
    innermost = network
    while innermost.__cause__ or innermost.__context__:
        innermost = innermost.__cause__ or innermost.__context__  # type: ignore[assignment]
    return QrlError(
        "IBM Quantum is unreachable: the network connection failed "
        f"({type(innermost).__name__}: {' '.join(str(innermost).split())[:160]}); check this "
        "machine's connection to quantum.cloud.ibm.com, or offline use a fake backend such as "
        "fake_manila"
    )


def ibm_service() -> Any:
    """The IBM Quantum service of the environment's or the saved account.

    :raises QrlError: when no credentials are found or the service cannot be reached
    """
    require_qiskit()
    from qiskit_ibm_runtime import QiskitRuntimeService
    from qiskit_ibm_runtime.accounts import AccountNotFoundError

    try:
        return QiskitRuntimeService()
    except AccountNotFoundError:
        raise QrlError(
            "no IBM Quantum credentials: set QISKIT_IBM_TOKEN (and QISKIT_IBM_INSTANCE) in "
            "the environment, or save an account once with "
            "QiskitRuntimeService.save_account(token=..., instance=...); "
            "offline, use a fake backend such as fake_manila"
        ) from None
    except Exception as exc:  # the service raises many kinds (network, auth, ...)
        offline = _unreachable(exc)
        if offline is not None:
            raise offline from None
        raise QrlError(f"could not open IBM Quantum: {type(exc).__name__}: {exc}") from None


def ibm_backend(name: str) -> Any:
    """A device of IBM Quantum by name, e.g. ``ibm_brisbane``.

    :raises QrlError: without credentials, or for a name the account cannot use
    """
    service = ibm_service()
    try:
        return service.backend(name)
    except Exception as exc:
        offline = _unreachable(exc)
        if offline is not None:
            raise offline from None
        try:
            names = [b.name for b in service.backends()]
        except Exception:
            names = []
        hint = choices_hint(name, names) if names else f"{type(exc).__name__}: {exc}"
        raise QrlError(f"unknown IBM Quantum backend {name!r}; {hint}") from None


def resolve_backend(name: str) -> Any:
    """A fake device (``fake_*``, offline) or an IBM Quantum device (needs credentials)."""
    return fake_backend(name) if is_fake(name) else ibm_backend(name)
