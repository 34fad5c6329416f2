"""Lightning's checkpoint file I/O (last.ckpt), made crash-safe and code-free.

Writing: Lightning's TorchCheckpointIO saves through an fsspec transaction that writes a temp file in the
system temp folder and then `shutil.move`s it over the target. When that folder is on another file system
than the run dir (a tmpfs /tmp, a network scratch disk) the move is a copy into the real name, so a kill
during it leaves a truncated last.ckpt, and the resume then fails. Here the temp file sits beside the target
and is renamed over it (util.atomic.atomic_file): a kill leaves the previous last.ckpt intact.

Reading: always `torch.load(weights_only=True)`: a checkpoint is data (tensors, numbers, strings, dicts),
and a pickle that would build any other object (and so could run code) is refused with a DataError.
"""

from __future__ import annotations

import pickle
import re
from pathlib import Path
from typing import Any, Callable, Optional

import torch
from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO

from ..errors import DataError
from ..util.atomic import atomic_file


class AtomicCheckpointIO(TorchCheckpointIO):
    def save_checkpoint(self, checkpoint: dict[str, Any], path, storage_options: Optional[Any] = None) -> None:
        if storage_options is not None or "://" in str(path):  # remote storage: Lightning's own way
            return super().save_checkpoint(checkpoint, path, storage_options)
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_file(path) as f:
            torch.save(checkpoint, f)

    def load_checkpoint(
        self, path, map_location: Optional[Callable] = lambda storage, loc: storage, weights_only: Optional[bool] = None
    ) -> dict[str, Any]:
        try:
            return super().load_checkpoint(path, map_location=map_location, weights_only=True)
        except pickle.UnpicklingError as e:
            raise DataError(
                f"refusing to load this checkpoint: it is not plain data ({_refused_global(e)}; torch.load with "
                "weights_only=True loads tensors, numbers, strings and containers only). Delete it to restart "
                "the fold from scratch",
                path,
            ) from None
        except (EOFError, RuntimeError) as e:
            raise DataError(f"checkpoint is damaged and cannot be read ({e}); delete it to restart the fold",
                            path) from None


def _refused_global(error: Exception) -> str:
    """The useful part of torch's long message: which global the pickle asked for."""
    match = re.search(r"Unsupported global: GLOBAL (\S+)", str(error))
    return f"it asks for {match.group(1)}" if match else str(error).strip().splitlines()[0][:200]
