"""Inference slots: at most `max_concurrent` inferences run (each in a worker thread, off the event loop,
so /health and uploads keep being answered), at most `max_waiting` more queue for a slot, the rest get 503.

Both bounds keep memory flat under a burst: a running inference holds its decoded audio, a waiting one
holds its upload bytes; nothing else grows with the number of clients.
"""

from __future__ import annotations

from typing import Callable, TypeVar

import anyio
import anyio.to_thread
from starlette.exceptions import HTTPException

T = TypeVar("T")


class InferenceSlots:
    def __init__(self, max_concurrent: int, max_waiting: int) -> None:
        self.limiter = anyio.CapacityLimiter(max_concurrent)
        self.capacity = max_concurrent + max_waiting
        self.admitted = 0  # running + waiting; only touched on the event loop's thread, so no lock

    @property
    def running(self) -> int:
        return int(self.limiter.borrowed_tokens)

    @property
    def waiting(self) -> int:
        return self.admitted - self.running

    async def run(self, function: Callable[..., T], *args) -> T:
        """`function(*args)` in a worker thread once a slot is free; HTTPException 503 if the queue is full."""
        if self.admitted >= self.capacity:
            raise HTTPException(
                503, f"server busy: {self.running} inferences running and {self.waiting} waiting; retry shortly",
                headers={"Retry-After": "1"},
            )
        self.admitted += 1
        try:
            # Not abandoned on cancel: a client that hangs up still holds its slot until the thread ends,
            # so the bound on running inferences is real.
            return await anyio.to_thread.run_sync(function, *args, limiter=self.limiter)
        finally:
            self.admitted -= 1
