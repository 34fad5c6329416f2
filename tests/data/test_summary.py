"""The `serkit data` table on a small manifest corpus built here."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from serkit.cli import main
from serkit.commands.data import data_config, format_table, summarize
from serkit.data.prepare import read_corpus

# speaker, fold, label, seconds
ROWS = [
    ("ann", 1, "hap", 1.0), ("ann", 1, "sad", 0.5), ("bob", 1, "hap", 0.5),
    ("cat", 2, "sad", 1.5), ("cat", 2, "fru", 0.5),
    ("dan", 3, "hap", 0.25), ("eve", 3, "fru", 0.25), ("eve", 3, "sad", 0.75), ("eve", 3, "fru", 0.5),
]  # fmt: skip


@pytest.fixture
def manifest(tmp_path) -> Path:
    lines = ["id,path,label,speaker,fold"]
    for i, (speaker, fold, label, seconds) in enumerate(ROWS):
        sf.write(tmp_path / f"u{i}.wav", np.full(int(seconds * 16000), 0.1, np.float32), 16000)
        lines.append(f"u{i},u{i}.wav,{label},{speaker},{fold}")
    path = tmp_path / "corpus.csv"
    path.write_text("\n".join(lines) + "\n")
    return path


def table(text: str) -> dict[tuple[str, str], dict[str, str]]:
    """{(fold, split): {column: cell}} from the printed table (the block after the heading)."""
    block = text.split("\n\n")[1].splitlines()
    header = block[0].split()
    return {tuple(line.split()[:2]): dict(zip(header, line.split(), strict=True)) for line in block[1:]}


def test_table_counts_per_fold_and_split(manifest):
    text = summarize(read_corpus(data_config("manifest", str(manifest), labels="hap,sad")), str(manifest))
    rows = table(text)
    assert list(rows) == [("all", "all")] + [(str(k), s) for k in (1, 2, 3) for s in ("train", "valid", "test")]
    assert rows["all", "all"] == {
        "fold": "all", "split": "all", "utterances": "6", "hours": "0.00", "speakers": "5", "hap": "3", "sad": "3"
    }  # fmt: skip
    # fold 1: test = fold 1, valid = fold 2, train = fold 3
    assert (rows["1", "test"]["utterances"], rows["1", "test"]["speakers"], rows["1", "test"]["hap"]) == ("3", "2", "2")
    assert (rows["1", "valid"]["utterances"], rows["1", "valid"]["sad"]) == ("1", "1")
    assert (rows["1", "train"]["utterances"], rows["1", "train"]["hap"], rows["1", "train"]["sad"]) == ("2", "1", "1")
    assert rows["3", "valid"]["utterances"] == "3"  # fold 3 validates on fold 1
    assert "skipped 3 rows:\n  3  label fru not in class set" in text
    assert "classes (2): hap, sad" in text


def test_hours_and_default_classes(manifest):
    rows = table(summarize(read_corpus(data_config("manifest", str(manifest), options=["num_folds=3"])), str(manifest)))
    total = sum(seconds for *_, seconds in ROWS)
    assert float(rows["all", "all"]["hours"]) == pytest.approx(total / 3600, abs=0.005)
    assert {k: rows["all", "all"][k] for k in ("fru", "hap", "sad")} == {"fru": "3", "hap": "3", "sad": "3"}


def test_format_table_aligns_columns():
    text = format_table(["fold", "n"], [["all", "1440"], ["1", "7"]], left=1)
    assert text.splitlines() == ["fold     n", "all   1440", "1        7"]


def test_cli_prints_one_fold(manifest, capsys):
    assert main(["data", "manifest", "--root", str(manifest), "--fold", "2", "--labels", "hap,sad,fru",
                 "--option", "valid=none"]) == 0  # fmt: skip
    out = capsys.readouterr().out
    rows = table(out)
    assert list(rows) == [("all", "all"), ("2", "train"), ("2", "valid"), ("2", "test")]
    assert rows["2", "valid"]["utterances"] == "0" and rows["2", "test"]["utterances"] == "2"
    assert rows["2", "train"]["utterances"] == "7"
    assert "skipped: none" in out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--fold", "4"], "folds [4] do not exist"),
        (["--option", "labels=hap,sad"], "the class set goes in data.labels (--labels on the command line)"),
        (["--option", "colour=red"], "key 'data.options.colour' is not an option of corpus 'manifest'; "
                                     "valid keys: num_folds, valid"),
        (["--option", "num_folds=three"], "key 'data.options.num_folds'"),
        (["--option", "novalue"], "expected KEY=VALUE"),
        (["--labels", "hap,ang"], "['ang'] never occur"),
    ],
)
def test_cli_errors_are_one_line(manifest, capsys, argv, message):
    assert main(["data", "manifest", "--root", str(manifest), *argv]) == 1
    err = capsys.readouterr().err
    assert err.startswith("serkit data: error:") and message in err


def test_cli_names_a_bad_manifest_line(tmp_path, capsys):
    bad = tmp_path / "bad.csv"
    bad.write_text("path,label,speaker\nmissing.wav,hap,ann\n")
    assert main(["data", "manifest", "--root", str(bad)]) == 1
    assert f"{bad}:2: audio file" in capsys.readouterr().err
