"""A long-lived process that runs meshstat's command line on request, under a memory limit.

Started by :mod:`tests.cli.test_bounds` as ``python bounds_worker.py LIMIT_BYTES``.
It sets ``RLIMIT_AS`` to ``LIMIT_BYTES`` for itself, moves the request pipe off
standard input (standard input becomes ``/dev/null``, so no command can wait on
it), then reads one JSON list of arguments per line and answers one JSON object
per line: ``rc``, ``stdout`` and ``stderr`` (each cut to 4,000 characters),
``seconds`` (wall clock) and ``maxrss`` (the process's peak resident memory so
far, in bytes). Each command runs in this process through
:func:`meshstat.cli.main`, so that heavy imports and numba's compiled kernels
are paid once; a command that exhausts the memory limit gets a ``MemoryError``
(which :func:`main` reports as an internal error) or kills the process, and the
test starts a fresh one.
"""

from __future__ import annotations

import io
import json
import os
import resource
import sys
import time


def main() -> None:
    limit = int(sys.argv[1])
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    requests = os.fdopen(os.dup(0), "r", encoding="utf-8")
    answers = os.fdopen(os.dup(1), "w", encoding="utf-8")
    null = os.open(os.devnull, os.O_RDWR)
    os.dup2(null, 0)
    os.dup2(null, 1)  # a command that writes to the real stdout does not corrupt the answers
    sys.stdin = open(os.devnull, encoding="utf-8")  # noqa: SIM115
    from meshstat.cli import main as cli_main

    for line in requests:
        argv = json.loads(line)
        out, err = io.StringIO(), io.StringIO()
        t0 = time.perf_counter()
        try:
            rc = cli_main(argv, stdout=out, stderr=err)
        except BaseException as exc:
            rc = -1
            err.write(f"escaped main: {type(exc).__name__}: {exc}\n")
        took = time.perf_counter() - t0
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        answers.write(json.dumps({
            "rc": int(rc), "stdout": out.getvalue()[-4000:], "stderr": err.getvalue()[-4000:],
            "seconds": took, "maxrss": rss,
        }) + "\n")
        answers.flush()


if __name__ == "__main__":
    main()
