"""ServeLimits validation and the UploadGuard middleware (driven as a raw ASGI app: exact control over
headers and body chunks, and a view of how much of the body was read)."""

from __future__ import annotations

import asyncio
import json
import time

import pytest

from serkit.errors import ConfigError
from serkit.serve.limits import MB, MULTIPART_OVERHEAD_BYTES, TICKET_SCOPE_KEY, ServeLimits, UploadGuard
from serkit.serve.slots import InferenceSlots


@pytest.mark.parametrize("key", ["max_upload_bytes", "max_seconds", "max_concurrent", "timeout_seconds",
                                 "upload_timeout_seconds"])
@pytest.mark.parametrize("value", [0, -1])
def test_limits_refuse_non_positive_values(key, value):
    with pytest.raises(ConfigError, match=key):
        ServeLimits(**{key: value})


def test_limits_from_cli_convert_megabytes_and_refuse_zero():
    limits = ServeLimits.from_cli(1.5, 30, 3, 0, timeout_seconds=7, upload_timeout_seconds=8)
    assert (limits.max_upload_bytes, limits.max_seconds, limits.max_concurrent, limits.max_waiting) == (
        int(1.5 * MB), 30, 3, 0)
    assert (limits.timeout_seconds, limits.upload_timeout_seconds) == (7, 8)
    assert limits.to_dict()["max_upload_mb"] == pytest.approx(1.5)
    with pytest.raises(ConfigError, match="--max-upload-mb"):
        ServeLimits.from_cli(0, 30, 3, 0)


class Inner:
    """The app behind the guard: reads the whole body, answers 200 with its length."""

    def __init__(self):
        self.called = False

    async def __call__(self, scope, receive, send):
        self.called = True
        size = 0
        while True:
            message = await receive()
            size += len(message.get("body", b""))
            if not message.get("more_body"):
                break
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": str(size).encode()})


