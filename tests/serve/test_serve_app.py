"""The service in process (TestClient): endpoints, answers equal to the recognizer's, and a clear 4xx
JSON detail for every kind of bad upload."""

from __future__ import annotations

import copy

import pytest
from fastapi.testclient import TestClient

from serkit.serve import ServeLimits, create_app

LIMITS = ServeLimits(max_upload_bytes=2_000_000, max_seconds=30, max_concurrent=2)


@pytest.fixture(scope="module")
def client(recognizer):
    with TestClient(create_app(recognizer, LIMITS)) as client:
        yield client


def test_health_and_labels(client, recognizer):
    health = client.get("/health").json()
    assert health["status"] == "ok" and (health["running"], health["waiting"]) == (0, 0)
    assert health["limits"]["max_seconds"] == 30 and health["limits"]["max_concurrent"] == 2
    assert client.get("/labels").json() == {"labels": recognizer.labels, "needs_text": False}


@pytest.mark.parametrize("name, seconds, rate, channels, format", [
    ("short.wav", 2.0, 16000, 1, "WAV"),
    ("stereo.flac", 1.5, 44100, 2, "FLAC"),
    ("voice.ogg", 2.5, 22050, 1, "OGG"),
    ("long.wav", 25.0, 16000, 1, "WAV"),  # longer than one window: a prediction per window
])
def test_predict_equals_the_recognizer_on_the_same_file(client, recognizer, make_audio, tmp_path,
                                                        name, seconds, rate, channels, format):
    data = make_audio(seconds, sample_rate=rate, channels=channels, seed=len(name), format=format)
    answer = client.post("/predict", files={"file": (name, data, "audio/x-anything")})
    assert answer.status_code == 200, answer.text
    (tmp_path / name).write_bytes(data)
    expected = recognizer.predict(tmp_path / name).to_dict()
    got = answer.json()
    assert got["source"] == name and got["label"] == expected["label"]
    assert got["duration"] == pytest.approx(seconds, abs=1e-3)
    assert got["duration"] == pytest.approx(expected["duration"])
    assert got["probabilities"] == pytest.approx(expected["probabilities"], abs=1e-6)
    assert sum(got["probabilities"].values()) == pytest.approx(1.0, abs=1e-5)
    assert len(got["windows"]) == len(expected["windows"]) == (4 if seconds == 25.0 else 0)
    for window, want in zip(got["windows"], expected["windows"]):
        assert (window["start"], window["end"], window["label"]) == (want["start"], want["end"], want["label"])


def _multipart(body: bytes, boundary="b0undary"):
    return {"content": body, "headers": {"content-type": f"multipart/form-data; boundary={boundary}"}}


BAD_REQUESTS = {
    # name: (request kwargs, status, words the detail must hold)
    "no file field": (lambda audio: {"files": {"audio": ("a.wav", audio)}}, 422, "field 'file'"),
    "only a text field": (lambda audio: {"files": {"text": (None, "hello")}}, 422, "field 'file'"),
    "file sent as plain field": (lambda audio: {"files": {"file": (None, "not a file")}}, 422, "'file'"),
    "empty body": (lambda audio: _multipart(b""), 422, "field 'file'"),
    "json body": (lambda audio: {"json": {"file": "a.wav"}}, 415, "multipart/form-data"),
    "raw audio body": (lambda audio: {"content": audio, "headers": {"content-type": "audio/wav"}}, 415,
                       "multipart/form-data"),
    "no content type": (lambda audio: {"content": audio}, 415, "multipart/form-data"),
    "no boundary": (lambda audio: {"content": b"abc", "headers": {"content-type": "multipart/form-data"}},
                    400, "boundary"),
    "malformed multipart": (lambda audio: _multipart(b"--b0undary\r\nno colon here\r\n\r\nxx\r\n--b0undary--\r\n"),
                            400, "multipart"),
    "empty file": (lambda audio: {"files": {"file": ("empty.wav", b"")}}, 400, "'empty.wav' is empty"),
    "not audio": (lambda audio: {"files": {"file": ("notes.txt", b"just some text\n" * 50, "text/plain")}}, 415,
                  "'notes.txt': cannot decode audio"),
    "truncated audio header": (lambda audio: {"files": {"file": ("cut.wav", audio[:20])}}, 415, "'cut.wav'"),
    "oversized upload": (lambda audio: {"files": {"file": ("big.wav", b"\0" * 2_200_000)}}, 413, "--max-upload-mb"),
}


