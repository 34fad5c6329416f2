"""Command-line flags and streams tried the hostile way (issue 14, section 5, items 4 and 11): `predict --out` never
truncates an input or a previous output, flags with impossible values are errors rather than tracebacks, a reader
that goes away ends the command quietly, and names read from stdin keep their spaces."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf
import torch

from serkit.cli import main


@pytest.fixture
def clip(tmp_path):
    path = tmp_path / "a.wav"
    sf.write(path, 0.1 * np.sin(np.linspace(0, 800, 16000)).astype(np.float32), 16000)
    return path


def hidden_leftovers(folder) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


# ------------------------------------------------------------------ item 4: predict --out


@pytest.mark.parametrize("how", ["same path", "another spelling", "hard link"])
def test_an_output_that_is_one_of_the_inputs_is_refused(tiny_bundle, clip, capsys, how):
    """`--out a.wav` on input a.wav used to truncate the audio to 0 bytes before reading it."""
    audio = clip.read_bytes()
    out = {"same path": clip, "another spelling": clip.parent / "." / clip.name,
           "hard link": clip.with_name("link.wav")}[how]
    if how == "hard link":
        os.link(clip, out)
    assert main(["predict", str(tiny_bundle), str(clip), "--out", str(out)]) == 1
    assert clip.read_bytes() == audio
    assert "is also an input" in capsys.readouterr().err


def test_the_model_and_transcripts_count_as_inputs(tiny_onnx, clip, tmp_path, capsys):
    model = tmp_path / "model.onnx"
    model.write_bytes(tiny_onnx.read_bytes())
    assert main(["predict", str(model), str(clip), "--out", str(model)]) == 1
    assert model.read_bytes() == tiny_onnx.read_bytes() and "is also an input" in capsys.readouterr().err
    transcripts = tmp_path / "transcripts.csv"
    transcripts.write_text(f"path,text\n{clip},hello\n")
    assert main(["predict", str(model), str(clip), "--transcripts", str(transcripts), "--out", str(transcripts)]) == 1
    assert transcripts.read_text() == f"path,text\n{clip},hello\n" and "is also an input" in capsys.readouterr().err


def test_a_run_that_fails_leaves_a_previous_output_as_it_was(tiny_bundle, clip, tmp_path, capsys):
    """A run failing on its first file used to replace an existing output with a bare header."""
    out = tmp_path / "predictions.csv"
    out.write_text("previous,rows\n")
    broken = tmp_path / "broken.wav"
    broken.write_bytes(b"not audio")
    assert main(["predict", str(tiny_bundle), str(broken), str(clip), "--format", "csv", "--out", str(out)]) == 1
    assert "broken.wav" in capsys.readouterr().err
    assert out.read_text() == "previous,rows\n"
    assert hidden_leftovers(tmp_path) == []


def test_rows_are_streamed_to_a_temp_file_and_moved_into_place(tiny_bundle, clip, tmp_path, monkeypatch):
    """While the run goes on, each file's rows are already on disk (flushed) in a hidden temp file beside the
    output, which keeps its old content; the output becomes the new rows only when the run ends."""
    import serkit.inference.runner as runner

    out = tmp_path / "predictions.jsonl"
    out.write_text("old\n")
    seen = []
    real = runner.predict_files

    def watched(*args, **kwargs):
        for result in real(*args, **kwargs):
            yield result
            temps = [tmp_path / name for name in hidden_leftovers(tmp_path)]
            seen.append((out.read_text(), [temp.read_text().count("\n") for temp in temps]))

    monkeypatch.setattr(runner, "predict_files", watched)
    assert main(["predict", str(tiny_bundle), str(clip), str(clip), "--out", str(out)]) == 0
    # when the loop asks for the next result, the rows of the one before are on disk
    assert seen == [("old\n", [1]), ("old\n", [2])]
    assert [json.loads(line)["file"] for line in out.read_text().splitlines()] == [str(clip)] * 2
    assert hidden_leftovers(tmp_path) == []


# ------------------------------------------------------------------ item 11: flags and streams


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine where CUDA cannot be used")
def test_predict_on_a_missing_gpu_is_an_error(tiny_bundle, clip, capsys):
    assert main(["predict", str(tiny_bundle), str(clip), "--device", "cuda"]) == 1
    err = capsys.readouterr().err
    assert "error: device 'cuda' cannot be used on this machine" in err and "Traceback" not in err


@pytest.mark.parametrize("device, message", [("bogus", "is not a torch device"), ("meta", "cannot run a model")])
def test_predict_on_a_device_that_is_no_device_is_an_error(tiny_bundle, clip, capsys, device, message):
    assert main(["predict", str(tiny_bundle), str(clip), "--device", device]) == 1
    err = capsys.readouterr().err
    assert f"error: device '{device}'" in err and message in err


@pytest.mark.parametrize("port", ["99999", "-1", "0"])
def test_serve_refuses_a_port_that_is_no_tcp_port(tiny_bundle, monkeypatch, capsys, port):
    uvicorn = pytest.importorskip("uvicorn", reason="the service needs the serve extra")
    calls = []
    monkeypatch.setattr(uvicorn, "run", lambda app, **options: calls.append(options))
    assert main(["serve", str(tiny_bundle), "--port", port]) == 1
    assert f"--port is {port}; expected a TCP port from 1 to 65535" in capsys.readouterr().err and not calls


@pytest.mark.parametrize("host", ["999.1.1.1"])
def test_serve_refuses_a_host_that_is_no_address_before_loading_the_model(tmp_path, capsys, host):
    # the model path does not exist: the host is refused first
    assert main(["serve", str(tmp_path / "no_model"), "--host", host]) == 1
    assert f"--host {host}: not an IP address or a host name this machine resolves" in capsys.readouterr().err


def test_a_reader_that_goes_away_ends_the_command_quietly(tmp_path):
    """`serkit data ... | head -1` used to end in a BrokenPipeError traceback."""
    rows = ["path,label,speaker"]
    for i in range(8):
        sf.write(tmp_path / f"{i}.wav", np.full(1600, 0.01, np.float32), 16000)
        rows.append(f"{i}.wav,{['neu', 'hap'][i % 2]},s{i % 4}")
    manifest = tmp_path / "m.csv"
    manifest.write_text("\n".join(rows) + "\n")
    read, write = os.pipe()
    os.close(read)  # the reader is gone before the command writes a byte
    with open(tmp_path / "stderr", "wb") as err:
        code = subprocess.run([sys.executable, "-m", "serkit", "data", "manifest", "--root", str(manifest)],
                              stdout=write, stderr=err, timeout=300).returncode
    os.close(write)
    stderr = (tmp_path / "stderr").read_text()
    assert code == 0 and "Traceback" not in stderr and "BrokenPipeError" not in stderr, stderr


def test_names_read_from_stdin_keep_their_spaces(tiny_bundle, clip, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    names = [f"{tmp_path}/trailing.wav ", " leading.wav", str(clip)]  # spaces at the ends of lines
    for name in names[:2]:
        (tmp_path / name).write_bytes(clip.read_bytes())
    listing = f"{names[0]}\n{names[1]}\r\n\n{names[2]}"  # a CRLF line, an empty one, no newline at the end
    monkeypatch.setattr(sys, "stdin", io.StringIO(listing))
    assert main(["predict", str(tiny_bundle), "-"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [row["file"] for row in rows] == names


# ------------------------------------------------------------------ arguments in any order


def test_files_after_an_option_are_files_and_an_unknown_option_names_the_command(tiny_bundle, clip, tmp_path,
                                                                                  capsys, monkeypatch):
    other = tmp_path / "b.wav"
    other.write_bytes(clip.read_bytes())
    assert main(["predict", str(tiny_bundle), str(clip), "--skip-errors", str(other)]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [row["file"] for row in rows] == [str(clip), str(other)]
    dashed = tmp_path / "-c.wav"  # a name that looks like an option: after "--"
    dashed.write_bytes(clip.read_bytes())
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "stdin", io.StringIO(str(other)))  # "-": the names on stdin
    assert main(["predict", str(tiny_bundle), str(clip), "--skip-errors", "-", "--", "-c.wav"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [row["file"] for row in rows] == [str(clip), str(other), "-c.wav"]
    with pytest.raises(SystemExit) as exit_:
        main(["predict", str(tiny_bundle), str(clip), "--skip-everything"])
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and "usage: serkit predict" in err and "unrecognized arguments: --skip-everything" in err


def test_after_the_options_a_config_command_takes_only_key_value_overrides(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["cv", "a.yaml", "--root", "data", "seed=1", "b.yaml"])
    err = capsys.readouterr().err
    assert exit_.value.code == 2
    assert "usage: serkit cv" in err and "unrecognized arguments: seed=1 b.yaml" in err and "key=value" in err


def test_an_unknown_option_before_any_command_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["--bogus"])
    assert exit_.value.code == 2 and "serkit: error: unrecognized arguments: --bogus" in capsys.readouterr().err
