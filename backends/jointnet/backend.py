"""JointNet as a worldgen backend: every panorama task on the tiled sampler.

All tasks are one computation with different known content. The RGB and modality latents are
stacked on channels (one latent, one scheduler); what is known (a kept layer, a photo, the outside
of an edit mask) is encoded, re-noised and blended in every step, and, for inpainting checkpoints,
also handed to the model as mask + masked latent. Known pixels are copied back into the result,
so kept content is untouched bit for bit.

This module stays light at import time (the registry imports it to list plugins); torch,
diffusers and the model load inside ``load``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from worldgen.backend import Backend, GenerateRequest
from worldgen.errors import ModelError, UserInputError
from worldgen.specs import BackendSpec

SETTINGS = ("model", "base", "device", "dtype", "scheduler", "window_batch")
DTYPES = ("float32", "float16", "bfloat16")


# Model resolution ------------------------------------------------------------------------------------

def resolve_model(name: Optional[str], base: Optional[str] = None) -> tuple[Path, Path]:
    """(checkpoint folder, base folder) for --model (a folder or a registered name; None: the
    registered default) and --base (None: the registered or bundled base)."""
    from .store import default_model, resolve_model as store_resolve

    if not name:
        entry = default_model()
        if entry is None:
            raise ModelError("no JointNet model given; pass --model CHECKPOINT_DIR or register one with "
                             "`worldgen models add FILE.zip --name NAME --default`")
        name = entry.name
    return store_resolve(name, base)


def available() -> bool:
    """True when a default model is registered (so `worldgen pano` can use JointNet unasked)."""
    try:
        resolve_model(None)
    except Exception:  # no default, or its files are gone: not available, whatever the reason
        return False
    return True


def load(settings: dict) -> "JointNetBackend":
    return JointNetBackend.from_settings(dict(settings or {}))


# The backend -----------------------------------------------------------------------------------------

@dataclass
class _Job:
    """One tiled run: a canvas, its known content, and how to start.

    ``image``/``modality`` are the known layers on the canvas (None: nothing known); ``keep_*`` are
    (H, W) bool masks of pixels that are known and must come out unchanged; ``strength`` < 1 starts
    from the encoded layers (SDEdit) instead of noise."""

    width: int
    height: int
    span_deg: float
    image: Any = None
    modality: Any = None
    keep_image: Any = None
    keep_modality: Any = None
    strength: float = 1.0
    whole_window: bool = True
    geometry: dict = field(default_factory=dict)


class JointNetBackend(Backend):
    name = "jointnet"

    def __init__(self, pipe, *, model_dir: Path, base_dir: Path, modality: str, device, dtype,
                 scheduler: Optional[str] = None, window_batch: Optional[int] = None) -> None:
        from worldgen.sampler.vae_tiles import TiledVAE

        self.pipe = pipe
        self.model_dir = model_dir
        self.base_dir = base_dir
        self.modality = modality
        self.device = device
        self.dtype = dtype
        self.scheduler_name = scheduler
        self.window_batch = window_batch
        self.window = int(pipe.jointnet.unet.config.sample_size)  # latent cells: 64 for SD 2.1-base
        self.factor = pipe.vae_scale_factor                       # pixels per latent cell, from the VAE
        self.channels = pipe.latent_channels
        self.vae = TiledVAE(pipe.vae, tile=self.window)

    # Construction -----------------------------------------------------------------------------
    @classmethod
    def from_settings(cls, settings: dict) -> "JointNetBackend":
        import torch

        from .loading import checkpoint_modality
        from .pipeline import load_jointnet
        from .schedulers import make_scheduler

        unknown = set(settings) - set(SETTINGS)
        if unknown:
            raise UserInputError(f"unknown jointnet settings {sorted(unknown)}; known: {', '.join(SETTINGS)}")
        model_dir, base_dir = resolve_model(settings.get("model"), settings.get("base"))
        device = _device(settings.get("device"))
        dtype = _dtype(settings.get("dtype"), device)
        window_batch = settings.get("window_batch")
        if window_batch is not None and int(window_batch) < 1:
            raise UserInputError(f"window batch {window_batch} must be at least 1")
        scheduler = settings.get("scheduler")
        make_scheduler(scheduler, {"_class_name": "DDIMScheduler"})  # a bad name fails here, before the slow load
        pipe = load_jointnet(model_dir, base_dir, device=device, dtype=dtype, scheduler=scheduler)
        if dtype == torch.float16 and getattr(pipe.vae.config, "force_upcast", False):
            pipe.vae.to(torch.float32)  # the config says this VAE overflows in half precision
        return cls(pipe, model_dir=model_dir, base_dir=base_dir, modality=checkpoint_modality(model_dir),
                   device=device, dtype=dtype, scheduler=scheduler,
                   window_batch=int(window_batch) if window_batch is not None else None)

    def settings(self) -> dict:
        # Only keys ``from_settings`` takes, so a scene's record can load the same backend again.
        return {"model": str(self.model_dir), "base": str(self.base_dir),
                "scheduler": self.scheduler_name, "dtype": str(self.dtype).replace("torch.", ""),
                "window_batch": self.window_batch}

    @property
    def has_masked_input(self) -> bool:
        return bool(self.pipe.jointnet.has_masked_latent_input)

    # Tasks ------------------------------------------------------------------------------------
    def generate(self, request: GenerateRequest, progress=None):
        from worldgen.geometry import default_geometry

        self._check_modality(request.modality)
        if request.regions:
            raise UserInputError("the jointnet backend does not take regional prompts; leave regions empty")
        job = _Job(request.width, request.height, request.span_deg, geometry=default_geometry())
        return self._run(job, request, prompt=request.prompt, progress=progress)

    def refine(self, request, snapshot, progress=None):
        import numpy as np

        from worldgen.sampler.canvas import resize_lanczos, resize_nearest

        modality = self._modality_of(snapshot, "refine")
        width, height = request.target_size(*snapshot.size)
        wrap = snapshot.projection.full_circle
        image = np.clip(resize_lanczos(snapshot.image, width, height, wrap), 0.0, 1.0)
        if request.keep == "image" and (width, height) == snapshot.size:
            image = snapshot.image  # bit for bit, not through a no-op resize
        modality = resize_nearest(modality, width, height)
        everywhere, nowhere = np.ones((height, width), bool), np.zeros((height, width), bool)
        job = _Job(width, height, snapshot.projection.span_deg, image=image, modality=modality,
                   keep_image=everywhere if request.keep == "image" else nowhere,
                   keep_modality=everywhere if request.keep == "modality" else nowhere,
                   strength=request.strength, whole_window=False, geometry=dict(snapshot.geometry))
        return self._run(job, request, prompt=request.prompt or snapshot.prompt, progress=progress)

    def outpaint(self, request, snapshot, progress=None):
        import numpy as np

        from worldgen.geometry import default_geometry
        from worldgen.sampler.canvas import place, region

        w, h = snapshot.size
        width, height, x, y, span = request.canvas(w, h, snapshot.projection.span_deg)
        known = region(width, height, x, y, w, h)
        has_modality = self.modality in snapshot.modalities
        job = _Job(width, height, span, image=place(snapshot.image, width, height, x, y),
                   modality=place(snapshot.modalities[self.modality], width, height, x, y) if has_modality else None,
                   keep_image=known, keep_modality=known if has_modality else np.zeros_like(known),
                   geometry=dict(snapshot.geometry) or default_geometry())
        return self._run(job, request, prompt=request.prompt or snapshot.prompt, progress=progress)

    def estimate(self, request, progress=None):
        import numpy as np

        from worldgen.geometry import default_geometry

        self._check_modality(request.modality or self.modality)
        h, w = request.image.shape[:2]
        job = _Job(w, h, request.span_deg, image=request.image.astype(np.float32),
                   keep_image=np.ones((h, w), bool), keep_modality=np.zeros((h, w), bool),
                   geometry=default_geometry())
        return self._run(job, request, prompt=request.prompt, progress=progress)

    def paint(self, request, snapshot, progress=None):
        import numpy as np

        modality = self._modality_of(snapshot, "paint")
        w, h = snapshot.size
        job = _Job(w, h, snapshot.projection.span_deg, modality=modality,
                   keep_image=np.zeros((h, w), bool), keep_modality=np.ones((h, w), bool),
                   geometry=dict(snapshot.geometry))
        return self._run(job, request, prompt=request.prompt or snapshot.prompt, progress=progress)

    def edit(self, request, snapshot, progress=None):
        import numpy as np

        modality = self._modality_of(snapshot, "edit")
        w, h = snapshot.size
        request.check_fits(w, h)
        outside = ~request.mask
        everywhere = np.ones_like(outside)
        job = _Job(w, h, snapshot.projection.span_deg, image=snapshot.image, modality=modality,
                   keep_image=outside if request.layers in ("both", "image") else everywhere,
                   keep_modality=outside if request.layers in ("both", "modality") else everywhere,
                   strength=request.strength, geometry=dict(snapshot.geometry))
        return self._run(job, request, prompt=request.prompt or snapshot.prompt, progress=progress)

    # The one computation ----------------------------------------------------------------------
    def _run(self, job: _Job, options, prompt: str, progress):
        import numpy as np
        import torch

        from worldgen.layers import Snapshot
        from worldgen.projection import CylindricalProjection
        from worldgen.sampler.canvas import latent_keep
        from worldgen.sampler.tiled import Known, TiledSampler, TilingRecipe

        if job.width % self.factor or job.height % self.factor:
            raise UserInputError(f"size {job.width}x{job.height} must be a multiple of {self.factor} for this model")
        projection = CylindricalProjection(job.width, job.height, job.span_deg)
        circular = projection.full_circle
        masked = self._use_masked_input(getattr(options, "method", "auto"))  # GenerateRequest has none
        c = self.channels
        h, w = job.height // self.factor, job.width // self.factor

        with torch.no_grad():
            known_latents = keep = None
            if job.image is not None or job.modality is not None:
                known_latents = self._encode(job, circular, progress)
                keep = torch.cat([latent_keep(job.keep_image, self.factor).expand(1, c, h, w),
                                  latent_keep(job.keep_modality, self.factor).expand(1, c, h, w)], dim=1)
            masked_inputs = None
            if self.has_masked_input:  # such a model always takes masks; "blend" gives it nothing known
                masked_inputs = self._masked_inputs(known_latents if masked else None, keep, (h, w))
            denoise = self._denoiser(prompt, options.negative_prompt, options.guidance, masked_inputs)
            recipe = TilingRecipe(window=(self.window, self.window), circular=circular,
                                  global_fraction=0.4 if job.whole_window else 0.0)
            sampler = TiledSampler(recipe, window_batch=self.window_batch)
            latents = sampler.sample(
                denoise, self._scheduler(options.scheduler), shape=(1, 2 * c, h, w), steps=options.steps,
                seed=options.seed, init=known_latents, strength=job.strength,
                known=Known(known_latents, keep) if keep is not None and bool(keep.any()) else None,
                device=self.device, dtype=self.pipe.jointnet.dtype, progress=progress)
            self.window_batch = sampler.window_batch  # keep what fitted in memory for the next task
            image, modality = self._decode(latents, circular, progress)

        if job.image is not None:
            image = np.where(job.keep_image[..., None], job.image, image).astype(np.float32)
        if job.modality is not None:
            modality = np.where(job.keep_modality[..., None], job.modality, modality).astype(np.float32)
        return Snapshot(image=image, modalities={self.modality: modality}, projection=projection,
                        geometry=job.geometry, prompt=prompt)

    # Pieces -----------------------------------------------------------------------------------
    def _use_masked_input(self, method: str) -> bool:
        if method == "masked" and not self.has_masked_input:
            raise ModelError(f"model {self.model_dir.name} has no masked-latent input; use an inpainting "
                             f"checkpoint (e.g. rgbd_inpaint_sd21b) or --method blend")
        return method in ("masked", "auto") and self.has_masked_input

    def _masked_inputs(self, known_latents, keep, size):
        """Per-branch (mask, masked latent) canvases for an inpainting checkpoint; mask 1 = generate.
        Without known content: mask 1 everywhere and zero latents (plain generation)."""
        import torch

        c, (h, w) = self.channels, size
        dtype = self.pipe.jointnet.dtype
        if known_latents is None:
            ones = torch.ones(1, 1, h, w, device=self.device, dtype=dtype)
            zeros = torch.zeros(1, c, h, w, device=self.device, dtype=dtype)
            return ones, zeros, ones, zeros
        keep = keep.to(self.device, dtype)
        lat = known_latents.to(self.device, dtype)
        mask_rgb, mask_mod = 1 - keep[:, :1], 1 - keep[:, c:c + 1]
        return mask_rgb, lat[:, :c] * keep[:, :1], mask_mod, lat[:, c:] * keep[:, c:c + 1]

    def _denoiser(self, prompt: str, negative: str, guidance: float, masked_inputs):
        """The sampler's model callable: both branches and both halves of classifier-free guidance
        in ONE batched forward for all windows of a call; masks are cropped to the same windows."""
        import torch

        from worldgen.numerics import float32_modules

        pair, c = self.pipe.jointnet, self.channels
        do_cfg = guidance > 1.0 and bool(prompt or negative)
        cond, uncond = self.pipe.encode_prompt(prompt, negative, do_cfg)

        def denoise(x, t, windows):
            extra = tuple(windows.crop(m) for m in masked_inputs) if masked_inputs is not None else ()
            if x.dtype == pair.dtype:
                eps_rgb, eps_mod = pair.guided(x[:, :c], x[:, c:], t, cond, uncond, guidance, *extra)
            else:  # the sampler redoes a half-precision step that overflowed: run it in x's dtype
                with float32_modules(pair):
                    eps_rgb, eps_mod = pair.guided(x[:, :c], x[:, c:], t, cond.to(x.dtype),
                                                   None if uncond is None else uncond.to(x.dtype), guidance,
                                                   *(e.to(x.dtype) for e in extra))
            return torch.cat([eps_rgb[:, :c], eps_mod[:, :c]], dim=1)

        return denoise

    def _scheduler(self, name: Optional[str]):
        from .schedulers import make_scheduler

        return make_scheduler(name or self.scheduler_name, self.pipe.scheduler.config)

    def _encode(self, job: _Job, circular: bool, progress):
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
        latents = self.vae.encode(torch.stack([rgb, mod]), circular, progress)
        return torch.cat([latents[0:1], latents[1:2]], dim=1).to(self.device, self.pipe.jointnet.dtype)

    def _decode(self, latents, circular: bool, progress):
        import numpy as np
        import torch

        c = self.channels
        both = torch.cat([latents[:, :c], latents[:, c:]], dim=0)  # one image per layer
        pixels = self.vae.decode(both, circular, progress).float().cpu()
        image = ((pixels[0].permute(1, 2, 0) + 1) / 2).clamp(0, 1).numpy().astype(np.float32)
        modality = np.asarray(self._spec().decode(pixels[1].permute(1, 2, 0).clamp(-1, 1).numpy()), np.float32)
        return image, modality

    def _spec(self):
        from worldgen.registry import get_registry

        return get_registry().modality(self.modality)

    def _check_modality(self, name: Optional[str]) -> None:
        if name and name != self.modality:
            raise UserInputError(f"model {self.model_dir.name} generates {self.modality!r}, not {name!r}; pass "
                                 f"--modality {self.modality} or a model trained for {name}")

    def _modality_of(self, snapshot, task: str):
        if self.modality not in snapshot.modalities:
            have = ", ".join(snapshot.modalities) or "none"
            raise UserInputError(f"the scene has no {self.modality!r} layer (it has: {have}), which {task} needs; "
                                 f"add one with `worldgen depth` or use a {', '.join(snapshot.modalities) or 'matching'} model")
        return snapshot.modalities[self.modality]


def _device(name: Optional[str]):
    import torch

    if name:
        try:
            return torch.device(name)
        except RuntimeError:
            raise UserInputError(f"device {name!r} is not a torch device; use cuda, cuda:1, mps or cpu") from None
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def _dtype(name: Optional[str], device):
    import torch

    if name is None:
        return torch.float16 if device.type == "cuda" else torch.float32
    if name not in DTYPES:
        raise UserInputError(f"dtype {name!r} is not one of {', '.join(DTYPES)}")
    return getattr(torch, name)


SPEC = BackendSpec(
    name="jointnet",
    description="JointNet (RGB + depth/normal diffusion, SD 2.1-base) with the tiled panorama sampler",
    load=load,
    tasks=("generate", "refine", "outpaint", "estimate", "paint", "edit"),
    available=available,
    settings=SETTINGS,
)
