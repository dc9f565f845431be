"""One JointNet branch: a diffusers ``UNet2DConditionModel`` plus the exchange layers of the format.

The state-dict names are those of the released checkpoints: every UNet parameter keeps its diffusers
name, and the extra modules are ``jointnet_rgb_in_trans``, ``jointnet_down_blocks.{i}``,
``jointnet_mid_block`` and, for inpainting checkpoints, ``jointnet_masked_latent_conv``.

A branch on its own (``forward``) is exactly the base UNet. The two-branch computation lives in
``pair.JointNetPair``; it drives a branch through the stages below (``embed``, ``input_features``,
``down``, ``exchange``, ``up``) so the exchange can happen between the down and the up path.
"""

from __future__ import annotations

import inspect
from typing import Any, Optional

import torch
from torch import nn

# ModelMixin is here for diffusers' pipeline loader: DiffusionPipeline.from_pretrained looks a
# component's loadable base class up in the module that defines the component's class.
from diffusers import ModelMixin, UNet2DConditionModel  # noqa: F401
from diffusers.configuration_utils import register_to_config

# The two config keys the format adds to those of UNet2DConditionModel.
JOINT_CONFIG_DEFAULTS = {"joint_in_channels": None, "has_masked_latent_input": False}


def _advertised_signature() -> inspect.Signature:
    """The UNet's config keys plus the JointNet keys, all keyword-only.

    diffusers reads the accepted config keys from ``inspect.signature(cls.__init__)``. Spelling out
    the ~50 UNet keys by hand would pin them to one diffusers version, so the signature is derived
    from the installed UNet2DConditionModel and the two JointNet keys are appended.
    """
    base = inspect.signature(UNet2DConditionModel.__init__)
    params = [inspect.Parameter("self", inspect.Parameter.POSITIONAL_ONLY)]
    for name, param in base.parameters.items():
        if name == "self":
            continue
        params.append(param.replace(kind=inspect.Parameter.KEYWORD_ONLY))
    for name, default in JOINT_CONFIG_DEFAULTS.items():
        params.append(inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=default))
    return inspect.Signature(params)


def _branch_init(self, **config: Any) -> None:
    joint_in_channels = config.pop("joint_in_channels", None)
    has_masked_latent_input = bool(config.pop("has_masked_latent_input", False))
    UNet2DConditionModel.__init__(self, **config)

    in_channels = self.config.in_channels
    other_channels = in_channels if joint_in_channels is None else int(joint_in_channels)
    width = self.config.block_out_channels[0]
    kernel = self.config.conv_in_kernel
    padding = (kernel - 1) // 2

    # The other branch's noisy latent, added to this branch's conv_in output.
    self.jointnet_rgb_in_trans = nn.Conv2d(other_channels, width, kernel_size=kernel, padding=padding)
    # One 1x1 conv per skip tensor, in the order the down path emits them.
    self.jointnet_down_blocks = nn.ModuleList(nn.Conv2d(c, c, kernel_size=1) for c in self.skip_channels())
    mid = self.config.block_out_channels[-1]
    self.jointnet_mid_block = nn.Conv2d(mid, mid, kernel_size=1)
    if has_masked_latent_input:
        # [own mask, own masked latent, other mask, other masked latent]
        masked_in = 1 + in_channels + 1 + other_channels
        self.jointnet_masked_latent_conv = nn.Conv2d(masked_in, width, kernel_size=kernel, padding=padding)
    else:
        self.jointnet_masked_latent_conv = None
    # A fresh branch preserves its UNet's output; training moves the exchange away from zero.
    self.zero_exchange_()


_branch_init.__signature__ = _advertised_signature()
_branch_init.__doc__ = "Build a branch from UNet2DConditionModel keys plus joint_in_channels and has_masked_latent_input."


