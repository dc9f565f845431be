"""The JointNet backend for a checkpoint with several modality branches (``branches.JointNetBranches``).

Every task makes or keeps all the chosen modality layers in one pass: the modality layers travel
through the shared task code as one stacked canvas, exactly as for ``MultiModalBackend`` (whose
canvas handling this reuses). ``modality`` (a setting; CLI ``--modality depth,edges``) picks
branches; default: all the checkpoint has.
"""

from __future__ import annotations

from typing import Optional

from worldgen.errors import UserInputError

from .backend import JointNetBackend, resolve_model
from .multimodal import MultiModalBackend


def backend_class(settings: dict) -> type:
    """``BranchesBackend`` for a checkpoint of several modalities, else the plain backend (after
    checking that a ``modality`` setting names the checkpoint's own)."""
    from .branch_files import checkpoint_family, checkpoint_modalities, modality_indices

    model_dir, _ = resolve_model(settings.get("model"), settings.get("base"))
    available = checkpoint_modalities(model_dir)
    if checkpoint_family(model_dir) == "if":
        from .if_backend import DeepFloydBackend

        if len(available) > 1:
            raise UserInputError(f"{model_dir}: several modality branches work on Stable Diffusion models only for now")
        modality_indices(available, settings.get("modality"))
        return DeepFloydBackend
    modality_indices(available, settings.get("modality"))  # a modality the model lacks: one line, now
    from worldgen.registry import get_registry

    from .depth_layer import GEOMETRY_ROLES

    # A model without a geometric layer needs its depth added (``generate`` below) to make a world.
    geometric = any(get_registry().modality(name).geometry in GEOMETRY_ROLES for name in available)
    return BranchesBackend if len(available) > 1 or not geometric else JointNetBackend


class BranchesBackend(MultiModalBackend):
    """RGB plus the chosen modality branches of one checkpoint."""

    selection: Optional[str] = None

    @classmethod
    def from_settings(cls, settings: dict) -> "BranchesBackend":
        import dataclasses

        from worldgen.sampler import perf

        from .branch_files import attach_branches, checkpoint_modalities, modality_indices

        backend = JointNetBackend.from_settings.__func__(cls, settings)
        available = checkpoint_modalities(backend.model_dir)
        indices = modality_indices(available, settings.get("modality"))
        pair = backend.pipe.jointnet
        full = attach_branches(pair, backend.model_dir, pair.dtype, backend.device)
        model = full.select(indices)
        for branch in model.branches:
            if branch is not pair.jointnet:  # the pair's branch got the speed settings already
                perf.speed_up(branch, dataclasses.replace(backend.speed, compile=False))
        perf.speed_up(model, backend.speed)
        backend.full_model, backend.available = full, tuple(available)
        backend._use(model, indices)
        backend.selection = settings.get("modality")
        return backend

    def _use(self, model, indices) -> None:
        """Run ``model`` (branches ``indices`` of the checkpoint) from now on."""
        self.pipe.register_modules(jointnet=model)
        self.modalities = tuple(self.available[k] for k in indices)
        self.modality = self.modalities[0]
        self.latent_layers = 1 + len(indices)

    def generate(self, request, progress=None):
        """The chosen layers; a world without a geometric one also gets depth (depth_layer.py)."""
        from .depth_layer import add_depth, has_geometry

        snapshot = super().generate(request, progress)
        if has_geometry(snapshot):
            return snapshot
        return add_depth(snapshot, self, request.steps, request.seed, progress)

    # Tasks on a scene keep its layers that this model does not make (e.g. an estimated depth) ----
    def refine(self, request, snapshot, progress=None):
        result = super().refine(request, snapshot, progress)
        return self._with_kept_layers(snapshot, result, request, progress, resized=True)

    def outpaint(self, request, snapshot, progress=None):
        return self._with_kept_layers(snapshot, super().outpaint(request, snapshot, progress), request, progress)

    def paint(self, request, snapshot, progress=None):
        return self._with_kept_layers(snapshot, super().paint(request, snapshot, progress), request, progress)

    def edit(self, request, snapshot, progress=None):
        return self._with_kept_layers(snapshot, super().edit(request, snapshot, progress), request, progress)

    def _with_kept_layers(self, before, after, request, progress, resized: bool = False):
        """``after`` plus ``before``'s other layers where the canvas is the same (``resized``: the same
        view at another size, as a refine makes it); a canvas that changed otherwise (outpainting)
        gets its depth anew."""
        from worldgen.sampler.canvas import resize_nearest

        from .depth_layer import add_depth, has_geometry, with_layers

        others = {k: v for k, v in before.modalities.items() if k not in after.modalities}
        if others and (after.size == before.size or resized):
            w, h = after.size
            after = with_layers(after, {k: v if v.shape[:2] == (h, w) else resize_nearest(v, w, h)
                                        for k, v in others.items()})
        if has_geometry(after) or not has_geometry(before):
            return after
        return add_depth(after, self, request.steps, request.seed, progress)

    def estimate_depth(self, snapshot, steps: int, seed: int, progress=None):
        """The checkpoint's depth branch estimates depth for the snapshot's image (RGB kept)."""
        from .depth_layer import estimate_request, with_layers

        running = self.pipe.jointnet, [self.available.index(n) for n in self.modalities]
        depth = self.full_model.select([self.available.index("depth")])
        self._use(depth, [self.available.index("depth")])
        try:
            result = self.estimate(estimate_request(snapshot, steps, seed), progress)
        finally:
            self._use(*running)
        return with_layers(snapshot, {"depth": result.modalities["depth"]})

    def settings(self) -> dict:
        own = JointNetBackend.settings(self)
        return {**own, "modality": self.selection} if self.selection else own

    def _check_modality(self, name: Optional[str]) -> None:
        if name and name not in self.modalities:
            raise UserInputError(f"this model generates {', '.join(self.modalities)}, not {name!r}; pass "
                                 f"--modality {','.join(self.modalities)}")

    def _masked_inputs(self, known_latents, keep, size):
        """Masks (1, K, h, w) and masked latents (1, K*C, h, w) of the K stacked modality layers."""
        import torch

        c, (h, w), k = self.channels, size, self.latent_layers - 1
        dtype = self.pipe.jointnet.dtype
        if known_latents is None:
            ones = torch.ones(1, 1, h, w, device=self.device, dtype=dtype)
            zeros = torch.zeros(1, c, h, w, device=self.device, dtype=dtype)
            return ones, zeros, ones.repeat(1, k, 1, 1), zeros.repeat(1, k, 1, 1)
        keep = keep.to(self.device, dtype)
        lat = known_latents.to(self.device, dtype)
        mask_mods = torch.cat([1 - keep[:, j * c:j * c + 1] for j in range(1, k + 1)], dim=1)
        return 1 - keep[:, :1], lat[:, :c] * keep[:, :1], mask_mods, lat[:, c:] * keep[:, c:]
