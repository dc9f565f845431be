"""The GLB of a procedural world: the terrain itself as ground to walk on, at least 200 m from the
eye in every direction, fine near the eye and coarser away from it, crack-free between levels,
under the panorama's own surfaces, and clean for the Khronos validator."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest

from worldgen.backend import GenerateRequest
from worldgen.export_files import export_bytes
from worldgen.registry import get_registry

REPO = Path(__file__).resolve().parents[3]


def _kit():
    spec = importlib.util.spec_from_file_location("exporter_kit", REPO / "tests" / "exporters" / "conftest.py")
    kit = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(kit)
    return kit


@pytest.fixture(scope="module")
def fjord():
    backend = get_registry().backend("procedural").load({})
    snapshot = backend.generate(GenerateRequest(prompt="a misty fjord at dawn", width=512, height=128, seed=0))
    return snapshot, export_bytes(snapshot, "glb")


def ground_points(kit, data: bytes) -> np.ndarray:
    gltf = kit.glb_document(data)
    mesh = next(m for m in gltf.meshes if m.name == "ground")
    return np.concatenate([kit.accessor_array(gltf, p.attributes.POSITION) for p in mesh.primitives])


def test_the_ground_reaches_200_m_in_every_direction(fjord):
    kit = _kit()
    snapshot, data = fjord
    names = [n.name for n in kit.glb_document(data).nodes]
    assert "ground" in names and "camera" in names
    points = ground_points(kit, data)
    azimuth = np.degrees(np.arctan2(points[:, 0], -points[:, 2])) % 360
    reach = np.hypot(points[:, 0], points[:, 2])
    for sector in range(36):  # every 10 degrees, some ground lies 200 m out or farther
        inside = (azimuth >= sector * 10) & (azimuth < sector * 10 + 10)
        assert reach[inside].max() >= 200.0, sector
    # It is the terrain: its height under the eye is the world's ground, 1.6 m below the camera.
    eye = kit.glb_document(data).nodes[-1].translation
    near = reach < 1.5
    assert near.any() and (points[near, 1] <= eye[1] - 1.6).all()  # a little below ...
    assert np.allclose(points[near, 1], eye[1] - 1.6, atol=0.4)  # ... the ground the eye stands on


def test_the_ground_follows_the_terrain_and_stays_under_it(fjord):
    snapshot, data = fjord
    world = snapshot.terrain
    mesh = world.terrain_mesh()
    truth = world.field.surface(mesh.vertices[:, 0], mesh.vertices[:, 1])
    error = np.abs(mesh.vertices[:, 2] - truth)  # vertices on the surface (but the stitched border ones) ...
    assert (error < 1e-3).mean() > 0.95
    from worldgen.exporters.terrain_mesh import ground_positions

    lifted = ground_positions(world, mesh, 1.6)[:, 1] + (world.eye[2] - 1.6)
    assert (lifted < mesh.vertices[:, 2]).all()  # ... and the exported ground a little below it
    used = np.unique(mesh.triangles())  # each level leaves the middle to the finer one
    cells = mesh.cell_sizes()[used]
    dist = np.hypot(mesh.vertices[used, 0] - world.eye[0], mesh.vertices[used, 1] - world.eye[1])
    assert cells[dist < 40].max() == 1.0 and cells[dist > 500].min() >= 8.0  # coarser with distance


def test_levels_meet_without_cracks(fjord):
    """Every edge on a level's outer border lies on the next level's surface (its odd vertices
    take the coarse edge's height), so no gap opens where the levels meet."""
    snapshot, _ = fjord
    mesh = snapshot.terrain.terrain_mesh()
    n = int(round(np.sqrt(len(mesh.vertices) // len(mesh.pieces))))
    for level in range(len(mesh.pieces) - 1):
        z = mesh.vertices[level * n * n:(level + 1) * n * n, 2].reshape(n, n)
        for edge in (z[0], z[-1], z[:, 0], z[:, -1]):
            np.testing.assert_allclose(edge[1:-1:2], 0.5 * (edge[:-2:2] + edge[2::2]), atol=1e-4)


def test_the_glb_is_clean_for_the_khronos_validator(fjord):
    kit = _kit()
    found, reason = kit.find_gltf_validator()
    if found is None:
        pytest.skip(reason)
    node, package = found
    _, data = fjord
    proc = subprocess.run([node, "-e", kit._VALIDATE_JS], input=data, capture_output=True, timeout=120,
                          env=dict(os.environ, WORLDGEN_VALIDATOR_PACKAGE=str(package)))
    report = json.loads(proc.stdout)
    assert report["numErrors"] == 0 and report["numWarnings"] == 0, report
