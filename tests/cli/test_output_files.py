"""Files a command writes or reads that are not plain files: refused up front, never replaced, never hanging.

Output paths (``--output``, ``--plot``, ``--destinations``) are checked before
any input is read or any run starts: the commands here ask for runs that would
take hours (``-n 1e12 --mode per-request``), so a check that came after the
run would time out. Inputs that are FIFOs, devices or sockets are refused or,
inside a ``-f`` folder, skipped with a warning, within about a second.
Device nodes are made by the test in its own directory (``os.mknod``, as root),
never the real ``/dev/null``.
"""

from __future__ import annotations

import io
import os
import signal
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path

import polars as pl
import pytest

from meshstat.cli import main

DATA = Path(__file__).resolve().parents[1] / "data"
DEMO = DATA / "istio-demo"
#: A run that would take hours: only a refusal before the run answers in time.
FOREVER = ["simulate", "--weights", "90,10", "-n", "1e12", "--mode", "per-request", "--seed", "1", "-q"]


@pytest.fixture(autouse=True)
def _bounded() -> object:
    """In-process runs are bounded too: a run that should have been refused is stopped after 30 s."""

    def too_long(signum: int, frame: object) -> None:
        raise TimeoutError("the command ran instead of being refused before the run")

    old = signal.signal(signal.SIGALRM, too_long)
    signal.alarm(30)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


def run(argv: list[str]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    rc = main(argv, stdout=out, stderr=err)
    return rc, out.getvalue(), err.getvalue()


def run_process(argv: list[str], timeout: float = 60) -> tuple[int, str, str, float]:
    """The command in its own process (so that a run that should not start would time out the test)."""
    t0 = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-m", "meshstat", *argv], capture_output=True, text=True, timeout=timeout, check=False
    )
    return proc.returncode, proc.stdout, proc.stderr, time.monotonic() - t0


def _device(path: Path) -> None:
    os.mknod(path, stat.S_IFCHR | 0o600, os.makedev(1, 3))


def _state(path: Path) -> tuple[int, int]:
    st = os.lstat(path)
    return st.st_mode, st.st_ino


def _one_refusal(err: str, *phrases: str) -> None:
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("meshstat: error: "), err
    for p in phrases:
        assert p in lines[0], (p, lines[0])


# --------------------------------------------------------------------------- outputs


@pytest.mark.parametrize("flag", ["--destinations", "--output", "--plot"])
@pytest.mark.parametrize("kind", ["symlink", "device", "fifo", "directory"])
def test_output_that_is_not_a_regular_file_is_refused_before_the_run(tmp_path: Path, flag: str, kind: str) -> None:
    target = tmp_path / ("out.png" if flag == "--plot" else "out")
    victim = tmp_path / "victim.txt"
    victim.write_text("keep")
    {"symlink": lambda: target.symlink_to(victim), "device": lambda: _device(target),
     "fifo": lambda: os.mkfifo(target), "directory": target.mkdir}[kind]()  # fmt: skip
    before = _state(target)
    rc, out, err = run([*FOREVER, flag, str(target)])  # in-process: the check comes before the handler
    assert rc == 2
    _one_refusal(err, f"{flag} {target}: is a")
    assert out == ""
    assert _state(target) == before and victim.read_text() == "keep"
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["out.png" if flag == "--plot" else "out",
                                                                  "victim.txt"])


def test_refusals_come_before_the_run_in_a_real_process(tmp_path: Path) -> None:
    """The same refusals from a separate process, timed: a run of 10**12 requests never starts."""
    (tmp_path / "d").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "nowhere")
    for argv, phrase in [
        ([*FOREVER, "--destinations", str(tmp_path / "d")], f"--destinations {tmp_path / 'd'}: is a directory"),
        ([*FOREVER, "--output", str(tmp_path / "link")], f"--output {tmp_path / 'link'}: is a symbolic link"),
        ([*FOREVER, "--plot", str(tmp_path / "NAME")], "the name has no picture type"),
        ([*FOREVER, "--plot", str(tmp_path / "x.txt")], ".txt is not a picture type"),
        ([*FOREVER, "--format", "parquet"], "--format parquet writes binary data: give --output FILE"),
    ]:
        rc, out, err, took = run_process(argv)
        assert rc == 2, err
        _one_refusal(err, phrase)
        assert took < 20, f"{argv}: {took:.1f} s"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d", "link"]


