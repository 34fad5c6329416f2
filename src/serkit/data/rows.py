"""The one reader of CSV and JSONL tables (manifests, prepared utterance lists, transcripts): rows with their line
numbers, and a DataError naming the file and the line for anything malformed.

    for line, row in read_rows(Path("corpus.csv"), required=("path", "label")):
        ...

CSV: a header row (a spreadsheet's BOM is allowed), then one row per record. JSONL (.jsonl, .ndjson, .json): one
JSON object per line, blank lines skipped.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator, Sequence
from pathlib import Path

from ..errors import DataError

JSONL_SUFFIXES = (".jsonl", ".ndjson", ".json")


def read_rows(path: Path, required: Sequence[str] = (), fmt: str | None = None) -> Iterator[tuple[int, dict]]:
    """(line number, {column: value}) for each record of `path`; `required` columns must be in every record.
    fmt: "csv" or "jsonl" (None: from the suffix; anything but a JSONL suffix is read as CSV)."""
    fmt = fmt or ("jsonl" if path.suffix.lower() in JSONL_SUFFIXES else "csv")
    yield from (_jsonl_rows if fmt == "jsonl" else _csv_rows)(path, tuple(required))


def read_text(path: Path, encoding: str = "utf-8") -> str:
    """A text file's content; DataError naming the line of the first byte that is not `encoding`."""
    try:
        data = path.read_bytes()
    except OSError as e:
        raise DataError(f"cannot read ({e.strerror or e})", path) from None
    try:
        return data.decode(encoding)
    except UnicodeDecodeError as e:
        line = data[: e.start].count(b"\n") + 1
        name = encoding.upper().removesuffix("-SIG")
        raise DataError(f"not {name} text (byte {data[e.start:e.start + 1]!r} at offset {e.start})", path,
                        line) from None


def _csv_rows(path: Path, required: tuple[str, ...]) -> Iterator[tuple[int, dict]]:
    text = read_text(path, encoding="utf-8-sig")  # -sig: spreadsheets often write a BOM
    reader = csv.DictReader(io.StringIO(text, newline=""))
    line = 0  # the last line fully read
    try:
        header = [name.strip() for name in reader.fieldnames or []]
        missing = [c for c in required if c not in header]
        if missing:
            raise DataError(f"missing columns {missing} (header has {header})", path, 1)
        reader.fieldnames = header
        line = reader.line_num
        for row in reader:
            start_line, line = line + 1, reader.line_num
            if None in row:
                fields = len(header) + len(row[None])
                raise DataError(f"{fields} fields, the header has {len(header)}", path, start_line)
            yield start_line, row
    except csv.Error as e:  # e.g. a field beyond csv's size limit, a quote left open
        raise DataError(f"not valid CSV ({e})", path, line + 1) from None


def _jsonl_rows(path: Path, required: tuple[str, ...]) -> Iterator[tuple[int, dict]]:
    # split("\n"), not splitlines(): a JSON string may hold U+2028 and other characters splitlines breaks at
    for line, text in enumerate(read_text(path).split("\n"), 1):
        if not text.strip():
            continue
        try:
            row = json.loads(text)
        except json.JSONDecodeError as e:
            raise DataError(f"not valid JSON ({e.msg})", path, line) from None
        except RecursionError:  # nested beyond the parser
            raise DataError("JSON nested too deeply", path, line) from None
        if not isinstance(row, dict):
            raise DataError("expected a JSON object", path, line)
        missing = [c for c in required if c not in row]
        if missing:
            raise DataError(f"missing columns {missing}", path, line)
        yield line, row
