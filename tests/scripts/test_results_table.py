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
    six = {"fold_ids": [str(f) for f in range(1, 7)], "ua_per_fold": [74.5] * 6, "wa_per_fold": [74.5] * 6}
    rows = [_row("probe", 8, 72.0, None), _row("probe", 4, 82.0, None), {**_row("head", 8, 74.5, None), **six},
            {**_row("normed", 8, 84.1, "speaker"), "carried": True}, _row("four", 4, 85.0, None)]
    summary = [{"id": "head", "name": "the head"}, {"id": "probe", "name": "the probe"},
               {"id": "normed", "name": "normalised probe"}, {"id": "four", "name": "the 4-class one"},
               {"id": "unrun", "name": "not run yet"}]
    text = table.tables(rows, [], summary)
    glance, rest = text.split("### 8 classes")
    lines = [line for line in glance.splitlines() if line.startswith("| ") and "---" not in line][1:]
    assert lines == ["| the head | **74.5** ± 1.0 | — | 10 | per clip |",
                     "| the probe | **72.0** ± 1.0 (folds 1, 2) | **82.0** ± 1.0 (folds 1, 2) | 10 | per clip |",
                     "| normalised probe | **84.1** ± 1.0 (folds 1, 2) † | — | 10 | "
                     "speaker-normalised (transductive) |",
                     "| the 4-class one | — | **85.0** ± 1.0 (folds 1, 2) | 10 (4 classes) | per clip |",
                     "| not run yet | — | — | — | — |"]
    assert "At a glance" not in table.tables(rows, [])  # no summary in the YAML: no table


@pytest.mark.parametrize("summary, message", [
    ([{"id": "probe", "name": "p"}, {"id": "gone", "name": "x"}],
     "summary entry 2: no row of the YAML has the id 'gone'"),
    ([{"id": "probe", "name": "p"}, {"id": "probe"}], "summary entry 2: expected {id, name}"),
    ([{"id": "probe", "name": "p"}, "probe"], "summary entry 2: expected {id, name}"),
    ([{"id": "probe", "name": "p"}, {"id": "probe", "name": "q"}], "summary entry 2: the id 'probe' is listed twice"),
    ([{"id": "probe", "name": "a | b"}], "summary entry 1: a '|' in the name"),
    ({"probe": "p"}, "summary: expected a list")])
def test_a_bad_summary_is_refused_naming_the_entry(table, summary, message):
    with pytest.raises(SystemExit, match=message.replace("|", r"\|")):
        table.check_summary(summary, {"probe"})


def test_main_refuses_a_bad_summary_before_writing_anything(table, tmp_path, monkeypatch):
    """A summary id no row has stops the run before docs/results.json is rewritten; a good one is tabled first."""
    import json

    import yaml

    entry = {"id": "p", "system": "a probe", "encoder": "enc", "classes": 8, "run": "gone", "command": "serkit x"}
    (tmp_path / "r.json").write_text(json.dumps({"rows": [{**_row("a probe", 8, 70.0, None), "id": "p",
                                                            "command": "serkit x"}]}))
    before = (tmp_path / "r.json").read_text()
    argv = ["results_table.py", str(tmp_path / "spec.yaml"), str(tmp_path / "runs"), "--keep-missing",
            "--json", str(tmp_path / "r.json")]
    monkeypatch.setattr("sys.argv", argv)
    (tmp_path / "spec.yaml").write_text(yaml.safe_dump({"rows": [entry], "summary": [{"id": "q", "name": "Q"}]}))
    with pytest.raises(SystemExit, match="no row of the YAML has the id 'q'"):
        table.main()
    assert (tmp_path / "r.json").read_text() == before
    (tmp_path / "spec.yaml").write_text(yaml.safe_dump({"rows": [entry], "summary": [{"id": "p", "name": "P"}]}))
    (tmp_path / "page.md").write_text(f"x\n{table.START}\n{table.END}\n")
    monkeypatch.setattr("sys.argv", argv + ["--fill", str(tmp_path / "page.md")])
    table.main()
    page = (tmp_path / "page.md").read_text()
    assert page.index("### At a glance") < page.index("### 8 classes")
    assert "| P | **70.0** ± 1.0 (folds 1, 2) † | — | 10 | per clip |" in page


def test_every_row_of_results_json_has_its_yaml_entry_and_command():
    """docs/results.json is what results_table.py wrote from docs/results_runs.yaml: every row there has the YAML
    entry of the same id and class count, with the same command (the page promises each row's command), and every
    summary id and pair names rows of the YAML."""
    import json
    from pathlib import Path

    import yaml

    docs = Path(__file__).resolve().parents[2] / "docs"
    spec = yaml.safe_load((docs / "results_runs.yaml").read_text())
    written = json.loads((docs / "results.json").read_text())
    entries = {(e["id"], e["classes"]): e for e in spec["rows"]}
    assert len(entries) == len(spec["rows"]), "two YAML rows share an id and a class count"
    for row in written["rows"]:
        entry = entries.get((row["id"], row["classes"]))
        assert entry is not None, f"results.json row {row['id']!r} ({row['classes']} classes) has no YAML entry"
        assert row["command"] == entry["command"] and row["system"] == entry["system"], row["id"]
    ids = {e["id"] for e in spec["rows"]}
    assert {p["a"] for p in spec["pairs"]} | {p["b"] for p in spec["pairs"]} <= ids
    assert {s["id"] for s in spec["summary"]} <= ids


