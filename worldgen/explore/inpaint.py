"""The generic inpainting call every explore task makes: regenerate the masked part of a view
jointly in RGB and the modality with the backend's ``edit`` task, keeping the rest bit for bit.

With an inpainting checkpoint (``rgbd_inpaint_sd21b``) the backend hands the model the paper's
masked input (mask + masked latent per branch); with only the generation checkpoint registered it
re-noises the known part into the latent at every step (mask blending). ``method`` chooses as the
other tasks' ``--method`` does.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import UserInputError
from ..scene.snapshot import Snapshot
from ..geometry.projection import CylindricalProjection
from ..validation import check, check_seed


@dataclass
class InpaintSettings:
    """What every explore task passes to the model."""

    prompt: str = ""
    negative_prompt: str = ""
    steps: int = 50
    guidance: float = 7.5
    seed: int = 0
    method: str = "auto"
    scheduler: str | None = None

    def __post_init__(self) -> None:
        self.steps = check("steps", self.steps)
        self.guidance = check("guidance", self.guidance)
        self.seed = check_seed(self.seed)


def depth_modality(backend, task: str) -> str:
    """The backend's modality, which must be depth: the explore tasks move disparity between views."""
    modality = getattr(backend, "modality", None) or "depth"
    if modality != "depth":
        raise UserInputError(f"{task} needs a depth model (this one generates {modality}); pass --model with a "
                             f"depth checkpoint such as rgbd_inpaint_sd21b")
    return modality


def offers(backend, task: str) -> bool:
    """Whether the backend does ``task`` itself (overrides the base class's refusal)."""
    from ..backend import Backend

    method = getattr(type(backend), task, None)
    return method is not None and method is not getattr(Backend, task, None)


def view_snapshot(image: np.ndarray, modality: np.ndarray, hfov_deg: float, modality_name: str,
                  geometry: dict, prompt: str) -> Snapshot:
    """A perspective view as the snapshot a backend task takes. Its projection only carries the
    size and a span below 360 degrees (so the sampler does not wrap it); nothing reads it as a cylinder."""
    h, w = image.shape[:2]
    return Snapshot(image=image.astype(np.float32), modalities={modality_name: modality.astype(np.float32)},
                    projection=CylindricalProjection(w, h, min(float(hfov_deg), 359.0)), geometry=dict(geometry),
                    prompt=prompt)


def inpaint(backend, view: Snapshot, mask: np.ndarray, settings: InpaintSettings, seed_offset: int = 0,
            progress=None) -> Snapshot:
    """``view`` with the pixels where ``mask`` is True regenerated in both layers (the rest kept exactly)."""
    from ..sampler.requests import EditRequest

    if not mask.any():
        return view
    if mask.all():
        raise UserInputError("nothing known to inpaint from in this view; the band must overlap it")
    request = EditRequest(prompt=settings.prompt or view.prompt, negative_prompt=settings.negative_prompt,
                          steps=settings.steps, guidance=settings.guidance,
                          seed=(settings.seed + seed_offset) % (2 ** 32), scheduler=settings.scheduler,
                          method=settings.method, mask=mask, layers="both")
    return backend.edit(request, view, progress)
