"""The world's other layers as switchable looks of its GLB (``KHR_materials_variants``).

A world made with RGB, depth and, say, edges has its geometry from depth; the layers that carry no
geometry (their plugin's ``geometry`` is "none") travel with it: each becomes one more texture (the
plugin's colour preview of the layer, on the same UVs as the panorama) and one more variant. The
first variant, "rgb", maps every textured primitive to its own material; the variant of a layer
maps it to a copy of that material whose base colour is the layer's texture. A viewer that knows the
extension (three.js, Babylon.js, model-viewer) switches between them; one that does not shows RGB.
"""

from __future__ import annotations

import copy
from typing import Callable

import numpy as np

EXTENSION = "KHR_materials_variants"
RGB_VARIANT = "rgb"


def extra_layer_names(snapshot) -> list[str]:
    """The layers without a geometric role (their plugin's ``geometry`` is "none"), in order."""
    from worldgen.registry import get_registry

    registry = get_registry()
    names = []
    for name in snapshot.modalities:
        try:
            spec = registry.modality(name)
        except Exception:  # a layer whose plugin is not installed: nothing says what it is
            continue
        if spec.geometry == "none":
            names.append(name)
    return names


def extra_layers(snapshot) -> list[tuple[str, np.ndarray]]:
    """(name, colour preview in [0, 1]) of each layer without a geometric role."""
    from worldgen.registry import get_registry

    registry = get_registry()
    return [(name, np.asarray(registry.modality(name).preview(snapshot.modalities[name]), np.float32) / 255.0)
            for name in extra_layer_names(snapshot)]


def add_layer_variants(gltf, blob, snapshot, encode: Callable[[np.ndarray], tuple[bytes, str]]) -> list[str]:
    """Add a texture and a variant per extra layer to ``gltf`` (built by the GLB exporter, its binary
    chunk in ``blob``); ``encode`` turns an (H, W, 3) image in [0, 1] into (bytes, mime) exactly as
    the panorama texture was encoded. Returns the variant names (none when there is no extra layer)."""
    from pygltflib import Image, Texture

    layers = extra_layers(snapshot)
    textured = _textured_primitives(gltf)
    if not layers or not textured:
        return []
    base_materials = sorted({prim.material for prim in textured})
    variant_of = {m: [m] for m in base_materials}  # base material -> its material in each variant
    for name, preview in layers:
        data, mime = encode(preview)
        gltf.images.append(Image(bufferView=blob.view(data), mimeType=mime, name=name))
        gltf.textures.append(Texture(sampler=0, source=len(gltf.images) - 1))
        texture = len(gltf.textures) - 1
        for base in base_materials:
            material = copy.deepcopy(gltf.materials[base])
            material.name = f"{material.name}-{name}"
            material.pbrMetallicRoughness.baseColorTexture.index = texture
            gltf.materials.append(material)
            variant_of[base].append(len(gltf.materials) - 1)
    for prim in textured:
        mappings = [{"material": m, "variants": [k]} for k, m in enumerate(variant_of[prim.material])]
        prim.extensions = {**(prim.extensions or {}), EXTENSION: {"mappings": mappings}}
    names = [RGB_VARIANT] + [name for name, _ in layers]
    gltf.extensions = {**(gltf.extensions or {}), EXTENSION: {"variants": [{"name": n} for n in names]}}
    gltf.extensionsUsed = [*(gltf.extensionsUsed or []), EXTENSION]
    return names


def _textured_primitives(gltf) -> list:
    """Primitives whose material samples the panorama texture (colliders have no material)."""
    out = []
    for mesh in gltf.meshes:
        for prim in mesh.primitives:
            if prim.material is None:
                continue
            pbr = gltf.materials[prim.material].pbrMetallicRoughness
            if pbr is not None and pbr.baseColorTexture is not None and pbr.baseColorTexture.index == 0:
                out.append(prim)
    return out
