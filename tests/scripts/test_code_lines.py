"""scripts/code_lines.py, the count issue 12 measures the redesign by: code lines only, no docstring,
comment or blank line, every line of a multi-line statement."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "code_lines.py"
spec = importlib.util.spec_from_file_location("code_lines", SCRIPT)
code_lines = importlib.util.module_from_spec(spec)
spec.loader.exec_module(code_lines)

SOURCE = '''"""Module docstring,
over two lines."""

# a comment
import os  # a trailing comment counts as its code line


class A:
    """Class docstring."""

    x = [1,
         2]  # a statement over two lines: 2

    def f(self):
        """Function docstring."""
        text = """a string that is
        not a docstring"""
        return text
'''


def test_counts_code_lines_only():
    # import, class, x (2 lines), def, text (2 lines), return
    assert code_lines.code_lines(SOURCE) == 8


def test_the_script_counts_a_package(tmp_path):
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "a.py").write_text(SOURCE)
    (tmp_path / "pkg" / "b.py").write_text('"""Only a docstring."""\n')
    out = subprocess.run([sys.executable, str(SCRIPT), str(tmp_path / "pkg"), "--by-file", "2"],
                         capture_output=True, text=True, check=True).stdout.splitlines()
    assert out[0].split() == ["8", "a.py"] and out[1].split() == ["0", "b.py"]
    assert out[-1].split()[:5] == ["8", "code", "lines", "in", "2"]
