"""The JSON the service answers with, as pydantic models: they document /docs (the OpenAPI schema) and
check that what leaves the server has the shape the page and clients rely on."""

from __future__ import annotations

from pydantic import BaseModel, Field


class WindowOut(BaseModel):
    start: float = Field(description="seconds from the start of the audio")
    end: float = Field(description="seconds from the start of the audio")
    label: str = Field(description="most likely class in this window")
    probabilities: dict[str, float] = Field(description="per class, sums to 1")


class PredictionOut(BaseModel):
    source: str | None = Field(description="the uploaded file's name (a label only; never opened as a path)")
    label: str = Field(description="most likely class over the whole audio")
    probabilities: dict[str, float] = Field(
        description="per class, sums to 1; for windowed audio the duration-weighted mean of the windows'")
    duration: float = Field(description="seconds of audio")
    windows: list[WindowOut] = Field(description="one per window for audio longer than one window, else empty")


class SegmentOut(BaseModel):
    start: float = Field(description="seconds from the start of the audio")
    end: float = Field(description="seconds from the start of the audio")
    speaker: str | None = Field(description="who speaks, when the segments named one (never for segments=vad)")
    label: str = Field(description="most likely class in this segment")
    probabilities: dict[str, float] = Field(description="per class, sums to 1")


class TimelineOut(BaseModel):
    """POST /predict?segments=vad: the audio as speech segments; silence is what lies between them."""

    source: str | None = Field(description="the uploaded file's name (a label only; never opened as a path)")
    label: str | None = Field(description="most likely class over the speech; null when no speech was found")
    probabilities: dict[str, float] = Field(
        description="per class, the duration-weighted mean of the segments'; empty when no speech was found")
    duration: float = Field(description="seconds of audio")
    speech_seconds: float = Field(description="seconds of speech: the segments' total")
    segments: list[SegmentOut] = Field(description="the speech segments in time order")


class LabelsOut(BaseModel):
    labels: list[str] = Field(description="class names in the model's output order")
    needs_text: bool = Field(description="whether /predict needs the form field 'text' (a transcript)")


class LimitsOut(BaseModel):
    max_upload_bytes: int
    max_upload_mb: float
    max_seconds: float = Field(description="longest audio accepted")
    max_concurrent: int = Field(description="inferences run at once")
    max_waiting: int = Field(description="requests that may be inside beyond those running (uploading or "
                                         "waiting for a slot); more get 503")
    timeout_seconds: float = Field(description="longest inference; longer ones get 504 and are stopped")
    upload_timeout_seconds: float = Field(description="longest time for a request body to arrive; then 408")


class HealthOut(BaseModel):
    status: str = Field(description="'ok' while the server answers")
    running: int = Field(description="inferences running now")
    waiting: int = Field(description="admitted requests not running an inference (uploading or queued)")
    limits: LimitsOut
