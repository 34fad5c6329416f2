"""The RAVDESS experiment configs of docs/results.md (the systems the baseline is compared with): each one
merges over common.yaml (and labels4.yaml) into a valid experiment, with the settings results.md states."""

from __future__ import annotations

from pathlib import Path

import pytest

import serkit
from serkit.config import load_config
from serkit.model import check_model_config

CONFIGS = Path(serkit.__file__).parent / "configs" / "ravdess"
# the EmoBox-fold systems run Whisper as it was trained (pad); the earlier balanced-fold ones crop unless *_pad
PAD_SYSTEMS = ("whisper_base_stats", "whisper_base_partial", "whisper_base_lora", "whisper_tiny_stats",
               "whisper_base_late_fusion_stats")
SYSTEMS = sorted(p.name for p in CONFIGS.glob("*.yaml") if p.name not in ("common.yaml", "labels4.yaml"))


def test_there_are_the_systems_of_the_results_table():
    assert {"fbank_ecapa.yaml", "whisper_tiny_mean.yaml", "whisper_tiny_mean_pad.yaml", "whisper_base_mean.yaml",
            "whisper_tiny_ecapa.yaml", "whisper_base_ecapa.yaml", "whisper_early_fusion_ecapa.yaml",
            "whisper_late_fusion_mean.yaml", "whisper_late_fusion_ecapa.yaml", "whisper_base_stats.yaml",
            "whisper_base_stats_aug.yaml", "whisper_base_partial.yaml", "whisper_base_lora.yaml"} <= set(SYSTEMS)


@pytest.mark.parametrize("system", SYSTEMS)
@pytest.mark.parametrize("four_classes", [False, True])
def test_config_merges_into_a_valid_experiment(system, four_classes):
    files = [CONFIGS / "common.yaml", CONFIGS / system] + ([CONFIGS / "labels4.yaml"] if four_classes else [])
    cfg = load_config(*files)
    check_model_config(cfg.model)
    assert cfg.data.corpus == "ravdess" and cfg.name == f"ravdess_{system.removesuffix('.yaml')}"
    assert cfg.data.labels == (["neutral", "happy", "angry", "sad"] if four_classes else [])
    assert cfg.train.average and cfg.train.top_k == 5 and cfg.train.monitor == "ua"
    frozen = all(u.freeze == "all" or u.freeze.startswith("bottom:") for u in cfg.model.upstreams)
    # the cache is on exactly where it can work: every upstream frozen, or with a frozen bottom
    assert (cfg.train.feature_cache is not None) == frozen
    for upstream in cfg.model.upstreams:
        if upstream.name == "whisper":
            padded = system.endswith("_pad.yaml") or system.startswith(PAD_SYSTEMS)
            assert upstream.whisper_input == ("pad" if padded else "crop")
            assert upstream.layers == "weighted"


def test_the_wave_copy_recipe_is_the_command_results_md_ran():
    """whisper_base_stats_aug_wave2_e75.yaml is the stats head's config with the overrides its results.md row was
    first run with (train.augment.wave_variants=2 train.max_epochs=75 and its name): the same config, field by field."""
    from serkit.config import to_dict

    common = CONFIGS / "common.yaml"
    recipe = load_config(common, CONFIGS / "whisper_base_stats_aug_wave2_e75.yaml")
    ran = load_config(common, CONFIGS / "whisper_base_stats_aug.yaml", overrides=[
        "train.augment.wave_variants=2", "train.max_epochs=75", "name=ravdess_whisper_base_stats_aug_wave2_e75"])
    assert to_dict(recipe) == to_dict(ran)
    assert recipe.train.augment.wave_variants == 2 and recipe.train.max_epochs == 75


def test_the_fine_tuning_recipe_is_the_copy_heads_but_for_the_encoder():
    """whisper_base_finetune.yaml (claim (a), full fine-tuning) keeps the 75-epoch copy head's head, regularisers,
    augmentation and data settings, so the pair in results.md compares how the encoder is used: trained (all but
    its input convolutions, with its own lr and layer-wise decay) in crop mode for 8 epochs, against frozen and
    cached in pad mode for 75."""
    from serkit.config import to_dict

    common = CONFIGS / "common.yaml"
    tuned = to_dict(load_config(common, CONFIGS / "whisper_base_finetune.yaml"))
    frozen = to_dict(load_config(common, CONFIGS / "whisper_base_stats_aug_wave2_e75.yaml"))
    (up_tuned,), (up_frozen,) = tuned["model"]["upstreams"], frozen["model"]["upstreams"]
    assert (up_tuned["freeze"], up_tuned["whisper_input"]) == ("cnn", "crop")
    assert (up_frozen["freeze"], up_frozen["whisper_input"]) == ("all", "pad")
    assert {k: v for k, v in up_tuned.items() if k not in ("freeze", "whisper_input")} == \
        {k: v for k, v in up_frozen.items() if k not in ("freeze", "whisper_input")}
    assert {k: v for k, v in tuned["model"].items() if k != "upstreams"} == \
        {k: v for k, v in frozen["model"].items() if k != "upstreams"}
    assert tuned["data"] == frozen["data"]
    differ = ("max_epochs", "lr_upstream", "lr_layer_decay", "feature_cache")
    assert {k: v for k, v in tuned["train"].items() if k not in differ} == \
        {k: v for k, v in frozen["train"].items() if k not in differ}
    assert [tuned["train"][k] for k in differ] == [8, 5e-5, 0.8, None]
    assert [frozen["train"][k] for k in differ[:1] + differ[2:]] == [75, 1.0, "runs/feature_cache"]
