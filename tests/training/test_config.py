import pytest

from serkit.config import config_hash, load_config, to_yaml
from serkit.errors import ConfigError


def test_yaml_then_overrides_win(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("name: x\ntrain: {max_epochs: 4}\nmodel: {aggregators: [{name: ecapa}]}\n")
    cfg = load_config(path, overrides=["train.max_epochs=7", "model.aggregators.0.channels=64"])
    assert cfg.name == "x" and cfg.train.max_epochs == 7 and cfg.model.aggregators[0].channels == 64
    assert load_config({"name": "x"}).train.max_epochs == 10  # schema default


@pytest.mark.parametrize(
    "override, key",
    [("train.max_epoch=3", "train.max_epoch"), ("train.max_epochs=many", "max_epochs"), ("nokeyvalue", "key=value")],
)
def test_bad_override_names_the_key(override, key):
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        load_config(overrides=[override])


def test_unknown_yaml_key_names_file_and_key(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("train: {learning_rate: 1}\n")
    with pytest.raises(ConfigError, match=r"bad\.yaml.*learning_rate"):
        load_config(path)


def test_missing_file_is_named(tmp_path):
    with pytest.raises(ConfigError, match="nope.yaml"):
        load_config(tmp_path / "nope.yaml")


def test_resolved_config_round_trips_and_hash_tracks_model(tmp_path):
    cfg = load_config(overrides=["model.fusion=late"])
    path = tmp_path / "resolved.yaml"
    path.write_text(to_yaml(cfg))
    again = load_config(path)
    assert again == cfg
    assert config_hash(again.model) == config_hash(cfg.model)
    assert config_hash(load_config(overrides=["model.fusion=early"]).model) != config_hash(cfg.model)


def test_overrides_reach_into_mapping_fields():
    """Corpus options and label maps are free-form mappings: their keys are settable from the command line."""
    cfg = load_config({"data": {"options": {"valid": "speaker"}}},
                      overrides=["data.options.folds=emobox", "data.options.valid=none", "data.label_map.exc=hap"])
    assert cfg.data.options == {"valid": "none", "folds": "emobox"}
    assert cfg.data.label_map == {"exc": "hap"}


def test_unknown_override_lists_the_valid_keys_beside_it():
    with pytest.raises(ConfigError, match=r"train\.max_epoch'.*valid keys there:.*train\.max_epochs"):
        load_config(overrides=["train.max_epoch=3"])
    with pytest.raises(ConfigError, match=r"data\.optionz\.folds.*data\.options"):
        load_config(overrides=["data.optionz.folds=emobox"])
