"""What one request may cost the service: upload size, audio length, inferences at once, requests waiting.

`UploadGuard` enforces the upload size before FastAPI parses the form: a declared Content-Length over the
limit is refused before a byte of the body is read, and a body without one (chunked) or one that lies is
counted while it streams in and cut off at the limit. Either way the client gets 413 and the server never
holds more than the limit of one upload. The connection stays open: uvicorn discards the rest of the body,
so the client, still sending, reads the 413 instead of a connection reset.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..errors import ConfigError

MB = 1024 * 1024
# The multipart envelope (boundaries, part headers, a transcript field) around the audio bytes.
MULTIPART_OVERHEAD_BYTES = 64 * 1024


@dataclass(frozen=True)
class ServeLimits:
    max_upload_bytes: int = 25 * MB  # ~13 min of 16 kHz 16-bit mono WAV
    max_seconds: float = 600.0       # audio duration, read from the file's header before decoding
    max_concurrent: int = 2          # inferences running at once (each holds its decoded audio)
    max_waiting: int = 64            # requests queued for an inference slot; beyond: 503

    def __post_init__(self) -> None:
        for key in ("max_upload_bytes", "max_seconds", "max_concurrent"):
            if not getattr(self, key) > 0:
                raise ConfigError(f"serve limit {key} must be > 0, got {getattr(self, key)!r}")
        if self.max_waiting < 0:
            raise ConfigError(f"serve limit max_waiting must be >= 0, got {self.max_waiting!r}")

    @classmethod
    def from_cli(cls, max_upload_mb: float, max_seconds: float, max_concurrent: int, max_waiting: int) -> ServeLimits:
        if not max_upload_mb > 0:
            raise ConfigError(f"--max-upload-mb must be > 0, got {max_upload_mb}")
        return cls(round(max_upload_mb * MB), max_seconds, max_concurrent, max_waiting)

    def to_dict(self) -> dict:
        return {**asdict(self), "max_upload_mb": self.max_upload_bytes / MB}

    def too_large_message(self) -> str:
        return f"upload is larger than this server's limit of {self.max_upload_bytes / MB:.4g} MB (--max-upload-mb)"


class UploadGuard:
    """ASGI middleware for the upload routes (`paths`): multipart/form-data only (else 415), and at most
    `limits.max_upload_bytes` (+ the multipart envelope) of body (else 413)."""

    def __init__(self, app: ASGIApp, limits: ServeLimits, paths: tuple[str, ...] = ("/predict",)) -> None:
        self.app, self.limits, self.paths = app, limits, paths
        self.max_body = limits.max_upload_bytes + MULTIPART_OVERHEAD_BYTES

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST" or scope["path"] not in self.paths:
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        refusal = self._refusal(headers)
        if refusal is not None:
            await refusal(scope, receive, send)
            return
        await self.app(scope, self._counting(receive), send)

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
        received = 0

        async def counted() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_body:
                    # Raised inside FastAPI's form parsing, which re-raises HTTPExceptions as they are.
                    raise HTTPException(413, self.limits.too_large_message())
            return message

        return counted
