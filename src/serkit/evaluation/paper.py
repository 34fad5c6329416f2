"""The paper's Table 1 (Morais et al., ICASSP 2022) and the report that puts our numbers beside it.

Published values are WA / UA in percent on IEMOCAP 4-class, 5-fold (leave-one-session-out) cross-validation.
`write_table1` writes table1.md (for people), table1.csv and table1.json (for programs). Our numbers are the
mean ± sample std (ddof=1) over the folds that were run; Δ = ours − paper in percentage points. An experiment
not run is "—" in the Markdown, an empty cell in the CSV and null in the JSON.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

from ..errors import ConfigError
from .metrics import Metrics
from .tables import DASH, CVSummary, FoldScores, csv_text, markdown_table, write_tables

PAPER = "Morais et al., Speech Emotion Recognition using Self-Supervised Features, ICASSP 2022"


@dataclass(frozen=True)
class PaperExperiment:
    """One row of the paper's Table 1: number, what was run, our config name, published WA / UA (%)."""

    number: int
    system: str
    config: str
    wa: float
    ua: float


PAPER_TABLE1: dict[int, PaperExperiment] = {e.number: e for e in [
    PaperExperiment(1, "wav2vec 2.0 fine-tuned, mean pooling", "01_w2v2_mean", 74.09, 74.56),
    PaperExperiment(2, "HuBERT fine-tuned, mean pooling", "02_hubert_mean", 72.99, 73.45),
    PaperExperiment(3, "wav2vec 2.0 fine-tuned, mean pooling, checkpoint averaging", "03_w2v2_mean_avg", 76.47, 76.86),
    PaperExperiment(4, "HuBERT fine-tuned, mean pooling, checkpoint averaging", "04_hubert_mean_avg", 75.20, 75.80),
    PaperExperiment(5, "wav2vec 2.0 fine-tuned, ECAPA-TDNN, checkpoint averaging", "05_w2v2_ecapa", 76.58, 77.36),
    PaperExperiment(6, "HuBERT fine-tuned, ECAPA-TDNN, checkpoint averaging", "06_hubert_ecapa", 75.56, 77.04),
    PaperExperiment(7, "early fusion HuBERT + wav2vec 2.0 frames -> ECAPA-TDNN", "07_early_fusion_ecapa", 77.07, 77.76),
    PaperExperiment(8, "late fusion HuBERT & wav2vec 2.0 (ECAPA-TDNN each)", "08_late_fusion_ecapa", 76.78, 77.52),
    PaperExperiment(9, "80-dim log-mel filterbank -> ECAPA-TDNN", "09_fbank_ecapa", 56.52, 57.60),
    PaperExperiment(10, "BERT fine-tuned on transcripts, mean pooling", "10_bert_text", 69.34, 70.07),
    PaperExperiment(11, "late fusion filterbank ECAPA-TDNN & BERT", "11_fbank_bert_late", 70.56, 71.46),
]}

CSV_COLUMNS = ("number", "system", "config", "paper_wa_pct", "paper_ua_pct", "ours_wa_mean_pct", "ours_wa_std_pct",
               "ours_ua_mean_pct", "ours_ua_std_pct", "delta_wa_pct", "delta_ua_pct", "folds_run")


def experiment_for_config(config_name: str) -> PaperExperiment:
    """The Table-1 row of a paper config ("03_w2v2_mean_avg" -> experiment 3)."""
    for experiment in PAPER_TABLE1.values():
        if experiment.config == config_name:
            return experiment
    known = ", ".join(e.config for e in PAPER_TABLE1.values())
    raise ConfigError(f"config {config_name!r} is not one of the paper's experiments; known: {known}")


def table1_rows(results: Mapping[int, CVSummary | Metrics]) -> list[dict]:
    """One JSON-safe dict per paper experiment (keys = CSV_COLUMNS, percent, None where not run).

    results: experiment number -> its cross-validation summary (or the Metrics of a single run, 1 fold).
    """
    unknown = sorted(set(results) - set(PAPER_TABLE1), key=str)
    if unknown:
        raise ConfigError(f"results for experiments {unknown}: the paper's Table 1 has experiments 1-11")
    rows = []
    for number, experiment in PAPER_TABLE1.items():
        row = {"number": number, "system": experiment.system, "config": experiment.config,
               "paper_wa_pct": experiment.wa, "paper_ua_pct": experiment.ua}
        result = results.get(number)
        if isinstance(result, Metrics):
            result = CVSummary([FoldScores("1", result)])
        for score, published in (("wa", experiment.wa), ("ua", experiment.ua)):
            ours = None if result is None else result.stat(score)
            row[f"ours_{score}_mean_pct"] = None if ours is None else _pct(ours.mean)
            row[f"ours_{score}_std_pct"] = None if ours is None or ours.std is None else _pct(ours.std)
            row[f"delta_{score}_pct"] = None if ours is None else round(100 * ours.mean - published, 4)
        row["folds_run"] = 0 if result is None else len(result.folds)
        rows.append({key: row[key] for key in CSV_COLUMNS})
    return rows


def table1_markdown(rows: list[dict]) -> str:
    header = ["#", "system", "paper WA", "paper UA", "ours WA (mean ± std)", "ours UA (mean ± std)", "ΔWA", "ΔUA",
              "folds run"]
    lines = markdown_table(header, [
        [r["number"], r["system"], f"{r['paper_wa_pct']:.2f}", f"{r['paper_ua_pct']:.2f}",
         _mean_std(r["ours_wa_mean_pct"], r["ours_wa_std_pct"]), _mean_std(r["ours_ua_mean_pct"], r["ours_ua_std_pct"]),
         _signed(r["delta_wa_pct"]), _signed(r["delta_ua_pct"]), r["folds_run"] or DASH] for r in rows], left=(1,))
    return "\n".join([f"Table 1 of {PAPER}: published vs. ours (WA / UA in %; ours = mean ± sample std over folds; "
                      "Δ = ours − paper in points).", "", *lines]) + "\n"


def table1_csv(rows: list[dict]) -> str:
    return csv_text(CSV_COLUMNS, [["" if r[k] is None else (f"{r[k]:.2f}" if isinstance(r[k], float) else r[k])
                                   for k in CSV_COLUMNS] for r in rows])


def write_table1(results: Mapping[int, CVSummary | Metrics], out_dir: str | Path) -> dict[str, Path]:
    """Write table1.md, table1.csv, table1.json into out_dir (created); returns {"md"|"csv"|"json": path}."""
    rows = table1_rows(results)
    return write_tables(out_dir, "table1", table1_markdown(rows), table1_csv(rows),
                        {"source": f"{PAPER}, Table 1", "unit": "percent", "std_ddof": 1, "rows": rows})


def _pct(fraction: float) -> float:
    return round(100 * fraction, 4)


def _mean_std(mean: float | None, std: float | None) -> str:
    if mean is None:
        return DASH
    return f"{mean:.2f} ± {DASH if std is None else f'{std:.2f}'}"


def _signed(value: float | None) -> str:
    return DASH if value is None else f"{value:+.2f}"
