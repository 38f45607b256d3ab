"""Files written whole or not at all: a temporary file in the same directory, fsynced, then renamed over the target.

results.json, report.md and every PNG are written this way, so a reader (or a full disk, or a crash) never leaves
half a file under a final name. Plain Python: no torch, no matplotlib.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

FILE_MODE = 0o644  # what a results file would get from the usual umask 022: everyone may read the run


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` so that a reader sees the old file or the new one, never part of it.

    The directory is fsynced after the rename so that the rename itself survives a crash. The mode is set on the open
    file (``fchmod``): reading the umask would mean changing it, process-wide, while other threads (TensorBoard's
    writers) create files. On any failure (a full disk: OSError ENOSPC) the temporary file is removed and the error
    raised; the target is untouched.
    """
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        try:
            os.fchmod(fd, FILE_MODE)  # mkstemp makes it private
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except OSError as e:
        Path(tmp).unlink(missing_ok=True)
        if e.filename is None:  # os.write's error names no file: name the one that was being written
            raise OSError(e.errno, e.strerror, str(path)) from e
        raise
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """``atomic_write_bytes`` of UTF-8 text."""
    atomic_write_bytes(path, text.encode("utf-8"))


def _fsync_dir(directory: Path) -> None:
    try:
        dir_fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return  # some platforms cannot open a directory; the file itself is already on disk
    try:
        os.fsync(dir_fd)
    except OSError:
        pass
    finally:
        os.close(dir_fd)


def write_failure(path: str | os.PathLike, error: OSError) -> str:
    """One line for a file that could not be written: which file, why, and where the figures are."""
    why = error.strerror or str(error.args[0] if error.args else error)
    name = Path(path).name
    where = ("its figures are only in the summary printed at the end" if name == "results.json"
             else "results.json holds every figure")
    return f"could not write {path} ({why}); {where}"
