"""The HTTP service around an EmotionRecognizer: `create_app(recognizer, limits)` -> a FastAPI app.

    GET  /          the web page (static/: pick a file or record, bars per class, timeline for long audio)
    POST /predict   multipart/form-data: `file` (audio), optional `text` (transcript, for text models)
                    -> Prediction.to_dict(): label, probabilities, duration, windows
                    ?segments=vad: a row per speech segment found by Silero VAD instead of fixed windows
                    -> Timeline.to_dict(): label, probabilities (over the speech), duration, speech_seconds,
                    segments (start, end, label, probabilities); 501 when the `vad` extra is not installed
    GET  /labels    {"labels": [...] in the model's logit order, "needs_text": bool}
    GET  /health    {"status": "ok", "running": n, "waiting": m, "limits": {...}}
    GET  /docs      the OpenAPI page (Swagger UI served from the package: no CDN)

Every refusal is JSON {"detail": "..."} with a 4xx/5xx status naming what is wrong; see limits.py (size,
content type, upload time, and the connection limits given to uvicorn), upload.py (the audio itself) and
slots.py (admission, concurrency, inference time). Slow clients and TLS are a reverse proxy's: docs/serving.md.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Literal

from fastapi import File, Form, Query, Request, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from fastapi_offline import FastAPIOffline
from starlette.exceptions import HTTPException

from .. import __version__
from ..errors import ConfigError, SerkitError
from .limits import TICKET_SCOPE_KEY, ServeLimits, UploadGuard
from .schemas import HealthOut, LabelsOut, PredictionOut, TimelineOut
from .slots import InferenceSlots
from .upload import open_upload

STATIC_DIR = Path(__file__).with_name("static")
log = logging.getLogger("serkit.serve")

# The page loads only its own files; inline script, other origins and plugins are refused.
PAGE_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; media-src 'self' blob:; "
                               "object-src 'none'; base-uri 'none'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
}
ERROR_RESPONSES = {
    code: {"description": text, "content": {"application/json": {"example": {"detail": text}}}}
    for code, text in {
        400: "empty file or malformed multipart body",
        408: "the upload did not arrive within this server's upload timeout",
        413: "upload or audio longer than this server's limits",
        415: "not multipart/form-data, or a file that is not decodable audio",
        422: "missing form field 'file', unusable audio, a text model called without 'text', or an unknown "
             "'segments'",
        501: "segments=vad on a server without voice activity detection (pip install 'serkit[vad]')",
        503: "too many requests inside already; retry after Retry-After seconds",
        504: "the inference took longer than this server's timeout; it was stopped",
    }.items()
}


def create_app(recognizer, limits: ServeLimits | None = None):
    """`recognizer`: an EmotionRecognizer (anything with `.labels` and `.predict(binary_file, text=, cancel=)`); it is
    called from worker threads, at most `limits.max_concurrent` at a time. Run it with
    `uvicorn.run(app, host=, port=, **limits.uvicorn_options())` for the connection limits."""
    limits = limits or ServeLimits()
    slots = InferenceSlots(limits.max_concurrent, limits.max_waiting)
    app = FastAPIOffline(
        title="serkit", version=__version__, static_url="/docs-static",
        description="Speech emotion recognition: upload audio, get class probabilities (and, for audio "
                    "longer than one window, a prediction per window).",
    )
    app.state.recognizer, app.state.limits, app.state.slots = recognizer, limits, slots
    app.add_middleware(UploadGuard, limits=limits, slots=slots)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(Exception, _internal_error)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")

    @app.get("/", include_in_schema=False)
    async def index() -> FileResponse:
        return FileResponse(STATIC_DIR / "index.html", headers=PAGE_HEADERS)

    @app.get("/health", summary="Liveness, load and limits", response_model=HealthOut)
    async def health() -> dict:
        return {"status": "ok", "running": slots.running, "waiting": slots.waiting, "limits": limits.to_dict()}

    @app.get("/labels", summary="Class names in the model's output order; whether it needs a transcript",
             response_model=LabelsOut)
    async def labels() -> dict:
        return {"labels": list(recognizer.labels), "needs_text": bool(getattr(recognizer, "needs_text", False))}

    @app.post("/predict", summary="Emotion probabilities of an uploaded audio file",
              response_model=PredictionOut | TimelineOut, responses=ERROR_RESPONSES)
    async def predict(
        request: Request,
        segments: Literal["windows", "vad"] = Query(
            "windows", description="windows: fixed windows for long audio (a PredictionOut); vad: a prediction "
                                   "per speech segment (a TimelineOut)"),
        file: UploadFile | None = File(None, description="audio file: WAV, FLAC, OGG/Vorbis or MP3; any rate, "
                                                         "any number of channels"),
        text: str | None = Form(None, description="transcript of the audio (only for models with a text branch)"),
    ) -> dict:
        if file is None:
            raise HTTPException(422, "no audio uploaded: send the file as multipart/form-data field 'file'")
        if segments == "vad":
            _check_vad()
        # The upload stays spooled (1 MiB in memory, the rest on disk) while it waits for a slot; the
        # inference thread reads it into memory. FastAPI closes it after the answer.
        return await slots.run(request.scope[TICKET_SCOPE_KEY], limits.timeout_seconds, _infer, recognizer,
                               file.file, file.filename or "upload", text, limits.max_seconds, segments)

    return app


def _check_vad() -> None:
    """501 unless voice activity detection can run here (the model loads once per process, on first use)."""
    from ..inference.vad import load_vad

    try:
        load_vad()
    except ConfigError as error:
        raise HTTPException(501, f"segments=vad is not available on this server: {error}") from None


def _infer(recognizer, spooled, filename: str, text: str | None, max_seconds: float, segments: str, cancel) -> dict:
    """Runs in an inference thread: read the spooled upload, check its header, predict (decoding window by
    window, stopping before its next batch once `cancel` is set), -> JSON-safe dict."""
    spooled.seek(0)
    upload = open_upload(spooled.read(), filename, max_seconds)
    options = {"text": text or None, "cancel": cancel}
    if segments != "windows":  # only then: a recognizer without timelines still serves windows
        options["segments"] = segments
    try:
        prediction = recognizer.predict(upload, **options)
    except SerkitError as e:  # a text model without a transcript, NaN samples, ...; the message names the file
        raise HTTPException(422, str(e)) from None
    return prediction.to_dict()


async def _validation_error(request: Request, error: RequestValidationError) -> JSONResponse:
    # FastAPI's default is a list of pydantic errors; one sentence naming the field is easier to act on.
    problems = []
    for item in error.errors():
        location = item.get("loc", ())
        where = " ".join(str(part) for part in location[1:]) or "request"
        kind = "query parameter" if location[:1] == ("query",) else "form field"
        problems.append(f"{kind} {where!r}: {item.get('msg', 'invalid')}")
    return JSONResponse({"detail": "; ".join(problems) or "invalid request"}, status_code=422)


async def _internal_error(request: Request, error: Exception) -> JSONResponse:
    log.exception("internal error on %s %s", request.method, request.url.path)
    return JSONResponse({"detail": f"internal error ({type(error).__name__}); see the server log"}, status_code=500)
