"""open_upload: an upload's bytes -> a named in-memory file, or a 4xx naming the upload and the problem."""

from __future__ import annotations

import io
import threading

import numpy as np
import pytest
import soundfile as sf
from starlette.exceptions import HTTPException

from serkit.serve.slots import InferenceStopped
from serkit.serve.upload import open_upload


def test_an_upload_is_read_from_memory_under_its_name(recognizer, make_audio, tmp_path):
    data = make_audio(1.5, sample_rate=22050, channels=2, seed=3, format="FLAC")
    upload = open_upload(data, "../../etc/passwd.flac", max_seconds=10)
    prediction = recognizer.predict(upload)
    assert prediction.source == "../../etc/passwd.flac"  # a label only: nothing is opened by that name
    (tmp_path / "same.flac").write_bytes(data)
    from_disk = recognizer.predict(tmp_path / "same.flac")
    assert prediction.duration == pytest.approx(1.5) == from_disk.duration
    assert prediction.probabilities == pytest.approx(from_disk.probabilities, abs=1e-6)


@pytest.mark.parametrize("data, status, words", [
    (b"", 400, "is empty"),
    (b"this is plain text, not audio" * 20, 415, "cannot decode"),
    (b"RIFF\x00\x00\x00\x00WAVEfmt ", 415, "cannot decode"),  # a WAV header cut short
])
def test_unusable_uploads_get_a_4xx_naming_the_file(data, status, words):
    with pytest.raises(HTTPException) as refused:
        open_upload(data, "clip.wav", max_seconds=10)
    assert refused.value.status_code == status
    assert words in refused.value.detail and "'clip.wav'" in refused.value.detail


def test_a_file_with_no_samples_gets_422():
    buffer = io.BytesIO()
    sf.write(buffer, np.zeros((0, 1), dtype=np.float32), 16000, format="WAV")
    with pytest.raises(HTTPException) as refused:
        open_upload(buffer.getvalue(), "silence.wav", max_seconds=10)
    assert refused.value.status_code == 422 and "no audio samples" in refused.value.detail


def test_audio_longer_than_the_limit_gets_413_from_the_header(make_audio):
    data = make_audio(3.0, sample_rate=8000)
    with pytest.raises(HTTPException) as refused:
        open_upload(data, "long.wav", max_seconds=2.5)
    assert refused.value.status_code == 413
    assert "3.0 s long" in refused.value.detail and "at most 2.5 s" in refused.value.detail
    assert open_upload(data, "long.wav", max_seconds=3.0).name == "long.wav"  # exactly at the limit is fine


def test_an_upload_stops_an_inference_at_its_next_window_once_told(recognizer, make_audio):
    stop = threading.Event()
    upload = open_upload(make_audio(25.0), "long.wav", max_seconds=60, stop=stop)
    upload.seek(100, io.SEEK_SET)  # soundfile's seeks (offset, whence) are never interrupted
    stop.set()
    assert upload.seek(0, io.SEEK_SET) == 0 and upload.seek(10, io.SEEK_CUR) == 10
    with pytest.raises(InferenceStopped, match="'long.wav'"):
        upload.seek(0)  # the data layer's rewind before each window
    with pytest.raises(InferenceStopped):
        recognizer.predict(upload)  # and so the recognizer stops before its first window
    stop.clear()
    assert recognizer.predict(upload).duration == pytest.approx(25.0)
