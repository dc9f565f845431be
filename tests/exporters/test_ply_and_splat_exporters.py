"""Point-cloud PLY (read back with open3d) and Gaussian-splat PLY (read back with a plain parser)."""

from __future__ import annotations

import numpy as np
import pytest

from worldgen.errors import UserInputError
from worldgen.geometry.rays import row_slopes
from worldgen.geometry.world import build_world
from worldgen.registry import get_registry

SPLAT_LAYOUT = ["x", "y", "z", "nx", "ny", "nz", "f_dc_0", "f_dc_1", "f_dc_2", "opacity",
                "scale_0", "scale_1", "scale_2", "rot_0", "rot_1", "rot_2", "rot_3"]
SH_C0 = 0.28209479177387814


def export(fmt, snapshot, **options) -> bytes:
    return get_registry().exporter(fmt).export(snapshot, options)


def parse_ply(data: bytes):
    """A plain binary-little-endian PLY parser: (property names, structured vertex array)."""
    head, _, body = data.partition(b"end_header\n")
    lines = head.decode("ascii").splitlines()
    assert lines[0] == "ply" and lines[1] == "format binary_little_endian 1.0"
    count = next(int(line.split()[2]) for line in lines if line.startswith("element vertex"))
    types = {"float": "<f4", "uchar": "u1"}
    props = [(line.split()[2], types[line.split()[1]]) for line in lines if line.startswith("property")]
    records = np.frombuffer(body, dtype=np.dtype(props), count=count)
    assert len(body) == count * records.dtype.itemsize  # nothing missing, nothing extra
    return [name for name, _ in props], records


def read_with_open3d(tmp_path, data: bytes):
    import open3d as o3d

    path = tmp_path / "cloud.ply"
    path.write_bytes(data)
    return o3d.io.read_point_cloud(str(path))


# Point cloud ----------------------------------------------------------------------------------------

def test_point_cloud_reloads_in_open3d_with_colours_and_normals(kit, tmp_path):
    snapshot = kit.room_snapshot(128, 48)
    cloud = read_with_open3d(tmp_path, export("ply", snapshot))
    assert len(cloud.points) == 128 * 48  # one point per pixel, sky included
    assert cloud.has_colors() and cloud.has_normals()
    world = build_world(snapshot)
    np.testing.assert_allclose(np.asarray(cloud.points), world.points.reshape(-1, 3), atol=1e-5)
    colours = np.asarray(cloud.colors)
    np.testing.assert_allclose(colours, snapshot.image.reshape(-1, 3), atol=0.5 / 255 + 1e-6)
    normals = np.asarray(cloud.normals)
    np.testing.assert_allclose(np.linalg.norm(normals, axis=1), 1.0, atol=1e-5)
    assert np.all(np.einsum("ij,ij->i", normals, np.asarray(cloud.points)) < 0)  # facing the eye


def test_point_cloud_without_sky_and_decimated(kit, tmp_path):
    _, _, labels, _ = kit.room_layers(128, 48)
    cloud = read_with_open3d(tmp_path, export("ply", kit.room_snapshot(128, 48), sky=False))
    assert len(cloud.points) == int((labels != 0).sum())
    radial = np.hypot(np.asarray(cloud.points)[:, 0], np.asarray(cloud.points)[:, 2])
    assert radial.max() <= kit.WALL * 1.0001
    names, records = parse_ply(export("ply", kit.room_snapshot(128, 48), step=2))
    assert len(records) == 64 * 24
    assert names == ["x", "y", "z", "nx", "ny", "nz", "red", "green", "blue"]


def test_voxel_downsampling_leaves_one_point_per_voxel(kit, tmp_path):
    voxel = 0.5
    full = export("ply", kit.room_snapshot(256, 64), sky=False)
    down = export("ply", kit.room_snapshot(256, 64), sky=False, voxel_size=voxel)
    cloud = read_with_open3d(tmp_path, down)
    _, records = parse_ply(full)
    assert 0 < len(cloud.points) < len(records) / 4
    # open3d's grid starts half a voxel below the cloud's minimum; an average of the points in a
    # voxel stays inside it, so no two output points share a voxel.
    origin = np.array([records[k].min() for k in "xyz"]) - voxel / 2
    cells = np.floor((np.asarray(cloud.points) - origin) / voxel).astype(np.int64)
    assert len(np.unique(cells, axis=0)) == len(cells)
    assert cloud.has_colors() and cloud.has_normals()


def test_point_cloud_origin_ground_lifts_the_floor_to_zero(kit):
    _, records = parse_ply(export("ply", kit.room_snapshot(128, 48), sky=False, origin="ground"))
    assert records["y"].min() == pytest.approx(0.0, abs=1e-4)


def test_point_cloud_bad_options(kit):
    with pytest.raises(UserInputError):
        export("ply", kit.room_snapshot(32, 16), voxel_size=-1)
    with pytest.raises(UserInputError):
        export("ply", kit.room_snapshot(32, 16), colour="red")


# Gaussian splats -------------------------------------------------------------------------------------