def test_a_run_resumed_elsewhere_takes_its_missing_folds_from_the_earlier_json(table):
    """Folds 3 and 6 run here, folds 1, 2, 4, 5 recorded earlier by the same command: one 6-fold row, the mean and
    sample std over all six, the kept folds listed and marked † fold by fold; a gain over best single checkpoints
    only where both halves have it."""
    import numpy as np

    fresh = {**_row("ft", 8, 0.0, None), "fold_ids": ["3", "6"], "ua_per_fold": [70.0, 76.0],
             "wa_per_fold": [71.0, 77.0], "cpu_seconds": 100.0, "cpu_seconds_per_epoch": 10.0,
             "best_single_ua": 72.0, "best_single_ua_per_fold": [69.0, 75.0]}
    kept = {**_row("ft", 8, 0.0, None), "fold_ids": ["1", "2", "4", "5"], "ua_per_fold": [78.0, 77.0, 82.0, 81.0],
            "wa_per_fold": [77.0, 78.0, 84.0, 82.0], "cpu_seconds": 200.0, "cpu_seconds_per_epoch": 13.0,
            "best_single_ua": 1.0, "best_single_ua_per_fold": [77.0, 72.0, 80.0, 83.0]}
    row = table.merge_carried(fresh, kept)
    assert row["fold_ids"] == ["1", "2", "3", "4", "5", "6"] and row["carried_folds"] == ["1", "2", "4", "5"]
    ua = [78.0, 77.0, 70.0, 82.0, 81.0, 76.0]
    assert row["ua_per_fold"] == ua and row["wa_per_fold"] == [77.0, 78.0, 71.0, 84.0, 82.0, 77.0]
    assert row["ua"] == pytest.approx(np.mean(ua)) and row["ua_std"] == pytest.approx(np.std(ua, ddof=1))
    assert row["best_single_ua_per_fold"] == [77.0, 72.0, 69.0, 80.0, 83.0, 75.0]
    assert row["best_single_ua"] == pytest.approx(76.0)  # taken again, not the fresh half's 72 or the kept 1.0
    assert row["cpu_seconds"] == 300.0 and row["cpu_seconds_per_epoch"] == 12.0  # (10 * 2 + 13 * 4) / 6
    again = table.merge_carried(fresh, row)  # the same folder against the merged row: nothing counted twice
    assert again["cpu_seconds"] == 300.0 and again["cpu_seconds_per_epoch"] == 12.0
    assert again["ua_per_fold"] == ua and again["carried_folds"] == ["1", "2", "4", "5"]
    line = next(x for x in table.markdown([row], 8).splitlines() if x.startswith("| ft"))
    assert "78.0 †" in line and "70.0 |" in line and "76.0 |" in line  # kept folds marked, fresh ones not
    assert "± 4.3 († on 1, 2, 4, 5) |" in table.summary_table([row], [{"id": "ft", "name": "ft"}])
    fresh.pop("best_single_ua_per_fold")
    assert "best_single_ua" not in table.merge_carried(fresh, kept)
    carried_whole = {**row, "carried": True}  # its run folder gone too: the † is the row's, not some folds'
    assert "78.0 |" in next(x for x in table.markdown([carried_whole], 8).splitlines() if x.startswith("| ft"))
    assert "† on" not in table.summary_table([carried_whole], [{"id": "ft", "name": "ft"}])


def test_on_a_fold_both_hold_the_fresh_run_wins_and_only_the_kept_total_cost_is_unknown(table):
    fresh = {**_row("ft", 8, 0.0, None), "fold_ids": ["3", "4", "6"], "ua_per_fold": [70.0, 90.0, 76.0],
             "wa_per_fold": [70.0, 90.0, 76.0], "cpu_seconds": 150.0, "cpu_seconds_per_epoch": 10.0}
    kept = {**_row("ft", 8, 0.0, None), "fold_ids": ["1", "2", "4", "5"], "ua_per_fold": [78.0, 77.0, 82.0, 81.0],
            "wa_per_fold": [78.0, 77.0, 82.0, 81.0], "cpu_seconds": 200.0, "cpu_seconds_per_epoch": 13.0}
    row = table.merge_carried(fresh, kept)
    assert row["ua_per_fold"] == [78.0, 77.0, 70.0, 90.0, 81.0, 76.0] and row["carried_folds"] == ["1", "2", "5"]
    assert row["cpu_seconds"] is None  # not 350: fold 4 twice
    assert row["cpu_seconds_per_epoch"] == 11.5  # a rate: (10 * 3 + 13 * 3) / 6
    assert table.merge_carried(fresh, row) == row  # merged again: the same row (the rate kept with it)


