"""Colours that survive viser's renderer: its canvas tone-maps every standard three.js material.

viser draws through react-three-fiber, whose canvas defaults to ACES filmic tone mapping, and
three.js applies it to unlit (``MeshBasicMaterial``) meshes too: measured in headless Chromium,
a flat sRGB 127/255 world showed as 140/255, (51, 153, 229) as (74, 168, 216). viser has no
setting to turn it off, so the browser view hands it colours that ACES maps back to the
panorama's: the inverse of three.js's ``ACESFilmicToneMapping`` (exposure 1), carried as an
emissive texture scaled by ``KHR_materials_emissive_strength`` (white needs ~15x the linear
range an 8-bit base colour can hold), with lights and the environment map off so nothing else
adds light. Colours outside what ACES can produce (very saturated ones) are clipped.
"""

from __future__ import annotations

import io

import numpy as np

# three.js ACESFilmicToneMapping (src/renderers/shaders/ShaderChunk/tonemapping_pars_fragment):
# GLSL mat3 constructors are column-major, hence the transposes.
_ACES_IN = np.array([[0.59719, 0.07600, 0.02840], [0.35458, 0.90834, 0.13383], [0.04823, 0.01566, 0.83777]]).T
_ACES_OUT = np.array([[1.60475, -0.10208, -0.00327], [-0.53108, 1.10813, -0.07276],
                      [-0.07367, -0.00605, 1.07602]]).T
_EXPOSURE_DIVISOR = 0.6
_FIT_MAX = 1 / 0.983729  # RRTAndODTFit's limit for large inputs
_STRENGTH_EXT = "KHR_materials_emissive_strength"
_UNLIT = "KHR_materials_unlit"


def srgb_to_linear(c: np.ndarray) -> np.ndarray:
    return np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)


def linear_to_srgb(c: np.ndarray) -> np.ndarray:
    c = np.clip(c, 0.0, None)
    return np.where(c <= 0.0031308, c * 12.92, 1.055 * c ** (1 / 2.4) - 0.055)


def aces_filmic(linear: np.ndarray) -> np.ndarray:
    """three.js's tone mapping of linear colours (..., 3), clamped to [0, 1]."""
    x = (np.asarray(linear, dtype=np.float64) / _EXPOSURE_DIVISOR) @ _ACES_IN.T
    x = (x * (x + 0.0245786) - 0.000090537) / (x * (0.983729 * x + 0.4329510) + 0.238081)
    return np.clip(x @ _ACES_OUT.T, 0.0, 1.0)


def inverse_aces_filmic(target: np.ndarray) -> np.ndarray:
    """Linear colours (..., 3) >= 0 that ``aces_filmic`` maps to ``target`` (linear, [0, 1])."""
    y = np.clip(np.asarray(target, dtype=np.float64) @ np.linalg.inv(_ACES_OUT).T, 0.0, _FIT_MAX - 1e-4)
    # RRTAndODTFit(x) = y  <=>  (1 - 0.983729 y) x^2 + (0.0245786 - 0.432951 y) x - (0.000090537 + 0.238081 y) = 0
    a = 1 - 0.983729 * y
    b = 0.0245786 - 0.4329510 * y
    c = -(0.000090537 + 0.238081 * y)
    x = (-b + np.sqrt(b * b - 4 * a * c)) / (2 * a)
    return np.clip(x @ np.linalg.inv(_ACES_IN).T * _EXPOSURE_DIVISOR, 0.0, None)


def compensated_texture(srgb_image: np.ndarray) -> tuple[np.ndarray, float]:
    """(8-bit sRGB emissive image, emissive strength) that viser's ACES shows as ``srgb_image``."""
    linear = inverse_aces_filmic(srgb_to_linear(np.asarray(srgb_image, dtype=np.float64)[..., :3] / 255.0))
    strength = max(1.0, float(linear.max()))
    encoded = np.round(linear_to_srgb(linear / strength) * 255.0)
    return np.clip(encoded, 0, 255).astype(np.uint8), strength


def tone_mapping_proof_glb(glb: bytes) -> bytes:
    """The GLB with every textured material turned into a compensated emissive one (see above).

    The result is for viser only: it is not the exported file and is never written to disk."""
    from PIL import Image as PILImage
    from pygltflib import GLTF2, BufferView, Image, Texture, TextureInfo

    gltf = GLTF2.load_from_bytes(glb)
    blob = bytearray(gltf.binary_blob())
    replaced: dict[int, tuple[int, float]] = {}
    for material in gltf.materials:
        pbr = material.pbrMetallicRoughness
        if pbr is None or pbr.baseColorTexture is None:
            continue
        source = pbr.baseColorTexture.index
        if source not in replaced:
            texture = gltf.textures[source]
            view = gltf.bufferViews[gltf.images[texture.source].bufferView]
            start = view.byteOffset or 0
            image = np.asarray(PILImage.open(io.BytesIO(bytes(blob[start:start + view.byteLength]))).convert("RGB"))
            emissive, strength = compensated_texture(image)
            out = io.BytesIO()
            PILImage.fromarray(emissive).save(out, format="PNG")
            blob.extend(b"\0" * (-len(blob) % 4))
            gltf.bufferViews.append(BufferView(buffer=0, byteOffset=len(blob), byteLength=len(out.getvalue())))
            blob.extend(out.getvalue())
            gltf.images.append(Image(bufferView=len(gltf.bufferViews) - 1, mimeType="image/png",
                                     name="web-emissive"))
            gltf.textures.append(Texture(sampler=texture.sampler, source=len(gltf.images) - 1))
            replaced[source] = (len(gltf.textures) - 1, strength)
        index, strength = replaced[source]
        material.emissiveTexture = TextureInfo(index=index)
        material.emissiveFactor = [1.0, 1.0, 1.0]
        material.extensions = {k: v for k, v in (material.extensions or {}).items() if k != _UNLIT}
        material.extensions[_STRENGTH_EXT] = {"emissiveStrength": strength}
        pbr.baseColorTexture = None
        pbr.baseColorFactor = [0.0, 0.0, 0.0, 1.0]
    if replaced:
        used = [e for e in (gltf.extensionsUsed or []) if e != _UNLIT]
        gltf.extensionsUsed = used + [_STRENGTH_EXT]
        gltf.extensionsRequired = [e for e in (gltf.extensionsRequired or []) if e != _UNLIT]
    blob.extend(b"\0" * (-len(blob) % 4))
    gltf.buffers[0].byteLength = len(blob)
    gltf.set_binary_blob(bytes(blob))
    return b"".join(gltf.save_to_bytes())
