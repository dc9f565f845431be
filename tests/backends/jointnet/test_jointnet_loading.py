"""Official-layout loading: 0.19 configs, weights_only pickles, safetensors round trips."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from worldgen.backends.jointnet import loading
from worldgen.backends.jointnet.loading import (CONFIG_019_REMOVED, CONFIG_019_RENAMED, CONFIG_ADDED_SINCE_019,
                                                CONFIG_METADATA, load_pair, normalize_branch_config, save_pair,
                                                write_checkpoint_modality)
from worldgen.backends.jointnet.store import checkpoint_modality
from worldgen.backends.jointnet.model import JointNetModel
from worldgen.errors import ModelError


def _config(fixture_dir, which="model"):
    return json.loads((fixture_dir / which / "unet" / "config.json").read_text())


def test_every_019_key_is_accounted_for(fixture_dir):
    """Each key of the release's config is metadata, renamed, removed, or accepted as it is."""
    import inspect

    accepted = set(inspect.signature(JointNetModel.__init__).parameters) - {"self"}
    raw = _config(fixture_dir)
    for key in raw:
        assert (key in CONFIG_METADATA or key in CONFIG_019_RENAMED or key in CONFIG_019_REMOVED
                or key in accepted), key
    assert {"joint_in_channels", "has_masked_latent_input"} <= accepted
    config = normalize_branch_config(raw)
    assert not any(k.startswith("_") for k in config)
    for key, value in CONFIG_ADDED_SINCE_019.items():
        assert config[key] == value
    # The 0.19 head-count quirk survives: attention_head_dim [4, 8] means 4 and 8 heads.
    branch = JointNetModel.from_config(config)
    assert branch.down_blocks[0].attentions[0].transformer_blocks[0].attn1.heads == 4
    assert branch.config.has_masked_latent_input is False and branch.config.joint_in_channels is None


def test_config_checks(fixture_dir):
    raw = _config(fixture_dir)
    with pytest.raises(ModelError, match="upgrade diffusers"):
        normalize_branch_config({**raw, "some_future_key": 3})
    assert "some_future_key" not in normalize_branch_config({**raw, "some_future_key": None})
    with pytest.raises(ModelError, match="num_attention_heads"):
        normalize_branch_config({**raw, "num_attention_heads": 8})
    with pytest.raises(ModelError, match="not a JointNet branch"):
        normalize_branch_config({**raw, "_class_name": "AutoencoderKL"})


def test_pickle_weights_load_only_through_weights_only(tmp_path, fixture_dir):
    """A pickle that would run code is refused, and the code does not run."""
    marker = tmp_path / "ran"

    class Exploit:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    ck = tmp_path / "ck"
    shutil.copytree(fixture_dir / "model", ck)
    bad = ck / "unet" / "diffusion_pytorch_model.bin"
    bad.chmod(0o644)
    torch.save({"conv_in.weight": Exploit()}, bad)  # torch.load(weights_only=False) would run open()
    with pytest.raises(ModelError, match="was refused: it is a pickle"):
        load_pair(ck)
    assert not marker.exists()


def test_save_load_round_trip_is_lossless(tmp_path, fixture_dir, reference):
    pair = load_pair(fixture_dir / "model_inpaint")
    out = save_pair(pair, tmp_path / "saved", modality="normal")
    for sub in ("unet", "jointnet"):
        assert (out / sub / "diffusion_pytorch_model.safetensors").is_file()
        assert not (out / sub / "diffusion_pytorch_model.bin").exists()
        saved = json.loads((out / sub / "config.json").read_text())
        assert saved["_class_name"] == "JointNetModel" and saved["has_masked_latent_input"] is True
    again = load_pair(out)
    a, b = pair.state_dict(), again.state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert checkpoint_modality(out) == "normal"
    r = reference
    with torch.no_grad():
        eps = again(r["x_rgb"], r["x_joint"], r["t"], r["ctx"], r["mask_rgb"], r["masked_rgb"],
                    r["mask_joint"], r["masked_joint"])
    assert (eps[0] - r["eps_m_rgb"]).abs().max() <= 1e-5 and (eps[1] - r["eps_m_joint"]).abs().max() <= 1e-5


