"""The offline default backend: a prompt-shaped 3D landscape rendered as an RGB-D panorama on the CPU.

It exists so worldgen works on a fresh machine with no model weights. The world is a real place
(``world.ProceduralWorld``): a periodic heightfield shaped by the prompt's landform, with water,
plants, sky, clouds and air, and the panorama is ray-marched from an eye 1.6 m above its ground,
so every pixel's depth is the true distance to what it shows. Its manifest records
``procedural``; nothing pretends to be diffusion. The words it understands are in
``vocabulary.py`` and ``docs/procedural.md``; words it cannot model are recorded in the
snapshot's ``geometry["procedural"]["note"]``.

Depth is stored as disparity with the exact scale/shift that converts it back to metric distance
from the panorama's axis (the horizontal distance of ``worldgen.geometry``; with the row's slope
it places the point the pixel shows exactly); the sky sits at ``FAR_M``. The snapshot also carries the
world itself as ``snapshot.terrain`` (in memory only), so the GLB exporter can add the ground
around the eye as a mesh.
"""

from __future__ import annotations

import hashlib
from typing import Optional

from worldgen.backend import Backend, GenerateRequest
from worldgen.specs import BackendSpec

NEAR_M = 0.5
FAR_M = 3900.0  # the sky; just beyond the farthest land a ray reaches (render.MAX_DISTANCE_M)
EYE_HEIGHT_M = 1.6


def _load(settings: dict) -> "ProceduralBackend":
    return ProceduralBackend()


SPEC = BackendSpec(
    name="procedural",
    description="offline, deterministic 3D landscape from prompt words, ray-marched to RGB-D (no weights; not diffusion)",
    load=_load,
    tasks=("generate",),
    available=lambda: True,
)


class ProceduralBackend(Backend):
    name = "procedural"

    def generate(self, request: GenerateRequest, progress=None):
        from worldgen.errors import UserInputError
        from worldgen.scene.snapshot import Snapshot
        from worldgen.progress import report
        from worldgen.geometry.projection import CylindricalProjection

        from .world import ProceduralWorld

        if request.modality not in ("depth", "normal"):
            raise UserInputError(f"the procedural backend makes depth (and normals from it), not {request.modality!r}; "
                                 "pass --modality depth or use a JointNet model trained for it")
        report(progress, "procedural", 0, 3, "terrain")
        world = ProceduralWorld.from_prompt(request.prompt, _stable_seed(request.seed, request.prompt))
        report(progress, "procedural", 1, 3, "render")
        frame = world.render_cylinder(request.width, request.height, span_deg=request.span_deg)
        image, disparity = frame.rgb, to_disparity(horizontal(frame.distance, request.span_deg))
        if request.regions:
            image, disparity = _with_regions(request, world, image, disparity)
        report(progress, "procedural", 2, 3, "layers")
        geometry = {"disparity_scale": 1.0 / NEAR_M - 1.0 / FAR_M, "disparity_shift": 1.0 / FAR_M,
                    "near": NEAR_M, "far": FAR_M, "eye_height": EYE_HEIGHT_M,
                    "procedural": dict(world.describe(), note=world.recipe.note())}
        snapshot = Snapshot(image=image, modalities={"depth": disparity[..., None]},
                            projection=CylindricalProjection(request.width, request.height, request.span_deg),
                            geometry=geometry, prompt=request.prompt)
        if not request.regions:
            snapshot.terrain = world  # the exporter's ground mesh; regions paint other worlds in, so not then
        if request.modality == "normal":
            snapshot.modalities["normal"] = _normals(snapshot)
        report(progress, "procedural", 3, 3, "done")
        return snapshot

    def settings(self) -> dict:
        return {"generator": "procedural", "near": NEAR_M, "far": FAR_M}


def horizontal(distance, span_deg: float):
    """A cylindrical frame's distances along the rays -> distances from the cylinder's axis, the
    "distance" of ``worldgen.geometry`` (row v rises ``(H / 2 - 0.5 - v) / f`` per metre out)."""
    import numpy as np

    h, w = distance.shape
    rise = (h / 2 - 0.5 - np.arange(h)) / (w / np.radians(span_deg))
    return distance / np.sqrt(1.0 + rise * rise)[:, None]


def to_disparity(distance):
    """Metric distance (inf for the sky) -> disparity in [0, 1] with near = 1; the exact inverse
    of the stored scale/shift."""
    import numpy as np

    inv = 1.0 / np.clip(distance, NEAR_M, FAR_M)
    return ((inv - 1.0 / FAR_M) / (1.0 / NEAR_M - 1.0 / FAR_M)).astype(np.float32)


def _with_regions(request: GenerateRequest, base, image, disparity):
    """Region prompts, procedurally: inside each region its own words choose the land (the sky,
    time, weather and mist stay the panorama's, so the regions share one sky), blended into the
    panorama with the regions' soft per-pixel weights (``worldgen.regions.condition_weights``)."""
    import dataclasses

    from worldgen.geometry.regions import blend_by_weights, condition_weights, normalize_regions

    from .vocabulary import Recipe
    from .world import ProceduralWorld

    regions = normalize_regions(request.regions)
    weights = condition_weights(regions, request.width, request.height, request.span_deg)
    images, disparities = [image], [disparity[..., None]]
    for region in regions:
        recipe = dataclasses.replace(Recipe.from_prompt(region.prompt), time=base.recipe.time,
                                     weather=base.recipe.weather, mist=base.recipe.mist)
        frame = ProceduralWorld(recipe, base.seed).render_cylinder(request.width, request.height,
                                                                   span_deg=request.span_deg)
        images.append(frame.rgb)
        disparities.append(to_disparity(horizontal(frame.distance, request.span_deg))[..., None])
    return blend_by_weights(images, weights), blend_by_weights(disparities, weights)[..., 0]


def _normals(snapshot):
    from worldgen.registry import get_registry

    spec = get_registry().modality("normal")
    return spec.estimator(snapshot.image, depth=snapshot.modalities["depth"], projection=snapshot.projection,
                          geometry=snapshot.geometry).astype("float32")


def _stable_seed(seed: int, prompt: Optional[str]) -> int:
    """Same seed and prompt, same world, on every machine (Python's hash() is salted per process)."""
    digest = hashlib.sha256(f"{seed}:{prompt}".encode()).digest()
    return int.from_bytes(digest[:8], "little") & ((1 << 63) - 1)
