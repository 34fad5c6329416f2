"""scripts/results_table.py: rows of the speaker-normalised (transductive) protocol are tabled apart from the
per-clip rows, and an unknown protocol is refused; the "At a glance" summary puts a row's class counts side by side."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="module")
def table(load_script):
    return load_script("results_table")


def _row(system: str, classes: int, ua: float, protocol: str | None) -> dict:
    row = {"id": system, "system": system, "encoder": "enc", "classes": classes, "fold_ids": ["1", "2"],
           "ua": ua, "wa": ua, "ua_std": 1.0, "wa_std": 1.0, "ua_per_fold": [ua - 1, ua + 1],
           "wa_per_fold": [ua - 1, ua + 1], "trainable_params": 10, "cpu_seconds": 5}
    return row if protocol is None else {**row, "protocol": protocol}


def test_speaker_rows_get_tables_of_their_own(table):
    rows = [_row("plain probe", 8, 70.0, None), _row("normed probe", 8, 80.0, "speaker"),
            _row("plain probe 4", 4, 85.0, "clip")]
    text = table.tables(rows, [])
    clip, speaker = text.split("### Speaker-normalised (transductive), 8 classes")
    assert "plain probe" in clip and "normed probe" not in clip and "plain probe 4" in clip
    assert "normed probe" in speaker and "plain probe" not in speaker
    assert "Speaker-normalised (transductive), 4 classes" not in text  # no 4-class speaker row: no empty table


def test_protocol_of_defaults_to_clip_and_refuses_others(table):
    assert table.protocol_of({"id": "a"}) == "clip"
    assert table.protocol_of({"id": "a", "protocol": "speaker"}) == "speaker"
    with pytest.raises(SystemExit, match="row 'a': protocol 'session'"):
        table.protocol_of({"id": "a", "protocol": "session"})


def test_a_carried_row_takes_its_protocol_from_the_yaml(table, tmp_path, monkeypatch):
    """--keep-missing: a row whose run folder is gone keeps its figures from the earlier JSON, but its protocol
    is the YAML's (an earlier JSON may predate the field), so it lands in the right table."""
    import json

    import yaml

    entry = {"id": "p", "system": "normed probe", "encoder": "enc", "classes": 8, "run": "gone",
             "command": "serkit baseline probe --speaker-norm", "protocol": "speaker"}
    (tmp_path / "spec.yaml").write_text(yaml.safe_dump({"rows": [entry]}))
    earlier = _row("normed probe", 8, 80.0, None)
    (tmp_path / "r.json").write_text(json.dumps({"rows": [{**earlier, "id": "p", "command": entry["command"]}]}))
    monkeypatch.setattr("sys.argv", ["results_table.py", str(tmp_path / "spec.yaml"), str(tmp_path / "runs"),
                                     "--keep-missing", "--json", str(tmp_path / "r.json")])
    table.main()
    (row,) = json.loads((tmp_path / "r.json").read_text())["rows"]
    assert row["protocol"] == "speaker" and row["carried"] and row["ua"] == 80.0


def test_the_summary_puts_each_ids_two_class_counts_side_by_side_first(table):
    rows = [_row("probe", 8, 72.0, None), _row("probe", 4, 82.0, None), _row("head", 8, 74.5, None),
            {**_row("normed", 8, 84.1, "speaker"), "carried": True}]
    summary = [{"id": "head", "name": "the head"}, {"id": "probe", "name": "the probe"},
               {"id": "normed", "name": "normalised probe"}]
    text = table.tables(rows, [], summary)
    glance, rest = text.split("### 8 classes")
    lines = [line for line in glance.splitlines() if line.startswith("| the") or line.startswith("| normalised")]
    assert lines == ["| the head | **74.5** ± 1.0 (2 folds) | — | 10 | per clip |",
                     "| the probe | **72.0** ± 1.0 (2 folds) | **82.0** ± 1.0 (2 folds) | 10 | per clip |",
                     "| normalised probe | **84.1** ± 1.0 (2 folds) † | — | 10 | "
                     "speaker-normalised (transductive) |"]
    assert "At a glance" not in table.tables(rows, [])  # no summary in the YAML: no table


@pytest.mark.parametrize("entry, message", [({"id": "gone", "name": "x"}, "no row has the id 'gone'"),
                                            ({"id": "probe"}, "expected {id, name}"), ("probe", "expected {id, name}")])
def test_a_summary_entry_that_names_no_row_is_refused(table, entry, message):
    with pytest.raises(SystemExit, match=f"summary entry 2: {message}"):
        table.summary_table([_row("probe", 8, 72.0, None)], [{"id": "probe", "name": "p"}, entry])
