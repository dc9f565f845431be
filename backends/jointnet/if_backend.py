"""DeepFloyd-IF as a JointNet base: every panorama task in pixel space at stage-I resolution.

The tiled sampler and its recipe are the Stable Diffusion backend's (whole-canvas window, edge-ramped
window weights, a fresh random offset each step, the whole window's weight decay); only the space
differs. IF denoises pixels: one canvas cell is one pixel (no VAE), RGB and modality are 3 channels
each in [-1, 1], and each branch predicts noise AND a variance (IF's scheduler is a DDPM with a
learned variance range). The tiled sampler blends what the model returns window by window, so the
canvas carries, after the RGB and modality pixels, the same number of channels for the variance
predictions: the denoiser returns [noise | variance] and ``LearnedVarianceSteps`` hands IF's
scheduler each image's noise and variance (per image, so its dynamic thresholding treats RGB and
modality as the separate images they are). The variance channels of the canvas itself are unused.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Optional

from worldgen.errors import UserInputError

from .backend import JointNetBackend
from .settings import device_for, dtype_for, resolve_model
from .deepfloyd import DeepFloydJointNetPipeline
from .if_steps import PIXEL_CHANNELS, LearnedVarianceSteps

class PixelSpace:
    """The identity 'autoencoder' of a pixel-space model: one pixel per canvas cell."""

    config = SimpleNamespace(block_out_channels=(1,), force_upcast=False)


class IFPanoramaPipeline(DeepFloydJointNetPipeline):
    """The IF JointNet pipeline with the two facts the tiled backend reads from a pipeline."""

    vae = PixelSpace()
    vae_scale_factor = 1

    @property
    def latent_channels(self) -> int:
        return self.jointnet.in_channels


IF_SETTINGS = ("sr_model",)  # a stage-II folder (unet/, scheduler/); default: the checkpoint's stage2/


def _stage2_dir(setting, model_dir):
    from pathlib import Path

    if setting:
        folder = Path(setting).expanduser()
        if not (folder / "unet").is_dir() or not (folder / "scheduler").is_dir():
            raise UserInputError(f"{folder} is not an IF stage-II folder (unet/ and scheduler/); pass the "
                                 f"diffusers layout of DeepFloyd/IF-II-M-v1.0")
        return folder.resolve()
    own = Path(model_dir) / "stage2"
    return own if (own / "unet").is_dir() else None


class DeepFloydBackend(JointNetBackend):
    """The JointNet backend on a DeepFloyd-IF stage-I JointNet (pixel space), with stage II when the
    checkpoint has one (``stage2/``) or ``sr_model`` names one."""

    latent_layers = 4  # RGB, modality, then their variance channels
    stage2 = None
    stage2_dir = None

    @classmethod
    def from_settings(cls, settings: dict) -> "DeepFloydBackend":
        from worldgen.sampler.presets import resolve_sampling

        from .settings import SETTINGS, check_perf_settings
        from .store import checkpoint_modality

        unknown = set(settings) - set(SETTINGS) - set(IF_SETTINGS)
        if unknown:
            raise UserInputError(f"unknown jointnet settings {sorted(unknown)}; known: {', '.join(SETTINGS)}")
        if settings.get("region_mode") or settings.get("extra_model"):
            raise UserInputError("region modes and --extra-model need a Stable Diffusion JointNet for now")
        model_dir, base_dir = resolve_model(settings.get("model"), settings.get("base"))
        device = device_for(settings.get("device"))
        dtype = dtype_for(settings.get("dtype"), device)
        check_perf_settings(settings, device)
        sampling = resolve_sampling(settings.get("preset"), scheduler=settings.get("scheduler"))
        pipe = IFPanoramaPipeline.from_pretrained(model_dir, base_dir, dtype, device, settings.get("scheduler"))
        if pipe.jointnet.has_masked_latent_input:
            raise UserInputError(f"{model_dir} is an IF inpainting JointNet; only IF generation models work for now")
        window_batch = settings.get("window_batch")
        backend = cls(pipe, model_dir=model_dir, base_dir=base_dir, modality=checkpoint_modality(model_dir),
                      device=device, dtype=dtype, scheduler=settings.get("scheduler"),
                      window_batch=int(window_batch) if window_batch is not None else None,
                      # Plain PyTorch unless asked: the fused-QKV and CUDA-graph paths were measured on SD's
                      # attention only, not on IF's added-KV attention.
                      preset=sampling.preset, speed=settings.get("speed") or "off", memory=settings.get("memory"))
        backend.stage2_dir = _stage2_dir(settings.get("sr_model"), model_dir)
        if backend.stage2_dir is not None:
            from .if_upscale import StageTwo

            backend.stage2 = StageTwo.load(backend.stage2_dir, dtype, device)
        return backend

    def settings(self) -> dict:
        own = super().settings()
        return {**own, "sr_model": str(self.stage2_dir)} if self.stage2_dir is not None else own

    # Stage II ---------------------------------------------------------------------------------
    def generate(self, request, progress=None):
        """Stage I on the tiled sampler, then (when the model has a stage II) tiled super-resolution."""
        from .depth_layer import add_depth, has_geometry

        snapshot = super().generate(request, progress)
        if self.stage2 is not None:
            snapshot = self.upscale(snapshot, request, progress)
        # A modality without geometry (e.g. edges) still makes a world: depth from another model.
        return snapshot if has_geometry(snapshot) else add_depth(snapshot, None, request.steps, request.seed, progress)

    def upscale(self, snapshot, request, progress=None):
        from worldgen.scene.snapshot import Snapshot
        from worldgen.geometry.projection import CylindricalProjection

        from .if_upscale import guided_upsample, super_resolve

        factor = max(1, int(self.stage2.unet.config.sample_size) // self.window)
        do_cfg = request.guidance > 1.0 and bool(request.prompt or request.negative_prompt)
        text = self.pipe.encode_prompt(request.prompt, request.negative_prompt, do_cfg)
        circular = snapshot.projection.full_circle
        image = super_resolve(self.stage2, text, snapshot.image, factor=factor, steps=request.steps,
                              seed=request.seed, guidance=request.guidance, circular=circular, device=self.device,
                              dtype=self.pipe.jointnet.dtype, window_batch=self.window_batch, progress=progress)
        layers = {name: guided_upsample(layer, image, circular, radius=2 * factor)
                  for name, layer in snapshot.modalities.items()}
        h, w = image.shape[:2]
        return Snapshot(image=image, modalities=layers, projection=CylindricalProjection(w, h, snapshot.projection.span_deg),
                        geometry=snapshot.geometry, prompt=snapshot.prompt)

    # Pixel space ------------------------------------------------------------------------------
    def _encode(self, job, circular: bool, progress):
        """[RGB | modality | unused variance channels] of the job's canvas, in [-1, 1]."""
        import numpy as np
        import torch

        image = job.image if job.image is not None else np.full((job.height, job.width, 3), 0.5, np.float32)
        rgb = torch.from_numpy(np.ascontiguousarray(image, dtype=np.float32)).permute(2, 0, 1) * 2 - 1
        if job.modality is not None:
            encoded = np.ascontiguousarray(self._spec().encode(job.modality), dtype=np.float32)
            mod = torch.from_numpy(encoded).permute(2, 0, 1)
        else:
            mod = torch.zeros_like(rgb)
        canvas = torch.cat([rgb, mod, torch.zeros_like(rgb), torch.zeros_like(mod)])[None]
        return canvas.to(self.device, self.pipe.jointnet.dtype)

    def _decode(self, latents, circular: bool, progress):
        import numpy as np

        x = latents[0].float().cpu()
        image = ((x[:3].permute(1, 2, 0) + 1) / 2).clamp(0, 1).numpy().astype(np.float32)
        modality = np.asarray(self._spec().decode(x[3:6].permute(1, 2, 0).clamp(-1, 1).numpy()), np.float32)
        return image, modality

    def _plan_vae_batch(self, images: int) -> None:
        """No autoencoder: nothing to plan."""

    def _scheduler(self, name: Optional[str], preset=None):
        from .schedulers import make_scheduler

        # IF's own scheduler (DDPM, learned variance range) unless one is named: a preset's solver
        # is chosen for latent-space SD, so ``preset`` does not change it.
        inner = make_scheduler(name or self.scheduler_name, self.pipe.scheduler.config)
        return LearnedVarianceSteps(inner, images=2)

    def _denoiser(self, prompt: str, negative: str, guidance: float, masked_inputs, region_prompts=()):
        """Both branches and both CFG halves in one forward; returns [noise rgb, mod | variance rgb, mod]."""
        import torch

        if region_prompts:
            raise UserInputError("region prompts need a Stable Diffusion JointNet for now")
        pair, c = self.pipe.jointnet, PIXEL_CHANNELS
        do_cfg = guidance > 1.0 and bool(prompt or negative)
        cond, uncond = self.pipe.encode_prompt(prompt, negative, do_cfg)
        self._rows_per_window = 2 if do_cfg else 1

        def denoise(x, t, windows, conditions=None):
            negative_text = uncond if getattr(windows, "guided", True) else None
            eps_rgb, eps_mod = pair.guided(x[:, :c], x[:, c:2 * c], t, cond[:1], negative_text, guidance)
            return torch.cat([eps_rgb[:, :c], eps_mod[:, :c], eps_rgb[:, c:], eps_mod[:, c:]], dim=1)

        return denoise
