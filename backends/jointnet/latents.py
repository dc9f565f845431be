"""The stacked latent of a JointNet run: a job's known layers encoded into it (RGB and modality
latents on channels, unknown layers mid-grey) and the sampled latent decoded back into layers,
both through the tiled VAE with as many tiles per call as the GPU memory free now allows.

A mixin of ``JointNetBackend``: it uses the backend's VAE, modality spec, device and window.
"""

from __future__ import annotations

from .job import TiledJob


class LatentLayers:
    def _known(self, job: TiledJob, circular: bool, progress):
        """(known latents, their keep mask over all latent channels); (None, None) when nothing is known."""
        import torch

        from worldgen.sampler.canvas import latent_keep

        if job.image is None and job.modality is None:
            return None, None
        c, h, w = self.channels, job.height // self.factor, job.width // self.factor
        known_latents = self._encode(job, circular, progress)
        keep = torch.cat([latent_keep(job.keep_image, self.factor).expand(1, c, h, w),
                          latent_keep(job.keep_modality, self.factor).expand(1, c * (self.latent_layers - 1), h, w)],
                         dim=1)
        return known_latents, keep

    def _encode(self, job: TiledJob, circular: bool, progress):
        """Both layers of the job's canvas as one (1, 2C, h, w) latent (unknown layers: mid-grey)."""
        import numpy as np
        import torch

        spec = self._spec()
        image = job.image if job.image is not None else np.full((job.height, job.width, 3), 0.5, np.float32)
        rgb = torch.from_numpy(np.ascontiguousarray(image, dtype=np.float32)).permute(2, 0, 1) * 2 - 1
        if job.modality is not None:
            mod = torch.from_numpy(np.ascontiguousarray(spec.encode(job.modality), dtype=np.float32)).permute(2, 0, 1)
        else:
            mod = torch.zeros_like(rgb)
        self._plan_vae_batch(images=2)
        latents = self.vae.encode(torch.stack([rgb, mod]), circular, progress)
        return torch.cat([latents[0:1], latents[1:2]], dim=1).to(self.device, self.pipe.jointnet.dtype)

    def _decode(self, latents, circular: bool, progress):
        import numpy as np
        import torch

        c = self.channels
        both = torch.cat([latents[:, :c], latents[:, c:]], dim=0)  # one image per layer
        self._plan_vae_batch(images=both.shape[0])
        pixels = self.vae.decode(both, circular, progress).float().cpu()
        image = ((pixels[0].permute(1, 2, 0) + 1) / 2).clamp(0, 1).numpy().astype(np.float32)
        modality = np.asarray(self._spec().decode(pixels[1].permute(1, 2, 0).clamp(-1, 1).numpy()), np.float32)
        return image, modality

    def _plan_vae_batch(self, images: int) -> None:
        """VAE tiles per call from the memory free now (a 141 GB card decodes a panorama's tiles in
        one call, a 12 GB card a few at a time); off CUDA the tiled VAE keeps its own batch."""
        from worldgen.sampler.memory import vae_batch_for

        if self.device.type == "cuda":
            self.vae.batch = vae_batch_for(self.pipe.vae, self.window * self.factor, images, self.device)

