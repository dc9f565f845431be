"""The two JointNet branches as one module: one call denoises RGB and modality latents together.

Exchange order (checked against the fixture written by the original implementation):
1. each branch's conv_in features = conv_in(own latent) + jointnet_rgb_in_trans(other latent)
   [+ jointnet_masked_latent_conv([own mask, own masked, other mask, other masked])]; these
   features are also the first skip tensor;
2. both branches run their down path and mid block independently;
3. each branch's skips/mid go through ITS OWN jointnet_down_blocks/jointnet_mid_block and are added
   to the OTHER branch's skips/mid; both directions use the tensors from step 2 (no branch sees the
   other's already-exchanged tensors);
4. each branch runs its up path on the sums.
The fixture cannot tell which branch owns the exchange convs (its two branches hold identical exchange
weights); the ownership above is the one the format description states.
"""

from __future__ import annotations

from typing import Optional

import torch
from torch import nn

from diffusers import UNet2DConditionModel

from .model import JointNetModel


def _attention_bias(mask: Optional[torch.Tensor], dtype: torch.dtype) -> Optional[torch.Tensor]:
    """(N, tokens) keep-mask -> additive bias (N, 1, tokens), as UNet2DConditionModel does."""
    if mask is None:
        return None
    return ((1 - mask.to(dtype)) * -10000.0).unsqueeze(1)


