"""The procedural world's geometry: the depth layer is the true distance to what each pixel shows
(checked against an independent ray-cast; stored, as worldgen.geometry has it, as the distance
from the panorama's axis), the 360-degree seam is continuous, the same seed gives
the same world, and the same world renders consistently from any eye and projection."""

from __future__ import annotations

import numpy as np
import pytest

from worldgen.backend import GenerateRequest
from worldgen.backends.procedural import FAR_M, ProceduralBackend
from worldgen.backends.procedural.render import GROUND, PLANT, SKY, WATER
from worldgen.backends.procedural.world import ProceduralWorld

W, H = 384, 96


def generate(prompt, seed=0, width=W, height=H):
    return ProceduralBackend().generate(GenerateRequest(prompt, width=width, height=height, seed=seed))


def stored_distance(snapshot):
    """The depth layer in metres: horizontal distance from the panorama's axis (worldgen.geometry)."""
    g = snapshot.geometry
    v = snapshot.modalities["depth"][..., 0].astype(np.float64)
    return 1.0 / (v * g["disparity_scale"] + g["disparity_shift"])


def ray_cast(surface, eye, dirs, limit=3800.0):
    """Distance to the first point where each ray (unit dirs (N, 3)) is at or below the surface:
    small fixed-ratio steps, then bisection; inf where nothing is met within ``limit`` (horizontal)."""
    eye = np.asarray(eye, dtype=np.float64)
    horizontal = np.hypot(dirs[:, 0], dirs[:, 1])
    t = np.zeros(len(dirs))
    lo = np.zeros(len(dirs))
    hit = np.zeros(len(dirs), dtype=bool)
    live = np.ones(len(dirs), dtype=bool)
    while live.any():
        step = np.maximum(0.02, 0.002 * t[live])
        nxt = t[live] + step
        p = eye + dirs[live] * nxt[:, None]
        below = p[:, 2] <= surface(p[:, 0], p[:, 1])
        idx = np.nonzero(live)[0]
        lo[idx] = t[idx]
        t[idx] = nxt
        hit[idx[below]] = True
        live[idx[below | (nxt * horizontal[idx] > limit)]] = False
    a, b = lo.copy(), t.copy()
    for _ in range(40):
        m = (a + b) / 2
        p = eye + dirs * m[:, None]
        below = p[:, 2] <= surface(p[:, 0], p[:, 1])
        a, b = np.where(below, a, m), np.where(below, m, b)
    return np.where(hit, (a + b) / 2, np.inf)


def cylinder_dirs(rows, cols, width, height):
    az = 2 * np.pi * (cols + 0.5) / width
    tan = (height / 2 - 0.5 - rows) / (width / (2 * np.pi))
    d = np.stack([np.sin(az), np.cos(az), tan], axis=1)
    return d / np.linalg.norm(d, axis=1, keepdims=True)


@pytest.mark.parametrize("prompt", ["a misty fjord at dawn", "a desert canyon at noon", "rolling green hills"])
def test_depth_layer_is_the_ray_cast_distance(prompt):
    snapshot = generate(prompt)
    world = snapshot.terrain
    kind = world.render_cylinder(W, H).kind
    rng = np.random.default_rng(0)
    rows, cols = np.nonzero((kind == GROUND) | (kind == WATER))
    pick = rng.choice(len(rows), 300, replace=False)
    rows, cols = rows[pick], cols[pick]
    dirs = cylinder_dirs(rows, cols, W, H)
    cast = ray_cast(world.field.surface, world.eye, dirs) * np.hypot(dirs[:, 0], dirs[:, 1])  # horizontal
    stored = stored_distance(snapshot)[rows, cols]
    error = np.abs(stored - cast) / cast
    assert np.isfinite(cast).all()
    assert np.median(error) < 0.002, np.median(error)
    assert (error < 0.01).mean() >= 0.97, np.sort(error)[-10:]
    # The sky is where the independent ray-cast meets nothing, and it is stored at the far plane.
    srows, scols = np.nonzero(kind == SKY)
    pick = rng.choice(len(srows), 100, replace=False)
    sky_cast = ray_cast(world.field.surface, world.eye, cylinder_dirs(srows[pick], scols[pick], W, H))
    assert (~np.isfinite(sky_cast)).mean() >= 0.97
    assert np.allclose(stored_distance(snapshot)[srows, scols], FAR_M, rtol=1e-4)


