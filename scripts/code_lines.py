"""Count the package's code lines: non-blank, non-comment, non-docstring (issue 12 measures the redesign by it).

    python scripts/code_lines.py                 # total for src/serkit
    python scripts/code_lines.py --by-folder     # and per sub-package, largest first
    python scripts/code_lines.py --by-file 20    # and the 20 largest files
    python scripts/code_lines.py --history b59c086~1..HEAD   # the range's first total, then each commit that moved it

A line counts when it holds at least one token that is not a comment, and is not part of a docstring (the string
that opens a module, class or function body). A statement spanning several lines counts each of them.
"""

from __future__ import annotations

import argparse
import ast
import io
import subprocess
import tarfile
import tokenize
from collections import Counter
from pathlib import Path

SKIPPED_TOKENS = {tokenize.COMMENT, tokenize.NL, tokenize.NEWLINE, tokenize.INDENT, tokenize.DEDENT,
                  tokenize.ENCODING, tokenize.ENDMARKER}


def docstring_lines(tree: ast.AST) -> set[int]:
    """Line numbers covered by docstrings of the module and of every class and function in it."""
    lines: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and node.body:
            first = node.body[0]
            if (isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant)
                    and isinstance(first.value.value, str)):
                lines.update(range(first.lineno, first.end_lineno + 1))
    return lines


def code_lines(source: str) -> int:
    """Number of lines of `source` that hold code (see the module docstring)."""
    lines: set[int] = set()
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        if token.type not in SKIPPED_TOKENS:
            lines.update(range(token.start[0], token.end[0] + 1))
    return len(lines - docstring_lines(ast.parse(source)))


def package_lines(files: dict[Path, str]) -> int:
    """Code lines of {path: source}."""
    return sum(code_lines(source) for source in files.values())


REPO = Path(__file__).resolve().parents[1]


def git(*args: str) -> bytes:
    """Output of `git ARGS` run in the repository; its own message on failure."""
    done = subprocess.run(["git", *args], capture_output=True, cwd=REPO)
    if done.returncode:
        raise SystemExit(f"git {' '.join(args)}: {done.stderr.decode(errors='replace').strip()}")
    return done.stdout


def lines_at(commit: str, package: str = "src/serkit") -> int:
    """Code lines of `package` as committed at `commit` (read from `git archive`, the work tree untouched)."""
    archive = git("archive", commit, package)
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        return package_lines({Path(m.name): tar.extractfile(m).read().decode("utf-8") for m in tar.getmembers()
                              if m.isfile() and m.name.endswith(".py")})


def history(revisions: str) -> None:
    """The first commit of `revisions` (oldest first), then one line per commit that changed the count: hash,
    total, change, subject."""
    log = git("log", "--reverse", "--format=%h %s", revisions).decode().splitlines()
    previous = None
    for line in log:
        commit, subject = line.split(" ", 1)
        total = lines_at(commit)
        if previous is None or total != previous:
            change = "" if previous is None else f"{total - previous:+d}"
            print(f"{commit}  {total:6d}  {change:>6}  {subject[:100]}")
        previous = total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("root", nargs="?", default=str(REPO / "src" / "serkit"))
    parser.add_argument("--by-folder", action="store_true", help="print a line per sub-package")
    parser.add_argument("--by-file", type=int, default=0, metavar="N", help="print the N largest files")
    parser.add_argument("--history", metavar="REVS", help="git revision range: the total at each commit that moved it")
    args = parser.parse_args()
    if args.history:
        return history(args.history)
    root = Path(args.root)
    per_file = {path.relative_to(root): code_lines(path.read_text(encoding="utf-8"))
                for path in sorted(root.rglob("*.py"))}
    if args.by_folder:
        folders = Counter()
        for path, count in per_file.items():
            folders[path.parts[0] if len(path.parts) > 1 else "(top level)"] += count
        for folder, count in folders.most_common():
            print(f"{count:6d}  {folder}")
    for path, count in Counter(per_file).most_common(args.by_file):
        print(f"{count:6d}  {path}")
    print(f"{sum(per_file.values()):6d}  code lines in {len(per_file)} files under {root}")


if __name__ == "__main__":
    main()
