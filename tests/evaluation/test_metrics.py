import json
import warnings

import numpy as np
import pytest
from sklearn.metrics import f1_score

from serkit.errors import DataError
from serkit.evaluation.metrics import Metrics, compute_metrics, metrics_from_confusion

LABELS = ["ang", "hap", "neu"]


def _from_confusion_by_hand(matrix: list[list[int]]) -> tuple[np.ndarray, np.ndarray]:
    """Predictions and targets [N] that produce `matrix` (rows = true, cols = predicted), shuffled."""
    targets, predictions = [], []
    for true, row in enumerate(matrix):
        for predicted, count in enumerate(row):
            targets += [true] * count
            predictions += [predicted] * count
    order = np.random.default_rng(0).permutation(len(targets))
    return np.array(predictions)[order], np.array(targets)[order]


def test_three_class_example_where_wa_differs_from_ua():
    # Confusion matrix written by hand (rows = true, cols = predicted):
    #            ang hap neu
    #   ang  [    4,  1,  0 ]   5 true ang, recall 4/5 = 0.8
    #   hap  [    2,  1,  0 ]   3 true hap, recall 1/3
    #   neu  [    0,  0,  2 ]   2 true neu, recall 2/2 = 1.0
    # WA = (4 + 1 + 2) / 10 = 0.7
    # UA = (0.8 + 1/3 + 1.0) / 3 = 0.711111...
    # precision: ang 4/6, hap 1/2, neu 2/2
    # F1 = 2TP/(pred+true): ang 8/11, hap 2/5, neu 4/4 -> macro (8/11 + 0.4 + 1) / 3 = 0.709090...
    matrix = [[4, 1, 0], [2, 1, 0], [0, 0, 2]]
    predictions, targets = _from_confusion_by_hand(matrix)

    m = compute_metrics(predictions, targets, LABELS)

    np.testing.assert_array_equal(m.confusion, matrix)
    assert m.wa == pytest.approx(0.7)
    assert m.ua == pytest.approx((0.8 + 1 / 3 + 1.0) / 3)
    assert m.wa != pytest.approx(m.ua)
    assert m.macro_f1 == pytest.approx((8 / 11 + 0.4 + 1.0) / 3)
    assert m.n == 10
    assert m.per_class_recall() == pytest.approx({"ang": 0.8, "hap": 1 / 3, "neu": 1.0})
    assert m.per_class_precision() == pytest.approx({"ang": 4 / 6, "hap": 0.5, "neu": 1.0})


@pytest.mark.filterwarnings("ignore:classes")
def test_confusion_rows_are_true_classes():
    # one utterance of true class 0 predicted as class 2: the count sits in row 0, column 2
    m = compute_metrics([2], [0], LABELS)
    assert m.confusion[0, 2] == 1 and m.confusion.sum() == 1


def test_perfect_and_all_wrong():
    targets = np.array([0, 1, 2, 2, 1])
    assert compute_metrics(targets, targets, LABELS).ua == 1.0
    wrong = compute_metrics((targets + 1) % 3, targets, LABELS)
    assert wrong.wa == 0.0 and wrong.ua == 0.0 and wrong.macro_f1 == 0.0


def test_class_absent_from_targets_is_left_out_of_ua_with_a_warning():
    labels = ["ang", "hap", "neu", "sad"]
    # By hand: sad never occurs in the targets but is predicted once (a hap utterance).
    #          ang hap neu sad
    #   ang  [  2,  0,  0,  0 ]  recall 1
    #   hap  [  0,  1,  0,  1 ]  recall 1/2
    #   neu  [  0,  0,  1,  0 ]  recall 1
    #   sad  [  0,  0,  0,  0 ]  absent: no recall
    # WA = 4/5; UA over the 3 present classes = (1 + 0.5 + 1) / 3 = 5/6 (not (1+0.5+1+0)/4 = 0.625)
    predictions = [0, 0, 1, 3, 2]
    targets = [0, 0, 1, 1, 2]
    with pytest.warns(UserWarning, match="sad"):
        m = compute_metrics(predictions, targets, labels)
    assert m.wa == pytest.approx(0.8)
    assert m.ua == pytest.approx(5 / 6)
    assert m.per_class_recall()["sad"] is None
    assert m.per_class_precision()["sad"] == 0.0
    # F1 over the present classes: ang 1, hap 2*1/(1+2) = 2/3, neu 1
    assert m.macro_f1 == pytest.approx((1 + 2 / 3 + 1) / 3)


def test_no_warning_when_every_class_is_present():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        compute_metrics([0, 1, 2], [0, 1, 2], LABELS)


def test_macro_f1_matches_sklearn_and_confusion_route_on_random_data():
    rng = np.random.default_rng(1)
    targets = rng.integers(0, 4, size=200)
    predictions = np.where(rng.random(200) < 0.6, targets, rng.integers(0, 4, size=200))
    labels = ["a", "b", "c", "d"]
    m = compute_metrics(predictions, targets, labels)
    assert m.macro_f1 == pytest.approx(f1_score(targets, predictions, average="macro"))
    again = metrics_from_confusion(m.confusion, labels)
    assert again.wa == pytest.approx(m.wa)
    assert again.ua == pytest.approx(m.ua)
    assert again.macro_f1 == pytest.approx(m.macro_f1)


def test_to_dict_is_json_safe_and_round_trips():
    m = compute_metrics(np.array([0, 1, 1, 2], dtype=np.int32), np.array([0, 1, 2, 2]), LABELS)
    text = json.dumps(m.to_dict())  # raises on numpy scalars or arrays
    back = Metrics.from_dict(json.loads(text))
    assert back == m
    assert back.confusion.dtype == np.int64


@pytest.mark.parametrize(
    "predictions, targets, message",
    [
        ([0, 1], [0], "2 entries"),
        ([], [], "empty"),
        ([0, 3], [0, 1], "outside"),
        ([0, -1], [0, 1], "outside"),
        ([0.0, 1.0], [0, 1], "integer"),
        ([[0, 1]], [[0, 1]], "1-D"),
    ],
)
def test_bad_inputs_raise_data_error(predictions, targets, message):
    with pytest.raises(DataError, match=message):
        compute_metrics(predictions, targets, LABELS)


def test_bad_confusion_matrix_is_refused():
    with pytest.raises(DataError, match="shape"):
        metrics_from_confusion(np.zeros((2, 2)), LABELS)
    with pytest.raises(DataError, match="non-negative"):
        metrics_from_confusion(-np.eye(3), LABELS)
