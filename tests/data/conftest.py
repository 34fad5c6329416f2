"""Data-test fixtures: a small synthetic IEMOCAP and a SUPERB-id IEMOCAP tree, each built once per session."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from serkit.data.synth_iemocap import SynthReport, build_superb_id_iemocap

# Same place tests/conftest.py's `shared_path` looks; repeated here because session-scoped fixtures cannot
# use its function-scoped `superb_split_dir`.
SUPERB_SPLIT = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "superb_iemocap_split"


@pytest.fixture(scope="session")
def superb_split_session_dir() -> Path:
    if not SUPERB_SPLIT.is_dir():
        pytest.skip(f"optional resource {SUPERB_SPLIT} is absent (only developers' and CI machines have ../shared)")
    return SUPERB_SPLIT


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
