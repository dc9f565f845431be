"""The GLB exporter: validity, counts, seam, cuts, sky, texture, round trip back to pixels."""

from __future__ import annotations

import io

import numpy as np
import pytest

from worldgen.errors import UserInputError
from worldgen.geometry.rays import project_points
from worldgen.registry import get_registry


def export(snapshot, **options) -> bytes:
    """The full-resolution grid with the camera at the origin: the layout these structure tests
    check vertex by vertex (the defaults, simplified and lifted, are tested in test_glb_defaults)."""
    return get_registry().exporter("glb").export(snapshot, {"simplify": False, "origin": "camera", **options})


def boundary_edges(faces: np.ndarray) -> np.ndarray:
    """Edges (sorted vertex pairs) used by exactly one face."""
    edges = np.sort(np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]]), axis=1)
    unique, counts = np.unique(edges, axis=0, return_counts=True)
    return unique[counts == 1]


def weld(positions: np.ndarray, faces: np.ndarray):
    """Merge vertices with bit-identical positions (what the seam repeat relies on)."""
    unique, inverse = np.unique(positions, axis=0, return_inverse=True)
    return unique, inverse.reshape(-1)[faces]


# The Khronos validator -----------------------------------------------------------------------------

@pytest.mark.parametrize("options", [{}, {"collider": True, "texture": "png", "unlit": True},
                                     {"step": 3, "origin": "ground", "normals": False}])
def test_glb_passes_the_khronos_validator(gltf_validator, room, options):
    issues = gltf_validator(export(room, **options))
    assert issues["numErrors"] == 0, issues["messages"]
    assert issues["numWarnings"] == 0, issues["messages"]


def test_partial_span_and_normals_only_scenes_pass_the_validator(kit, gltf_validator):
    for snapshot in (kit.room_snapshot(200, 48, span=150.0), kit.room_snapshot(128, 48, with_normals=True, depth=False)):
        issues = gltf_validator(export(snapshot))
        assert issues["numErrors"] == 0, issues["messages"]


# Reloading and counts ---------------------------------------------------------------------------------

def test_reloads_in_trimesh_with_one_vertex_per_pixel_plus_the_seam_column(kit):
    import trimesh

    w, h = 96, 32
    snapshot = kit.room_snapshot(w, h, pillar=False, sky=False)  # nothing to cut, nothing in the sky
    scene = trimesh.load(io.BytesIO(export(snapshot)), file_type="glb", process=False)
    terrain = scene.geometry["terrain"]
    assert len(terrain.vertices) == h * (w + 1)  # the first column repeats at the end (seam UVs)
    assert len(terrain.faces) == 2 * (h - 1) * w  # every quad around the full circle, seam included
    assert "backdrop" not in scene.geometry and "ground" in scene.geometry
    assert isinstance(terrain.visual, trimesh.visual.TextureVisuals)
    assert terrain.visual.material.baseColorTexture.size == (w, h)