def test_main_merges_a_partial_run_folder_with_the_earlier_rows_other_folds(table, tmp_path, monkeypatch):
    """--keep-missing --merge-partial with a run folder of folds 3 and 6 and an earlier row of folds 1, 2, 4, 5 of
    the same command: one row of six folds, with or without --keep-missing; with another command, or without
    --merge-partial, the earlier folds are not taken."""
    import json

    import yaml

    def fold(f: str, ua: float) -> dict:
        return {"fold": f, "metrics": {"ua": ua / 100, "wa": ua / 100}}

    run = tmp_path / "runs" / "ft"
    run.mkdir(parents=True)
    (run / "cv.json").write_text(json.dumps({"folds": [fold("3", 70.0), fold("6", 76.0)],
                                             "summary": {"ua": {"mean": 0.73, "std": 0.04},
                                                         "wa": {"mean": 0.73, "std": 0.04}}}))
    entry = {"id": "ft", "system": "ft", "encoder": "enc", "classes": 8, "run": "ft", "command": "serkit cv ft"}
    earlier = {**_row("ft", 8, 0.0, None), "command": "serkit cv ft", "fold_ids": ["1", "2", "4", "5"],
               "ua_per_fold": [78.0, 77.0, 82.0, 81.0], "wa_per_fold": [78.0, 77.0, 82.0, 81.0]}
    six = ["1", "2", "3", "4", "5", "6"]
    both, merge = ["--keep-missing", "--merge-partial"], ["--merge-partial"]
    cases = (("serkit cv ft", both, six), ("serkit cv other", both, ["3", "6"]),
             ("serkit cv ft", ["--keep-missing"], ["3", "6"]), ("serkit cv ft", merge, six))
    for command, flags, folds in cases:
        (tmp_path / "spec.yaml").write_text(yaml.safe_dump({"rows": [{**entry, "command": command}]}))
        (tmp_path / "r.json").write_text(json.dumps({"rows": [earlier]}))
        monkeypatch.setattr("sys.argv", ["results_table.py", str(tmp_path / "spec.yaml"), str(tmp_path / "runs"),
                                         *flags, "--json", str(tmp_path / "r.json")])
        table.main()
        (row,) = json.loads((tmp_path / "r.json").read_text())["rows"]
        assert row["fold_ids"] == folds and row["command"] == command
        if folds == six:
            assert row["carried_folds"] == ["1", "2", "4", "5"]
            assert row["ua_per_fold"] == pytest.approx([78.0, 77.0, 70.0, 82.0, 81.0, 76.0])
        else:
            assert "carried_folds" not in row


def test_several_run_folders_are_searched_in_order_the_first_holding_the_run_wins(table, tmp_path, monkeypatch):
    """RUNS_DIR may be given several times (a machine's runs, then the archive in docs/runs): a row is read from
    the first folder holding its cv.json; a folder holding the run but no cv.json (a run in progress) is passed."""
    import json

    import yaml

    def run(folder: str, name: str, ua: float | None) -> None:
        path = tmp_path / folder / name
        path.mkdir(parents=True)
        if ua is not None:
            fold = {"fold": "1", "metrics": {"ua": ua, "wa": ua}}
            path.joinpath("cv.json").write_text(json.dumps({"folds": [fold], "summary": {
                "ua": {"mean": ua, "std": 0.0}, "wa": {"mean": ua, "std": 0.0}}}))

    run("here", "a", 0.70), run("archive", "a", 0.60), run("here", "b", None), run("archive", "b", 0.50)
    rows = [{"id": name, "system": name, "encoder": "enc", "classes": 8, "run": name, "command": f"serkit cv {name}"}
            for name in ("a", "b", "c")]
    (tmp_path / "spec.yaml").write_text(yaml.safe_dump({"rows": rows}))
    monkeypatch.setattr("sys.argv", ["results_table.py", str(tmp_path / "spec.yaml"), str(tmp_path / "here"),
                                     str(tmp_path / "archive"), "--json", str(tmp_path / "r.json")])
    table.main()
    got = {row["id"]: row["ua"] for row in json.loads((tmp_path / "r.json").read_text())["rows"]}
    assert got == pytest.approx({"a": 70.0, "b": 50.0})  # c: in neither, not run yet
    assert table.find_run("c", [tmp_path / "here", tmp_path / "archive"]) is None


def test_a_run_folder_of_one_fold_reads_with_a_zero_std(table, tmp_path):
    """`serkit cv --folds 3` writes a cv.json whose std is null (one fold): the row reads, its std 0.0, as
    mean_std gives for one value, instead of failing."""
    import json

    run = tmp_path / "one"
    run.mkdir()
    run.joinpath("cv.json").write_text(json.dumps({"folds": [{"fold": "3", "metrics": {"ua": 0.66, "wa": 0.67}}],
                                                   "summary": {"ua": {"mean": 0.66, "std": None},
                                                               "wa": {"mean": 0.67, "std": None}}}))
    entry = {"id": "ft", "system": "ft", "encoder": "enc", "classes": 8, "run": "one", "command": "serkit cv ft"}
    row = table.load_row(entry, run)
    assert row["ua_std"] == 0.0 and row["wa_std"] == 0.0 and row["ua"] == pytest.approx(66.0)
    assert row["fold_ids"] == ["3"]
