"""Three modalities at once: one RGB branch with two modality branches (e.g. depth and normals).

Two JointNet checkpoints fine-tuned from the same RGB branch (the published stage-1 checkpoints
keep it frozen, so a depth and a normal checkpoint carry identical ``unet/`` folders) can share
that branch. One denoising evaluation then runs three branches:

1. each branch's input features: its own latent through ``conv_in`` plus, through its
   ``jointnet_rgb_in_trans``, the other side's latent. The RGB branch's other side is the MEAN of
   the two modality latents (and, for inpainting checkpoints, the mean of their masks and masked
   latents); each modality branch's other side is the RGB latent, as in a pair;
2. the three down paths and mid blocks run independently;
3. the RGB branch's exchange output goes to both modality branches; the RGB branch receives the
   MEAN of the two modality branches' exchange outputs;
4. each branch runs its up path on the sums.

Why means: the RGB branch's exchange layers were trained with one partner; the mean keeps what it
receives at the scale it was trained on, and with two identical partners the computation is
exactly the pair's (``tests/worldbuilding`` checks that). Where a stage-1 RGB branch receives
nothing (its incoming exchange is zero), the choice does not matter at all.

``check_same_rgb_branch`` compares the two RGB branches' configs and state dicts and refuses any
difference: with different RGB branches there is no single RGB prediction to share.
"""

from __future__ import annotations

from typing import Optional

import torch

from worldgen.errors import ModelError, UserInputError

from .backend import JointNetBackend
from .pair import JointNetPair, _attention_bias
from .settings import resolve_model

# Config keys that describe where a branch came from, not what it computes.
_CONFIG_IGNORED = ("_name_or_path", "_diffusers_version", "_class_name", "_use_default_values")


def rgb_branch_difference(first, second) -> Optional[str]:
    """None when the two RGB branches are identical (config and every tensor), else what differs first."""
    config_a = {k: v for k, v in dict(first.config).items() if k not in _CONFIG_IGNORED}
    config_b = {k: v for k, v in dict(second.config).items() if k not in _CONFIG_IGNORED}
    for key in sorted(set(config_a) | set(config_b)):
        if config_a.get(key) != config_b.get(key):
            return f"config {key}: {config_a.get(key)!r} vs {config_b.get(key)!r}"
    state_a, state_b = _own_weights(first), _own_weights(second)
    if set(state_a) != set(state_b):
        return f"weights {sorted(set(state_a) ^ set(state_b))[0]} exist in only one of them"
    for key, tensor in state_a.items():
        other = state_b[key]
        if tensor.shape != other.shape or not torch.equal(tensor, other.to(tensor.device, tensor.dtype)):
            return f"weights {key}"
    return None


def _own_weights(branch) -> dict:
    """The branch's state dict without diffusers' fused attention projections (``to_qkv``/``to_kv``,
    added on GPUs for speed): they are copies of ``to_q``/``to_k``/``to_v``, which are compared."""
    return {k: v for k, v in branch.state_dict().items() if ".to_qkv." not in k and ".to_kv." not in k}


def check_same_rgb_branch(first_pair, second_pair, first_name: str = "the first model",
                          second_name: str = "the second model") -> None:
    """Raise ``ModelError`` naming the first difference unless both pairs share their RGB branch."""
    difference = rgb_branch_difference(first_pair.unet, second_pair.unet)
    if difference is not None:
        raise ModelError(f"{first_name} and {second_name} have different RGB branches ({difference}); three "
                         f"modalities at once need two checkpoints fine-tuned from the same RGB branch (stage-1 "
                         f"checkpoints); generate with one model and estimate the other modality afterwards")


