"""Long runs: a progress bar on a terminal, none with --quiet or in a pipe; Ctrl-C exits 130 cleanly.

The command runs in a subprocess whose standard error is a pseudo-terminal
(with a window size, as a real terminal has), so that the terminal detection
itself is tested. Runs are bounded: each is interrupted within seconds.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import pty
import select
import signal
import struct
import subprocess
import sys
import termios
import time

import pytest

# 10**12 requests would take minutes: every run here is interrupted
LONG = ["simulate", "--weights", "90,10", "-n", "1e12", "--mode", "per-request", "--seed", "1"]
BAR = b"%|"


def _start(argv: list[str]) -> tuple[subprocess.Popen[bytes], int]:
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))
    proc = subprocess.Popen(
        [sys.executable, "-m", "meshstat", *argv],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=slave,
    )
    os.close(slave)
    return proc, master


def _read_until(master: int, proc: subprocess.Popen[bytes], pattern: bytes | None, seconds: float) -> bytes:
    """Read the terminal until ``pattern`` shows up, the process ends, or ``seconds`` pass."""
    buf = b""
    stop = time.monotonic() + seconds
    while time.monotonic() < stop:
        ready, _, _ = select.select([master], [], [], 0.2)
        if ready:
            try:
                chunk = os.read(master, 4096)
            except OSError:  # the other side closed
                break
            if not chunk:
                break
            buf += chunk
            if pattern is not None and pattern in buf:
                break
        elif proc.poll() is not None:
            break
    return buf


def _interrupt(proc: subprocess.Popen[bytes], master: int) -> tuple[int, bytes, float]:
    t0 = time.monotonic()
    proc.send_signal(signal.SIGINT)
    try:
        rc = proc.wait(timeout=20)
    finally:
        if proc.poll() is None:  # pragma: no cover - only when the test fails
            proc.kill()
            proc.wait()
    took = time.monotonic() - t0
    rest = _read_until(master, proc, None, 1.0)
    with contextlib.suppress(OSError):
        os.close(master)
    return rc, rest, took


def test_progress_bar_then_ctrl_c_exits_130() -> None:
    proc, master = _start(LONG)
    seen = _read_until(master, proc, BAR, 60)
    assert BAR in seen, f"no progress bar on the terminal: {seen[-300:]!r}"
    assert b"requests" in seen
    rc, rest, took = _interrupt(proc, master)
    assert rc == 130
    assert took < 10, f"Ctrl-C took {took:.1f} s to stop the run"
    assert b"meshstat: interrupted" in rest
    assert b"Traceback" not in seen + rest
    assert proc.stdout is not None
    with proc.stdout:
        assert proc.stdout.read() == b""  # no half table


def test_quiet_draws_no_bar_and_ctrl_c_exits_130() -> None:
    proc, master = _start([*LONG, "--quiet"])
    seen = _read_until(master, proc, BAR, 4)
    assert proc.poll() is None, "the run ended early"
    rc, rest, _ = _interrupt(proc, master)
    assert proc.stdout is not None
    proc.stdout.close()
    assert BAR not in seen + rest
    assert rc == 130
    assert b"meshstat: interrupted" in rest


def test_no_bar_when_stderr_is_not_a_terminal() -> None:
    argv = ["simulate", "--weights", "90,10", "-n", "3e9", "--seed", "1"]  # a few seconds
    proc = subprocess.run(
        [sys.executable, "-m", "meshstat", *argv], capture_output=True, timeout=120, check=False
    )
    assert proc.returncode == 0, proc.stderr
    assert BAR not in proc.stderr
    assert b"seed 1 | n 3,000,000,000" in proc.stdout


@pytest.mark.parametrize("mode", ["exact", "per-request"])
def test_short_runs_draw_no_bar(mode: str) -> None:
    proc, master = _start(["simulate", "--weights", "90,10", "-n", "1e6", "--mode", mode])
    seen = _read_until(master, proc, None, 60)
    assert proc.wait(timeout=60) == 0
    os.close(master)
    assert proc.stdout is not None
    with proc.stdout:
        assert b"seed" in proc.stdout.read()
    assert BAR not in seen


@pytest.mark.parametrize(
    ("sig", "status", "word"),
    [(signal.SIGINT, 130, b"meshstat: interrupted"), (signal.SIGTERM, 143, b"meshstat: interrupted by SIGTERM"),
     (signal.SIGHUP, 129, b"meshstat: interrupted by SIGHUP")],
    ids=["SIGINT", "SIGTERM", "SIGHUP"],
)
def test_signal_while_streaming_destinations_leaves_no_file(tmp_path, sig, status, word) -> None:  # noqa: ANN001
    """A real signal while destinations stream to Parquet: its exit status, one line, no file left at all.

    The temporary file (``.d.parquet.<random>.partial`` beside the target) is
    watched until it holds data, so that the signal comes mid-stream.
    """
    out = tmp_path / "d.parquet"
    argv = ["simulate", "--weights", "1,1", "-n", "1e11", "--seed", "1", "--destinations", str(out)]
    proc = subprocess.Popen(
        [sys.executable, "-m", "meshstat", *argv], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    try:
        deadline = time.monotonic() + 60
        while not any(p.name.endswith(".partial") and p.stat().st_size > 0 for p in tmp_path.iterdir()):
            assert proc.poll() is None, "the run ended early"
            assert time.monotonic() < deadline, "no destinations were written"
            time.sleep(0.1)
        time.sleep(0.5)
        proc.send_signal(sig)
        rc = proc.wait(timeout=30)
    finally:
        if proc.poll() is None:  # pragma: no cover - only when the test fails
            proc.kill()
            proc.wait()
    assert proc.stderr is not None
    with proc.stderr:
        err = proc.stderr.read()
    assert rc == status, err
    assert err.splitlines() == [word], err  # one line, no traceback
    assert list(tmp_path.iterdir()) == []