def test_splat_ply_has_the_3dgs_layout_and_one_splat_per_pixel(kit):
    snapshot = kit.room_snapshot(128, 48)
    names, records = parse_ply(export("splat", snapshot))
    assert names == SPLAT_LAYOUT
    assert len(records) == 128 * 48
    rgb = 0.5 + SH_C0 * np.stack([records[f"f_dc_{i}"] for i in range(3)], axis=1)
    np.testing.assert_allclose(rgb, snapshot.image.reshape(-1, 3), atol=1e-5)
    opacity = 1 / (1 + np.exp(-records["opacity"]))
    np.testing.assert_allclose(opacity, 0.98, atol=1e-5)
    quat = np.stack([records[f"rot_{i}"] for i in range(4)], axis=1)
    np.testing.assert_allclose(np.linalg.norm(quat, axis=1), 1.0, atol=1e-5)


def test_splats_are_sized_by_distance_and_pixel_footprint(kit):
    from scipy.spatial.transform import Rotation

    snapshot = kit.room_snapshot(128, 48)
    proj, r, labels, _ = kit.room_layers(128, 48)
    _, records = parse_ply(export("splat", snapshot))
    scales = np.exp(np.stack([records[f"scale_{i}"] for i in range(3)], axis=1))
    footprint = (np.where(labels == 0, kit.METRIC["far"], r) / proj.focal_px).reshape(-1)
    # Pixels whose neighbours all share their label (edges get one-sided normals).
    inner = np.zeros(labels.shape, bool)
    inner[1:-1] = ((labels[1:-1] == labels[:-2]) & (labels[1:-1] == labels[2:])
                   & (labels[1:-1] == np.roll(labels, 1, 1)[1:-1]) & (labels[1:-1] == np.roll(labels, -1, 1)[1:-1]))
    wall = ((labels == 1) & inner).reshape(-1)
    # A wall: round discs 0.6 pixel footprints (r / f) wide, a tenth of that thick.
    np.testing.assert_allclose(scales[wall, 1], 0.6 * footprint[wall], rtol=1e-4)
    np.testing.assert_allclose(scales[wall, 0], scales[wall, 1], rtol=1e-3)
    np.testing.assert_allclose(scales[wall, 2], 0.06 * footprint[wall], rtol=1e-4)
    # The floor recedes: its footprint along the view is r / (f |t|), at most 4 times the width.
    floor = ((labels == 3) & inner).reshape(-1)
    t = np.broadcast_to(row_slopes(proj)[:, None], labels.shape).reshape(-1)[floor]
    expected = np.minimum(1.0 / np.abs(t), 4.0 / np.sqrt(1 + t * t))
    np.testing.assert_allclose(scales[floor, 0] / scales[floor, 1], expected, rtol=1e-2)  # normals from differences
    assert (scales[floor, 0] / scales[floor, 1]).max() > 1.2
    # Each splat's thin axis is the surface normal.
    quat = np.stack([records[f"rot_{i}"] for i in range(4)], axis=1)
    axes = Rotation.from_quat(quat[:, [1, 2, 3, 0]]).as_matrix()
    normals = np.stack([records["nx"], records["ny"], records["nz"]], axis=1)
    np.testing.assert_allclose(np.abs(np.einsum("ij,ij->i", axes[:, :, 2], normals)), 1.0, atol=1e-4)


def test_splat_options(kit):
    snapshot = kit.room_snapshot(64, 32)
    names, records = parse_ply(export("splat", snapshot, sh_degree=3, step=2, sky=False))
    assert [n for n in names if n.startswith("f_rest_")] == [f"f_rest_{i}" for i in range(45)]
    _, _, labels, _ = kit.room_layers(64, 32)
    assert len(records) == int((labels[::2, ::2] != 0).sum())
    _, gl = parse_ply(export("splat", snapshot))
    _, cv = parse_ply(export("splat", snapshot, convention="opencv"))
    np.testing.assert_allclose(cv["y"], -gl["y"], atol=1e-6)
    np.testing.assert_allclose(cv["z"], -gl["z"], atol=1e-6)
    for bad in ({"opacity": 1.0}, {"sh_degree": 5}, {"convention": "unity"}, {"size": 0}):
        with pytest.raises(UserInputError):
            export("splat", snapshot, **bad)


def test_open3d_reads_the_splat_file_as_gaussian_splats(kit, tmp_path):
    """open3d 0.20 has its own 3DGS reader: it must recognise the file and agree on every value."""
    import open3d as o3d

    if not hasattr(o3d.io, "CONTAINS_GAUSSIAN_SPLATS"):
        pytest.skip(f"open3d {o3d.__version__} has no Gaussian-splat reader (0.20 and later do)")
    snapshot = kit.room_snapshot(64, 32)
    path = tmp_path / "splats.ply"
    path.write_bytes(export("splat", snapshot))
    assert o3d.io.read_file_geometry_type(str(path)) & o3d.io.CONTAINS_GAUSSIAN_SPLATS
    cloud = o3d.t.io.read_point_cloud(str(path))
    _, records = parse_ply(path.read_bytes())
    point = {k: v.numpy() for k, v in cloud.point.items()}
    assert len(point["positions"]) == 64 * 32
    np.testing.assert_allclose(point["positions"][:, 2], records["z"], rtol=1e-6)
    # open3d stores linear scales: the file's log scales, exponentiated.
    np.testing.assert_allclose(point["scale"][:, 0], np.exp(records["scale_0"]), rtol=1e-5)
    np.testing.assert_allclose(point["rot"][:, 0], records["rot_0"], rtol=1e-6)
    np.testing.assert_allclose(point["f_dc"][:, 1], records["f_dc_1"], rtol=1e-6)
