"""The other CPUs for a big job: work runs in forked processes, its result comes back pickled.

Three jobs of a cluster's audit use them (``benchmarks/test_bench_audit.py`` times them):

* :func:`in_parts`: the audit's Services are independent once the cluster's indexes exist, so the process
  forks after they are built; each child inherits the whole model (copy on write, nothing is sent to it),
  audits its part and sends back its rows and notes, a few kilobytes.
* :func:`stream`: a big JSON List is read by two processes (``parsers.k8s._read_list_in_parts``): the child
  sends the objects of each piece of its items as it reads them.
* :func:`start` (a stream of one result): the key lines of any other big JSON text are found by a child while
  this process parses the text and makes its tree.

Forking and collecting a child took 10-40 ms on the 2-core machine the benchmarks run on (``python3
benchmarks/scale.py parts 10000 100`` measures it, and the audit alone in one process and in parts).

Forking is used only where it is available and safe: on Linux, with ``os.fork``. ``MESHSTAT_JOBS`` (a whole
number) sets how many processes a job may use; with ``MESHSTAT_JOBS=1`` everything runs in this process. By
default a job uses the CPUs this process may run on (``os.sched_getaffinity``), at most :data:`MAX_JOBS`.

A child only computes: it writes nothing but its result, never runs the parent's exit handlers (it leaves
through ``os._exit``) and never returns into the caller. Its result is checked: work whose child fails, is
killed or sends nothing usable is done again in this process, so the answer never depends on the children,
only the time does. When this process fails or is interrupted while a child runs, the child is killed and
reaped.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import signal
import sys
import warnings
from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

from meshstat.inputs import ascii_digits

__all__ = ["MAX_JOBS", "Pending", "Stream", "in_parts", "jobs", "start", "stream"]

T = TypeVar("T")

#: The most processes a job uses by default (each part's result is pickled back: more parts, more to merge).
MAX_JOBS = 8

#: The pipe a child's results come through holds this many bytes (64 KiB by default; 1 MiB is what an
#: unprivileged process may ask for, ``/proc/sys/fs/pipe-max-size``).
_PIPE_SIZE = 1 << 20


def jobs() -> int:
    """How many processes a big job may use: ``MESHSTAT_JOBS`` when set (1 or more), else the CPUs this
    process may run on (at most :data:`MAX_JOBS`); 1 where forking is not available (not Linux, no
    ``os.fork``)."""
    if sys.platform != "linux" or not hasattr(os, "fork"):
        return 1
    env = os.environ.get("MESHSTAT_JOBS", "").strip()
    if env:
        return max(1, int(env)) if ascii_digits(env) else 1
    try:
        cpus = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cpus = os.cpu_count() or 1
    return max(1, min(cpus, MAX_JOBS))


class Stream(Generic[T]):
    """The results a forked child sends one after another (:func:`stream`), each asked for with a stand-in."""

    def __init__(self, pid: int = 0, fd: int = -1) -> None:
        self._pid = pid  # 0: no child
        self._fd = fd  # the end of the pipe its results come through

    def next(self, here: Callable[[], T]) -> T:
        """The child's next result; ``here()`` when there is no child, or it failed or sent nothing more (from
        then on every result is computed here: the caller's stand-ins compute the same things).
        """
        if self._pid:
            try:
                head = _read_exact(self._fd, 8)
                data = _read_exact(self._fd, int.from_bytes(head, "little")) if len(head) == 8 else b""
            except BaseException:  # an interrupt while waiting: the child is not wanted any more
                self.cancel()
                raise
            if len(head) == 8 and len(data) == int.from_bytes(head, "little"):
                try:
                    return pickle.loads(data)  # type: ignore[no-any-return]
                except Exception:  # a foreign result: this one and the rest are computed here
                    pass
            self.cancel()
        return here()

    def close(self) -> None:
        """Wait for the child to end (after its last result) and reap it."""
        if self._pid:
            self._close()
            with contextlib.suppress(OSError):
                os.waitpid(self._pid, 0)
            self._pid = 0

    def cancel(self) -> None:
        """Kill the child, if any, and reap it (its results are not wanted)."""
        self._close()
        if self._pid:
            with contextlib.suppress(OSError):
                os.kill(self._pid, signal.SIGKILL)
            with contextlib.suppress(OSError):
                os.waitpid(self._pid, 0)
            self._pid = 0

    def _close(self) -> None:
        if self._fd >= 0:
            fd, self._fd = self._fd, -1
            os.close(fd)


def stream(fn: Callable[[], Iterator[T]]) -> Stream[T]:
    """Run the generator ``fn()`` in a forked child (where :func:`jobs` allows more than one process): each
    value it yields is sent as soon as it is made, by a thread of the child, so a big result waits in no pipe
    while the child goes on. :meth:`Stream.next` takes them in order. ``fn`` must compute from what this
    process holds now, yield picklable values, and neither write files nor print.
    """
    if jobs() <= 1:
        return Stream()
    import fcntl  # Unix only: here, where jobs() allows forking

    r, w = os.pipe()
    with contextlib.suppress(OSError, AttributeError):  # a bigger pipe, fewer switches (Linux 2.6.35+)
        fcntl.fcntl(w, fcntl.F_SETPIPE_SZ, _PIPE_SIZE)
    try:
        # Python 3.12+ warns of fork in a threaded process: the child only computes
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            pid = os.fork()
    except OSError:  # the system refuses (no memory for the page tables, a process limit): done here
        os.close(r)
        os.close(w)
        return Stream()
    if pid:
        os.close(w)
        return Stream(pid, r)
    # the child: compute, send, leave without returning into the caller or running exit handlers
    code = 1
    try:
        import queue
        import threading

        os.close(r)
        out: queue.SimpleQueue[bytes | None] = queue.SimpleQueue()
        failed: list[BaseException] = []

        def send() -> None:
            try:
                while (data := out.get()) is not None:
                    view = memoryview(len(data).to_bytes(8, "little") + data)
                    while view:
                        view = view[os.write(w, view):]
            except BaseException as exc:  # the parent is gone: nothing more to send
                failed.append(exc)

        sender = threading.Thread(target=send, daemon=True)
        sender.start()
        try:
            for value in fn():
                out.put(pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL))
        finally:
            out.put(None)
            sender.join()
        code = 1 if failed else 0
    except BaseException:  # anything: the parent computes the rest itself
        pass
    finally:
        os._exit(code)


class Pending(Generic[T]):
    """``fn()`` computed by a forked child (or, where there is none, by :meth:`result` here): a
    :class:`Stream` of one result."""

    def __init__(self, fn: Callable[[], T], child: Stream[T]) -> None:
        self._fn = fn
        self._child = child

    def result(self) -> T:
        """The child's result, or ``fn()`` computed here when there is no child or it failed."""
        got = self._child.next(self._fn)
        self._child.close()
        return got

    def cancel(self) -> None:
        """Kill the child, if any, and reap it (its result is not wanted)."""
        self._child.cancel()


