"""Look at a world: an open3d window, a headless screenshot, or a browser view through viser.

Every view starts where the panorama was taken: the camera at the eye (the origin, or the glTF
``camera`` node of a GLB), looking down -z (the first column of the panorama), y up.

Sources: a scene folder (exported to GLB on the fly, decimated to ``max_vertices``), a ``.glb`` /
``.gltf`` mesh, a ``.ply`` point cloud, or a ``.ply`` of Gaussian splats (3DGS layout). open3d
draws splats as coloured points; the browser view draws them as real splats.

Headless rendering needs a software Vulkan driver for open3d 0.20's renderer (Debian:
``libvulkan1 mesa-vulkan-drivers``); without one ``screenshot`` raises ``UserInputError`` saying so.
"""

from __future__ import annotations

import math
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import numpy as np

from ..errors import UserInputError

SH_C0 = 0.28209479177387814
COLLIDER_NAMES = ("collider",)  # meshes that are physics only, never drawn
DEFAULT_MAX_VERTICES = 2_000_000
WEB_MAX_VERTICES = 1_000_000


@dataclass
class ViewSource:
    """What a view shows: GLB bytes (meshes) or point/splat arrays, and where the eye is."""

    kind: str  # "mesh", "points" or "splats"
    eye: np.ndarray
    far: float
    glb: Optional[bytes] = None
    points: Optional[np.ndarray] = None  # (N, 3) float32
    colors: Optional[np.ndarray] = None  # (N, 3) float32 in [0, 1]
    opacities: Optional[np.ndarray] = None  # splats: (N,) in [0, 1]
    covariances: Optional[np.ndarray] = None  # splats: (N, 3, 3)
    extras: dict = field(default_factory=dict)


# Loading --------------------------------------------------------------------------------------

def _decimation(width: int, height: int, max_vertices: int) -> int:
    return max(1, math.ceil(math.sqrt(width * height / max(1, max_vertices))))


def load_source(source: str | Path, max_vertices: int = DEFAULT_MAX_VERTICES, unlit: bool = True) -> ViewSource:
    """Read a scene folder, .glb/.gltf or .ply into a ``ViewSource``."""
    path = Path(source)
    if path.is_dir():
        return _from_scene(path, max_vertices, unlit)
    if not path.is_file():
        raise UserInputError(f"{path} does not exist; give a scene folder, a .glb or a .ply")
    suffix = path.suffix.lower()
    if suffix in (".glb", ".gltf"):
        eye, far = _gltf_eye_and_far(_load_gltf(path))
        return ViewSource(kind="mesh", glb=path.read_bytes() if suffix == ".glb" else None, eye=eye, far=far,
                          extras={"path": str(path)})
    if suffix == ".ply":
        return _from_ply(path)
    raise UserInputError(f"{path.name}: cannot view {suffix or 'files without an extension'}; "
                         "give a scene folder, a .glb or a .ply")


def _from_scene(path: Path, max_vertices: int, unlit: bool) -> ViewSource:
    from ..export_files import export_bytes
    from ..scene.store import Scene

    snapshot = Scene.open(path).load()
    step = _decimation(*snapshot.size, max_vertices)
    glb = export_bytes(snapshot, "glb", {"step": step, "texture": "jpeg", "unlit": unlit, "normals": not unlit})
    from ..geometry.world import GeometrySettings

    from pygltflib import GLTF2

    far = GeometrySettings.from_dict(snapshot.geometry).far
    eye, _ = _gltf_eye_and_far(GLTF2.load_from_bytes(glb))  # the export's camera node (eye height above y = 0)
    return ViewSource(kind="mesh", glb=glb, eye=eye, far=far, extras={"step": step})


def _load_gltf(path: Path):
    from pygltflib import GLTF2

    try:
        return GLTF2().load(str(path))
    except Exception as exc:
        raise UserInputError(f"{path} is not a readable glTF file ({exc})") from None


