"""Check a corpus before training: decode every utterance's audio exactly as training will, and list every
problem at once (file + reason), instead of failing on the first bad file hours into a run.

    serkit data iemocap --root DIR --check [--write-skip bad.txt]     # exit 1 when problems were found

Training runs the same check (`data.check: true`, the default) and refuses a corpus with problems, unless
`data.skip` names a skip list (as written by --write-skip) that covers them: listed files are left out.

Cost: one full decode per utterance. Training caches each result in the run dir (`audio_check.json`), keyed
by (path, start, end) and checked against the file's (size, mtime), so a resumed or repeated run decodes
only what changed; `serkit data --check` always decodes everything. Decoding runs on a few threads
(libsndfile and soxr release the GIL).

Skip list: UTF-8 text, one audio path per line, optionally followed by a TAB and a note (the reason);
`#` starts a comment line; a relative path is taken from the list's own folder.
"""

from __future__ import annotations

import json
import os
import time
from collections import Counter
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path

from ..errors import AudioError, ConfigError, DataError
from ..util.atomic import write_json, write_text
from .audio import load_audio
from .corpora import Prepared
from .corpora.base import FileProblem, reason_of
from .utterance import Utterance

CACHE_NAME = "audio_check.json"
CACHE_VERSION = 1
MAX_LISTED = 20  # problems a training refusal prints (the check command prints all)


@dataclass
class CheckResult:
    """`prepared`: the usable utterances (problem files and listed files left out); `problems`: every audio
    file that is missing, unreadable or undecodable and not in the skip list."""

    prepared: Prepared
    problems: list[FileProblem] = field(default_factory=list)
    decoded: int = 0  # utterances whose audio was decoded (0: decoding was off)
    cached: int = 0  # of those, answered from the cache
    listed: int = 0  # utterances left out because the skip list names their file
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.problems

    def summary(self) -> str:
        files = len({p.path for p in self.problems})
        cached = f", {self.cached} from cache" if self.cached else ""
        listed = f"; {self.listed} left out by the skip list" if self.listed else ""
        return (f"checked {self.decoded} utterances{cached} in {self.seconds:.1f} s{listed}: "
                f"{len(self.problems)} problems in {files} files")

    def report(self, limit: int | None = None) -> str:
        """Every problem (or the first `limit`) as `path: reason` lines, then the summary line."""
        shown = self.problems if limit is None else self.problems[:limit]
        lines = [f"{p.path}: {p.reason}" for p in shown]
        if len(shown) < len(self.problems):
            lines.append(f"... and {len(self.problems) - len(shown)} more")
        return "\n".join([*lines, self.summary()])


def check_files(prepared: Prepared, skip: str | Path | None = None, decode: bool = True,
                cache: str | Path | None = None, workers: int | None = None) -> CheckResult:
    """Leave out the utterances whose files the skip list names, then (decode) load every remaining utterance
    through `load_audio`. `prepared` comes from a corpus read with keep_going (data/prepare.py read_corpus), so
    its unreadable files are among its problems. Never raises for a bad audio file: it is listed."""
    began = time.perf_counter()
    skip_paths = read_skip_list(skip) if skip else set()

    def unlisted(path: str) -> bool:
        return not skip_paths or _key(path) not in skip_paths

    problems = [p for p in prepared.problems if unlisted(p.path)]  # files prepare could not read may be listed too
    utterances = [u for u in prepared.utterances if unlisted(u.path)]
    listed = len(prepared.utterances) - len(utterances) + len(prepared.problems) - len(problems)
    skipped = Counter(prepared.skipped)
    if listed:
        skipped[f"audio listed in data.skip {skip}"] += listed
    decoded = cached = 0
    if decode:
        reasons, cached = decode_all(utterances, cache, workers)
        decoded = len(utterances)
        problems += [FileProblem(u.path, reason) for u, reason in zip(utterances, reasons) if reason is not None]
        utterances = [u for u, reason in zip(utterances, reasons) if reason is None]
    result_prepared = replace(prepared, utterances=utterances, skipped=skipped, problems=problems)
    return CheckResult(result_prepared, problems, decoded, cached, listed, time.perf_counter() - began)


def decode_all(utterances: Sequence[Utterance], cache: str | Path | None = None,
               workers: int | None = None) -> tuple[list[str | None], int]:
    """Decode every utterance (its segment) through load_audio -> (per utterance: None if it decodes, else
    the reason; how many answers came from the cache). `cache`: JSON file of earlier results, rewritten."""
    entries = _read_cache(cache)
    stats = [_stat(u.path) for u in utterances]
    keys = [json.dumps([u.path, u.start, u.end]) for u in utterances]
    todo = [i for i, (key, stat) in enumerate(zip(keys, stats)) if not _still_valid(entries.get(key), stat)]
    with ThreadPoolExecutor(max_workers=workers or min(8, os.cpu_count() or 1)) as pool:
        for i, reason in zip(todo, pool.map(lambda i: _decode_problem(utterances[i]), todo)):
            entries[keys[i]] = {"stat": stats[i], "problem": reason}
    if cache is not None:  # only files that exist: a missing one is checked again next time
        write_json(cache, {"version": CACHE_VERSION,
                           "entries": {key: entries[key] for key, stat in zip(keys, stats) if stat is not None}})
    return [entries[key].get("problem") for key in keys], len(utterances) - len(todo)


def read_skip_list(path: str | Path) -> set[str]:
    """The normalised absolute paths a skip list names."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"data.skip: skip list {path} not found (write one with serkit data --check --write-skip)")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise DataError(f"cannot read skip list ({e})", path) from None
    entries = set()
    for line in text.splitlines():
        entry = line.split("\t", 1)[0].strip()
        if entry and not entry.startswith("#"):
            entries.add(_key(entry if os.path.isabs(entry) else path.parent / entry))
    return entries


def write_skip_list(result: CheckResult, path: str | Path, command: str) -> None:
    """Write the problem files of `result` as a skip list (path TAB reason), atomically; `command`: the check
    that found them, for the header."""
    lines = [f"# audio files that fail `{command}`",
             "# one path per line (TAB, then the reason); give this file as data.skip to train without them"]
    first_reasons = {}
    for problem in result.problems:
        first_reasons.setdefault(problem.path, problem.reason)
    lines += [f"{path}\t{reason}" for path, reason in first_reasons.items()]
    write_text(path, "\n".join(lines) + "\n")


def _decode_problem(utt: Utterance) -> str | None:
    """None if the utterance's segment decodes, else the reason (without the path)."""
    try:
        load_audio(utt.path, utt.start, utt.end)
    except AudioError as e:
        return reason_of(e)
    return None


def _key(path: str | Path) -> str:
    # realpath: a skip list may name a file through another route (a symlinked data folder, ../)
    return os.path.realpath(path)


def _stat(path: str) -> list[int] | None:
    try:
        st = os.stat(path)
    except (OSError, ValueError):
        return None
    return [st.st_size, st.st_mtime_ns]


def _still_valid(entry, stat: list[int] | None) -> bool:
    """A cached answer holds while the file has the same size and modification time."""
    return (stat is not None and isinstance(entry, dict) and entry.get("stat") == stat
            and (entry.get("problem") is None or isinstance(entry.get("problem"), str)))


def _read_cache(cache: str | Path | None) -> dict:
    try:
        obj = json.loads(Path(cache).read_text(encoding="utf-8"))
        return obj["entries"] if obj["version"] == CACHE_VERSION and isinstance(obj["entries"], dict) else {}
    except (OSError, ValueError, TypeError, KeyError):
        return {}  # none yet (or no cache file given); a damaged cache only costs a re-check
