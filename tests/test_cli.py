import subprocess
import sys

from serkit.cli import main


def test_help_lists_subcommands(capsys):
    assert main([]) == 2
    out = capsys.readouterr().out
    assert "usage: serkit" in out


def test_console_entry_point_runs():
    proc = subprocess.run([sys.executable, "-m", "serkit", "--version"], capture_output=True, text=True)
    assert proc.returncode == 0
    assert proc.stdout.startswith("serkit ")