def _gltf_eye_and_far(gltf) -> tuple[np.ndarray, float]:
    """The eye (translation of the first node with a camera, else the origin) and the farthest
    coordinate in the file's position bounds (for the camera's far plane)."""
    eye = next((np.asarray(node.translation, dtype=np.float64) for node in gltf.nodes
                if node.camera is not None and node.translation), np.zeros(3))
    # Float positions only: quantized ones (KHR_mesh_quantization) are in integer units.
    extent = max((abs(v) for acc in gltf.accessors if acc.type == "VEC3" and acc.max and acc.min
                  and acc.componentType == 5126 for v in acc.max + acc.min), default=0.0)
    return eye, extent or 100.0


def read_ply_header(data: bytes) -> tuple[list[tuple[str, str]], int, int]:
    """(properties [(type, name)], vertex count, header length) of a binary little-endian PLY."""
    end = data.find(b"end_header\n")
    if not data.startswith(b"ply") or end < 0:
        raise UserInputError("not a PLY file (no 'ply' magic or 'end_header'); give a binary PLY")
    header = data[:end].decode("ascii", errors="replace").splitlines()
    if "format binary_little_endian 1.0" not in header:
        raise UserInputError("only binary little-endian PLY files can be read here; convert it with open3d")
    props, count, in_vertex = [], 0, False
    for line in header:
        parts = line.split()
        if parts[:1] == ["element"]:
            in_vertex = parts[1] == "vertex"
            if in_vertex:
                count = int(parts[2])
        elif parts[:1] == ["property"] and in_vertex:
            if parts[1] == "list":
                raise UserInputError("PLY vertex lists are not supported here")
            props.append((parts[1], parts[2]))
    return props, count, end + len(b"end_header\n")


_PLY_DTYPES = {"float": "<f4", "float32": "<f4", "double": "<f8", "uchar": "u1", "uint8": "u1", "char": "i1",
               "short": "<i2", "ushort": "<u2", "int": "<i4", "uint": "<u4", "int32": "<i4", "uint32": "<u4"}


def read_ply_vertices(data: bytes) -> np.ndarray:
    """The vertex records of a binary little-endian PLY as a numpy structured array."""
    props, count, start = read_ply_header(data)
    try:
        dtype = np.dtype([(name, _PLY_DTYPES[kind]) for kind, name in props])
    except KeyError as exc:
        raise UserInputError(f"PLY property type {exc} is not supported") from None
    if len(data) - start < count * dtype.itemsize:
        raise UserInputError("the PLY file is truncated (fewer bytes than its header promises)")
    return np.frombuffer(data, dtype=dtype, count=count, offset=start)


def _from_ply(path: Path) -> ViewSource:
    with open(path, "rb") as handle:
        head = handle.read(4096)
    if b"f_dc_0" not in head.partition(b"end_header")[0]:  # a plain point cloud: open3d reads any PLY
        import open3d as o3d

        cloud = o3d.io.read_point_cloud(str(path))
        points = np.asarray(cloud.points, dtype=np.float32)
        if len(points) == 0:
            raise UserInputError(f"{path} holds no points; export it again or check the file")
        colors = (np.asarray(cloud.colors, dtype=np.float32) if cloud.has_colors()
                  else np.full((len(points), 3), 0.8, dtype=np.float32))
        return ViewSource(kind="points", points=points, colors=colors, eye=np.zeros(3),
                          far=float(np.abs(points).max()))
    # 3D Gaussian splats
    from scipy.spatial.transform import Rotation

    records = read_ply_vertices(path.read_bytes())
    points = np.stack([records["x"], records["y"], records["z"]], axis=1).astype(np.float32)
    colors = np.clip(0.5 + SH_C0 * np.stack([records[f"f_dc_{i}"] for i in range(3)], axis=1), 0, 1)
    opacity = 1.0 / (1.0 + np.exp(-records["opacity"].astype(np.float64)))
    scales = np.exp(np.stack([records[f"scale_{i}"] for i in range(3)], axis=1).astype(np.float64))
    wxyz = np.stack([records[f"rot_{i}"] for i in range(4)], axis=1).astype(np.float64)
    rot = Rotation.from_quat(wxyz[:, [1, 2, 3, 0]]).as_matrix()
    cov = rot @ (scales[:, :, None] ** 2 * np.eye(3)[None]) @ rot.transpose(0, 2, 1)
    far = float(np.abs(points).max()) if len(points) else 1.0
    return ViewSource(kind="splats", points=points, colors=colors.astype(np.float32), eye=np.zeros(3), far=far,
                      opacities=opacity.astype(np.float32), covariances=cov.astype(np.float32))


