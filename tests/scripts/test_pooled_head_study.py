"""scripts/pooled_head_study.py: the epoch's rows, the head's choice on validation, and a run over folds of a
synthetic pooled file (the real one needs Whisper's cached frames; `extract` is serkit's probe pooling)."""

from __future__ import annotations

import numpy as np
import pytest
import torch


@pytest.fixture(scope="module")
def study(load_script):
    return load_script("pooled_head_study")


def test_one_deals_each_clip_once_in_some_version_and_all_deals_every_row(study):
    generator = torch.Generator().manual_seed(0)
    one = study.epoch_rows(10, 3, "one", generator)
    assert sorted((one % 10).tolist()) == list(range(10))  # every clip once
    assert one.max() < 30 and len(set((one // 10).tolist())) > 1  # versions drawn, not always the plain clip
    assert sorted(study.epoch_rows(10, 3, "all", generator).tolist()) == list(range(30))
    with pytest.raises(ValueError, match="'one' or 'all'"):
        study.epoch_rows(10, 3, "some", generator)


def _pooled(seed: int = 0) -> dict:
    """3 folds of 24 clips (2 classes told apart by layer 1's first value), each clip with 2 noisy copies."""
    rng = np.random.default_rng(seed)
    ids = np.array([f"u{i}" for i in range(72)])
    labels = np.array(["a", "b"] * 36)
    plain = rng.normal(size=(72, 3, 8)).astype(np.float32)
    plain[:, 1, 0] += np.where(labels == "a", 3.0, -3.0)
    pooled = {"ids": ids, "labels": labels, "classes": np.array(["a", "b"]), "plain": plain}
    for k in (1, 2):
        pooled[f"copy{k}"] = plain + rng.normal(scale=0.3, size=plain.shape).astype(np.float32)
    for fold in (1, 2, 3):
        test = ids[(fold - 1) * 24: fold * 24]
        valid = ids[(fold % 3) * 24: (fold % 3 + 1) * 24]
        pooled.update({f"f{fold}_test": test, f"f{fold}_valid": valid,
                       f"f{fold}_train": np.array([u for u in ids if u not in set(test) | set(valid)])})
    return pooled


def test_the_head_learns_and_reports_the_top_k_epochs_validation_chose(study):
    torch.set_num_threads(1)
    results = study.run_folds(_pooled(), 2, epochs=10, top_k=3, batch=8, lr=0.05)
    assert [r["fold"] for r in results] == [1, 2, 3]
    for r in results:
        assert r["test"] >= 85 and r["valid"] >= 85, r  # chance: 50
        # the chosen epochs are the 3 best by validation UA (ties: the earlier epoch)
        ranked = sorted(range(10), key=lambda e: (-r["history"][e], e))
        assert r["epochs"] == sorted(ranked[:3]) and len(r["history"]) == 10
        assert r["final_lr"] < 0.05 / 1000  # the schedule ran its whole course, no more, no fewer steps
    again = study.run_folds(_pooled(), 2, epochs=10, top_k=3, batch=8, lr=0.05)
    assert again == results  # seeded: the same numbers twice


def test_every_copy_every_epoch_runs_the_schedule_over_all_rows(study):
    results = study.run_folds(_pooled(), 2, mode="all", epochs=3, top_k=2, batch=8, lr=0.05)
    # 3x the rows per epoch: a step count made for "one" would leave the lr high or stop OneCycleLR early
    assert all(r["final_lr"] < 0.05 / 1000 and r["test"] >= 70 for r in results), results


def test_the_validation_rows_choose_the_epochs(study):
    """Fold 1's test labels swapped change its test score only: the epochs are chosen without them."""
    pooled = {k: v for k, v in _pooled().items() if not k.startswith(("f2_", "f3_"))}
    tested = set(pooled["f1_test"].tolist())
    swapped = dict(pooled, labels=np.array([{"a": "b", "b": "a"}[label] if u in tested else label
                                            for u, label in zip(pooled["ids"], pooled["labels"])]))
    (a,), (b,) = (study.run_folds(p, 2, epochs=4, top_k=2, batch=8, lr=0.05) for p in (pooled, swapped))
    assert a["epochs"] == b["epochs"] and a["valid"] == b["valid"] and a["layer_weights"] == b["layer_weights"]
    assert a["test"] == pytest.approx(100 - b["test"])  # two classes: every test prediction now wrong <-> right


def test_missing_copies_are_refused_naming_the_flag(study):
    pooled = {k: v for k, v in _pooled().items() if k != "copy2"}
    with pytest.raises(SystemExit, match="--copies 2: the file has no copy2"):
        study.run_folds(pooled, 2, epochs=1)


def test_serkit_schedule_warms_up_then_decays_to_zero_as_serkit_cv_does(study):
    from serkit.training.schedule import warmup_linear_decay

    optimiser = torch.optim.AdamW([torch.nn.Parameter(torch.zeros(1))], lr=0.01)
    scheduler = study.make_schedule(optimiser, 0.01, 17, "serkit")
    seen = []
    for step in range(17):
        seen.append(optimiser.param_groups[0]["lr"])
        optimiser.step()
        scheduler.step()
    # 17 steps: round(1.7) = 2 warm-up steps, as serkit cv rounds (a floor would give 1)
    assert seen == pytest.approx([0.01 * warmup_linear_decay(s, 17, 2) for s in range(17)])
    assert seen[1] == pytest.approx(0.01) and optimiser.param_groups[0]["lr"] == 0.0
    assert optimiser.param_groups[0]["betas"][0] == 0.9  # no momentum cycling, unlike OneCycleLR
    with pytest.raises(ValueError, match="'onecycle' or 'serkit'"):
        study.make_schedule(optimiser, 0.01, 20, "cosine")


@pytest.mark.parametrize("options, least", [({"schedule": "serkit"}, 85), ({"hidden": 16}, 85),
                                            ({"layers": "concat"}, 70)])  # concat: 24 inputs, 24 training clips
def test_every_head_shape_and_schedule_learns_and_runs_its_course(study, options, least):
    results = study.run_folds(_pooled(), 2, epochs=8, top_k=3, batch=8, lr=0.05, **options)
    assert np.mean([r["test"] for r in results]) >= least, results  # chance: 50
    assert all(r["final_lr"] < 0.05 / 1000 for r in results), results
    assert study.run_folds(_pooled(), 2, epochs=8, top_k=3, batch=8, lr=0.05, **options) == results
    default = study.run_folds(_pooled(), 2, epochs=8, top_k=3, batch=8, lr=0.05)
    assert [r["history"] for r in results] != [r["history"] for r in default]  # the option took effect
    assert all((r["layer_weights"] is None) == (options.get("layers") == "concat") for r in results)


def test_the_command_line_passes_the_head_options_through(study, tmp_path, capsys, monkeypatch):
    np.savez(tmp_path / "pooled.npz", **_pooled())
    seen = {}
    real = study.train_head

    def spy(*args, **kwargs):
        seen.update(kwargs)
        return real(*args, **kwargs)

    monkeypatch.setattr(study, "train_head", spy)
    assert study.main(["head", str(tmp_path / "pooled.npz"), "--epochs", "2", "--batch", "8", "--hidden", "8",
                       "--layers", "concat", "--schedule", "serkit"]) == 0
    assert (seen["hidden"], seen["layers"], seen["schedule"], seen["epochs"]) == (8, "concat", "serkit", 2)
    assert "'layers': 'concat'" in capsys.readouterr().out


def test_head_shapes(study):
    x = torch.randn(5, 3, 8)
    mlp = study.PooledHead(3, 8, 4, 0.0, hidden=16)
    assert mlp(x).shape == (5, 4) and sum(p.numel() for p in mlp.linear.parameters()) == 8 * 16 + 16 + 16 * 4 + 4
    concat = study.PooledHead(3, 8, 4, 0.0, layers="concat")
    assert concat(x).shape == (5, 4) and concat.linear.in_features == 24 and not concat.weights.requires_grad
    with pytest.raises(ValueError, match="'weighted' or 'concat'"):
        study.PooledHead(3, 8, 4, 0.0, layers="sum")
