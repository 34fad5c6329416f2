"""Audio and manifests built to hurt (issue 14, section 5, items 1, 2, 7, 8, 12): each case once failed.

Memory is measured with tracemalloc, which sees numpy's buffers: what decoding allocates in Python, not the
process's RSS, and no wall-clock time.
"""

from __future__ import annotations

import io
import os
import tracemalloc

import numpy as np
import pytest
import soundfile as sf

from serkit.data.audio import (
    BLOCK_SAMPLES, MAX_SAMPLES_PER_SECOND, audio_info, conform_samples, load_audio, read_frames, read_mono,
)
from serkit.data.check import check_files
from serkit.data.config import DataConfig
from serkit.data.prepare import read_corpus
from serkit.data.corpora.manifest import Manifest
from serkit.errors import AudioError, DataError

MiB = 1024 * 1024


def peak_bytes(function, *args, **kwargs) -> tuple[object, int]:
    """(what function returns or the exception it raised, peak traced allocation while it ran)."""
    tracemalloc.start()
    try:
        try:
            result = function(*args, **kwargs)
        except Exception as e:  # noqa: BLE001 (the caller checks what it got)
            result = e
        return result, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


# -- item 1: many channels ---------------------------------------------------------------------------------


def test_many_channels_are_refused_from_the_header_before_decoding(tmp_path):
    """A few KB of Ogg/Vorbis with 255 channels at 48 kHz decoded to 12 million floats per second (the
    hostile case: 36 KB, 20 s, peak RSS +1 GB); a 1024-channel 8-bit WAV likewise. Refused by audio_info."""
    vorbis = tmp_path / "255ch.ogg"
    sf.write(vorbis, np.zeros((24000, 255), np.float32), 48000, format="OGG", subtype="VORBIS")
    wav = tmp_path / "1024ch.wav"
    sf.write(wav, np.zeros((800, 1024), np.float32), 8000, subtype="PCM_U8")
    for path, numbers in ((vorbis, "255 channels at 48000 Hz are 12,240,000"),
                          (wav, "1024 channels at 8000 Hz are 8,192,000")):
        for read in (audio_info, load_audio, read_mono):
            error, peak = peak_bytes(read, path)
            assert isinstance(error, AudioError), f"{read.__name__}({path.name}) returned {type(error)}"
            assert str(error).startswith(f"{path}: {numbers} samples per second")
            assert f"at most {MAX_SAMPLES_PER_SECOND:,}" in str(error)
            assert peak < 1 * MiB, f"{read.__name__}({path.name}) allocated {peak / MiB:.1f} MiB before refusing"


def test_many_channels_are_mixed_down_block_by_block(tmp_path):
    """32 channels at 48 kHz (the most accepted): 5 s are 30 MiB as float32; decoding all channels and then
    clipping into a copy took 61 MiB. Now memory is the mono result plus one 1 MiB block."""
    rate, channels, seconds = 48000, 32, 5
    assert channels * rate <= MAX_SAMPLES_PER_SECOND
    rng = np.random.default_rng(0)
    path = tmp_path / "32ch.wav"
    sf.write(path, rng.uniform(-0.6, 0.6, (rate * seconds, channels)).astype(np.float32), rate, subtype="PCM_U8")
    all_channels = rate * seconds * channels * 4

    (mono, sample_rate), peak = peak_bytes(read_mono, path)
    assert sample_rate == rate and mono.shape == (rate * seconds,)
    assert peak < 2 * mono.nbytes + 2 * MiB < all_channels / 4, f"read_mono peak {peak / MiB:.1f} MiB"
    wav, peak = peak_bytes(load_audio, path)
    assert wav.shape == (16000 * seconds,)
    assert peak < 3 * mono.nbytes + 2 * MiB < all_channels / 4, f"load_audio peak {peak / MiB:.1f} MiB"

    decoded = sf.read(path, dtype="float32", always_2d=True)[0]
    np.testing.assert_allclose(mono, decoded.mean(axis=1), atol=1e-6)  # the mean of the channels
    np.testing.assert_array_equal(wav, conform_samples(mono, rate))  # and load_audio is it at 16 kHz
    # A span decoded on its own, across block boundaries, is the whole file's samples bit for bit, and an
    # in-memory array of the same samples mixes to the same floats (the predict path for arrays).
    for first, stop in ((0, 1), (8191, 8193), (12345, 200001), (rate * seconds - 7, rate * seconds)):
        np.testing.assert_array_equal(read_mono(path, first, stop)[0], mono[first:stop])
    np.testing.assert_array_equal(conform_samples(decoded, rate), wav)
    # read_frames still gives every channel
    frames, _ = read_frames(path, 100, 300)
    np.testing.assert_array_equal(frames, decoded[100:300])