class JointNetPair(nn.Module):
    """``unet`` is the RGB branch and ``jointnet`` the modality branch (the checkpoint's folder names)."""

    def __init__(self, unet: JointNetModel, jointnet: JointNetModel):
        super().__init__()
        if unet.has_masked_latent_input != jointnet.has_masked_latent_input:
            raise ValueError("both branches must agree on has_masked_latent_input")
        if unet.skip_channels() != jointnet.skip_channels():
            raise ValueError("the RGB and modality branches have different down paths")
        self.unet = unet
        self.jointnet = jointnet

    @classmethod
    def from_unet(cls, unet: UNet2DConditionModel, masked_latent_input: bool = False,
                  modality_unet: Optional[UNet2DConditionModel] = None) -> "JointNetPair":
        """Both branches copy ``unet`` (or the modality branch ``modality_unet``), exchange at zero.

        With zero exchange the RGB prediction equals ``unet``'s prediction exactly.
        """
        rgb = JointNetModel.from_unet(unet, masked_latent_input=masked_latent_input)
        other = JointNetModel.from_unet(modality_unet if modality_unet is not None else unet,
                                        masked_latent_input=masked_latent_input)
        return cls(rgb, other)

    # ---- facts the samplers need -----------------------------------------------------------------

    @property
    def has_masked_latent_input(self) -> bool:
        return self.unet.has_masked_latent_input

    @property
    def in_channels(self) -> int:
        """Channels of one branch's noisy latent (4 for SD, 3 for DeepFloyd IF pixels)."""
        return self.unet.config.in_channels

    @property
    def learned_variance(self) -> bool:
        """True when each branch predicts [noise, variance] (DeepFloyd IF), i.e. out = 2 x in channels."""
        return self.unet.config.out_channels == 2 * self.unet.config.in_channels

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        return next(self.parameters()).dtype

    # ---- one evaluation --------------------------------------------------------------------------

    def forward(self, x_rgb: torch.Tensor, x_joint: torch.Tensor, timestep, encoder_hidden_states: torch.Tensor,
                mask_rgb: Optional[torch.Tensor] = None, masked_rgb: Optional[torch.Tensor] = None,
                mask_joint: Optional[torch.Tensor] = None, masked_joint: Optional[torch.Tensor] = None, *,
                encoder_attention_mask: Optional[torch.Tensor] = None,
                cross_attention_kwargs: Optional[dict] = None,
                added_cond_kwargs: Optional[dict] = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Noise predictions ``(eps_rgb, eps_joint)`` for a batch of N latent pairs.

        x_rgb, x_joint: (N, C, h, w); timestep: scalar or (N,); encoder_hidden_states: (N, L, D).
        Inpainting checkpoints also take mask_* (N, 1, h, w), 1 = generate, and masked_* (N, C, h, w).
        """
        n = x_rgb.shape[0]
        if x_joint.shape[0] != n or encoder_hidden_states.shape[0] != n:
            raise ValueError(f"batch sizes differ: x_rgb {tuple(x_rgb.shape)}, x_joint {tuple(x_joint.shape)}, "
                             f"encoder_hidden_states {tuple(encoder_hidden_states.shape)}")
        if x_rgb.shape[-2:] != x_joint.shape[-2:]:
            raise ValueError("x_rgb and x_joint must have the same spatial size")
        if torch.is_tensor(timestep) and timestep.ndim == 1 and timestep.shape[0] not in (1, n):
            raise ValueError(f"timestep has {timestep.shape[0]} entries for a batch of {n}")
        masked_rgb_in, masked_joint_in = self._masked_inputs(n, x_rgb, mask_rgb, masked_rgb, mask_joint, masked_joint)

        attn = dict(encoder_attention_mask=_attention_bias(encoder_attention_mask, x_rgb.dtype),
                    cross_attention_kwargs=cross_attention_kwargs)
        a, b = self.unet, self.jointnet
        emb_a, ctx_a = a.embed(x_rgb, timestep, encoder_hidden_states, added_cond_kwargs)
        emb_b, ctx_b = b.embed(x_joint, timestep, encoder_hidden_states, added_cond_kwargs)
        skips_a, mid_a = a.down(a.input_features(x_rgb, x_joint, masked_rgb_in), emb_a, ctx_a, **attn)
        skips_b, mid_b = b.down(b.input_features(x_joint, x_rgb, masked_joint_in), emb_b, ctx_b, **attn)
        to_b, mid_to_b = a.exchange(skips_a, mid_a)
        to_a, mid_to_a = b.exchange(skips_b, mid_b)
        eps_a = a.up(mid_a + mid_to_a, tuple(s + e for s, e in zip(skips_a, to_a)), emb_a, ctx_a, **attn)
        eps_b = b.up(mid_b + mid_to_b, tuple(s + e for s, e in zip(skips_b, to_b)), emb_b, ctx_b, **attn)
        return eps_a, eps_b

    def _masked_inputs(self, n, x_rgb, mask_rgb, masked_rgb, mask_joint, masked_joint):
        given = [t is not None for t in (mask_rgb, masked_rgb, mask_joint, masked_joint)]
        if not self.has_masked_latent_input:
            if any(given):
                raise ValueError("this JointNet has no masked-latent input; use an inpainting checkpoint for masks")
            return None, None
        if not all(given):
            raise ValueError("an inpainting JointNet needs mask_rgb, masked_rgb, mask_joint and masked_joint")
        for name, t, c in (("mask_rgb", mask_rgb, 1), ("mask_joint", mask_joint, 1),
                           ("masked_rgb", masked_rgb, None), ("masked_joint", masked_joint, None)):
            if t.ndim != 4 or t.shape[0] != n or t.shape[-2:] != x_rgb.shape[-2:] or (c and t.shape[1] != c):
                raise ValueError(f"{name} has shape {tuple(t.shape)}; expected ({n}, {c or 'C'}, "
                                 f"{x_rgb.shape[-2]}, {x_rgb.shape[-1]})")
        own_first_rgb = torch.cat([mask_rgb, masked_rgb, mask_joint, masked_joint], dim=1).to(x_rgb.dtype)
        own_first_joint = torch.cat([mask_joint, masked_joint, mask_rgb, masked_rgb], dim=1).to(x_rgb.dtype)
        return own_first_rgb, own_first_joint

    # ---- classifier-free guidance in one call -------------------------------------------------

    def guided(self, x_rgb: torch.Tensor, x_joint: torch.Tensor, timestep, cond: torch.Tensor,
               uncond: Optional[torch.Tensor], guidance_scale: float,
               mask_rgb: Optional[torch.Tensor] = None, masked_rgb: Optional[torch.Tensor] = None,
               mask_joint: Optional[torch.Tensor] = None, masked_joint: Optional[torch.Tensor] = None,
               cond_mask: Optional[torch.Tensor] = None,
               uncond_mask: Optional[torch.Tensor] = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Guided ``(eps_rgb, eps_joint)`` for N windows: both branches, both CFG halves, ONE forward.

        cond/uncond: text embeddings (1 or N, L, D); uncond None (or guidance_scale 1) skips CFG.
        For learned-variance UNets the guidance applies to the noise half; the variance half is the
        conditional prediction's. cond_mask/uncond_mask: optional (1 or N, L) token keep-masks.
        """
        n = x_rgb.shape[0]

        def per_window(t: Optional[torch.Tensor]) -> Optional[torch.Tensor]:
            return None if t is None else t.expand(n, *t.shape[1:]) if t.shape[0] == 1 else t

        masks = (mask_rgb, masked_rgb, mask_joint, masked_joint)
        if uncond is None or guidance_scale == 1.0:
            return self(x_rgb, x_joint, timestep, per_window(cond), *masks, encoder_attention_mask=per_window(cond_mask))

        def twice(t):
            return None if t is None else torch.cat([t, t])

        if torch.is_tensor(timestep) and timestep.ndim == 1 and timestep.shape[0] == n:
            timestep = twice(timestep)
        context = torch.cat([per_window(uncond), per_window(cond)])
        token_mask = None
        if cond_mask is not None or uncond_mask is not None:
            ones = torch.ones(context.shape[:2], dtype=torch.long, device=context.device)
            um = per_window(uncond_mask) if uncond_mask is not None else ones[:n]
            cm = per_window(cond_mask) if cond_mask is not None else ones[n:]
            token_mask = torch.cat([um, cm])
        eps_rgb, eps_joint = self(twice(x_rgb), twice(x_joint), timestep, context, *(twice(m) for m in masks),
                                  encoder_attention_mask=token_mask)
        return self._combine(eps_rgb, guidance_scale, n), self._combine(eps_joint, guidance_scale, n)

    def _combine(self, eps: torch.Tensor, scale: float, n: int) -> torch.Tensor:
        uncond, cond = eps[:n], eps[n:]
        if self.learned_variance:
            c = self.in_channels
            guided = uncond[:, :c] + scale * (cond[:, :c] - uncond[:, :c])
            return torch.cat([guided, cond[:, c:]], dim=1)
        return uncond + scale * (cond - uncond)


def guided_in_dtype(pair, x, t, text, negative, guidance: float, extra: tuple = ()):
    """``pair.guided`` on window latents ``x`` (N, 2C, h, w), RGB channels first. When the sampler
    redoes a half-precision step that overflowed, ``x`` comes in float32: the pair then runs in
    ``x``'s dtype, and so do the text embeddings and the mask inputs."""
    from worldgen.numerics import float32_modules

    c = pair.in_channels
    if x.dtype == pair.dtype:
        return pair.guided(x[:, :c], x[:, c:], t, text, negative, guidance, *extra)
    with float32_modules(pair):
        return pair.guided(x[:, :c], x[:, c:], t, text.to(x.dtype), None if negative is None else negative.to(x.dtype),
                           guidance, *(e.to(x.dtype) for e in extra))
