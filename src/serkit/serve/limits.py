"""What one request may cost the service: upload size, audio length, inferences at once, requests waiting,
and how long an upload and an inference may take.

`UploadGuard` works before FastAPI parses the form. It refuses other content types (415), then a declared
Content-Length over the limit (413), then a request beyond the admission bound (503 + Retry-After, see
slots.py), all before a byte of the body is read. A body without a Content-Length (chunked) or one that lies
is counted while it streams in and cut off at the limit (413); one that does not arrive in full within
`upload_timeout_seconds` (a stalled or trickling client) gets 408 and its connection is closed. The 413/503
connections stay open: uvicorn discards the rest of the body, so the client, still sending, reads the
answer instead of a connection reset.

`ServeLimits.uvicorn_options` gives uvicorn its own public limits on connections. What uvicorn cannot do, a
deadline on a connection's headers (slowloris), is a reverse proxy's job: docs/serving.md.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import anyio
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..errors import ConfigError
from .slots import InferenceSlots

MB = 1024 * 1024
# The multipart envelope (boundaries, part headers, a transcript field) around the audio bytes.
MULTIPART_OVERHEAD_BYTES = 64 * 1024
# Connections beyond those that may be admitted, for /health and page loads; more get uvicorn's 503.
SPARE_CONNECTIONS = 32
KEEP_ALIVE_SECONDS = 5
MAX_HEADER_BYTES = 16 * 1024  # h11's default, stated: request headers growing past it get uvicorn's 400


@dataclass(frozen=True)
class ServeLimits:
    max_upload_bytes: int = 25 * MB  # ~13 min of 16 kHz 16-bit mono WAV
    max_seconds: float = 600.0       # audio duration, read from the file's header before decoding
    max_concurrent: int = 2          # inferences running at once (each holds its decoded audio)
    max_waiting: int = 64            # requests admitted beyond those running (uploading or queued); beyond: 503
    timeout_seconds: float = 60.0    # one inference, from the moment it gets a slot; beyond: 504
    upload_timeout_seconds: float = 60.0  # the whole request body, from its headers; beyond: 408 (>= 0.4 MB/s at 25 MB)

    def __post_init__(self) -> None:
        for key in ("max_upload_bytes", "max_seconds", "max_concurrent", "timeout_seconds", "upload_timeout_seconds"):
            if not getattr(self, key) > 0:
                raise ConfigError(f"serve limit {key} must be > 0, got {getattr(self, key)!r}")
        if self.max_waiting < 0:
            raise ConfigError(f"serve limit max_waiting must be >= 0, got {self.max_waiting!r}")

    @classmethod
    def from_cli(cls, max_upload_mb: float, max_seconds: float, max_concurrent: int, max_waiting: int,
                 **timeouts: float) -> ServeLimits:
        """timeouts: timeout_seconds, upload_timeout_seconds (defaults above)."""
        if not max_upload_mb > 0:
            raise ConfigError(f"--max-upload-mb must be > 0, got {max_upload_mb}")
        return cls(round(max_upload_mb * MB), max_seconds, max_concurrent, max_waiting, **timeouts)

    def to_dict(self) -> dict:
        return {**asdict(self), "max_upload_mb": self.max_upload_bytes / MB}

    def too_large_message(self) -> str:
        return f"upload is larger than this server's limit of {self.max_upload_bytes / MB:.4g} MB (--max-upload-mb)"

    def uvicorn_options(self) -> dict:
        """Keyword arguments for uvicorn.run / uvicorn.Config (besides app, host, port, logging): at most
        `limit_concurrency` connections (past it, uvicorn answers 503), an idle kept-alive connection closed
        after KEEP_ALIVE_SECONDS, headers of at most MAX_HEADER_BYTES."""
        return {
            "http": "h11",  # the header bound is h11's option; httptools, if installed, would be picked instead
            "h11_max_incomplete_event_size": MAX_HEADER_BYTES,
            "timeout_keep_alive": KEEP_ALIVE_SECONDS,
            "limit_concurrency": self.max_concurrent + self.max_waiting + SPARE_CONNECTIONS,
        }


# Where the guard leaves the request's admission ticket for the endpoint (an ASGI scope extension key).
TICKET_SCOPE_KEY = "serkit.ticket"


class UploadGuard:
    """ASGI middleware for the upload routes (`paths`): multipart/form-data only (else 415), at most
    `limits.max_upload_bytes` (+ the multipart envelope) of body (else 413), admitted by `slots` (else 503),
    the body in full within `limits.upload_timeout_seconds` (else 408). The admission ticket is in
    `scope[TICKET_SCOPE_KEY]` for the endpoint, and let go of when the request has been answered."""

    def __init__(self, app: ASGIApp, limits: ServeLimits, slots: InferenceSlots,
                 paths: tuple[str, ...] = ("/predict",)) -> None:
        self.app, self.limits, self.slots, self.paths = app, limits, slots, paths
        self.max_body = limits.max_upload_bytes + MULTIPART_OVERHEAD_BYTES

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST" or scope["path"] not in self.paths:
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        refusal = self._refusal(headers)
        ticket = self.slots.admit() if refusal is None else None
        if refusal is None and ticket is None:
            refusal = JSONResponse({"detail": self.slots.busy_message()}, status_code=503,
                                   headers={"Retry-After": "1"})
        if refusal is not None:
            await refusal(scope, receive, send)
            return
        try:
            await self.app({**scope, TICKET_SCOPE_KEY: ticket}, self._counting(receive), send)
        finally:
            ticket.release()

    def _refusal(self, headers: Headers) -> JSONResponse | None:
        content_type = headers.get("content-type", "")
        if content_type.split(";")[0].strip().lower() != "multipart/form-data":
            return JSONResponse(
                {"detail": "expected a multipart/form-data upload with the audio in form field 'file' "
                           f"(got {f'Content-Type {content_type!r}' if content_type else 'no Content-Type'})"},
                status_code=415,
            )
        declared = headers.get("content-length")
        if declared is not None:
            if not declared.isdigit():
                return JSONResponse({"detail": f"Content-Length {declared!r} is not a number"}, status_code=400)
            if int(declared) > self.max_body:
                return JSONResponse({"detail": self.limits.too_large_message()}, status_code=413)
        return None

    def _counting(self, receive: Receive) -> Receive:
        received, complete = 0, False
        deadline = anyio.current_time() + self.limits.upload_timeout_seconds

        async def counted() -> Message:
            nonlocal received, complete
            if complete:  # the body is in: later calls only wait for a disconnect
                return await receive()
            with anyio.move_on_after(deadline - anyio.current_time()) as waited:
                message = await receive()
            # Raised inside FastAPI's form parsing, which re-raises HTTPExceptions as they are.
            if waited.cancelled_caught:
                raise HTTPException(
                    408, f"the upload did not arrive within {self.limits.upload_timeout_seconds:g} s "
                         f"(--upload-timeout-seconds): {received} bytes came", headers={"Connection": "close"})
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                complete = not message.get("more_body", False)
                if received > self.max_body:
                    raise HTTPException(413, self.limits.too_large_message())
            return message

        return counted
