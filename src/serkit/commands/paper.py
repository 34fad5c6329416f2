"""`serkit paper`: run the paper's experiments and write Table 1."""

from __future__ import annotations

import argparse

from .parsing import parse_numbers, positive_int
from .registry import command


def _arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--root", required=True, help="IEMOCAP folder (IEMOCAP_full_release)")
    p.add_argument("--experiments", help="comma-separated experiment numbers, e.g. 1,7,9 (default: all 11)")
    p.add_argument("--out", default="runs/paper", help="output folder (default: runs/paper)")
    p.add_argument("--jobs", type=positive_int, default=1,
                   help="experiments run side by side, one process each (default 1; more for small models on CPU)")
    p.add_argument("--threads", type=positive_int, metavar="N",
                   help="torch CPU threads per experiment (default: the cores // jobs); results depend on N, not "
                        "on --jobs, and each run.json records it")
    p.add_argument("overrides", nargs="*", default=[], metavar="key=value",
                   help="overrides applied to every experiment, e.g. train.devices=2 train.strategy=ddp")


@command("paper", "run the paper's 11 experiments (or some) and write Table 1 beside the published figures", _arguments)
def run(args: argparse.Namespace) -> int:
    from ..training.paper import run_paper

    out = run_paper(args.root, args.out, parse_numbers(args.experiments, "--experiments"), args.overrides,
                    jobs=args.jobs, threads=args.threads)
    if out is not None:
        _, paths = out
        print(paths["md"].read_text())
        print(f"Table 1 written to {paths['md']}, {paths['csv']}, {paths['json']}")
    return 0
