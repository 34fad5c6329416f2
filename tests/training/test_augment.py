"""Training-time augmentation, label smoothing and early stopping: masks stay inside real frames, everything is
off at evaluation (validation, test, bundles), mixup mixes as it says, early stopping stops, bad values are refused."""

from __future__ import annotations

import csv

import pytest
import torch

from serkit.bundle import load_bundle
from serkit.config import load_config
from serkit.data.prepare import prepare_corpus
from serkit.downstream import AggregatorConfig
from serkit.errors import ConfigError
from serkit.model import ModelConfig, build_model
from serkit.train_config import AugmentConfig
from serkit.training.augment import FrameMasking, mixup
from serkit.training.fold import run_fold
from serkit.upstream.hf import HFConfig


def test_time_masks_stay_inside_real_frames_and_within_their_width():
    torch.manual_seed(0)
    frames = torch.randn(64, 50, 8) + 10  # never 0 by chance
    lens = torch.randint(1, 51, (64,))
    masked = FrameMasking(AugmentConfig(time_masks=2, time_mask_width=0.2))(frames, lens)
    zeroed = (masked == 0).all(dim=-1)  # [B, T]: a time mask zeroes every channel of a frame
    assert zeroed.any()
    for row, length in enumerate(lens.tolist()):
        assert not zeroed[row, length:].any()  # padding is never touched
        assert int(zeroed[row].sum()) <= 2 * int(0.2 * length)  # two spans of at most 20 % each
    assert torch.equal(masked[~zeroed], frames[~zeroed])


def test_channel_masks_zero_whole_channels():
    torch.manual_seed(1)
    frames = torch.randn(16, 30, 40) + 10
    lens = torch.full((16,), 30)
    masked = FrameMasking(AugmentConfig(channel_masks=1, channel_mask_width=0.25))(frames, lens)
    zeroed = (masked == 0).all(dim=1)  # [B, D]
    assert zeroed.any() and int(zeroed.sum(dim=1).max()) <= 10
    assert ((masked == 0) == zeroed.unsqueeze(1)).all()  # a masked channel is masked over every frame


def test_mixup_mixes_embeddings_with_a_partner():
    torch.manual_seed(2)
    x = torch.randn(8, 5)
    mixed, partner, lam = mixup(x, alpha=0.4)
    assert 0 <= lam <= 1 and sorted(partner.tolist()) == list(range(8))
    torch.testing.assert_close(mixed, lam * x + (1 - lam) * x[partner])


@pytest.fixture
def tiny_model(tmp_path):
    from serkit.upstream.tiny import save_tiny_speech_model

    source = save_tiny_speech_model(tmp_path / "w2v2", "wav2vec2")
    cfg = ModelConfig(upstreams=[HFConfig(source=str(source), freeze="all")],
                      aggregators=[AggregatorConfig(name="stats")])
    return build_model(cfg, num_classes=4)


def test_frame_masks_act_in_training_mode_only(tiny_model):
    torch.manual_seed(3)
    wavs, lens = torch.randn(3, 16000), torch.tensor([16000, 12000, 8000])
    tiny_model.eval()
    plain = tiny_model.embed(wavs, lens)
    tiny_model.frame_augment = FrameMasking(AugmentConfig(time_masks=2, time_mask_width=0.5, channel_masks=2))
    assert torch.equal(tiny_model.embed(wavs, lens), plain)  # eval: untouched
    tiny_model.train()
    assert not torch.allclose(tiny_model.embed(wavs, lens), plain)
    assert set(tiny_model.state_dict()) == set(build_model(tiny_model_cfg(tiny_model), 4).state_dict())


def tiny_model_cfg(model) -> ModelConfig:
    return ModelConfig(upstreams=model.upstream_cfgs, aggregators=[AggregatorConfig(name="stats")])


@pytest.mark.parametrize("override, key", [
    ("train.augment.time_masks=-1", "time_masks"), ("train.augment.channel_mask_width=1.5", "channel_mask_width"),
    ("train.augment.mixup=-0.2", "mixup"), ("train.label_smoothing=1", "label_smoothing"),
    ("train.early_stopping=-2", "early_stopping"),
])
def test_bad_values_are_refused_with_their_key(override, key):
    with pytest.raises(ConfigError, match=rf"train\.(augment\.)?{key}"):
        load_config(overrides=[override])


def test_fold_with_every_option_evaluates_without_augmentation_and_stops_early(tiny_config, synth_iemocap_root,
                                                                              tmp_path):
    """A fold trained with masks, mixup, smoothing and early stopping: the reported test metrics are exactly what
    the bundle (which knows nothing of augmentation) scores, so evaluation never saw a mask; it stopped early."""
    from serkit.data.corpora import CORPORA
    from serkit.data.dataset import build_loader
    from serkit.training.predictions import evaluate_model

    torch.set_num_threads(1)
    cfg = load_config(tiny_config, overrides=[
        f"data.root={synth_iemocap_root}", "train.max_epochs=30", "train.lr_downstream=1e-5", "train.early_stopping=2",
        "train.label_smoothing=0.1", "train.augment.time_masks=2", "train.augment.channel_masks=2",
        "train.augment.mixup=0.4", "train.top_k=2"])
    data = prepare_corpus(cfg.data, tmp_path / "audio_check.json")
    prepared, labels = data.prepared, data.classes
    split = CORPORA.get("iemocap").split(prepared.utterances, 1, **cfg.data.options)
    result = run_fold(cfg, split, labels, tmp_path / "fold_1")
    with open(tmp_path / "fold_1" / "logs" / "metrics.csv") as log:
        epochs = {int(row["epoch"]) for row in csv.DictReader(log) if row.get("val_ua")}
    assert epochs and max(epochs) < 29, "early stopping did not stop a run that cannot improve"
    model, _, _ = load_bundle(tmp_path / "fold_1" / "model")
    assert model.frame_augment is None
    loader = build_loader(split.test, labels, cfg.data.max_batch_seconds, shuffle=False)
    assert evaluate_model(model, loader, labels).to_dict() == result.test.to_dict()
