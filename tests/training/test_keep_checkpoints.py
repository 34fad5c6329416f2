"""A finished fold's checkpoints/ (top-k files, last.ckpt) is removed once its bundle and result.json are
written, unless train.keep_checkpoints (issue 14, section 2: a MiniLM demo left 7.9 GB of them).

One fold of the tiny fbank -> ECAPA config, 3 epochs, top 2: a few seconds per run.
"""

from __future__ import annotations

import json

import pytest
import torch

import serkit.training.fold as fold_module
from serkit.cli import main
from serkit.checkpoint import load_state_dict, read_metadata

TOP_K = 2


def cv_args(tiny_config, root, out, *overrides: str) -> list[str]:
    return ["cv", str(tiny_config), "--root", str(root), "--out", str(out), "--folds", "1", "--quiet",
            "train.max_epochs=3", f"train.top_k={TOP_K}", *overrides]


def fits(fold_dir) -> int:
    return len((fold_dir / "fits.jsonl").read_text().splitlines())


@pytest.fixture(scope="module")
def runs(tiny_config, synth_iemocap_root, tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("keep")
    runs = {"default": root / "default", "keep": root / "keep"}
    assert main(cv_args(tiny_config, synth_iemocap_root, runs["default"])) == 0
    assert main(cv_args(tiny_config, synth_iemocap_root, runs["keep"], "train.keep_checkpoints=true")) == 0
    return runs


def test_a_finished_fold_leaves_no_checkpoints_by_default(runs):
    fold = runs["default"] / "fold_1"
    assert json.loads((fold / "result.json").read_text())["averaged"] is not None  # the top-k were averaged
    assert (fold / "model" / "model.safetensors").is_file()
    assert not (fold / "checkpoints").exists()


def test_keep_checkpoints_keeps_the_top_k_and_last_ckpt(runs):
    checkpoints = runs["keep"] / "fold_1" / "checkpoints"
    assert len(list(checkpoints.glob("*.safetensors"))) == TOP_K
    assert (checkpoints / "last.ckpt").is_file()


def test_serkit_average_of_kept_checkpoints_gives_the_bundled_model(runs, capsys):
    fold = runs["keep"] / "fold_1"
    kept = sorted(fold.glob("checkpoints/*.safetensors"),  # best first, as the fold averaged them
                  key=lambda p: (-float(read_metadata(p)["val_ua"]), int(read_metadata(p)["step"])))
    out = fold.parent / "averaged.safetensors"
    assert main(["average", *map(str, kept), "--out", str(out)]) == 0
    assert f"averaged {TOP_K} checkpoints" in capsys.readouterr().out
    averaged, bundled = load_state_dict(out), load_state_dict(fold / "model" / "model.safetensors")
    assert averaged and set(averaged) <= set(bundled)
    different = [key for key in averaged if not torch.equal(averaged[key], bundled[key])]
    assert not different, different[:5]


def test_running_again_without_the_option_keeps_what_was_kept(runs, tiny_config, synth_iemocap_root):
    """A fold trained with keep_checkpoints: true keeps them when the command is run again without it."""
    fold = runs["keep"] / "fold_1"
    assert main(cv_args(tiny_config, synth_iemocap_root, runs["keep"])) == 0
    assert fits(fold) == 1  # finished: skipped
    assert len(list(fold.glob("checkpoints/*.safetensors"))) == TOP_K and (fold / "checkpoints/last.ckpt").is_file()


def test_a_crash_between_result_and_removal_leaves_a_finished_fold(tiny_config, synth_iemocap_root, tmp_path,
                                                                      monkeypatch):
    """The removal comes after result.json: a crash in between leaves a fold that counts as finished (not
    trained again), and the next run removes what is left."""
    out = tmp_path / "run"
    fold = out / "fold_1"

    def crash(ckpt_dir):
        assert (fold / "result.json").is_file() and (fold / "model" / "model.safetensors").is_file()
        raise RuntimeError("killed before the checkpoints were removed")

    monkeypatch.setattr(fold_module, "_remove_checkpoints", crash)
    with pytest.raises(RuntimeError, match="killed before"):
        main(cv_args(tiny_config, synth_iemocap_root, out))
    monkeypatch.undo()
    result = (fold / "result.json").read_bytes()
    assert len(list(fold.glob("checkpoints/*.safetensors"))) == TOP_K and (fold / "checkpoints/last.ckpt").is_file()

    assert main(cv_args(tiny_config, synth_iemocap_root, out)) == 0
    assert fits(fold) == 1 and (fold / "result.json").read_bytes() == result  # not trained again
    assert not (fold / "checkpoints").exists()
