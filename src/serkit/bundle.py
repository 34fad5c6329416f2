"""Model bundles: what training produces and everything else loads.

    <bundle>/model.safetensors   SERModel state_dict (metadata: config_hash)
             config.yaml         the fully resolved experiment config
             labels.json         class names in logit order
             upstreams/<i>/      upstream i's own config files (HF config.json, feature extractor, tokenizer)
             metrics.json        what the model scored (per split; best single vs averaged)

Loading never touches the network: upstream i is rebuilt from `upstreams/<i>/` with untrained weights
(`pretrained=False`) and then every weight comes from model.safetensors, strictly (no missing keys).

A bundle may come from elsewhere, so loading it runs no code: weights are safetensors (no pickle), the
upstreams' files are JSON/text read by transformers without `trust_remote_code`, the upstream sources in
config.yaml are ignored (always `upstreams/<i>/` of the bundle), and a file reached through a symlink that
leaves the bundle is refused.
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
from .util.atomic import dir_mode, write_json

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
    for leftover in out_dir.parent.glob(f".{out_dir.name}.*"):  # a killed save's temp folder
        shutil.rmtree(leftover, ignore_errors=True)
    tmp = Path(tempfile.mkdtemp(dir=out_dir.parent, prefix=f".{out_dir.name}."))
    os.chmod(tmp, dir_mode())  # mkdtemp makes it 0700; the bundle gets what mkdir would give (0755 under umask 022)
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
    aside = bundle_dir.with_name(f".{bundle_dir.name}.old")
    if not bundle_dir.exists() and aside.is_dir():
        raise DataError(f"bundle missing: a save was interrupted while replacing it; the previous bundle is {aside} "
                        "(rename it back, or save again)", bundle_dir)
    for name in (WEIGHTS, CONFIG, LABELS):
        if not (bundle_dir / name).is_file():
            raise DataError(f"not a serkit model bundle: {name} is missing", bundle_dir)
    _check_inside(bundle_dir)
    cfg = load_config(bundle_dir / CONFIG)
    try:
        labels = json.loads((bundle_dir / LABELS).read_text(encoding="utf-8"))
    except (ValueError, RecursionError):  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        labels = None
    if not isinstance(labels, list) or not all(isinstance(label, str) for label in labels):
        raise DataError("expected a JSON list of class names", bundle_dir / LABELS)
    for index, upstream_cfg in enumerate(cfg.model.upstreams):
        # always the bundle's own copy: a config.yaml from elsewhere cannot point loading at other folders
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


def _check_inside(bundle_dir: Path) -> None:
    """DataError if any file or folder of the bundle resolves (through a symlink) to a place outside it."""
    root = bundle_dir.resolve()
    for path in bundle_dir.rglob("*"):
        try:
            target = path.resolve()
        except (OSError, RuntimeError) as e:  # a symlink loop
            raise DataError(f"{path.relative_to(bundle_dir)} cannot be resolved ({e})", bundle_dir) from None
        if not target.is_relative_to(root):
            raise DataError(f"{path.relative_to(bundle_dir)} is a link to {target}, outside the bundle; "
                            "a bundle must be self-contained", bundle_dir)


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