class JointNetTriple(JointNetPair):
    """``unet`` is the shared RGB branch, ``jointnet`` and ``second`` the two modality branches.

    Same call signature as ``JointNetPair`` (so the tiled backend drives it unchanged): the
    modality side ``x_joint`` is the (N, 2C, h, w) stack of both modality latents, ``mask_joint``
    (N, 2, h, w) and ``masked_joint`` (N, 2C, h, w); the modality prediction comes back stacked."""

    def __init__(self, unet, jointnet, second):
        super().__init__(unet, jointnet)
        if second.has_masked_latent_input != unet.has_masked_latent_input:
            raise ModelError("one checkpoint is an inpainting checkpoint and the other is not; pair two of "
                             "the same kind")
        if second.skip_channels() != unet.skip_channels():
            raise ModelError("the second modality branch has a different down path than the RGB branch")
        if self.learned_variance:
            raise ModelError("three modalities at once support latent (Stable Diffusion) JointNets only")
        self.second = second

    def forward(self, x_rgb, x_joint, timestep, encoder_hidden_states, mask_rgb=None, masked_rgb=None,
                mask_joint=None, masked_joint=None, *, encoder_attention_mask=None,
                cross_attention_kwargs=None, added_cond_kwargs=None):
        c = self.in_channels
        if x_joint.shape[1] != 2 * c:
            raise ValueError(f"x_joint has {x_joint.shape[1]} channels; expected {2 * c} (two modality latents)")
        xs = (x_joint[:, :c], x_joint[:, c:])
        rgb, branches = self.unet, (self.jointnet, self.second)
        masked_rgb_in, masked_mod_in = self._three_masked_inputs(mask_rgb, masked_rgb, mask_joint, masked_joint)

        attn = dict(encoder_attention_mask=_attention_bias(encoder_attention_mask, x_rgb.dtype),
                    cross_attention_kwargs=cross_attention_kwargs)
        emb_a, ctx_a = rgb.embed(x_rgb, timestep, encoder_hidden_states, added_cond_kwargs)
        # The conv is affine, so the mean of the two latents maps to the mean of their contributions.
        skips_a, mid_a = rgb.down(rgb.input_features(x_rgb, (xs[0] + xs[1]) / 2, masked_rgb_in),
                                  emb_a, ctx_a, **attn)
        to_mods, mid_to_mods = rgb.exchange(skips_a, mid_a)
        states = []
        for branch, x, masked in zip(branches, xs, masked_mod_in):
            emb, ctx = branch.embed(x, timestep, encoder_hidden_states, added_cond_kwargs)
            skips, mid = branch.down(branch.input_features(x, x_rgb, masked), emb, ctx, **attn)
            states.append((emb, ctx, skips, mid, branch.exchange(skips, mid)))
        to_a = [(s + t) / 2 for s, t in zip(states[0][4][0], states[1][4][0])]
        mid_to_a = (states[0][4][1] + states[1][4][1]) / 2
        eps_a = rgb.up(mid_a + mid_to_a, tuple(s + e for s, e in zip(skips_a, to_a)), emb_a, ctx_a, **attn)
        eps_mods = [branch.up(mid + mid_to_mods, tuple(s + e for s, e in zip(skips, to_mods)), emb, ctx, **attn)
                    for branch, (emb, ctx, skips, mid, _) in zip(branches, states)]
        return eps_a, torch.cat(eps_mods, dim=1)

    def _three_masked_inputs(self, mask_rgb, masked_rgb, mask_joint, masked_joint):
        given = [t is not None for t in (mask_rgb, masked_rgb, mask_joint, masked_joint)]
        if not self.has_masked_latent_input:
            if any(given):
                raise ValueError("these JointNets have no masked-latent input; use inpainting checkpoints")
            return None, (None, None)
        if not all(given):
            raise ValueError("inpainting JointNets need mask_rgb, masked_rgb, mask_joint and masked_joint")
        c = self.in_channels
        masks = (mask_joint[:, :1], mask_joint[:, 1:2])
        latents = (masked_joint[:, :c], masked_joint[:, c:])
        rgb_in = torch.cat([mask_rgb, masked_rgb, (masks[0] + masks[1]) / 2, (latents[0] + latents[1]) / 2], 1)
        mods_in = tuple(torch.cat([m, lat, mask_rgb, masked_rgb], 1) for m, lat in zip(masks, latents))
        return rgb_in, mods_in


def make_triple(first_pair, second_pair, first_name: str = "the first model", second_name: str = "the second model"):
    """One RGB branch (the first pair's) with both pairs' modality branches; refuses different RGB branches."""
    check_same_rgb_branch(first_pair, second_pair, first_name, second_name)
    return JointNetTriple(first_pair.unet, first_pair.jointnet, second_pair.jointnet).eval()


# The backend --------------------------------------------------------------------------------------

