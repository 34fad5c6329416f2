"""The output of `serkit predict --engine ray`: a folder of Parquet parts that a killed job leaves usable.

    results.parquet/                      --out (any name; pandas, pyarrow, DuckDB and Spark read the folder
      _serkit_run.json                    as one table). What the rows were made with: model, labels,
                                          windows or segments, embeddings. A restart must match it once
                                          there are parts.
      _serkit.lock                        held (flock) by the run writing here
      part-<hash of its ids>.parquet      the rows of complete files
      .part-....parquet.<random>.tmp      a part being written

Why it is built this way:
- A part holds every row of each of its files (the whole-file row and its windows or segments): the model
  stage writes the rows of one batch of files at once. An id is in the output with all its rows or not at all.
- A part appears under its name only when complete (util.atomic: a temp file, fsync, rename), so a job killed
  at any moment leaves whole parts, plus perhaps a hidden temp file that the next run deletes. Readers skip
  names starting with `.` or `_`, so they never see a temp file or the run record.
- Resume: a run with the same --out reads the `id` column of every part and predicts only the other inputs.
- A part's name is a hash of its ids. When Ray runs a batch again (its worker died after the part was
  written, before Ray heard of it), the rerun writes the same name and replaces the part: no second copy.
- One run at a time per folder: the driver holds an exclusive lock on `_serkit.lock` (released by the kernel
  when the driver dies, so a killed run leaves no stale lock). A second run is refused while the first lives.
- Columns are fixed by the run record, so every part has the same schema, even a part of error rows only.
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import json
import os
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path

from ..errors import ConfigError, DataError
from ..util.atomic import atomic_path, write_json
from .output import class_columns

RUN_RECORD = "_serkit_run.json"
LOCK = "_serkit.lock"
PART_PREFIX = "part-"
PART_SUFFIX = ".parquet"


def probability_columns(record: dict) -> list[str]:
    """The class columns of a run's parts, in the model's label order."""
    return _column_groups(record)[1]


def part_schema(record: dict):
    """The pyarrow schema of every part of a run: ids, names and labels as strings, the window or segment
    index as int32 (null on the whole-file row), seconds and probabilities as float64, the embedding as a list
    of float32."""
    import pyarrow as pa

    types = {"id": pa.string(), "path": pa.string(), "window": pa.int32(), "segment": pa.int32(),
             "speaker": pa.string(), "label": pa.string(), "error": pa.string(),
             "embedding": pa.list_(pa.float32())}
    fixed, classes, tail = _column_groups(record)
    return pa.schema([*(pa.field(name, types.get(name, pa.float64())) for name in fixed),
                      *(pa.field(name, pa.float64()) for name in classes),
                      *(pa.field(name, types[name]) for name in tail)])


def _column_groups(record: dict) -> tuple[list[str], list[str], list[str]]:
    if record["segments"] == "windows":
        fixed = ["id", "path", "window", "start", "end", "duration", "label"]
    else:
        fixed = ["id", "path", "segment", "start", "end", "duration", "speech_seconds", "speaker", "label"]
    tail = ["embedding", "error"] if record["embeddings"] else ["error"]
    return fixed, class_columns(record["labels"], [*fixed, *tail]), tail


class OutputFolder:
    """An --out folder of parts. `open` checks it (or makes it), takes the lock, and writes the run record."""

    def __init__(self, path: Path, lock_fd: int):
        self.path = path
        self._lock_fd = lock_fd

    @classmethod
    def open(cls, out: str | os.PathLike, record: dict) -> OutputFolder:
        """ConfigError when `out` is a file, a folder not made by this engine, a folder of rows made with other
        settings (naming the setting), or locked by a running job. record: what the rows are made with
        (ArchiveJob.record), every key of which a restart must match once there are parts."""
        path = Path(out)
        if path.exists() and not path.is_dir():
            raise ConfigError(f"--out {out} is a file; --engine ray writes a folder of Parquet parts there "
                              "(e.g. --out results.parquet, a name that is not taken yet)")
        if not path.parent.is_dir():
            raise ConfigError(f"--out {out}: folder {path.parent} does not exist")
        if path.is_dir() and any(path.iterdir()) and not (path / RUN_RECORD).is_file():
            raise ConfigError(f"--out {out} is a folder that holds files but no {RUN_RECORD}, so it was not "
                              "written by `serkit predict --engine ray`; refusing to write parts among them: "
                              "give a new folder name")
        path.mkdir(exist_ok=True)
        folder = cls(path, _lock(path / LOCK))
        try:
            previous = _read_record(path / RUN_RECORD, keys=list(record))
            if previous is not None and folder.parts():
                _check_same_run(path, previous, record)
            elif previous != record:  # no rows yet (a run that stopped before its first part): nothing to mix
                write_json(path / RUN_RECORD, record)
            for stale in path.glob(f".{PART_PREFIX}*.tmp"):  # parts a killed run was writing
                stale.unlink(missing_ok=True)
        except BaseException:
            folder.close()
            raise
        return folder

    def close(self) -> None:
        if self._lock_fd >= 0:
            os.close(self._lock_fd)  # releases the lock
            self._lock_fd = -1

    def parts(self) -> list[Path]:
        return sorted(self.path.glob(f"{PART_PREFIX}*{PART_SUFFIX}"))

    def written_ids(self) -> tuple[set[str], list[str]]:
        """(ids in the parts, ids found in more than one part). The second is empty unless two jobs wrote
        here at once (a worker of a killed run still writing when the next run started)."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        seen: set[str] = set()
        repeated: list[str] = []
        for part in self.parts():
            try:
                ids = set(pq.read_table(part, columns=["id"]).column("id").to_pylist())
            except (pa.ArrowException, OSError, KeyError) as error:
                raise DataError(f"not a readable part ({error}); delete it and run again to redo its files",
                                part) from None
            repeated.extend(sorted(seen & ids))
            seen |= ids
        return seen, repeated


