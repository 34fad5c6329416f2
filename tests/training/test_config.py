import pytest

from serkit.cli import main
from serkit.config import config_hash, load_config, to_yaml
from serkit.downstream.ecapa import EcapaConfig
from serkit.errors import ConfigError

ECAPA = {"model": {"aggregators": [{"name": "ecapa"}]}}


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


@pytest.mark.parametrize("override, message", [
    # issue 14, section 5, item 9: each was a traceback, or was accepted and training started
    ("train.max_epochs=-1", "key 'train.max_epochs' is -1; expected 1 or more"),
    ("train.max_epochs=0", "key 'train.max_epochs' is 0; expected 1 or more"),
    ("train.precision=foo", "key 'train.precision' is 'foo'; expected one of auto"),
    ("train.accumulate=0", "key 'train.accumulate' is 0; expected 1 or more"),
    ("train.devices=0", "key 'train.devices' is '0'; expected auto, -1, a count of 1 or more"),
    ("train.lr_upstream=-1", "key 'train.lr_upstream' is -1.0; expected 0 or more"),
    ("train.warmup=2", "key 'train.warmup' is 2.0; expected a fraction"),
    ("train.grad_clip=-1", "key 'train.grad_clip' is -1.0; expected 0 (off) or a positive norm"),
    ("data.max_batch_seconds=0", "key 'data.max_batch_seconds' is 0.0; expected a positive, finite number"),
    ("data.max_batch_seconds=-5", "key 'data.max_batch_seconds' is -5.0; expected a positive"),
    ("data.max_batch_seconds=.inf", "key 'data.max_batch_seconds' is inf; expected a positive, finite"),
    ("data.max_batch_seconds=.nan", "key 'data.max_batch_seconds' is nan; expected a positive, finite"),
    ("data.num_workers=-1", "key 'data.num_workers' is -1; expected 0"),
    ("data.num_buckets=0", "key 'data.num_buckets' is 0; expected 1 or more"),
    ("model.aggregators.0.embedding_dim=0", "key 'model.aggregators.0.embedding_dim' is 0; expected 1 or more"),
    ("model.aggregators.0.channels=0", "key 'model.aggregators.0.channels' is 0; expected 1 or more"),
    ("model.aggregators.0.channels=-64", "key 'model.aggregators.0.channels' is -64; expected 1 or more"),
    ("model.aggregators.0.mfa_channels=0", "key 'model.aggregators.0.mfa_channels' is 0; expected 1 or more"),
    ("model.aggregators.0.se_channels=0", "key 'model.aggregators.0.se_channels' is 0; expected 1 or more"),
    ("model.aggregators.0.attention_channels=-1",
     "key 'model.aggregators.0.attention_channels' is -1; expected 1 or more"),
    ("model.aggregators.0.res2net_scale=0", "key 'model.aggregators.0.res2net_scale' is 0; expected a divisor of "
                                            "channels (512) from 1 to 512"),
    # far above channels: used to build a million empty Res2Net branches (on `meta`, for a bundle) first
    ("model.aggregators.0.res2net_scale=1000000", "key 'model.aggregators.0.res2net_scale' is 1000000"),
    ("model.aggregators.0.res2net_scale=7", "key 'model.aggregators.0.res2net_scale' is 7; expected a divisor"),
    ("model.aggregators.0.kernel_sizes=[5]", "key 'model.aggregators.0.kernel_sizes' is [5]; expected a list of 2"),
    ("model.aggregators.0.kernel_sizes=[5,0,3,3]", "key 'model.aggregators.0.kernel_sizes' is [5, 0, 3, 3]"),
    ("model.aggregators.0.dilations=[1,2]", "key 'model.aggregators.0.dilations' is [1, 2]; expected as many "
                                            "dilations of 1 or more as kernel_sizes has entries (4)"),
    ("model.aggregators.0.dilations=[1,2,-3,4]", "key 'model.aggregators.0.dilations' is [1, 2, -3, 4]"),
])
def test_a_value_out_of_range_is_refused_naming_the_key(override, message):
    with pytest.raises(ConfigError) as refused:
        load_config(ECAPA, overrides=[override])
    assert str(refused.value).startswith(message), str(refused.value)