def test_saving_over_pickles_replaces_them(tmp_path, fixture_dir):
    ck = tmp_path / "ck"
    shutil.copytree(fixture_dir / "model", ck)
    for p in ck.rglob("*"):
        p.chmod(0o755 if p.is_dir() else 0o644)
    save_pair(load_pair(ck), ck)
    assert sorted(p.name for p in (ck / "unet").iterdir()) == ["config.json", "diffusion_pytorch_model.safetensors"]
    load_pair(ck)  # still loads


def test_modality_metadata(tmp_path, fixture_dir):
    assert checkpoint_modality(fixture_dir / "model") == "depth"  # official: no worldgen.json
    write_checkpoint_modality(tmp_path, "normal")
    assert checkpoint_modality(tmp_path) == "normal"
    (tmp_path / "worldgen.json").write_text('{"modality": 3}')
    with pytest.raises(ModelError, match="modality"):
        checkpoint_modality(tmp_path)


def test_missing_parts_name_the_fix(tmp_path, fixture_dir):
    with pytest.raises(ModelError, match="unet/ and jointnet/"):
        load_pair(fixture_dir / "base")
    ck = tmp_path / "ck"
    shutil.copytree(fixture_dir / "model", ck)
    (ck / "jointnet" / "diffusion_pytorch_model.bin").chmod(0o644)
    (ck / "jointnet" / "diffusion_pytorch_model.bin").unlink()
    with pytest.raises(ModelError, match="re-download"):
        load_pair(ck)


def test_mismatched_weights_are_refused(tmp_path, fixture_dir):
    """Inpaint weights under a generation config: missing/unexpected keys are an error, not ignored."""
    ck = tmp_path / "ck"
    shutil.copytree(fixture_dir / "model", ck)
    target = ck / "unet" / "diffusion_pytorch_model.bin"
    target.chmod(0o644)
    shutil.copyfile(fixture_dir / "model_inpaint" / "unet" / "diffusion_pytorch_model.bin", target)
    with pytest.raises(ModelError, match="do not match"):
        load_pair(ck)


def test_from_unet_keeps_dtype(fixture_dir):
    from diffusers import UNet2DConditionModel

    unet = loading.load_model_folder(UNet2DConditionModel, fixture_dir / "base" / "unet", "unet", torch.float16)
    branch = JointNetModel.from_unet(unet)
    assert branch.dtype == torch.float16
    assert all(not m.weight.detach().any() for m in branch.exchange_modules())


def test_weights_of_another_shape_are_a_model_error(tmp_path, fixture_dir):
    from safetensors.torch import save_file

    ck = tmp_path / "ck"
    shutil.copytree(fixture_dir / "model", ck)
    state = torch.load(fixture_dir / "model" / "unet" / "diffusion_pytorch_model.bin", weights_only=True)
    state["conv_in.weight"] = torch.zeros(32, 4, 3, 3)
    save_file(state, ck / "unet" / "diffusion_pytorch_model.safetensors")  # preferred over the .bin
    with pytest.raises(ModelError, match="size mismatch"):
        load_pair(ck)


def test_text_encoder_of_another_width_is_a_model_error(fixture_dir):
    from transformers import CLIPTextConfig, CLIPTextModel

    from worldgen.backends.jointnet.pipeline import JointNetPipeline

    parts = loading.load_sd_base(fixture_dir / "base")
    parts["text_encoder"] = CLIPTextModel(CLIPTextConfig(vocab_size=1000, hidden_size=24, intermediate_size=37,
                                                         num_hidden_layers=1, num_attention_heads=4))
    with pytest.raises(ModelError, match="24 wide"):
        JointNetPipeline(jointnet=load_pair(fixture_dir / "model"), **parts)
