"""The GLB's defaults: simplified, unlit, closed, ground at y = 0, small; seam and cuts still hold."""

from __future__ import annotations

import numpy as np
import pytest

from worldgen.geometry.rays import project_points
from worldgen.registry import get_registry


def export(snapshot, **options) -> bytes:
    return get_registry().exporter("glb").export(snapshot, options)


def boundary_edges(faces: np.ndarray) -> np.ndarray:
    edges = np.sort(np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]]), axis=1)
    unique, counts = np.unique(edges, axis=0, return_counts=True)
    return unique[counts == 1]


def test_default_passes_the_validator_without_infos(kit, gltf_validator):
    issues = gltf_validator(export(kit.room_snapshot(256, 64)))
    assert (issues["numErrors"], issues["numWarnings"], issues["numInfos"]) == (0, 0, 0), issues["messages"]


def test_default_material_is_unlit_with_a_plain_textured_fallback(kit):
    gltf = kit.glb_document(export(kit.room_snapshot(128, 48)))
    assert gltf.extensionsUsed == ["KHR_materials_unlit"] and not gltf.extensionsRequired
    for material in gltf.materials:
        assert "KHR_materials_unlit" in material.extensions
        pbr = material.pbrMetallicRoughness
        assert pbr.baseColorTexture.index == 0 and pbr.metallicFactor == 0.0 and pbr.roughnessFactor == 1.0
    assert all(m.primitives[0].attributes.NORMAL is None for m in gltf.meshes)  # unlit: no normals to store


def test_default_origin_is_the_ground_with_the_eye_at_eye_height(kit):
    nodes = kit.glb_nodes(export(kit.room_snapshot(128, 48)))
    assert nodes["camera"]["node"].translation == pytest.approx([0.0, 1.6, 0.0])
    assert nodes["terrain"]["POSITION"][:, 1].min() == pytest.approx(0.0, abs=1e-4)
    assert kit.glb_document(export(kit.room_snapshot(128, 48))).extras["worldgen"]["origin"] == "ground"
    at_eye = kit.glb_nodes(export(kit.room_snapshot(128, 48), origin="camera"))
    assert (at_eye["camera"]["node"].translation or [0, 0, 0]) == [0.0, 0.0, 0.0]


def test_flat_regions_become_big_cells_and_the_sky_a_few_hundred_vertices(kit):
    snapshot = kit.room_snapshot(512, 128, pillar=False)
    simple = kit.glb_nodes(export(snapshot))
    full = kit.glb_nodes(export(snapshot, simplify=False))
    assert len(simple["terrain"]["POSITION"]) * 5 < len(full["terrain"]["POSITION"])
    assert len(simple["sky"]["POSITION"]) < 600
    gltf = kit.glb_document(export(snapshot))
    sky = gltf.meshes[[n.name for n in gltf.nodes].index("sky")].primitives[0]
    assert gltf.accessors[sky.indices].componentType == 5123  # 16-bit indices where the vertices fit


def test_simplified_terrain_has_no_t_junctions_and_a_closed_seam(kit):
    w, h = 256, 64
    snapshot = kit.room_snapshot(w, h, pillar=False, sky=False)
    nodes = kit.glb_nodes(export(snapshot, origin="camera"))
    pos, faces = nodes["terrain"]["POSITION"], nodes["terrain"]["faces"]
    assert len(pos) < w * h / 4
    unique, inverse = np.unique(pos, axis=0, return_inverse=True)  # weld the seam's copies
    edges = boundary_edges(inverse.reshape(-1)[faces])
    _, rows, _ = project_points(unique[edges.reshape(-1)], snapshot.projection)
    rows = np.round(rows).reshape(-1, 2)
    # Open only along the top and bottom rows: no crack at the seam, none between cells.
    assert np.all(((rows[:, 0] == 0) & (rows[:, 1] == 0)) | ((rows[:, 0] == h - 1) & (rows[:, 1] == h - 1)))


def test_simplified_terrain_still_never_spans_the_pillar_edge(kit):
    proj, r, labels, _ = kit.room_layers(256, 64)
    nodes = kit.glb_nodes(export(kit.room_snapshot(256, 64), origin="camera"))
    terrain = nodes["terrain"]
    col, row, dist = project_points(terrain["POSITION"], proj)
    v, u = np.round(row).astype(int), np.round(col).astype(int) % 256
    np.testing.assert_allclose(dist, r[v, u], rtol=1e-5)  # every vertex is still its pixel's point
    label = labels[v, u][terrain["faces"]]
    assert not np.any((label == 2).any(axis=1) & (label == 1).any(axis=1))


def test_closed_world_ground_disc_and_sky_caps(kit):
    nodes = kit.glb_nodes(export(kit.room_snapshot(128, 48), origin="camera"))
    ground = nodes["ground"]["POSITION"]
    assert ground[:, 1].min() == pytest.approx(kit.FLOOR_Y, abs=1e-4)
    assert np.hypot(ground[:, 0], ground[:, 2]).min() < 1e-6  # reaches right under the camera
    sky = nodes["sky"]["POSITION"]
    assert np.hypot(sky[:, 0], sky[:, 2]).min() < 1e-6 and sky[:, 1].max() > 0 and sky[:, 1].min() < 0  # both caps
    assert "ground" not in kit.glb_nodes(export(kit.room_snapshot(128, 48), closed=False))


def test_quantized_positions_dequantize_to_the_float_ones_and_open3d_cannot_read_them(kit, tmp_path):
    """KHR_mesh_quantization stays opt-in: open3d's importer (assimp) misreads int16 positions
    (as floats: NaN and garbage).
    If this starts failing because open3d reads them, quantize can become the default."""
    snapshot = kit.room_snapshot(256, 64)
    floats = kit.glb_nodes(get_registry().exporter("glb").export(snapshot, {}))
    data = get_registry().exporter("glb").export(snapshot, {"quantize": True})
    gltf = kit.glb_document(data)
    assert gltf.extensionsRequired == ["KHR_mesh_quantization"]
    for name, entry in kit.glb_nodes(data).items():
        if entry.get("POSITION") is None:
            continue
        node = entry["node"]
        assert entry["POSITION"].dtype == np.int16
        back = entry["POSITION"] * np.asarray(node.scale) + np.asarray(node.translation)
        extent = np.ptp(floats[name]["POSITION"], axis=0)
        assert (np.abs(back - floats[name]["POSITION"]).max(axis=0) <= extent / 65535 + 1e-5).all(), name
    o3d = pytest.importorskip("open3d")
    path = tmp_path / "q.glb"
    path.write_bytes(data)
    o3d.utility.set_verbosity_level(o3d.utility.VerbosityLevel.Error)
    seen = np.asarray(o3d.io.read_triangle_mesh(str(path)).vertices)
    truth = np.concatenate([e["POSITION"] for e in floats.values() if e.get("POSITION") is not None])
    assert not (np.isfinite(seen).all() and np.allclose(seen.min(axis=0), truth.min(axis=0), atol=0.1))
