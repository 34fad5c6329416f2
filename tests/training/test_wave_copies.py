"""Waveform copies (speed, gain, noise): fixed per utterance and k, what they say they are, chosen per (seed,
epoch, utterance) whatever the rank or batch order, made by the training loader only, cached once, and refused
with their key when out of range."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from serkit.config import load_config
from serkit.data import wave_copies
from serkit.data.dataset import UtteranceDataset, build_loader
from serkit.data.prepare import prepare_corpus
from serkit.data.sampler import DurationBatchSampler
from serkit.data.wave_copies import CopyChoices, WaveCopies, perturb, variant_parameters
from serkit.errors import ConfigError

RATE = 16000


def tone(freq: float = 440.0, seconds: float = 1.0) -> np.ndarray:
    t = np.arange(int(RATE * seconds)) / RATE
    return (0.3 * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def peak_hz(wav: np.ndarray) -> float:
    return float(np.argmax(np.abs(np.fft.rfft(wav)))) * RATE / wav.size


def test_copies_are_fixed_by_utterance_and_k_and_stay_in_their_ranges():
    ranges = ([0.9, 1.1], [-6, 6], [10, 30])
    params = {(utt, k): variant_parameters(utt, k, *ranges) for utt in ("a", "b") for k in (1, 2, 3)}
    assert params[("a", 1)] == variant_parameters("a", 1, *ranges)  # the same copy every time
    assert len({p["speed"] for p in params.values()}) == 6  # every (utterance, k) its own
    for p in params.values():
        assert 0.9 <= p["speed"] <= 1.1 and -6 <= p["gain_db"] <= 6 and 10 <= p["snr_db"] <= 30
    copies = WaveCopies(3, *ranges)
    wav = tone()
    assert np.array_equal(copies.make(wav, "a", 2), copies.make(wav, "a", 2))  # byte-identical: the cache's key
    assert not np.array_equal(copies.make(wav, "a", 2), copies.make(wav, "a", 3))
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


def test_choices_depend_on_seed_epoch_and_utterance_only():
    """Every rank's shard of an epoch pairs each index with the epoch's one choice for it; a new epoch draws
    again (and reaches the wrapped sampler); every k in 0..K is drawn."""
    durations = np.random.default_rng(0).uniform(1, 4, 200).tolist()

    def pairs(rank: int, replicas: int, epoch: int) -> tuple[dict[int, int], CopyChoices]:
        choices = CopyChoices(DurationBatchSampler(durations, 20.0, seed=3, num_replicas=replicas, rank=rank),
                              len(durations), variants=2, seed=3)
        choices.sampler.set_epoch(epoch)  # the path Lightning takes
        return {i: k for batch in choices for i, k in batch}, choices

    whole, single = pairs(0, 1, 1)
    assert sorted(whole) == list(range(200)) and set(whole.values()) == {0, 1, 2}
    assert whole == dict(enumerate(single.choices().tolist()))
    shards = [pairs(rank, 2, 1)[0] for rank in (0, 1)]
    assert all(whole[i] == k for shard in shards for i, k in shard.items())  # the same draw on every rank
    later, _ = pairs(0, 1, 2)
    assert later != whole
    assert [b for b in pairs(0, 1, 2)[1].batches] != [b for b in single.batches]  # the batches reshuffled too


def test_the_dataset_makes_copy_k_and_refuses_one_it_does_not_have(tmp_path):
    import soundfile as sf

    from serkit.data.utterance import Utterance

    sf.write(tmp_path / "a.wav", tone(), RATE)
    utt = Utterance(id="a", path=str(tmp_path / "a.wav"), label="x", speaker="s", group="1", duration=1.0)
    copies = WaveCopies(2, [0.8, 1.2], [0, 0])
    dataset = UtteranceDataset([utt], ["x"], copies=copies)
    plain = dataset[0].wav.numpy()
    assert np.array_equal(dataset[(0, 0)].wav.numpy(), plain)
    assert np.array_equal(dataset[(0, 2)].wav.numpy(), copies.make(plain, "a", 2))
    with pytest.raises(IndexError, match="copy 3 of 'a': this dataset has 2 copies per clip"):
        dataset[(0, 3)]
    with pytest.raises(IndexError, match="has 0 copies"):
        UtteranceDataset([utt], ["x"])[(0, 1)]


@pytest.mark.parametrize("override, key", [
    ("train.augment.wave_variants=-1", "wave_variants"), ("train.augment.speed=[1.1,0.9]", "speed"),
    ("train.augment.speed=[0.1,1.0]", "speed"), ("train.augment.gain_db=[-6]", "gain_db"),
    ("train.augment.noise_snr_db=[30,10]", "noise_snr_db"),
])
def test_bad_ranges_are_refused_with_their_key(override, key):
    with pytest.raises(ConfigError, match=rf"train\.augment\.{key}"):
        load_config(overrides=["train.augment.wave_variants=2", override])


def test_a_range_without_copies_is_refused_and_odd_values_too():
    with pytest.raises(ConfigError, match=r"train\.augment\.speed' sets the copies' range, but key "
                                          r"'train\.augment\.wave_variants' is 0: .* or the range back to its "
                                          r"default \(\[0\.9, 1\.1\]\)"):
        load_config(overrides=["train.augment.speed=[0.8,1.2]"])
    assert load_config(overrides=["train.augment.speed=[0.9,1.1]"]).train.augment.wave_copies() is None
    noisy = load_config(overrides=["train.augment.wave_variants=1", "train.augment.noise_snr_db=[10,30]"])
    assert noisy.train.augment.wave_copies() == WaveCopies(1, [0.9, 1.1], [-6.0, 6.0], [10.0, 30.0])
    for bad in (dict(variants=True), dict(variants=1, speed={0.9, 1.1}), dict(variants=1, gain_db=[0, float("nan")])):
        with pytest.raises(ConfigError):
            WaveCopies(**bad)
    assert WaveCopies(np.int64(2), [np.float32(0.9), 1.0]).variants == 2  # numpy numbers are numbers


def test_a_fold_copies_training_clips_only_and_caches_each_copy_once(tiny_config, synth_iemocap_root, tmp_path,
                                                                     monkeypatch):
    """Every copy made is of a training clip (validation and test ids never get one); the reported test metrics
    are what the bundle scores on the plain clips; the feature cache holds the clips plus at most K copies of each
    training clip, and a second fit of the same fold encodes nothing new."""
    from serkit.bundle import load_bundle
    from serkit.data.corpora import CORPORA
    from serkit.training.fold import run_fold
    from serkit.training.predictions import evaluate_model

    torch.set_num_threads(1)
    made: list[str] = []
    original = wave_copies.WaveCopies.make

    def spy(self, wav, utterance_id, k):
        made.append(utterance_id)
        return original(self, wav, utterance_id, k)

    monkeypatch.setattr(wave_copies.WaveCopies, "make", spy)
    cache = tmp_path / "cache"
    cfg = load_config(tiny_config, overrides=[
        f"data.root={synth_iemocap_root}", "train.max_epochs=6", "train.top_k=2", f"train.feature_cache={cache}",
        "train.augment.wave_variants=2"])
    data = prepare_corpus(cfg.data, tmp_path / "audio_check.json")
    split = CORPORA.get("iemocap").split(data.prepared.utterances, 1, **cfg.data.options)
    result = run_fold(cfg, split, data.classes, tmp_path / "fold_1")
    train_ids = {u.id for u in split.train}
    assert set(made) <= train_ids and len(set(made)) > len(train_ids) // 2
    assert 2 * len(split.train) < len(made) < 6 * len(split.train)  # about 2 of 3 draws are copies
    model, _, _ = load_bundle(tmp_path / "fold_1" / "model")
    loader = build_loader(split.test, data.classes, cfg.data.max_batch_seconds, shuffle=False)
    assert evaluate_model(model, loader, data.classes).to_dict() == result.test.to_dict()
    entries = sorted(cache.rglob("*.safetensors"))
    plain = len(split.train) + len(split.valid) + len(split.test)
    assert plain < len(entries) <= plain + 2 * len(split.train)
    run_fold(cfg, split, data.classes, tmp_path / "fold_1_again")
    assert sorted(cache.rglob("*.safetensors")) == entries  # the copies were read back, not encoded anew


def test_worker_processes_load_the_same_copies(tmp_path):
    """(index, k) pairs cross into DataLoader workers: 2 workers give the batches one process gives."""
    import soundfile as sf

    from serkit.data.utterance import Utterance

    utterances = []
    for i in range(12):
        sf.write(tmp_path / f"{i}.wav", tone(200 + 30 * i, 0.3 + 0.05 * i), RATE)
        utterances.append(Utterance(id=f"u{i}", path=str(tmp_path / f"{i}.wav"), label="x", speaker="s", group="1",
                                    duration=0.3 + 0.05 * i))
    copies = WaveCopies(2, [0.8, 1.2], [-3, 3], [20, 30])

    def batches(workers: int) -> list:
        loader = build_loader(utterances, ["x"], 1.5, shuffle=True, seed=4, num_workers=workers, copies=copies)
        loader.batch_sampler.sampler.set_epoch(3)
        return [(b.ids, b.wavs, b.wav_lens) for b in loader]

    alone, workers = batches(0), batches(2)
    assert len(alone) == len(workers) > 1
    for (ids, wavs, lens), (ids2, wavs2, lens2) in zip(alone, workers):
        assert ids == ids2 and torch.equal(lens, lens2) and torch.equal(wavs, wavs2)
    plain = {u.id: len(UtteranceDataset([u], ["x"])[0].wav) for u in utterances}
    assert any(int(n) != plain[i] for ids, _, lens in alone for i, n in zip(ids, lens))  # some are copies