def start(fn: Callable[[], T]) -> Pending[T]:
    """Start ``fn()`` in a forked child where :func:`jobs` allows more than one process (else it runs when
    the result is asked for), under :func:`stream`'s rules."""
    def one() -> Iterator[T]:
        yield fn()

    return Pending(fn, stream(one))


def in_parts(work: Callable[[int, int], T], parts: int) -> list[T]:
    """``[work(0, parts), ..., work(parts - 1, parts)]``: part 0 here, the others in forked children.

    ``work(i, n)`` computes part ``i`` of ``n`` from what this process holds when it is called
    (:func:`start`'s rules). A part whose child fails is computed again here, so the result is always what a
    serial run gives.
    """
    if parts <= 1:
        return [work(0, 1)]
    pending: list[Pending[T]] = []
    try:
        for i in range(1, parts):
            pending.append(start(lambda i=i: work(i, parts)))  # type: ignore[misc]
        first = work(0, parts)
        return [first, *(p.result() for p in pending)]
    finally:
        for p in pending:  # after an error or an interrupt: stop the others (a no-op for those collected)
            p.cancel()


def _read_exact(fd: int, n: int) -> bytes:
    """``n`` bytes from ``fd``, or fewer where it ends first."""
    chunks = []
    while n > 0 and (chunk := os.read(fd, min(n, 1 << 20))):
        chunks.append(chunk)
        n -= len(chunk)
    return b"".join(chunks)
