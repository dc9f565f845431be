"""Binary glTF (GLB) mesh of a panorama world.

The world is a grid mesh with one vertex per pixel (or per ``step``-th pixel), y up, metres, the
camera at the origin (``origin=ground`` lifts everything so the ground is at y = 0 instead). Its
nodes:

- ``terrain``: the surfaces, textured with the panorama (embedded JPEG, quality 95, or lossless
  PNG with ``texture=png``; UVs at the pixel centres). Triangles across a depth discontinuity are
  left out (a jump of more than ``cut_threshold``, relative, that no neighbouring edge continues:
  see ``exporters/_grid_mesh.py``), so foreground and background are not joined by stretched
  "curtains" while a floor receding to the horizon stays whole. For a 360-degree panorama the
  first vertex column is repeated at the end with identical positions: the seam is closed (no
  crack), and only the UV differs (u > 1, the texture wraps with REPEAT), which glTF needs because
  a vertex has one UV.
- ``backdrop``: each cut triangle again, pushed back to the distance of its farthest corner, so
  that seen from the eye no crack opens along a silhouette (``backdrop=false`` leaves it out).
- ``sky``: pixels at or beyond ``far`` (see ``worldgen.geometry``), on a cylinder of radius
  ``far``, unlit. It covers every quad that touches a sky pixel, so no crack opens between the
  horizon and the sky.
- ``camera``: a perspective camera at the eye, looking down -z (the first column of the panorama).
- ``collider-colonly`` (``collider=true``): an untextured, decimated copy of the terrain
  (``collider_step``, mesh ``collider``) whose seam shares its vertices, for game-engine physics;
  the name suffix is Godot's hint for a collision-only node, and ``extras.collider`` says so to others.
"""

from __future__ import annotations

import io
import math
import struct
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from worldgen.specs import ExporterSpec

from ._common import choice, option_names, read_options, world_for
from ._grid_mesh import triangulate

DEFAULTS = {
    "step": 1,  # 1 = one vertex per pixel; n = every n-th pixel in both directions
    "cut_threshold": 0.1,  # relative distance jump across an edge that cuts it (0.1 = 10 %)
    "sky": True,  # emit the sky node
    "normals": True,  # write vertex normals (from the normal layer, else from the depth grid)
    # jpeg: 12 ms for 4096x1024 and ~1 MB; png: lossless but ~0.6 s and ~10 MB (level-1 zlib).
    "texture": "jpeg",
    "jpeg_quality": 95,
    "unlit": False,  # terrain with KHR_materials_unlit (the panorama already holds its lighting)
    "origin": "camera",  # camera: camera at (0, 0, 0); ground: ground at y = 0, camera at eye height
    "backdrop": True,  # fill the cracks at cut edges (as seen from the eye) with a "backdrop" node
    "collider": False,
    "collider_step": 8,
}

# glTF enums
_FLOAT, _UINT = 5126, 5125
_ARRAY_BUFFER, _ELEMENT_ARRAY_BUFFER = 34962, 34963
_LINEAR, _LINEAR_MIPMAP_LINEAR = 9729, 9987
_REPEAT, _CLAMP = 10497, 33071
_UNLIT = "KHR_materials_unlit"


# glTF assembly ----------------------------------------------------------------------------------

class _Blob:
    """The GLB binary chunk as a list of 4-byte aligned pieces, with their bufferViews/accessors.

    Pieces are kept as memoryviews of the numpy arrays, so the only copy of the ~250 MB of a
    4096x1024 world is the final join (pygltflib's own GLB writer copies it three times)."""

    def __init__(self, gltf) -> None:
        self.gltf = gltf
        self.parts: list = []
        self.offset = 0

    def view(self, data, target=None) -> int:
        from pygltflib import BufferView

        data = memoryview(data).cast("B")
        self.gltf.bufferViews.append(BufferView(buffer=0, byteOffset=self.offset, byteLength=data.nbytes, target=target))
        self.parts.append(data)
        pad = -data.nbytes % 4
        if pad:
            self.parts.append(b"\0" * pad)
        self.offset += data.nbytes + pad
        return len(self.gltf.bufferViews) - 1

    def accessor(self, array: np.ndarray, kind: str, target: int, bounds: bool = False) -> int:
        from pygltflib import Accessor

        array = np.ascontiguousarray(array)
        component = _UINT if array.dtype == np.uint32 else _FLOAT
        count = array.size if kind == "SCALAR" else array.shape[0]
        acc = Accessor(bufferView=self.view(array, target), componentType=component, count=int(count), type=kind)
        if bounds:
            # Column by column: 20x faster than min(axis=0) across an (N, 3) array.
            acc.min = [float(array[:, k].min()) for k in range(array.shape[1])]
            acc.max = [float(array[:, k].max()) for k in range(array.shape[1])]
        self.gltf.accessors.append(acc)
        return len(self.gltf.accessors) - 1

    def glb(self) -> bytes:
        """The GLB container (spec section 4.4): 12-byte header, JSON chunk, BIN chunk."""
        from pygltflib import Buffer

        self.gltf.buffers = [Buffer(byteLength=self.offset)]
        text = self.gltf.gltf_to_json(separators=(",", ":"), indent=None).encode("utf-8")
        text += b" " * (-len(text) % 4)  # the JSON chunk is padded with spaces
        total = 12 + 8 + len(text) + 8 + self.offset
        head = struct.pack("<4sII", b"glTF", 2, total) + struct.pack("<I4s", len(text), b"JSON") + text
        return b"".join([head, struct.pack("<I4s", self.offset, b"BIN\0"), *self.parts])


