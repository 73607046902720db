"""Writing output files: one safe way for every file meshstat writes.

Every file meshstat writes (``--output`` tables, ``--plot`` pictures, streamed
``--destinations``) goes through :class:`OutputFile`, so that all of them obey
the same rules:

* **Checked before the work.** :func:`check_output_path` refuses, in one line
  naming the path and the reason (:class:`~meshstat.errors.InvalidArgument`,
  exit status 2), a target that is a directory, a symbolic link, a device, a
  FIFO or a socket, or whose directory does not exist or is not writable. The
  command line checks every output path before it reads an input or starts a
  run; the library functions check theirs before they start writing.
* **Only regular files are replaced.** What is written goes to a temporary
  file in the target's directory, created exclusively
  (``O_CREAT | O_EXCL | O_NOFOLLOW``, a random name, so a planted file or
  symbolic link of that name is never followed or reused), and is renamed over
  the target when the whole write succeeded, and only if the target is still a
  regular file or absent at that moment. Readers of the target see the old
  file or the new one, never a half-written one. A target that existed keeps
  its permission bits.
* **Nothing is left behind.** A failed or interrupted write (an exception,
  Ctrl-C, and SIGTERM or SIGHUP, which the command line raises as
  :class:`~meshstat.errors.Terminated`) removes the temporary file.

A symbolic link as the target is refused rather than followed or replaced:
following it writes wherever it points, replacing it turns it into a file; the
user names the file meant. Directories on the way to the target may be links.

This module imports only the standard library and :mod:`meshstat.errors`.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import stat
from types import TracebackType
from typing import IO

from meshstat.errors import InvalidArgument

__all__ = ["OutputFile", "check_output_path", "file_kind", "remove_file", "write_output"]

#: Flags of the temporary file: a new file, never an existing one, never through a symbolic link.
_CREATE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)


def file_kind(mode: int) -> str:
    """What a file is, from its ``st_mode``: ``"a regular file"``, ``"a directory"``, ``"a FIFO"``, ..."""
    for test, name in (
        (stat.S_ISREG, "a regular file"),
        (stat.S_ISDIR, "a directory"),
        (stat.S_ISLNK, "a symbolic link"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISFIFO, "a FIFO (named pipe)"),
        (stat.S_ISSOCK, "a socket"),
    ):
        if test(mode):
            return name
    return "not a regular file"  # pragma: no cover - every Linux file type is named above


def check_output_path(path: str | os.PathLike[str], *, what: str = "--output") -> str:
    """Refuse an output path that cannot be written safely; return it as a string.

    Parameters
    ----------
    path : str or path
        The file to write (it may not exist yet).
    what : str
        How messages name it: the flag (``"--destinations"``) or a word.

    Raises
    ------
    InvalidArgument
        ``--destinations out: is a directory (meshstat writes a regular file: name a file in it)``,
        and the like for a symbolic link, a device, a FIFO, a socket, a missing
        or unwritable directory.
    """
    p = os.fspath(path)
    if not isinstance(p, str) or not p:
        raise InvalidArgument(f"{what}: expected a file name, got {p!r}")

    def refuse(why: str) -> InvalidArgument:
        return InvalidArgument(f"{what} {p}: {why}")

    if p.endswith(os.sep):
        raise refuse("names a directory (meshstat writes a regular file: name a file)")
    try:
        st = os.lstat(p)
    except FileNotFoundError:
        st = None
    except NotADirectoryError:
        raise refuse(f"{_parent(p)} is not a directory") from None
    except OSError as exc:
        raise refuse(f"cannot be checked ({exc.strerror or exc})") from None
    if st is not None and not stat.S_ISREG(st.st_mode):
        kind = file_kind(st.st_mode)
        if stat.S_ISDIR(st.st_mode):
            raise refuse(f"is {kind} (meshstat writes a regular file: name a file in it)")
        if stat.S_ISLNK(st.st_mode):
            raise refuse(f"is {kind} (meshstat replaces only regular files: name the file it points to)")
        raise refuse(f"is {kind}, not a regular file (meshstat writes and replaces only regular files)")
    parent = _parent(p)
    try:
        pst = os.stat(parent)
    except FileNotFoundError:
        raise refuse(f"directory {parent} does not exist") from None
    except NotADirectoryError:
        raise refuse(f"{parent} is not a directory") from None
    except OSError as exc:
        raise refuse(f"directory {parent} cannot be checked ({exc.strerror or exc})") from None
    if not stat.S_ISDIR(pst.st_mode):
        raise refuse(f"{parent} is not a directory")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise refuse(f"directory {parent} is not writable")
    return p


def _parent(path: str) -> str:
    return os.path.dirname(path) or os.curdir


class OutputFile:
    """A temporary file beside ``target``, renamed over it by :meth:`commit`.

    Used as a context manager, it commits when the block ends normally and
    discards the temporary file when it raises (any exception, Ctrl-C and
    :class:`~meshstat.errors.Terminated` included)::

        with OutputFile("out.parquet", what="--output") as fh:
            fh.write(data)

    Parameters
    ----------
    target : str or path
        The file to create or replace (checked with :func:`check_output_path`).
    what : str
        How messages name it.

    Attributes
    ----------
    file : binary file object
        The temporary file, open for writing.
    temp_path : str
        Its name (``.TARGET.<random>.partial`` in the target's directory).
    """

    def __init__(self, target: str | os.PathLike[str], *, what: str = "--output") -> None:
        self.target = check_output_path(target, what=what)
        self.what = what
        head, base = os.path.split(self.target)
        for _ in range(16):
            name = os.path.join(head, f".{base[:200]}.{secrets.token_hex(6)}.partial")
            try:
                fd = os.open(name, _CREATE, 0o666)
            except FileExistsError:
                continue
            break
        else:  # pragma: no cover - 16 collisions of 48 random bits
            raise InvalidArgument(f"{what} {self.target}: cannot create a temporary file beside it")
        self.temp_path = name
        self.file: IO[bytes] = os.fdopen(fd, "wb")
        self._done = False

    def __enter__(self) -> IO[bytes]:
        return self.file

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if exc_type is None:
            self.commit()
        else:
            self.discard()

    def commit(self) -> None:
        """Flush the data to disk and rename the temporary file over the target.

        Raises
        ------
        InvalidArgument
            The target became something other than a regular file meanwhile:
            nothing is replaced and the temporary file is removed.
        """
        if self._done:
            return
        try:
            self.file.flush()
            os.fsync(self.file.fileno())
            try:
                st = os.lstat(self.target)
            except FileNotFoundError:
                st = None
            if st is not None:
                if not stat.S_ISREG(st.st_mode):
                    raise InvalidArgument(
                        f"{self.what} {self.target}: became {file_kind(st.st_mode)} while meshstat wrote it; "
                        "nothing was replaced"
                    )
                os.fchmod(self.file.fileno(), stat.S_IMODE(st.st_mode) & 0o777)
            self.file.close()
            os.replace(self.temp_path, self.target)
            self._done = True
        except BaseException:
            self.discard()
            raise

    def discard(self) -> None:
        """Close and remove the temporary file (the target is left as it was)."""
        if self._done:
            return
        self._done = True
        with contextlib.suppress(OSError):
            self.file.close()
        remove_file(self.temp_path)


def write_output(target: str | os.PathLike[str], data: str | bytes, *, what: str = "--output") -> None:
    """Write ``data`` (text is UTF-8) to ``target`` through an :class:`OutputFile`."""
    with OutputFile(target, what=what) as fh:
        fh.write(data.encode("utf-8") if isinstance(data, str) else data)


def remove_file(path: str) -> None:
    """Remove ``path`` if it exists, even when a second Ctrl-C (or SIGTERM) arrives meanwhile."""
    for _ in range(5):
        try:
            os.remove(path)
        except FileNotFoundError:
            return
        except KeyboardInterrupt:
            continue
        except OSError:
            return
        return
