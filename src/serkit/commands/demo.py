"""`serkit demo`: the main job on the built-in default (synthetic IEMOCAP, tiny stand-in encoders)."""

from __future__ import annotations

import argparse

from ..cli import command
from .paper import parse_numbers


def _arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", default="demo", help="output folder (default: demo)")
    p.add_argument("--experiments", help="comma-separated experiment numbers (default: all 11)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--jobs", type=int, default=2, help="experiments run side by side, one process and thread each "
                   "(default 2: the cores of a small laptop)")


@command("demo", "run the paper's 11 experiments CPU-sized on a synthetic IEMOCAP (what `make demo` runs)", _arguments)
def run(args: argparse.Namespace) -> int:
    from ..demo import run_demo

    result, seconds = run_demo(args.out, parse_numbers(args.experiments, "--experiments"), args.seed, args.jobs)
    if result is not None:
        _, paths = result
        print(paths["md"].read_text())
        print(f"Table 1 (synthetic corpus, tiny stand-in encoders: not the paper's setting) -> {paths['md']}")
    print(f"demo finished in {seconds / 60:.1f} min")
    return 0
