"""The offline default backend: a deterministic, prompt-shaped RGB + depth panorama on the CPU.

It exists so worldgen works on a fresh machine with no model weights: the scene it makes is a
real layered world (sky at infinity, ridges at distinct distances, a ground plane receding from
the camera), not noise. Its manifest records ``procedural``; nothing pretends to be diffusion.

Depth is produced as metric horizontal distance and stored as disparity with the exact
scale/shift that converts it back (see ``worldgen.geometry.world`` conventions).
"""

from __future__ import annotations

import hashlib
from typing import Optional

from worldgen.backend import Backend, GenerateRequest
from worldgen.specs import BackendSpec

NEAR_M = 1.0
FAR_M = 1000.0
EYE_HEIGHT_M = 1.6


def _load(settings: dict) -> "ProceduralBackend":
    return ProceduralBackend()


SPEC = BackendSpec(
    name="procedural",
    description="offline, deterministic layered landscape from prompt keywords (no weights; not diffusion)",
    load=_load,
    tasks=("generate",),
    available=lambda: True,
)


class ProceduralBackend(Backend):
    name = "procedural"

    def generate(self, request: GenerateRequest, progress=None):
        from worldgen.scene.snapshot import Snapshot
        from worldgen.progress import report

        from ._procedural_world import Recipe, render

        if request.modality not in ("depth", "normal"):
            from worldgen.errors import UserInputError

            raise UserInputError(f"the procedural backend makes depth (and normals from it), not {request.modality!r}; "
                                 "pass --modality depth or use a JointNet model trained for it")
        recipe = Recipe.from_prompt(request.prompt)
        report(progress, "procedural", 0, 3, "layout")
        image, distance, projection = render(recipe, request.width, request.height, request.span_deg,
                                             seed=_stable_seed(request.seed, request.prompt))
        report(progress, "procedural", 2, 3, "layers")
        disparity = to_disparity(distance)
        if request.regions:
            image, disparity = _with_regions(request, recipe, image, disparity)
        geometry = {"disparity_scale": 1.0 / NEAR_M - 1.0 / FAR_M, "disparity_shift": 1.0 / FAR_M,
                    "near": NEAR_M, "far": FAR_M, "eye_height": EYE_HEIGHT_M}
        modalities = {"depth": disparity[..., None]}
        snapshot = Snapshot(image=image, modalities=modalities, projection=projection, geometry=geometry,
                            prompt=request.prompt)
        if request.modality == "normal":
            snapshot.modalities["normal"] = _normals(snapshot)
        report(progress, "procedural", 3, 3, "done")
        return snapshot

    def settings(self) -> dict:
        return {"generator": "procedural", "near": NEAR_M, "far": FAR_M}


def to_disparity(distance):
    """Metric distance -> disparity in [0, 1] with near = 1; exact inverse of the stored scale/shift."""
    import numpy as np

    inv = 1.0 / np.clip(distance, NEAR_M, FAR_M)
    return ((inv - 1.0 / FAR_M) / (1.0 / NEAR_M - 1.0 / FAR_M)).astype(np.float32)


def _with_regions(request: GenerateRequest, base, image, disparity):
    """Region prompts, procedurally: inside each region its own words choose the terrain (the sky,
    light, mist and seed stay the panorama's, so the regions share one sky), blended into the
    panorama with the regions' soft per-pixel weights (``worldgen.geometry.regions.condition_weights``)."""
    import dataclasses

    from worldgen.geometry.regions import blend_by_weights, condition_weights, normalize_regions

    from ._procedural_world import Recipe, render

    regions = normalize_regions(request.regions)
    weights = condition_weights(regions, request.width, request.height, request.span_deg)
    seed = _stable_seed(request.seed, request.prompt)
    images, disparities = [image], [disparity[..., None]]
    for region in regions:
        recipe = dataclasses.replace(Recipe.from_prompt(region.prompt), time_of_day=base.time_of_day, mist=base.mist)
        region_image, distance, _ = render(recipe, request.width, request.height, request.span_deg, seed=seed)
        images.append(region_image)
        disparities.append(to_disparity(distance)[..., None])
    return blend_by_weights(images, weights), blend_by_weights(disparities, weights)[..., 0]


def _normals(snapshot):
    from worldgen.registry import get_registry

    spec = get_registry().modality("normal")
    return spec.estimator(snapshot.image, depth=snapshot.modalities["depth"], projection=snapshot.projection,
                          geometry=snapshot.geometry).astype("float32")


def _stable_seed(seed: int, prompt: Optional[str]) -> int:
    """Same seed and prompt, same world, on every machine (Python's hash() is salted per process)."""
    digest = hashlib.sha256(f"{seed}:{prompt}".encode()).digest()
    return int.from_bytes(digest[:8], "little")