def test_decimated_grid_has_the_expected_counts(kit):
    import trimesh

    w, h = 96, 32
    snapshot = kit.room_snapshot(w, h, pillar=False, sky=False)
    scene = trimesh.load(io.BytesIO(export(snapshot, step=4)), file_type="glb", process=False)
    terrain = scene.geometry["terrain"]
    assert len(terrain.vertices) == (h // 4) * (w // 4 + 1)
    assert len(terrain.faces) == 2 * (h // 4 - 1) * (w // 4)


def test_partial_span_is_open_at_its_ends(kit):
    w, h = 60, 20
    nodes = kit.glb_nodes(export(kit.room_snapshot(w, h, span=120.0, pillar=False, sky=False)))
    terrain = nodes["terrain"]
    assert len(terrain["POSITION"]) == w * h
    assert len(terrain["faces"]) == 2 * (h - 1) * (w - 1)


# The seam ---------------------------------------------------------------------------------------

def test_seam_is_closed_no_boundary_edges_except_top_and_bottom(kit):
    w, h = 64, 24
    nodes = kit.glb_nodes(export(kit.room_snapshot(w, h, pillar=False, sky=False)))
    pos, faces = nodes["terrain"]["POSITION"], nodes["terrain"]["faces"]
    grid = pos.reshape(h, w + 1, 3)
    assert np.array_equal(grid[:, w], grid[:, 0])  # the repeat is bit-identical: no crack
    welded, welded_faces = weld(pos, faces)
    assert len(welded) == w * h
    edges = boundary_edges(welded_faces)
    _, rows, _ = project_points(welded[edges.reshape(-1)], kit.room_snapshot(w, h).projection)
    rows = np.round(rows).reshape(-1, 2)
    # Only the top and bottom rows have open edges; nothing is open at the 360-degree seam.
    assert np.all(((rows[:, 0] == 0) & (rows[:, 1] == 0)) | ((rows[:, 0] == h - 1) & (rows[:, 1] == h - 1)))
    assert len(edges) == 2 * w


def test_seam_texture_coordinates_wrap_past_one(kit):
    w, h = 64, 24
    uv = kit.glb_nodes(export(kit.room_snapshot(w, h, pillar=False, sky=False)))["terrain"]["TEXCOORD_0"]
    np.testing.assert_allclose(uv.reshape(h, w + 1, 2)[0, :, 0], (np.arange(w + 1) + 0.5) / w, atol=1e-6)

    data = export(kit.room_snapshot(w, h, pillar=False, sky=False), uv16=True)
    nodes = kit.glb_nodes(data)
    uv = nodes["terrain"]["TEXCOORD_0"].reshape(h, w + 1, 2)
    # The texture is w + 1 columns wide (the first repeated at the right): 16-bit UVs stay in [0, 1].
    np.testing.assert_allclose(uv[0, :, 0], (np.arange(w + 1) + 0.5) / (w + 1), atol=1 / 65535)
    np.testing.assert_allclose(uv[:, 0, 1], (np.arange(h) + 0.5) / h, atol=1 / 65535)
    gltf = kit.glb_document(data)
    assert gltf.accessors[gltf.meshes[0].primitives[0].attributes.TEXCOORD_0].componentType == 5123
    assert gltf.samplers[0].wrapS == 33071  # CLAMP: nothing samples past the repeated column


def test_collider_seam_shares_vertices_and_is_closed(kit):
    w, h = 64, 32
    nodes = kit.glb_nodes(export(kit.room_snapshot(w, h, pillar=False, sky=False), collider=True, collider_step=4))
    collider = nodes["collider-colonly"]
    assert collider["node"].extras == {"collider": True}
    assert collider["TEXCOORD_0"] is None
    assert len(collider["POSITION"]) == (h // 4) * (w // 4) + 1  # no repeated column; the point under the eye
    edges = boundary_edges(collider["faces"])
    _, rows, _ = project_points(collider["POSITION"][edges.reshape(-1)], kit.room_snapshot(w, h).projection)
    rows = np.round(rows).reshape(-1, 2)
    assert np.all(rows == 0)  # open only at the top kept row: closed under the camera
    assert len(edges) == w // 4


# Discontinuities ------------------------------------------------------------------------------------

def test_no_terrain_triangle_spans_the_pillar_edge(kit):
    proj, r, labels, _ = kit.room_layers(256, 64)
    terrain = kit.glb_nodes(export(kit.room_snapshot(256, 64)))["terrain"]
    col, row, _ = project_points(terrain["POSITION"], proj)
    label = labels[np.round(row).astype(int), np.round(col).astype(int) % 256][terrain["faces"]]
    assert (label == 2).any() and (label == 1).any()
    assert not np.any((label == 2).any(axis=1) & (label == 1).any(axis=1))  # pillar (2 m) never joins wall (4 m)


def test_receding_floor_is_not_cut_even_near_the_horizon(kit):
    # A floor stretching to 50 m: adjacent rows differ by far more than 10 % near the horizon.
    proj_w, proj_h = 128, 64
    snapshot = kit.room_snapshot(proj_w, proj_h, pillar=False, sky=False)
    t = (proj_h / 2 - (np.arange(proj_h) + 0.5)) / snapshot.projection.focal_px
    r = np.where(t < 0, kit.FLOOR_Y / np.minimum(t, -1e-9), 50.0)
    r = np.minimum(r, 50.0)
    snapshot.modalities["depth"] = np.repeat((1.0 / (2.0 * r))[:, None, None], proj_w, axis=1).astype(np.float32)
    nodes = kit.glb_nodes(export(snapshot))
    assert len(nodes["terrain"]["faces"]) == 2 * (proj_h - 1) * proj_w
    assert "backdrop" not in nodes


def test_skirts_join_the_near_and_far_sides_of_each_cut_and_the_horizon(kit):
    nodes = kit.glb_nodes(export(kit.room_snapshot(256, 64)))
    backdrop = nodes["backdrop"]
    r = np.hypot(backdrop["POSITION"][:, 0], backdrop["POSITION"][:, 2])[backdrop["faces"]]
    near_far = np.isclose(r, kit.PILLAR, rtol=1e-4).any(axis=1) & (r > kit.PILLAR * 1.1).any(axis=1)
    assert near_far.sum() >= 2 * (64 // 2)  # the pillar's two vertical edges, one quad per row at least
    assert np.all(r < kit.METRIC["far"] * 0.5)  # horizon skirts bring their sky corners in to the wall
    assert kit.glb_nodes(export(kit.room_snapshot(256, 64), backdrop=False)).get("backdrop") is None


def test_cut_threshold_is_configurable(kit):
    loose = kit.glb_nodes(export(kit.room_snapshot(256, 64), cut_threshold=2.0))  # a 2 m -> 4 m step is only +100 %
    strict = kit.glb_nodes(export(kit.room_snapshot(256, 64)))
    assert len(loose["terrain"]["faces"]) > len(strict["terrain"]["faces"])
    assert len(loose["backdrop"]["faces"]) < len(strict["backdrop"]["faces"])  # only the horizon is left


# Sky ------------------------------------------------------------------------------------------------

def test_sky_is_its_own_unlit_node_a_coarse_closed_shell_beyond_far(kit):
    snapshot = kit.room_snapshot(256, 64)
    data = export(snapshot)
    nodes = kit.glb_nodes(data)
    sky, terrain = nodes["sky"], nodes["terrain"]
    assert len(sky["POSITION"]) < 600  # a few hundred vertices, whatever the image size
    p = sky["POSITION"].astype(np.float64)
    f = sky["faces"]
    r_terrain = np.hypot(terrain["POSITION"][:, 0], terrain["POSITION"][:, 2])
    assert r_terrain.max() <= kit.WALL * 1.0001
    # Every point of every sky triangle (not just its corners) lies beyond far: behind all terrain.
    mid = (p[f[:, 0]] + p[f[:, 1]]) / 2
    side = np.abs(p[f, 1].max(axis=1) - p[f, 1].min(axis=1)) > 1e-3  # the cylinder, not the caps
    assert np.hypot(mid[side, 0], mid[side, 2]).min() >= kit.METRIC["far"]
    assert "KHR_materials_unlit" in sky["material"].extensions
    assert "KHR_materials_unlit" in kit.glb_document(data).extensionsUsed
    # The shell is closed: every edge is shared by two triangles once the seam copies are welded.
    welded, welded_faces = weld(p.astype(np.float32), f)
    assert len(boundary_edges(welded_faces)) == 0
    # Its texture from the eye: a sky vertex's UV is the panorama position of its direction.
    cyl = side.repeat(3).reshape(-1, 3)
    corners = np.unique(f[cyl])
    col, row, _ = project_points(p[corners], snapshot.projection)
    uv = sky["TEXCOORD_0"][corners]
    np.testing.assert_allclose(np.mod(uv[:, 0] * 256 - 0.5 - col + 128, 256) - 128, 0, atol=2e-2)
    np.testing.assert_allclose(uv[:, 1] * 64 - 0.5, row, atol=2e-2)
    assert kit.glb_nodes(export(snapshot, sky=False)).get("sky") is None


# Round trip and orientation ---------------------------------------------------------------------

def test_vertices_project_back_to_the_pixel_grid_and_depths(kit):
    snapshot = kit.room_snapshot(256, 64)
    proj, r, labels, _ = kit.room_layers(256, 64)
    terrain = kit.glb_nodes(export(snapshot))["terrain"]
    col, row, dist = project_points(terrain["POSITION"], proj)
    u, v = np.round(col), np.round(row)
    assert np.abs(col - u).max() < 1e-3 and np.abs(row - v).max() < 1e-3
    u = u.astype(int) % 256
    v = v.astype(int)
    assert (labels[v, u] != 0).all()  # no sky pixel in the terrain
    np.testing.assert_allclose(dist, r[v, u], rtol=1e-5)
    # ... and each vertex carries the UV of its own pixel.
    uv = terrain["TEXCOORD_0"]
    np.testing.assert_allclose(np.mod(uv[:, 0] * 256 - 0.5, 256), u, atol=1e-3)
    np.testing.assert_allclose(uv[:, 1] * 64 - 0.5, v, atol=2e-3)


def test_front_faces_and_normals_point_at_the_camera(kit):
    terrain = kit.glb_nodes(export(kit.room_snapshot(128, 48), normals=True))["terrain"]
    p, f = terrain["POSITION"].astype(np.float64), terrain["faces"]
    a, b, c = p[f[:, 0]], p[f[:, 1]], p[f[:, 2]]
    face_normal = np.cross(b - a, c - a)  # glTF front faces are counter-clockwise
    centroid = (a + b + c) / 3
    assert np.all(np.einsum("ij,ij->i", face_normal, centroid) < 0)
    n = terrain["NORMAL"]
    np.testing.assert_allclose(np.linalg.norm(n, axis=1), 1.0, atol=1e-5)
    assert np.all(np.einsum("ij,ij->i", n, p) < 0)


def test_camera_at_the_origin_or_ground_at_zero(kit):
    nodes = kit.glb_nodes(export(kit.room_snapshot(128, 48)))
    camera = nodes["camera"]["node"]
    assert camera.camera == 0 and (camera.translation or [0, 0, 0]) == [0.0, 0.0, 0.0]
    floor_y = nodes["terrain"]["POSITION"][:, 1].min()
    assert floor_y == pytest.approx(kit.FLOOR_Y, rel=1e-4)

    lifted = kit.glb_nodes(export(kit.room_snapshot(128, 48), origin="ground"))
    assert lifted["camera"]["node"].translation == pytest.approx([0.0, 1.6, 0.0])
    assert lifted["terrain"]["POSITION"][:, 1].min() == pytest.approx(0.0, abs=1e-4)


def test_texture_is_the_panorama(kit):
    from PIL import Image

    snapshot = kit.room_snapshot(128, 48)
    for texture, tolerance in (("png", 0.5 / 255 + 1e-6), ("jpeg", 0.06)):
        gltf = kit.glb_document(export(snapshot, texture=texture))
        image = gltf.images[0]
        view = gltf.bufferViews[image.bufferView]
        data = gltf.binary_blob()[view.byteOffset:view.byteOffset + view.byteLength]
        assert image.mimeType == f"image/{texture}"
        pixels = np.asarray(Image.open(io.BytesIO(data)).convert("RGB"), dtype=np.float32) / 255
        assert pixels.shape == snapshot.image.shape
        assert np.abs(pixels - snapshot.image).mean() < tolerance
    wide = kit.glb_document(export(snapshot, texture="png", uv16=True))  # 16-bit UVs: first column repeated
    assert (wide.images and wide.accessors[wide.meshes[0].primitives[0].attributes.TEXCOORD_0].componentType == 5123)
    # The sky band of the texture is the sky colour.
    np.testing.assert_allclose(pixels[0, 0], kit.SKY_RGB, atol=0.03)


def test_metadata_records_scale_and_geometry(kit):
    extras = kit.glb_document(export(kit.room_snapshot(128, 48))).extras["worldgen"]
    assert extras["world_scale"] == 1.0 and extras["geometry"]["far"] == kit.METRIC["far"]
    assert extras["projection"]["width"] == 128 and extras["origin"] == "camera"


@pytest.mark.parametrize("options", [{"step": 0}, {"cut_threshold": 0}, {"texture": "gif"}, {"origin": "moon"},
                                     {"bogus": 1}, {"far": -3}, {"collider": True, "collider_step": 0},
                                     {"jpeg_quality": 500}])
def test_bad_options_are_user_errors(room, options):
    with pytest.raises(UserInputError):
        export(room, **options)