def _encode_texture(image: np.ndarray, fmt: str, quality: int) -> tuple[bytes, str]:
    from PIL import Image

    pixels = (np.clip(image, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
    buf = io.BytesIO()
    if fmt == "jpeg":
        Image.fromarray(pixels).save(buf, format="JPEG", quality=int(quality))
        return buf.getvalue(), "image/jpeg"
    # zlib level 1: about twice as fast as the default for ~10 % more bytes.
    Image.fromarray(pixels).save(buf, format="PNG", compress_level=1)
    return buf.getvalue(), "image/png"


def _primitive(blob: _Blob, positions, faces, normals=None, uvs=None, material=None):
    from pygltflib import Attributes, Primitive

    attrs = Attributes(POSITION=blob.accessor(positions, "VEC3", _ARRAY_BUFFER, bounds=True))
    if normals is not None:
        attrs.NORMAL = blob.accessor(normals, "VEC3", _ARRAY_BUFFER)
    if uvs is not None:
        attrs.TEXCOORD_0 = blob.accessor(uvs, "VEC2", _ARRAY_BUFFER)
    indices = blob.accessor(faces.reshape(-1), "SCALAR", _ELEMENT_ARRAY_BUFFER)
    return Primitive(attributes=attrs, indices=indices, material=material, mode=4)


def _vertex_grid(world, wrap_dup: bool):
    """Per-vertex arrays on the grid, with the first column repeated at the end for a closed,
    textured 360-degree seam. UV u of the repeat is > 1 (the sampler wraps)."""
    proj = world.projection
    cols = world.columns.astype(np.float64)
    if wrap_dup:
        cols = np.append(cols, cols[0] + proj.width)

        def dup(a):
            return np.concatenate([a, a[:, :1]], axis=1)
    else:
        def dup(a):
            return a

    u = ((cols + 0.5) / proj.width).astype(np.float32)
    v = ((world.rows + 0.5) / proj.height).astype(np.float32)
    uv = np.empty((len(v), len(u), 2), dtype=np.float32)
    uv[..., 0] = u[None, :]
    uv[..., 1] = v[:, None]
    return dup(world.points), dup(world.normals), uv, dup(world.distance), dup(world.sky)


def export_glb(snapshot, options: dict) -> bytes:
    from pygltflib import GLTF2, Asset, Camera, Image, Mesh, Node, Perspective, Sampler, Scene, Texture

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

    # The texture encodes in a second thread (zlib and libjpeg release the GIL) while numpy meshes.
    with ThreadPoolExecutor(max_workers=1) as pool:
        texture_job = pool.submit(_encode_texture, snapshot.image, fmt, opts["jpeg_quality"])
        world = world_for(snapshot, opts)
        positions, normals, uvs, distance, sky = _vertex_grid(world, wrap_dup=world.wraps)
        tris = triangulate(distance, sky, opts["cut_threshold"], "duplicate" if world.wraps else "none",
                           want_sky=opts["sky"])
        texture_bytes, mime = texture_job.result()

    lift = np.float32((world.ground_height or world.settings.eye_height) if origin == "ground" else 0.0)
    up = np.array([0.0, lift, 0.0], dtype=np.float32)
    gltf = GLTF2(asset=Asset(generator=f"worldgen {_version()}", version="2.0"))
    gltf.extras = {"worldgen": dict(world.metadata(), origin=origin)}
    blob = _Blob(gltf)
    gltf.images.append(Image(bufferView=blob.view(texture_bytes), mimeType=mime, name="panorama"))
    # The seam needs REPEAT across u; v must not bleed from the top row into the bottom one.
    gltf.samplers.append(Sampler(magFilter=_LINEAR, minFilter=_LINEAR_MIPMAP_LINEAR, wrapS=_REPEAT, wrapT=_CLAMP))
    gltf.textures.append(Texture(sampler=0, source=0))
    materials = {}

    def material(name: str, unlit: bool) -> int:
        if name not in materials:
            materials[name] = _material(gltf, name, unlit)
        return materials[name]

    flat_pos = positions.reshape(-1, 3)
    flat_nrm = normals.reshape(-1, 3)
    flat_uv = uvs.reshape(-1, 2)
    flat_dist = distance.reshape(-1)
    nodes = []

    def add(name, positions, faces, normals, uvs, mat, extras=None):
        prim = _primitive(blob, positions + up if lift else positions, faces,
                          normals if opts["normals"] else None, uvs, mat)
        gltf.meshes.append(Mesh(name=name.split("-")[0], primitives=[prim]))
        nodes.append(Node(name=name, mesh=len(gltf.meshes) - 1, extras=extras))

    if len(tris.terrain):
        used, faces = tris.terrain_vertices, tris.terrain
        add("terrain", flat_pos[used], faces, flat_nrm[used], flat_uv[used], material("terrain", opts["unlit"]))

    if opts["backdrop"] and len(tris.cut):
        # Each cut triangle again, pushed back to its farthest corner's distance along the same rays:
        # seen from the eye it fills the crack between foreground and background exactly.
        corners = tris.cut.reshape(-1)
        far = flat_dist[tris.cut].max(axis=1).repeat(3)
        scale = (far / flat_dist[corners])[:, None]
        faces = np.arange(corners.size, dtype=np.uint32).reshape(-1, 3)
        add("backdrop", flat_pos[corners] * scale, faces, _toward_eye(flat_pos[corners]), flat_uv[corners],
            material("terrain", opts["unlit"]))

    if tris.sky is not None and len(tris.sky):
        used, faces = tris.sky_vertices, tris.sky
        # Every sky vertex sits on the far cylinder, including the terrain-side corners of the
        # horizon quads, so the sky closes behind the terrain's edge.
        rays = flat_pos[used]
        radial = np.hypot(rays[:, 0], rays[:, 2])[:, None]
        sky_pos = (rays / radial * np.float32(world.settings.far)).astype(np.float32)
        add("sky", sky_pos, faces, _toward_eye(sky_pos), flat_uv[used], material("sky", True))

    if opts["collider"]:
        collider = _collider(world, opts["collider_step"], opts["cut_threshold"])
        if collider is not None:
            # "-colonly" is Godot's import hint for a collision-only node; extras say so to other tools.
            add("collider-colonly", collider[0], collider[1], None, None, None, extras={"collider": True})

    vfov = math.radians(min(max(world.projection.vfov_deg, 10.0), 120.0))
    gltf.cameras.append(Camera(type="perspective", name="eye", perspective=Perspective(
        yfov=vfov, znear=min(0.05, world.settings.near), zfar=world.settings.far * 2.0)))
    nodes.append(Node(name="camera", camera=0, translation=[0.0, float(lift), 0.0]))

    gltf.nodes = nodes
    gltf.scenes = [Scene(name="world", nodes=list(range(len(nodes))))]
    gltf.scene = 0
    if any(m.extensions and _UNLIT in m.extensions for m in gltf.materials):
        gltf.extensionsUsed = [_UNLIT]
    return blob.glb()


def _material(gltf, name: str, unlit: bool) -> int:
    from pygltflib import Material, PbrMetallicRoughness, TextureInfo

    mat = Material(name=name, doubleSided=False, pbrMetallicRoughness=PbrMetallicRoughness(
        baseColorTexture=TextureInfo(index=0), metallicFactor=0.0, roughnessFactor=1.0))
    if unlit:
        mat.extensions = {_UNLIT: {}}
    gltf.materials.append(mat)
    return len(gltf.materials) - 1


def _toward_eye(points: np.ndarray) -> np.ndarray:
    """Unit normals pointing back along each point's ray to the eye (for surfaces seen head-on)."""
    n = -points.astype(np.float32)
    return n / np.maximum(np.linalg.norm(n, axis=1, keepdims=True), np.float32(1e-12))


def _collider(world, step: int, threshold: float):
    """(positions, faces) of a decimated, untextured terrain whose 360-degree seam shares its
    vertices (watertight there), or None when nothing is left."""
    dist = world.distance[::step, ::step]
    sky = world.sky[::step, ::step]
    pts = world.points[::step, ::step].reshape(-1, 3)
    # The last kept column and column 0 are at most one step apart, so joining them is right.
    tris = triangulate(dist, sky, threshold, "shared" if world.wraps else "none", want_sky=False)
    if not len(tris.terrain):
        return None
    return pts[tris.terrain_vertices], tris.terrain


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
