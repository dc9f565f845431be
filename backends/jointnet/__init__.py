"""JointNet on current diffusers: RGB + dense modality (depth, normals) from one joint diffusion model.

Importing this package is cheap; torch/diffusers load when a name below is first used.

PUBLIC API (stable; other worldgen modules use only these names)

Models (``model.py``, ``pair.py``)
- ``JointNetModel``: one branch; a diffusers ``UNet2DConditionModel`` subclass whose config adds
  ``joint_in_channels`` and ``has_masked_latent_input`` and whose state dict adds
  ``jointnet_rgb_in_trans``, ``jointnet_down_blocks.{i}``, ``jointnet_mid_block`` and (inpainting)
  ``jointnet_masked_latent_conv``. ``JointNetModel.from_unet(unet, masked_latent_input=False)`` copies
  a UNet with the exchange at zero. ``branch(sample, t, ctx)`` alone is exactly the base UNet.
- ``JointNetPair(unet, jointnet)``: ``nn.Module``; ``pair.unet`` is the RGB branch, ``pair.jointnet``
  the modality branch (the checkpoint's folder names).
  ``pair(x_rgb, x_joint, timestep, encoder_hidden_states, mask_rgb=None, masked_rgb=None,
  mask_joint=None, masked_joint=None, *, encoder_attention_mask=None) -> (eps_rgb, eps_joint)``:
  all tensors share the batch N (windows); latents (N, C, h, w); timestep a scalar, 0-d or (N,)
  tensor; encoder_hidden_states (N, L, D). Inpainting pairs (``pair.has_masked_latent_input``)
  need all four mask arguments: mask (N, 1, h, w) with 1 = generate, masked latent (N, C, h, w) =
  latent of the known input * (mask < 0.5).
  ``pair.guided(x_rgb, x_joint, timestep, cond, uncond, guidance_scale, mask_rgb=None, masked_rgb=None,
  mask_joint=None, masked_joint=None) -> (eps_rgb, eps_joint)``: classifier-free guidance for N
  windows in ONE forward of both branches (batch 2N inside); cond/uncond (1 or N, L, D); uncond None
  disables CFG. For learned-variance UNets (IF) the variance half comes from the cond prediction.
  ``JointNetPair.from_unet(unet, masked_latent_input=False)``; properties ``in_channels`` (per
  branch), ``learned_variance``, ``has_masked_latent_input``, ``device``, ``dtype``.

Files (``loading.py``)
- ``load_pair(checkpoint_dir, dtype=None, device=None) -> JointNetPair``;
  ``save_pair(pair, checkpoint_dir, modality=None)`` (safetensors, each file atomic);
  ``normalize_branch_config(raw_dict)`` (diffusers 0.19.3 keys -> current; see CONFIG_019_* there);
  ``checkpoint_modality(checkpoint_dir) -> str`` ("depth" unless ``worldgen.json`` says otherwise);
  ``is_checkpoint_dir(path)``. Weights: ``.safetensors``, or ``.bin`` via ``torch.load(weights_only=True)``.

Pipelines (``pipeline.py``, ``schedulers.py``, ``deepfloyd.py``)
- ``load_jointnet(checkpoint_dir, base_dir=None, device=None, dtype=None, scheduler=None)
  -> JointNetPipeline`` (base_dir None: the checkpoint's own ``base/``).
- ``JointNetPipeline.from_pretrained(jointnet_path, base_model=None, torch_dtype=None, device=None,
  scheduler=None)``; attributes ``vae``, ``text_encoder``, ``tokenizer``, ``scheduler``,
  ``jointnet`` (the pair); ``vae_scale_factor``, ``latent_channels`` (per branch, 4).
  ``encode_prompt(prompt, negative_prompt=None, do_cfg=True) -> (cond, uncond or None)``, each (B, L, D).
  ``encode_images(x01 (B,3,H,W)) -> scaled latents``; ``decode_latents(latents) -> (B,3,H,W) in [0,1]``.
  ``pipe(prompt, height, width, num_inference_steps=50, guidance_scale=7.5, negative_prompt=None,
  generator=None, latents=None, output_type="np", *, progress=None)`` -> ``.images`` (B,H,W,3) and
  ``.modality`` (B,H,W,3, decoded modality) in [0,1]; ``latents`` is the (B, 8, h, w) stack
  [RGB latent | modality latent]. ``pipe.save_pretrained(dir)`` writes the checkpoint.
- ``JointNetPanoramaPipeline``: the tiled 360-degree panorama as a diffusers ``DiffusionPipeline``
  (components vae, text_encoder, tokenizer, scheduler, unet, jointnet; ``save_pretrained`` /
  ``DiffusionPipeline.from_pretrained``; ``from_jointnet_checkpoint(checkpoint_dir, base_dir=None)``);
  returns ``JointNetPanoramaPipelineOutput`` (``images``, ``modality``). See docs/diffusers.md.
- ``make_scheduler(name, base_config)``: "ddim" (default), "dpm++", "unipc", "euler", "euler-a",
  "ddpm", "pndm"; assign to ``pipe.scheduler``. ``SCHEDULERS``: the names.
- ``DeepFloydJointNetPipeline``: pixel-space JointNet from an IF stage-I UNet (T5 text encoder);
  ``DeepFloydJointNetPipeline.from_if_unet(unet, text_encoder, tokenizer, scheduler)``;
  ``build_tiny_if_components(seed)`` for tests.

N modality branches and what a checkpoint is (``branches.py``, ``branch_files.py``, ``families.py``)
- ``JointNetBranches(unet, branches, links)``: one RGB branch and N modality branches; each added
  branch has its own zero-initialised ``RGBLink`` (the official ``jointnet/`` branch uses the RGB
  branch's own exchange layers, so a two-branch checkpoint is the N = 1 case, computed identically).
  Same call as the pair with the modality side stacked on channels; ``from_pair``, ``with_new_branch``,
  ``select``. ``save_branches``/``attach_branches`` write/read added branches (``jointnet_<name>/``).
- ``checkpoint_modalities(dir)``, ``checkpoint_family(dir)`` ("sd" or "if"): from ``worldgen.json``,
  else depth / the RGB branch's channels; ``base_family(folder)``: "sd" (has vae/), "if" (T5, no vae).

DeepFloyd-IF panoramas (``if_backend.py``, ``if_upscale.py``)
- ``DeepFloydBackend``: the tiled sampler in pixel space with IF's learned-variance scheduler, then
  tiled stage-II super-resolution when the checkpoint has ``stage2/`` (or ``sr_model`` names one).

Tiny checkpoints and the model store (``tiny.py``, ``store.py``)
- ``write_tiny_checkpoint(dir, seed=0, inpaint=False, modality="depth", family="sd") -> Path``: a random tiny
  checkpoint in the official layout with its own ``base/`` (exchange non-zero, so it is exercised).
- ``resolve_model(name_or_path, base=None) -> (checkpoint_dir, base_dir)``: a folder, or a name
  registered with ``worldgen models add``; raises ``ModelError`` naming the fix when no base is known.
- ``default_model() -> ModelEntry | None``: the registered default JointNet model, if any.
- ``resolve(name_or_None) -> Path | None``: checkpoint folder of a registered name (None: the
  default), None if unknown; ``base_for(checkpoint_dir) -> Path | None``: its registered base, else
  its own ``base/``, else None.
- ``ModelStore`` / ``ModelEntry`` (``store_root()``: $WORLDGEN_HOME, else $XDG_DATA_HOME/worldgen,
  else ~/.local/share/worldgen).
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "JointNetModel": "model",
    "JointNetPair": "pair",
    "load_pair": "loading",
    "save_pair": "loading",
    "normalize_branch_config": "loading",
    "checkpoint_modality": "store",
    "is_checkpoint_dir": "loading",
    "load_jointnet": "pipeline",
    "JointNetPipeline": "pipeline",
    "JointNetPipelineOutput": "pipeline",
    "JointNetPanoramaPipeline": "panorama_pipeline",
    "JointNetPanoramaPipelineOutput": "panorama_output",
    "make_scheduler": "schedulers",
    "SCHEDULERS": "schedulers",
    "DeepFloydJointNetPipeline": "deepfloyd",
    "build_tiny_if_components": "deepfloyd",
    "write_tiny_checkpoint": "tiny",
    "JointNetBranches": "branches",
    "RGBLink": "branches",
    "save_branches": "branch_files",
    "attach_branches": "branch_files",
    "checkpoint_modalities": "branch_files",
    "checkpoint_family": "branch_files",
    "base_family": "families",
    "DeepFloydBackend": "if_backend",
    "resolve_model": "store",
    "default_model": "store",
    "resolve": "store",
    "base_for": "store",
    "ModelStore": "store",
    "ModelEntry": "store",
    "store_root": "store",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(_EXPORTS))
