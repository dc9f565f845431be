"""`worldgen models add` converts the official pickled weights once to safetensors in the compute
dtype (issue 14): the copy computes what the .bin computes, the user's files stay untouched, and
store entries made before conversion existed keep working."""

import hashlib
import json
import shutil

import pytest
import torch
from click.testing import CliRunner

from worldgen.backends.jointnet import loading
from worldgen.backends.jointnet.store import ModelStore, converted_weights
from worldgen.cli.main import cli


def _files(folder):
    """Every file under ``folder`` with its sha256 and mtime (what 'untouched' means)."""
    return {str(p.relative_to(folder)): (hashlib.sha256(p.read_bytes()).hexdigest(), p.stat().st_mtime_ns)
            for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture
def user_copy(fixture_dir, tmp_path):
    """The official-layout fixture as a user's download (pickled .bin weights)."""
    shutil.copytree(fixture_dir / "model", tmp_path / "download" / "model")
    shutil.copytree(fixture_dir / "base", tmp_path / "download" / "base")
    return tmp_path / "download"


def _add(user_copy, *extra):
    result = CliRunner().invoke(cli, ["models", "add", str(user_copy / "model"), "--name", "rgbd",
                                      "--base", str(user_copy / "base"), "--default", *extra])
    assert result.exit_code == 0, result.output
    return ModelStore().get("rgbd")


def _eps(pair, r, dtype):
    with torch.no_grad():
        return pair(r["x_rgb"].to(dtype), r["x_joint"].to(dtype), r["t"], r["ctx"].to(dtype))


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_the_converted_copy_computes_what_the_bin_computes(store_home, user_copy, reference, dtype):
    before = _files(user_copy)
    entry = _add(user_copy, "--dtype", dtype)
    assert _files(user_copy) == before  # the user's originals: same bytes, never rewritten
    copy = converted_weights(user_copy / "model", dtype)
    assert copy is not None and entry.converted == {dtype: str(copy)}
    assert store_home in copy.parents  # into the store, not beside the user's files
    for sub in ("unet", "jointnet"):
        assert not (copy / sub / loading.PICKLE_NAME).exists()
        assert (copy / sub / "config.json").read_bytes() == (user_copy / "model" / sub / "config.json").read_bytes()

    cast = getattr(torch, dtype)
    from_bin = loading.load_pair(user_copy / "model", cast)
    from_copy = loading.load_pair(copy)  # no dtype asked: the file itself holds the compute dtype
    assert from_copy.dtype == cast
    bin_state, copy_state = from_bin.state_dict(), from_copy.state_dict()
    assert bin_state.keys() == copy_state.keys()
    assert all(torch.equal(bin_state[k], copy_state[k]) for k in bin_state)  # lossless to the dtype
    for a, b in zip(_eps(from_bin, reference, cast), _eps(from_copy, reference, cast)):
        assert torch.equal(a, b)
    if dtype == "float32":  # and both are the original implementation's numbers
        eps_rgb, _ = _eps(from_copy, reference, cast)
        torch.testing.assert_close(eps_rgb, reference["eps_rgb"], rtol=1e-4, atol=1e-5)


def test_the_backend_loads_the_converted_copy(store_home, user_copy, monkeypatch):
    from worldgen.backends.jointnet.backend import JointNetBackend

    _add(user_copy, "--dtype", "float32")
    read = []
    original = loading.read_state_dict
    monkeypatch.setattr(loading, "read_state_dict", lambda path, device=None: read.append(path) or
                        original(path, device))
    backend = JointNetBackend.from_settings({"device": "cpu", "dtype": "float32"})
    branch_files = [p for p in read if p.parent.name in ("unet", "jointnet") and p.parent.parent.name != "base"]
    assert [p.suffix for p in branch_files] == [".safetensors", ".safetensors"]
    assert all(store_home in p.parents for p in branch_files)
    assert backend.settings()["model"] == "rgbd"  # scenes record a registered model by its name (issue 25)


def test_another_dtype_or_an_old_entry_loads_the_original_files(store_home, user_copy, reference):
    _add(user_copy, "--dtype", "bfloat16")
    assert converted_weights(user_copy / "model", "float32") is None  # a float32 run reads the .bin itself
    # An index written before conversions existed (no "converted" field) keeps working.
    index = json.loads((store_home / "models.json").read_text())
    index["models"]["rgbd"].pop("converted")
    (store_home / "models.json").write_text(json.dumps(index))
    assert converted_weights(user_copy / "model", "bfloat16") is None
    from worldgen.backends.jointnet.backend import JointNetBackend

    backend = JointNetBackend.from_settings({"device": "cpu", "dtype": "float32"})
    eps_rgb, _ = _eps(backend.pipe.jointnet, reference, torch.float32)
    torch.testing.assert_close(eps_rgb, reference["eps_rgb"], rtol=1e-4, atol=1e-5)


def test_no_convert_keeps_only_the_originals_and_remove_deletes_the_copy(store_home, user_copy):
    assert _add(user_copy, "--no-convert").converted == {}
    assert CliRunner().invoke(cli, ["models", "remove", "rgbd"]).exit_code == 0
    entry = _add(user_copy, "--dtype", "float32")
    copy = converted_weights(user_copy / "model", "float32")
    assert entry.converted and copy.is_dir()
    assert CliRunner().invoke(cli, ["models", "remove", "rgbd"]).exit_code == 0
    assert not copy.exists() and (user_copy / "model" / "unet" / loading.PICKLE_NAME).is_file()
