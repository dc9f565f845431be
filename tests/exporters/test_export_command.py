"""`worldgen export` and worldgen.export_files: the one place exports reach the disk."""

from __future__ import annotations


import numpy as np
import pytest
from click.testing import CliRunner

from worldgen.cli.main import cli
from worldgen.errors import PluginError, UserInputError
from worldgen.export_files import default_export_path, export_to_file
from worldgen.scene.store import Scene


@pytest.fixture
def scene_dir(kit, tmp_path):
    path = tmp_path / "room"
    Scene.create(path, kit.room_snapshot(128, 48), operation="test", prompt="room", seed=0, backend="test",
                 backend_settings={}, modality="depth")
    return path


def run(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


def test_export_writes_a_glb_next_to_the_scene(scene_dir):
    import trimesh

    result = run("export", scene_dir, "-q")
    assert result.exit_code == 0, result.output
    target = scene_dir.parent / "room.glb"
    scene = trimesh.load(target, process=False)
    assert {"terrain", "sky"} <= set(scene.geometry)
    assert not list(scene_dir.parent.glob(".room.glb.*"))  # no temporary file left behind


def test_export_point_cloud_and_splats_with_options(scene_dir, tmp_path):
    import open3d as o3d

    out = tmp_path / "out" / "cloud.ply"
    result = run("export", scene_dir, "-f", "ply", "-o", out, "-O", "step=2", "-O", "sky=false", "-q")
    assert result.exit_code == 0, result.output
    cloud = o3d.io.read_point_cloud(str(out))
    assert 0 < len(cloud.points) < 64 * 24 and cloud.has_colors() and cloud.has_normals()

    result = run("export", scene_dir, "-f", "splat", "--version", "1", "-q")
    assert result.exit_code == 0, result.output
    data = (scene_dir.parent / "room.splat.ply").read_bytes()
    assert b"property float f_dc_0" in data and b"element vertex 6144" in data


@pytest.mark.parametrize("args, message", [
    (["-O", "bogus=1"], "unknown glb option"),
    (["-O", "step=two"], "whole number"),
    (["-O", "novalue"], "NAME=VALUE"),
    (["-f", "obj"], "unknown exporter 'obj'"),
    (["--version", "7"], "versions 1..1"),
])
def test_export_errors_are_one_line_and_name_the_fix(scene_dir, args, message):
    result = run("export", scene_dir, "-q", *args)
    assert result.exit_code != 0
    assert message in result.output
    assert "Traceback" not in result.output
    assert not (scene_dir.parent / "room.glb").exists()


def test_export_of_a_folder_that_is_not_a_scene_fails_cleanly(tmp_path):
    result = run("export", tmp_path, "-q")
    assert result.exit_code == 1 and "not a scene" in result.output


def test_list_options_names_every_option(scene_dir):
    result = run("export", scene_dir, "-f", "glb", "--list-options")
    assert result.exit_code == 0
    for name in ("step", "cut_threshold", "collider", "far", "texture"):
        assert f"-O {name}=" in result.output


def test_export_to_file_is_atomic_and_keeps_the_old_file_on_failure(kit, tmp_path):
    target = tmp_path / "world.glb"
    export_to_file(kit.room_snapshot(64, 32), "glb", target)
    before = target.read_bytes()
    with pytest.raises(UserInputError):
        export_to_file(kit.room_snapshot(64, 32), "glb", target, {"step": 0})
    assert target.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["world.glb"]
    with pytest.raises(UserInputError, match="folder"):
        export_to_file(kit.room_snapshot(64, 32), "glb", tmp_path)
    with pytest.raises(PluginError):
        export_to_file(kit.room_snapshot(64, 32), "stl", tmp_path / "x.stl")


def test_export_to_file_reports_progress(kit, tmp_path):
    events = []
    export_to_file(kit.room_snapshot(64, 32), "ply", tmp_path / "a.ply", progress=events.append)
    assert [e.stage for e in events] == ["export"] * 3 and events[-1].done == events[-1].total


def test_default_export_paths(tmp_path):
    assert default_export_path(tmp_path / "fjord", "glb") == (tmp_path / "fjord.glb").resolve()
    assert default_export_path(tmp_path / "fjord", "ply") == (tmp_path / "fjord.ply").resolve()
    assert default_export_path(tmp_path / "fjord", "splat") == (tmp_path / "fjord.splat.ply").resolve()


def test_exported_glb_round_trips_through_the_scene_on_disk(kit, scene_dir):
    """Scene files (16-bit PNG + lossless npy) -> load -> GLB: the depths survive exactly."""
    from worldgen.geometry.rays import project_points

    run("export", scene_dir, "-q")
    nodes = kit.glb_nodes((scene_dir.parent / "room.glb").read_bytes())
    proj, r, _, _ = kit.room_layers(128, 48)
    eye = np.asarray(nodes["camera"]["node"].translation)  # origin=ground: the eye 1.6 m above y = 0
    assert eye == pytest.approx([0.0, 1.6, 0.0])
    col, row, dist = project_points(nodes["terrain"]["POSITION"] - eye, proj)
    v, u = np.round(row).astype(int), np.round(col).astype(int) % 128
    assert np.abs(row - v).max() < 1e-3  # simplified, but every vertex is still a pixel's own point
    np.testing.assert_allclose(dist, r[v, u], rtol=1e-5)

