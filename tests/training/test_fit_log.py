"""logs/metrics.csv (MetricsCSV) continues across a resume: the earlier fit's rows stay, the rows the resumed fit
logs again (those of the interrupted epoch) are not there twice, and every write is whole."""

from __future__ import annotations

import csv

from serkit.training.fit_log import MetricsCSV


def rows(fold_dir) -> list[dict]:
    with open(fold_dir / "logs" / "metrics.csv", newline="") as f:
        return list(csv.DictReader(f))


def test_a_resumed_fit_continues_the_csv_without_repeating_rows(tmp_path):
    first = MetricsCSV(tmp_path)
    for step in range(1, 6):  # killed after step 5; its last.ckpt was written at step 3
        first.log_metrics({"train_loss": 1.0 / step, "epoch": step // 2}, step)
        first.save()
    first.log_metrics({"val_ua": 0.5, "epoch": 1}, 3)  # an epoch-level row, logged at the step it ended
    first.save()
    resumed = MetricsCSV(tmp_path)
    resumed.log_metrics({"train_loss": 0.25, "epoch": 2}, 4)  # the resumed fit logs step 4 again
    resumed.save()
    written = rows(tmp_path)
    assert [(row["step"], row["train_loss"], row["val_ua"]) for row in written] == [
        ("1", "1.0", ""), ("2", "0.5", ""), ("3", str(1.0 / 3), ""), ("3", "", "0.5"), ("4", "0.25", "")]
    assert list(written[0]) == ["epoch", "step", "train_loss", "val_ua"]  # epoch, step, then metrics as first logged
    assert [row["epoch"] for row in written] == ["0", "1", "1", "1", "2"]  # an int stays an int
    assert not [p for p in (tmp_path / "logs").iterdir() if p.name.startswith(".")]  # no temp file left


def test_a_fresh_fit_starts_the_file(tmp_path):
    logger = MetricsCSV(tmp_path)
    logger.save()  # nothing logged yet: no file
    assert not (tmp_path / "logs" / "metrics.csv").exists()
    logger.log_metrics({"val_ua": 0.25}, 0)
    logger.save()
    assert rows(tmp_path) == [{"val_ua": "0.25", "step": "0"}]
