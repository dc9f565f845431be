"""`worldgen place`: the object's depth, the inpainting around it, and where the exported mesh puts it."""

import json

import numpy as np
import pytest
import trimesh
from click.testing import CliRunner

from worldgen.backend import GenerateRequest
from worldgen.cli.main import cli
from worldgen.errors import UserInputError
from worldgen.export_files import export_bytes
from worldgen.geometry.rays import project_points
from worldgen.geometry.world import build_world
from worldgen.scene.snapshot import Snapshot
from worldgen.geometry.placement import Placement, inner_border, pinned_geometry, place_object, target_depth
from worldgen.geometry.projection import CylindricalProjection
from worldgen.scene.store import Scene

WIDTH, HEIGHT = 256, 64
CABIN = dict(prompt="a wooden cabin", azimuth=40.0, distance=12.0, width=8.0)


def run(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


@pytest.fixture()
def hills(tmp_path):
    """A procedural (metric) scene with its GLB, as `worldgen pano` writes them."""
    result = run("pano", "rolling green hills", "--backend", "procedural", "--size", f"{WIDTH}x{HEIGHT}", "-q",
                 "-o", tmp_path / "hills.glb")
    assert result.exit_code == 0, result.output
    return tmp_path / "hills"


def _terrain_distances(glb_path, snapshot, pixels):
    """Horizontal distances of the GLB's terrain vertices that sit on the given (H, W) bool pixels."""
    from pygltflib import GLTF2

    mesh = trimesh.load(glb_path, force="scene").geometry["terrain"]
    # Vertices are in the file's frame (ground at y = 0 by default): seen from its camera node.
    eye = next(n.translation for n in GLTF2().load(str(glb_path)).nodes if n.camera is not None) or [0, 0, 0]
    column, row, r = project_points(np.asarray(mesh.vertices) - np.asarray(eye), snapshot.projection)
    col = np.round(column).astype(int) % snapshot.projection.width
    row = np.round(row).astype(int)
    ok = (row >= 0) & (row < snapshot.projection.height)
    on = ok.copy()
    on[ok] = pixels[row[ok], col[ok]]
    return r[on], col[on]


def test_place_changes_depth_only_in_the_region_and_the_mesh_puts_it_at_the_distance(hills, tiny_models):
    before = Scene.open(hills).load()
    result = run("place", hills, CABIN["prompt"], "--azimuth", 40, "--distance", 12, "--width", 8,
                 "--model", tiny_models["depth"], "--steps", 2, "-q")
    assert result.exit_code == 0, result.output
    scene = Scene.open(hills)
    after = scene.load()
    record = scene.record()
    assert record["operation"] == "place" and record["params"]["placement"]["rgb"] == "jointnet"

    target = target_depth(before, Placement(**CABIN))
    region = target.region
    assert region.sum() == record["params"]["placement"]["pixels"] > 100
    depth_before, depth_after = before.modalities["depth"][..., 0], after.modalities["depth"][..., 0]
    assert np.array_equal(depth_after[~region], depth_before[~region])         # outside: bit for bit
    assert (depth_after[region] != depth_before[region]).mean() > 0.9         # inside: the object's depth
    assert np.abs(after.image[region] - before.image[region]).mean() > 0.02   # RGB painted in the region

    core = region & ~target.border                                             # the border band is refined
    distances, columns = _terrain_distances(hills.with_suffix(".glb"), after, core)
    assert len(distances) >= 50
    assert np.all(np.abs(distances / 12.0 - 1.0) <= 0.10)                     # within 10 % everywhere
    # A flat billboard: nearest at its centre column (40 deg), farther towards its sides.
    centre = int(np.argmin(np.abs((columns + 0.5) * 360 / WIDTH - 40)))
    assert abs(distances[centre] - 12.0) < 0.2


def test_nearer_content_stays_in_front_of_the_object(hills):
    before = Scene.open(hills).load()
    near = Placement(prompt="a tower", azimuth=120.0, distance=150.0, width=60.0, height=80.0)
    target = target_depth(before, near)
    world = build_world(before)
    shape = np.isfinite(target.distance)
    hidden = shape & ~target.region
    assert hidden.any() and target.region.any()                  # hills at 90 m hide part of a 150 m tower
    assert np.all(world.distance[hidden] <= target.distance[hidden])
    assert np.all(world.distance[target.region] > target.distance[target.region])
    unoccluded = target_depth(before, Placement(prompt="a tower", azimuth=120.0, distance=150.0, width=60.0,
                                                height=80.0, occlude=False))
    assert np.array_equal(unoccluded.region, shape)


def test_placeholder_painter_without_a_model(hills):
    before = Scene.open(hills).load()
    result = run("place", hills, "a stone tower", "--azimuth", 200, "--distance", 30, "--width", 6, "--height", 18,
                 "--shape", "round", "--backend", "procedural", "-q")
    assert result.exit_code == 0, result.output
    after = Scene.open(hills).load()
    record = Scene.open(hills).record()["params"]["placement"]
    assert record["rgb"] == "placeholder" and record["shape"] == "round"
    changed = np.any(after.modalities["depth"] != before.modalities["depth"], axis=-1)
    assert changed.sum() == record["pixels"]
    assert np.array_equal(after.image[~changed], before.image[~changed])


def _relative_scene(width=WIDTH, height=HEIGHT, ground_raw=0.5):
    """A JointNet-style scene (relative disparity, scale from the ground fit): a flat ground whose
    raw depth puts it ``ground_raw`` below the camera, sky above."""
    projection = CylindricalProjection(width, height, 360.0)
    rows = np.arange(height)
    slope = (height / 2 - (rows + 0.5)) / projection.focal_px
    raw = np.where(slope < 0, ground_raw / np.maximum(-slope, 1e-6), np.inf)
    disparity = np.where(np.isfinite(raw), 1.0 / raw - 0.01, 0.0).clip(0, 1)
    depth = np.repeat(disparity[:, None], width, axis=1)[..., None].astype(np.float32)
    image = np.full((height, width, 3), 0.5, np.float32)
    return Snapshot(image=image, modalities={"depth": depth}, projection=projection, geometry={})


def test_relative_depth_scenes_get_their_scale_pinned_and_the_object_lands_at_the_distance():
    snapshot = _relative_scene()
    geometry, scale, ground = pinned_geometry(snapshot)
    assert scale == pytest.approx(1.6 / 0.5, rel=0.02) and ground == pytest.approx(1.6)
    pinned = Snapshot(image=snapshot.image, modalities=snapshot.modalities, projection=snapshot.projection,
                      geometry=geometry)
    # Pinning changes no point of the export...
    assert np.allclose(build_world(pinned).points, build_world(snapshot).points, rtol=1e-5, atol=1e-4)
    # ...and an object placed afterwards sits at its distance in the exported mesh.
    placed, info = place_object(snapshot, Placement(prompt="a red barn", azimuth=90.0, distance=20.0, width=10.0,
                                                    shape="curved"))
    assert info["rgb"] == "placeholder" and placed.geometry["fit_ground"] is False
    world = build_world(placed)
    region = target_depth(snapshot, Placement(prompt="a red barn", azimuth=90.0, distance=20.0, width=10.0,
                                              shape="curved")).region
    assert np.allclose(world.distance[region], 20.0, rtol=1e-3)


def test_the_border_band_lies_inside_the_region_and_wraps():
    region = np.zeros((12, 40), bool)
    region[2:10, 0:6] = True
    region[2:10, 36:40] = True                    # one object across the 360-degree seam
    band = inner_border(region, 2, wrap=True)
    assert not (band & ~region).any()
    # Two pixels in from each side; the seam (columns 39 | 0) is inside the object, not an edge.
    assert set(np.flatnonzero(band[5])) == {36, 37, 4, 5}
    assert band[2:4, 36:40].all() and band[8:10, 0:6].all()
    assert not inner_border(region, 2, wrap=False)[5, 0]   # a flat image's edge is not the object's either


@pytest.mark.parametrize("kw, fragment", [
    (dict(distance=5000.0, width=3000.0), "sky"),  # beyond the procedural world's far plane (3900 m)
    (dict(lift=500.0), "outside the panorama's view"),
    (dict(distance=0.2), "nearer than"),
])
def test_impossible_placements_are_refused(hills, kw, fragment):
    snapshot = Scene.open(hills).load()
    with pytest.raises(UserInputError, match=fragment):
        target_depth(snapshot, Placement(**{**CABIN, **kw}))


@pytest.mark.parametrize("args, fragment", [
    (["--distance", "12"], "--azimuth"),
    (["--azimuth", "40", "--distance", "12"], "--width"),
    (["--azimuth", "40", "--distance", "-3", "--width", "8"], "distance"),
])
def test_place_cli_refuses_incomplete_positions_in_one_line(hills, args, fragment):
    result = run("place", hills, "a cabin", *args, "--backend", "procedural")
    assert result.exit_code == 1 and "Traceback" not in result.output
    errors = [line for line in result.output.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1 and fragment in errors[0]


def test_a_scene_with_normals_gets_them_updated_inside_the_object(tmp_path):
    from worldgen.backends.procedural import ProceduralBackend

    snapshot = ProceduralBackend().generate(GenerateRequest(prompt="hills", width=WIDTH, height=HEIGHT,
                                                            modality="normal"))
    placed, info = place_object(snapshot, Placement(**CABIN))
    region = target_depth(snapshot, Placement(**CABIN)).region
    assert "normal" in info["updated_layers"]
    assert np.array_equal(placed.modalities["normal"][~region], snapshot.modalities["normal"][~region])
    # The billboard faces the camera: its normals point back along the view (camera-frame z).
    assert np.median(placed.modalities["normal"][region][:, 2]) > 0.9
    glb = export_bytes(placed, "glb")
    assert glb[:4] == b"glTF"
    json.loads(glb[20:20 + int.from_bytes(glb[12:16], "little")])
