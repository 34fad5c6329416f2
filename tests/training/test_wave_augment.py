"""Waveform copies (speed, gain, noise): fixed per utterance and k, what they say they are, drawn for training
batches only, cached once, and refused with their key when out of range."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from serkit.config import load_config
from serkit.data.batch import Batch, pad_waves
from serkit.data.prepare import prepare_corpus
from serkit.errors import ConfigError
from serkit.train_config import AugmentConfig
from serkit.training import wave_augment
from serkit.data.wave_copies import perturb, variant_parameters
from serkit.training.wave_augment import WavePerturbation

RATE = 16000


def tone(freq: float = 440.0, seconds: float = 1.0) -> np.ndarray:
    t = np.arange(int(RATE * seconds)) / RATE
    return (0.3 * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def peak_hz(wav: np.ndarray) -> float:
    spectrum = np.abs(np.fft.rfft(wav))
    return float(np.argmax(spectrum)) * RATE / wav.size


def test_copies_are_fixed_by_utterance_and_k_and_stay_in_their_ranges():
    cfg = AugmentConfig(wave_variants=3, speed=[0.9, 1.1], gain_db=[-6, 6], noise_snr_db=[10, 30])
    ranges = ([0.9, 1.1], [-6, 6], [10, 30])
    params = {(utt, k): variant_parameters(utt, k, *ranges) for utt in ("a", "b") for k in (1, 2, 3)}
    assert params[("a", 1)] == variant_parameters("a", 1, *ranges)  # the same copy every time
    assert len({p["speed"] for p in params.values()}) == 6  # every (utterance, k) its own
    for p in params.values():
        assert 0.9 <= p["speed"] <= 1.1 and -6 <= p["gain_db"] <= 6 and 10 <= p["snr_db"] <= 30
    copy = WavePerturbation(cfg)
    wav = tone()
    assert np.array_equal(copy.copy(wav, "a", 2), copy.copy(wav, "a", 2))  # byte-identical: the cache's key
    assert not np.array_equal(copy.copy(wav, "a", 2), copy.copy(wav, "a", 3))
    # no noise range: the same speed and gain as with one (the three draws are always made)
    quiet = variant_parameters("a", 1, [0.9, 1.1], [-6, 6], None)
    assert quiet["snr_db"] is None and quiet["speed"] == params[("a", 1)]["speed"]


def test_speed_changes_length_and_pitch_together():
    wav = tone(440.0, 2.0)
    fast = perturb(wav, speed=1.1, gain_db=0.0, snr_db=None)
    slow = perturb(wav, speed=0.9, gain_db=0.0, snr_db=None)
    assert abs(fast.size - wav.size / 1.1) <= 2 and abs(slow.size - wav.size / 0.9) <= 2
    assert peak_hz(fast) == pytest.approx(484.0, abs=2) and peak_hz(slow) == pytest.approx(396.0, abs=2)
    assert np.array_equal(perturb(wav, 1.0, 0.0, None), wav)


def test_gain_scales_and_noise_meets_its_snr():
    wav = tone()
    np.testing.assert_allclose(perturb(wav, 1.0, 6.0, None), wav * 10 ** (6 / 20), rtol=1e-6)
    noisy = perturb(wav, 1.0, 0.0, 10.0, noise_seed=7)
    snr = 10 * np.log10(np.mean(wav.astype(np.float64) ** 2) / np.mean((noisy - wav).astype(np.float64) ** 2))
    assert snr == pytest.approx(10.0, abs=0.3)
    assert np.array_equal(noisy, perturb(wav, 1.0, 0.0, 10.0, noise_seed=7))


def test_a_batch_keeps_or_replaces_each_clip_with_one_of_its_copies():
    cfg = AugmentConfig(wave_variants=2, speed=[0.8, 1.2], gain_db=[0, 0])
    augment = WavePerturbation(cfg)
    waves = [torch.from_numpy(tone(300 + 50 * i, 0.5 + 0.1 * i)) for i in range(4)]
    wavs, lens = pad_waves(waves)
    batch = Batch(wavs, lens, torch.tensor([0, 1, 2, 3]), ["u0", "u1", "u2", "u3"], None)
    torch.manual_seed(0)
    seen = set()
    for _ in range(20):
        out = augment(batch)
        assert out.ids == batch.ids and torch.equal(out.labels, batch.labels)
        for b, wav in enumerate(waves):
            got = out.wavs[b, : int(out.wav_lens[b])].numpy()
            assert not out.wavs[b, int(out.wav_lens[b]):].any()  # zero padding after the real samples
            options = [wav.numpy()] + [augment.copy(wav.numpy(), batch.ids[b], k) for k in (1, 2)]
            matches = [k for k, option in enumerate(options) if option.shape == got.shape and np.array_equal(option, got)]
            assert len(matches) == 1
            seen.add(matches[0])
    assert seen == {0, 1, 2}  # the clip itself and both copies are drawn


@pytest.mark.parametrize("override, key", [
    ("train.augment.wave_variants=-1", "wave_variants"), ("train.augment.speed=[1.1,0.9]", "speed"),
    ("train.augment.speed=[0.1,1.0]", "speed"), ("train.augment.gain_db=[-6]", "gain_db"),
    ("train.augment.noise_snr_db=[30,10]", "noise_snr_db"),
])
def test_bad_ranges_are_refused_with_their_key(override, key):
    with pytest.raises(ConfigError, match=rf"train\.augment\.{key}"):
        load_config(overrides=[override])


def test_a_fold_perturbs_training_batches_only_and_caches_each_copy_once(tiny_config, synth_iemocap_root,
                                                                         tmp_path, monkeypatch):
    """Every batch the perturbation sees is a training batch (validation and test ids never reach it); the
    reported test metrics are what the bundle scores on the plain clips; the feature cache holds at most the
    clips plus K copies of each training clip, and a second fit of the same fold encodes nothing new."""
    from serkit.bundle import load_bundle
    from serkit.data.corpora import CORPORA
    from serkit.data.dataset import build_loader
    from serkit.training.fold import run_fold
    from serkit.training.predictions import evaluate_model

    torch.set_num_threads(1)
    seen: list[str] = []
    original = wave_augment.WavePerturbation.__call__

    def spy(self, batch):
        seen.extend(batch.ids)
        return original(self, batch)

    monkeypatch.setattr(wave_augment.WavePerturbation, "__call__", spy)
    cache = tmp_path / "cache"
    cfg = load_config(tiny_config, overrides=[
        f"data.root={synth_iemocap_root}", "train.max_epochs=6", "train.top_k=2", f"train.feature_cache={cache}",
        "train.augment.wave_variants=2"])
    data = prepare_corpus(cfg.data, tmp_path / "audio_check.json")
    split = CORPORA.get("iemocap").split(data.prepared.utterances, 1, **cfg.data.options)
    result = run_fold(cfg, split, data.classes, tmp_path / "fold_1")
    train_ids = {u.id for u in split.train}
    assert seen and set(seen) <= train_ids
    assert len(seen) == 6 * len(split.train)  # every training clip, once an epoch
    model, _, _ = load_bundle(tmp_path / "fold_1" / "model")
    loader = build_loader(split.test, data.classes, cfg.data.max_batch_seconds, shuffle=False)
    assert evaluate_model(model, loader, data.classes).to_dict() == result.test.to_dict()
    entries = sorted(cache.rglob("*.safetensors"))
    plain = len(split.train) + len(split.valid) + len(split.test)
    assert plain < len(entries) <= plain + 2 * len(split.train)
    run_fold(cfg, split, data.classes, tmp_path / "fold_1_again")
    assert sorted(cache.rglob("*.safetensors")) == entries  # the copies were read back, not encoded anew
