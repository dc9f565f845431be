"""Binary glTF (GLB) mesh of a panorama world.

Metres, y up, the ground at y = 0 and the eye at its height above it (``origin=camera`` puts the
eye at the origin). Materials are ``KHR_materials_unlit`` (the panorama holds its own light) with a
textured, rough, non-metallic fallback. The texture is the panorama (JPEG quality 95, or PNG); every
vertex carries the UV of the pixel it came from. Nodes:

- ``terrain``: the surfaces. Quads across a depth discontinuity are left out (a relative jump of
  more than ``cut_threshold`` that no neighbouring edge continues: ``exporters/_grid_mesh.py``);
  smooth regions are merged into quadtree cells (``exporters/_adaptive.py``) as long as, from the
  eye, the texture moves by at most ``max_texel`` texels and depth errors stay below
  ``max_parallax`` pixels of parallax 2 m off the eye. For 360 degrees the first vertex column is
  repeated at the end with identical positions: the seam is closed, only the UV differs (u > 1,
  the sampler wraps; with ``uv16`` the texture repeats its first column instead).
- ``backdrop``: skirts: the quads the terrain leaves out at cuts (joining the near side to the far
  one) and along the horizon (their sky corners brought in to the terrain's distance), so no crack
  opens when the camera leaves the eye (``backdrop=false`` leaves them out).
- ``ground``: a disc from the terrain's bottom edge to the point under the camera (``closed``).
- ``sky``: a 128-segment cylinder just beyond ``far`` carrying the whole panorama (from the eye its
  texture is exact, so it is also what any hairline gap shows), with flat caps above and below.
- ``camera``: a perspective camera at the eye, looking down -z (the first column of the panorama).
- ``collider-colonly`` (``collider=true``): an untextured, decimated copy of the terrain
  (``collider_step``, mesh ``collider``) whose seam shares its vertices, for game-engine physics;
  the name suffix is Godot's hint for a collision-only node, and ``extras.collider`` says so to others.

Sizes: no normals unless ``normals=true``, 16-bit indices for every mesh whose vertices fit. No
compression extension (EXT_meshopt_compression, Draco): open3d's importer reads neither, and
simplification already brings a 2048x512 world to about 2 MB.
"""

from __future__ import annotations

import io
import math
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from worldgen.errors import UserInputError
from worldgen.specs import ExporterSpec

from ._background import add_background  # issue 22: the layer behind depth cuts
from ._collider import collider_material, collider_mesh  # issue 22: collider closed at the spawn point, hidden
from ._common import choice, option_names, read_options, world_for
from ._far_plane import far_compression, fit_world  # issue 22: everything inside a 1000 m far plane
from ._shell import SKY_SEGMENTS, ground_disc, sky_shell, skirts, texture_width, toward_eye
from ._sphere_caps import ground_rings, sky_domes, sphere_material  # issue 22: caps from the full sphere
from .terrain_mesh import add_ground_mesh  # issue 21: a procedural world's own ground
from ._gltf import (CLAMP, LINEAR, LINEAR_MIPMAP_LINEAR, QUANTIZATION, REPEAT, UNLIT, Blob, material as new_material,
                    primitive, quantize_positions)
from ._grid_mesh import triangulate
from .variants import add_layer_variants

DEFAULTS = {
    "step": 1,  # 1 = one vertex per pixel; n = every n-th pixel in both directions
    "cut_threshold": 0.1,  # relative distance jump across an edge that cuts it (0.1 = 10 %)
    "simplify": True,  # merge smooth regions into bigger cells (see exporters/_adaptive.py)
    "max_texel": 0.25,  # ... while the texture seen from the eye moves by at most this many texels
    "max_parallax": 0.5,  # ... and the depth error shows as at most this many pixels 2 m off the eye
    "max_level": 6,  # biggest merged cell: 2**max_level grid quads a side
    "sky": True,  # emit the sky node
    "closed": True,  # ground disc under the camera and caps on the sky cylinder
    "normals": False,  # vertex normals (from the normal layer, else the depth grid): only lit viewers use them
    # jpeg: 12 ms for 4096x1024 and ~1 MB; png: lossless but ~0.6 s and ~10 MB (level-1 zlib).
    "texture": "jpeg",
    "jpeg_quality": 95,
    # 16-bit normalized UVs (core glTF; three.js and Blender read them) halve the UV bytes, but
    # open3d's importer (assimp) reads them as NaN, so float UVs stay the default.
    "uv16": False,
    # KHR_mesh_quantization: 16-bit positions, dequantized by each node's scale and translation
    # (three.js and Blender read them; see README for open3d).
    "quantize": False,
    "unlit": True,  # KHR_materials_unlit: the panorama already holds its lighting
    "origin": "ground",  # ground: ground at y = 0, camera at eye height; camera: camera at (0, 0, 0)
    "backdrop": True,  # skirts across cut edges and the horizon, so no crack opens off the eye
    "collider": False,
    "collider_step": 8,
}

