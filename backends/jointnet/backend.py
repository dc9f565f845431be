"""JointNet as a worldgen backend: every panorama task on the tiled sampler.

All tasks are one computation with different known content. The RGB and modality latents are
stacked on channels (one latent, one scheduler); what is known (a kept layer, a photo, the outside
of an edit mask) is encoded, re-noised and blended in every step, and, for inpainting checkpoints,
also handed to the model as mask + masked latent. Known pixels are copied back into the result,
so kept content is untouched bit for bit.

The plugin entry (``SPEC``, ``load``) is spec.py and the settings checks are settings.py; torch
and diffusers are imported inside the methods that need them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

from worldgen.backend import Backend, GenerateRequest
from worldgen.errors import ModelError, UserInputError

from .job import TiledJob
from .latents import LatentLayers
from .settings import (MEMORY_MODES, SETTINGS, check_perf_settings, check_region_mode, device_for, dtype_for,
                       resolve_model)

# The backend -----------------------------------------------------------------------------------------

class JointNetBackend(LatentLayers, Backend):
    name = "jointnet"
    region_mode = "blend"  # how region prompts condition windows (worldgen.geometry.regions.REGION_MODES)
    latent_layers = 2      # RGB + one modality, stacked on the latent's channels

    def __init__(self, pipe, *, model_dir: Path, base_dir: Path, modality: str, device, dtype,
                 scheduler: Optional[str] = None, window_batch: Optional[int] = None, preset=None,
                 speed: Optional[str] = None, memory: Optional[str] = None, resident: bool = True) -> None:
        import dataclasses

        from worldgen.phases import phase
        from worldgen.sampler import memory as memory_plan
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
        self.low_memory = memory == "low" or (memory in (None, "auto") and memory_plan.low_memory(device))
        if self.low_memory and device.type == "cuda":
            pipe.text_encoder.to("cpu")
        # Speed (perf.SpeedSettings.for_device): on CUDA fused QKV, cuDNN autotuning and attention,
        # CUDA graphs; "eager" without graphs, "compile" with torch.compile, "off" plain PyTorch.
        # A one-shot process (``resident`` False) skips autotuning and graphs (issue 24).
        self.speed_name = speed if isinstance(speed, str) else None
        self.resident = resident
        self.speed = perf.SpeedSettings.named(speed, device, resident=resident)
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

        from .store import checkpoint_modality
        from .pipeline import load_jointnet
        from .schedulers import make_scheduler
        from .store import converted_weights

        unknown = set(settings) - set(SETTINGS)
        if unknown:
            raise UserInputError(f"unknown jointnet settings {sorted(unknown)}; known: {', '.join(SETTINGS)}")
        model_dir, base_dir = resolve_model(settings.get("model"), settings.get("base"))
        device = device_for(settings.get("device"))
        dtype = dtype_for(settings.get("dtype"), device)
        window_batch = settings.get("window_batch")
        if window_batch is not None and int(window_batch) < 1:
            raise UserInputError(f"window batch {window_batch} must be at least 1")
        scheduler = settings.get("scheduler")
        make_scheduler(scheduler, {"_class_name": "DDIMScheduler"})  # a bad name fails here, before the slow load
        sampling = resolve_sampling(settings.get("preset"), scheduler=scheduler)  # likewise a bad preset
        check_perf_settings(settings, device)  # and a bad speed or memory mode
        # The store's safetensors copy in this dtype when `worldgen models add` made one (else the original).
        weights_dir = converted_weights(model_dir, str(dtype).replace("torch.", ""))
        pipe = load_jointnet(model_dir, base_dir, device=device, dtype=dtype, scheduler=scheduler,
                             weights_dir=weights_dir, text_hint=settings.get("text_hint"))
        if dtype == torch.float16 and getattr(pipe.vae.config, "force_upcast", False):
            pipe.vae.to(torch.float32)  # the config says this VAE overflows in half precision
        backend = cls(pipe, model_dir=model_dir, base_dir=base_dir, modality=checkpoint_modality(model_dir),
                      device=device, dtype=dtype, scheduler=scheduler,
                      window_batch=int(window_batch) if window_batch is not None else None,
                      preset=sampling.preset, speed=settings.get("speed"), memory=settings.get("memory"),
                      resident=settings.get("resident", True))
        backend.region_mode = check_region_mode(settings.get("region_mode"))
        return backend

    def settings(self) -> dict:
        # Only keys ``from_settings`` takes, so a scene's record can load the same backend again.
        from .registered import registered

        entry = registered(self.model_dir)  # a registered model is recorded by name, not by this machine's path
        same_base = entry is not None and entry.base_dir is not None and Path(entry.base_dir) == Path(self.base_dir)
        return {"model": entry.name if entry is not None else str(self.model_dir),
                "base": None if same_base else str(self.base_dir), "device": str(self.device),
                "scheduler": self.scheduler_name, "dtype": str(self.dtype).replace("torch.", ""),
                "window_batch": self.window_batch,
                **({"region_mode": self.region_mode} if self.region_mode != "blend" else {}),
                **({"preset": self.preset.name} if self.preset.name != "published" else {}),
                **{k: v for k, v in (("speed", self.speed_name), ("memory", self.memory_name)) if v is not None}}

    def settings_for(self, request) -> dict:
        # The preset that ran (the request's own, else the loaded one), recorded as settings() does.
        ran = self._preset(request).name
        own = {k: v for k, v in self.settings().items() if k != "preset"}
        return {**own, "preset": ran} if ran != "published" else own

    @property
    def warm_up_pays(self) -> bool:
        """Whether a first world costs more than later ones here (cuDNN autotuning, CUDA-graph capture,
        compile): a resident process then makes one world before its first request (world/warmup.py)."""
        return self.speed.cudnn_benchmark or self.speed.cuda_graphs or self.speed.compile

    @property
    def has_masked_input(self) -> bool:
        return bool(self.pipe.jointnet.has_masked_latent_input)

    # Tasks ------------------------------------------------------------------------------------
    def generate(self, request: GenerateRequest, progress=None):
        from worldgen.geometry.world import default_geometry
        from worldgen.geometry.regions import normalize_regions

        self._check_modality(request.modality)
        job = TiledJob(request.width, request.height, request.span_deg, geometry=default_geometry(),
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
        job = TiledJob(width, height, snapshot.projection.span_deg, image=image, modality=modality,
                   keep_image=everywhere if request.keep == "image" else nowhere,
                   keep_modality=everywhere if request.keep == "modality" else nowhere,
                   strength=request.strength, whole_window=False, geometry=dict(snapshot.geometry))
        return self._run(job, request, prompt=request.prompt or snapshot.prompt, progress=progress)

    def outpaint(self, request, snapshot, progress=None):
        import numpy as np

        from worldgen.geometry.world import default_geometry
        from worldgen.sampler.canvas import place, region

        w, h = snapshot.size
        width, height, x, y, span = request.canvas(w, h, snapshot.projection.span_deg)
        known = region(width, height, x, y, w, h)
        has_modality = self.modality in snapshot.modalities
        job = TiledJob(width, height, span, image=place(snapshot.image, width, height, x, y),
                   modality=place(snapshot.modalities[self.modality], width, height, x, y) if has_modality else None,
                   keep_image=known, keep_modality=known if has_modality else np.zeros_like(known),
                   geometry=dict(snapshot.geometry) or default_geometry())
        return self._run(job, request, prompt=request.prompt or snapshot.prompt, progress=progress)

    def estimate(self, request, progress=None):
        import numpy as np

        from worldgen.geometry.world import default_geometry

        self._check_modality(request.modality or self.modality)
        h, w = request.image.shape[:2]
        job = TiledJob(w, h, request.span_deg, image=request.image.astype(np.float32),
                   keep_image=np.ones((h, w), bool), keep_modality=np.zeros((h, w), bool),
                   geometry=default_geometry())
        return self._run(job, request, prompt=request.prompt, progress=progress)

    def paint(self, request, snapshot, progress=None):
        import numpy as np

        modality = self._modality_of(snapshot, "paint")
        w, h = snapshot.size
        job = TiledJob(w, h, snapshot.projection.span_deg, modality=modality,
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
        job = TiledJob(w, h, snapshot.projection.span_deg, image=snapshot.image, modality=modality,
                   keep_image=outside if request.layers in ("both", "image") else everywhere,
                   keep_modality=outside if request.layers in ("both", "modality") else everywhere,
                   strength=request.strength, geometry=dict(snapshot.geometry))
        return self._run(job, request, prompt=request.prompt or snapshot.prompt, progress=progress)

    # The one computation ----------------------------------------------------------------------
    def _run(self, job: TiledJob, options, prompt: str, progress):
        import numpy as np
        import torch

        from worldgen.scene.snapshot import Snapshot
        from worldgen.phases import phase
        from worldgen.geometry.projection import CylindricalProjection
        from worldgen.sampler import perf
        from worldgen.sampler.tiled import Known, TiledSampler, TilingRecipe

        if job.width % self.factor or job.height % self.factor:
            raise UserInputError(f"size {job.width}x{job.height} must be a multiple of {self.factor} for this model")
        projection = CylindricalProjection(job.width, job.height, job.span_deg)
        circular = projection.full_circle
        masked = self._use_masked_input(getattr(options, "method", "auto"))  # GenerateRequest has none
        c = self.channels
        h, w = job.height // self.factor, job.width // self.factor

        with torch.no_grad():
            known_latents, keep = self._known(job, circular, progress)
            masked_inputs = None
            if self.has_masked_input:  # such a model always takes masks; "blend" gives it nothing known
                masked_inputs = self._masked_inputs(known_latents if masked else None, keep, (h, w))
            with phase("encode text"):
                denoise = self._denoiser(prompt, options.negative_prompt, options.guidance, masked_inputs,
                                         region_prompts=[r.prompt for r in job.regions or ()])
            if job.regions:
                from worldgen.geometry.regions import latent_condition_weights, regional_denoiser

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
            scheduler = self.checked_scheduler(options.steps, options.scheduler, preset)
            with perf.kernels(self.speed), phase("sample"):
                latents = sampler.sample(
                    denoise, scheduler, shape=(1, c * self.latent_layers, h, w),
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
        into [prompt, *region_prompts] (``worldgen.geometry.regions.regional_denoiser`` supplies it)."""
        import torch

        from worldgen.sampler.memory import offloaded

        from .pair import guided_in_dtype

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
            eps_rgb, eps_mod = guided_in_dtype(pair, x, t, text, negative_text, guidance, extra)
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

    def checked_scheduler(self, steps: int, name: Optional[str] = None, preset=None, label: str = "--steps"):
        """The scheduler a request runs, refused with the most steps it can run when ``steps`` is more
        (recipes call this for every pass before the first one starts)."""
        from .schedulers import check_steps

        scheduler = self._scheduler(name, preset)
        check_steps(scheduler, int(steps), label)
        return scheduler

    def _plan_window_batch(self, denoise) -> Optional[int]:
        """Windows per model call that fit in the GPU memory free now (None off CUDA: all of them)."""
        from worldgen.sampler.memory import window_batch_for

        return window_batch_for(self.pipe.jointnet, (self.window, self.window),
                                self._rows_per_window, self.device)

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
