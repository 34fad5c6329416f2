"""Keep the k best checkpoints of a run by one validation metric; framework-free and resumable.

The tracker only decides; the caller owns the files. Usage (e.g. in a Lightning callback):

    decision = topk.push(score, step, path)      # after saving `path`
    if decision.evicted is not None:
        Path(decision.evicted).unlink(missing_ok=True)

Order: a higher score is better for mode "max" (lower for "min"); on equal scores the **earlier** step is
better, so a later checkpoint has to beat, not just match, the k-th best to get in. A NaN score never gets in.
`evicted` is whichever path has just dropped out of the top-k: the previous k-th best when the new one
displaces it, or the new path itself when it does not make it (so one delete rule serves both cases).
Pushing a path already tracked replaces its entry (the file was overwritten).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

from ..errors import ConfigError

MODES = ("max", "min")


@dataclass(frozen=True)
class Entry:
    """One kept checkpoint: its validation score, the step (or epoch) it was taken at, its file."""

    score: float
    step: int
    path: str


@dataclass(frozen=True)
class Decision:
    """kept: the new checkpoint is in the top-k. evicted: the path to delete now (or None)."""

    kept: bool
    evicted: str | None


class TopK:
    """The k best (score, step, path) so far by `metric` ("val_ua", ...) under `mode` ("max" or "min")."""

    def __init__(self, k: int, metric: str = "val_ua", mode: str = "max"):
        if not isinstance(k, int) or isinstance(k, bool) or k < 1:
            raise ConfigError(f"top_k must be an integer >= 1, got {k!r}")
        if mode not in MODES:
            raise ConfigError(f"top-k mode must be one of {MODES}, got {mode!r}")
        self.k = k
        self.metric = metric
        self.mode = mode
        self._entries: list[Entry] = []  # best first

    @property
    def entries(self) -> list[Entry]:
        """Kept entries, best first."""
        return list(self._entries)

    def paths(self) -> list[str]:
        """Kept paths, best first (the order checkpoint averaging wants)."""
        return [e.path for e in self._entries]

    def best(self) -> Entry | None:
        return self._entries[0] if self._entries else None

    def would_keep(self, score: float, step: int) -> bool:
        """Whether a checkpoint with this score at this step would enter the top-k (to skip saving it)."""
        if math.isnan(score):
            return False
        if len(self._entries) < self.k:
            return True
        return self._rank(score, step) < self._rank(self._entries[-1].score, self._entries[-1].step)

    def push(self, score: float, step: int, path: str) -> Decision:
        """Offer a checkpoint; returns whether it is kept and which path (if any) to delete now."""
        score, step, path = float(score), int(step), str(path)
        self._entries = [e for e in self._entries if e.path != path]
        if not self.would_keep(score, step):
            return Decision(kept=False, evicted=path)
        self._entries.append(Entry(score, step, path))
        self._entries.sort(key=lambda e: self._rank(e.score, e.step))
        evicted = self._entries.pop().path if len(self._entries) > self.k else None
        return Decision(kept=True, evicted=evicted)

    def to_dict(self) -> dict:
        """JSON-safe state, for resuming a run."""
        return {"k": self.k, "metric": self.metric, "mode": self.mode, "entries": [asdict(e) for e in self._entries]}

    @classmethod
    def from_dict(cls, obj: dict) -> "TopK":
        try:
            tracker = cls(obj["k"], obj["metric"], obj["mode"])
            entries = [Entry(float(e["score"]), int(e["step"]), str(e["path"])) for e in obj["entries"]]
        except KeyError as e:
            raise ConfigError(f"top-k state lacks key {e.args[0]!r}; expected k, metric, mode, entries") from None
        tracker._entries = sorted(entries, key=lambda e: tracker._rank(e.score, e.step))[: tracker.k]
        return tracker

    def _rank(self, score: float, step: int) -> tuple[float, int]:
        """Sort key: smaller is better."""
        return (-score if self.mode == "max" else score, step)
