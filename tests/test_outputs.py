"""meshstat.outputs: the one safe writer (checked targets, exclusive temporary files, regular files only)."""

from __future__ import annotations

import os
import socket
import stat
from pathlib import Path

import pytest

from meshstat import outputs
from meshstat.errors import InvalidArgument
from meshstat.outputs import OutputFile, check_output_path, write_output


def _device(path: Path) -> None:
    """A character device node of our own (the numbers of /dev/null), never the real /dev/null (needs root)."""
    os.mknod(path, stat.S_IFCHR | 0o600, os.makedev(1, 3))


def _socket(path: Path) -> socket.socket:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.bind(str(path))
    return s


def test_new_file_and_regular_file_are_accepted(tmp_path: Path) -> None:
    assert check_output_path(tmp_path / "new.csv") == str(tmp_path / "new.csv")
    (tmp_path / "old.csv").write_text("x")
    assert check_output_path(tmp_path / "old.csv", what="--output") == str(tmp_path / "old.csv")


@pytest.mark.parametrize(
    ("make", "phrase"),
    [
        (lambda p: p.mkdir(), "is a directory"),
        (lambda p: p.symlink_to(p.parent / "target"), "is a symbolic link"),  # dangling
        (lambda p: [(p.parent / "t").write_text("keep"), p.symlink_to(p.parent / "t")], "is a symbolic link"),
        (lambda p: os.mkfifo(p), "is a FIFO (named pipe), not a regular file"),
        (_device, "is a character device, not a regular file"),
    ],
    ids=["directory", "dangling-symlink", "symlink-to-file", "fifo", "device"],
)
def test_targets_that_are_not_regular_files_are_refused(tmp_path: Path, make, phrase: str) -> None:
    target = tmp_path / "out"
    make(target)
    before = os.lstat(target)
    with pytest.raises(InvalidArgument) as exc:
        check_output_path(target, what="--destinations")
    assert str(exc.value).startswith(f"--destinations {target}: ")
    assert phrase in str(exc.value)
    with pytest.raises(InvalidArgument):
        OutputFile(target)
    after = os.lstat(target)
    assert (before.st_mode, before.st_ino) == (after.st_mode, after.st_ino)
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.endswith(".partial")) == []


def test_socket_is_refused(tmp_path: Path) -> None:
    with _socket(tmp_path / "s"), pytest.raises(InvalidArgument, match="is a socket"):
        check_output_path(tmp_path / "s")


@pytest.mark.parametrize(
    ("name", "phrase"),
    [("missing/out.csv", "directory {tmp}/missing does not exist"), ("file/out.csv", "{tmp}/file is not a directory"),
     ("dir/", "names a directory"), ("", "expected a file name")],
)  # fmt: skip
def test_bad_directories_are_refused(tmp_path: Path, name: str, phrase: str) -> None:
    (tmp_path / "file").write_text("x")
    (tmp_path / "dir").mkdir()
    target = f"{tmp_path}/{name}" if name else ""
    with pytest.raises(InvalidArgument, match=phrase.replace("{tmp}", str(tmp_path)).replace(".", r"\.")):
        check_output_path(target)


def test_write_creates_then_replaces_whole(tmp_path: Path) -> None:
    target = tmp_path / "t.txt"
    write_output(target, "one\n")
    assert target.read_text() == "one\n"
    os.chmod(target, 0o640)
    inode = target.stat().st_ino
    write_output(target, b"two\n")
    assert target.read_bytes() == b"two\n"
    assert target.stat().st_ino != inode  # renamed over, not rewritten in place
    assert stat.S_IMODE(target.stat().st_mode) == 0o640  # the permission bits are kept
    assert [p.name for p in tmp_path.iterdir()] == ["t.txt"]


def test_temporary_file_is_beside_the_target_and_removed_on_failure(tmp_path: Path) -> None:
    target = tmp_path / "t.txt"
    target.write_text("old")
    with pytest.raises(KeyboardInterrupt), OutputFile(target) as fh:
        fh.write(b"half")
        temps = [p for p in tmp_path.iterdir() if p.name != "t.txt"]
        assert len(temps) == 1 and temps[0].name.startswith(".t.txt.") and temps[0].name.endswith(".partial")
        raise KeyboardInterrupt
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["t.txt"]


def test_a_planted_temporary_name_is_never_followed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A symbolic link at the first name tried (as if guessed) is skipped: its target is untouched."""
    names = iter(["aaaaaaaaaaaa", "bbbbbbbbbbbb"])
    monkeypatch.setattr(outputs.secrets, "token_hex", lambda n: next(names))
    victim = tmp_path / "victim"
    victim.write_text("precious")
    (tmp_path / ".t.txt.aaaaaaaaaaaa.partial").symlink_to(victim)
    write_output(tmp_path / "t.txt", "new")
    assert victim.read_text() == "precious"
    assert (tmp_path / "t.txt").read_text() == "new"
    assert (tmp_path / ".t.txt.aaaaaaaaaaaa.partial").is_symlink()  # left as it was


@pytest.mark.parametrize("swap", ["symlink", "fifo", "directory"])
def test_target_that_changed_during_the_write_is_not_replaced(tmp_path: Path, swap: str) -> None:
    target = tmp_path / "t.txt"
    sink = OutputFile(target, what="--destinations")
    sink.file.write(b"data")
    if swap == "symlink":
        target.symlink_to(tmp_path / "elsewhere")
    elif swap == "fifo":
        os.mkfifo(target)
    else:
        target.mkdir()
    before = os.lstat(target)
    with pytest.raises(InvalidArgument, match=r"--destinations .*t\.txt: became a .* while meshstat wrote it"):
        sink.commit()
    after = os.lstat(target)
    assert (before.st_mode, before.st_ino) == (after.st_mode, after.st_ino)
    assert [p.name for p in tmp_path.iterdir()] == ["t.txt"]  # the temporary file is gone


def test_temporary_file_is_created_exclusively_without_following_links(tmp_path: Path) -> None:
    flags = outputs._CREATE
    assert flags & os.O_EXCL and flags & os.O_CREAT and flags & os.O_NOFOLLOW
