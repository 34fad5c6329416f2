"""A fold is reused (skipped when finished, resumed when interrupted) only by the command that made it."""

from __future__ import annotations

import json

import pytest

from serkit.cli import main
from serkit.config import load_config, save_config
from serkit.data.corpora import FoldSplit
from serkit.data.prepare import prepare_corpus
from serkit.errors import ConfigError
from serkit.training.resume_check import check_fold_record


@pytest.fixture()
def split(tiny_config, synth_iemocap_root) -> FoldSplit:
    cfg = load_config(tiny_config, overrides=[f"data.root={synth_iemocap_root}"])
    return prepare_corpus(cfg.data).split(1)


def _fold(tmp_path, cfg, split, work="result.json"):
    """A fold folder as `serkit cv` leaves it: its config, its split and `work` (a result or a checkpoint)."""
    fold_dir = tmp_path / "fold_1"
    (fold_dir / "checkpoints").mkdir(parents=True)
    save_config(cfg, fold_dir / "config.yaml")
    (fold_dir / "split.json").write_text(json.dumps({n: [u.id for u in getattr(split, n)]
                                                     for n in ("train", "valid", "test")}))
    (fold_dir / work).write_text("{}")
    return fold_dir


@pytest.mark.parametrize("work", ["result.json", "checkpoints/last.ckpt", "train_only.json"])
def test_a_changed_recipe_is_refused_naming_each_key_with_both_values(tiny_config, split, tmp_path, work):
    cfg = load_config(tiny_config)
    fold_dir = _fold(tmp_path, cfg, split, work)
    changed = load_config(tiny_config, overrides=["seed=3", "train.max_epochs=4", "data.labels=[neu,hap,ang]"])
    with pytest.raises(ConfigError) as error:
        check_fold_record(fold_dir, changed, split)
    message = str(error.value)
    assert f"{fold_dir} was trained by another command" in message and "delete the fold folder" in message
    for part in ("seed: 0 then, 3 now", "train.max_epochs: 12 then, 4 now", "data.labels"):
        assert part in message


def test_where_and_how_it_runs_may_differ_and_a_half_done_fit_resumes_only_where_it_began(tiny_config, split,
                                                                                           tmp_path):
    fold_dir = _fold(tmp_path, load_config(tiny_config, overrides=["train.feature_cache=/cache"]), split)
    elsewhere = ["name=other", "folds=[1]", "data.root=/elsewhere", "data.num_workers=2", "train.progress_bar=true",
                 "train.keep_checkpoints=true", "train.feature_cache=/another/cache"]
    check_fold_record(fold_dir, load_config(tiny_config, overrides=[*elsewhere, "train.accelerator=cpu"]), split)
    with pytest.raises(ConfigError, match=r"train\.feature_cache: 'on' then, 'off' now"):
        check_fold_record(fold_dir, load_config(tiny_config), split)
    (fold_dir / "result.json").rename(fold_dir / "checkpoints" / "last.ckpt")  # interrupted, not finished
    with pytest.raises(ConfigError, match=r"train\.accelerator: 'auto' then, 'cpu' now"):
        check_fold_record(fold_dir, load_config(tiny_config, overrides=[*elsewhere, "train.accelerator=cpu"]), split)


def test_a_component_added_or_renamed_is_a_difference(tiny_config, split, tmp_path):
    fold_dir = _fold(tmp_path, load_config(tiny_config), split)
    with pytest.raises(ConfigError, match=r'model\.upstreams\.names: \["fbank"\] then, \["fbank", "fbank"\] now'):
        check_fold_record(fold_dir, load_config(tiny_config, overrides=[
            "model.upstreams=[{name: fbank, layers: last, freeze: all}, {name: fbank, layers: last, freeze: all}]",
            "model.fusion=late"]), split)
    with pytest.raises(ConfigError, match=r'model\.aggregators\.names: \["ecapa"\] then, \["mean"\] now'):
        check_fold_record(fold_dir, load_config(tiny_config, overrides=["model.aggregators=[{name: mean}]"]), split)