def test_plants_stand_in_front_of_the_ground_they_hide():
    world = ProceduralWorld.from_prompt("a pine forest on rolling hills", 3)
    frame = world.render_cylinder(W, H)
    rows, cols = np.nonzero(frame.kind == PLANT)
    assert len(rows) > 50
    ground = ray_cast(world.field.surface, world.eye, cylinder_dirs(rows, cols, W, H))
    assert (frame.distance[rows, cols] < np.where(np.isfinite(ground), ground, np.inf) + 1e-6).all()


@pytest.mark.parametrize("prompt", ["rolling green hills", "a volcanic island in a stormy sea"])
def test_the_360_degree_seam_is_continuous(prompt):
    snapshot = generate(prompt, width=512, height=128)
    for layer in (snapshot.image, np.log(stored_distance(snapshot))[..., None]):
        seam = np.abs(layer[:, 0] - layer[:, -1]).mean()
        neighbours = np.abs(np.diff(layer, axis=1)).mean(axis=(0, 2))
        assert seam <= np.percentile(neighbours, 95), (seam, np.percentile(neighbours, 95))


def test_same_seed_same_world_other_seed_other_terrain():
    a, b, c = generate("a snowy valley", seed=4), generate("a snowy valley", seed=4), generate("a snowy valley", seed=5)
    np.testing.assert_array_equal(a.image, b.image)
    np.testing.assert_array_equal(a.modalities["depth"], b.modalities["depth"])
    assert np.abs(stored_distance(a) - stored_distance(c)).mean() > 1.0


def test_any_eye_any_projection_sees_the_same_world():
    world = ProceduralWorld.from_prompt("a barren lake among mountains", 2)  # no plants: ground only
    x, y = world.eye[0] + 40.0, world.eye[1] - 25.0
    eye = (x, y, float(world.field.surface(np.array([x]), np.array([y]))[0]) + 5.0)  # 5 m above ground or water
    sphere = world.render_equirect(256, 128, eye)
    assert (sphere.kind[:5] == SKY).all() and (sphere.kind[-5:] != SKY).all()  # sky above, ground below
    below = sphere.distance[-1]
    assert np.allclose(below, 5.0, rtol=0.05)  # straight down: the surface 5 m under the eye
    # A pinhole view from the same eye agrees with the sphere where both look (nearest pixels).
    view = world.render_perspective(eye, yaw_deg=90.0, pitch_deg=-10.0, fov_deg=60.0, width=96, height=64)
    el = np.arctan2(-np.tan(np.radians(10.0)), 1.0)
    row = int(round((np.pi / 2 - el) / np.pi * 128 - 0.5))
    col = int(round(90.0 / 360.0 * 256 - 0.5))
    assert view.distance[32, 48] == pytest.approx(sphere.distance[row, col], rel=0.1)
    cast = ray_cast(world.field.surface, eye, np.array([[np.cos(el), 0.0, np.sin(el)]]))[0]
    assert view.kind[32, 48] in (GROUND, WATER) and view.distance[32, 48] == pytest.approx(cast, rel=0.03)


def test_plants_belong_to_the_world_not_to_the_view():
    world = ProceduralWorld.from_prompt("a pine forest on rolling hills", 3)
    ex, ey, ez = world.eye
    a = world.plants()["pine"]
    b = world.plants((ex + 60.0, ey - 40.0, ez))["pine"]

    def middle(plants):  # the trees within 100 m of the point halfway between the eyes
        return {(round(float(x), 3), round(float(y), 3)) for x, y in zip(plants.x, plants.y)
                if np.hypot(x - ex - 30.0, y - ey + 20.0) < 100.0}

    assert len(middle(a)) > 20 and middle(a) == middle(b)  # where both eyes reach, the same trees stand
