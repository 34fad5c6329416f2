"""Regenerate the README's demo Table 1 from a demo run, and say where the README drifts from it.

    python scripts/demo_table.py demo            # a line per differing cell; exit 1 if any, 0 if none
    python scripts/demo_table.py demo --write    # rewrite the README's table with the run's, in place
    python scripts/demo_table.py demo --readme other.md

DEMO is the folder of `serkit demo --out DEMO` (the table is DEMO/runs/table1.json) or that runs/ folder.
Exit 2: no such run or README table. The table is rebuilt with serkit's own formatting (evaluation/paper.py),
so an unchanged run gives the same text. Not a CI test, since the demo takes minutes. The threads, jobs,
torch and CPU that each experiment recorded are printed too: results depend on them (README, "What varies").
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path
from typing import NoReturn

from serkit.evaluation.paper import table1_markdown

REPO = Path(__file__).resolve().parents[1]


def run_table(demo: Path) -> list[str]:
    """The run's Table 1 as Markdown lines: header, alignment, one row per experiment."""
    for path in (demo / "runs" / "table1.json", demo / "table1.json"):
        if path.is_file():
            rows = json.loads(path.read_text(encoding="utf-8"))["rows"]
            lines = table1_markdown(rows).splitlines()
            return lines[next(i for i, line in enumerate(lines) if line.startswith("| # |")):]  # no caption
    fail(f"{demo}: no runs/table1.json: not a finished demo run (`serkit demo --out {demo}` writes it at the "
         "end; running it again resumes an interrupted one)")


def readme_table(lines: list[str], header: str, readme: Path) -> tuple[int, int]:
    """(first, end) line indexes of the README's table whose header line is `header`."""
    starts = [i for i, line in enumerate(lines) if line.strip() == header]
    if len(starts) != 1:
        fail(f"{readme}: expected one table with the header line {header!r}, found {len(starts)}")
    end = starts[0]
    while end < len(lines) and lines[end].startswith("|"):
        end += 1
    return starts[0], end


def fail(message: str) -> NoReturn:
    """Exit 2 (not 1, which means drift) with what is wrong and where."""
    print(f"demo_table.py: error: {message}", file=sys.stderr)
    sys.exit(2)


def cells(line: str) -> list[str]:
    return [cell.strip() for cell in line.strip().strip("|").split("|")]


def drift(readme_lines: list[str], run_lines: list[str]) -> list[str]:
    """One message per differing cell ('row 6 (system): ours UA ...: README x, run y') or missing row."""
    columns = cells(run_lines[0])
    if readme_lines[:2] != run_lines[:2]:
        return [f"header: README {readme_lines[:2]}, run {run_lines[:2]}"]
    ours = {cells(line)[0]: cells(line) for line in readme_lines[2:]}
    theirs = {cells(line)[0]: cells(line) for line in run_lines[2:]}
    messages = [f"row {n}: only in the README" for n in ours if n not in theirs]
    messages += [f"row {n}: only in the run" for n in theirs if n not in ours]
    for number in (n for n in theirs if n in ours):
        for column, a, b in zip(columns, ours[number], theirs[number]):
            if a != b:
                messages.append(f"row {number} ({theirs[number][1]}): {column}: README {a}, run {b}")
    return messages


def recorded_compute(demo: Path) -> list[str]:
    """The distinct compute facts (run.json 'compute') of the run's experiments, with their names."""
    runs = demo / "runs" if (demo / "runs").is_dir() else demo
    seen: dict[str, list[str]] = {}
    for run_json in sorted(runs.glob("*/run.json")):
        facts = json.loads(run_json.read_text(encoding="utf-8")).get("compute")
        key = ("not recorded (a serkit before compute facts)" if facts is None else
               f"torch {facts['torch']}, {facts['threads']} thread(s), {facts['jobs']} job(s), "
               f"{facts['cpu']} ({facts['cpu_capability']})")
        seen.setdefault(key, []).append(run_json.parent.name[:2])
    return [f"{text}: experiments {', '.join(names)}" for text, names in seen.items()]


def write_atomic(path: Path, text: str) -> None:
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    with os.fdopen(handle, "w", encoding="utf-8") as out:
        out.write(text)
    os.replace(temporary, path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("demo", type=Path, help="the folder of `serkit demo --out DEMO`, or its runs/ folder")
    parser.add_argument("--readme", type=Path, default=REPO / "README.md")
    parser.add_argument("--write", action="store_true", help="rewrite the README's table with the run's")
    args = parser.parse_args(argv)

    run_lines = run_table(args.demo)
    if not args.readme.is_file():
        fail(f"{args.readme}: no such file (--readme names the Markdown file with the demo table)")
    text = args.readme.read_text(encoding="utf-8")
    lines = text.splitlines()
    first, end = readme_table(lines, run_lines[0], args.readme)
    messages = drift(lines[first:end], run_lines)
    for line in recorded_compute(args.demo):
        print(f"run made with {line}")
    for message in messages:
        print(message)
    if not messages:
        print(f"{args.readme}: the demo table equals the run's ({len(run_lines) - 2} rows)")
        return 0
    if args.write:
        new = "\n".join([*lines[:first], *run_lines, *lines[end:]]) + ("\n" if text.endswith("\n") else "")
        write_atomic(args.readme, new)
        print(f"{args.readme}: table rewritten from {args.demo} ({len(messages)} difference(s))")
        return 0
    print(f"{args.readme}: {len(messages)} difference(s) from {args.demo} (--write rewrites the table)")
    return 1


if __name__ == "__main__":
    sys.exit(main())
