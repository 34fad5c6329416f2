"""`serkit demo`: the main job on the built-in default (synthetic IEMOCAP, tiny stand-in encoders)."""

from __future__ import annotations

import argparse

from .parsing import parse_numbers, positive_int
from .registry import command


def _arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", default="demo", help="output folder (default: demo)")
    p.add_argument("--experiments", help="comma-separated experiment numbers (default: all 11)")
    p.add_argument("--seed", type=int, default=0)
    # defaults: serkit/demo.py (DEMO_THREADS, default_jobs), imported only when the demo runs
    p.add_argument("--jobs", type=positive_int,
                   help="experiments run side by side, one process each (default: one per core, at most 4: "
                        "each takes up to ~1.3 GB); it does not change the results")
    p.add_argument("--threads", type=positive_int, metavar="N",
                   help="torch CPU threads per experiment (default 1, as for the README's Table 1: another "
                        "count changes the results' last bits, and so the table)")


@command("demo", "run the paper's 11 experiments CPU-sized on a synthetic IEMOCAP (what `make demo` runs)", _arguments)
def run(args: argparse.Namespace) -> int:
    from ..demo import run_demo

    result, seconds = run_demo(args.out, parse_numbers(args.experiments, "--experiments"), args.seed, args.jobs,
                               args.threads)
    if result is not None:
        _, paths = result
        print(paths["md"].read_text())
        print(f"Table 1 (synthetic corpus, tiny stand-in encoders: not the paper's setting) -> {paths['md']}")
    print(f"demo finished in {seconds / 60:.1f} min")
    return 0
