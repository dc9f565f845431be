"""Equirectangular export: the world as a 2:1 latitude-longitude image, the layout skybox and HDRI
users expect (a Blender world's Environment Texture, a Unity ``Skybox/Panoramic`` material, three.js's
``EquirectangularReflectionMapping``), with its metric distance beside it.

Files: ``NAME.png`` (RGB; RGBA when part of the sphere is unknown: the rows a cylindrical band
does not reach are transparent until ``worldgen sphere`` fills them), ``NAME.distance.exr`` (one
float32 channel ``Z``: metres from the eye along each ray; ``inf`` for sky, NaN where unknown) and
``NAME.distance_preview.png`` (log-scale Turbo preview). Column u looks along azimuth
``360 (u + 0.5) / W`` degrees from the panorama's first column (the band's columns line up; ``-O yaw=D``
turns the image by D degrees), row 0 at the zenith; see ``worldgen.reproject.rays``.
"""

from __future__ import annotations

from worldgen.specs import ExporterSpec

from ._common import geometry_overrides, option_names, read_options

DEFAULTS = {
    "width": 0,  # 0: the band's width (a 360-degree band's columns then map one to one)
    "distance": True,  # write NAME.distance.exr
    "preview": True,  # write NAME.distance_preview.png
    # Degrees the image is turned: column 0 looks this far right of the panorama's first column (to
    # line the image up with another tool's convention for where an equirect's left edge looks).
    "yaw": 0.0,
}


def _width(opts: dict, snapshot) -> int:
    from worldgen.errors import UserInputError

    width = int(opts["width"]) or (snapshot.sphere.distance.shape[1] if getattr(snapshot, "sphere", None) is not None
                                   else round(snapshot.projection.width * 360.0 / snapshot.projection.span_deg))
    width += width % 2
    if not 8 <= width <= 16384:
        raise UserInputError(f"equirect option width={width} must be between 8 and 16384 pixels")
    return width


def equirect_files(snapshot, options: dict) -> dict:
    from worldgen.reproject.sources import render_equirect, source_for

    from ._exr import encode_exr
    from ._panorama_images import distance_preview_png, rgba_png

    opts = read_options(options, DEFAULTS, "equirect")
    view = render_equirect(source_for(snapshot, geometry_overrides(opts)), _width(opts, snapshot), opts["yaw"])
    files = {"": rgba_png(view.color, view.known)}
    if opts["distance"]:
        files[".distance.exr"] = encode_exr({"Z": view.distance})
    if opts["preview"]:
        files[".distance_preview.png"] = distance_preview_png(view.distance, view.known)
    return files


def export_equirect(snapshot, options: dict) -> bytes:
    return equirect_files(snapshot, dict(options, distance=False, preview=False))[""]


SPEC = ExporterSpec(
    name="equirect",
    extension=".png",
    description="2:1 equirectangular PNG (skybox/HDRI layout) + float32 metric distance EXR + distance preview",
    export=export_equirect,
    options=option_names(DEFAULTS),
    files=equirect_files,
)