class JointNetModel(UNet2DConditionModel):
    """One branch of a JointNet (RGB or modality); config = UNet keys + the two JointNet keys."""

    __init__ = register_to_config(_branch_init)

    # ---- construction -------------------------------------------------------------------------

    @classmethod
    def from_unet(cls, unet: UNet2DConditionModel, masked_latent_input: bool = False,
                  joint_in_channels: Optional[int] = None) -> "JointNetModel":
        """A branch that copies ``unet``; exchange layers ``unet`` lacks start at zero (output-preserving).

        ``unet`` may itself be a JointNetModel: its exchange weights are then kept, and only the
        layers it does not have (e.g. the masked-latent conv when adding inpainting) start at zero.
        """
        config = {k: v for k, v in dict(unet.config).items() if not k.startswith("_")}
        config.update(joint_in_channels=joint_in_channels, has_masked_latent_input=masked_latent_input)
        branch = cls.from_config(config)
        missing, unexpected = branch.load_state_dict(unet.state_dict(), strict=False)
        if unexpected or any(not key.startswith("jointnet_") for key in missing):
            raise ValueError(f"UNet weights do not fit the branch: missing {missing}, unexpected {unexpected}")
        param = next(unet.parameters())
        # nn.Module.to: ModelMixin.to logs a float32-modules notice even when there are none.
        return nn.Module.to(branch, device=param.device, dtype=param.dtype)

    @torch.no_grad()
    def zero_exchange_(self) -> "JointNetModel":
        """Set every exchange layer to zero, in place."""
        for module in self.exchange_modules():
            nn.init.zeros_(module.weight)
            nn.init.zeros_(module.bias)
        return self

    def exchange_modules(self) -> list[nn.Conv2d]:
        modules = [self.jointnet_rgb_in_trans, *self.jointnet_down_blocks, self.jointnet_mid_block]
        if self.jointnet_masked_latent_conv is not None:
            modules.append(self.jointnet_masked_latent_conv)
        return modules

    def skip_channels(self) -> list[int]:
        """Channels of each skip tensor: conv_in output, then each resnet and downsampler output."""
        channels = [self.config.block_out_channels[0]]
        for block in self.down_blocks:
            channels += [resnet.out_channels for resnet in block.resnets]
            channels += [down.out_channels for down in (block.downsamplers or [])]
        return channels

    @property
    def has_masked_latent_input(self) -> bool:
        return self.jointnet_masked_latent_conv is not None

    # ---- the stages of one evaluation -----------------------------------------------------------

    def embed(self, sample: torch.Tensor, timestep, encoder_hidden_states: torch.Tensor,
              added_cond_kwargs: Optional[dict] = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Time (+ text, for IF) embedding and the processed text states, as the UNet computes them."""
        if self.config.addition_embed_type == "image_hint":
            raise ValueError("JointNet branches do not support addition_embed_type='image_hint'")
        if self.class_embedding is not None:
            raise ValueError("JointNet branches do not take class labels; use a UNet without class_embed_type")
        added_cond_kwargs = added_cond_kwargs or {}
        emb = self.time_embedding(self.get_time_embed(sample=sample, timestep=timestep))
        aug_emb = self.get_aug_embed(emb=emb, encoder_hidden_states=encoder_hidden_states,
                                     added_cond_kwargs=added_cond_kwargs)
        if aug_emb is not None:
            emb = emb + aug_emb
        if self.time_embed_act is not None:
            emb = self.time_embed_act(emb)
        context = self.process_encoder_hidden_states(encoder_hidden_states=encoder_hidden_states,
                                                     added_cond_kwargs=added_cond_kwargs)
        return emb, context

    def input_features(self, own: torch.Tensor, other: torch.Tensor,
                       masked: Optional[torch.Tensor] = None) -> torch.Tensor:
        """conv_in of the own latent plus the other branch's latent (and masked inputs) mapped in.

        ``masked`` is ``[own mask, own masked latent, other mask, other masked latent]`` on channels.
        """
        if self.config.center_input_sample:
            own, other = 2 * own - 1.0, 2 * other - 1.0
        features = self.conv_in(own) + self.jointnet_rgb_in_trans(other)
        if self.jointnet_masked_latent_conv is not None:
            if masked is None:
                raise ValueError("this branch was trained with masked-latent input; pass masks and masked latents")
            features = features + self.jointnet_masked_latent_conv(masked)
        return features

    def down(self, features: torch.Tensor, emb: torch.Tensor, context: torch.Tensor,
             attention_mask: Optional[torch.Tensor] = None, encoder_attention_mask: Optional[torch.Tensor] = None,
             cross_attention_kwargs: Optional[dict] = None) -> tuple[tuple[torch.Tensor, ...], torch.Tensor]:
        """Down path and mid block from the conv_in features; returns (skips, mid output)."""
        skips: tuple[torch.Tensor, ...] = (features,)
        sample = features
        for block in self.down_blocks:
            if getattr(block, "has_cross_attention", False):
                sample, res = block(hidden_states=sample, temb=emb, encoder_hidden_states=context,
                                    attention_mask=attention_mask, cross_attention_kwargs=cross_attention_kwargs,
                                    encoder_attention_mask=encoder_attention_mask)
            else:
                sample, res = block(hidden_states=sample, temb=emb)
            skips += res
        if self.mid_block is not None:
            if getattr(self.mid_block, "has_cross_attention", False):
                sample = self.mid_block(sample, emb, encoder_hidden_states=context, attention_mask=attention_mask,
                                        cross_attention_kwargs=cross_attention_kwargs,
                                        encoder_attention_mask=encoder_attention_mask)
            else:
                sample = self.mid_block(sample, emb)
        return skips, sample

    def exchange(self, skips: tuple[torch.Tensor, ...], mid: torch.Tensor) -> tuple[list[torch.Tensor], torch.Tensor]:
        """This branch's skips and mid output mapped by its exchange layers (to be added to the other)."""
        if len(skips) != len(self.jointnet_down_blocks):
            raise ValueError(f"expected {len(self.jointnet_down_blocks)} skip tensors, got {len(skips)}")
        return [conv(s) for conv, s in zip(self.jointnet_down_blocks, skips)], self.jointnet_mid_block(mid)

    def up(self, mid: torch.Tensor, skips: tuple[torch.Tensor, ...], emb: torch.Tensor, context: torch.Tensor,
           attention_mask: Optional[torch.Tensor] = None, encoder_attention_mask: Optional[torch.Tensor] = None,
           cross_attention_kwargs: Optional[dict] = None) -> torch.Tensor:
        """Up path and output head; returns the prediction (noise, and variance for learned-variance UNets)."""
        factor = 2 ** self.num_upsamplers
        # Sizes that are not multiples of the total upsampling factor need explicit upsample sizes.
        forward_size = any(dim % factor for dim in skips[0].shape[-2:])
        sample = mid
        remaining = tuple(skips)
        for i, block in enumerate(self.up_blocks):
            n = len(block.resnets)
            res, remaining = remaining[-n:], remaining[:-n]
            size = remaining[-1].shape[2:] if forward_size and i < len(self.up_blocks) - 1 else None
            if getattr(block, "has_cross_attention", False):
                sample = block(hidden_states=sample, temb=emb, res_hidden_states_tuple=res,
                               encoder_hidden_states=context, cross_attention_kwargs=cross_attention_kwargs,
                               upsample_size=size, attention_mask=attention_mask,
                               encoder_attention_mask=encoder_attention_mask)
            else:
                sample = block(hidden_states=sample, temb=emb, res_hidden_states_tuple=res, upsample_size=size)
        if self.conv_norm_out is not None:
            sample = self.conv_act(self.conv_norm_out(sample))
        return self.conv_out(sample)
