"""Progress as plain lines on stderr (they read as well in a log file as on a terminal): `say`, `duration`,
and `CountLines` for work counted in items (encoding n / N clips, with rate and ETA)."""

from __future__ import annotations

import sys
import time


def say(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def duration(seconds: float) -> str:
    """'4m05s', '1h02m'; '?' for an unknown (NaN / infinite) time."""
    if seconds != seconds or seconds in (float("inf"), float("-inf")):
        return "?"
    seconds = int(round(seconds))
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m" if seconds >= 3600 else f"{seconds // 60}m{seconds % 60:02d}s"


class CountLines:
    """'<what>: n/N, r/s, ETA t<note>' at most every `every` seconds, and once when n reaches N."""

    def __init__(self, what: str, total: int, every: float = 30.0, enabled: bool = True):
        self.what, self.total, self.every, self.enabled = what, total, every, enabled
        self.started = self.last = time.monotonic()

    def update(self, done: int, note: str = "") -> None:
        now = time.monotonic()
        if not self.enabled or (now - self.last < self.every and done < self.total):
            return
        self.last = now
        rate = done / max(now - self.started, 1e-9)
        eta = (self.total - done) / rate if rate > 0 else float("nan")
        say(f"{self.what}: {done}/{self.total}, {rate:.2f}/s, ETA {duration(eta)}{note}")
