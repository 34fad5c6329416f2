"""Progress lines: one per validation epoch and one per finished fold by default, on stderr; none with --quiet."""

from __future__ import annotations

import re

import torch

from serkit.cli import main


def test_cv_prints_a_line_per_epoch_and_per_fold_and_quiet_prints_none(tiny_config, synth_iemocap_root, tmp_path,
                                                                       capfd):
    torch.set_num_threads(1)
    args = ["cv", str(tiny_config), "--root", str(synth_iemocap_root), "--folds", "2", "train.max_epochs=2"]
    assert main([*args, "--out", str(tmp_path / "loud")]) == 0
    err = capfd.readouterr().err
    epochs = re.findall(r"tiny_fbank_ecapa fold 2 \(1/1\) epoch (\d)/2: loss \d+\.\d{4}, valid UA \d+\.\d WA \d+\.\d, "
                        r"\d+\.\d s", err)
    assert epochs == ["1", "2"], err
    assert re.search(r"fold 2 finished \(1/1\): test UA \d+\.\d WA \d+\.\d; run \d+m\d\ds so far, ETA 0m00s", err)
    assert main([*args, "--out", str(tmp_path / "loud")]) == 0  # resumed: the fold is reported as already done
    assert "fold 2 already finished (1/1)" in capfd.readouterr().err
    assert main([*args, "--out", str(tmp_path / "quiet"), "--quiet"]) == 0
    assert "epoch" not in capfd.readouterr().err


def test_a_refit_prints_its_epochs_too(tiny_config, synth_iemocap_root, tmp_path, capfd):
    """The refit validates nothing, so its epoch lines come at each epoch's end, named as the refit's."""
    torch.set_num_threads(1)
    args = ["cv", str(tiny_config), "--root", str(synth_iemocap_root), "--folds", "2", "train.max_epochs=2",
            "train.refit=true", "--out", str(tmp_path / "run")]
    assert main(args) == 0
    err = capfd.readouterr().err
    refit = re.findall(r"tiny_fbank_ecapa fold 2 \(1/1\) refit epoch (\d)/2: loss \d+\.\d{4}, \d+\.\d s", err)
    assert refit == ["1", "2"], err
    assert len(re.findall(r"fold 2 \(1/1\) epoch \d/2: loss .*valid UA", err)) == 2  # the first fit's, as usual
