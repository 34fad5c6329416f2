"""Model bundles: what training produces and everything else loads.

    <bundle>/model.safetensors   SERModel state_dict (metadata: config_hash)
             config.yaml         the fully resolved experiment config
             labels.json         class names in logit order
             upstreams/<i>/      upstream i's own config files (HF config.json, feature extractor, tokenizer)
             metrics.json        what the model scored (per split; best single vs averaged)

Loading never touches the network: upstream i is rebuilt from `upstreams/<i>/` with untrained weights
(`pretrained=False`) and then every weight comes from model.safetensors, strictly (no missing keys).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

from .config import ExperimentConfig, config_hash, load_config, save_config
from .errors import DataError
from .model import SERModel, build_model
from .training.averaging import load_state_dict, save_checkpoint
from .util.atomic import write_json

WEIGHTS, CONFIG, LABELS, METRICS, UPSTREAMS_DIR = (
    "model.safetensors", "config.yaml", "labels.json", "metrics.json", "upstreams",
)


def save_bundle(
    out_dir: str | Path, model: SERModel, cfg: ExperimentConfig, labels: list[str], metrics: dict | None = None
) -> Path:
    """Write a bundle to `out_dir` atomically: it is assembled in a temp folder beside it, then renamed into
    place, so a crash leaves either the old bundle or the new one, never half of one."""
    out_dir = Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=out_dir.parent, prefix=f".{out_dir.name}."))
    try:
        save_checkpoint(model.state_dict(), tmp / WEIGHTS, {"config_hash": config_hash(cfg.model)})
        save_config(cfg, tmp / CONFIG)
        write_json(tmp / LABELS, list(labels))
        write_json(tmp / METRICS, metrics or {})
        for index, upstream in enumerate(model.upstreams):
            upstream_dir = tmp / UPSTREAMS_DIR / str(index)
            upstream_dir.mkdir(parents=True)
            upstream.save_config_files(upstream_dir)
        _replace_dir(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out_dir


def load_bundle(bundle_dir: str | Path) -> tuple[SERModel, ExperimentConfig, list[str]]:
    """-> (model in eval mode on CPU, its experiment config, class names)."""
    bundle_dir = Path(bundle_dir)
    for name in (WEIGHTS, CONFIG, LABELS):
        if not (bundle_dir / name).is_file():
            raise DataError(f"not a serkit model bundle: {name} is missing", bundle_dir)
    cfg = load_config(bundle_dir / CONFIG)
    labels = json.loads((bundle_dir / LABELS).read_text(encoding="utf-8"))
    if not isinstance(labels, list) or not all(isinstance(label, str) for label in labels):
        raise DataError("expected a JSON list of class names", bundle_dir / LABELS)
    for index, upstream_cfg in enumerate(cfg.model.upstreams):
        upstream_cfg.source = str(bundle_dir / UPSTREAMS_DIR / str(index))
    model = build_model(cfg.model, num_classes=len(labels), pretrained=False)
    state = load_state_dict(bundle_dir / WEIGHTS)
    missing, unexpected = model.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise DataError(
            f"weights do not fit the config: missing {sorted(missing)[:5]}, unexpected {sorted(unexpected)[:5]}",
            bundle_dir / WEIGHTS,
        )
    return model.eval(), cfg, labels


def _replace_dir(new: Path, target: Path) -> None:
    """Put folder `new` at `target`; an existing target is moved aside first and removed after."""
    old = None
    if target.exists():
        old = target.with_name(f".{target.name}.old")
        shutil.rmtree(old, ignore_errors=True)
        os.replace(target, old)
    os.replace(new, target)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
