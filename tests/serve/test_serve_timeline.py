"""POST /predict?segments=vad in process (TestClient): the recognizer's timeline, its schema, and the refusals
(an unknown segments value; a server without the vad extra)."""

from __future__ import annotations

import io
import sys

import pytest
import soundfile as sf
from fastapi.testclient import TestClient

from serkit.serve import ServeLimits, create_app
from serkit_synth.montage import synthetic_talk

pytest.importorskip("silero_vad", reason="the vad extra (pip install 'serkit[vad]') is not installed")


@pytest.fixture(scope="module")
def client(recognizer):
    with TestClient(create_app(recognizer, ServeLimits(max_seconds=30))) as client:
        yield client


@pytest.fixture(scope="module")
def talk_wav() -> tuple[bytes, list]:
    samples, spans = synthetic_talk([(1.0, 2.0), (1.2, 2.5)])
    buffer = io.BytesIO()
    sf.write(buffer, samples, 16000, format="WAV")
    return buffer.getvalue(), spans


def test_segments_vad_answers_the_recognizers_timeline(client, recognizer, talk_wav, tmp_path):
    data, spans = talk_wav
    answer = client.post("/predict?segments=vad", files={"file": ("talk.wav", data, "audio/wav")})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    (tmp_path / "talk.wav").write_bytes(data)
    expected = recognizer.predict(tmp_path / "talk.wav", segments="vad").to_dict()
    assert body["source"] == "talk.wav" and "windows" not in body
    assert [(s["start"], s["end"], s["label"]) for s in body["segments"]] == \
        [(s["start"], s["end"], s["label"]) for s in expected["segments"]]
    assert len(body["segments"]) == 2 and body["label"] == expected["label"]
    for segment, (start, end) in zip(body["segments"], spans):
        assert abs(segment["start"] - start) <= 0.25 and abs(segment["end"] - end) <= 0.25
        assert segment["speaker"] is None
    assert body["speech_seconds"] == pytest.approx(expected["speech_seconds"])
    assert body["probabilities"] == pytest.approx(expected["probabilities"], abs=1e-6)


def test_default_and_explicit_windows_answer_as_before(client, talk_wav):
    data, _ = talk_wav
    plain = client.post("/predict", files={"file": ("talk.wav", data)}).json()
    windows = client.post("/predict?segments=windows", files={"file": ("talk.wav", data)}).json()
    assert plain == windows and set(plain) == {"source", "label", "probabilities", "duration", "windows"}


def test_silence_has_no_segments_and_no_label(client):
    buffer = io.BytesIO()
    sf.write(buffer, [0.0] * 32000, 16000, format="WAV")
    body = client.post("/predict?segments=vad", files={"file": ("quiet.wav", buffer.getvalue())}).json()
    assert body["segments"] == [] and body["label"] is None and body["probabilities"] == {}
    assert body["speech_seconds"] == 0.0 and body["duration"] == 2.0


def test_unknown_segments_value_is_refused(client, talk_wav):
    answer = client.post("/predict?segments=speakers", files={"file": ("talk.wav", talk_wav[0])})
    assert answer.status_code == 422
    assert answer.json()["detail"].startswith("query parameter 'segments': Input should be 'windows' or 'vad'")


def test_without_the_vad_extra_the_answer_says_how_to_install(client, talk_wav, monkeypatch):
    from serkit.inference import vad

    vad.load_vad.cache_clear()
    monkeypatch.setitem(sys.modules, "silero_vad", None)
    try:
        answer = client.post("/predict?segments=vad", files={"file": ("talk.wav", talk_wav[0])})
    finally:
        vad.load_vad.cache_clear()
    assert answer.status_code == 501
    assert "pip install 'serkit[vad]'" in answer.json()["detail"]


def test_openapi_documents_both_answers(client):
    schema = client.get("/openapi.json").json()
    answer = schema["paths"]["/predict"]["post"]["responses"]["200"]["content"]["application/json"]["schema"]
    names = {ref["$ref"].rsplit("/", 1)[-1] for ref in answer["anyOf"]}
    assert names == {"PredictionOut", "TimelineOut"}
    parameters = {p["name"]: p for p in schema["paths"]["/predict"]["post"]["parameters"]}
    assert parameters["segments"]["schema"]["enum"] == ["windows", "vad"]
