"""N modality branches around one RGB branch: the JointNet exchange, once per modality.

Each modality branch is a ``JointNetModel`` exchanging with the RGB branch exactly as the modality
branch of a pair does. What the RGB branch needs per partner (its ``jointnet_rgb_in_trans`` for the
partner's latent, its ``jointnet_down_blocks``/``jointnet_mid_block`` that send RGB features to the
partner, its masked-latent conv) is a *link*:

* the first branch of an official checkpoint (``jointnet/``) uses the RGB branch's own exchange
  layers as its link, so a two-branch checkpoint is the N = 1 case and computes what the pair does,
  operation for operation;
* every added branch has its own ``RGBLink`` module, with the same four layer names, on the RGB
  side. The added branch's own exchange layers and its link start at zero (``zero_exchange_``):
  the RGB prediction and every other branch's prediction are then exactly what they were.

One evaluation: every branch's input features (the RGB branch adds every link's mapping of its
partner's latent); every down path and mid block; the RGB branch ADDS what each branch sends
(``branch.exchange``) and each branch adds what its link sends from the RGB features; every up path.
The modality side of ``forward`` is stacked on channels as in ``multimodal.JointNetTriple``
(branch k's latent is channels k*C..(k+1)*C); for learned-variance UNets the stacked prediction is
every branch's noise half, then every branch's variance half.
"""

from __future__ import annotations

from typing import Optional, Sequence

import torch
from torch import nn

from .model import JointNetModel
from .pair import JointNetPair, _attention_bias


class RGBLink(nn.Module):
    """The RGB-side layers of one added modality branch (names as in a branch's state dict)."""

    def __init__(self, rgb: JointNetModel, partner: JointNetModel):
        super().__init__()
        width, kernel = rgb.config.block_out_channels[0], rgb.config.conv_in_kernel
        padding = (kernel - 1) // 2
        channels = partner.config.in_channels
        self.jointnet_rgb_in_trans = nn.Conv2d(channels, width, kernel_size=kernel, padding=padding)
        self.jointnet_down_blocks = nn.ModuleList(nn.Conv2d(c, c, kernel_size=1) for c in rgb.skip_channels())
        mid = rgb.config.block_out_channels[-1]
        self.jointnet_mid_block = nn.Conv2d(mid, mid, kernel_size=1)
        if rgb.has_masked_latent_input:
            masked_in = 1 + rgb.config.in_channels + 1 + channels
            self.jointnet_masked_latent_conv = nn.Conv2d(masked_in, width, kernel_size=kernel, padding=padding)
        else:
            self.jointnet_masked_latent_conv = None
        self.zero_exchange_()

    def exchange_modules(self) -> list[nn.Conv2d]:
        return JointNetModel.exchange_modules(self)

    zero_exchange_ = JointNetModel.zero_exchange_
    exchange = JointNetModel.exchange

    def input_features(self, other: torch.Tensor, masked: Optional[torch.Tensor]) -> torch.Tensor:
        """What this partner adds to the RGB branch's conv_in output."""
        features = self.jointnet_rgb_in_trans(other)
        if self.jointnet_masked_latent_conv is not None:
            features = features + self.jointnet_masked_latent_conv(masked)
        return features


