"""Admission and inference slots: what bounds the service's memory and threads under any number of clients.

Admission (`admit`, at the door, before a byte of the body is read): at most `max_concurrent + max_waiting`
requests are inside at once (uploading, waiting for a slot, or running); the rest get 503 with Retry-After
without their upload being read. An admitted upload is spooled by Starlette (1 MiB in memory, the rest in
a temporary file), so a waiting request holds about 1 MiB.

Inference (`run`): at most `max_concurrent` inferences run, off the event loop, so /health and uploads keep
being answered; only a running inference reads its upload into memory. They run on a pool of as many
daemon threads that live as long as the app: a thread keeps its malloc arena, so freed upload and window
buffers are reused, and an inference that never returns cannot keep the process from exiting (a
ThreadPoolExecutor's threads are joined at exit). With a fresh thread per inference glibc spread them over
many arenas, each keeping what was freed in it: 64 large uploads at once left +370 MiB resident, +72 to +83
with the pool (test_serve_burst).

Timeouts: a request whose inference takes longer than `timeout_seconds` gets 504. A Python thread cannot be
killed, so the inference is asked to stop: the `cancel` event passed to it is set, and the recognizer raises
concurrent.futures.CancelledError before its next batch (on CPU a batch is one 10 s window). Until its
thread has really ended, a timed-out inference keeps its slot and its admission ticket: `running` counts it,
another inference does not start in its place, and the bounds above hold. Its result, if any, is dropped.

All counters are touched only on the event loop's thread (thread completions are handed back to it), so
they need no lock. The service runs on asyncio (uvicorn, and Starlette's TestClient by default).
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
from collections.abc import Callable
from concurrent.futures import CancelledError
from typing import TypeVar

from starlette.exceptions import HTTPException

T = TypeVar("T")
log = logging.getLogger("serkit.serve")


class Ticket:
    """One admitted request. Held by the request and, while it runs, by its inference thread; handed back
    (the request leaves the count) when both have let go."""

    def __init__(self, slots: InferenceSlots) -> None:
        self.slots, self.holders = slots, 1

    def hold(self) -> None:
        self.holders += 1

    def release(self) -> None:
        self.holders -= 1
        if self.holders == 0:
            self.slots.admitted -= 1


class DaemonThreads:
    """`size` daemon threads running submitted calls in order; each call's outcome goes to an asyncio future."""

    def __init__(self, size: int) -> None:
        self._calls: queue.SimpleQueue = queue.SimpleQueue()
        for index in range(size):
            threading.Thread(target=self._work, name=f"serkit-inference-{index}", daemon=True).start()

    def submit(self, function: Callable[..., T], *args) -> asyncio.Future:
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        self._calls.put((loop, future, function, args))
        return future

    def _work(self) -> None:
        while True:
            loop, future, function, args = self._calls.get()
            try:
                outcome = (function(*args), None)
            except BaseException as error:  # handed to the waiting request, as an executor would
                outcome = (None, error)
            loop.call_soon_threadsafe(_settle, future, *outcome)


def _settle(future: asyncio.Future, result, error: BaseException | None) -> None:
    if not future.cancelled():
        future.set_result(result) if error is None else future.set_exception(error)


class InferenceSlots:
    def __init__(self, max_concurrent: int, max_waiting: int) -> None:
        self.max_concurrent = max_concurrent
        self.capacity = max_concurrent + max_waiting
        self.admitted = 0  # tickets out
        self.running = 0   # inference threads alive, timed-out ones still stopping included
        self._free = asyncio.Semaphore(max_concurrent)
        self._threads = DaemonThreads(max_concurrent)

    @property
    def waiting(self) -> int:
        """Admitted requests not running an inference (still uploading, or queued for a slot)."""
        return max(self.admitted - self.running, 0)

    def admit(self) -> Ticket | None:
        """A ticket, or None when `max_concurrent + max_waiting` requests are already inside."""
        if self.admitted >= self.capacity:
            return None
        self.admitted += 1
        return Ticket(self)

    def busy_message(self) -> str:
        return f"server busy: {self.running} inferences running and {self.waiting} waiting; retry shortly"

    async def run(self, ticket: Ticket, timeout_seconds: float, function: Callable[..., T], *args) -> T:
        """`function(*args, cancel)` on an inference thread once a slot is free -> its result; HTTPException 504
        when it runs longer than `timeout_seconds` (then `cancel` is set and the thread keeps its slot until it
        ends)."""
        await self._free.acquire()
        cancel = threading.Event()
        ticket.hold()
        self.running += 1
        done = self._threads.submit(function, *args, cancel)
        done.add_done_callback(lambda future: self._finished(future, ticket, cancel))  # on the loop's thread
        try:
            return await asyncio.wait_for(asyncio.shield(done), timeout_seconds)
        except TimeoutError:
            cancel.set()
            raise HTTPException(
                504, f"inference took longer than this server's limit of {timeout_seconds:g} s "
                     "(--timeout-seconds); it was stopped"
            ) from None
        except asyncio.CancelledError:  # the server is shutting down: nobody waits for the answer
            cancel.set()
            raise

    def _finished(self, future: asyncio.Future, ticket: Ticket, cancel: threading.Event) -> None:
        self.running -= 1
        ticket.release()
        self._free.release()
        # Retrieving the error also keeps asyncio from reporting it as lost when nobody waits (after a 504).
        error = None if future.cancelled() else future.exception()
        if cancel.is_set():
            if error is None or isinstance(error, (CancelledError, asyncio.CancelledError)):
                log.info("a timed-out inference has stopped; its slot is free")
            else:
                log.warning("a timed-out inference failed: %s: %s", type(error).__name__, error)
