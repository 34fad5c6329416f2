"""`serkit cv` killed with SIGKILL at three points (subprocesses), restarted each time, then let finish.

Every finished fold survives later kills unchanged, an interrupted fold resumes from its last.ckpt (not from
epoch 0), the run dir ends complete, and the final report and model weights equal an uninterrupted run's
with the same seed. The config has classifier dropout, so equality also needs the RNG states that
training/rng_state.py carries through last.ckpt, and wave copies, drawn per (seed, epoch, utterance).

Kept small: a 90-utterance manifest cut from the synthetic IEMOCAP (3 fold keys, folds 1 and 2 run), the tiny
fbank -> ECAPA model, 6 epochs. Most of the time goes into starting Python + Lightning in each subprocess.
"""

from __future__ import annotations

import csv
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import load_file

from serkit.cli import main
from serkit.data.corpora.iemocap import Iemocap
from serkit.demo import DEMO_ECAPA

REPO = Path(__file__).resolve().parents[2]
FOLDS = (1, 2)
CONFIG = {
    "name": "kill_resume",
    "seed": 0,
    "folds": list(FOLDS),
    "model": {
        "upstreams": [{"name": "fbank", "layers": "last", "freeze": "all"}],
        "aggregators": [{"name": "ecapa", **DEMO_ECAPA}],
        "classifier": {"dropout": 0.2},  # random masks: a resumed run matches only if RNG states are restored
    },
    # wave copies with noise: which copy each clip gets must be drawn again the same after a resume
    "train": {"max_epochs": 6, "lr_downstream": 3e-3, "top_k": 2, "progress_bar": False,
              "augment": {"wave_variants": 2, "noise_snr_db": [10, 30]}},
    "data": {"corpus": "manifest", "max_batch_seconds": 10.0},
}
POLL_S = 0.005


@pytest.fixture(scope="module")
def setup(synth_iemocap_root, tmp_path_factory) -> tuple[Path, Path]:
    """(config file, manifest): 30 utterances from each of sessions 1-3, the session as fold key."""
    folder = tmp_path_factory.mktemp("kill_resume")
    utterances = Iemocap.prepare(synth_iemocap_root).utterances
    manifest = folder / "manifest.csv"
    with open(manifest, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["path", "label", "speaker", "fold", "duration"])
        for session in ("1", "2", "3"):
            for utt in [u for u in utterances if u.group == session][:30]:
                writer.writerow([utt.path, utt.label, utt.speaker, utt.group, utt.duration])
    config = folder / "config.yaml"
    config.write_text(yaml.safe_dump(CONFIG))
    return config, manifest


@pytest.fixture(scope="module")
def reference(setup, tmp_path_factory) -> Path:
    """The uninterrupted run (in this process: one thread, like the subprocesses below)."""
    config, manifest = setup
    out = tmp_path_factory.mktemp("reference") / "run"
    assert main(["cv", str(config), "--root", str(manifest), "--out", str(out)]) == 0
    return out


class Killer:
    """Starts `python -m serkit cv ...` and SIGKILLs it once a condition holds (then after `delay` s)."""

    def __init__(self, config: Path, manifest: Path, out: Path):
        self.cmd = [sys.executable, "-m", "serkit", "cv", str(config), "--root", str(manifest), "--out", str(out)]
        self.env = {**os.environ, "OMP_NUM_THREADS": "1"}  # as torch.set_num_threads(1) in the reference
        self.log = out.parent / "stderr.txt"
        self.kills = 0

    def run(self, until=None, delay: float = 0.0) -> int | None:
        """Exit code when the run ended by itself, None when it was killed."""
        with open(self.log, "ab") as stderr:
            process = subprocess.Popen(self.cmd, cwd=REPO, env=self.env, stdout=subprocess.DEVNULL, stderr=stderr)
            while process.poll() is None:
                if until is not None and until():
                    time.sleep(delay)
                    break
                time.sleep(POLL_S)
            if process.poll() is not None:
                return process.returncode
            process.send_signal(signal.SIGKILL)
            process.wait()
        self.kills += 1
        return None


def fit_lines(fold_dir: Path) -> list[dict]:
    path = fold_dir / "fits.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.is_file() else []


