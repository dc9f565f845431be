"""Tiled, wrap-aware VAE encode and decode for panoramas of any width.

Decoding a 4096x1024 panorama in one call needs the activations of a 4096x1024 decoder pass; this
module decodes overlapping latent tiles a few at a time and cross-fades them with the same
edge-ramped weights the denoiser uses, so memory depends on the tile size, not the panorama.

A full 360-degree panorama is a cylinder: its first and last columns are neighbours. Decoding it as
a flat image would let the decoder see zero padding at both ends and draw a visible seam there. So
on a circular canvas the tiles themselves wrap: the last tile runs past the right edge and takes
its remaining columns from the left edge, and the wrap becomes one more cross-faded tile overlap,
decoded with real context on both sides like every other column. A panorama narrower than one tile
is repeated three times side by side and the middle copy kept. Encoding does the same in pixels.

diffusers' own ``AutoencoderKL.tiled_decode`` is not used because it cannot wrap, decodes one
tile per call, and sizes tiles from the VAE config rather than from the caller.
"""

from __future__ import annotations

from typing import Optional

import torch

from ..progress import ProgressCallback, report
from .windows import Layout, gather, scatter_add, tile_layout


def vae_scale_factor(vae) -> int:
    """Pixels per latent cell: 2 ** (number of VAE blocks - 1), 8 for Stable Diffusion."""
    return 2 ** (len(vae.config.block_out_channels) - 1)


class TiledVAE:
    """Encode/decode with tiles of ``tile`` latent cells overlapping by ``overlap`` cells.

    ``batch`` tiles go through the VAE per call (halved on an out-of-memory error). Latents are in
    the diffusion model's scale (multiplied by the VAE's scaling factor); images are in [-1, 1].
    """

    def __init__(self, vae, tile: int = 64, overlap: Optional[int] = None, batch: int = 4) -> None:
        self.vae = vae
        self.factor = vae_scale_factor(vae)
        self.tile = max(2, int(tile))
        self.overlap = max(1, self.tile // 4) if overlap is None else int(overlap)
        if not 0 < self.overlap < self.tile:
            raise ValueError(f"overlap {self.overlap} must be between 1 and the tile size {self.tile} - 1")
        self.batch = max(1, int(batch))
        self.scaling = float(getattr(vae.config, "scaling_factor", 1.0) or 1.0)
        self.shift = float(getattr(vae.config, "shift_factor", None) or 0.0)

    @property
    def device(self) -> torch.device:
        return next(self.vae.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        return next(self.vae.parameters()).dtype

    # Public -------------------------------------------------------------------------------
    @torch.no_grad()
    def decode(self, latents: torch.Tensor, circular: bool,
               progress: Optional[ProgressCallback] = None) -> torch.Tensor:
        """(B, C, h, w) latents -> (B, 3, h*f, w*f) images in [-1, 1] (float32, on the VAE device)."""
        z = latents.to(self.device, self.dtype) / self.scaling + self.shift

        def run(tiles):
            return self.vae.decode(tiles).sample

        return self._tiled(run, z, in_scale=1, out_scale=self.factor, circular=circular, stage="decode",
                           progress=progress)

    @torch.no_grad()
    def encode(self, images: torch.Tensor, circular: bool,
               progress: Optional[ProgressCallback] = None) -> torch.Tensor:
        """(B, 3, H, W) images in [-1, 1] -> (B, C, H/f, W/f) latents (the posterior mean, scaled).

        The mean, not a sample: encoding known content (refine, outpaint, conversions) should be
        deterministic; the sampler adds the noise itself."""
        h, w = images.shape[-2:]
        if h % self.factor or w % self.factor:
            raise ValueError(f"image {w}x{h} is not a multiple of the VAE factor {self.factor}")
        x = images.to(self.device, self.dtype)

        def run(tiles):
            return self.vae.encode(tiles).latent_dist.mean

        out = self._tiled(run, x, in_scale=self.factor, out_scale=1, circular=circular, stage="encode",
                          progress=progress)
        return (out - self.shift) * self.scaling

    # Internals ----------------------------------------------------------------------------
    def _tiled(self, run, source: torch.Tensor, in_scale: int, out_scale: int, circular: bool, stage: str,
               progress: Optional[ProgressCallback]) -> torch.Tensor:
        """Run ``run`` over overlapping tiles of ``source`` and cross-fade the results.

        The layout is in latent cells; ``in_scale``/``out_scale`` say how many source/result pixels
        make one cell (1 for latents, the VAE factor for images)."""
        w = source.shape[-1] // in_scale
        if circular and w <= self.tile:
            tripled = self._tiled(run, torch.cat([source] * 3, dim=-1), in_scale, out_scale, False, stage, progress)
            return tripled[..., w * out_scale: 2 * w * out_scale]
        b = source.shape[0]
        h = source.shape[-2] // in_scale
        stride = self.tile - self.overlap
        # On a cylinder, shift the grid so that a tile is centred on the wrap: its columns come out of
        # one decoder pass with context on both sides, so the wrap is an interior column, not a seam.
        offset = (-(self.tile // 2)) % stride if circular else 0
        layout = tile_layout(w, h, (self.tile, self.tile), (stride, stride), circular=circular,
                             offset=(offset, 0), ramp=self.overlap)
        weight_sum = torch.zeros((1, 1, h * out_scale, w * out_scale), dtype=torch.float32, device=source.device)
        out = None
        n, start, batch = len(layout), 0, self.batch
        while start < n:
            part = _subset(layout, start, min(start + batch, n))
            try:
                result = run(gather(source, part.index(in_scale, source.device)))
            except torch.OutOfMemoryError:
                if batch == 1:
                    raise
                batch = self.batch = max(1, batch // 2)
                if source.device.type == "cuda":
                    torch.cuda.empty_cache()
                continue
            if out is None:
                out = torch.zeros((b, result.shape[1], h * out_scale, w * out_scale), dtype=torch.float32,
                                  device=source.device)
            index = part.index(out_scale, source.device)
            weights = part.weights(out_scale, source.device)
            scatter_add(weight_sum, index, weights)
            weighted = result.float().reshape(len(part), b, *result.shape[1:]) * weights[:, None]
            scatter_add(out, index, weighted.reshape(result.shape))
            start += len(part)
            report(progress, stage, start, n, f"{n} tiles")
        return out / weight_sum


def _subset(layout: Layout, start: int, stop: int) -> Layout:
    return Layout(layout.width, layout.height, layout.windows[start:stop], layout.circular, layout.ramp)
