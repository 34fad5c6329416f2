"""Shared test set-up: one thread (steady timings on 2 cores), offline hub, paths to ../shared."""

from __future__ import annotations

import importlib.util
import json
import os
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import pytest  # noqa: E402
import torch  # noqa: E402

from serkit_synth.iemocap import SynthReport, build_superb_id_iemocap, build_synthetic_iemocap  # noqa: E402

torch.set_num_threads(1)

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"


def shared_path(*parts: str) -> Path:
    """A path inside ../shared, or skip the test (a user's clone has no ../shared)."""
    path = SHARED.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"optional resource {path} is absent (only developers' and CI machines have ../shared)")
    return path


@pytest.fixture(autouse=True)
def _onednn_cache_variable_restored(monkeypatch):
    """`serkit predict` and `serkit serve` set ONEDNN_PRIMITIVE_CACHE_CAPACITY for their process
    (serkit.util.onednn): a test that calls them in-process must not hand it to the tests after it."""
    from serkit.util.onednn import ENV

    value = os.environ.get(ENV)
    monkeypatch.setenv(ENV, "")  # recorded: the undo puts back the value from before the test, or its absence
    if value is None:
        monkeypatch.delenv(ENV)
    else:
        monkeypatch.setenv(ENV, value)


@pytest.fixture
def superb_split_dir() -> Path:
    return shared_path("data", "superb_iemocap_split")


@pytest.fixture
def ravdess_dir() -> Path:
    return shared_path("data", "ravdess")


@pytest.fixture
def whisper_tiny_dir() -> Path:
    return shared_path("models", "whisper-tiny.en-encoder")


@pytest.fixture
def whisper_base_dir() -> Path:
    return shared_path("models", "whisper-base-encoder")


@pytest.fixture(scope="session")
def synth_iemocap(tmp_path_factory) -> SynthReport:
    """`serkit synth-iemocap --size small --seed 0`: 5 sessions x (F, M), ~235 label lines, a few seconds to build."""
    return build_synthetic_iemocap(tmp_path_factory.mktemp("synth_iemocap") / "IEMOCAP_full_release", seed=0)


@pytest.fixture(scope="session")
def synth_iemocap_root(synth_iemocap) -> Path:
    return synth_iemocap.root


@pytest.fixture(scope="session")
def superb_split_session_dir() -> Path:
    """superb_split_dir for session-scoped fixtures (which cannot use a function-scoped one)."""
    return shared_path("data", "superb_iemocap_split")


@pytest.fixture(scope="session")
def superb_lists(superb_split_session_dir) -> dict[str, dict[int, list[tuple[str, str]]]]:
    """SUPERB's lists as (utterance id, label) in file order: {"test": {fold: [...]}, "train": {fold: [...]}}."""
    lists: dict[str, dict[int, list[tuple[str, str]]]] = {"test": {}, "train": {}}
    for kind in lists:
        for fold in range(1, 6):
            meta = json.loads((superb_split_session_dir / f"Session{fold}" / f"{kind}_meta_data.json").read_text())
            lists[kind][fold] = [(Path(m["path"]).stem, m["label"]) for m in meta["meta_data"]]
    return lists


@pytest.fixture(scope="session")
def superb_id_iemocap(tmp_path_factory, superb_split_session_dir) -> SynthReport:
    """SUPERB's 5531 real ids/labels as an IEMOCAP_full_release tree with tiny clips (~2 s to build)."""
    out = tmp_path_factory.mktemp("superb_id_iemocap") / "IEMOCAP_full_release"
    return build_superb_id_iemocap(out, superb_split_session_dir, seed=0)


@pytest.fixture(scope="session")
def superb_id_root(superb_id_iemocap) -> Path:
    return superb_id_iemocap.root


@pytest.fixture(scope="session")
def tiny_bundle(tmp_path_factory) -> Path:
    """An untrained model bundle (filterbank -> narrow ECAPA-TDNN -> 4 classes), saved by the real save_bundle:
    for tests of everything that loads bundles (predict, API, service, export). Its outputs are not meaningful."""
    from serkit.bundle import save_bundle
    from serkit.config import load_config
    from serkit.demo import DEMO_ECAPA
    from serkit.model import build_model

    cfg = load_config({
        "name": "tiny_bundle",
        "model": {"upstreams": [{"name": "fbank", "layers": "last", "freeze": "all"}],
                  "aggregators": [{"name": "ecapa", **DEMO_ECAPA}]},
    })
    torch.manual_seed(0)
    model = build_model(cfg.model, num_classes=4).eval()
    return save_bundle(tmp_path_factory.mktemp("bundles") / "tiny", model, cfg, ["neu", "hap", "ang", "sad"],
                       metrics={"note": "untrained"})


@pytest.fixture(scope="session")
def tiny_onnx(tiny_bundle, tmp_path_factory) -> Path:
    """tiny_bundle exported by `serkit export --onnx` (the export extra is part of the test extra)."""
    from serkit.cli import main

    path = tmp_path_factory.mktemp("onnx") / "tiny.onnx"
    assert main(["export", str(tiny_bundle), "--onnx", str(path)]) == 0
    return path


# -- hostile audio, shared by tests/data, tests/inference and tests/serve ------------------------------------


def _unknown_length_flac(samples, sample_rate: int) -> bytes:
    """A valid FLAC of `samples` whose STREAMINFO says total_samples = 0 ("unknown", legal) -> its bytes.

    Layout: "fLaC", a 4-byte metadata block header, then STREAMINFO: min/max block size (2 x 16 bits), min/max
    frame size (2 x 24 bits), then 64 bits = sample rate (20), channels - 1 (3), bits per sample - 1 (5) and
    total samples (36), then the MD5. So total samples are the low 36 bits of bytes 18..25 of the file."""
    import io

    import soundfile as sf

    buffer = io.BytesIO()
    sf.write(buffer, samples, sample_rate, format="FLAC", subtype="PCM_16")
    data = bytearray(buffer.getvalue())
    assert data[:4] == b"fLaC" and data[4] & 0x7F == 0, "the first metadata block is STREAMINFO"
    packed = int.from_bytes(data[18:26], "big")
    assert packed & ((1 << 36) - 1) == len(samples)
    data[18:26] = (packed & ~((1 << 36) - 1)).to_bytes(8, "big")
    return bytes(data)


@pytest.fixture(scope="session")
def unknown_length_flac():
    """(samples [S], sample_rate) -> the bytes of a FLAC whose header leaves its length unknown."""
    return _unknown_length_flac


@pytest.fixture
def refuse_to_open(monkeypatch):
    """refuse_to_open(path): os.open raises EACCES for that path, as for a file without read permission
    (tests run as root, who may read anything)."""
    import errno

    def refuse(target) -> None:
        real_open = os.open

        def fake_open(path, flags, *args, **kwargs):
            if os.fsdecode(os.fspath(path)) == str(target):
                raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(target))
            return real_open(path, flags, *args, **kwargs)

        monkeypatch.setattr(os, "open", fake_open)

    return refuse


SCRIPTS = Path(__file__).resolve().parents[1] / "scripts"


@pytest.fixture(scope="session")
def load_script():
    """-> load(name): scripts/<name>.py (not a package), executed as a module named <name>."""

    def load(name: str):
        spec = importlib.util.spec_from_file_location(name, SCRIPTS / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module

    return load