# open3d ----------------------------------------------------------------------------------------

def _direction(yaw_deg: float, pitch_deg: float) -> np.ndarray:
    """Yaw to the right of -z (panorama azimuth), pitch up."""
    yaw, pitch = math.radians(yaw_deg), math.radians(pitch_deg)
    return np.array([math.sin(yaw) * math.cos(pitch), math.sin(pitch), -math.cos(yaw) * math.cos(pitch)])


def _pre_encode(image) -> "np.ndarray":
    """An 8-bit sRGB texture encoded once more, so that the renderer's sRGB -> linear decoding
    gives back the original numbers (post-processing, which would re-encode, is off: see
    ``_exact_colours``)."""
    c = np.asarray(image, dtype=np.float64) / 255.0
    encoded = np.where(c <= 0.0031308, c * 12.92, 1.055 * np.power(c, 1 / 2.4) - 0.055)
    return np.ascontiguousarray(np.round(np.clip(encoded, 0, 1) * 255).astype(np.uint8))


def _exact_colours(view) -> None:
    """Show the panorama's colours as they are. Filament's post-processing tone-maps (ACES:
    darker, shifted colours); without it the shader output is written as is, so textures are
    pre-encoded (``_pre_encode``) and point colours are passed unchanged."""
    view.set_post_processing(False)


def angular_spacing(points: np.ndarray, eye: np.ndarray) -> float:
    """Typical angle (radians) between neighbouring points as seen from the eye.

    Clouds made from a panorama sample directions evenly, so the spacing is about
    sqrt(covered solid angle / points); the covered solid angle is counted on a 1-degree grid."""
    d = np.asarray(points, dtype=np.float64) - eye
    if len(d) == 0:
        return 0.01
    r = np.linalg.norm(d, axis=1)
    ok = r > 1e-9
    azimuth = np.arctan2(d[ok, 0], -d[ok, 2])
    elevation = np.arcsin(np.clip(d[ok, 1] / r[ok], -1, 1))
    bins = np.zeros((180, 360), dtype=bool)
    rows = np.clip(((elevation + np.pi / 2) / np.pi * 180).astype(int), 0, 179)
    cols = np.clip(((azimuth + np.pi) / (2 * np.pi) * 360).astype(int), 0, 359)
    bins[rows, cols] = True
    one = math.radians(1.0)
    solid = (bins.sum(axis=1) * one * one * np.cos(np.radians(np.arange(180) - 89.5))).sum()
    return float(math.sqrt(max(solid, 1e-9) / max(int(ok.sum()), 1)))