def test_a_source_written_relative_then_absolute_is_the_same_folder_and_another_folder_is_not(
        tiny_config, split, tmp_path, monkeypatch):
    for name in ("encoder", "other"):
        (tmp_path / "models" / name).mkdir(parents=True)
    monkeypatch.chdir(tmp_path)

    def hf(source):  # an upstream with a source; nothing is loaded by the check
        return load_config(tiny_config, overrides=[f"model.upstreams=[{{name: hf, source: '{source}'}}]"])

    fold_dir = _fold(tmp_path, hf("models/encoder"), split)
    check_fold_record(fold_dir, hf(str(tmp_path / "models" / "encoder")), split)
    check_fold_record(fold_dir, hf("./models/../models/encoder"), split)
    with pytest.raises(ConfigError, match=r"model\.upstreams\.0\.source: 'models/encoder' then, '.*other' now"):
        check_fold_record(fold_dir, hf(str(tmp_path / "models" / "other")), split)
    (tmp_path / "models" / "encoder").rmdir()  # gone: nothing says the two spellings were one folder
    with pytest.raises(ConfigError, match=r"model\.upstreams\.0\.source"):
        check_fold_record(fold_dir, hf(str(tmp_path / "models" / "encoder")), split)


def test_a_preset_name_or_a_link_is_not_taken_for_the_folder_it_resembles(tiny_config, split, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "wav2vec2-base").mkdir()  # beside a preset's name: the preset still loads the hub model
    (tmp_path / "v1").mkdir()
    (tmp_path / "current").symlink_to(tmp_path / "v1")

    def hf(source):
        return load_config(tiny_config, overrides=[f"model.upstreams=[{{name: hf, source: '{source}'}}]"])

    fold_dir = _fold(tmp_path, hf("wav2vec2-base"), split)
    with pytest.raises(ConfigError, match=r"source: 'wav2vec2-base' then"):
        check_fold_record(fold_dir, hf(str(tmp_path / "wav2vec2-base")), split)
    fold_dir = _fold(tmp_path / "second", hf("current"), split)  # trained through the link
    with pytest.raises(ConfigError, match=r"source: 'current' then"):
        check_fold_record(fold_dir, hf(str(tmp_path / "v1")), split)
    check_fold_record(fold_dir, hf(str(tmp_path / "current")), split)  # the same link, written absolute


def test_a_free_mapping_entry_set_on_one_side_only_is_a_difference(tiny_config, split, tmp_path):
    fold_dir = _fold(tmp_path, load_config(tiny_config, overrides=["data.options.folds=emobox"]), split)
    with pytest.raises(ConfigError, match=r"data\.options\.folds: 'emobox' then, unset now"):
        check_fold_record(fold_dir, load_config(tiny_config), split)


def test_other_utterances_are_refused_and_a_fold_without_work_or_record_passes(tiny_config, split, tmp_path):
    cfg = load_config(tiny_config)
    fold_dir = _fold(tmp_path, cfg, split)
    other = FoldSplit(fold=1, train=split.train[1:], valid=split.valid, test=split.test)
    with pytest.raises(ConfigError, match="its train utterances: .* 1 differ"):
        check_fold_record(fold_dir, cfg, other)
    (fold_dir / "split.json").unlink()  # an archived run keeps none: the config alone is compared
    check_fold_record(fold_dir, cfg, other)
    (fold_dir / "result.json").unlink()  # started, nothing to reuse: retrained under any config
    check_fold_record(fold_dir, load_config(tiny_config, overrides=["seed=9"]), split)


def test_cv_into_a_finished_run_with_another_config_refuses_and_changes_nothing(
        tiny_config, synth_iemocap_root, tmp_path, capsys):
    out = tmp_path / "run"
    cfg = load_config(tiny_config, overrides=[f"data.root={synth_iemocap_root}"])
    split = prepare_corpus(cfg.data).split(1)
    _fold(out, cfg, split)
    (out / "config.yaml").write_text("the earlier run's\n")
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    code = main(["cv", str(tiny_config), "--root", str(synth_iemocap_root), "--folds", "1",
                 "model.aggregators.0.channels=16", "--out", str(out), "--quiet"])
    assert code != 0
    assert "model.aggregators.0.channels" in capsys.readouterr().err
    # the run's config.yaml not written over, the fold untouched (the audio check's cache may be added)
    assert {p: p.read_bytes() for p in before} == before
