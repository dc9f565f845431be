"""Training a new modality branch beside an existing JointNet (``worldgen train --from MODEL``).

The run trains a model of two parts: the checkpoint's RGB branch (frozen, as read) and ONE new
modality branch, a copy of the checkpoint's first modality branch whose exchange layers and whose
RGB-side link (``branches.RGBLink``) start at zero. Only the new branch and its link train, and the
export re-reads every other branch from the checkpoint's own files, so the RGB and the existing
modality branches come out bit for bit as they went in. With the new branch's layers at zero the
grown model predicts exactly what the checkpoint did (the output-preserving principle).

The new branch learns beside the RGB branch alone: the training data holds images and the new
modality only, so the other branches do not take part in its training steps.
"""

from __future__ import annotations

from pathlib import Path

import torch

from ..errors import UserInputError


def build_new_branch(checkpoint: Path, modality: str):
    """The two-part model a ``--from`` run trains (float32, on the CPU)."""
    from ..backends.jointnet.branch_files import attach_branches, checkpoint_family, checkpoint_modalities
    from ..backends.jointnet.loading import load_pair
    from .models import _placed

    existing = checkpoint_modalities(checkpoint)
    if modality in existing:
        raise UserInputError(f"{checkpoint} already generates {modality!r}; train another modality, or continue "
                             f"it with --base {checkpoint} --stage 2")
    if checkpoint_family(checkpoint) != "sd":
        raise UserInputError(f"{checkpoint} is a pixel-space (IF) model; --from supports Stable Diffusion models")
    full = attach_branches(_placed(load_pair(checkpoint), "cpu", torch.float32), checkpoint)
    if full.has_masked_latent_input:
        raise UserInputError(f"{checkpoint} is an inpainting model; add the branch --from its generation model")
    grown = full.with_new_branch()
    return grown.select([grown.count - 1])


def trainable_new_parts(model) -> list[torch.nn.Parameter]:
    """Mark the new branch and its link as the only trainable parts; returns their parameters."""
    model.requires_grad_(False)
    for part in model.new_parts(0):
        part.requires_grad_(True)
    return [p for p in model.parameters() if p.requires_grad]


def save_with_new_branch(trained, checkpoint: Path, target: Path, modality: str) -> Path:
    """The checkpoint's files as they were plus the trained branch, written to ``target``."""
    from ..backends.jointnet.branch_files import attach_branches, checkpoint_modalities, save_branches
    from ..backends.jointnet.branches import JointNetBranches
    from ..backends.jointnet.loading import load_pair

    full = attach_branches(load_pair(checkpoint), checkpoint)
    links = [None] + [full.link(k) for k in range(1, full.count)]
    grown = JointNetBranches(full.unet, [*full.branches, trained.branches[0]], [*links, trained.link(0)])
    return save_branches(grown, target, [*checkpoint_modalities(checkpoint), modality], family="sd")