@pytest.mark.parametrize("name", list(BAD_REQUESTS))
def test_bad_uploads_get_a_4xx_with_a_clear_detail(client, make_audio, name):
    build, status, words = BAD_REQUESTS[name]
    answer = client.post("/predict", **build(make_audio(0.5)))
    assert answer.status_code == status, answer.text
    detail = answer.json()["detail"]
    assert isinstance(detail, str) and words in detail


def test_an_upload_without_content_length_is_cut_off_at_the_limit(client):
    sent = 0

    def body():  # a generator: httpx sends it chunked, with no Content-Length to check up front
        nonlocal sent
        yield b'--b0undary\r\nContent-Disposition: form-data; name="file"; filename="big.wav"\r\n\r\n'
        for _ in range(400):
            sent += 1
            yield b"\0" * 10_000

    answer = client.post("/predict", **_multipart(body()))
    assert answer.status_code == 413 and "--max-upload-mb" in answer.json()["detail"]
    assert "content-length" not in {k.lower() for k in answer.request.headers}


def test_audio_longer_than_the_limit_gets_413(client, make_audio):
    answer = client.post("/predict", files={"file": ("long.flac", make_audio(31.0, sample_rate=8000, format="FLAC"))})
    assert answer.status_code == 413 and "at most 30 s" in answer.json()["detail"]


def test_nan_samples_get_422(client):
    import io

    import numpy as np
    import soundfile as sf

    samples = np.zeros(8000, dtype=np.float32)
    samples[100] = np.nan
    buffer = io.BytesIO()
    sf.write(buffer, samples, 16000, format="WAV", subtype="FLOAT")
    answer = client.post("/predict", files={"file": ("nan.wav", buffer.getvalue())})
    assert answer.status_code == 422 and "NaN" in answer.json()["detail"]


def test_a_text_model_without_a_transcript_gets_422_and_with_one_200(recognizer, make_audio):
    text_recognizer = copy.copy(recognizer)
    text_recognizer.needs_text = True  # what a bundle with a BERT upstream sets; the check is the recognizer's
    with TestClient(create_app(text_recognizer, LIMITS)) as client:
        assert client.get("/labels").json()["needs_text"] is True
        audio = make_audio(1.0)
        missing = client.post("/predict", files={"file": ("a.wav", audio)})
        assert missing.status_code == 422 and "transcript" in missing.json()["detail"]
        given = client.post("/predict", files={"file": ("a.wav", audio)}, data={"text": "I am so happy"})
        assert given.status_code == 200, given.text


def test_docs_page_is_served_without_a_cdn(client):
    page = client.get("/docs")
    assert page.status_code == 200 and "swagger-ui-bundle.js" in page.text
    assert "cdn." not in page.text and "https://" not in page.text.split("<body>")[-1]
    assert client.get("/docs-static/swagger-ui-bundle.js").status_code == 200
    schema = client.get("/openapi.json").json()
    body_ref = schema["paths"]["/predict"]["post"]["requestBody"]["content"]["multipart/form-data"]["schema"]["$ref"]
    fields = schema["components"]["schemas"][body_ref.rsplit("/", 1)[-1]]["properties"]
    assert set(fields) == {"file", "text"}
    assert {"413", "415", "422"} <= set(schema["paths"]["/predict"]["post"]["responses"])
    answer = schema["paths"]["/predict"]["post"]["responses"]["200"]["content"]["application/json"]["schema"]
    assert {r["$ref"].rsplit("/", 1)[-1] for r in answer["anyOf"]} == {"PredictionOut", "TimelineOut"}
    properties = schema["components"]["schemas"]["PredictionOut"]["properties"]
    assert {"label", "probabilities", "duration", "windows"} <= set(properties)


def test_the_page_and_its_assets_are_served_with_a_strict_policy(client):
    page = client.get("/")
    assert page.status_code == 200 and 'id="file-input"' in page.text and 'id="record-button"' in page.text
    assert "default-src 'self'" in page.headers["content-security-policy"]
    for asset in ("/static/app.js", "/static/style.css"):
        answer = client.get(asset)
        assert answer.status_code == 200 and len(answer.content) > 500
    assert "http://" not in page.text and "https://" not in page.text