def _o3d_geometries(view: ViewSource, point_size: float = 3.0, exact: bool = True):
    """[(name, geometry, MaterialRecord)] for open3d, unlit (the panorama carries its own light).

    ``exact``: colours for a view without post-processing (``_exact_colours``); otherwise for the
    interactive window, whose post-processing decodes nothing and encodes linear light to sRGB."""
    import open3d as o3d

    rendering = o3d.visualization.rendering
    items = []
    if view.kind == "mesh":
        with tempfile.TemporaryDirectory(prefix="worldgen-view-") as tmp:
            path = Path(tmp) / "world.glb"
            if view.glb is not None:
                path.write_bytes(view.glb)
            else:
                path = Path(view.extras["path"])
            model = o3d.io.read_triangle_model(str(path))
        for index, info in enumerate(model.meshes):
            if info.mesh_name.lower().startswith(COLLIDER_NAMES):
                continue
            mat = rendering.MaterialRecord()
            mat.shader = "defaultUnlit"
            mesh = info.mesh
            # The unlit shader multiplies the texture by the vertex colour (grey when there is none).
            mesh.vertex_colors = o3d.utility.Vector3dVector(np.ones((len(mesh.vertices), 3)))
            if 0 <= info.material_idx < len(model.materials):
                source = model.materials[info.material_idx]
                if source.albedo_img is not None and not source.albedo_img.is_empty():
                    albedo = np.asarray(source.albedo_img)
                    mat.albedo_img = o3d.geometry.Image(_pre_encode(albedo) if exact else albedo)
                mat.base_color = source.base_color
            items.append((f"{index}-{info.mesh_name or 'mesh'}", mesh, mat))
    else:
        cloud = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(view.points.astype(np.float64)))
        colors = view.colors.astype(np.float64)
        if not exact:  # the window encodes to sRGB: hand it linear light
            colors = np.where(colors <= 0.04045, colors / 12.92, ((colors + 0.055) / 1.055) ** 2.4)
        cloud.colors = o3d.utility.Vector3dVector(colors)
        mat = rendering.MaterialRecord()
        mat.shader = "defaultUnlit"
        mat.point_size = float(point_size)
        items.append((view.kind, cloud, mat))
    return items


def _offscreen_renderer(width: int, height: int):
    import open3d as o3d

    o3d.utility.set_verbosity_level(o3d.utility.VerbosityLevel.Error)  # "no X11, going headless" is expected
    try:
        return o3d.visualization.rendering.OffscreenRenderer(width, height)
    except RuntimeError as exc:
        raise UserInputError(f"headless rendering is not available here ({exc}); install a software renderer "
                             "(Debian: apt-get install libvulkan1 mesa-vulkan-drivers) or use `worldgen view --web`"
                             ) from None


def render_image(view: ViewSource, width: int = 1280, height: int = 720, yaw_deg: float = 0.0,
                 pitch_deg: float = 0.0, fov_deg: float = 75.0, background=(0.0, 0.0, 0.0)) -> np.ndarray:
    """Render the view from the eye, offscreen: (height, width, 3) uint8."""
    import open3d as o3d

    if width < 16 or height < 16:
        raise UserInputError(f"screenshot size {width}x{height} is too small; use at least 16x16")
    # Points as large as their spacing on screen, so a cloud reads as surfaces, not dust.
    focal = (height / 2.0) / math.tan(math.radians(fov_deg) / 2.0)
    point_size = 3.0
    if view.kind != "mesh":
        # A flat image stretches the spacing towards its edges by 1 / cos^2 of the angle off-axis:
        # size the points for the widest angle (with a margin), so no gaps open at the sides.
        half_width = math.atan(math.tan(math.radians(fov_deg) / 2) * width / height)
        stretch = 1.25 / math.cos(half_width) ** 2
        point_size = float(np.clip(stretch * focal * angular_spacing(view.points, view.eye), 1.0, 48.0))
    items = _o3d_geometries(view, point_size)
    renderer = _offscreen_renderer(width, height)
    try:
        for name, geometry, material in items:
            renderer.scene.add_geometry(name, geometry, material)
        renderer.scene.set_background([*background, 1.0])
        _exact_colours(renderer.scene.view)
        eye = np.asarray(view.eye, dtype=np.float64)
        camera = renderer.scene.camera
        camera.look_at(eye + _direction(yaw_deg, pitch_deg), eye, np.array([0.0, 1.0, 0.0]))
        camera.set_projection(float(fov_deg), width / height, 0.05, max(view.far, 1.0) * 4.0,
                              o3d.visualization.rendering.Camera.FovType.Vertical)
        image = np.asarray(renderer.render_to_image()).copy()
    finally:
        # Filament aborts the process if a renderer dies with geometry still attached.
        renderer.scene.clear_geometry()
        del renderer
    return image[..., :3]


