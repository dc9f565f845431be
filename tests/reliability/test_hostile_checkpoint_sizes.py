"""Checkpoints whose size claims are hostile (issue 26, cases 8 and 10): a pickled tensor expanded
with stride 0 (a few bytes on disk, any number of elements once made contiguous) used to become
957 MB in the store as a model that could not load; a 3e9-element one asked for 12 GB; a config
with ``layers_per_block: 3000`` cost 83 s and 1.6 GB before its error. Now names and shapes are
checked against the config from the header alone, and conversion writes only what fits."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
import torch
from reliability_support import assert_error, fixture_dir, invoke, writable_copy

from worldgen.errors import ModelError

BIN = "diffusion_pytorch_model.bin"


@pytest.fixture
def home(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("WORLDGEN_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


@pytest.fixture
def model(tmp_path) -> Path:
    return writable_copy(fixture_dir() / "model", tmp_path / "model")


def _expand_one_tensor(model: Path, shape: tuple) -> int:
    """Replace unet's conv_in.weight by one stored number expanded to ``shape``; the file's size."""
    path = model / "unet" / BIN
    state = torch.load(path, weights_only=True)
    state["conv_in.weight"] = torch.zeros(1).expand(*shape)
    torch.save(state, path)
    return path.stat().st_size


def _assert_nothing_registered(home: Path) -> None:
    index = home / "models.json"
    assert not index.exists() or json.loads(index.read_text())["models"] == {}
    stored = sum(p.stat().st_size for p in home.rglob("*") if p.is_file()) if home.exists() else 0
    assert stored < 1 << 20, f"{stored} bytes left in the store"


@pytest.mark.parametrize("shape", [(4000, 4000, 16), (3, 1000, 1000, 1000)], ids=["1GB", "3e9-elements"])
def test_an_expanded_tensor_is_refused_before_it_is_materialised(home, model, shape):
    assert _expand_one_tensor(model, shape) < 4 << 20  # small on disk, as the hostile file was
    started = time.monotonic()
    result = invoke(["models", "add", model, "--name", "big", "--dtype", "float32"])
    assert_error(result, "conv_in.weight", "shape", str(list(shape)))
    assert time.monotonic() - started < 30
    _assert_nothing_registered(home)


def test_a_tensor_of_the_wrong_shape_is_refused_without_conversion_too(home, model):
    _expand_one_tensor(model, (8, 4, 3, 3))
    assert_error(invoke(["models", "add", model, "--name", "bad", "--no-convert"]), "conv_in.weight", "shape")
    _assert_nothing_registered(home)


def _huge_config(model: Path) -> None:
    config_path = model / "unet" / "config.json"
    config = json.loads(config_path.read_text())
    config["layers_per_block"] = 3000
    config_path.write_text(json.dumps(config))


def test_a_config_far_larger_than_its_weights_is_refused_at_once(home, model):
    _huge_config(model)
    started = time.monotonic()
    assert_error(invoke(["models", "add", model, "--name", "huge", "--no-convert"]), "layers_per_block 3000")
    assert time.monotonic() - started < 15
    _assert_nothing_registered(home)


def test_loading_a_config_far_larger_than_its_weights_fails_at_once(model):
    from worldgen.backends.jointnet.loading import load_pair

    _huge_config(model)
    started = time.monotonic()
    with pytest.raises(ModelError, match="layers_per_block 3000"):
        load_pair(model)
    assert time.monotonic() - started < 15


def test_a_conversion_that_does_not_fit_the_disk_is_refused_up_front(home, model, monkeypatch):
    import shutil

    from worldgen.backends.jointnet import convert

    real = shutil.disk_usage

    def nearly_full(path):
        usage = real(path)
        return type(usage)(usage.total, usage.total - 1024, 1024)

    monkeypatch.setattr(convert.shutil, "disk_usage", nearly_full)
    assert_error(invoke(["models", "add", model, "--name", "m", "--dtype", "float32"]), "free", "--no-convert")
    _assert_nothing_registered(home)


def test_the_untouched_checkpoint_still_registers_and_converts(home, model):
    result = invoke(["models", "add", model, "--name", "ok", "--dtype", "float32"])
    assert result.exit_code == 0, result.output
    assert "float32" in json.loads((home / "models.json").read_text())["models"]["ok"]["converted"]
