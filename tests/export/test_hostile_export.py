"""`serkit export` against failures (issue 14, section 5, items 3 and 12): a re-export that fails or is killed
leaves the previous file as it was; an opset the exporters do not write is refused, not ignored."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from serkit.cli import main
from serkit.errors import ConfigError
from serkit.export import onnx as onnx_export


def hidden_leftovers(folder) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


def half_then(error: BaseException):
    """An exporter that writes half a file where it was told to, then raises `error`."""
    def export(graph, example, out_path, metadata, opset):
        with open(out_path, "wb") as f:
            f.write(b"\x08\x07half an onnx file" * 1000)
        raise error

    return export


def test_a_failing_re_export_leaves_the_previous_file(tiny_bundle, tiny_onnx, tmp_path, monkeypatch):
    out = tmp_path / "model.onnx"
    good = tiny_onnx.read_bytes()
    out.write_bytes(good)
    for name in ("dynamo", "torchscript"):
        monkeypatch.setitem(onnx_export._EXPORTERS, name, half_then(RuntimeError(f"simulated {name} failure")))
    with pytest.raises(ConfigError) as refused:
        onnx_export.export_onnx(tiny_bundle, out)
    assert out.read_bytes() == good
    assert hidden_leftovers(tmp_path) == []
    assert "model.onnx was left as it was" in str(refused.value)


def test_a_killed_re_export_leaves_the_previous_file(tiny_bundle, tiny_onnx, tmp_path):
    """kill -9 while the exporter writes: the target was being overwritten in place, and was lost."""
    out, ready = tmp_path / "model.onnx", tmp_path / "writing"
    good = tiny_onnx.read_bytes()
    out.write_bytes(good)
    script = textwrap.dedent(f"""
        import pathlib, sys, time
        from serkit.export import onnx as onnx_export

        def export(graph, example, out_path, metadata, opset):
            with open(out_path, "wb") as f:
                f.write(b"half an onnx file" * 1000)
                f.flush()
                pathlib.Path({str(ready)!r}).touch()
                time.sleep(3600)

        onnx_export._EXPORTERS["dynamo"] = export
        onnx_export.export_onnx({str(tiny_bundle)!r}, {str(out)!r})
    """)
    process = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 120
        while not ready.exists():
            assert process.poll() is None, process.stderr.read().decode()
            assert time.monotonic() < deadline, "the export never started writing"
            time.sleep(0.05)
    finally:
        os.kill(process.pid, signal.SIGKILL)
        process.wait()
        process.stderr.close()
    assert out.read_bytes() == good
    # the killed export's hidden folder is removed by the next export to that name
    assert len(hidden_leftovers(tmp_path)) == 1
    assert main(["export", str(tiny_bundle), "--onnx", str(out)]) == 0
    assert hidden_leftovers(tmp_path) == []


@pytest.mark.parametrize("opset", ["99", "0", "-3"])
def test_an_opset_outside_the_exporters_range_is_refused(tiny_bundle, tmp_path, capsys, opset):
    out = tmp_path / "model.onnx"
    assert main(["export", str(tiny_bundle), "--onnx", str(out), "--opset", opset]) == 1
    err = capsys.readouterr().err
    assert f"opset {opset} is not one torch" in err and f"expected {onnx_export.MIN_OPSET} to" in err
    assert not out.exists()


def test_a_graph_at_another_opset_than_asked_is_not_kept(tiny_bundle, tmp_path, monkeypatch):
    """The dynamo exporter writes opset 18 when it cannot convert down (e.g. to 17), saying so only in a log."""
    real_dynamo = onnx_export._EXPORTERS["dynamo"]
    monkeypatch.setitem(onnx_export._EXPORTERS, "dynamo",
                        lambda graph, example, out_path, metadata, opset: real_dynamo(graph, example, out_path,
                                                                                      metadata, 18))
    monkeypatch.setitem(onnx_export._EXPORTERS, "torchscript", half_then(RuntimeError("simulated failure")))
    out = tmp_path / "model.onnx"
    with pytest.raises(ConfigError, match=r"dynamo: ConfigError: it wrote opset 18, not the 21 asked for"):
        onnx_export.export_onnx(tiny_bundle, out, opset=21)
    assert not out.exists() and hidden_leftovers(tmp_path) == []