def screenshot(source, output: str | Path, width: int = 1280, height: int = 720, yaw_deg: float = 0.0,
               pitch_deg: float = 0.0, fov_deg: float = 75.0, max_vertices: int = DEFAULT_MAX_VERTICES) -> Path:
    """Render ``source`` from the eye to a PNG file (written atomically); returns the path."""
    from ..scene.atomic import atomic_write_bytes
    from ..scene.image_files import encode_png

    output = Path(output)
    if output.suffix.lower() != ".png":
        raise UserInputError(f"{output} must end in .png")
    view = load_source(source, max_vertices=max_vertices)
    image = render_image(view, width, height, yaw_deg, pitch_deg, fov_deg)
    return atomic_write_bytes(output, encode_png(image))


def open_window(source, max_vertices: int = DEFAULT_MAX_VERTICES, fov_deg: float = 75.0) -> None:
    """An interactive open3d window, starting at the eye (blocks until it is closed)."""
    import os

    import open3d as o3d

    if not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        raise UserInputError("no display here; use --screenshot FILE.png (renders headless) or --web (browser)")
    view = load_source(source, max_vertices=max_vertices)
    items = [{"name": name, "geometry": geometry, "material": material}
             for name, geometry, material in _o3d_geometries(view, exact=False)]
    eye = np.asarray(view.eye, dtype=np.float64)
    o3d.visualization.draw(items, title="worldgen", eye=eye, lookat=eye + _direction(0.0, 0.0), up=[0.0, 1.0, 0.0],
                           field_of_view=fov_deg, show_skybox=False, bg_color=(0.0, 0.0, 0.0, 1.0))


# viser (browser) ----------------------------------------------------------------------------------

def start_web(source, host: str = "127.0.0.1", port: int = 8080, max_vertices: int = WEB_MAX_VERTICES):
    """Serve the world through viser (non-blocking; returns the server, stop it with ``.stop()``)."""
    try:
        import viser
    except ImportError:
        raise UserInputError("the browser view needs viser: pip install 'worldgen[web]'") from None

    view = load_source(source, max_vertices=max_vertices)
    if view.kind == "mesh" and view.glb is None:
        raise UserInputError("the browser view reads .glb files, not .gltf; convert it (e.g. with gltf-transform)")
    server = viser.ViserServer(host=host, port=port, verbose=False)
    server.scene.set_up_direction("+y")
    server.gui.configure_theme(control_layout="collapsible", show_logo=False)
    if view.kind == "mesh":
        from .web_colours import tone_mapping_proof_glb

        # viser tone-maps meshes (ACES): send colours it maps back to the panorama's, and no
        # light besides their emission (see web_colours).
        server.scene.configure_default_lights(False)
        server.scene.configure_environment_map(None)
        server.scene.add_glb("/world", tone_mapping_proof_glb(view.glb))
    elif view.kind == "points":
        server.scene.add_point_cloud("/world", view.points, (view.colors * 255).astype(np.uint8),
                                     point_size=_point_size(view), point_shape="square", precision="float32")
    else:
        server.scene.add_gaussian_splats("/world", centers=view.points, covariances=view.covariances,
                                         rgbs=view.colors, opacities=view.opacities[:, None])
    eye = np.asarray(view.eye, dtype=np.float64)
    camera = server.initial_camera
    camera.position = tuple(eye)
    # Orbiting turns around the look-at point: half a metre ahead keeps the camera inside the world.
    camera.look_at = tuple(eye + 0.5 * _direction(0.0, 0.0))
    camera.up = (0.0, 1.0, 0.0)
    camera.fov = math.radians(75.0)
    camera.near = 0.05
    camera.far = max(view.far, 1.0) * 4.0
    return server


def _point_size(view: ViewSource) -> float:
    """About two pixels' worth at the median distance of a 2048-wide panorama."""
    distance = float(np.median(np.linalg.norm(view.points - view.eye, axis=1))) if len(view.points) else 1.0
    return max(distance * 2.0 * math.pi / 2048.0 * 2.0, 1e-3)
