"""scripts/archive_runs.py: a run folder's records are kept and its weights left out; the archive is read by
`serkit ensemble` as the run folder was; bad input is refused before anything is written. (A run restored from
its archive skips its finished folds: tests/training/test_cv.py, on a real run.)"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from serkit.evaluation.ensemble import ensemble_runs
from serkit.evaluation.prediction_table import SplitPredictions, read_predictions, write_predictions

LABELS = ["angry", "sad"]


@pytest.fixture(scope="module")
def archive(load_script):
    return load_script("archive_runs")


def _fold(run: Path, fold: int, seed: int, finished: bool = True) -> None:
    """A fold as `serkit cv` leaves it: bundle (weights), predictions, cost, result.json last."""
    rng = np.random.default_rng(seed)
    fold_dir = run / f"fold_{fold}"
    (fold_dir / "model").mkdir(parents=True)
    (fold_dir / "model" / "model.safetensors").write_bytes(b"\0" * 4096)
    (fold_dir / "model" / "config.json").write_text("{}")  # part of the bundle: goes with the weights
    (fold_dir / "checkpoints").mkdir()
    (fold_dir / "checkpoints" / "last.ckpt").write_bytes(b"\0" * 4096)
    if not finished:
        return
    splits = {}
    for split in ("valid", "test"):
        probs = rng.dirichlet([1.0, 1.0], size=6)
        splits[split] = SplitPredictions([f"{split}{i}" for i in range(6)], probs, np.array([0, 1] * 3))
    write_predictions(fold_dir / "predictions.csv", LABELS, splits)
    (fold_dir / "cost.json").write_text(json.dumps({"cpu_seconds": 1.0, "trainable_params": 5}))
    (fold_dir / "result.json").write_text(json.dumps({"fold": fold}))


def _run(root: Path, name: str, seed: int, unfinished: tuple[int, ...] = ()) -> Path:
    """A `serkit cv` run folder (run.json) of 2 finished folds, plus `unfinished` folds still training."""
    run = root / name
    for fold in (1, 2):
        _fold(run, fold, seed + fold)
    for fold in unfinished:
        _fold(run, fold, seed, finished=False)
    (run / "run.json").write_text("{}")
    (run / "config.yaml").write_text("seed: 0\n")
    (run / "cv.json").write_text(json.dumps({"folds": []}))
    (run / "cost.json").write_text(json.dumps({"cpu_seconds": 2.0, "trainable_params": 5}))
    (run / "audio_check.json").write_text("{}")
    (run / "fold_1" / "split.json").write_text("{}")
    (run / "train.log").write_text("x" * 5000)  # not a kept suffix
    (run / "fold_1" / "tensorboard").mkdir()
    (run / "fold_1" / "tensorboard" / "hparams.yaml").write_text("a: 1\n")
    return run


def test_records_are_kept_and_weights_checkpoints_caches_and_running_folds_left_out(archive, tmp_path):
    run = _run(tmp_path / "runs", "a", 0, unfinished=(3,))
    (run / "fold_1" / "huge.csv").write_text("y" * 3000)  # not a record: capped
    (run / "fold_2" / "predictions.csv").write_text((run / "fold_2" / "predictions.csv").read_text() + " " * 3000)
    (run / "fold_2" / "avg.safetensors").write_bytes(b"\0" * 64)  # a stray weight file in a fold's own folder
    (run / "fold_2" / "averaged").mkdir()
    (run / "fold_2" / "averaged" / "w.pt").write_bytes(b"\0" * 64)
    (run / "fold_2" / "averaged" / "meta.json").write_text("{}")  # goes with its weights
    (run / "fold_4").mkdir()  # killed during its refit: the first fit's predictions, no result.json
    (run / "fold_4" / "predictions.csv").write_text("split,id,label,p_angry,p_sad\n")
    (run / "fold_4" / "train_only.json").write_text("{}")
    kept = {str(p) for p in archive.records(run, max_bytes=2048)}
    assert kept == {"run.json", "config.yaml", "cv.json", "cost.json", "fold_1/predictions.csv",
                    "fold_1/cost.json", "fold_1/result.json", "fold_2/predictions.csv", "fold_2/cost.json",
                    "fold_2/result.json"}


def test_a_baseline_or_ensemble_run_keeps_the_folds_that_hold_predictions(archive, tmp_path):
    """No run.json: a fold is finished once its predictions.csv is there (probes and ensembles write no
    result.json)."""
    run = _run(tmp_path / "runs", "probe", 0)
    (run / "run.json").unlink()
    for fold in (1, 2):
        (run / f"fold_{fold}" / "result.json").unlink()
    (run / "fold_3").mkdir()
    (run / "fold_3" / "partial.json").write_text("{}")
    (run / "probe.json").write_text("{}")
    kept = {str(p) for p in archive.records(run, max_bytes=1 << 20)}
    assert kept == {"config.yaml", "cv.json", "cost.json", "probe.json", "fold_1/predictions.csv",
                    "fold_1/cost.json", "fold_2/predictions.csv", "fold_2/cost.json"}


def test_an_archived_run_is_read_by_serkit_ensemble_as_the_run_was(archive, tmp_path, capsys):
    runs = tmp_path / "runs"
    _run(runs, "a", 0), _run(runs, "b", 10)
    archive.main([str(runs), str(tmp_path / "docs_runs"), "a", "b"])
    assert "a: 10 files" in capsys.readouterr().out
    archived_files = {p.suffix for p in (tmp_path / "docs_runs").rglob("*") if p.is_file()}
    assert archived_files == {".json", ".csv", ".yaml"}  # no weights, no log
    for fold in (1, 2):
        original = read_predictions(runs / "a" / f"fold_{fold}" / "predictions.csv")[1]["test"].probabilities
        copied = read_predictions(tmp_path / "docs_runs" / "a" / f"fold_{fold}" / "predictions.csv")[1]["test"]
        assert np.array_equal(original, copied.probabilities)
    direct = ensemble_runs([runs / "a", runs / "b"], tmp_path / "ens_direct")
    archived = ensemble_runs([tmp_path / "docs_runs" / "a", tmp_path / "docs_runs" / "b"], tmp_path / "ens_archived")
    assert [f.metrics.ua for f in direct.folds] == [f.metrics.ua for f in archived.folds]
    assert json.loads((tmp_path / "ens_direct" / "cv.json").read_text())["summary"] \
        == json.loads((tmp_path / "ens_archived" / "cv.json").read_text())["summary"]
    assert (tmp_path / "docs_runs" / "a").stat().st_mode & 0o755 == 0o755  # readable by all, as mkdir makes it


def test_archiving_again_replaces_the_folder_so_nothing_stale_lingers(archive, tmp_path):
    runs = tmp_path / "runs"
    run = _run(runs, "a", 0)
    archive.main([str(runs), str(tmp_path / "arch"), "a"])
    (tmp_path / "arch" / "a" / "stale.json").write_text("{}")
    (run / "fold_2" / "predictions.csv").unlink()
    (run / "fold_2" / "result.json").unlink()  # fold 2 rerunning
    archive.main([str(runs), str(tmp_path / "arch"), "a"])
    assert not (tmp_path / "arch" / "a" / "stale.json").exists()
    assert not (tmp_path / "arch" / "a" / "fold_2").exists()
    assert (tmp_path / "arch" / "a" / "fold_1" / "result.json").is_file()
    assert [p.name for p in (tmp_path / "arch").iterdir()] == ["a"]  # no staging folder left behind


def test_missing_or_unfinished_runs_are_refused_naming_them(archive, tmp_path):
    (tmp_path / "runs" / "empty" / "fold_1").mkdir(parents=True)
    with pytest.raises(SystemExit, match="not a folder under .*: nope"):
        archive.main([str(tmp_path / "runs"), str(tmp_path / "arch"), "nope"])
    with pytest.raises(SystemExit, match="empty: no cv.json and no finished fold"):
        archive.main([str(tmp_path / "runs"), str(tmp_path / "arch"), "empty"])
    assert not (tmp_path / "arch" / "empty").exists()


def test_a_destination_overlapping_the_run_is_refused_and_the_run_left_whole(archive, tmp_path):
    runs = tmp_path / "runs"
    run = _run(runs, "a", 0)
    before = sorted(p for p in run.rglob("*"))
    for dest in (runs, run, run / "fold_1"):
        with pytest.raises(SystemExit, match="would overlap the run folder"):
            archive.main([str(runs), str(dest), "a"])
    assert sorted(p for p in run.rglob("*")) == before
    assert (run / "fold_1" / "model" / "model.safetensors").is_file()


def test_a_bad_name_among_good_ones_stops_before_anything_is_written(archive, tmp_path):
    runs = tmp_path / "runs"
    _run(runs, "a", 0)
    (runs / "empty" / "fold_1").mkdir(parents=True)
    with pytest.raises(SystemExit, match="empty: no cv.json and no finished fold"):
        archive.main([str(runs), str(tmp_path / "arch"), "a", "empty"])
    assert not (tmp_path / "arch" / "a").exists()
