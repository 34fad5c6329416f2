"""The examples in the inference docstrings run (with a real, untrained bundle and a 2 s file)."""

from __future__ import annotations

import doctest
import importlib

import numpy as np
import pytest
import soundfile as sf

MODULES = ["results", "inputs", "windows", "recognizer", "files", "transcripts", "output", "ray_inputs"]


@pytest.fixture(scope="module")
def doctest_globs(tiny_bundle, tmp_path_factory) -> dict:
    wav_path = str(tmp_path_factory.mktemp("doctest") / "two_seconds.wav")
    t = np.arange(32000) / 16000
    sf.write(wav_path, (0.1 * np.sin(2 * np.pi * 220 * t)).astype(np.float32), 16000)
    return {"bundle_dir": tiny_bundle, "wav_path": wav_path}


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples_run(name, doctest_globs):
    module = importlib.import_module(f"serkit.inference.{name}")
    globs = {**vars(module), **doctest_globs}
    result = doctest.testmod(module, globs=globs, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE,
                             verbose=False, report=True)
    assert result.attempted > 0, f"serkit.inference.{name} has no examples"
    assert result.failed == 0, f"{result.failed} of {result.attempted} examples failed (see the output above)"
