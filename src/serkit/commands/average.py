"""`serkit average CKPT... --out OUT.safetensors`: average checkpoints' parameters into one file."""

from __future__ import annotations

import argparse
from pathlib import Path

from .registry import command


def _add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("checkpoints", nargs="+", type=Path, metavar="CKPT",
                        help="safetensors checkpoints of one model config, best first (integer buffers such as "
                             "BatchNorm counters are taken from the first). A fold's top-k files hold the trained "
                             "weights only (frozen upstream parameters are the source's): load the average with "
                             "serkit.checkpoint.load_trained_state_dict, or use the fold's model bundle")
    parser.add_argument("--out", required=True, type=Path, metavar="OUT.safetensors",
                        help="where to write the averaged checkpoint")


@command("average", "average the parameters of checkpoints (e.g. a fold's top-k) into one checkpoint",
         _add_arguments)
def run(args: argparse.Namespace) -> int:
    from ..training.averaging import average_checkpoint_files  # torch is imported only when needed

    out = average_checkpoint_files(args.checkpoints, args.out)
    print(f"averaged {len(args.checkpoints)} checkpoints -> {out}")
    return 0
