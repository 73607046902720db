"""Reading input files: one reader, one size bound, one decoding rule for every file meshstat reads.

Every command that reads a file (iptables-save and nft dumps, Envoy JSON/YAML,
Kubernetes/Istio manifests, nginx configurations, observed counts) reads it with
:func:`read_text`, so that all of them treat bad input alike:

* ``"-"`` is standard input (named ``<stdin>`` in messages).
* **Size bound.** A file larger than the bound is refused before it is read
  (``os.stat``); standard input, pipes and other files whose size is not known
  in advance are read up to the bound plus one byte, and refused if that byte
  arrives. The bound is :data:`DEFAULT_MAX_INPUT_BYTES` (64 MiB: a kube-proxy
  ``iptables-save`` of 10,000 services is 47 MiB). The command line raises it
  with ``--max-input-size SIZE`` (``256M``, ``1G``, or bytes), which every
  sub-command takes; library users pass ``max_bytes=`` or wrap their calls in
  ``with max_input_size(SIZE): ...``, which sets a context variable. The
  message names the bound and the flag::

      big.txt: input is 100.0 MiB, over the 64 MiB limit (raise it with --max-input-size)

* **Decoding.** UTF-8, strictly. A leading UTF-8 byte order mark is dropped.
  A NUL byte, or bytes that are not UTF-8, raise
  :class:`~meshstat.errors.ConfigParseError` naming the line and column of the
  first bad byte (``expected UTF-8 text, found binary data ...``).
* **Kinds of file.** A regular file or a pipe is read; a directory, a device
  or a socket is refused (:class:`~meshstat.errors.ConfigParseError`) without
  being opened, since opening a device can act on it. Files are opened without
  blocking, so a FIFO (named pipe) with no process writing to it cannot hang
  the reader: a writer that is opening it gets :data:`FIFO_WRITER_WAIT` seconds
  to connect, and then the FIFO is refused (``start the writer first, or pipe it
  to -``). A pipe given as ``/dev/fd/N`` (a shell's ``<(command)``) is read as
  standard input is. Folders are walked by their readers
  (:func:`meshstat.parsers.k8s.load_manifests`) with :func:`is_readable_kind`,
  which skips FIFOs, devices and sockets with a warning.
* **Line ends.** ``\\r\\n`` and a lone ``\\r`` become ``\\n`` (Python's universal
  newlines, as ``open()`` in text mode does), so a file saved with CRLF line
  ends parses exactly as its LF twin, with the same line numbers.
* **Numbers.** A number written in a file or an argument is ASCII digits
  (:func:`ascii_digits`): ``str.isdigit`` also holds for ``²`` and other digits
  that ``int()`` refuses, which would end a read in an internal error.

This module imports only the standard library, :mod:`meshstat.errors` and :mod:`meshstat.outputs`.
"""

from __future__ import annotations

import os
import re
import stat
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import IO

from meshstat.errors import ConfigParseError, InvalidArgument
from meshstat.outputs import file_kind

__all__ = [
    "DEFAULT_MAX_INPUT_BYTES",
    "ascii_digits",
    "current_max_input_size",
    "decode_text",
    "format_size",
    "is_readable_kind",
    "max_input_size",
    "parse_size",
    "read_text",
    "source_name",
]

#: Largest input read unless raised (``--max-input-size``, :func:`max_input_size`).
DEFAULT_MAX_INPUT_BYTES = 64 * 1024 * 1024

#: The command-line flag that raises the bound (named in the refusal).
SIZE_FLAG = "--max-input-size"

#: Seconds a FIFO (named pipe) given as an input waits for a process to open it for writing.
FIFO_WRITER_WAIT = 1.0

_MAX_BYTES: ContextVar[int] = ContextVar("meshstat_max_input_bytes", default=DEFAULT_MAX_INPUT_BYTES)

_BOM = b"\xef\xbb\xbf"
_UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}
_SIZE = re.compile(r"(?i)\s*(\d+(?:\.\d*)?|\.\d+)\s*([KMGT]?)(?:I?B)?\s*")


# --------------------------------------------------------------------------- the bound


def ascii_digits(text: str) -> bool:
    """Whether ``text`` is one or more ASCII digits: a number as kubectl, iptables, nft and Envoy write it,
    which ``int()`` reads (``str.isdigit`` holds for ``²`` too, which ``int()`` refuses)."""
    return text.isascii() and text.isdigit()


