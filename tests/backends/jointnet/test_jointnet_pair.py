"""The pair against what the original implementation computed on the official-tiny fixture."""

from __future__ import annotations

import json

import pytest
import torch

from worldgen.backends.jointnet.loading import load_pair
from worldgen.backends.jointnet.model import JointNetModel
from worldgen.backends.jointnet.pair import JointNetPair
from worldgen.backends.jointnet.loading import load_model_folder

TOL = 1e-5


@pytest.fixture(scope="module")
def pair(fixture_dir):
    return load_pair(fixture_dir / "model")


@pytest.fixture(scope="module")
def inpaint_pair(fixture_dir):
    return load_pair(fixture_dir / "model_inpaint")


@pytest.fixture(scope="module")
def base_unet(fixture_dir):
    from diffusers import UNet2DConditionModel

    return load_model_folder(UNet2DConditionModel, fixture_dir / "base" / "unet", "base unet")


@torch.no_grad()
def test_pair_reproduces_reference(pair, reference):
    r = reference
    eps_rgb, eps_joint = pair(r["x_rgb"], r["x_joint"], r["t"], r["ctx"])
    assert eps_rgb.shape == r["eps_rgb"].shape and eps_joint.shape == r["eps_joint"].shape
    assert (eps_rgb - r["eps_rgb"]).abs().max().item() <= TOL
    assert (eps_joint - r["eps_joint"]).abs().max().item() <= TOL


@torch.no_grad()
def test_inpaint_pair_reproduces_reference(inpaint_pair, reference):
    r = reference
    eps_rgb, eps_joint = inpaint_pair(r["x_rgb"], r["x_joint"], r["t"], r["ctx"],
                                      mask_rgb=r["mask_rgb"], masked_rgb=r["masked_rgb"],
                                      mask_joint=r["mask_joint"], masked_joint=r["masked_joint"])
    assert (eps_rgb - r["eps_m_rgb"]).abs().max().item() <= TOL
    assert (eps_joint - r["eps_m_joint"]).abs().max().item() <= TOL


@torch.no_grad()
def test_exchange_matters(pair, reference):
    """Zeroing the modality branch's exchange must change the RGB prediction (the test can fail)."""
    r = reference
    saved = {k: v.clone() for k, v in pair.jointnet.state_dict().items() if k.startswith("jointnet_")}
    try:
        pair.jointnet.zero_exchange_()
        eps_rgb, _ = pair(r["x_rgb"], r["x_joint"], r["t"], r["ctx"])
    finally:
        pair.jointnet.load_state_dict(saved, strict=False)
    assert (eps_rgb - r["eps_rgb"]).abs().max().item() > 1e-3


@torch.no_grad()
def test_timestep_per_window_matches_scalar(pair, reference):
    r = reference
    scalar = pair(r["x_rgb"], r["x_joint"], r["t"], r["ctx"])
    per_window = pair(r["x_rgb"], r["x_joint"], r["t"].repeat(2), r["ctx"])
    for a, b in zip(scalar, per_window):
        assert torch.allclose(a, b, atol=1e-6)


@torch.no_grad()
def test_batch_elements_are_independent(pair, reference):
    """Window i of a batched call equals a call with window i alone."""
    r = reference
    eps_rgb, eps_joint = pair(r["x_rgb"], r["x_joint"], r["t"], r["ctx"])
    one_rgb, one_joint = pair(r["x_rgb"][1:], r["x_joint"][1:], r["t"], r["ctx"][1:])
    assert torch.allclose(eps_rgb[1:], one_rgb, atol=1e-5)
    assert torch.allclose(eps_joint[1:], one_joint, atol=1e-5)


@torch.no_grad()
def test_from_unet_reproduces_base_exactly(base_unet, reference):
    r = reference
    pair = JointNetPair.from_unet(base_unet).eval()
    expected = base_unet(r["x_rgb"], r["t"], r["ctx"]).sample
    eps_rgb, _ = pair(r["x_rgb"], r["x_joint"], r["t"], r["ctx"])
    assert torch.equal(eps_rgb, expected)  # reference["preserve_max_abs"] is 0.0: bit-exact
    assert float(r["preserve_max_abs"]) == 0.0
    for branch in (pair.unet, pair.jointnet):
        assert all(float(m.weight.abs().max()) == 0 and float(m.bias.abs().max()) == 0
                   for m in branch.exchange_modules())


@torch.no_grad()
def test_from_unet_inpaint_has_masked_conv_and_preserves(base_unet, reference):
    r = reference
    pair = JointNetPair.from_unet(base_unet, masked_latent_input=True).eval()
    assert tuple(pair.unet.jointnet_masked_latent_conv.weight.shape) == (16, 10, 3, 3)
    eps_rgb, _ = pair(r["x_rgb"], r["x_joint"], r["t"], r["ctx"], r["mask_rgb"], r["masked_rgb"],
                      r["mask_joint"], r["masked_joint"])
    assert torch.equal(eps_rgb, base_unet(r["x_rgb"], r["t"], r["ctx"]).sample)


def test_state_dict_names_match_the_release(fixture_dir):
    raw = torch.load(fixture_dir / "model_inpaint" / "unet" / "diffusion_pytorch_model.bin", weights_only=True)
    config = json.loads((fixture_dir / "model_inpaint" / "unet" / "config.json").read_text())
    from worldgen.backends.jointnet.loading import normalize_branch_config

    branch = JointNetModel.from_config(normalize_branch_config(config))
    assert set(branch.state_dict()) == set(raw)
    assert all(branch.state_dict()[k].shape == v.shape for k, v in raw.items())


@torch.no_grad()
def test_mask_arguments_are_checked(pair, inpaint_pair, reference):
    r = reference
    with pytest.raises(ValueError, match="no masked-latent input"):
        pair(r["x_rgb"], r["x_joint"], r["t"], r["ctx"], mask_rgb=r["mask_rgb"])
    with pytest.raises(ValueError, match="needs mask_rgb"):
        inpaint_pair(r["x_rgb"], r["x_joint"], r["t"], r["ctx"])
    with pytest.raises(ValueError, match="batch sizes differ"):
        pair(r["x_rgb"], r["x_joint"][:1], r["t"], r["ctx"])


def test_zero_exchange_still_learns(base_unet, reference):
    """Zero-initialised exchange layers get gradients (training can move them), both directions."""
    r = reference
    pair = JointNetPair.from_unet(base_unet).train()
    eps_rgb, eps_joint = pair(r["x_rgb"], r["x_joint"], r["t"], r["ctx"])
    loss = (eps_rgb - torch.randn_like(eps_rgb)).pow(2).mean() + (eps_joint - torch.randn_like(eps_joint)).pow(2).mean()
    loss.backward()
    for branch in (pair.unet, pair.jointnet):
        assert branch.jointnet_rgb_in_trans.weight.grad.abs().sum() > 0
        assert branch.jointnet_mid_block.weight.grad.abs().sum() > 0
        assert all(m.weight.grad.abs().sum() > 0 for m in branch.jointnet_down_blocks)


def test_public_api_names_resolve():
    import worldgen.backends.jointnet as jointnet

    for name in jointnet.__all__:
        assert getattr(jointnet, name) is not None
    with pytest.raises(AttributeError):
        jointnet.no_such_name
