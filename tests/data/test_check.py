"""`serkit data --check` and training's data.check / data.skip: every bad audio file is listed at once
(file + reason + count, exit code 1), a skip list written by --write-skip lets training go on without them,
and the check's results are cached by (path, size, mtime)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from serkit.cli import main
from serkit.config import load_config
from serkit.data.check import CACHE_NAME, check_files, read_skip_list
from serkit.data.corpora.iemocap import Iemocap
from serkit.data.corpora.manifest import Manifest
from serkit.data.corpora.ravdess import Ravdess
from serkit.errors import AudioError, DataError
from serkit.data.config import DataConfig
from serkit.data.prepare import prepare_corpus, read_corpus

KINDS = ("missing", "text", "header_cut", "nan")


def damage(path: Path, kind: str) -> None:
    if kind == "missing":
        path.unlink()
    elif kind == "text":
        path.write_text("this is not audio\n" * 20)
    elif kind == "header_cut":
        path.write_bytes(path.read_bytes()[:20])
    elif kind == "nan":  # decodes, and its header is fine: only a full decode finds it
        samples = np.full(1600, 0.1, np.float32)
        samples[800] = np.nan
        sf.write(path, samples, 16000, subtype="FLOAT")


@pytest.fixture(scope="module")
def damaged(synth_iemocap_root, tmp_path_factory) -> tuple[Path, dict[str, Path]]:
    """A copy of the synthetic IEMOCAP with one damaged kept-label wav per kind (each in its own session)."""
    root = tmp_path_factory.mktemp("damaged") / "IEMOCAP_full_release"
    shutil.copytree(synth_iemocap_root, root)
    utterances = Iemocap.prepare(root).utterances
    victims = {}
    for kind, session in zip(KINDS, ("1", "2", "3", "4")):
        victim = Path(next(u.path for u in utterances if u.group == session))
        damage(victim, kind)
        victims[kind] = victim
    return root, victims


def test_check_lists_every_problem_and_exits_1(damaged, tmp_path, capsys):
    root, victims = damaged
    skip = tmp_path / "skip.txt"
    assert main(["data", "iemocap", "--root", str(root), "--check", "--write-skip", str(skip)]) == 1
    out = capsys.readouterr().out
    reasons = {"missing": "missing audio", "text": "cannot decode audio", "header_cut": "cannot decode audio",
               "nan": "NaN or infinite"}
    for kind, path in victims.items():
        line = next((line for line in out.splitlines() if line.startswith(f"{path}: ")), None)
        assert line is not None, f"{kind} file not listed"
        assert reasons[kind] in line
    assert "4 problems in 4 files" in out
    assert read_skip_list(skip) == {os.path.realpath(p) for p in victims.values()}


def test_check_of_a_clean_corpus_exits_0(synth_iemocap_root, capsys):
    assert main(["data", "iemocap", "--root", str(synth_iemocap_root), "--check"]) == 0
    assert "0 problems" in capsys.readouterr().out


def test_skip_list_makes_the_check_pass(damaged, tmp_path, capsys):
    root, victims = damaged
    skip = tmp_path / "skip.txt"
    main(["data", "iemocap", "--root", str(root), "--check", "--write-skip", str(skip)])
    assert main(["data", "iemocap", "--root", str(root), "--check", "--skip", str(skip)]) == 0
    assert "4 left out by the skip list" in capsys.readouterr().out


def test_training_refuses_a_failing_corpus_naming_every_file(damaged):
    root, victims = damaged
    cfg = load_config(overrides=[f"data.root={root}"])
    with pytest.raises(DataError, match="4 audio problems found") as info:
        prepare_corpus(cfg.data)
    for path in victims.values():
        assert str(path) in str(info.value)
    assert "--write-skip" in str(info.value) and "data.skip" in str(info.value)


def test_training_goes_on_without_the_listed_files(damaged, synth_iemocap_root, tmp_path):
    root, victims = damaged
    skip = tmp_path / "skip.txt"
    main(["data", "iemocap", "--root", str(root), "--check", "--write-skip", str(skip)])
    data = prepare_corpus(load_config(overrides=[f"data.root={root}", f"data.skip={skip}"]).data)
    prepared, labels = data.prepared, data.classes
    clean = prepare_corpus(load_config(overrides=[f"data.root={synth_iemocap_root}", "data.check=false"]).data).prepared
    assert len(prepared.utterances) == len(clean.utterances) - 4
    assert not {u.path for u in prepared.utterances} & {str(p) for p in victims.values()}
    assert sum(n for reason, n in prepared.skipped.items() if "data.skip" in reason) == 4
    assert labels == ["neu", "hap", "ang", "sad"]
    # every remaining utterance's fold still splits (the SUPERB rule drops ids it does not find)
    assert Iemocap.split(prepared.utterances, 1).test


def test_without_check_the_first_header_problem_still_raises(damaged):
    root, _ = damaged
    with pytest.raises(DataError):
        prepare_corpus(load_config(overrides=[f"data.root={root}", "data.check=false"]).data)


def test_results_are_cached_by_size_and_mtime(synth_iemocap_root, tmp_path):
    root = tmp_path / "IEMOCAP_full_release"
    shutil.copytree(synth_iemocap_root, root)
    cache = tmp_path / "run" / CACHE_NAME
    cache.parent.mkdir()

    def check_corpus(root, cache):
        return check_files(read_corpus(DataConfig(corpus="iemocap", root=str(root)), keep_going=True).prepared,
                           cache=cache)

    first = check_corpus(root, cache=cache)
    assert first.ok and first.decoded > 100 and first.cached == 0 and cache.is_file()
    second = check_corpus(root, cache=cache)
    assert second.ok and second.cached == second.decoded == first.decoded
    victim = Path(first.prepared.utterances[0].path)
    damage(victim, "nan")  # new size and mtime: decoded again, and found
    third = check_corpus(root, cache=cache)
    assert third.cached == third.decoded - 1
    assert [(p.path, "NaN" in p.reason) for p in third.problems] == [(str(victim), True)]
    cache.write_text("{ not json")  # a damaged cache costs a re-check, never a crash
    assert check_corpus(root, cache=cache).cached == 0


def test_training_caches_the_check_in_the_run_dir(synth_iemocap_root, tmp_path):
    cfg = load_config(overrides=[f"data.root={synth_iemocap_root}"])
    prepare_corpus(cfg.data, tmp_path / CACHE_NAME)
    assert (tmp_path / CACHE_NAME).is_file()


def test_manifest_problems_name_the_row(tmp_path):
    good = tmp_path / "good.wav"
    sf.write(good, np.full(16000, 0.1, np.float32), 16000)
    shutil.copy(good, tmp_path / "good2.wav")
    bad = tmp_path / "bad.wav"
    bad.write_text("not audio")
    rows = ["path,label,speaker", "good.wav,neu,s1", "gone.wav,neu,s1", "bad.wav,hap,s2", "good2.wav,hap,s2"]
    manifest = tmp_path / "m.csv"
    manifest.write_text("\n".join(rows) + "\n")
    with pytest.raises(DataError, match="gone.wav not found"):
        Manifest.prepare(manifest)  # default: the first problem raises, naming the line
    prepared = Manifest.prepare(manifest, keep_going=True)
    assert [(Path(p.path).name, p.reason.endswith(f"{manifest}:{line})")) for p, line in
            zip(prepared.problems, (3, 4))] == [("gone.wav", True), ("bad.wav", True)]
    assert len(prepared.utterances) == 2


def test_ravdess_unreadable_file_is_listed(tmp_path):
    folder = tmp_path / "Actor_01"
    folder.mkdir()
    sf.write(folder / "03-01-01-01-01-01-01.wav", np.full(8000, 0.1, np.float32), 16000)
    broken = folder / "03-01-05-01-01-01-01.wav"
    broken.write_bytes(b"RIFF")
    with pytest.raises(AudioError, match="cannot decode"):
        Ravdess.prepare(tmp_path)
    prepared = Ravdess.prepare(tmp_path, keep_going=True)
    assert [p.path for p in prepared.problems] == [str(broken)] and len(prepared.utterances) == 1


def test_too_few_speakers_left_for_folds_names_the_unusable_rows_that_left_them_out(tmp_path, capsys):
    """3 speakers, 2 of them only in missing files: the fold dealing refuses (1 speaker left); the refusal names
    the missing files, which are the cause, whether or not a skip list leaves them out."""
    sf.write(tmp_path / "ok.wav", np.zeros(8000, dtype="float32"), 16000)
    (tmp_path / "m.csv").write_text("path,label,speaker\nok.wav,a,s1\ngone1.wav,b,s2\ngone2.wav,a,s3\n")
    skip = tmp_path / "skip.txt"
    skip.write_text("gone1.wav\ngone2.wav\n")  # a skip list naming them does not make the corpus usable
    for extra in ([], ["--skip", str(skip)]):
        assert main(["data", "manifest", "--root", str(tmp_path / "m.csv"), "--check", *extra]) == 1
        err = capsys.readouterr().err
        assert "folds need at least 2 speakers" in err and "once the 2 unusable rows were left out" in err
        assert "gone1.wav: audio file" in err and "gone2.wav: audio file" in err