@pytest.fixture(scope="module")
def killed(setup, tmp_path_factory) -> dict:
    """Kill the run at three points, then let it finish; returns what was seen on the way."""
    config, manifest = setup
    out = tmp_path_factory.mktemp("killed") / "run"
    killer = Killer(config, manifest, out)
    rng = random.Random(0)
    fold1, fold2 = out / "fold_1", out / "fold_2"
    seen: dict = {"out": out, "log": killer.log}

    # 1. mid-fold 1: as soon as its first last.ckpt exists (after epoch 0 of 6)
    assert killer.run(lambda: (fold1 / "checkpoints" / "last.ckpt").is_file(), rng.uniform(0, 0.05)) is None
    seen["fold1_done_at_kill1"] = (fold1 / "result.json").is_file()
    # 2. mid-fold 2 (fold 1 resumed and finished on the way), after fold 2's first epoch
    assert killer.run(lambda: (fold2 / "checkpoints" / "last.ckpt").is_file(), rng.uniform(0, 0.05)) is None
    seen["fold1_result"] = (fold1 / "result.json").read_bytes()
    # 3. at a random moment shortly after the next fit of fold 2 starts
    starts = len(fit_lines(fold2))
    killer.run(lambda: len(fit_lines(fold2)) > starts, rng.uniform(0, 0.5))
    seen["fold1_result_after_kills"] = (fold1 / "result.json").read_bytes()
    # then let it finish
    seen["exit_code"] = killer.run()
    seen["kills"] = killer.kills
    return seen


def test_killed_mid_fold_resumes_and_finishes_with_a_complete_run_dir(killed):
    """Issue 4: a training process killed mid-fold (SIGKILL, subprocess) resumes and finishes the run dir."""
    out = killed["out"]
    assert killed["exit_code"] == 0, killed["log"].read_text()[-3000:]
    assert killed["kills"] >= 2 and not killed["fold1_done_at_kill1"]
    for name in ("config.yaml", "run.json", "cv.md", "cv.csv", "cv.json", "confusion.png", "folds.png"):
        assert (out / name).is_file(), name
    for fold in FOLDS:
        fold_dir = out / f"fold_{fold}"
        for name in ("config.yaml", "split.json", "result.json", "fits.jsonl", "logs/metrics.csv",
                     "model/model.safetensors", "model/config.yaml", "model/labels.json", "model/metrics.json"):
            assert (fold_dir / name).is_file(), f"fold {fold}: {name}"
        assert load_file(fold_dir / "model" / "model.safetensors")  # no half-written file under a real name
        json.loads((fold_dir / "result.json").read_text())
        # finished: top-k files, last.ckpt and temp files of killed writes are gone (train.keep_checkpoints false)
        assert not (fold_dir / "checkpoints").exists()


def test_finished_fold_survives_later_kills_unchanged(killed):
    assert killed["fold1_result"] == killed["fold1_result_after_kills"]
    assert (killed["out"] / "fold_1" / "result.json").read_bytes() == killed["fold1_result"]
    assert len(fit_lines(killed["out"] / "fold_1")) == 2  # later runs found fold 1 finished: no third fit


def test_interrupted_folds_resume_from_their_last_checkpoint(killed):
    for fold in FOLDS:
        starts = [line["start_epoch"] for line in fit_lines(killed["out"] / f"fold_{fold}")]
        assert starts[0] == 0 and any(start > 0 for start in starts[1:]), f"fold {fold}: fits started at {starts}"


def test_final_report_and_weights_equal_an_uninterrupted_run(killed, reference):
    out = killed["out"]
    report = json.loads((out / "cv.json").read_text())
    assert report["folds"] == json.loads((reference / "cv.json").read_text())["folds"]
    for fold in FOLDS:
        resumed = load_file(out / f"fold_{fold}" / "model" / "model.safetensors")
        uninterrupted = load_file(reference / f"fold_{fold}" / "model" / "model.safetensors")
        assert resumed.keys() == uninterrupted.keys()
        different = [k for k in resumed if not torch.equal(resumed[k], uninterrupted[k])]
        assert not different, f"fold {fold}: {different[:5]}"
        # the top-k files themselves are removed once a fold is finished; the bundle above is their average
        assert not (out / f"fold_{fold}" / "checkpoints").exists()
        assert not (reference / f"fold_{fold}" / "checkpoints").exists()
