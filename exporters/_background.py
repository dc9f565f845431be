"""The GLB's background layer (``worldgen layers``): the surface behind the foreground, meshed
where the version's background mask says something is hidden, with its own texture.

It replaces the skirts across cut edges (a stretch of the foreground's texture): from off the eye
the opening behind a foreground edge now shows what the model painted there. The layer's mesh
covers the mask grown by one pixel, where it takes the band's own far side, so it meets the
visible background without a crack. Quads are not joined across the 360-degree seam.
"""

from __future__ import annotations

import io

import numpy as np

MATERIAL_NAME = "background"


def background_arrays(snapshot, world, threshold: float = 0.1):
    """(distance, colours, include) on the world's grid: the layer's metres and colours where its
    mask is, the band's on the one-pixel ring around it; ``include`` marks both."""
    from scipy.ndimage import binary_dilation, grey_erosion

    from worldgen.geometry.world import disparity_to_distance, sky_mask

    layer = snapshot.background
    rows, cols = np.ix_(world.rows, world.columns)
    disparity = layer.modality[..., 0]
    distance = disparity_to_distance(disparity, world.settings, world.world_scale)
    sky = sky_mask(disparity, world.settings, world.world_scale)
    mask = layer.mask
    # The one-pixel ring joins the layer to the visible surface behind it, not to the foreground in
    # front: ring pixels nearer than the layer beside them (by the cut threshold) stay out.
    ring = binary_dilation(mask, np.ones((3, 3), bool)) & ~mask
    depth = snapshot.modalities.get("depth")
    band = (disparity_to_distance(depth[..., 0], world.settings, world.world_scale) if depth is not None
            else np.full(mask.shape, np.inf))
    beside = grey_erosion(np.where(mask, distance, np.inf), size=(3, 3))
    ring &= ~(band * (1 + threshold) < beside)
    full_distance = np.where(mask, distance, np.nan)
    colours = np.where(mask[..., None], layer.image, snapshot.image)
    include = (mask & ~sky) | ring
    grid_distance = np.where(mask[rows, cols], full_distance[rows, cols], world.distance)
    return grid_distance, colours, include[rows, cols] & ~(world.sky & ~mask[rows, cols])


def background_mesh(snapshot, world, threshold: float):
    """(positions, faces, uvs) of the layer, or None when it has nothing to show."""
    from worldgen.geometry.world import points_from_distance

    distance, _, include = background_arrays(snapshot, world, threshold)
    h, w = distance.shape
    a = include[:-1, :-1] & include[:-1, 1:] & include[1:, :-1] & include[1:, 1:]
    quad = np.stack([distance[:-1, :-1], distance[:-1, 1:], distance[1:, :-1], distance[1:, 1:]])
    a &= quad.max(axis=0) <= (1 + threshold) * quad.min(axis=0)  # no quad across a cut of the layer itself
    v, u = np.nonzero(a)
    if not len(v):
        return None
    tl, tr, bl, br = v * w + u, v * w + u + 1, (v + 1) * w + u, (v + 1) * w + u + 1
    # (a, c, b) and (b, c, d): counter-clockwise from the eye, as the terrain's quads.
    faces = np.concatenate([np.stack([tl, bl, tr], 1), np.stack([tr, bl, br], 1)])
    used, compact = np.unique(faces, return_inverse=True)
    points = points_from_distance(distance, world.projection, world.rows, world.columns).reshape(-1, 3)
    proj = world.projection
    uv = np.stack(np.meshgrid((world.columns + 0.5) / proj.width, (world.rows + 0.5) / proj.height), -1)
    return points[used], compact.reshape(-1, 3).astype(np.uint32), uv.reshape(-1, 2)[used].astype(np.float32)


def background_material(gltf, blob, snapshot, world, unlit: bool) -> int:
    """A material textured with the layer's colours (a second image in the GLB)."""
    from PIL import Image as PILImage
    from pygltflib import Image, Material, PbrMetallicRoughness, Texture, TextureInfo

    _, colours, _ = background_arrays(snapshot, world)
    buf = io.BytesIO()
    PILImage.fromarray((np.clip(colours, 0, 1) * 255 + 0.5).astype(np.uint8)).save(buf, format="JPEG", quality=95, subsampling=0)  # 4:4:4: thin strips keep their colour
    gltf.images.append(Image(bufferView=blob.view(buf.getvalue()), mimeType="image/jpeg", name="background"))
    gltf.textures.append(Texture(sampler=0, source=len(gltf.images) - 1))
    material = Material(name=MATERIAL_NAME, doubleSided=False, pbrMetallicRoughness=PbrMetallicRoughness(
        baseColorTexture=TextureInfo(index=len(gltf.textures) - 1), metallicFactor=0.0, roughnessFactor=1.0))
    if unlit:
        material.extensions = {"KHR_materials_unlit": {}}
    gltf.materials.append(material)
    return len(gltf.materials) - 1


def add_background(snapshot, world, opts: dict, gltf, blob, materials: dict, add):
    """Add the version's background layer to the GLB being built (``add`` is glb's node adder);
    its material is kept as ``materials["background"]`` for the sky shell. Returns the layer or None."""
    layer = getattr(snapshot, "background", None)
    if layer is None:
        return None
    mesh = background_mesh(snapshot, world, opts["cut_threshold"])
    materials["background"] = background_material(gltf, blob, snapshot, world, opts["unlit"])
    if mesh is not None:
        add("background", *mesh[:2], None, mesh[2], materials["background"])
    return layer
