"""Lightning's CSV logger, continued (not restarted) when a fold resumes.

Lightning's CSVLogger deletes an existing metrics.csv when it starts, so a resumed fold kept only the epochs
after the resume. Here the earlier rows stay and new rows are appended under the same header (rows of the
epoch that was interrupted may appear twice: once from before the kill, once from the resumed run).
"""

from __future__ import annotations

import csv
import os

from lightning.pytorch.loggers import CSVLogger
from lightning.pytorch.loggers.csv_logs import ExperimentWriter
from lightning.pytorch.loggers.logger import rank_zero_experiment


class _ContinuingWriter(ExperimentWriter):
    def _check_log_dir_exists(self) -> None:
        if os.path.isfile(self.metrics_file_path):
            with open(self.metrics_file_path, newline="", encoding="utf-8") as f:
                self.metrics_keys = next(csv.reader(f), [])


class ContinuingCSVLogger(CSVLogger):
    @property
    @rank_zero_experiment
    def experiment(self) -> ExperimentWriter:
        if self._experiment is None:
            os.makedirs(self.root_dir, exist_ok=True)
            self._experiment = _ContinuingWriter(log_dir=self.log_dir)
        return self._experiment
