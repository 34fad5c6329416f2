"""--threads and --jobs of `serkit cv`, `paper` and `demo`: a count below 1 or not a number is refused by
the parser, naming the flag, before anything runs."""

from __future__ import annotations

import pytest

from serkit.cli import main


@pytest.mark.parametrize("argv", [
    ["cv", "x.yaml", "--threads", "0"],
    ["paper", "--root", "r", "--jobs", "0"],
    ["paper", "--root", "r", "--threads", "-2"],
    ["demo", "--jobs", "two"],
    ["demo", "--threads", "0"],
])
def test_counts_below_one_are_refused_naming_the_flag(argv, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    assert exit_.value.code == 2
    assert f"argument {argv[-2]}" in capsys.readouterr().err
