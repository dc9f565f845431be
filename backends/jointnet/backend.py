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
# Issue 9 additions: a second checkpoint sharing the RGB branch (three modalities at once, see
# multimodal.py) and how region prompts condition windows (see worldgen.regions).
WORLD_SETTINGS = ("extra_model", "region_mode")
SETTINGS = SETTINGS + WORLD_SETTINGS
# Issue 8 additions: the sampling preset (worldgen.sampler.presets), the speed settings and the
# memory mode (worldgen.sampler.perf).
PERF_SETTINGS = ("preset", "speed", "memory")
SETTINGS = SETTINGS + PERF_SETTINGS
MEMORY_MODES = ("auto", "low", "high")
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
    from worldgen.phases import phase

    settings = dict(settings or {})
    with phase("import torch, diffusers, transformers"):  # seconds of a cold start; shown by --verbose
        import torch  # noqa: F401
        import transformers  # noqa: F401

        from . import pipeline  # noqa: F401  (diffusers)
    if settings.get("extra_model"):
        from .multimodal import MultiModalBackend

        return MultiModalBackend.from_settings(settings)
    return JointNetBackend.from_settings(settings)


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
    regions: Any = None  # list of worldgen.regions.Region: their prompts condition their parts


class JointNetBackend(Backend):
    name = "jointnet"
    region_mode = "blend"  # how region prompts condition windows (worldgen.regions.REGION_MODES)
    latent_layers = 2      # RGB + one modality, stacked on the latent's channels

    def __init__(self, pipe, *, model_dir: Path, base_dir: Path, modality: str, device, dtype,
                 scheduler: Optional[str] = None, window_batch: Optional[int] = None, preset=None,
                 speed: Optional[str] = None, memory: Optional[str] = None) -> None:
        import dataclasses

        from worldgen.phases import phase
        from worldgen.sampler import perf
        from worldgen.sampler.presets import get_preset
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
        self.preset = get_preset(preset)
        self._rows_per_window = 2  # model rows per window: 2 with classifier-free guidance
        # Memory: "low" keeps the text encoder in CPU memory between prompts, plans window and VAE
        # batches from the free memory and records no CUDA graphs (they keep their activations);
        # "auto" is "low" on GPUs under 16 GiB.
        if memory not in (None, *MEMORY_MODES):
            raise UserInputError(f"memory mode {memory!r} is not one of {', '.join(MEMORY_MODES)}")
        self.memory_name = memory
        self.low_memory = memory == "low" or (memory in (None, "auto") and perf.low_memory(device))
        if self.low_memory and device.type == "cuda":
            pipe.text_encoder.to("cpu")
        # Speed (perf.SpeedSettings.for_device): on CUDA fused QKV, cuDNN autotuning and attention,
        # CUDA graphs; "eager" without graphs, "compile" with torch.compile, "off" plain PyTorch.
        self.speed_name = speed if isinstance(speed, str) else None
        self.speed = perf.SpeedSettings.named(speed, device)
        if self.low_memory and self.speed.cuda_graphs:
            self.speed = dataclasses.replace(self.speed, cuda_graphs=False)
        with phase("speed set-up"):
            perf.speed_up(pipe.jointnet, self.speed)
        # The VAE stays eager and in its NCHW layout: its share of a panorama is small, and
        # benchmarks/NOTES.md has the layouts measured against each other.

    # Construction -----------------------------------------------------------------------------
    @classmethod
    def from_settings(cls, settings: dict) -> "JointNetBackend":
        import torch

        from worldgen.sampler.presets import resolve_sampling

        from .loading import checkpoint_modality
        from .pipeline import load_jointnet
        from .schedulers import make_scheduler
        from .store import converted_weights

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
        sampling = resolve_sampling(settings.get("preset"), scheduler=scheduler)  # likewise a bad preset
        _check_perf_settings(settings, device)  # and a bad speed or memory mode
        # The store's safetensors copy in this dtype when `worldgen models add` made one (else the original).
        weights_dir = converted_weights(model_dir, str(dtype).replace("torch.", ""))
        pipe = load_jointnet(model_dir, base_dir, device=device, dtype=dtype, scheduler=scheduler,
                             weights_dir=weights_dir)
        if dtype == torch.float16 and getattr(pipe.vae.config, "force_upcast", False):
            pipe.vae.to(torch.float32)  # the config says this VAE overflows in half precision
        backend = cls(pipe, model_dir=model_dir, base_dir=base_dir, modality=checkpoint_modality(model_dir),
                      device=device, dtype=dtype, scheduler=scheduler,
                      window_batch=int(window_batch) if window_batch is not None else None,
                      preset=sampling.preset, speed=settings.get("speed"), memory=settings.get("memory"))
        backend.region_mode = _region_mode(settings.get("region_mode"))
        return backend

    def settings(self) -> dict:
        # Only keys ``from_settings`` takes, so a scene's record can load the same backend again.
        return {"model": str(self.model_dir), "base": str(self.base_dir),
                "scheduler": self.scheduler_name, "dtype": str(self.dtype).replace("torch.", ""),
                "window_batch": self.window_batch,
                **({"region_mode": self.region_mode} if self.region_mode != "blend" else {}),
                **({"preset": self.preset.name} if self.preset.name != "published" else {}),
                **{k: v for k, v in (("speed", self.speed_name), ("memory", self.memory_name)) if v is not None}}

    @property
    def has_masked_input(self) -> bool:
        return bool(self.pipe.jointnet.has_masked_latent_input)

    # Tasks ------------------------------------------------------------------------------------
    def generate(self, request: GenerateRequest, progress=None):
        from worldgen.geometry import default_geometry
        from worldgen.regions import normalize_regions

        self._check_modality(request.modality)
        job = _Job(request.width, request.height, request.span_deg, geometry=default_geometry(),
                   regions=normalize_regions(request.regions))
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
        from worldgen.phases import phase
        from worldgen.projection import CylindricalProjection
        from worldgen.sampler import perf
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
                                  latent_keep(job.keep_modality, self.factor).expand(1, c * (self.latent_layers - 1),
                                                                                     h, w)], dim=1)
            masked_inputs = None
            if self.has_masked_input:  # such a model always takes masks; "blend" gives it nothing known
                masked_inputs = self._masked_inputs(known_latents if masked else None, keep, (h, w))
            with phase("encode text"):
                denoise = self._denoiser(prompt, options.negative_prompt, options.guidance, masked_inputs,
                                         region_prompts=[r.prompt for r in job.regions or ()])
            if job.regions:
                from worldgen.regions import latent_condition_weights, regional_denoiser

                weights = latent_condition_weights(job.regions, w, h, job.span_deg, device=self.device)
                denoise = regional_denoiser(denoise, weights, self.region_mode)
            preset = self._preset(options)
            stride = preset.stride_cells(self.window)
            recipe = TilingRecipe(window=(self.window, self.window), stride=(stride, stride), circular=circular,
                                  global_fraction=preset.global_fraction if job.whole_window else 0.0,
                                  guidance_fraction=preset.guidance_fraction)
            planned = self.window_batch if self.window_batch is not None else self._plan_window_batch(denoise)
            self.planned_window_batch = planned  # what this task used (for reports and benchmarks)
            sampler = TiledSampler(recipe, window_batch=planned)
            with perf.kernels(self.speed), phase("sample"):
                latents = sampler.sample(
                    denoise, self._scheduler(options.scheduler, preset), shape=(1, c * self.latent_layers, h, w),
                    steps=options.steps,
                    seed=options.seed, init=known_latents, strength=job.strength,
                    known=Known(known_latents, keep) if keep is not None and bool(keep.any()) else None,
                    device=self.device, dtype=self.pipe.jointnet.dtype, progress=progress)
                if sampler.window_batch != planned:
                    self.window_batch = sampler.window_batch  # it ran out of memory: keep what fitted
            with perf.kernels(self.speed), phase("decode"):
                image, modality = self._decode(latents, circular, progress)

        if job.image is not None:
            image = np.where(job.keep_image[..., None], job.image, image).astype(np.float32)
        if job.modality is not None:
            modality = np.where(job.keep_modality[..., None], job.modality, modality).astype(np.float32)
        return Snapshot(image=image, modalities=self._split_modalities(modality), projection=projection,
                        geometry=job.geometry, prompt=prompt)

    def _split_modalities(self, modality) -> dict:
        """The decoded modality canvas as the snapshot's named layers (one here; see multimodal.py)."""
        return {self.modality: modality}

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

    def _denoiser(self, prompt: str, negative: str, guidance: float, masked_inputs, region_prompts=()):
        """The sampler's model callable: both branches and both halves of classifier-free guidance
        in ONE batched forward for all windows of a call; masks are cropped to the same windows.

        With ``region_prompts`` the callable also takes ``conditions``, an (N,) index per window row
        into [prompt, *region_prompts] (``worldgen.regions.regional_denoiser`` supplies it)."""
        import torch

        from worldgen.numerics import float32_modules

        from worldgen.sampler.perf import offloaded

        pair, c = self.pipe.jointnet, self.channels
        do_cfg = guidance > 1.0 and bool(prompt or negative)
        with offloaded(self.pipe.text_encoder, self.device, enabled=self.low_memory):
            cond, uncond = self.pipe.encode_prompt(prompt, negative, do_cfg)
            if region_prompts:
                cond = torch.cat([cond, self.pipe.encode_prompt(list(region_prompts), None, False)[0]])
        self._rows_per_window = 2 if do_cfg else 1

        def denoise(x, t, windows, conditions=None):
            text = cond[:1] if conditions is None else cond[conditions.to(cond.device)]
            extra = tuple(windows.crop(m) for m in masked_inputs) if masked_inputs is not None else ()
            # Past the recipe's guidance fraction the sampler asks for the conditional half alone.
            negative_text = uncond if getattr(windows, "guided", True) else None
            if x.dtype == pair.dtype:
                eps_rgb, eps_mod = pair.guided(x[:, :c], x[:, c:], t, text, negative_text, guidance, *extra)
            else:  # the sampler redoes a half-precision step that overflowed: run it in x's dtype
                with float32_modules(pair):
                    eps_rgb, eps_mod = pair.guided(x[:, :c], x[:, c:], t, text.to(x.dtype),
                                                   None if negative_text is None else negative_text.to(x.dtype),
                                                   guidance, *(e.to(x.dtype) for e in extra))
            return torch.cat([eps_rgb[:, :c], eps_mod[:, :c * (self.latent_layers - 1)]], dim=1)

        return denoise

    def _preset(self, options):
        """The request's preset when it names one (``GenerateRequest.preset``), else the loaded one."""
        from worldgen.sampler.presets import get_preset

        named = getattr(options, "preset", None)
        return get_preset(named) if named else self.preset

    def _scheduler(self, name: Optional[str], preset=None):
        from .schedulers import make_scheduler

        # The preset's solver unless one was named: the published recipe is DDIM, as the original
        # forces it, even though the SD 2.1-base folder names PNDMScheduler.
        preset = preset or self.preset
        return make_scheduler(name or self.scheduler_name or preset.scheduler, self.pipe.scheduler.config)

    def _plan_window_batch(self, denoise) -> Optional[int]:
        """Windows per model call that fit in the GPU memory free now (None off CUDA: all of them)."""
        from worldgen.sampler.perf import window_batch_for

        return window_batch_for(self.pipe.jointnet, (self.window, self.window),
                                self._rows_per_window, self.device)

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
        from worldgen.sampler.perf import vae_batch_for

        if self.device.type == "cuda":
            self.vae.batch = vae_batch_for(self.pipe.vae, self.window * self.factor, images, self.device)

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


def _region_mode(name: Optional[str]) -> str:
    from worldgen.regions import REGION_MODES

    if name is None:
        return "blend"
    if name not in REGION_MODES:
        raise UserInputError(f"region mode {name!r} is not one of {', '.join(REGION_MODES)}")
    return name


def _check_perf_settings(settings: dict, device) -> None:
    """Fail fast on a bad speed or memory mode (before loading gigabytes of weights)."""
    from worldgen.sampler.perf import SpeedSettings

    SpeedSettings.named(settings.get("speed"), device)
    memory = settings.get("memory")
    if memory not in (None, *MEMORY_MODES):
        raise UserInputError(f"memory mode {memory!r} is not one of {', '.join(MEMORY_MODES)}")


def compute_dtype_name(device: Optional[str] = None) -> str:
    """The dtype name `worldgen pano` computes in on this machine's default (or the named) device."""
    return str(_dtype(None, _device(device))).replace("torch.", "")


def _dtype(name: Optional[str], device):
    import torch

    if name is None:
        if device.type != "cuda":
            return torch.float32
        # bfloat16 where the GPU has it (float32's range: no overflow, no per-step checks), else float16.
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
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