def call(app, headers: dict, chunks: list[bytes], method="POST", path="/predict", seen: dict | None = None,
         stall_after: int | None = None):
    """-> (status, body, number of chunks the app pulled); `seen["pulled"]` is kept up to date even when
    the call raises. stall_after: the client sends that many chunks, then nothing more (for 60 s)."""
    seen = {} if seen is None else seen
    seen["pulled"], sent = 0, {}

    async def receive():
        seen["pulled"] += 1
        pulled = seen["pulled"]
        if stall_after is not None and pulled > stall_after:
            await asyncio.sleep(60)
        body = chunks[pulled - 1] if pulled <= len(chunks) else b""
        return {"type": "http.request", "body": body, "more_body": pulled < len(chunks)}

    async def send(message):
        if message["type"] == "http.response.start":
            sent["status"] = message["status"]
        else:
            sent["body"] = sent.get("body", b"") + message.get("body", b"")

    scope = {"type": "http", "method": method, "path": path,
             "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()]}
    asyncio.run(app(scope, receive, send))
    return sent["status"], sent["body"], seen["pulled"]


LIMITS = ServeLimits(max_upload_bytes=1000)
MULTIPART = {"content-type": "multipart/form-data; boundary=x"}


def guarded(slots: InferenceSlots | None = None, limits: ServeLimits = LIMITS):
    inner = Inner()
    return inner, UploadGuard(inner, limits, slots or InferenceSlots(limits.max_concurrent, limits.max_waiting))


def test_guard_passes_a_body_within_the_limit_untouched():
    inner, app = guarded()
    chunks = [b"a" * 600, b"b" * 400]
    status, body, _ = call(app, {**MULTIPART, "content-length": "1000"}, chunks)
    assert (status, body) == (200, b"1000")


def test_guard_refuses_a_declared_oversized_body_before_reading_it():
    inner, app = guarded()
    too_big = LIMITS.max_upload_bytes + MULTIPART_OVERHEAD_BYTES + 1
    status, body, pulled = call(app, {**MULTIPART, "content-length": str(too_big)}, [b"x" * too_big])
    assert status == 413 and "--max-upload-mb" in json.loads(body)["detail"]
    assert pulled == 0 and not inner.called


def test_guard_counts_an_undeclared_body_and_stops_at_the_limit():
    from starlette.exceptions import HTTPException

    inner, app = guarded()
    chunk = b"x" * 10_000
    chunks = [chunk] * 100  # 1 MB, no Content-Length (chunked)
    seen = {}
    # The guard raises inside the app's body reading (FastAPI turns it into the 413 response).
    with pytest.raises(HTTPException) as refused:
        call(app, MULTIPART, chunks, seen=seen)
    assert refused.value.status_code == 413 and "--max-upload-mb" in refused.value.detail
    # cut off at the first chunk past the limit, not after the whole body
    assert seen["pulled"] == (LIMITS.max_upload_bytes + MULTIPART_OVERHEAD_BYTES) // len(chunk) + 1 < len(chunks)


@pytest.mark.parametrize("content_type", ["application/json", "audio/wav", "application/x-www-form-urlencoded", ""])
def test_guard_refuses_other_content_types_with_415(content_type):
    inner, app = guarded()
    headers = {"content-type": content_type} if content_type else {}
    status, body, pulled = call(app, headers, [b"{}"])
    assert status == 415 and not inner.called and pulled == 0
    assert "multipart/form-data" in json.loads(body)["detail"] and "'file'" in json.loads(body)["detail"]


def test_guard_refuses_a_content_length_that_is_not_a_number():
    inner, app = guarded()
    status, body, _ = call(app, {**MULTIPART, "content-length": "12abc"}, [b""])
    assert status == 400 and "Content-Length" in json.loads(body)["detail"] and not inner.called


def test_guard_leaves_other_routes_alone():
    inner, app = guarded()
    status, body, _ = call(app, {"content-type": "application/json"}, [b"z" * 5000], path="/other")
    assert (status, body) == (200, b"5000")
    status, _, _ = call(app, {}, [b""], method="GET")
    assert status == 200


def test_guard_turns_requests_away_at_the_door_when_the_admission_bound_is_reached():
    slots = InferenceSlots(max_concurrent=1, max_waiting=1)
    held = [slots.admit(), slots.admit()]  # two requests inside
    inner, app = guarded(slots)
    status, body, pulled = call(app, {**MULTIPART, "content-length": "10"}, [b"x" * 10])
    assert status == 503 and "server busy" in json.loads(body)["detail"]
    assert pulled == 0 and not inner.called  # refused before a byte of the body was read
    held[0].release()
    assert call(app, {**MULTIPART, "content-length": "10"}, [b"x" * 10])[0] == 200
    assert slots.admitted == 1  # the admitted request's ticket went back when it was answered


def test_guard_gives_the_endpoint_the_ticket_and_takes_it_back_even_when_the_app_fails():
    slots = InferenceSlots(max_concurrent=1, max_waiting=0)
    seen = {}

    async def failing(scope, receive, send):
        seen["ticket"], seen["admitted"] = scope[TICKET_SCOPE_KEY], slots.admitted
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        call(UploadGuard(failing, LIMITS, slots), MULTIPART, [b"x"])
    assert seen["ticket"] is not None and seen["admitted"] == 1 and slots.admitted == 0


def test_guard_cuts_off_a_body_that_does_not_arrive_in_time_with_408():
    from starlette.exceptions import HTTPException

    limits = ServeLimits(max_upload_bytes=1000, upload_timeout_seconds=0.3)
    slots = InferenceSlots(1, 0)
    inner, app = guarded(slots, limits)
    started = time.monotonic()
    with pytest.raises(HTTPException) as refused:
        call(app, MULTIPART, [b"a" * 100, b"b" * 100, b"c" * 100], stall_after=2)
    assert refused.value.status_code == 408 and refused.value.headers == {"Connection": "close"}
    assert "within 0.3 s (--upload-timeout-seconds): 200 bytes came" in refused.value.detail
    assert 0.3 <= time.monotonic() - started < 5
    assert slots.admitted == 0
    # a body that does arrive in time is untouched
    assert call(app, MULTIPART, [b"a" * 100, b"b" * 100])[:2] == (200, b"200")
