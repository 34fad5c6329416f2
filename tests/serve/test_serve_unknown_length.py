"""A FLAC whose header leaves the length unknown (STREAMINFO total_samples = 0, legal), uploaded to the service
(issue 14, section 5, item 2): the data layer counts such a length by decoding, and the service asks it to stop
just past `--max-seconds`. Before, open_upload counted the whole file: a few KB of silent FLAC can hold days.
"""

from __future__ import annotations

import io

import numpy as np
import pytest
import soundfile as sf
from fastapi.testclient import TestClient
from starlette.exceptions import HTTPException

from serkit.data.audio import BLOCK_SAMPLES
from serkit.serve import ServeLimits, create_app
from serkit.serve.upload import open_upload

RATE = 8000
LONG_SECONDS = 600  # 4.8 M samples: 19 blocks of BLOCK_SAMPLES, in 14 KB of FLAC


@pytest.fixture(scope="module")
def long_flac(unknown_length_flac) -> bytes:
    data = unknown_length_flac(np.zeros(RATE * LONG_SECONDS, np.float32), RATE)
    assert sf.info(io.BytesIO(data)).frames > 2**62  # what libsndfile makes of the header
    return data


@pytest.fixture
def decoded(monkeypatch) -> list[int]:
    """Frames each SoundFile.read call returned, while the test runs."""
    counts: list[int] = []
    real_read = sf.SoundFile.read

    def read(self, *args, **kwargs):
        frames = real_read(self, *args, **kwargs)
        counts.append(len(frames))
        return frames

    monkeypatch.setattr(sf.SoundFile, "read", read)
    return counts


def test_an_unknown_length_over_the_limit_is_refused_after_decoding_just_past_it(long_flac, decoded):
    with pytest.raises(HTTPException) as refused:
        open_upload(long_flac, "days.flac", max_seconds=10)
    assert refused.value.status_code == 413
    # one block (32.8 s at 8 kHz) passes 10 s; all 600 s took 19 blocks and an empty read before
    assert decoded == [BLOCK_SAMPLES]
    # the length is not known, only that it is over the limit
    assert refused.value.detail == ("'days.flac' is longer than 10 s (its header does not give the length: decoded "
                                    "up to the limit); this server accepts at most 10 s (--max-seconds)")


def test_an_unknown_length_within_the_limit_is_measured_and_predicted(recognizer, tmp_path, unknown_length_flac):
    seconds = 3.0
    t = np.arange(int(seconds * RATE)) / RATE
    samples = (0.3 * np.sin(2 * np.pi * 180 * t) * (0.6 + 0.4 * np.sin(2 * np.pi * 3 * t))).astype(np.float32)
    upload = open_upload(unknown_length_flac(samples, RATE), "short.flac", max_seconds=10)
    prediction = recognizer.predict(upload)
    sf.write(tmp_path / "known.flac", samples, RATE, format="FLAC", subtype="PCM_16")  # the same, length known
    expected = recognizer.predict(tmp_path / "known.flac")
    assert prediction.duration == pytest.approx(seconds) == expected.duration
    assert prediction.probabilities == pytest.approx(expected.probabilities, abs=1e-6)


def test_the_service_answers_413_for_it(recognizer, long_flac, decoded):
    limits = ServeLimits(max_upload_bytes=2_000_000, max_seconds=30, max_concurrent=1)
    with TestClient(create_app(recognizer, limits)) as client:
        answer = client.post("/predict", files={"file": ("days.flac", long_flac, "audio/flac")})
        assert answer.status_code == 413, answer.text
        assert sum(decoded) <= 30 * RATE + BLOCK_SAMPLES  # never the whole 600 s
        assert "longer than 30 s" in answer.json()["detail"] and "--max-seconds" in answer.json()["detail"]
        assert client.get("/health").json()["running"] == 0
