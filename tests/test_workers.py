"""meshstat.workers: parts in forked children give what a serial run gives, whatever happens to the children."""

from __future__ import annotations

import os
import signal

import pytest

from meshstat import workers


def _reaped(pid: int) -> bool:
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        return True
    return False


def test_parts_come_back_in_order_from_children(forks) -> None:
    parent = os.getpid()
    got = workers.in_parts(lambda i, n: (i, n, os.getpid() != parent, list(range(i * 100_000))), 3)
    assert [g[:3] for g in got] == [(0, 3, False), (1, 3, True), (2, 3, True)]
    assert [len(g[3]) for g in got] == [0, 100_000, 200_000]  # more than a pipe holds at once
    assert len(forks) == 2 and all(_reaped(p) for p in forks)


def test_a_failed_child_is_redone_here(forks) -> None:
    parent = os.getpid()

    def work(i: int, n: int) -> int:
        if os.getpid() != parent:
            if i == 1:
                raise RuntimeError("child only")
            os.kill(os.getpid(), signal.SIGKILL)  # part 2: killed before it sends anything
        return i * 10

    assert workers.in_parts(work, 3) == [0, 10, 20]
    assert len(forks) == 2 and all(_reaped(p) for p in forks)


def test_an_error_here_stops_and_reaps_the_children(forks) -> None:
    parent = os.getpid()

    def work(i: int, n: int) -> int:
        if os.getpid() == parent:
            raise ValueError("part 0")
        signal.pause()  # a child that would never finish
        return i

    with pytest.raises(ValueError, match="part 0"):
        workers.in_parts(work, 3)
    assert len(forks) == 2 and all(_reaped(p) for p in forks)


def test_one_job_forks_nothing(forks, monkeypatch) -> None:
    monkeypatch.setenv("MESHSTAT_JOBS", "1")
    assert workers.in_parts(lambda i, n: (i, n, os.getpid()), 3) == [(i, 3, os.getpid()) for i in range(3)]
    assert workers.start(lambda: 7).result() == 7
    assert forks == []


def test_a_refused_fork_computes_here(monkeypatch) -> None:
    monkeypatch.setenv("MESHSTAT_JOBS", "2")

    def refuse() -> int:
        raise OSError("EAGAIN")

    monkeypatch.setattr(os, "fork", refuse)
    assert workers.start(lambda: os.getpid()).result() == os.getpid()


def test_a_cancelled_start_is_computed_when_asked(forks) -> None:
    pending = workers.start(lambda: 5)
    pending.cancel()
    assert pending.result() == 5 and _reaped(forks[0])


@pytest.mark.parametrize(("env", "want"), [("3", 3), ("1", 1), ("0", 1), ("two", 1), ("", None)])
def test_jobs_reads_meshstat_jobs(monkeypatch, env, want) -> None:
    monkeypatch.setenv("MESHSTAT_JOBS", env)
    got = workers.jobs()
    if want is None:  # unset: the CPUs this process may run on, at most MAX_JOBS
        assert got == max(1, min(len(os.sched_getaffinity(0)), workers.MAX_JOBS))
    else:
        assert got == want


def test_a_stream_sends_each_result_as_it_is_made(forks) -> None:
    """The child's results come in order, a big one included, while the child goes on: the child below sends
    20 MB and then waits for a file the parent writes only after it has read that result."""
    import tempfile

    parent = os.getpid()
    flag = tempfile.mktemp()

    def gen():
        yield os.getpid() != parent
        yield b"x" * (20 << 20)  # far more than a pipe holds: sent by the child's thread
        for _ in range(2000):  # the parent reads the big result before it lets the child go on
            if os.path.exists(flag):
                break
            __import__("time").sleep(0.005)
        yield os.path.exists(flag)

    s = workers.stream(gen)
    try:
        assert s.next(lambda: "here") is True
        assert len(s.next(lambda: b"")) == 20 << 20
        open(flag, "w").close()
        assert s.next(lambda: "here") is True
        assert s.next(lambda: "the end: computed here") == "the end: computed here"
    finally:
        s.close()
        if os.path.exists(flag):
            os.unlink(flag)
    assert len(forks) == 1 and all(_reaped(p) for p in forks)


def test_a_stream_whose_child_fails_is_computed_here(forks, monkeypatch) -> None:
    """A child that raises sends what it made before; one that is killed, nothing more: the results it did not
    send, and every later one, are the stand-ins'."""
    parent = os.getpid()

    def raises():
        yield 1
        if os.getpid() != parent:
            raise RuntimeError("child only")
        yield 2

    def killed():
        if os.getpid() != parent:
            os.kill(os.getpid(), signal.SIGKILL)
        yield 1

    s = workers.stream(raises)
    assert [s.next(lambda: "h1"), s.next(lambda: "h2"), s.next(lambda: "h3")] == [1, "h2", "h3"]
    s.close()
    s = workers.stream(killed)
    assert [s.next(lambda: "h1"), s.next(lambda: "h2")] == ["h1", "h2"]
    monkeypatch.setenv("MESHSTAT_JOBS", "1")
    s = workers.stream(raises)  # no child: every result is the stand-in's
    assert [s.next(lambda: "a"), s.next(lambda: "b")] == ["a", "b"]
    assert len(forks) == 2 and all(_reaped(p) for p in forks)


def test_a_cancelled_stream_kills_its_child(forks) -> None:
    def gen():
        yield 1
        __import__("time").sleep(60)
        yield 2

    s = workers.stream(gen)
    assert s.next(lambda: 0) == 1
    s.cancel()
    assert s.next(lambda: "here") == "here"
    assert len(forks) == 1 and all(_reaped(p) for p in forks)
