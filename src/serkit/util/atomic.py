"""Atomic writes: a temp file in the same folder, then os.replace, so a crash never leaves half a file.

The temp file is fsynced before the rename (the new content is on disk before its name points at it), and
gets the mode a plain open() would give (0644 under umask 022): mkstemp's private 0600 must not leak into
results other users or the web service read.
"""

from __future__ import annotations

import functools
import json
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO


@functools.cache
def umask() -> int:
    """The process umask (read once; /proc avoids setting it, which would race with other threads)."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def file_mode() -> int:
    """What open(path, "w") gives a new file: 0o666 less the umask."""
    return 0o666 & ~umask()


def dir_mode() -> int:
    """What mkdir gives a new folder: 0o777 less the umask."""
    return 0o777 & ~umask()


@contextmanager
def atomic_file(path: str | Path) -> Iterator[BinaryIO]:
    """`with atomic_file(path) as f: f.write(...)`: the bytes appear at `path` all at once when the block
    ends; if it raises (or the process dies), `path` keeps its previous content and no temp file remains
    (a killed process can leave a hidden `.name.*.tmp` beside it, never a half file under the real name)."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            yield f
            f.flush()
            os.fchmod(f.fileno(), file_mode())
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    with atomic_file(path) as f:
        f.write(data)


def write_json(path: str | Path, obj) -> None:
    atomic_write_bytes(path, (json.dumps(obj, indent=2, ensure_ascii=False) + "\n").encode("utf-8"))


def write_text(path: str | Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))