PARALLAX_MOVE = 2.0  # metres off the eye that ``max_parallax`` is measured at

def _encode_texture(image: np.ndarray, fmt: str, quality: int, wrap: bool) -> tuple[bytes, str]:
    """The panorama as JPEG or PNG. ``wrap`` (16-bit UVs of a full circle) repeats its first column
    at the right, so the seam's UVs stay within [0, 1] and bilinear filtering across the seam
    blends the last column with the first, as REPEAT does for float UVs just past 1."""
    from PIL import Image

    from worldgen.scene.image_files import encode_png, to_uint8

    if fmt == "png" and not wrap:
        # The scene's image.png, byte for byte: encoded once when both are written (issue 24).
        return encode_png(image), "image/png"
    pixels = to_uint8(image)
    if wrap:
        pixels = np.concatenate([pixels, pixels[:, :1]], axis=1)
    if fmt == "jpeg":
        buf = io.BytesIO()
        Image.fromarray(pixels).save(buf, format="JPEG", quality=int(quality))
        return buf.getvalue(), "image/jpeg"
    return encode_png(pixels), "image/png"  # zlib level 1 (image_files.PNG_LEVEL)


def _vertex_grid(world, wrap_dup: bool, uv16: bool):
    """Per-vertex arrays on the grid, with the first column repeated at the end for a closed,
    textured 360-degree seam (its UVs point at the texture's repeated column)."""
    proj = world.projection
    cols = world.columns.astype(np.float64)
    if wrap_dup:
        cols = np.append(cols, cols[0] + proj.width)

        def dup(a):
            return np.concatenate([a, a[:, :1]], axis=1)
    else:
        def dup(a):
            return a

    u = ((cols + 0.5) / texture_width(world, uv16)).astype(np.float32)
    v = ((world.rows + 0.5) / proj.height).astype(np.float32)
    uv = np.empty((len(v), len(u), 2), dtype=np.float32)
    uv[..., 0] = u[None, :]
    uv[..., 1] = v[:, None]
    return dup(world.points), dup(world.normals), uv, dup(world.distance), dup(world.sky)


def export_glb(snapshot, options: dict) -> bytes:
    opts, fmt, origin = _glb_options(options)
    world, grid, tris, (texture_bytes, mime), compression = _mesh_and_texture(snapshot, opts, fmt)
    # A procedural world (snapshot.terrain) stands its eye exactly eye_height above its own ground.
    ground = world.settings.eye_height if getattr(snapshot, "terrain", None) is not None else world.ground_height
    lift = np.float32((ground or world.settings.eye_height) if origin == "ground" else 0.0)
    gltf = _GlbWriter(world, opts, origin, lift, texture_bytes, mime)
    _add_world(gltf, snapshot, world, grid, tris, opts, compression)
    gltf.finish(world)
    # Layers without geometry (e.g. edges) travel as textures behind KHR_materials_variants.
    wrap = snapshot.projection.full_circle and opts["uv16"]
    add_layer_variants(gltf.gltf, gltf.blob, snapshot, lambda im: _encode_texture(im, fmt, opts["jpeg_quality"], wrap))
    return gltf.blob.glb()


def _glb_options(options: dict) -> tuple[dict, str, str]:
    """The options with defaults filled in, the texture format and the origin; bad values: one line."""
    from worldgen.errors import UserInputError

    opts = read_options(options, DEFAULTS, "glb")
    fmt = choice(opts, "texture", ("png", "jpeg"), "glb")
    origin = choice(opts, "origin", ("camera", "ground"), "glb")
    if opts["cut_threshold"] <= 0:
        raise UserInputError("glb option cut_threshold must be > 0 (e.g. 0.1 cuts triangles spanning a 10 % jump)")
    if opts["collider"] and opts["collider_step"] < 1:
        raise UserInputError("glb option collider_step must be 1 or more")
    if not 1 <= opts["jpeg_quality"] <= 100:
        raise UserInputError("glb option jpeg_quality must be between 1 and 100")
    if opts["max_texel"] <= 0 or opts["max_parallax"] <= 0 or not 1 <= opts["max_level"] <= 10:
        raise UserInputError("glb options need max_texel > 0, max_parallax > 0 and max_level between 1 and 10")
    return opts, fmt, origin