def test_nan_in_a_later_block_is_still_refused(tmp_path):
    rate = 48000
    samples = np.zeros((rate * 3, 8), np.float32)
    samples[-5, 6] = np.nan  # far past the first block (32768 frames of 8 channels)
    path = tmp_path / "late_nan.wav"
    sf.write(path, samples, rate, subtype="FLOAT")
    with pytest.raises(AudioError, match="late_nan.wav: holds NaN or infinite samples"):
        load_audio(path)
    assert read_mono(path, 0, rate)[0].shape == (rate,)  # a window before it is fine


# -- item 2: a header that does not know the length -----------------------------------------------------------


def test_flac_of_unknown_length_is_measured_by_decoding(tmp_path, unknown_length_flac):
    """STREAMINFO total_samples = 0 made soundfile report 2**63 - 1 frames (2e14 s at 16 kHz)."""
    rate = 16000
    samples = (0.3 * np.sin(np.arange(2 * rate + 123) * 0.05)).astype(np.float32)
    path = tmp_path / "unknown.flac"
    data = unknown_length_flac(samples, rate)
    path.write_bytes(data)
    assert sf.info(path).frames > 2**62  # what libsndfile makes of it

    assert audio_info(path) == (rate, len(samples), 1, len(samples) / rate)
    wav = load_audio(path)
    np.testing.assert_allclose(wav, samples, atol=1 / 2**15)
    # the last frames too: soundfile's read failed there, seeking to the end of a stream of unknown length
    np.testing.assert_array_equal(read_mono(path, len(samples) - 100)[0], wav[-100:])
    np.testing.assert_array_equal(load_audio(path, start=1.5), wav[round(1.5 * rate):])
    upload = io.BytesIO(data)
    assert audio_info(upload, name="upload.flac").frames == len(samples)
    np.testing.assert_array_equal(load_audio(upload, name="upload.flac"), wav)


def test_counting_an_unknown_length_stops_past_max_seconds(tmp_path, monkeypatch, unknown_length_flac):
    """A service that refuses files over max_seconds need not decode a whole (possibly days-long) file."""
    rate = 8000
    path = tmp_path / "long_unknown.flac"
    path.write_bytes(unknown_length_flac(np.zeros(rate * 60, np.float32), rate))
    reads = []
    real_read = sf.SoundFile.read
    monkeypatch.setattr(sf.SoundFile, "read", lambda self, *a, **k: reads.append(1) or real_read(self, *a, **k))
    info = audio_info(path, max_seconds=10.0)
    # one block (BLOCK_SAMPLES mono frames: 32.8 s) passes 10 s: the rest of the file is never decoded
    assert len(reads) == 1 and info.duration == BLOCK_SAMPLES / rate
    assert audio_info(path).duration == 60.0


def test_unknown_length_flac_with_nothing_in_it_holds_no_samples(tmp_path, unknown_length_flac):
    path = tmp_path / "empty_unknown.flac"
    path.write_bytes(unknown_length_flac(np.zeros(10, np.float32), 16000))
    data = path.read_bytes()
    end = 4  # keep the metadata blocks only: each has a 4-byte header (last-block flag, type, 24-bit length)
    while True:
        last, length = data[end] & 0x80, int.from_bytes(data[end + 1:end + 4], "big")
        end += 4 + length
        if last:
            break
    path.write_bytes(data[:end])
    with pytest.raises(AudioError, match="empty_unknown.flac: (holds no audio samples|cannot decode audio)"):
        audio_info(path)


# -- item 7: file names that are not UTF-8 ----------------------------------------------------------------


def test_file_names_that_are_not_utf8_are_read(tmp_path):
    """Legal on Linux; Python holds the bytes as surrogate escapes, which soundfile's str encoding refused
    ("cannot decode audio (surrogates not allowed)")."""
    name = os.fsdecode(b"bad\xff\xfe.wav")
    path = tmp_path / name
    with open(os.fsencode(path), "wb") as f:
        sf.write(f, np.full(8000, 0.25, np.float32), 16000, format="WAV", subtype="FLOAT")
    assert audio_info(path).frames == 8000
    assert audio_info(str(path)).frames == 8000
    np.testing.assert_array_equal(load_audio(str(path)), np.full(8000, 0.25, np.float32))


# -- item 12: unreadable files, devices ---------------------------------------------------------------------


