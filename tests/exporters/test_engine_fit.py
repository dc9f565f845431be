"""Issue 22: the GLB in engines and common viewers: the sky inside a 1000 m far plane, a collider
that is hidden and holds a player at the spawn point."""

from __future__ import annotations

import numpy as np

from worldgen.registry import get_registry


def export(snapshot, **options) -> bytes:
    return get_registry().exporter("glb").export(snapshot, {"origin": "camera", **options})


def test_every_vertex_lies_within_900_m_when_far_is_1000(kit):
    snapshot = kit.room_snapshot(256, 64)
    snapshot.geometry["far"] = 1000.0  # the procedural worlds' far: the sky sat at 1001.3 m
    nodes = kit.glb_nodes(export(snapshot))
    sky = nodes["sky"]["POSITION"]
    reach = max(float(np.linalg.norm(n["POSITION"], axis=1).max()) for n in nodes.values() if n.get("POSITION") is not None)
    assert reach <= 900.0
    assert np.linalg.norm(sky, axis=1).max() > 600.0  # still far away: not collapsed onto the terrain
    # Every sky vertex stays beyond every terrain vertex, so the sky never covers the terrain.
    terrain = nodes["terrain"]["POSITION"]
    ring = np.hypot(sky[:, 0], sky[:, 2])
    ring = ring[ring > 1.0]  # the cylinder (the caps' centres sit on the axis)
    assert ring.min() > np.hypot(terrain[:, 0], terrain[:, 2]).max()


def test_a_near_far_plane_is_left_as_it_is(kit):
    nodes = kit.glb_nodes(export(kit.room_snapshot(128, 32)))  # far = 100 m
    sky = nodes["sky"]["POSITION"]
    ring = np.hypot(sky[:, 0], sky[:, 2])
    assert 100.0 < ring[ring > 1.0].min() < 102.0


def _hit_below(positions: np.ndarray, faces: np.ndarray, x: float, z: float) -> bool:
    """Whether a vertical line at (x, z) crosses a triangle (2-D point-in-triangle on x, z)."""
    a, b, c = (positions[faces[:, k]][:, [0, 2]] for k in range(3))
    p = np.array([x, z])

    def side(u, v):
        return (v[:, 0] - u[:, 0]) * (p[1] - u[:, 1]) - (v[:, 1] - u[:, 1]) * (p[0] - u[:, 0])

    s1, s2, s3 = side(a, b), side(b, c), side(c, a)
    return bool((((s1 >= 0) & (s2 >= 0) & (s3 >= 0)) | ((s1 <= 0) & (s2 <= 0) & (s3 <= 0))).any())


def test_collider_holds_a_player_at_the_spawn_point_and_is_hidden(kit):
    nodes = kit.glb_nodes(export(kit.room_snapshot(128, 32), collider=True, collider_step=4))
    collider = nodes["collider-colonly"]
    for x, z in ((0.0, 0.0), (0.5, -0.3), (-1.2, 1.0), (1.9, 0.2)):
        assert _hit_below(collider["POSITION"], collider["faces"], x, z), (x, z)
    under = collider["POSITION"][np.hypot(collider["POSITION"][:, 0], collider["POSITION"][:, 2]) < 1e-6]
    assert np.allclose(under[:, 1], -1.6)  # on the ground, eye height below the camera
    material = collider["material"]
    assert material is not None and material.alphaMode == "BLEND"
    assert material.pbrMetallicRoughness.baseColorFactor[3] == 0.0  # drawn by no viewer
    assert material.extras == {"collider": True}
