"""The data directory and the files we create in it are private to the ledger's user.

They hold personal data (SQLite stores), secrets (master keys, the log signing key, token
digests) and, until a checkpoint, old page versions: directory 0700, files 0600. An existing
directory or file we own is tightened to those modes; one we do not own is left as it is.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

DIR_MODE = 0o700
FILE_MODE = 0o600


def private_dir(path: Path) -> Path:
    """Creates the directory (and missing parents) 0700, or tightens the one that exists."""
    path = Path(path)
    path.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
    _tighten(path, DIR_MODE)
    return path


def private_file(path: Path) -> Path:
    """Creates an empty file 0600 unless it exists (then tightens it); a missing parent 0700.

    SQLite gives its -wal and -shm files the mode of the database file, so creating the
    database file first is what keeps those private too.
    """
    path = Path(path)
    if not path.parent.exists():
        private_dir(path.parent)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
    except FileExistsError:
        _tighten(path, FILE_MODE)
    else:
        os.close(fd)
    for suffix in ("-wal", "-shm", "-journal"):
        companion = path.with_name(path.name + suffix)
        if companion.exists():
            _tighten(companion, FILE_MODE)
    return path


def tighten_file(path: Path) -> Path:
    """An existing secret file we own made 0600 (e.g. a key file written by an older version)."""
    _tighten(Path(path), FILE_MODE)
    return Path(path)


def _tighten(path: Path, mode: int) -> None:
    try:
        info = path.stat()
    except FileNotFoundError:
        return
    if info.st_uid != os.getuid() or stat.S_IMODE(info.st_mode) & ~mode == 0:
        return
    try:
        os.chmod(path, stat.S_IMODE(info.st_mode) & mode)
    except PermissionError:  # pragma: no cover - owned but not changeable (read-only mounts)
        pass
