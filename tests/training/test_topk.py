import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from serkit.errors import ConfigError
from serkit.training.topk import TopK

# validation UA per epoch; ties on purpose (0.70 at epochs 2, 5 and 8; 0.72 at 3 and 7)
SCORES = [0.61, 0.66, 0.70, 0.72, 0.64, 0.70, 0.69, 0.72, 0.70, 0.55, 0.71]


def _k_best(scores: list[float], k: int, mode: str = "max") -> list[int]:
    """Steps of the k best scores, best first; equal scores: the earlier step wins."""
    sign = -1 if mode == "max" else 1
    return sorted(range(len(scores)), key=lambda step: (sign * scores[step], step))[:k]


def _train(tracker: TopK, scores: list[float], folder: Path, start: int = 0) -> None:
    """What a training loop does: save every checkpoint, offer it, delete whatever drops out."""
    for step in range(start, len(scores)):
        path = folder / f"step{step}.safetensors"
        path.write_text(f"weights of step {step}")
        decision = tracker.push(scores[step], step, str(path))
        assert decision.kept == (str(path) in tracker.paths())
        if decision.evicted is not None:
            Path(decision.evicted).unlink()


@pytest.mark.parametrize("k", [1, 3, 5])
def test_top_k_keeps_exactly_the_k_best_by_the_chosen_metric(tmp_path, k):
    tracker = TopK(k, metric="val_ua", mode="max")
    _train(tracker, SCORES, tmp_path)
    expected = _k_best(SCORES, k)
    assert [e.step for e in tracker.entries] == expected
    on_disk = sorted(int(p.stem.removeprefix("step")) for p in tmp_path.iterdir())
    assert on_disk == sorted(expected)  # every evicted or rejected file was deleted, the kept ones are there
    assert tracker.paths() == [str(tmp_path / f"step{s}.safetensors") for s in expected]


def test_ties_keep_the_earlier_step():
    tracker = TopK(2)
    assert tracker.push(0.7, 1, "a").kept
    assert tracker.push(0.7, 2, "b").kept  # room left
    decision = tracker.push(0.7, 3, "c")  # same score as both kept ones, later: not kept
    assert decision == type(decision)(kept=False, evicted="c")
    assert not tracker.would_keep(0.7, 4)
    assert tracker.would_keep(0.7000001, 4)
    assert tracker.push(0.8, 5, "d").evicted == "b"
    assert tracker.paths() == ["d", "a"]


def test_min_mode_and_nan():
    tracker = TopK(2, metric="val_loss", mode="min")
    for step, loss in enumerate([0.9, 0.5, float("nan"), 0.7, 0.4]):
        tracker.push(loss, step, f"s{step}")
    assert tracker.paths() == ["s4", "s1"]
    assert tracker.best().score == 0.4
    assert TopK(3).push(float("nan"), 0, "x").kept is False  # even with room: a NaN run is broken


def test_resume_from_dict_makes_the_same_decisions(tmp_path):
    k, split = 3, 6
    straight = TopK(k)
    (tmp_path / "straight").mkdir()
    _train(straight, SCORES, tmp_path / "straight")

    first = TopK(k)
    (tmp_path / "resumed").mkdir()
    _train(first, SCORES[:split], tmp_path / "resumed")
    state = json.loads(json.dumps(first.to_dict()))  # through JSON, as a resume file would be
    resumed = TopK.from_dict(state)
    assert (resumed.k, resumed.metric, resumed.mode) == (k, "val_ua", "max")
    _train(resumed, SCORES, tmp_path / "resumed", start=split)
    assert [e.step for e in resumed.entries] == [e.step for e in straight.entries]
    assert sorted(p.name for p in (tmp_path / "resumed").iterdir()) == sorted(
        p.name for p in (tmp_path / "straight").iterdir())


def test_pushing_a_tracked_path_again_replaces_it():
    tracker = TopK(2)
    tracker.push(0.9, 1, "last.ckpt")
    decision = tracker.push(0.1, 2, "last.ckpt")  # overwritten with a worse model: still kept (room left)
    assert decision.kept and [(e.score, e.step) for e in tracker.entries] == [(0.1, 2)]


def test_bad_settings_are_refused():
    with pytest.raises(ConfigError, match="top_k"):
        TopK(0)
    with pytest.raises(ConfigError, match="mode"):
        TopK(3, mode="best")
    with pytest.raises(ConfigError, match="entries"):
        TopK.from_dict({"k": 2, "metric": "val_ua", "mode": "max"})


@settings(max_examples=100, deadline=None, database=None)
@given(scores=st.lists(st.integers(0, 5).map(lambda v: v / 5), max_size=30), k=st.integers(1, 5),
       mode=st.sampled_from(["max", "min"]))
def test_kept_set_is_the_k_best_for_any_sequence(scores, k, mode):
    tracker = TopK(k, mode=mode)
    alive = set()  # a stand-in for the checkpoint folder
    for step, score in enumerate(scores):
        alive.add(step)
        decision = tracker.push(score, step, str(step))
        if decision.evicted is not None:
            alive.remove(int(decision.evicted))
    assert [e.step for e in tracker.entries] == _k_best(scores, k, mode)
    assert alive == set(_k_best(scores, k, mode))
