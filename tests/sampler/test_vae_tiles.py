"""Tiled, wrap-aware VAE encode/decode."""

import types

import pytest
import torch
import torch.nn.functional as F
from diffusers import AutoencoderKL

from worldgen.sampler.vae_tiles import TiledVAE, vae_scale_factor


class PointwiseVAE(torch.nn.Module):
    """A VAE stand-in whose decode/encode are exact per-cell maps (nearest up, average down), so a
    correct tiling must reproduce the one-shot result exactly. Records the size of every call."""

    def __init__(self, blocks=4):
        super().__init__()
        self.p = torch.nn.Parameter(torch.zeros(1))
        self.config = types.SimpleNamespace(block_out_channels=(1,) * blocks, scaling_factor=0.5)
        self.f = 2 ** (blocks - 1)
        self.seen = []

    def decode(self, z):
        self.seen.append(tuple(z.shape))
        return types.SimpleNamespace(sample=F.interpolate(z[:, :3], scale_factor=self.f, mode="nearest"))

    def encode(self, x):
        self.seen.append(tuple(x.shape))
        m = F.avg_pool2d(x, self.f)
        return types.SimpleNamespace(latent_dist=types.SimpleNamespace(mean=torch.cat([m, m[:, :1]], 1)))


def tiny_vae():
    torch.manual_seed(0)
    return AutoencoderKL(block_out_channels=(8, 16), down_block_types=("DownEncoderBlock2D",) * 2,
                         up_block_types=("UpDecoderBlock2D",) * 2, latent_channels=4, norm_num_groups=4,
                         layers_per_block=1, sample_size=32).eval()


@pytest.mark.parametrize("circular", [True, False])
@pytest.mark.parametrize("h,w", [(20, 50), (16, 12), (40, 96)])
def test_tiling_reproduces_a_cellwise_vae_exactly(circular, h, w):
    vae = PointwiseVAE(blocks=3)
    tiled = TiledVAE(vae, tile=16, batch=3)
    z = torch.randn(2, 4, h, w)
    expected = F.interpolate(z[:, :3] / 0.5, scale_factor=4, mode="nearest")
    assert torch.allclose(tiled.decode(z, circular=circular), expected, atol=1e-5)
    x = torch.rand(2, 3, h * 4, w * 4) * 2 - 1
    m = F.avg_pool2d(x, 4)
    assert torch.allclose(tiled.encode(x, circular=circular), torch.cat([m, m[:, :1]], 1) * 0.5, atol=1e-5)


def test_scale_factor_comes_from_the_vae_config():
    assert vae_scale_factor(tiny_vae()) == 2
    assert vae_scale_factor(PointwiseVAE(blocks=4)) == 8


def test_4096x1024_decodes_in_tile_sized_calls():
    vae = PointwiseVAE(blocks=4)
    out = TiledVAE(vae, tile=64, batch=2).decode(torch.randn(1, 4, 128, 512), circular=True)
    assert out.shape == (1, 3, 1024, 4096) and torch.isfinite(out).all()
    assert max(shape[0] for shape in vae.seen) <= 2
    assert max(max(shape[-2:]) for shape in vae.seen) == 64      # never the 512-wide latent at once
    assert len(vae.seen) > 10


def test_circular_decode_has_no_special_column_at_the_wrap():
    """Rolling the latent by whole tile strides rolls the image: the wrap is decoded exactly like
    an interior column. A flat decode sees the image border there instead."""
    vae = tiny_vae()
    tiled = TiledVAE(vae, tile=16, overlap=4)
    z = torch.randn(1, 4, 16, 96)
    shift = 4 * (16 - 4)                                        # four strides of the tile grid
    for circular, should_match in ((True, True), (False, False)):
        a = tiled.decode(z, circular=circular)
        b = tiled.decode(torch.roll(z, shift, dims=-1), circular=circular)
        same = torch.allclose(torch.roll(a, shift * 2, dims=-1), b, atol=1e-4)
        assert same is should_match


def test_real_vae_calls_never_exceed_one_tile_and_outputs_are_finite():
    vae = tiny_vae()
    seen = []
    vae.decoder.register_forward_pre_hook(lambda module, args: seen.append(tuple(args[0].shape)))
    tiled = TiledVAE(vae, tile=16, batch=2)
    with torch.no_grad():
        img = tiled.decode(torch.randn(1, 4, 24, 72), circular=True)
        lat = tiled.encode(img.clamp(-1, 1), circular=True)
    assert img.shape == (1, 3, 48, 144) and lat.shape == (1, 4, 24, 72)
    assert torch.isfinite(img).all() and torch.isfinite(lat).all()
    assert max(s[-1] for s in seen) == 16 and max(s[0] for s in seen) <= 2


def test_out_of_memory_halves_the_tile_batch():
    vae = PointwiseVAE(blocks=2)
    original = vae.decode

    def picky(z):
        if z.shape[0] > 1:
            raise torch.OutOfMemoryError("fake")
        return original(z)

    vae.decode = picky
    tiled = TiledVAE(vae, tile=8, batch=4)
    out = tiled.decode(torch.randn(1, 4, 8, 40), circular=True)
    assert out.shape == (1, 3, 16, 80) and tiled.batch == 1