def test_a_key_of_another_component_is_refused_listing_this_ones():
    """ECAPA-TDNN's sizes are its own parameters: the default (mean) aggregator has none, the fbank upstream has
    cmn but not Whisper's whisper_input."""
    with pytest.raises(ConfigError, match=r"^key 'model\.aggregators\.0\.channels' is not a parameter of aggregator "
                                          r"'mean'; valid keys: name$"):
        load_config(overrides=["model.aggregators.0.channels=64"])
    with pytest.raises(ConfigError, match=r"model\.upstreams\.0\.whisper_input.*'fbank'.*valid keys: .*cmn"):
        load_config({"model": {"upstreams": [{"name": "fbank", "whisper_input": "crop"}]}})
    with pytest.raises(ConfigError, match=r"model\.aggregators\.0\.channels.*could not be converted to Integer"):
        load_config(ECAPA, overrides=["model.aggregators.0.channels=many"])
    cfg = load_config(overrides=["model.aggregators.0.name=ecapa", "model.aggregators.0.channels=64"])
    assert isinstance(cfg.model.aggregators[0], EcapaConfig) and cfg.model.aggregators[0].channels == 64


def test_an_aggregator_out_of_range_is_named_by_its_index(tmp_path):
    path = tmp_path / "late.yaml"
    path.write_text("model:\n  fusion: late\n  upstreams: [{name: fbank}, {name: fbank}]\n"
                    "  aggregators: [{name: mean}, {name: ecapa, embedding_dim: -5}]\n")
    with pytest.raises(ConfigError, match=r"^key 'model\.aggregators\.1\.embedding_dim' is -5; expected 1 or more"):
        load_config(path)


def test_sizes_in_range_are_accepted():
    cfg = load_config(ECAPA, overrides=["data.num_workers=0", "data.num_buckets=1", "data.max_batch_seconds=0.5",
                                 "model.aggregators.0.channels=8", "model.aggregators.0.res2net_scale=8",
                                 "model.aggregators.0.kernel_sizes=[1,1]", "model.aggregators.0.dilations=[1,1]"])
    assert cfg.data.max_batch_seconds == 0.5 and cfg.model.aggregators[0].res2net_scale == 8


def test_max_epochs_0_is_refused_before_training(tiny_config, synth_iemocap_root, tmp_path, capsys):
    """It used to train nothing and end with the misleading "no checkpoint was kept"."""
    out = tmp_path / "run"
    assert main(["cv", str(tiny_config), "--root", str(synth_iemocap_root), "--out", str(out),
                 "train.max_epochs=0"]) == 1
    err = capsys.readouterr().err
    assert "key 'train.max_epochs' is 0; expected 1 or more" in err and "no checkpoint" not in err
    assert not out.exists()


@pytest.mark.parametrize("text, message", [
    ("name: x\ntrain: [1, 2\n", r"bad YAML: did not find expected ',' or '\]' \(line 3, column 1\), while parsing a "
                                r"flow sequence begun on line 2"),
    ("name: x\nname: y\n", r"bad YAML: found duplicate key name \(line 2, column 1\)"),
])
def test_a_yaml_syntax_error_says_what_and_where(tmp_path, text, message):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=r"bad\.yaml: " + message):
        load_config(path)


@pytest.mark.parametrize("source, overrides, key", [({"folds": 1}, [], "folds"), ({}, ["data.labels=a,b"], "data.labels")])
def test_one_value_where_a_list_is_expected_says_so(source, overrides, key):
    with pytest.raises(ConfigError, match=rf"key '{key}': expected a list, e\.g\. \[1, 3\]"):
        load_config(source, overrides=overrides)


def test_a_mapping_where_a_list_is_expected_is_a_config_error(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("folds: {a: 1}\n")
    with pytest.raises(ConfigError, match=r"c\.yaml: a mapping \(key: value\) where the config expects a list"):
        load_config(path)