def _mesh_and_texture(snapshot, opts: dict, fmt: str):
    """(world, its vertex grid, the triangulation, (texture bytes, mime type))."""
    from functools import partial

    from ._adaptive import merge_cells

    # The texture encodes in a second thread (zlib and libjpeg release the GIL) while numpy meshes.
    with ThreadPoolExecutor(max_workers=1) as pool:
        full = snapshot.projection.full_circle
        texture_job = pool.submit(_encode_texture, snapshot.image, fmt, opts["jpeg_quality"], full and opts["uv16"])
        world = world_for(snapshot, opts)
        if min(world.distance.shape[:2]) < 2:  # a mesh needs two rows and two columns of vertices
            width, height = snapshot.size
            raise UserInputError(f"glb option step {opts['step']} leaves less than one row of triangles in the "
                                 f"{width}x{height} scene; use a step below {min(width, height)}")
        # Everything inside common far planes: far geometry compressed along its rays (_far_plane).
        compression = far_compression(world.projection, world.settings.far, SKY_SEGMENTS)
        world = fit_world(world, compression)
        grid = _vertex_grid(world, world.wraps, opts["uv16"])
        positions, _, _, distance, sky = grid
        simplify = None
        if opts["simplify"]:
            step = int(opts["step"])
            # Parallax of a depth error seen from PARALLAX_MOVE off the eye: f * move * |1/r' - 1/r| pixels.
            max_disparity = opts["max_parallax"] / (world.projection.focal_px * PARALLAX_MOVE)
            simplify = partial(merge_cells, positions, distance, step=step, max_disparity=max_disparity,
                               max_texel=opts["max_texel"], max_level=opts["max_level"], seam=world.wraps)
        tris = triangulate(distance, sky, opts["cut_threshold"], "duplicate" if world.wraps else "none",
                           want_sky=False, simplify=simplify)
        return world, grid, tris, texture_job.result(), compression


class _GlbWriter:
    """One glTF document being filled: the panorama texture, materials by name, and mesh nodes
    (lifted to the chosen origin, quantized when asked)."""

    def __init__(self, world, opts: dict, origin: str, lift, texture_bytes: bytes, mime: str) -> None:
        from pygltflib import GLTF2, Asset, Image, Sampler, Texture

        self.opts, self.lift = opts, lift
        self.up = np.array([0.0, lift, 0.0], dtype=np.float32)
        self.gltf = GLTF2(asset=Asset(generator=f"worldgen {_version()}", version="2.0"))
        self.gltf.extras = {"worldgen": dict(world.metadata(), origin=origin)}
        self.blob = Blob(self.gltf)
        self.gltf.images.append(Image(bufferView=self.blob.view(texture_bytes), mimeType=mime, name="panorama"))
        # The seam's float UVs run just past 1 (REPEAT samples the first column there; 16-bit UVs use the
        # repeated column instead); v must not bleed from the top row into the bottom one.
        self.gltf.samplers.append(Sampler(magFilter=LINEAR, minFilter=LINEAR_MIPMAP_LINEAR,
                                          wrapS=CLAMP if opts["uv16"] else REPEAT, wrapT=CLAMP))
        self.gltf.textures.append(Texture(sampler=0, source=0))
        self.materials: dict = {}
        self.nodes: list = []

    def material(self, name: str, unlit: bool) -> int:
        if name not in self.materials:
            self.materials[name] = new_material(self.gltf, name, unlit)
        return self.materials[name]

    def add(self, name, positions, faces, normals, uvs, mat, extras=None) -> None:
        from pygltflib import Mesh, Node

        transform = {}
        if self.lift:
            positions = positions + self.up
        if self.opts["quantize"]:
            positions, scale, offset = quantize_positions(positions)
            transform = {"scale": [float(v) for v in scale], "translation": [float(v) for v in offset]}
        normals = normals if self.opts["normals"] else None
        prim = primitive(self.blob, positions, faces, normals, uvs, mat, self.opts["uv16"])
        self.gltf.meshes.append(Mesh(name=name.split("-")[0], primitives=[prim]))
        self.nodes.append(Node(name=name, mesh=len(self.gltf.meshes) - 1, extras=extras, **transform))

    def finish(self, world) -> None:
        """Add the eye camera and the scene, and declare the extensions used."""
        from pygltflib import Camera, Node, Perspective, Scene

        gltf = self.gltf
        vfov = math.radians(min(max(world.projection.vfov_deg, 10.0), 120.0))
        gltf.cameras.append(Camera(type="perspective", name="eye", perspective=Perspective(
            yfov=vfov, znear=min(0.05, world.settings.near), zfar=world.settings.far * 4.0)))
        self.nodes.append(Node(name="camera", camera=0, translation=[0.0, float(self.lift), 0.0]))
        gltf.nodes = self.nodes
        gltf.scenes = [Scene(name="world", nodes=list(range(len(self.nodes))))]
        gltf.scene = 0
        if any(m.extensions and UNLIT in m.extensions for m in gltf.materials):
            gltf.extensionsUsed = [UNLIT]
        if self.opts["quantize"]:  # required: a reader without it would misread int16 positions
            gltf.extensionsUsed = (gltf.extensionsUsed or []) + [QUANTIZATION]
            gltf.extensionsRequired = [QUANTIZATION]


