"""Input files and output paths checked before use: one-line errors instead of hangs or losses.

- :func:`read_regular` reads a file that must be a regular file of bounded size: a FIFO, a
  device or a directory given as a policy, a config or a bag is refused without blocking (it is
  opened non-blocking and checked with ``fstat`` on the open descriptor, so nothing can swap it
  in between).
- :func:`check_output_file` / :func:`check_output_dir` check a CLI output path **before** the
  work that produces it (an evaluation, an episode), so a finished run is never lost to a
  missing or unwritable directory.

Both raise :class:`FileCheckError` (an ``OSError``) whose message names the path and says why.
"""

from __future__ import annotations

import os
import stat
import tempfile
from pathlib import Path


class FileCheckError(OSError):
    """A path is not what it must be (not a regular file, too large, not writable, ...)."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


def _kind(mode: int) -> str:
    for test, name in ((stat.S_ISFIFO, "a FIFO"), (stat.S_ISCHR, "a character device"),
                       (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"),
                       (stat.S_ISDIR, "a directory")):
        if test(mode):
            return name
    return "not a regular file"


def read_regular(path: str | Path, what: str, max_bytes: int) -> bytes:
    """The bytes of ``path``, which must be a regular file of at most ``max_bytes`` bytes.

    Raises ``FileNotFoundError`` if it does not exist, :class:`FileCheckError` otherwise.
    """
    path = Path(path)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        raise
    except IsADirectoryError:
        raise FileCheckError(f"{path}: {what} is a directory, expected a file") from None
    except OSError as e:
        raise FileCheckError(f"{path}: cannot read {what}: {e.strerror or e}") from e
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise FileCheckError(f"{path}: {what} is {_kind(st.st_mode)}, expected a regular "
                                 f"file; refusing to read it")
        if st.st_size > max_bytes:
            raise FileCheckError(f"{path}: {what} is {st.st_size} bytes, more than the "
                                 f"{max_bytes} this reader accepts")
        with os.fdopen(fd, "rb", closefd=True) as f:
            fd = -1
            data = f.read(max_bytes + 1)
    finally:
        if fd >= 0:
            os.close(fd)
    if len(data) > max_bytes:
        raise FileCheckError(f"{path}: {what} grew beyond {max_bytes} bytes while being read")
    return data


def check_regular(path: str | Path, what: str) -> Path:
    """``path`` if it is a regular file (without opening it); else :class:`FileCheckError`."""
    path = Path(path)
    try:
        st = path.stat()
    except FileNotFoundError:
        raise
    except OSError as e:
        raise FileCheckError(f"{path}: cannot read {what}: {e.strerror or e}") from e
    if not stat.S_ISREG(st.st_mode):
        raise FileCheckError(f"{path}: {what} is {_kind(st.st_mode)}, expected a regular file")
    return path


def _probe(d: Path, what: str, path: Path) -> None:
    """Create and delete a file in ``d``: the one reliable writability test (root, read-only
    mounts, /proc)."""
    try:
        with tempfile.TemporaryFile(dir=d):
            pass
    except OSError as e:
        raise FileCheckError(f"{path}: cannot write {what}: directory {d} is not writable "
                             f"({e.strerror or e})") from e


def check_output_file(path: str | Path, what: str,
                      suffixes: tuple[str, ...] | None = None) -> Path:
    """Check that ``what`` can be written to ``path``: its suffix is one of ``suffixes``, it is
    not a directory or a special file, and its directory exists and is writable or can be
    created (the writer then creates it)."""
    path = Path(path)
    if suffixes is not None and path.suffix.lower() not in suffixes:
        raise FileCheckError(f"{path}: {what} must end in one of {', '.join(suffixes)}")
    if path.is_dir():
        raise FileCheckError(f"{path}: cannot write {what}: it is a directory")
    if path.exists() or path.is_symlink():
        try:
            mode = path.stat().st_mode
        except OSError as e:
            raise FileCheckError(f"{path}: cannot write {what}: {e.strerror or e}") from e
        if not stat.S_ISREG(mode):
            raise FileCheckError(f"{path}: cannot write {what}: it is {_kind(mode)}")
        if not os.access(path, os.W_OK):
            raise FileCheckError(f"{path}: cannot write {what}: the file is not writable")
    check_output_dir(path.parent if str(path.parent) else Path("."), what, for_file=path)
    return path


def check_output_dir(path: str | Path, what: str, *, for_file: Path | None = None) -> Path:
    """Check that the directory ``path`` exists and is writable, or can be created (its nearest
    existing ancestor is a writable directory)."""
    path = Path(path)
    name = for_file or path
    if path.exists():
        if not path.is_dir():
            raise FileCheckError(f"{name}: cannot write {what}: {path} is not a directory")
        _probe(path, what, name)
        return path
    ancestor = path.absolute().parent
    while not ancestor.exists() and ancestor != ancestor.parent:
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise FileCheckError(f"{name}: cannot write {what}: {ancestor} is not a directory")
    _probe(ancestor, what, name)
    return path


def video_suffixes() -> tuple[str, ...]:
    """Animation formats imageio can write here (.mp4 needs the imageio-ffmpeg plugin)."""
    try:
        import imageio_ffmpeg  # noqa: F401
    except ImportError:
        return (".gif",)
    return (".gif", ".mp4")
