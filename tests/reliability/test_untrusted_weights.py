"""Pickled weights are untrusted: they are read only through torch.load(weights_only=True), and a
file that needs more than that (an object whose unpickling would run code) is refused with a
one-line error. Every test plants a pickle whose unpickling would CREATE A FILE (the marker):
the marker must never appear."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest
import torch
from reliability_support import assert_error, fixture_dir, invoke, writable_copy

from worldgen.errors import ModelError, WorldgenError


class Payload:
    """Unpickling this calls open(marker, "w"): a stand-in for any code an attacker would run."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def _hostile_zip_pickle(path: Path, marker: Path) -> Path:
    """torch.save's own (zip) format, with a real tensor next to the payload, as a doctored checkpoint would be."""
    torch.save({"conv_in.weight": torch.zeros(2, 2), "conv_in.bias": Payload(marker)}, path)
    return path


def _hostile_legacy_pickle(path: Path, marker: Path) -> Path:
    """A bare pickle (torch's legacy .bin format is a pickle stream as well)."""
    path.write_bytes(pickle.dumps({"conv_in.weight": Payload(marker)}, protocol=2))
    return path


@pytest.mark.parametrize("make", [_hostile_zip_pickle, _hostile_legacy_pickle], ids=["torch-zip", "legacy-pickle"])
def test_read_state_dict_refuses_a_code_running_pickle(make, tmp_path):
    from worldgen.backends.jointnet.loading import read_state_dict

    marker = tmp_path / "pwned"
    weights = make(tmp_path / "diffusion_pytorch_model.bin", marker)
    with pytest.raises(ModelError) as caught:
        read_state_dict(weights)
    assert not marker.exists(), "the pickle's payload ran"
    message = str(caught.value)
    assert "\n" not in message and "re-download" in message and str(weights) in message


def test_a_pickle_of_plain_non_tensor_objects_is_refused(tmp_path):
    """weights_only allows containers and numbers; a state dict must still be tensors only."""
    from worldgen.backends.jointnet.loading import read_state_dict

    path = tmp_path / "diffusion_pytorch_model.bin"
    torch.save({"conv_in.weight": [1, 2, 3]}, path)
    with pytest.raises(ModelError, match="plain state dict of tensors"):
        read_state_dict(path)


def test_the_checkpoint_loader_only_ever_calls_torch_load_with_weights_only(monkeypatch):
    """Load the whole official-tiny checkpoint (all .bin) and watch every torch.load call."""
    from worldgen.backends.jointnet.loading import load_pair, load_sd_base

    calls = []
    real_load = torch.load

    def watching(*args, **kwargs):
        calls.append(kwargs.get("weights_only"))
        return real_load(*args, **kwargs)

    monkeypatch.setattr(torch, "load", watching)
    load_sd_base(fixture_dir() / "base")
    load_pair(fixture_dir() / "model")
    assert len(calls) >= 3  # vae + both branches are pickles in the fixture
    assert all(flag is True for flag in calls), calls


def test_pano_with_a_hostile_checkpoint_fails_in_one_line_and_runs_nothing(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    model = writable_copy(fixture_dir() / "model", tmp_path / "model")
    marker = tmp_path / "pwned"
    _hostile_zip_pickle(model / "jointnet" / "diffusion_pytorch_model.bin", marker)
    result = invoke(["pano", "hills", "--model", model, "--base", fixture_dir() / "base", "--size", "64x32",
                     "--steps", "1", "-o", tmp_path / "w.glb", "-q"])
    assert_error(result, "was refused", "re-download")
    assert not marker.exists()
    assert not (tmp_path / "w").exists() and not (tmp_path / "w.glb").exists()


def test_a_hostile_training_checkpoint_is_refused_on_resume(tmp_path):
    """`worldgen train --resume` reloads optimizer/scheduler/RNG pickles through Accelerate: a doctored
    checkpoint must not run code, and must fail as a worldgen error (one line), not a traceback."""
    import json

    from accelerate import Accelerator

    from worldgen.training.checkpoints import STATE_FORMAT, STATE_NAME, load_checkpoint

    accelerator = Accelerator(cpu=True)
    model = torch.nn.Linear(2, 2)
    optimizer = torch.optim.AdamW(model.parameters())
    model, optimizer = accelerator.prepare(model, optimizer)
    folder = tmp_path / "checkpoints" / "step-00000002"
    accelerator.save_state(str(folder), safe_serialization=True)
    (folder / STATE_NAME).write_text(json.dumps({"format": STATE_FORMAT, "version": 1, "step": 2}))
    marker = tmp_path / "pwned"
    _hostile_zip_pickle(folder / "optimizer.bin", marker)

    with pytest.raises(WorldgenError) as caught:
        load_checkpoint(accelerator, folder)
    assert not marker.exists(), "the pickle's payload ran"
    assert "\n" not in str(caught.value)


# ---- issue 26, case 10: the refusal names the file and never repeats torch's advice ----------------

def _refusal_is_clean(message: str, path: Path) -> None:
    assert str(path) in message
    assert "weights_only" not in message and "trust the source" not in message.lower()
    assert "\x1b" not in message and "\\x1b" not in message


def test_a_hostile_text_encoder_pickle_is_refused_by_name(tmp_path):
    base = writable_copy(fixture_dir() / "base", tmp_path / "base")
    (base / "text_encoder" / "model.safetensors").unlink()
    weights = _hostile_zip_pickle(base / "text_encoder" / "pytorch_model.bin", tmp_path / "MARKER")
    result = invoke(["pano", "hills", "--model", fixture_dir() / "model", "--base", base, "--size", "64x32",
                     "--steps", "1", "-o", tmp_path / "w.glb", "-q"])
    _refusal_is_clean(assert_error(result, "refused", "safetensors"), weights)
    assert not (tmp_path / "MARKER").exists()


@pytest.mark.parametrize("make", [_hostile_zip_pickle, _hostile_legacy_pickle], ids=["torch-zip", "legacy-pickle"])
def test_a_hostile_branch_pickle_is_refused_by_name(tmp_path, make):
    from worldgen.backends.jointnet.loading import read_state_dict

    weights = make(tmp_path / "diffusion_pytorch_model.bin", tmp_path / "MARKER")
    with pytest.raises(ModelError) as info:
        read_state_dict(weights)
    _refusal_is_clean(str(info.value), weights)
    assert not (tmp_path / "MARKER").exists()