def parse_size(text: str) -> int:
    """A size in bytes from ``"256M"``, ``"1G"``, ``"1.5G"``, ``"64MiB"``, ``"4096"``.

    Suffixes ``K``, ``M``, ``G``, ``T`` are powers of 1024 (``KiB``, ``MB`` and the
    like are read the same way).

    Raises
    ------
    InvalidArgument
        For anything else, and for a size below one byte.
    """
    m = _SIZE.fullmatch(str(text))
    if m is None:
        raise InvalidArgument(f"expected a size such as 256M, 1G or a number of bytes, got {text!r}")
    number, unit = m.groups()
    whole, _, frac = number.partition(".")
    scale = _UNITS[unit.upper()]
    value = int(whole or "0") * scale + (int(frac) * scale // 10 ** len(frac) if frac else 0)
    if value < 1:
        raise InvalidArgument(f"expected a size of at least one byte, got {text!r}")
    return value


def format_size(n: int) -> str:
    """``67108864`` -> ``"64 MiB"``, ``104857600`` -> ``"100.0 MiB"``, ``1000`` -> ``"1000 bytes"``."""
    for unit, scale in (("TiB", 1 << 40), ("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= scale:
            return f"{n // scale} {unit}" if n % scale == 0 else f"{n / scale:.1f} {unit}"
    return f"{n} bytes"


def current_max_input_size() -> int:
    """The bound in force here (bytes): the innermost :func:`max_input_size`, else the default."""
    return _MAX_BYTES.get()


@contextmanager
def max_input_size(size: int | str | None) -> Iterator[int]:
    """Raise (or lower) the input size bound inside a ``with`` block.

    Parameters
    ----------
    size : int or str or None
        Bytes, or a size such as ``"256M"`` (:func:`parse_size`); ``None`` keeps
        the bound in force.

    Examples
    --------
    >>> with max_input_size("256M"):
    ...     current_max_input_size()
    268435456
    """
    if size is None:
        yield _MAX_BYTES.get()
        return
    value = parse_size(size) if isinstance(size, str) else int(size)
    if value < 1:
        raise InvalidArgument(f"the input size bound must be at least one byte, got {size!r}")
    token = _MAX_BYTES.set(value)
    try:
        yield value
    finally:
        _MAX_BYTES.reset(token)


# --------------------------------------------------------------------------- reading


def source_name(source: str | os.PathLike[str]) -> str:
    """How messages name a source: ``<stdin>`` for ``"-"``, else the path as given."""
    s = os.fspath(source)
    return "<stdin>" if s == "-" else s


def _too_big(name: str, what: str, size: int | None, limit: int) -> ConfigParseError:
    shown_size, shown_limit = (format_size(size) if size is not None else ""), format_size(limit)
    if shown_size == shown_limit:  # rounded alike ("2.0 KiB, over the 2.0 KiB limit"): exact bytes
        shown_size, shown_limit = f"{size} bytes", f"{limit} bytes"
    got = f" {shown_size}," if size is not None else ""
    return ConfigParseError(
        f"{what} is{got} over the {shown_limit} limit (raise it with {SIZE_FLAG})", source=name
    )


def read_text(
    source: str | os.PathLike[str],
    *,
    what: str = "input",
    max_bytes: int | None = None,
    stdin: IO[str] | None = None,
) -> str:
    """Read a whole input file as text (see the module notes for every rule).

    Parameters
    ----------
    source : str or path
        File name, or ``"-"`` for standard input.
    what : str
        What the file is, for the size message (``"input"``, ``"Envoy configuration"``).
    max_bytes : int, optional
        The size bound; default :func:`current_max_input_size`.
    stdin : text stream, optional
        Standard input (default ``sys.stdin``; its binary buffer is read when it has one).

    Returns
    -------
    str
        The text: BOM dropped, line ends normalised to ``"\\n"``.

    Raises
    ------
    ConfigParseError
        Over the size bound, or not UTF-8 text (``file:line:column``).
    OSError
        The file cannot be opened or read.
    """
    limit = current_max_input_size() if max_bytes is None else int(max_bytes)
    name = source_name(source)
    if name == "<stdin>":
        stream = sys.stdin if stdin is None else stdin
        buffer = getattr(stream, "buffer", None)
        data: bytes | str = (
            _read_bounded(buffer, limit, None) if buffer is not None else stream.read(limit + 1)
        )
        if len(data) > limit:
            raise _too_big(name, what, None, limit)
        return decode_text(data, name)
    path = os.fspath(source)
    _refuse_kind(os.stat(path).st_mode, name)  # a device or socket is refused before it is opened
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOCTTY", 0) | getattr(os, "O_CLOEXEC", 0))
    with os.fdopen(fd, "rb") as fh:
        st = os.fstat(fd)
        _refuse_kind(st.st_mode, name)  # replaced between the stat and the open
        first = _fifo_start(fd, path, name) if stat.S_ISFIFO(st.st_mode) else b""
        os.set_blocking(fd, True)
        known = st.st_size if stat.S_ISREG(st.st_mode) else None
        if known is not None and known > limit:
            raise _too_big(name, what, known, limit)
        data = first + _read_bounded(fh, limit - len(first), known)  # also bounds pipes, /proc files
    if len(data) > limit:
        raise _too_big(name, what, None, limit)
    return decode_text(data, name)


def is_readable_kind(mode: int) -> bool:
    """Whether a file of this ``st_mode`` is one a folder's reader opens: a regular file.

    A FIFO, a device or a socket found in a folder is skipped (with a warning
    by the caller): opening or reading it may block or act on a device.
    """
    return stat.S_ISREG(mode)


def _refuse_kind(mode: int, name: str) -> None:
    if stat.S_ISREG(mode) or stat.S_ISFIFO(mode):
        return
    if stat.S_ISDIR(mode):
        raise IsADirectoryError(21, "Is a directory", name)
    raise ConfigParseError(
        f"is {file_kind(mode)}, not a file meshstat reads (give a file, a pipe, or - for standard input)",
        source=name,
    )


def _fifo_start(fd: int, path: str, name: str) -> bytes:
    """The first bytes of a pipe opened without blocking, once a writer is there (or a refusal).

    A read without blocking returns data, raises :class:`BlockingIOError` when
    a writer is connected but has not written yet, and returns nothing when no
    writer is connected. A named FIFO gives a writer that is opening it (a
    shell's ``> fifo`` waits for a reader) :data:`FIFO_WRITER_WAIT` seconds to
    connect; a pipe inherited through ``/dev/fd/N`` whose writer is gone is an
    empty input.
    """
    named = stat.S_ISFIFO(os.lstat(path).st_mode)
    deadline = time.monotonic() + FIFO_WRITER_WAIT
    while True:
        try:
            first = os.read(fd, 1 << 16)
        except BlockingIOError:
            return b""  # a writer is connected: read as standard input is
        if first or not named:
            return first
        if time.monotonic() >= deadline:
            raise ConfigParseError(
                f"is a FIFO (named pipe) that no process opened for writing within {FIFO_WRITER_WAIT:g} s "
                "(start the writer first, or pipe it to - for standard input)",
                source=name,
            )
        time.sleep(0.01)


def _read_bounded(fh: IO[bytes], limit: int, size_hint: int | None) -> bytes:
    """At most ``limit + 1`` bytes of ``fh``; one read for a regular file of known size."""
    parts: list[bytes] = []
    total = 0
    want = size_hint + 1 if size_hint is not None else 1 << 20
    while total <= limit:
        chunk = fh.read(min(want, limit + 1 - total))
        if not chunk:
            break
        parts.append(chunk)
        total += len(chunk)
        want = 1 << 20
    return b"".join(parts)


def decode_text(data: bytes | str, source: str = "<input>") -> str:
    """Decode bytes read from ``source`` as :func:`read_text` does (UTF-8, no BOM, ``\\n`` line ends).

    A ``str`` is checked the same way (BOM, NUL characters, line ends).

    Raises
    ------
    ConfigParseError
        A NUL byte or bytes that are not UTF-8, at the line and column of the first one.
    """
    if isinstance(data, str):
        text = data[1:] if data.startswith("\ufeff") else data
        nul = text.find("\0")
        if nul >= 0:
            raise _binary(text, nul, source, "a NUL character")
    else:
        raw = data[3:] if data.startswith(_BOM) else data
        nul = raw.find(b"\0")
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            pos = exc.start if nul < 0 else min(nul, exc.start)
            what = "a NUL byte" if pos == nul else f"byte 0x{raw[pos]:02X}, which is not UTF-8"
            raise _binary(raw, pos, source, what) from None
        if nul >= 0:
            raise _binary(raw, nul, source, "a NUL byte")
    if "\r" in text:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    return text


def _binary(buf: bytes | str, pos: int, source: str, what: str) -> ConfigParseError:
    nl: bytes | str = b"\n" if isinstance(buf, bytes) else "\n"
    cr: bytes | str = b"\r" if isinstance(buf, bytes) else "\r"
    head = buf[:pos]
    # line numbers as the parsers count them once line ends are normalised (\r\n, \r, \n)
    line = head.count(nl) + head.count(cr) - head.count(cr + nl) + 1  # type: ignore[arg-type]
    start = max(head.rfind(nl), head.rfind(cr)) + 1  # type: ignore[arg-type]
    return ConfigParseError(
        f"expected UTF-8 text, found binary data ({what})", source=source, line=line, column=pos - start + 1
    )