def test_destinations_into_a_missing_directory_names_it(tmp_path: Path) -> None:
    rc, _, err = run([*FOREVER, "--destinations", str(tmp_path / "no" / "d.parquet")])
    assert rc == 2
    _one_refusal(err, f"directory {tmp_path / 'no'} does not exist")


def test_plot_name_without_or_with_an_unknown_suffix_is_refused(tmp_path: Path) -> None:
    for name, phrase in [("NAME", "no picture type"), ("x.txt", ".txt is not a picture type"), ("x.", "no picture")]:
        rc, _, err = run([*FOREVER, "--plot", str(tmp_path / name)])
        assert rc == 2, err
        _one_refusal(err, f"--plot {tmp_path / name}:", phrase)
    for cmd in (["compare", "--weights", "90,10", "--kube-proxy-endpoints", "2", "-n", "1e12", "--mode", "per-request"],
                ["bands", "--weights", "90,10", "-n", "1000"]):
        rc, _, err = run([*cmd, "--plot", str(tmp_path / "bands")])
        assert rc == 2
        _one_refusal(err, "no picture type")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("name", ["s.svg", "s.PDF", "s.png"])
def test_plot_writes_the_type_its_name_says(tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    rc, _, err = run(["simulate", "--weights", "90,10", "-n", "1e4", "--seed", "1", "-q", "--plot", str(path)])
    assert rc == 0, err
    head = path.read_bytes()[:8]
    assert head.startswith({"svg": b"<?xml", "pdf": b"%PDF", "png": b"\x89PNG"}[name.rsplit(".", 1)[1].lower()])
    assert [p.name for p in tmp_path.iterdir()] == [name]


def test_every_picture_format_is_one_matplotlib_writes(tmp_path: Path) -> None:
    import matplotlib

    from meshstat.plots import PICTURE_FORMATS, pyplot, save_figure

    plt = pyplot()
    fig = plt.figure(figsize=(1, 1))
    supported = fig.canvas.get_supported_filetypes()
    magic = {"png": b"\x89PNG", "pdf": b"%PDF", "svg": b"<?xml", "svgz": b"\x1f\x8b", "eps": b"%!PS", "ps": b"%!PS",
             "jpg": b"\xff\xd8", "jpeg": b"\xff\xd8", "tif": b"II*\x00", "tiff": b"II*\x00", "webp": b"RIFF"}  # fmt: skip
    assert set(PICTURE_FORMATS) == set(magic)
    for fmt in PICTURE_FORMATS:
        assert fmt in supported, (fmt, matplotlib.__version__)
        path = tmp_path / f"f.{fmt}"
        save_figure(fig, path, dpi=20)
        assert path.read_bytes().startswith(magic[fmt]), fmt
    plt.close(fig)


def test_a_planted_partial_symlink_is_not_followed(tmp_path: Path) -> None:
    """``P.partial`` pointing at a victim (the old temporary name): the victim is untouched, P is the Parquet file."""
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    target = tmp_path / "d.parquet"
    (tmp_path / "d.parquet.partial").symlink_to(victim)
    rc, _, err = run(["simulate", "--weights", "90,10", "-n", "1e5", "--seed", "1", "-q", "--destinations", str(target)])
    assert rc == 0, err
    assert victim.read_text() == "precious"
    assert pl.read_parquet(target).height == 100_000
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d.parquet", "d.parquet.partial", "victim.txt"]


def test_destinations_replace_a_regular_file(tmp_path: Path) -> None:
    target = tmp_path / "d.parquet"
    target.write_text("old")
    rc, _, err = run(["simulate", "--weights", "1,1", "-n", "5000", "--seed", "1", "-q", "--destinations", str(target)])
    assert rc == 0, err
    assert pl.read_parquet(target)["backend"].len() == 5000
    assert [p.name for p in tmp_path.iterdir()] == ["d.parquet"]


def test_two_options_naming_one_file_are_refused(tmp_path: Path) -> None:
    same = tmp_path / "x"
    rc, _, err = run([*FOREVER, "--output", str(same), "--destinations", str(same)])
    assert rc == 2
    _one_refusal(err, "--output and --destinations name the same file")


def test_output_of_every_format_goes_through_the_safe_writer(tmp_path: Path) -> None:
    link = tmp_path / "link"
    victim = tmp_path / "victim"
    victim.write_text("keep")
    link.symlink_to(victim)
    for argv in (["check", "--weights", "90,10", "--observed", "900,100", "--format", "json"],
                 ["plan", "--weights", "90,10", "--tolerance", "0.01", "--format", "parquet"],
                 ["cascade", "--kube-proxy-endpoints", "3", "--format", "csv"]):  # fmt: skip
        rc, _, err = run([*argv, "--output", str(link)])
        assert rc == 2
        _one_refusal(err, "is a symbolic link")
        rc, _, err = run([*argv, "--output", str(tmp_path / "real")])
        assert rc == 0, err
        assert (tmp_path / "real").stat().st_size > 0
    assert victim.read_text() == "keep"


# --------------------------------------------------------------------------- inputs


def test_fifo_in_a_manifest_folder_is_skipped_with_a_warning(tmp_path: Path) -> None:
    for p in DEMO.glob("*.yaml"):
        (tmp_path / p.name).write_text(p.read_text())
    os.mkfifo(tmp_path / "zz-fifo.yaml")
    _device(tmp_path / "zz-device.yaml")
    rc, out, err, took = run_process(
        ["mesh", "-f", str(tmp_path), "--client", "istio-demo/front-tomcat-v1", "-n", "1000", "-q"], timeout=60
    )
    assert rc == 0, err
    assert f"{tmp_path / 'zz-fifo.yaml'}: warning: skipped: a FIFO (named pipe), not a regular file" in out
    assert f"{tmp_path / 'zz-device.yaml'}: warning: skipped: a character device, not a regular file" in out
    assert "bill-service" in out


def test_fifo_given_as_an_input_without_a_writer_is_refused(tmp_path: Path) -> None:
    fifo = tmp_path / "dump.nft"
    os.mkfifo(fifo)
    rc, _, err, took = run_process(["services", "--nft", str(fifo)], timeout=60)
    assert rc == 3
    _one_refusal(err, f"{fifo}: is a FIFO (named pipe) that no process opened for writing within 1 s")
    assert took < 20


def test_fifo_with_a_writer_is_read(tmp_path: Path) -> None:
    """A writer that opens the FIFO after the reader (``producer > fifo &``) is waited for."""
    fifo = tmp_path / "m.yaml"
    os.mkfifo(fifo)
    text = (DEMO / "bill-service-svc.yaml").read_text()

    def produce() -> None:
        with open(fifo, "w", encoding="utf-8") as fh:  # blocks until meshstat opens it
            fh.write(text)

    writer = threading.Thread(target=produce, daemon=True)
    writer.start()
    from meshstat.parsers.k8s import load_manifests

    m = load_manifests([str(fifo)])
    writer.join(10)
    assert not writer.is_alive()
    assert any(s.meta.name == "bill-service" for s in m.services)


def test_a_pipe_given_as_dev_fd_is_read_as_standard_input_is(tmp_path: Path) -> None:
    """``--nft <(cat dump)``: the shell passes /dev/fd/N, an anonymous pipe."""
    r, w = os.pipe()
    proc = subprocess.Popen(
        [sys.executable, "-m", "meshstat", "services", "--nft", f"/dev/fd/{r}"],
        pass_fds=(r,), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    os.close(r)
    with os.fdopen(w, "w") as fh:
        fh.write((DATA / "iptables" / "kube-proxy-nftables-overall.nft").read_text())
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert "ns1/svc1" in out


@pytest.mark.parametrize("kind", ["device", "socket"])
def test_device_or_socket_given_as_an_input_is_refused(tmp_path: Path, kind: str) -> None:
    import socket

    path = tmp_path / "in"
    holder = None
    if kind == "device":
        _device(path)
    else:
        holder = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        holder.bind(str(path))
    try:
        rc, _, err = run(["services", "--iptables", str(path)])
    finally:
        if holder is not None:
            holder.close()
    assert rc == 3
    _one_refusal(err, f"{path}: is a {'character device' if kind == 'device' else 'socket'}, not a file meshstat reads")
