import contextlib
import json

import pytest
import torch
from torch import nn

import serkit.checkpoint as checkpoint
import serkit.training.averaging as averaging
from serkit.cli import main
from serkit.errors import ConfigError, DataError
from serkit.checkpoint import load_state_dict, read_metadata, save_checkpoint
from serkit.training.averaging import average_checkpoint_files, average_checkpoints

HASH = "cfg-1234"


def _model(seed: int) -> nn.Module:
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(4, 3), nn.BatchNorm1d(3), nn.Linear(3, 2))
    model.train()
    for _ in range(seed + 1):  # moves BatchNorm running stats and its int64 counter
        model(torch.randn(8, 4))
    return model


def _save(tmp_path, name: str, state: dict, config_hash: str = HASH, **extra: str):
    return save_checkpoint(state, tmp_path / name, {"config_hash": config_hash, **extra})


def test_identical_checkpoints_average_to_themselves_bitwise(tmp_path):
    state = _model(0).state_dict()
    state["half"] = torch.randn(5).half()
    state["brain"] = torch.randn(5).bfloat16()
    paths = [_save(tmp_path, f"c{i}.safetensors", state) for i in range(3)]
    averaged = average_checkpoints(paths)
    assert averaged.keys() == state.keys()
    for key, tensor in state.items():
        assert averaged[key].dtype == tensor.dtype, key
        assert torch.equal(averaged[key], tensor), key  # float64 sum of 3 equal floats / 3 is exact


def test_average_of_known_tensors_is_their_mean(tmp_path):
    paths = [_save(tmp_path, f"c{v}.safetensors", {"w": torch.full((2, 3), float(v))}) for v in (1, 2, 3, 4, 5)]
    averaged = average_checkpoints(paths)
    assert torch.equal(averaged["w"], torch.full((2, 3), 3.0))
    assert averaged["w"].dtype == torch.float32

    states = [_model(seed).state_dict() for seed in range(3)]
    paths = [_save(tmp_path, f"m{i}.safetensors", s) for i, s in enumerate(states)]
    averaged = average_checkpoints(paths)
    for key in ("0.weight", "1.running_mean", "2.bias"):
        expected = torch.stack([s[key].double() for s in states]).mean(0).float()
        torch.testing.assert_close(averaged[key], expected, rtol=0, atol=1e-7)
        assert not torch.equal(averaged[key], states[0][key])  # the models really differ


def test_integer_buffers_are_taken_from_the_first_checkpoint_exactly(tmp_path):
    big = torch.tensor([2**62 + 1, -(2**61) - 3, 7], dtype=torch.int64)  # not representable in float64
    paths = []
    for i, count in enumerate((10, 20, 30)):
        state = _model(i).state_dict()
        state["1.num_batches_tracked"] = torch.tensor(count, dtype=torch.int64)
        state["index"] = big + i
        state["mask"] = torch.tensor([True, False, i == 0])
        state["small"] = torch.tensor([1, 2, 3], dtype=torch.int8) * (i + 1)
        paths.append(_save(tmp_path, f"c{i}.safetensors", state))
    averaged = average_checkpoints(paths)
    assert averaged["1.num_batches_tracked"].dtype == torch.int64
    assert averaged["1.num_batches_tracked"].item() == 10  # the first (best) checkpoint's counter, not 20.0
    assert averaged["index"].dtype == torch.int64 and torch.equal(averaged["index"], big)
    assert torch.equal(averaged["mask"], torch.tensor([True, False, True]))
    assert torch.equal(averaged["small"], torch.tensor([1, 2, 3], dtype=torch.int8))


def test_different_configs_are_refused_naming_both_files(tmp_path):
    state = _model(0).state_dict()
    a = _save(tmp_path, "a.safetensors", state, config_hash="aaa")
    b = _save(tmp_path, "b.safetensors", state, config_hash="bbb")
    with pytest.raises(ConfigError, match="different model configs") as err:
        average_checkpoints([a, b])
    assert str(a) in str(err.value) and str(b) in str(err.value)


def test_different_keys_shapes_or_dtypes_are_refused(tmp_path):
    base = {"w": torch.zeros(2, 3), "b": torch.zeros(3)}
    a = _save(tmp_path, "a.safetensors", base)
    extra = _save(tmp_path, "extra.safetensors", {**base, "new": torch.zeros(1)})
    missing = _save(tmp_path, "missing.safetensors", {"w": torch.zeros(2, 3)})
    shape = _save(tmp_path, "shape.safetensors", {**base, "w": torch.zeros(3, 2)})
    dtype = _save(tmp_path, "dtype.safetensors", {**base, "w": torch.zeros(2, 3, dtype=torch.float64)})
    with pytest.raises(ConfigError, match=r"different parameters.*extra \['new'\]") as err:
        average_checkpoints([a, extra])
    assert str(a) in str(err.value) and str(extra) in str(err.value)
    with pytest.raises(ConfigError, match=r"lacks \['b'\]"):
        average_checkpoints([a, missing])
    with pytest.raises(ConfigError, match=r"'w'.*\(2, 3\).*\(3, 2\)"):
        average_checkpoints([a, shape])
    with pytest.raises(ConfigError, match=r"'w'.*F32.*F64"):
        average_checkpoints([a, dtype])


