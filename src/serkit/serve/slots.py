"""Admission and inference slots: what bounds the service's memory and threads under any number of clients.

Admission (`admit`, at the door, before a byte of the body is read): at most `max_concurrent + max_waiting`
requests are inside at once (uploading, waiting for a slot, or running); the rest get 503 with Retry-After
without their upload being read. An admitted upload is spooled by Starlette (1 MiB in memory, the rest in
a temporary file), so a waiting request holds about 1 MiB.

Inference (`run`): at most `max_concurrent` inferences run, each in its own thread, off the event loop, so
/health and uploads keep being answered; only a running inference reads its upload into memory.

Timeouts: a request whose inference takes longer than `timeout_seconds` gets 504. A Python thread cannot be
killed, so the inference is asked to stop: the `stop` event passed to it is set, and the upload it reads
raises `InferenceStopped` at the next window it starts to read (upload.py). Until its thread has really
ended, a timed-out inference keeps its slot and its admission ticket: `running` counts it, another
inference does not start in its place, and the bounds above hold. Its result, if any, is dropped.

All counters are touched only on the event loop's thread (thread completions are handed back to it), so
they need no lock. The service runs on asyncio (uvicorn, and Starlette's TestClient by default).
"""

from __future__ import annotations

import asyncio
import logging
import threading
from typing import Callable, TypeVar

from starlette.exceptions import HTTPException

T = TypeVar("T")
log = logging.getLogger("serkit.serve")


class InferenceStopped(Exception):
    """Raised inside an inference thread whose request timed out (see upload.StoppableUpload)."""


class Ticket:
    """One admitted request. Held by the request and, while it runs, by its inference thread; handed back
    (the request leaves the count) when both have let go."""

    def __init__(self, slots: "InferenceSlots") -> None:
        self.slots, self.holders = slots, 1

    def hold(self) -> None:
        self.holders += 1

    def release(self) -> None:
        self.holders -= 1
        if self.holders == 0:
            self.slots.admitted -= 1


class InferenceSlots:
    def __init__(self, max_concurrent: int, max_waiting: int) -> None:
        self.max_concurrent = max_concurrent
        self.capacity = max_concurrent + max_waiting
        self.admitted = 0  # tickets out
        self.running = 0   # inference threads alive, timed-out ones still stopping included
        self._free = asyncio.Semaphore(max_concurrent)

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
        """`function(*args, stop)` in a thread once a slot is free -> its result; HTTPException 504 when it
        runs longer than `timeout_seconds` (then `stop` is set and the thread keeps its slot until it ends)."""
        await self._free.acquire()
        stop = threading.Event()
        ticket.hold()
        self.running += 1
        done = self._start(function, (*args, stop), lambda future: self._finished(future, ticket, stop))
        try:
            return await asyncio.wait_for(asyncio.shield(done), timeout_seconds)
        except TimeoutError:
            stop.set()
            raise HTTPException(
                504, f"inference took longer than this server's limit of {timeout_seconds:g} s "
                     "(--timeout-seconds); it was stopped"
            ) from None
        except asyncio.CancelledError:  # the server is shutting down: nobody waits for the answer
            stop.set()
            raise

    def _start(self, function: Callable[..., T], args: tuple, on_done: Callable) -> asyncio.Future:
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        future.add_done_callback(on_done)

        def settle(ok: bool, value) -> None:
            (future.set_result if ok else future.set_exception)(value)

        def work() -> None:
            try:
                outcome = (True, function(*args))
            except Exception as error:  # handed to the request (HTTPException -> its status)
                outcome = (False, error)
            try:
                loop.call_soon_threadsafe(settle, *outcome)
            except RuntimeError:  # the loop is closed: the server is gone, nothing to account for
                pass

        # A daemon thread per inference (at most max_concurrent exist): one that never returns cannot
        # keep the process from exiting.
        threading.Thread(target=work, name="serkit-inference", daemon=True).start()
        return future

    def _finished(self, future: asyncio.Future, ticket: Ticket, stop: threading.Event) -> None:
        self.running -= 1
        ticket.release()
        self._free.release()
        # Retrieving the error also keeps asyncio from reporting it as lost when nobody waits (after a 504).
        error = None if future.cancelled() else future.exception()
        if stop.is_set():
            if error is None or isinstance(error, InferenceStopped):
                log.info("a timed-out inference has stopped; its slot is free")
            else:
                log.warning("a timed-out inference failed: %s: %s", type(error).__name__, error)
