"""A progress bar for long runs, on standard error (the command line's; libraries stay silent).

:func:`meshstat.simulate` takes ``progress=callable(done, total)``;
:class:`ProgressBar` is the command line's callable. It draws nothing until a
run has lasted :attr:`ProgressBar.min_elapsed` seconds and, by its pace so far,
will last more than :attr:`ProgressBar.show_after` seconds in all (about 2 s),
and nothing at all when its stream is not a terminal or when ``--quiet`` was
given, so that pipes and logs stay clean. The bar itself is tqdm's, imported
only when one is drawn (tqdm costs ~60 ms to import; short runs never pay it).
"""

from __future__ import annotations

import time
from typing import IO, Any

__all__ = ["ProgressBar"]


class ProgressBar:
    """``progress(done, total)`` callback that draws a tqdm bar for long runs only.

    Parameters
    ----------
    stream : IO[str]
        Where the bar goes (standard error).
    enabled : bool, optional
        Force the bar on or off; default: on when ``stream`` is a terminal.
    unit : str
        What is counted ("requests").
    show_after : float
        Expected total seconds above which the bar is drawn.
    min_elapsed : float
        Seconds to wait before judging the pace of the run.
    """

    def __init__(
        self,
        stream: IO[str],
        *,
        enabled: bool | None = None,
        unit: str = "requests",
        show_after: float = 2.0,
        min_elapsed: float = 0.5,
    ) -> None:
        if enabled is None:
            isatty = getattr(stream, "isatty", None)
            enabled = bool(isatty and isatty())
        self.stream = stream
        self.enabled = enabled
        self.unit = unit
        self.show_after = show_after
        self.min_elapsed = min_elapsed
        self.started = time.perf_counter()
        self.bar: Any = None

    def __call__(self, done: int, total: int) -> None:
        if not self.enabled:
            return
        if self.bar is None:
            elapsed = time.perf_counter() - self.started
            if done <= 0 or done >= total or elapsed < self.min_elapsed:
                return
            if elapsed * total / done < self.show_after:
                return
            from tqdm import tqdm

            self.bar = tqdm(
                total=total,
                initial=done,
                file=self.stream,
                unit=f" {self.unit}",
                unit_scale=True,
                leave=False,
                dynamic_ncols=True,
                mininterval=0.2,
            )
            return
        self.bar.update(done - self.bar.n)

    def close(self) -> None:
        """Remove the bar (it is not left on the terminal)."""
        if self.bar is not None:
            self.bar.close()
            self.bar = None