def test_missing_files_and_metadata_are_refused(tmp_path):
    from safetensors.torch import save_file

    plain = tmp_path / "plain.safetensors"
    save_file({"w": torch.zeros(2)}, plain)  # no config_hash in its metadata
    with pytest.raises(ConfigError, match="no 'config_hash'"):
        average_checkpoints([plain, plain])
    with pytest.raises(DataError, match="not found"):
        average_checkpoints([tmp_path / "nope.safetensors"])
    with pytest.raises(ConfigError, match="no checkpoints"):
        average_checkpoints([])


def test_at_most_one_checkpoint_is_open_at_a_time(tmp_path, monkeypatch):
    paths = [_save(tmp_path, f"c{i}.safetensors", _model(i).state_dict()) for i in range(4)]
    real_safe_open = averaging.safe_open
    state = {"open": 0, "peak": 0, "opened": 0, "int_reads_after_first": 0}

    class CountingHandle:
        def __init__(self, handle, first):
            self._handle, self._first = handle, first

        def __getattr__(self, name):
            return getattr(self._handle, name)

        def get_tensor(self, key):
            tensor = self._handle.get_tensor(key)
            if not self._first and not tensor.is_floating_point():
                state["int_reads_after_first"] += 1
            return tensor

    @contextlib.contextmanager
    def counting_safe_open(path, *args, **kwargs):
        state["open"] += 1
        state["opened"] += 1
        state["peak"] = max(state["peak"], state["open"])
        try:
            with real_safe_open(path, *args, **kwargs) as handle:
                yield CountingHandle(handle, first=str(path) == str(paths[0]))
        finally:
            state["open"] -= 1

    monkeypatch.setattr(averaging, "safe_open", counting_safe_open)
    average_checkpoints(paths)
    assert state["peak"] == 1
    assert state["opened"] >= len(paths)  # every file was read through the patched opener
    assert state["int_reads_after_first"] == 0  # integer buffers are read once, from the first file only


def test_save_checkpoint_is_atomic_and_validates_metadata(tmp_path, monkeypatch):
    path = _save(tmp_path, "ckpt.safetensors", {"w": torch.ones(3)})
    assert read_metadata(path)["config_hash"] == HASH

    def crash(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(checkpoint, "save_file", crash)
    with pytest.raises(RuntimeError, match="disk full"):
        _save(tmp_path, "ckpt.safetensors", {"w": torch.zeros(3)})
    monkeypatch.undo()
    assert torch.equal(load_state_dict(path)["w"], torch.ones(3))  # the old file is intact
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt.safetensors"]  # no temp file left

    with pytest.raises(ConfigError, match="lacks 'config_hash'"):
        save_checkpoint({"w": torch.ones(1)}, tmp_path / "x.safetensors", {})
    with pytest.raises(ConfigError, match="str to str"):
        save_checkpoint({"w": torch.ones(1)}, tmp_path / "x.safetensors", {"config_hash": HASH, "epoch": 3})


def test_tied_weights_can_be_saved(tmp_path):
    weight = torch.randn(4, 4)
    path = _save(tmp_path, "tied.safetensors", {"embed.weight": weight, "head.weight": weight})
    loaded = load_state_dict(path)
    assert torch.equal(loaded["embed.weight"], loaded["head.weight"])


def test_cli_writes_a_loadable_average(tmp_path, capsys):
    models = [_model(seed) for seed in range(3)]
    paths = [
        _save(tmp_path, f"epoch{i}.safetensors", m.state_dict(), epoch=str(i), labels="ang,hap,neu,sad")
        for i, m in enumerate(models)
    ]
    out = tmp_path / "avg" / "model.safetensors"
    assert main(["average", *map(str, paths), "--out", str(out)]) == 0
    assert "averaged 3 checkpoints" in capsys.readouterr().out

    fresh = _model(99)
    fresh.load_state_dict(load_state_dict(out), strict=True)
    expected = torch.stack([m[0].weight.detach().double() for m in models]).mean(0).float()
    torch.testing.assert_close(fresh[0].weight.detach(), expected, rtol=0, atol=1e-7)

    metadata = read_metadata(out)
    assert metadata["config_hash"] == HASH
    assert metadata["k"] == "3"
    assert json.loads(metadata["averaged_files"]) == [str(p) for p in paths]
    assert metadata["labels"] == "ang,hap,neu,sad"  # shared by all inputs: kept
    assert "epoch" not in metadata  # differs between inputs: dropped


def test_cli_reports_incompatible_checkpoints(tmp_path, capsys):
    a = _save(tmp_path, "a.safetensors", {"w": torch.zeros(2)}, config_hash="aaa")
    b = _save(tmp_path, "b.safetensors", {"w": torch.zeros(2)}, config_hash="bbb")
    assert main(["average", str(a), str(b), "--out", str(tmp_path / "out.safetensors")]) == 1
    assert "different model configs" in capsys.readouterr().err
    assert not (tmp_path / "out.safetensors").exists()


def test_average_checkpoint_files_of_one_is_a_copy(tmp_path):
    state = _model(1).state_dict()
    out = average_checkpoint_files([_save(tmp_path, "only.safetensors", state)], tmp_path / "out.safetensors")
    loaded = load_state_dict(out)
    assert all(torch.equal(loaded[k], v) for k, v in state.items())
