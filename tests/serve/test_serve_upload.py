"""open_upload: an upload's bytes -> a named in-memory file, or a 4xx naming the upload and the problem."""

from __future__ import annotations

import io
import threading
from concurrent.futures import CancelledError

import numpy as np
import pytest
import soundfile as sf
from starlette.exceptions import HTTPException

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


def test_a_cancel_event_stops_an_inference_before_its_next_window(recognizer, make_audio, monkeypatch):
    """What serve's timeout relies on: the recognizer's public `cancel=` (here one 10 s window per batch)."""
    cancel = threading.Event()
    upload = open_upload(make_audio(25.0), "long.wav", max_seconds=60)
    batches = []
    real_forward = type(recognizer).forward_batch

    def forward_then_cancel(self, wavs, *args):
        batches.append(wavs.shape[0])
        cancel.set()  # asked to stop while the first window runs
        return real_forward(self, wavs, *args)

    monkeypatch.setattr(type(recognizer), "forward_batch", forward_then_cancel)
    with pytest.raises(CancelledError):
        recognizer.predict(upload, batch_seconds=10.0, cancel=cancel)
    assert batches == [1]  # one of the three windows ran
    monkeypatch.undo()
    with pytest.raises(CancelledError):
        recognizer.predict(upload, cancel=cancel)  # already set: nothing runs
    cancel.clear()
    assert recognizer.predict(upload, cancel=cancel).duration == pytest.approx(25.0)
