"""Adding a component is one file: an aggregator written in a temporary package, announced through the
`serkit.aggregators` entry-point group, is trained from a YAML config alone; the registries find the built-in
modules without a hand-kept list."""

from __future__ import annotations

import importlib
import subprocess
import sys
import textwrap

import pytest
import yaml

from serkit.bundle import load_bundle
from serkit.cli import main
from serkit.config import load_config
from serkit.downstream import AGGREGATORS
from serkit.errors import ConfigError

MY_POOL = '''
"""A power mean of |frames| over the real frames: ((1/T) sum |x_t|^power)^(1/power)."""
from dataclasses import dataclass

import torch

from serkit.downstream import AGGREGATORS, Aggregator, AggregatorConfig, length_mask

BUILT_WITH = []  # the power of every MyPool built, for the test to read


@dataclass
class MyPoolConfig(AggregatorConfig):
    name: str = "my_pool"
    power: float = 1.0


@AGGREGATORS.register("my_pool")
class MyPool(Aggregator):
    Config = MyPoolConfig

    def __init__(self, input_dim: int, power: float):
        super().__init__()
        self.output_dim, self.power = input_dim, power
        BUILT_WITH.append(power)

    @classmethod
    def from_config(cls, cfg: MyPoolConfig, input_dim: int) -> "MyPool":
        return cls(input_dim, cfg.power)

    def forward(self, frames, frame_lens):
        mask = length_mask(frame_lens, frames.shape[1]).unsqueeze(-1)
        powered = torch.where(mask, frames.abs().clamp(min=1e-6) ** self.power, torch.zeros(()))
        return (powered.sum(1) / frame_lens.clamp(min=1).unsqueeze(-1)) ** (1 / self.power)
'''


@pytest.fixture
def my_pool_installed(tmp_path, monkeypatch):
    """my_pool.py plus its dist-info (METADATA, entry_points.txt) on sys.path, as `pip install` would leave them;
    the aggregator registry forgets it (and re-reads the entry points) afterwards."""
    site = tmp_path / "site"
    (site / "my_pool-0.1.dist-info").mkdir(parents=True)
    (site / "my_pool.py").write_text(MY_POOL)
    (site / "my_pool-0.1.dist-info" / "METADATA").write_text("Metadata-Version: 2.1\nName: my_pool\nVersion: 0.1\n")
    (site / "my_pool-0.1.dist-info" / "entry_points.txt").write_text("[serkit.aggregators]\nmy_pool = my_pool\n")
    AGGREGATORS.names()  # the built-ins in first, so that the copy below keeps them
    monkeypatch.setattr(AGGREGATORS, "_entries", dict(AGGREGATORS._entries))
    monkeypatch.setattr(AGGREGATORS, "_loaded", False)
    monkeypatch.syspath_prepend(str(site))
    importlib.invalidate_caches()
    yield site
    sys.modules.pop("my_pool", None)


def write_config(path, aggregator: dict):
    path.write_text(yaml.safe_dump({
        "name": "my_pool_run", "seed": 0,
        "model": {"upstreams": [{"name": "fbank", "layers": "last", "freeze": "all"}], "aggregators": [aggregator]},
        "train": {"max_epochs": 1, "lr_downstream": 3e-3, "top_k": 1, "progress_bar": False},
        "data": {"corpus": "iemocap", "max_batch_seconds": 40.0},
    }))
    return path


def test_an_aggregator_from_a_plug_in_package_trains_from_yaml(my_pool_installed, synth_iemocap_root, tmp_path):
    assert "my_pool" not in sys.modules
    config = write_config(tmp_path / "my_pool.yaml", {"name": "my_pool", "power": 2.0})
    out = tmp_path / "run"
    assert main(["cv", str(config), "--root", str(synth_iemocap_root), "--out", str(out), "--folds", "1",
                 "--quiet"]) == 0
    assert sys.modules["my_pool"].BUILT_WITH and set(sys.modules["my_pool"].BUILT_WITH) == {2.0}
    assert "power: 2.0" in (out / "fold_1" / "model" / "config.yaml").read_text()
    model, cfg, _ = load_bundle(out / "fold_1" / "model")  # rebuilt from the bundle's YAML alone
    assert type(cfg.model.aggregators[0]).__name__ == "MyPoolConfig" and cfg.model.aggregators[0].power == 2.0
    pools = [module for module in model.modules() if type(module).__name__ == "MyPool"]
    assert len(pools) == 1 and pools[0].power == 2.0


def test_a_plug_in_s_unknown_key_is_refused_naming_it(my_pool_installed, tmp_path):
    config = write_config(tmp_path / "typo.yaml", {"name": "my_pool", "powr": 2})
    with pytest.raises(ConfigError, match=r"^key 'model\.aggregators\.0\.powr' is not a parameter of aggregator "
                                          r"'my_pool'; valid keys: name, power$"):
        load_config(config)
    with pytest.raises(ConfigError, match=r"model\.aggregators\.0\.power.*could not be converted to Float"):
        load_config(write_config(tmp_path / "bad_type.yaml", {"name": "my_pool", "power": "strong"}))


def test_registries_find_their_package_s_modules_without_a_list():
    """A fresh interpreter that imports only the registries knows every built-in component."""
    code = textwrap.dedent("""
        from serkit.data.corpora import CORPORA
        from serkit.downstream import AGGREGATORS
        from serkit.upstream import UPSTREAMS
        print(CORPORA.names(), AGGREGATORS.names(), UPSTREAMS.names())
    """)
    printed = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert printed.split() == ["['iemocap',", "'manifest',", "'ravdess']", "['ecapa',", "'mean',", "'stats']",
                               "['fbank',", "'hf',", "'text',", "'whisper']"]


def test_an_unknown_name_lists_the_known_ones():
    with pytest.raises(ConfigError, match=r"model\.aggregators\.0\.name.*unknown aggregator 'attentive'; "
                                          r"known: ecapa, mean, stats"):
        load_config({"model": {"aggregators": [{"name": "attentive"}]}})


def test_a_registry_whose_package_failed_to_import_raises_again_not_unknown_name():
    """A failed first import must not leave a half-loaded registry that later calls "unknown <name>"."""
    from serkit.registry import Registry

    registry = Registry("thing", "serkit_no_such_package_for_this_test", "serkit.things")
    for _ in range(2):
        with pytest.raises(ModuleNotFoundError):
            registry.get("anything")
