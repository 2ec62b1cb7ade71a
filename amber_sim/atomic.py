"""Atomic file writes: write a temp file in the target directory, then rename.

An interrupted or failed write never leaves a half-written output behind. :func:`check_output_dir` and
:func:`check_output_file` refuse an output location that cannot be written before a command does any
work, so a bad ``--out`` costs nothing and leaves nothing behind.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from amber_sim.errors import InputError


def _default_file_mode() -> int:
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    target = Path(path)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp_name, _default_file_mode())  # mkstemp creates 0600; give the usual permissions
        os.replace(tmp_name, target)
    except BaseException:
        try:
            os.unlink(tmp_name)
        except FileNotFoundError:
            pass
        raise
    return target


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"))


# ---------------------------------------------------------------- output locations, checked before any work

def _nearest_existing(path: Path) -> Path:
    """``path`` itself when it exists, else its closest existing ancestor (where it would be created)."""
    for candidate in (path, *path.parents):
        if candidate.exists():
            return candidate
    return Path(".")


def _writable_dir(path: Path) -> bool:
    return os.access(path, os.W_OK | os.X_OK)


def check_output_dir(path: str | os.PathLike, flag: str = "--out") -> Path:
    """Refuse an output directory that cannot be written, before any work; create nothing.

    ``path`` may exist (then it must be a writable directory) or not (then its closest existing ancestor
    must be a writable directory, so that the directory can be created when the results are written).
    """
    target = Path(path)
    if target.exists():
        if not target.is_dir():
            raise InputError(flag, None, f"{str(target)!r} is a file; expected a directory (existing or to be created)")
        if not _writable_dir(target):
            raise InputError(flag, None, f"directory {str(target)!r} is not writable; choose another --out")
        return target
    ancestor = _nearest_existing(target.parent)
    if not ancestor.is_dir():
        raise InputError(flag, None, f"cannot create {str(target)!r}: {str(ancestor)!r} is a file, not a directory")
    if not _writable_dir(ancestor):
        raise InputError(flag, None, f"cannot create {str(target)!r}: directory {str(ancestor)!r} is not writable")
    return target


def check_output_file(path: str | os.PathLike, flag: str = "--out") -> Path:
    """Refuse an output file that cannot be written, before any work: its directory must exist and be
    writable, and the path must not be a directory. Creates nothing."""
    target = Path(path)
    if target.is_dir():
        raise InputError(flag, None, f"{str(target)!r} is a directory; expected a file path such as "
                         f"{str(target / 'trace.json')!r}")
    parent = target.parent
    if not parent.exists():
        raise InputError(flag, None, f"directory {str(parent)!r} does not exist; create it first")
    if not parent.is_dir():
        raise InputError(flag, None, f"{str(parent)!r} is a file, not a directory")
    if not _writable_dir(parent):
        raise InputError(flag, None, f"directory {str(parent)!r} is not writable; choose another --out")
    return target