def _add_world(out: _GlbWriter, snapshot, world, grid, tris, opts: dict, compression=None) -> None:
    """The terrain and, as the options ask, the ground, the background layer or the backdrop skirts,
    the sky (with domes from the full sphere when the snapshot has one) and the collider."""
    from functools import partial

    sphere = getattr(snapshot, "sphere", None)  # issue 22: above and below the band from the full sphere
    sphere_mat = partial(sphere_material, out.gltf, out.blob, sphere, opts["unlit"], out.materials)
    terrain_mat = out.material("terrain", opts["unlit"])
    # A procedural world carries its own ground, far around the eye (it replaces the ground disc).
    has_ground = add_ground_mesh(out.gltf, out.blob, out.nodes, snapshot, float(out.lift), compression)
    _add_terrain(out, world, grid, tris, opts, terrain_mat, None if sphere is None else sphere_mat, has_ground)
    # issue 22: a background layer behind depth cuts replaces the skirts there
    layer = add_background(snapshot, world, opts, out.gltf, out.blob, out.materials, out.add)
    positions, _, uvs, distance, sky = grid
    if opts["backdrop"]:
        cut = tris.cut if layer is None else tris.cut[:0]
        skirt = skirts(positions.reshape(-1, 3), uvs.reshape(-1, 2), distance.reshape(-1), sky.reshape(-1), cut,
                        tris.horizon)
        if skirt is not None:
            out.add("backdrop", skirt[0], skirt[1], toward_eye(skirt[0]) if opts["normals"] else None, skirt[2],
                    terrain_mat)
    if opts["sky"]:
        _add_sky(out, world, opts, layer is not None, None if sphere is None else sphere_mat)
    if opts["collider"]:
        collider = collider_mesh(world, opts["collider_step"], opts["cut_threshold"])
        if collider is not None:
            # "-colonly" is Godot's import hint for a collision-only node; extras say so to others.
            out.add("collider-colonly", collider[0], collider[1], None, None, collider_material(out.gltf),
                    extras={"collider": True})


def _add_terrain(out: _GlbWriter, world, grid, tris, opts: dict, terrain_mat: int, sphere_mat,
                 has_ground: bool = False) -> None:
    """The terrain and, closed, the ground under the eye (a disc; rings textured from the sphere when
    ``sphere_mat`` gives its material)."""
    positions, normals, uvs, distance, _ = grid
    flat_pos, flat_nrm, flat_uv = positions.reshape(-1, 3), normals.reshape(-1, 3), uvs.reshape(-1, 2)
    want_normals = opts["normals"]
    if not len(tris.terrain):
        return
    used, faces = tris.terrain_vertices, tris.terrain
    out.add("terrain", flat_pos[used], faces, flat_nrm[used] if want_normals else None, flat_uv[used], terrain_mat)
    if opts["closed"] and not has_ground:
        h, wv = distance.shape
        rim = used[used >= (h - 1) * wv]  # the terrain's bottom-edge vertices, in column order
        depth = float(world.ground_height or world.settings.eye_height)
        disc = ground_disc(flat_pos, flat_uv, rim, depth) if sphere_mat is None else ground_rings(flat_pos, rim, depth)
        if disc is not None:
            out.add("ground", disc[0], disc[1], toward_eye(disc[0]) if want_normals else None, disc[2],
                    terrain_mat if sphere_mat is None else sphere_mat())


def _add_sky(out: _GlbWriter, world, opts: dict, has_layer: bool, sphere_mat) -> None:
    """The sky shell; with a background layer it backs what opens behind the foreground, so its
    texture is the layer's there; with a full sphere, domes close it above and below."""
    want_normals = opts["normals"]
    sky_pos, sky_faces, sky_uv = sky_shell(world, opts["closed"] and sphere_mat is None, opts["uv16"])
    sky_mat = out.materials["background"] if has_layer and not opts["uv16"] else out.material("sky", True)
    out.add("sky", sky_pos, sky_faces, toward_eye(sky_pos) if want_normals else None, sky_uv, sky_mat)
    if sphere_mat is not None and opts["closed"]:
        dome = sky_domes(world, float(np.linalg.norm(sky_pos[:2], axis=1).max()))
        out.add("sky-dome", dome[0], dome[1], toward_eye(dome[0]) if want_normals else None, dome[2], sphere_mat())


def _version() -> str:
    from worldgen import __version__

    return __version__


SPEC = ExporterSpec(
    name="glb",
    extension=".glb",
    description="textured mesh (binary glTF): closed 360-degree seam, cut depth edges, sky node, y-up metres",
    export=export_glb,
    options=option_names(DEFAULTS),
)
