"""Cube-map export: six square faces and a cross image, for six-sided skyboxes (Unity's
``Skybox/6 Sided``, three.js's ``CubeTextureLoader``, engines reading KTX cube maps).

Files: ``NAME.png``, the horizontal cross (4 x 3 faces; from inside, the front, -z, at the centre,
its left and right beside it, the back at the far right, up above and down below the front; empty
cells transparent) and ``NAME.px.png`` ... ``NAME.nz.png``, the faces in the OpenGL cube-map
convention (``worldgen.reproject.rays.CUBE_FACES``). Rays a cylindrical band does not reach are
transparent until ``worldgen sphere`` fills them.
"""

from __future__ import annotations

import numpy as np

from worldgen.specs import ExporterSpec

from ._common import geometry_overrides, option_names, read_options

DEFAULTS = {
    "face_size": 0,  # 0: a quarter of the panorama's 360-degree width (one face pixel per band column)
    "faces": True,  # write the six NAME.<face>.png files beside the cross
}

# (row, column) of each view in the 4 x 3 cross, and its (yaw, pitch) from the eye.
CROSS = {"left": ((1, 0), (-90.0, 0.0)), "front": ((1, 1), (0.0, 0.0)), "right": ((1, 2), (90.0, 0.0)),
         "back": ((1, 3), (180.0, 0.0)), "up": ((0, 1), (0.0, 90.0)), "down": ((2, 1), (0.0, -90.0))}


def _face_size(opts: dict, snapshot) -> int:
    from worldgen.errors import UserInputError

    size = int(opts["face_size"])
    if not size:
        sphere = getattr(snapshot, "sphere", None)
        full = sphere.distance.shape[1] if sphere is not None else snapshot.projection.width * 360.0 / snapshot.projection.span_deg
        size = max(8, int(round(full / 4)))
    if not 8 <= size <= 8192:
        raise UserInputError(f"cubemap option face_size={size} must be between 8 and 8192 pixels")
    return size


def cubemap_files(snapshot, options: dict) -> dict:
    from worldgen.reproject import rays as R
    from worldgen.reproject.sources import render_perspective, source_for

    from ._panorama_images import rgba_png

    opts = read_options(options, DEFAULTS, "cubemap")
    source = source_for(snapshot, geometry_overrides(opts))
    n = _face_size(opts, snapshot)
    color = np.zeros((3 * n, 4 * n, 3), np.float32)
    known = np.zeros((3 * n, 4 * n), bool)
    for (row, col), (yaw, pitch) in CROSS.values():
        view = render_perspective(source, R.look(yaw, pitch, 90.0), n, n)
        color[row * n:(row + 1) * n, col * n:(col + 1) * n] = view.color
        known[row * n:(row + 1) * n, col * n:(col + 1) * n] = view.known
    files = {"": rgba_png(color, known)}
    if opts["faces"]:
        for face in R.CUBE_FACES:
            view = render_perspective(source, R.cube_camera(face), n, n)
            files[f".{face}.png"] = rgba_png(view.color, view.known)
    return files


def export_cubemap(snapshot, options: dict) -> bytes:
    return cubemap_files(snapshot, dict(options, faces=False))[""]


SPEC = ExporterSpec(
    name="cubemap",
    extension=".png",
    description="cube map: a 4x3 cross PNG and six OpenGL-convention faces (six-sided skyboxes)",
    export=export_cubemap,
    options=option_names(DEFAULTS),
    files=cubemap_files,
)
