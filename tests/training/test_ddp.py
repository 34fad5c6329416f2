"""DDP with 2 CPU processes (gloo) trains one fold and gives one consistent result."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest


def test_two_process_ddp_trains_one_fold_consistently(tiny_config, synth_iemocap_root, tmp_path):
    out = tmp_path / "run"
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "serkit", "cv", str(tiny_config), "--root", str(synth_iemocap_root),
           "--folds", "1", "--out", str(out), "train.strategy=ddp", "train.devices=2", "train.accelerator=cpu",
           "train.max_epochs=2", "train.top_k=2", "train.keep_checkpoints=true"]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    fold = out / "fold_1"
    ranks = [json.loads((fold / "ranks" / f"{r}.json").read_text()) for r in (0, 1)]
    # DDP keeps the replicas identical: same parameters, same number of steps on each rank
    assert ranks[0]["param_checksum"] == pytest.approx(ranks[1]["param_checksum"], rel=0, abs=1e-9)
    assert ranks[0]["train_batches"] == ranks[1]["train_batches"] > 0
    fits = [json.loads(line) for line in (fold / "fits.jsonl").read_text().splitlines()]
    assert fits == [{"start_epoch": 0, "global_step": 0, "world_size": 2}]  # one writer: rank 0
    result = json.loads((fold / "result.json").read_text())
    assert result["fold"] == 1 and (fold / "model" / "model.safetensors").is_file()
    assert len(list((fold / "checkpoints").glob("*.safetensors"))) == 2
    assert (out / "cv.json").is_file()