def write_part(folder: str | os.PathLike, rows: Sequence[dict], record: dict) -> Path:
    """Write `rows` (dicts keyed by the run's part column names; missing keys are null) as one part, atomically, under
    a name made from their ids (see the module docstring). Returns the part's path."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = part_schema(record)
    table = pa.Table.from_pydict({name: [row.get(name) for row in rows] for name in schema.names}, schema=schema)
    part = Path(folder) / f"{PART_PREFIX}{ids_hash(row['id'] for row in rows)}{PART_SUFFIX}"
    with atomic_path(part) as tmp:
        pq.write_table(table, tmp)
    return part


def ids_hash(ids: Iterable[str]) -> str:
    """20 hex digits of SHA-1 over the sorted distinct ids: the same files give the same part name."""
    digest = hashlib.sha1()
    for file_id in sorted(set(ids)):
        digest.update(file_id.encode("utf-8", "surrogateescape") + b"\0")
    return digest.hexdigest()[:20]


def _lock(path: Path) -> int:
    """An exclusive flock on `path` -> its descriptor (-1 where the file system has no locks: then say so)."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as error:
        os.close(fd)
        if error.errno in (errno.EWOULDBLOCK, errno.EACCES):
            raise ConfigError(f"--out {path.parent} is being written by another `serkit predict --engine ray` "
                              "(it holds the folder's lock); wait for it to end, or write to another folder") from None
        if error.errno in (errno.ENOLCK, errno.EOPNOTSUPP):  # some network file systems
            print(f"serkit predict: {path.parent} cannot be locked ({error.strerror}); make sure no other job "
                  "writes there while this one runs", file=sys.stderr)
            return -1
        raise
    return fd


def _read_record(path: Path, keys: list[str]) -> dict | None:
    if not path.exists():
        return None
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise DataError(f"cannot read the run record ({error}); it says what the parts were made with",
                        path) from None
    if not isinstance(record, dict) or any(key not in record for key in keys):
        raise DataError(f"not a run record of `serkit predict --engine ray` (expected the keys {', '.join(keys)})",
                        path)
    return record


def _check_same_run(folder: Path, previous: dict, record: dict) -> None:
    for key, value in record.items():
        if previous[key] != value:
            raise ConfigError(
                f"--out {folder} holds rows made with {key} = {json.dumps(previous[key])}; this run has "
                f"{json.dumps(value)}. Resuming would mix rows of both: run with the same options to "
                "resume, or give another --out")