class MultiModalBackend(JointNetBackend):
    """The JointNet backend with a second modality: every task makes or keeps both modality layers.

    The modality layers travel through the shared task code as one stacked canvas (first modality's
    channels, then the second's), which ``_split_modalities`` turns back into named layers."""

    latent_layers = 3

    @classmethod
    def from_settings(cls, settings: dict) -> "MultiModalBackend":
        import dataclasses

        from worldgen.sampler import perf

        from .loading import load_pair
        from .store import checkpoint_modality

        settings = dict(settings)
        extra = settings.get("extra_model")
        if not extra:
            raise UserInputError("three modalities need a second checkpoint; pass extra_model")
        backend = super().from_settings(settings)
        extra_dir, _ = resolve_model(str(extra), settings.get("base") or str(backend.base_dir))
        second_modality = checkpoint_modality(extra_dir)
        if second_modality == backend.modality:
            raise UserInputError(f"both checkpoints generate {second_modality!r}; the extra model must make another "
                                 f"modality (e.g. a normal checkpoint beside a depth one)")
        second = load_pair(extra_dir, dtype=backend.pipe.jointnet.dtype, device=backend.device)
        first = backend.pipe.jointnet
        triple = make_triple(first, second, backend.model_dir.name, extra_dir.name).to(backend.device)
        # The first pair got the backend's speed settings when it was built; give the triple the same
        # (its new branch is fused, its own forward compiled where the settings say so).
        perf.speed_up(triple.second, dataclasses.replace(backend.speed, compile=False))
        perf.speed_up(triple, backend.speed)
        backend.pipe.register_modules(jointnet=triple)
        backend.extra_dir = extra_dir
        backend.modalities = (backend.modality, second_modality)
        return backend

    def settings(self) -> dict:
        from .registered import registered

        entry = registered(self.extra_dir)  # by its registered name where it has one, as the main model
        return {**super().settings(), "extra_model": entry.name if entry is not None else str(self.extra_dir)}

    # The stacked modality canvas ------------------------------------------------------------------
    def _specs(self):
        from worldgen.registry import get_registry

        return [get_registry().modality(name) for name in self.modalities]

    def _split_modalities(self, stacked) -> dict:
        out, start = {}, 0
        for spec in self._specs():
            out[spec.name] = stacked[..., start:start + spec.channels]
            start += spec.channels
        return out

    def _stack(self, snapshot, task: str):
        import numpy as np

        missing = [name for name in self.modalities if name not in snapshot.modalities]
        if missing:
            raise UserInputError(f"the scene has no {missing[0]!r} layer, which {task} with {' + '.join(self.modalities)} "
                                 f"needs; add it with `worldgen {missing[0]}` or run with one model")
        return np.concatenate([snapshot.modalities[name] for name in self.modalities], axis=-1).astype(np.float32)

    def _modality_of(self, snapshot, task: str):
        return self._stack(snapshot, task)

    def _check_modality(self, name: Optional[str]) -> None:
        if name and name not in self.modalities:
            raise UserInputError(f"these models generate {' and '.join(self.modalities)}, not {name!r}; pass "
                                 f"--modality {self.modalities[0]}")

    def outpaint(self, request, snapshot, progress=None):
        from worldgen.scene.snapshot import Snapshot

        stacked = Snapshot(image=snapshot.image, modalities={self.modality: self._stack(snapshot, "outpaint")},
                           projection=snapshot.projection, geometry=snapshot.geometry, prompt=snapshot.prompt)
        return super().outpaint(request, stacked, progress)

    def _encode(self, job, circular: bool, progress):
        import numpy as np
        import torch

        image = job.image if job.image is not None else np.full((job.height, job.width, 3), 0.5, np.float32)
        planes = [torch.from_numpy(np.ascontiguousarray(image, dtype=np.float32)).permute(2, 0, 1) * 2 - 1]
        layers = self._split_modalities(job.modality) if job.modality is not None else {}
        for spec in self._specs():
            if spec.name in layers:
                encoded = np.ascontiguousarray(spec.encode(layers[spec.name]), dtype=np.float32)
                planes.append(torch.from_numpy(encoded).permute(2, 0, 1))
            else:
                planes.append(torch.zeros_like(planes[0]))
        latents = self.vae.encode(torch.stack(planes), circular, progress)
        return latents.reshape(1, -1, *latents.shape[-2:]).to(self.device, self.pipe.jointnet.dtype)

    def _decode(self, latents, circular: bool, progress):
        import numpy as np

        c = self.channels
        both = latents.reshape(self.latent_layers, c, *latents.shape[-2:])  # one image per layer
        pixels = self.vae.decode(both, circular, progress).float().cpu()
        image = ((pixels[0].permute(1, 2, 0) + 1) / 2).clamp(0, 1).numpy().astype(np.float32)
        layers = [np.asarray(spec.decode(pixels[k + 1].permute(1, 2, 0).clamp(-1, 1).numpy()), np.float32)
                  for k, spec in enumerate(self._specs())]
        return image, np.concatenate(layers, axis=-1)

    def _masked_inputs(self, known_latents, keep, size):
        """As the pair's, with the modality side stacked: masks (1, 2, h, w), latents (1, 2C, h, w)."""
        c, (h, w) = self.channels, size
        dtype = self.pipe.jointnet.dtype
        if known_latents is None:
            ones = torch.ones(1, 1, h, w, device=self.device, dtype=dtype)
            zeros = torch.zeros(1, c, h, w, device=self.device, dtype=dtype)
            return ones, zeros, ones.repeat(1, 2, 1, 1), zeros.repeat(1, 2, 1, 1)
        keep = keep.to(self.device, dtype)
        lat = known_latents.to(self.device, dtype)
        mask_rgb = 1 - keep[:, :1]
        mask_mods = torch.cat([1 - keep[:, c:c + 1], 1 - keep[:, 2 * c:2 * c + 1]], dim=1)
        return mask_rgb, lat[:, :c] * keep[:, :1], mask_mods, lat[:, c:] * keep[:, c:]

