"""Atomic writes, the package's one writer: a temp file beside the target, then os.replace, so a crash never
leaves half a file under the real name.

The temp file is fsynced before the rename (the new content is on disk before its name points at it) and ends
with the mode a plain open() gives a new file (0644 under umask 022): the kernel applies the umask when the temp
file is created, and that mode is put back after writers that make their file private (safetensors: 0600).
"""

from __future__ import annotations

import json
import os
import stat
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """`with atomic_path(path) as tmp: writer(tmp)`, for writers that take a file name (safetensors, torch):
    the file appears at `path` all at once when the block ends; if it raises (or the process dies), `path` keeps
    its previous content (a killed process can leave a hidden `.name.*.tmp` beside it, never a half file under
    the real name). `tmp` exists, empty, when the block starts; writers overwrite it."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:12]}.tmp")  # same folder: os.replace is atomic
    os.close(os.open(tmp, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666))  # the kernel applies the umask
    mode = stat.S_IMODE(os.stat(tmp).st_mode)
    try:
        yield tmp
        os.chmod(tmp, mode)
        fd = os.open(tmp, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


@contextmanager
def atomic_file(path: str | Path) -> Iterator[BinaryIO]:
    """`with atomic_file(path) as f: f.write(...)`: atomic_path for writers that take an open binary file."""
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        yield f


def temp_folder(parent: Path, prefix: str) -> Path:
    """A new, empty hidden folder in `parent` (same file system as a target there, so renaming it into place is
    atomic), with the mode mkdir gives (0755 under umask 022; tempfile.mkdtemp would make it private)."""
    while True:
        folder = parent / f"{prefix}{uuid.uuid4().hex[:12]}"
        try:
            folder.mkdir()
            return folder
        except FileExistsError:  # a name drawn twice: draw again
            continue


def write_bytes(path: str | Path, data: bytes) -> None:
    with atomic_file(path) as f:
        f.write(data)


def write_json(path: str | Path, obj) -> None:
    write_bytes(path, (json.dumps(obj, indent=2, ensure_ascii=False) + "\n").encode("utf-8"))


def write_text(path: str | Path, text: str) -> None:
    write_bytes(path, text.encode("utf-8"))
