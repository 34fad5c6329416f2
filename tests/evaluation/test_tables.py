import csv
import io
import json

import numpy as np
import pytest

from serkit.errors import ConfigError, DataError
from serkit.evaluation.metrics import metrics_from_confusion
from serkit.evaluation.paper import PAPER_TABLE1, experiment_for_config, write_table1
from serkit.evaluation.tables import CVSummary, FoldScores

LABELS = ["neu", "sad"]

# Three folds of 10 utterances, matrices by hand (rows = true):
#   fold 1 [[3,2],[3,2]]: WA 5/10 = 0.5, UA (3/5 + 2/5)/2 = 0.5
#   fold 2 [[4,1],[2,3]]: WA 7/10 = 0.7, UA (4/5 + 3/5)/2 = 0.7
#   fold 3 [[6,0],[1,3]]: WA 9/10 = 0.9, UA (6/6 + 3/4)/2 = 0.875
# WA mean 0.7, sample std sqrt((0.2² + 0 + 0.2²) / 2) = 0.2 (population std would be 0.1633)
FOLDS = {"1": [[3, 2], [3, 2]], "2": [[4, 1], [2, 3]], "3": [[6, 0], [1, 3]]}
# best single checkpoints: WA 0.4, 0.7, 0.8 -> gain (averaged - best) 0.1, 0.0, 0.1
BEST = {"1": [[2, 3], [3, 2]], "2": [[4, 1], [2, 3]], "3": [[5, 1], [1, 3]]}


def _summary(with_best: bool = False) -> CVSummary:
    return CVSummary([
        FoldScores(fold, metrics_from_confusion(np.array(m), LABELS),
                   metrics_from_confusion(np.array(BEST[fold]), LABELS) if with_best else None)
        for fold, m in FOLDS.items()
    ])


def _csv_rows(text: str) -> dict[str, dict[str, str]]:
    return {row["fold"]: row for row in csv.DictReader(io.StringIO(text))}


def test_mean_and_sample_std_over_folds():
    s = _summary()
    assert s.stat("wa").mean == pytest.approx(0.7)
    assert s.stat("wa").std == pytest.approx(0.2)
    assert s.stat("ua").mean == pytest.approx((0.5 + 0.7 + 0.875) / 3)
    assert s.stat("wa").count == 3


def test_summed_confusion_and_pooled_metrics():
    s = _summary()
    # [[3+4+6, 2+1+0], [3+2+1, 2+3+3]]
    np.testing.assert_array_equal(s.summed_confusion(), [[13, 3], [6, 8]])
    pooled = s.pooled()
    assert pooled.wa == pytest.approx(21 / 30)
    assert pooled.ua == pytest.approx((13 / 16 + 8 / 14) / 2)


def test_csv_has_fold_rows_mean_and_std_in_percent():
    rows = _csv_rows(_summary().to_csv())
    assert list(rows) == ["1", "2", "3", "mean", "std"]
    assert rows["1"]["wa_pct"] == "50.00" and rows["3"]["ua_pct"] == "87.50"
    assert rows["2"]["n"] == "10" and rows["mean"]["n"] == "30"
    assert float(rows["mean"]["wa_pct"]) == pytest.approx(70.0)
    assert float(rows["std"]["wa_pct"]) == pytest.approx(20.0)
    assert "best_wa_pct" not in rows["1"]


def test_markdown_shows_folds_mean_std_and_confusion():
    md = _summary().to_markdown()
    assert "| 3 | 10 | 90.00 | 87.50 |" in md
    assert "70.00 ± 20.00" in md
    assert "| neu | 13 | 3 |" in md and "| sad | 6 | 8 |" in md
    assert "best single" not in md


def test_best_single_versus_averaged_rows_and_gain():
    s = _summary(with_best=True)
    assert s.stat("wa", best_single=True).mean == pytest.approx((0.4 + 0.7 + 0.8) / 3)
    gain = s.gain("wa")
    assert gain.mean == pytest.approx(0.2 / 3)
    assert gain.std == pytest.approx(np.std([0.1, 0.0, 0.1], ddof=1))
    md = s.to_markdown()
    assert "| best single checkpoint | 63.33 ± 20.82 |" in md
    assert "| averaged checkpoints | 70.00 ± 20.00 |" in md
    assert "| gain (averaged − best) | +6.67 ± 5.77 |" in md
    rows = _csv_rows(s.to_csv())
    assert rows["1"]["best_wa_pct"] == "40.00"
    assert float(rows["mean"]["best_wa_pct"]) == pytest.approx(63.33, abs=0.005)


def test_json_round_trip_and_write(tmp_path):
    s = _summary(with_best=True)
    paths = s.write(tmp_path / "report", stem="cv")
    assert {p.name for p in paths.values()} == {"cv.md", "cv.csv", "cv.json"}
    obj = json.loads(paths["json"].read_text())
    assert obj["std_ddof"] == 1
    assert obj["summary"]["wa"]["mean"] == pytest.approx(0.7)
    assert obj["gain"]["wa"]["mean"] == pytest.approx(0.2 / 3)
    assert obj["summed_confusion"] == [[13, 3], [6, 8]]
    back = CVSummary.from_dict(obj)
    assert [f.fold for f in back.folds] == ["1", "2", "3"]
    assert all(a.metrics == b.metrics and a.best_single == b.best_single for a, b in zip(back.folds, s.folds))
    assert paths["md"].read_text() == s.to_markdown()
    assert not list((tmp_path / "report").glob("*.tmp"))