def test_unreadable_file_says_permission_denied(tmp_path, refuse_to_open):
    """libsndfile's own message for it was "cannot decode audio (System error.)"."""
    path = tmp_path / "locked.wav"
    sf.write(path, np.zeros(1600, np.float32), 16000)
    refuse_to_open(path)
    for read in (audio_info, load_audio):
        with pytest.raises(AudioError, match=r"locked.wav: permission denied"):
            read(path)


@pytest.mark.skipif(os.geteuid() == 0, reason="root may read any file: see the test above, which simulates it")
def test_unreadable_file_says_permission_denied_for_real(tmp_path):
    path = tmp_path / "locked.wav"
    sf.write(path, np.zeros(1600, np.float32), 16000)
    path.chmod(0)
    with pytest.raises(AudioError, match=r"locked.wav: permission denied"):
        load_audio(path)


def test_a_device_is_not_a_regular_file(tmp_path):
    with pytest.raises(AudioError, match="/dev/zero: not a file .*device"):
        load_audio("/dev/zero")
    manifest = tmp_path / "m.csv"
    manifest.write_text("path,label,speaker\n/dev/zero,neu,s1\n")
    with pytest.raises(DataError, match=r"m.csv:2: /dev/zero is not a regular file"):
        Manifest.prepare(manifest)


# -- item 8: manifest durations -------------------------------------------------------------------------------


@pytest.fixture
def two_second_files(tmp_path):
    for name in ("a.wav", "b.wav", "c.wav"):
        sf.write(tmp_path / name, np.full(32000, 0.1, np.float32), 16000)
    return tmp_path


def manifest(folder, rows: list[str], header: str = "path,label,speaker,duration"):
    path = folder / "m.csv"
    path.write_text("\n".join([header, *rows]) + "\n")
    return path


@pytest.mark.parametrize("duration", ["1e308", "0", "86401", "1e400"])
def test_absurd_declared_durations_are_refused_when_read(two_second_files, duration):
    path = manifest(two_second_files, [f"a.wav,neu,s1,{duration}", "b.wav,hap,s2,2"])
    with pytest.raises(DataError, match=r"m.csv:2: duration"):
        Manifest.prepare(path)


def test_declared_duration_is_checked_against_the_audio(two_second_files):
    """1e308 s, or 3 s, for a 2 s file passed even --check (0 problems, hours column 300 digits long)."""
    path = manifest(two_second_files, ["a.wav,neu,s1,3", "b.wav,hap,s2,2.01", "c.wav,hap,s3,2"])
    with pytest.raises(DataError, match=r"m.csv:2: duration 3 s does not match the audio: .*a.wav holds 2.000 s"):
        Manifest.prepare(path)
    result = check_files(read_corpus(DataConfig(corpus="manifest", root=str(path)), keep_going=True).prepared)
    assert [(os.path.basename(p.path), p.reason.rsplit("(", 1)[-1]) for p in result.problems] == [
        ("a.wav", f"{path}:2)")]
    assert [u.duration for u in result.prepared.utterances] == [2.0, 2.0]  # 2.01 is within the 50 ms slack


def test_segments_are_checked_against_the_audio_even_with_a_declared_duration(two_second_files):
    """A start past the end got in whenever the row declared a duration (the header was not read)."""
    header = "path,label,speaker,start,end,duration"
    with pytest.raises(DataError, match=r"m.csv:2: segment 50.0-None s lies outside .*a.wav \(2.000 s long\)"):
        Manifest.prepare(manifest(two_second_files, ["a.wav,neu,s1,50,,1", "b.wav,hap,s2,,,2"], header))
    with pytest.raises(DataError, match=r"m.csv:2: duration 1 s does not match end - start = 0.5 s"):
        Manifest.prepare(manifest(two_second_files, ["a.wav,neu,s1,0.5,1,1", "b.wav,hap,s2,,,2"], header))
    with pytest.raises(DataError, match=r"m.csv:2: duration 1.5 s does not match the audio: .*\(segment 1-end s\)"):
        Manifest.prepare(manifest(two_second_files, ["a.wav,neu,s1,1,,1.5", "b.wav,hap,s2,,,2"], header))
    utts = Manifest.prepare(manifest(two_second_files, ["a.wav,neu,s1,0.5,1.5,1", "b.wav,hap,s2,1,,1"],
                                     header)).utterances
    assert [(u.start, u.end, u.duration) for u in utts] == [(0.5, 1.5, 1.0), (1.0, None, 1.0)]