class JointNetBranches(JointNetPair):
    """``unet``: the RGB branch; ``branches``: the modality branches; ``links``: one ``RGBLink`` per
    branch, or None for the (first) branch that uses the RGB branch's own exchange layers."""

    def __init__(self, unet: JointNetModel, branches: Sequence[JointNetModel],
                 links: Sequence[Optional[RGBLink]]):
        if not branches or len(branches) != len(links):
            raise ValueError("give one link (or None) per modality branch, and at least one branch")
        if any(link is None for link in links[1:]):
            raise ValueError("only the first branch may use the RGB branch's own exchange layers")
        super().__init__(unet, branches[0])
        for branch in branches[1:]:
            if branch.has_masked_latent_input != unet.has_masked_latent_input:
                raise ValueError("every branch must agree on has_masked_latent_input")
            if branch.skip_channels() != unet.skip_channels():
                raise ValueError("a modality branch has a different down path than the RGB branch")
        del self.jointnet  # registered again below, as branches[0]
        self.branches = nn.ModuleList(branches)
        self.own_link = links[0] is None
        self.links = nn.ModuleList(links[1:] if self.own_link else links)

    @property
    def jointnet(self) -> JointNetModel:
        return self.branches[0]

    def link(self, k: int):
        """The RGB-side layers of branch ``k`` (the RGB branch itself for an official first branch)."""
        if self.own_link:
            return self.unet if k == 0 else self.links[k - 1]
        return self.links[k]

    @property
    def count(self) -> int:
        return len(self.branches)

    def new_parts(self, k: int) -> list[nn.Module]:
        """The modules that belong to branch ``k`` alone (the branch and, if it has one, its link)."""
        link = self.link(k)
        return [self.branches[k]] + ([] if link is self.unet else [link])

    def forward(self, x_rgb, x_joint, timestep, encoder_hidden_states, mask_rgb=None, masked_rgb=None,
                mask_joint=None, masked_joint=None, *, encoder_attention_mask=None,
                cross_attention_kwargs=None, added_cond_kwargs=None):
        c, n = self.in_channels, self.count
        if x_joint.shape[1] != n * c:
            raise ValueError(f"x_joint has {x_joint.shape[1]} channels; expected {n * c} ({n} modality latents)")
        xs = [x_joint[:, k * c:(k + 1) * c] for k in range(n)]
        rgb_masked, branch_masked = self._split_masked(n, mask_rgb, masked_rgb, mask_joint, masked_joint)
        attn = dict(encoder_attention_mask=_attention_bias(encoder_attention_mask, x_rgb.dtype),
                    cross_attention_kwargs=cross_attention_kwargs)
        rgb = self.unet
        emb_a, ctx_a = rgb.embed(x_rgb, timestep, encoder_hidden_states, added_cond_kwargs)
        skips_a, mid_a = rgb.down(self._rgb_features(x_rgb, xs, rgb_masked), emb_a, ctx_a, **attn)
        states = []
        for branch, x, masked in zip(self.branches, xs, branch_masked):
            emb, ctx = branch.embed(x, timestep, encoder_hidden_states, added_cond_kwargs)
            skips, mid = branch.down(branch.input_features(x, x_rgb, masked), emb, ctx, **attn)
            states.append((emb, ctx, skips, mid))
        # The RGB branch adds what every branch sends; each branch adds what its link sends.
        skips_in, mid_in = list(skips_a), mid_a
        for branch, (_, _, skips, mid) in zip(self.branches, states):
            sent, mid_sent = branch.exchange(skips, mid)
            skips_in = [s + e for s, e in zip(skips_in, sent)]
            mid_in = mid_in + mid_sent
        eps_a = rgb.up(mid_in, tuple(skips_in), emb_a, ctx_a, **attn)
        eps = []
        for k, (branch, (emb, ctx, skips, mid)) in enumerate(zip(self.branches, states)):
            to_b, mid_to_b = self.link(k).exchange(skips_a, mid_a)
            eps.append(branch.up(mid + mid_to_b, tuple(s + e for s, e in zip(skips, to_b)), emb, ctx, **attn))
        return eps_a, self._stack(eps)

    def _rgb_features(self, x_rgb, xs, rgb_masked):
        """conv_in of the RGB latent plus every partner's latent (and masked inputs) mapped in."""
        if self.own_link:
            features = self.unet.input_features(x_rgb, xs[0], rgb_masked[0])
        else:
            if self.unet.config.center_input_sample:
                x_rgb = 2 * x_rgb - 1.0
            features = self.unet.conv_in(x_rgb)
        for k in range(1 if self.own_link else 0, self.count):
            x = 2 * xs[k] - 1.0 if self.unet.config.center_input_sample else xs[k]
            features = features + self.link(k).input_features(x, rgb_masked[k])
        return features

    def _stack(self, eps: list[torch.Tensor]) -> torch.Tensor:
        if not self.learned_variance:
            return torch.cat(eps, dim=1)
        c = self.in_channels
        return torch.cat([e[:, :c] for e in eps] + [e[:, c:] for e in eps], dim=1)

    def _combine(self, eps: torch.Tensor, scale: float, n: int) -> torch.Tensor:
        uncond, cond = eps[:n], eps[n:]
        if self.learned_variance:  # noise halves first (see _stack), the variance from the cond half
            half = eps.shape[1] // 2
            guided = uncond[:, :half] + scale * (cond[:, :half] - uncond[:, :half])
            return torch.cat([guided, cond[:, half:]], dim=1)
        return uncond + scale * (cond - uncond)

    def _split_masked(self, n, mask_rgb, masked_rgb, mask_joint, masked_joint):
        """Per-branch masked inputs: (RGB side per partner, each branch's own), or Nones."""
        given = [t is not None for t in (mask_rgb, masked_rgb, mask_joint, masked_joint)]
        if not self.has_masked_latent_input:
            if any(given):
                raise ValueError("this JointNet has no masked-latent input; use an inpainting checkpoint for masks")
            return [None] * n, [None] * n
        if not all(given):
            raise ValueError("an inpainting JointNet needs mask_rgb, masked_rgb, mask_joint and masked_joint")
        c = self.in_channels
        masks = [mask_joint[:, k:k + 1] for k in range(n)]
        latents = [masked_joint[:, k * c:(k + 1) * c] for k in range(n)]
        rgb_side = [torch.cat([mask_rgb, masked_rgb, m, lat], 1).to(masked_rgb.dtype) for m, lat in zip(masks, latents)]
        own = [torch.cat([m, lat, mask_rgb, masked_rgb], 1).to(masked_rgb.dtype) for m, lat in zip(masks, latents)]
        return rgb_side, own

    # ---- building -----------------------------------------------------------------------------

    @classmethod
    def from_pair(cls, pair: JointNetPair) -> "JointNetBranches":
        """The pair as the N = 1 case (the same modules, nothing copied)."""
        if isinstance(pair, JointNetBranches):
            return pair
        return cls(pair.unet, [pair.jointnet], [None])

    def with_new_branch(self, source: Optional[JointNetModel] = None) -> "JointNetBranches":
        """These branches plus a new one copied from ``source`` (default: the first modality branch),
        its own exchange and its link at zero: every existing prediction stays exactly as it was."""
        source = source if source is not None else self.branches[0]
        branch = JointNetModel.from_unet(source, masked_latent_input=self.has_masked_latent_input,
                                         joint_in_channels=source.config.joint_in_channels).zero_exchange_()
        param = next(self.unet.parameters())
        link = nn.Module.to(RGBLink(self.unet, branch), device=param.device, dtype=param.dtype)
        links = [None if self.own_link and k == 0 else self.link(k) for k in range(self.count)]
        return JointNetBranches(self.unet, [*self.branches, branch], [*links, link])

    def select(self, indices: Sequence[int]) -> "JointNetBranches":
        """A model of the chosen branches only (shares their modules)."""
        indices = list(indices)
        links = [None if self.own_link and k == 0 else self.link(k) for k in indices]
        if None in links[1:]:  # the official branch after another: keep it first
            order = sorted(range(len(indices)), key=lambda i: links[i] is not None)
            indices, links = [indices[i] for i in order], [links[i] for i in order]
        return JointNetBranches(self.unet, [self.branches[k] for k in indices], links)
