"""``JointNetPanoramaPipeline``: the 360-degree RGB + modality panorama as a diffusers ``DiffusionPipeline``.

The components are the ones a diffusers user knows: ``vae``, ``text_encoder``, ``tokenizer``,
``scheduler``, and the two JointNet branches ``unet`` (RGB) and ``jointnet`` (modality), named as the
official checkpoint's folders. ``save_pretrained(dir)`` therefore writes a ``model_index.json`` beside
``unet/`` and ``jointnet/`` folders that are themselves a JointNet checkpoint in the official layout.

Sampling is worldgen's tiled sampler (``worldgen.sampler.tiled``), not a second loop: windows as tall
as the latent with circular wrap, the whole panorama as one more window early on, a fresh random
offset every step, and the tiled, wrap-aware VAE decode; ``pipe.scheduler`` is whatever the user
assigned. With the same seed, recipe and scheduler the result equals worldgen's backend output.

Loading through ``DiffusionPipeline.from_pretrained``: diffusers finds a pipeline class by looking its
``_class_name`` up as an attribute of the ``diffusers`` module, and finds a component class outside
diffusers/transformers only in a module the caller has already imported (it never imports a module
because a file names it). Importing this module therefore adds the class to the ``diffusers``
namespace (``register_with_diffusers``); nothing runs because a downloaded file asks for it, and
without the import diffusers stops with "module diffusers has no attribute JointNetPanoramaPipeline".
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Optional, Union

import torch

from diffusers import DiffusionPipeline
from diffusers.utils.torch_utils import randn_tensor

from worldgen.errors import ModelError, UserInputError
from worldgen.progress import ProgressCallback

from .pair import guided_in_dtype
from .model import JointNetModel
from .pair import JointNetPair
from .panorama_output import JointNetPanoramaPipelineOutput, check_output_type, decoded_layers, package
from .pipeline import JointNetPipeline, PromptEncoding, check_text_width

PromptType = Union[str, list]


class JointNetPanoramaPipeline(PromptEncoding, DiffusionPipeline):
    """RGB + dense modality panoramas from a JointNet; see the module docstring and docs/diffusers.md."""

    _callback_tensor_inputs = ["latents"]
    _optional_components: list = []

    def __init__(self, vae, text_encoder, tokenizer, scheduler, unet: JointNetModel, jointnet: JointNetModel,
                 modality: str = "depth"):
        super().__init__()
        pair = JointNetPair(unet, jointnet)
        check_text_width(text_encoder, pair)
        if vae.config.latent_channels != pair.in_channels:
            raise ModelError(f"the VAE makes {vae.config.latent_channels}-channel latents but the JointNet "
                             f"takes {pair.in_channels}; use the base model the checkpoint was trained on")
        self.register_modules(vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, scheduler=scheduler,
                              unet=unet, jointnet=jointnet)
        self.register_to_config(modality=modality)

    # The prompt encoding and the VAE factor are those of the square JointNetPipeline: the same
    # attributes (tokenizer, text_encoder, vae, and a ``jointnet`` with .dtype/.device) serve both.
    _encode_text = JointNetPipeline._encode_text
    vae_scale_factor = JointNetPipeline.vae_scale_factor

    @property
    def pair(self) -> JointNetPair:
        """Both branches as the one module that denoises them together (built on demand, so it always
        holds the components that are registered now)."""
        return JointNetPair(self.unet, self.jointnet)

    @property
    def guidance_scale(self) -> float:
        """The running call's guidance scale (diffusers' step callbacks read it from the pipeline)."""
        return getattr(self, "_guidance_scale", 7.5)

    @property
    def num_timesteps(self) -> int:
        """The running call's number of scheduler steps (read by diffusers' step callbacks; more than
        ``num_inference_steps`` for second-order solvers)."""
        return getattr(self, "_num_timesteps", 0)

    @property
    def window(self) -> int:
        """The window side in latent cells: the size the UNet was trained on (64 for SD 2.1-base)."""
        return int(self.unet.config.sample_size)

    # ---- from an official checkpoint -----------------------------------------------------------

    @classmethod
    def from_jointnet_checkpoint(cls, checkpoint_dir, base_dir=None, dtype: Optional[torch.dtype] = None,
                                 device=None, scheduler: Optional[str] = "ddim") -> "JointNetPanoramaPipeline":
        """An official JointNet checkpoint (unet/ + jointnet/, diffusers 0.19 configs, .bin or
        .safetensors) and its SD 2.1-base folder (None: the checkpoint's own ``base/``), read by
        worldgen's loaders. ``scheduler``: a name from ``schedulers.SCHEDULERS``; the default "ddim"
        is the published recipe (the base folder itself names PNDM); None keeps the base's.
        ``dtype`` is named as in current diffusers' ``from_pretrained`` (which deprecates ``torch_dtype``)."""
        from .store import checkpoint_modality
        from .pipeline import load_jointnet

        square = load_jointnet(checkpoint_dir, base_dir, device=device, dtype=dtype, scheduler=scheduler)
        return cls(vae=square.vae, text_encoder=square.text_encoder, tokenizer=square.tokenizer,
                   scheduler=square.scheduler, unet=square.jointnet.unet, jointnet=square.jointnet.jointnet,
                   modality=checkpoint_modality(Path(checkpoint_dir)))

    def save_pretrained(self, save_directory, *args, **kwargs):
        """diffusers' ``save_pretrained``, plus ``worldgen.json`` naming the modality, so the folder is
        also a checkpoint worldgen's backend reads (``--model DIR --base DIR``)."""
        from .loading import write_checkpoint_modality

        # Written first, so that a push_to_hub=True upload at the end of the save includes it.
        Path(save_directory).mkdir(parents=True, exist_ok=True)
        write_checkpoint_modality(Path(save_directory), self.config.modality)
        super().save_pretrained(save_directory, *args, **kwargs)

    # ---- prompts -----------------------------------------------------------------------------

    def _embeddings(self, prompt, negative_prompt, prompt_embeds, negative_prompt_embeds, do_cfg: bool,
                    num_images_per_prompt: int) -> tuple[torch.Tensor, Optional[torch.Tensor]]:
        """(cond, uncond) text embeddings, one row per image (B * num_images_per_prompt)."""
        if (prompt is None) == (prompt_embeds is None):
            raise UserInputError("give either prompt or prompt_embeds (exactly one of them)")
        if prompt_embeds is None:
            cond, uncond = self.encode_prompt(prompt, negative_prompt, do_cfg)
        else:
            cond, uncond = prompt_embeds, negative_prompt_embeds
            if do_cfg and uncond is None:
                negatives = negative_prompt if negative_prompt is not None else ""
                if isinstance(negatives, str):
                    negatives = [negatives] * cond.shape[0]
                uncond = self._encode_text(list(negatives))
            if uncond is not None and uncond.shape != cond.shape:
                raise UserInputError(f"negative_prompt_embeds {tuple(uncond.shape)} must match "
                                     f"prompt_embeds {tuple(cond.shape)}")
        dtype, device = self.jointnet.dtype, self.jointnet.device

        def per_image(embeds):
            return embeds.to(device=device, dtype=dtype).repeat_interleave(num_images_per_prompt, dim=0)

        return per_image(cond), per_image(uncond) if do_cfg and uncond is not None else None

    # ---- the model callable the tiled sampler drives -------------------------------------------

    def _denoiser(self, cond: torch.Tensor, uncond: Optional[torch.Tensor], guidance_scale: float):
        """The sampler's ``denoise(x, t, windows)``: x holds n windows of each of the B images,
        window-major (``windows.gather``), so image k of a window reads text row k. Both branches and
        both halves of classifier-free guidance run in one batched forward."""
        pair, c, batch = self.pair, self.pair.in_channels, cond.shape[0]
        masks = pair.has_masked_latent_input

        def denoise(x, t, windows):
            n = x.shape[0] // batch
            text = cond.repeat(n, 1, 1)
            negative = uncond.repeat(n, 1, 1) if uncond is not None and windows.guided else None
            extra = _generate_everywhere(x, c) if masks else ()
            eps_rgb, eps_mod = guided_in_dtype(pair, x, t, text, negative, guidance_scale, extra)
            return torch.cat([eps_rgb[:, :c], eps_mod[:, :c]], dim=1)

        return denoise

    def _step_hook(self, callback, tensor_inputs: list) -> Optional[Callable]:
        """diffusers' ``callback_on_step_end(pipe, step, timestep, callback_kwargs) -> dict`` as the
        sampler's per-step hook: the returned dict's ``latents`` (if any) replace the latents."""
        if callback is None:
            return None
        unknown = [name for name in tensor_inputs if name not in self._callback_tensor_inputs]
        if unknown:
            raise UserInputError(f"callback_on_step_end_tensor_inputs {unknown} are not offered; "
                                 f"choose from {self._callback_tensor_inputs}")

        def hook(i, t, latents):
            local = {"latents": latents}
            returned = callback(self, i, t, {name: local[name] for name in tensor_inputs}) or {}
            return returned.get("latents", latents)

        return hook

    # ---- generation -----------------------------------------------------------------------------

    @torch.no_grad()
    def __call__(self, prompt: Optional[PromptType] = None, height: int = 512, width: int = 2048,
                 num_inference_steps: int = 50, guidance_scale: float = 7.5,
                 negative_prompt: Optional[PromptType] = None, num_images_per_prompt: int = 1,
                 generator=None, latents: Optional[torch.Tensor] = None,
                 prompt_embeds: Optional[torch.Tensor] = None, negative_prompt_embeds: Optional[torch.Tensor] = None,
                 callback_on_step_end: Optional[Callable] = None,
                 callback_on_step_end_tensor_inputs: Optional[list] = None, output_type: str = "pil",
                 return_dict: bool = True, *, preset: Optional[str] = None, circular: bool = True,
                 progress: Optional[ProgressCallback] = None):
        """A ``width`` x ``height`` panorama per image. ``preset`` ("published", "fast") sets only the
        tiling (window stride, whole-panorama steps, guided steps); the solver is ``pipe.scheduler``
        and the step count ``num_inference_steps``. ``circular`` False makes a flat wide image (no
        wrap). ``latents``: the (B, 2C, h, w) starting noise [RGB | modality]. ``progress``: worldgen's
        progress callback instead of diffusers' progress bar (``set_progress_bar_config``). Returns
        ``JointNetPanoramaPipelineOutput`` (or the tuple (images, modality) without ``return_dict``)."""
        check_output_type(output_type)
        self._check_call(height, width, num_inference_steps, num_images_per_prompt)
        do_cfg = guidance_scale > 1.0
        self.scheduler.set_timesteps(num_inference_steps)  # again in the sampler; here to count the steps
        self._guidance_scale, self._num_timesteps = guidance_scale, len(self.scheduler.timesteps)
        cond, uncond = self._embeddings(prompt, negative_prompt, prompt_embeds, negative_prompt_embeds, do_cfg,
                                        num_images_per_prompt)
        shape = (cond.shape[0], 2 * self.pair.in_channels, height // self.vae_scale_factor,
                 width // self.vae_scale_factor)
        noise, seed = self._starting_noise(shape, generator, latents)
        sampler = self._sampler(preset, circular, rows=2 if do_cfg else 1)
        step_generator = generator[0] if isinstance(generator, list) else generator
        result = sampler.sample(self._denoiser(cond, uncond, guidance_scale), self.scheduler, shape=shape,
                                steps=num_inference_steps, seed=seed, noise=noise, generator=step_generator,
                                device=self.jointnet.device, dtype=self.jointnet.dtype,
                                progress=progress or self._progress_bar_callback(num_inference_steps),
                                on_step_end=self._step_hook(callback_on_step_end,
                                                            callback_on_step_end_tensor_inputs or ["latents"]))
        self.maybe_free_model_hooks()
        if output_type == "latent":
            images, modality = result, None
        else:
            images, modality = package(*self._decode(result, circular, progress), output_type, self._modality_spec())
        if not return_dict:
            return images, modality
        return JointNetPanoramaPipelineOutput(images=images, modality=modality, modality_name=self.config.modality)

    def _check_call(self, height: int, width: int, steps: int, per_prompt: int) -> None:
        factor = self.vae_scale_factor
        if height <= 0 or width <= 0 or height % factor or width % factor:
            raise UserInputError(f"size {width}x{height} must be positive multiples of {factor}")
        if steps < 1:
            raise UserInputError(f"num_inference_steps {steps} must be at least 1")
        if per_prompt < 1:
            raise UserInputError(f"num_images_per_prompt {per_prompt} must be at least 1")

    def _starting_noise(self, shape: tuple, generator, latents: Optional[torch.Tensor]) -> tuple[torch.Tensor, int]:
        """The starting noise (float32, drawn as worldgen's backend draws it, so a CPU generator seeded
        with S gives the backend's seed-S panorama) and the seed of the windows' random offsets: the
        generator's seed, else one drawn from torch's global generator as diffusers draws noise."""
        gen = generator[0] if isinstance(generator, list) else generator
        seed = int(gen.initial_seed()) if gen is not None else int(torch.randint(0, 2 ** 31 - 1, ()).item())
        if latents is not None:
            if tuple(latents.shape) != shape:
                raise UserInputError(f"latents have shape {tuple(latents.shape)}; expected {shape} "
                                     f"(RGB and modality latents stacked on channels)")
            return latents.float(), seed
        if isinstance(generator, list) and len(generator) != shape[0]:
            raise UserInputError(f"{len(generator)} generators for {shape[0]} images; give one per image")
        device = gen.device if gen is not None else torch.device("cpu")
        return randn_tensor(shape, generator=generator, device=device, dtype=torch.float32), seed

    def _sampler(self, preset: Optional[str], circular: bool, rows: int):
        """worldgen's tiled sampler with the preset's tiling (None: the published recipe)."""
        from worldgen.sampler.memory import window_batch_for
        from worldgen.sampler.presets import get_preset
        from worldgen.sampler.tiled import TiledSampler, TilingRecipe

        chosen, window = get_preset(preset), self.window
        stride = chosen.stride_cells(window)
        recipe = TilingRecipe(window=(window, window), stride=(stride, stride), circular=circular,
                              global_fraction=chosen.global_fraction, guidance_fraction=chosen.guidance_fraction)
        planned = window_batch_for(self.pair, (window, window), rows, self.jointnet.device)
        return TiledSampler(recipe, window_batch=planned)

    def _decode(self, latents: torch.Tensor, circular: bool, progress: Optional[ProgressCallback] = None):
        """Both layers of every image through worldgen's tiled, wrap-aware VAE, in numpy."""
        from worldgen.sampler.memory import vae_batch_for
        from worldgen.sampler.vae_tiles import TiledVAE

        c, batch = self.pair.in_channels, latents.shape[0]
        vae = TiledVAE(self.vae, tile=self.window)
        if vae.device.type == "cuda":
            vae.batch = vae_batch_for(self.vae, self.window * self.vae_scale_factor, 2 * batch, vae.device)
        pixels = vae.decode(torch.cat([latents[:, :c], latents[:, c:]]), circular, progress)
        return decoded_layers(pixels, batch, self._modality_spec())

    def _modality_spec(self):
        from worldgen.registry import get_registry

        return get_registry().modality(self.config.modality)

    def _progress_bar_callback(self, steps: int):
        """The sampler's progress reports on diffusers' own progress bar (``set_progress_bar_config``)."""
        bar = self.progress_bar(total=steps)

        def progress(event):
            if event.stage == "denoise":
                bar.update(event.done - bar.n)
                if event.done >= event.total:
                    bar.close()

        return progress


def _generate_everywhere(x: torch.Tensor, c: int) -> tuple:
    """Inpainting checkpoints generating from text: mask 1 (generate) everywhere, nothing known."""
    n, _, h, w = x.shape
    mask = torch.ones(n, 1, h, w, device=x.device, dtype=x.dtype)
    known = torch.zeros(n, c, h, w, device=x.device, dtype=x.dtype)
    return mask, known, mask, known


def register_with_diffusers() -> None:
    """Make ``DiffusionPipeline.from_pretrained`` find this class by its ``_class_name``: diffusers
    resolves that name as an attribute of the ``diffusers`` module (see the module docstring)."""
    import diffusers

    if getattr(diffusers, JointNetPanoramaPipeline.__name__, None) is not JointNetPanoramaPipeline:
        setattr(diffusers, JointNetPanoramaPipeline.__name__, JointNetPanoramaPipeline)


register_with_diffusers()