def test_single_fold_has_undefined_std():
    s = CVSummary([FoldScores(1, metrics_from_confusion(np.array(FOLDS["1"]), LABELS))])
    assert s.stat("wa").std is None
    assert "50.00 ± —" in s.to_markdown()
    assert _csv_rows(s.to_csv())["std"]["wa_pct"] == ""
    assert json.loads(json.dumps(s.to_dict()))["summary"]["wa"]["std"] is None


def test_inconsistent_folds_are_refused():
    m = metrics_from_confusion(np.array(FOLDS["1"]), LABELS)
    other = metrics_from_confusion(np.array(FOLDS["1"]), ["ang", "hap"])
    with pytest.raises(DataError, match="at least one fold"):
        CVSummary([])
    with pytest.raises(DataError, match="repeat"):
        CVSummary([FoldScores("1", m), FoldScores(1, m)])
    with pytest.raises(DataError, match="labels"):
        CVSummary([FoldScores("1", m), FoldScores("2", other)])
    with pytest.raises(DataError, match=r"\['2'\] lack best"):
        CVSummary([FoldScores("1", m, m), FoldScores("2", m)])


# --- the paper's Table 1 (serkit.evaluation.paper) ------------------------------------------------------------


def test_paper_table_holds_the_published_numbers():
    assert sorted(PAPER_TABLE1) == list(range(1, 12))
    assert (PAPER_TABLE1[1].wa, PAPER_TABLE1[1].ua) == (74.09, 74.56)
    assert (PAPER_TABLE1[7].wa, PAPER_TABLE1[7].ua) == (77.07, 77.76)
    assert (PAPER_TABLE1[9].wa, PAPER_TABLE1[9].ua) == (56.52, 57.60)
    assert (PAPER_TABLE1[11].wa, PAPER_TABLE1[11].ua) == (70.56, 71.46)
    # the paper's best system is the early fusion (exp. 7) on both scores
    assert max(PAPER_TABLE1.values(), key=lambda e: e.ua).number == 7
    assert experiment_for_config("03_w2v2_mean_avg").number == 3
    with pytest.raises(ConfigError, match="not one of the paper's"):
        experiment_for_config("99_nothing")


def test_write_table1_files_parse_back(tmp_path):
    # exp. 3 ran all three folds (WA 70.00 ± 20.00); exp. 10 ran once (a bare Metrics, WA 0.7 UA 0.7)
    single = metrics_from_confusion(np.array(FOLDS["2"]), LABELS)
    paths = write_table1({3: _summary(with_best=True), 10: single}, tmp_path / "report")
    assert {p.name for p in paths.values()} == {"table1.md", "table1.csv", "table1.json"}

    rows = {r["number"]: r for r in csv.DictReader(io.StringIO(paths["csv"].read_text()))}
    assert len(rows) == 11
    assert rows["3"]["paper_wa_pct"] == "76.47" and rows["3"]["paper_ua_pct"] == "76.86"
    assert float(rows["3"]["ours_wa_mean_pct"]) == pytest.approx(70.0)
    assert float(rows["3"]["ours_wa_std_pct"]) == pytest.approx(20.0)
    assert float(rows["3"]["delta_wa_pct"]) == pytest.approx(70.0 - 76.47)
    # the CSV rounds to the paper's 2 decimals; the JSON keeps 4
    assert float(rows["3"]["delta_ua_pct"]) == pytest.approx(100 * (0.5 + 0.7 + 0.875) / 3 - 76.86, abs=0.005)
    assert rows["3"]["folds_run"] == "3"
    assert rows["10"]["folds_run"] == "1" and rows["10"]["ours_wa_std_pct"] == ""
    assert float(rows["10"]["delta_ua_pct"]) == pytest.approx(70.0 - 70.07)
    assert rows["1"]["ours_wa_mean_pct"] == "" and rows["1"]["folds_run"] == "0"

    obj = json.loads(paths["json"].read_text())
    assert obj["unit"] == "percent"
    by_number = {r["number"]: r for r in obj["rows"]}
    assert by_number[7]["paper_ua_pct"] == 77.76 and by_number[7]["ours_ua_mean_pct"] is None
    assert by_number[3]["ours_wa_mean_pct"] == pytest.approx(70.0)

    md = paths["md"].read_text()
    header = ("| # | system | paper WA | paper UA | ours WA (mean ± std) | ours UA (mean ± std) | ΔWA | ΔUA "
              "| folds run |")
    assert header in md
    line3 = next(line for line in md.splitlines() if line.startswith("| 3 |"))
    assert "| 76.47 | 76.86 | 70.00 ± 20.00 |" in line3 and "| -6.47 |" in line3 and line3.endswith("| 3 |")
    line1 = next(line for line in md.splitlines() if line.startswith("| 1 |"))
    assert line1.endswith("| — | — | — | — | — |")


def test_write_table1_refuses_unknown_experiments(tmp_path):
    with pytest.raises(ConfigError, match=r"\[12\]"):
        write_table1({12: _summary()}, tmp_path)
