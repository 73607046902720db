"""The one jit policy of meshstat (numba-stats style): defined once, used by every kernel.

``cache=True`` so the command line loads compiled kernels from ``__pycache__``
instead of compiling them (seconds) on every run; no fastmath; ``nogil`` so
callers may run kernels from threads. A test fails on any ``numba.njit`` use
outside this module.
"""

from __future__ import annotations

import functools

import numba

__all__ = ["jit", "pjit"]

jit = functools.partial(numba.njit, cache=True, nogil=True, error_model="numpy")
pjit = functools.partial(numba.njit, cache=True, nogil=True, error_model="numpy", parallel=True)
