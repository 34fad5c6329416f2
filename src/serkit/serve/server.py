"""How `serkit serve` runs uvicorn: `uvicorn_options(limits)`, and a connection that must send its headers in time.

uvicorn (h11) waits for a request's headers without a limit: a client that connects and sends nothing, or
half a request line, holds its connection forever, and connections count against `limit_concurrency`, past
which every request, /health included, gets 503. `HeaderDeadlineProtocol` gives each request's headers
`limits.header_timeout_seconds`, counted from the connection (or from the previous answer on a kept-alive
one); past it the connection gets 408 and is closed. The body is the app's: UploadGuard's
`upload_timeout_seconds` (limits.py). An idle kept-alive connection is closed by uvicorn after
`timeout_keep_alive` (5 s). Headers larger than h11's 16 KiB get uvicorn's 400.
"""

from __future__ import annotations

import asyncio
import ctypes
import json
import os
import platform

from uvicorn.protocols.http.h11_impl import H11Protocol

from .limits import ServeLimits

KEEP_ALIVE_SECONDS = 5
MALLOC_ARENAS = 2
_M_ARENA_MAX = -8  # mallopt's parameter number (malloc.h)
# Connections beyond those that may be admitted, for /health and page loads; more get uvicorn's 503.
SPARE_CONNECTIONS = 32


def uvicorn_options(limits: ServeLimits) -> dict:
    """Keyword arguments for uvicorn.run / uvicorn.Config (besides app, host, port, logging)."""
    return {
        "http": header_deadline_protocol(limits.header_timeout_seconds),
        "timeout_keep_alive": KEEP_ALIVE_SECONDS,
        # A flood of idle or trickling connections cannot pile up without bound.
        "limit_concurrency": limits.max_concurrent + limits.max_waiting + SPARE_CONNECTIONS,
    }


class HeaderDeadlineProtocol(H11Protocol):
    """uvicorn's h11 connection, closed with 408 when a request's headers do not arrive in time."""

    header_timeout_seconds = 10.0

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._header_timer: asyncio.TimerHandle | None = None
        self._arm()

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self._header_timer is not None and self.cycle is not self._cycle_when_armed:
            self._disarm()  # a new request's headers are in: its body is the app's to time

    def on_response_complete(self) -> None:
        self._arm()  # before uvicorn starts a pipelined request, which then disarms it
        super().on_response_complete()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def _arm(self) -> None:
        self._disarm()
        self._cycle_when_armed = self.cycle
        self._header_timer = self.loop.call_later(self.header_timeout_seconds, self._expire)

    def _disarm(self) -> None:
        if getattr(self, "_header_timer", None) is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _expire(self) -> None:
        self._header_timer = None
        if self.cycle is not self._cycle_when_armed or self.transport.is_closing():
            return
        body = json.dumps({"detail": f"no complete request headers within {self.header_timeout_seconds:g} s "
                                     "(--header-timeout-seconds); closing the connection"}).encode()
        # Written raw: h11 cannot answer a request it has not received.
        self.transport.write(b"HTTP/1.1 408 Request Timeout\r\ncontent-type: application/json\r\n"
                             b"connection: close\r\ncontent-length: %d\r\n\r\n%s" % (len(body), body))
        self.transport.close()


def header_deadline_protocol(seconds: float) -> type[HeaderDeadlineProtocol]:
    """HeaderDeadlineProtocol with its deadline set (uvicorn takes a protocol class, not an instance)."""
    return type("HeaderDeadlineProtocol", (HeaderDeadlineProtocol,), {"header_timeout_seconds": float(seconds)})


def limit_malloc_arenas() -> bool:
    """Let glibc's malloc use at most MALLOC_ARENAS arenas in this process -> whether it was set.

    Why: each thread that allocates gets its own arena (up to 8 per core), and an arena keeps much of what
    is freed in it (glibc raises its mmap and trim thresholds after the first large free, up to 32/64 MiB).
    Inference threads allocate 10-40 MB each (the upload, a decoded window), the upload spooling runs in a
    pool of up to 40 threads: a burst left hundreds of MB resident that no request used any more (64 uploads
    of 12 MB: peak RSS +536 MiB over the idle server; with 2 arenas +104 MiB, see docs/reliability.md).
    Fixing the mmap threshold instead bounds it as well but made a transformer layer ~20% slower (every
    large activation a fresh mapping); fewer arenas cost nothing measurable here. Called once by
    `serkit serve` (process-wide); nothing on other C libraries, or when MALLOC_ARENA_MAX or
    GLIBC_TUNABLES already say."""
    if platform.libc_ver()[0] != "glibc" or "MALLOC_ARENA_MAX" in os.environ \
            or "arena_max" in os.environ.get("GLIBC_TUNABLES", ""):
        return False
    try:
        return bool(ctypes.CDLL(None).mallopt(_M_ARENA_MAX, MALLOC_ARENAS))
    except (OSError, AttributeError):
        return False
