import json
import os

import numpy as np
import pytest

from worldgen.scene.atomic import atomic_write_bytes
from worldgen.errors import SceneError
from worldgen.scene.snapshot import Snapshot
from worldgen.geometry.projection import CylindricalProjection
from worldgen.scene.image_files import from_uint16, to_uint16
from worldgen.scene.manifest import MANIFEST_NAME
from worldgen.scene.store import Scene


def make_snapshot(width=64, height=16, fill=0.5, seed=0):
    rng = np.random.default_rng(seed)
    image = rng.random((height, width, 3), dtype=np.float32)
    depth = rng.random((height, width, 1), dtype=np.float32) * fill
    return Snapshot(image=image, modalities={"depth": depth}, projection=CylindricalProjection(width, height, 360.0),
                    geometry={"disparity_scale": 0.99, "disparity_shift": 0.01})


def create(tmp_path, snap=None):
    return Scene.create(tmp_path / "world", snap or make_snapshot(), operation="pano", prompt="a fjord", seed=7,
                        backend="procedural", backend_settings={"near": 1.0}, modality="depth",
                        negative_prompt="blurry")


def test_manifest_round_trip_keeps_every_field(tmp_path):
    snap = make_snapshot()
    create(tmp_path, snap)
    scene = Scene.open(tmp_path / "world")
    record = scene.record()
    assert record["prompt"] == "a fjord" and record["negative_prompt"] == "blurry" and record["seed"] == 7
    assert record["backend"] == {"name": "procedural", "settings": {"near": 1.0}}
    assert record["projection"]["type"] == "cylindrical" and record["projection"]["span_deg"] == 360.0
    assert record["projection"]["vfov_deg"] > 0 and record["size"] == [64, 16]
    assert scene.manifest["format_version"] == 1
    loaded = scene.load()
    # The modality is lossless; the image is 8-bit.
    np.testing.assert_array_equal(loaded.modalities["depth"], snap.modalities["depth"])
    assert np.abs(loaded.image - snap.image).max() <= 0.5 / 255 + 1e-6
    assert loaded.geometry == snap.geometry


def test_each_operation_appends_a_version_and_old_versions_stay_readable(tmp_path):
    scene = create(tmp_path)
    second = make_snapshot(fill=0.1, seed=1)
    assert scene.add_version(second, operation="refine", params={"strength": 0.4}) == 2
    reopened = Scene.open(tmp_path / "world")
    assert [r["operation"] for r in reopened.versions] == ["pano", "refine"]
    assert reopened.record(2)["parent"] == 1 and reopened.record(2)["prompt"] == "a fjord"  # inherited
    assert reopened.load(1).modalities["depth"].max() > reopened.load(2).modalities["depth"].max()
    with pytest.raises(SceneError, match="versions 1..2"):
        reopened.load(3)


def test_single_channel_modality_gets_a_16_bit_png_without_saturation(tmp_path):
    from PIL import Image

    create(tmp_path)
    scene = Scene.open(tmp_path / "world")
    png = tmp_path / "world" / scene.record()["previews"]["depth16"]
    data = np.asarray(Image.open(png))
    assert data.dtype in (np.uint16, np.int32) and data.max() > 255  # really 16-bit, not an 8-bit step
    original = scene.load().modalities["depth"][..., 0]
    np.testing.assert_allclose(from_uint16(data, (0.0, 1.0)), original, atol=1 / 65535)


def test_uint16_mapping_clips_and_inverts():
    values = np.array([-0.5, 0.0, 0.25, 1.0, 2.0])
    assert to_uint16(values, (0, 1)).tolist() == [0, 0, 16384, 65535, 65535]
    np.testing.assert_allclose(from_uint16(to_uint16(values[1:4], (0, 1)), (0, 1)), values[1:4], atol=1e-4)


@pytest.mark.parametrize("bad", ["../outside.npy", "/etc/passwd", "v1/../../x.npy", "v1\\..\\x", ".", ""])
def test_manifest_paths_escaping_the_folder_are_refused(tmp_path, bad):
    create(tmp_path)
    path = tmp_path / "world" / MANIFEST_NAME
    manifest = json.loads(path.read_text())
    manifest["versions"][0]["layers"]["depth"] = bad
    path.write_text(json.dumps(manifest))
    with pytest.raises(SceneError, match="leaves the scene folder|not a relative path"):
        Scene.open(tmp_path / "world")


def test_symlinked_layer_pointing_outside_is_refused(tmp_path):
    create(tmp_path)
    outside = tmp_path / "secret.npy"
    np.save(outside, np.zeros((16, 64, 1), np.float32))
    layer = tmp_path / "world" / "v1" / "depth.npy"
    layer.unlink()
    os.symlink(outside, layer)
    with pytest.raises(SceneError, match="leaves the scene folder"):
        Scene.open(tmp_path / "world")


@pytest.mark.parametrize("edit, message", [
    (lambda m: m.update(format_version=99), "upgrade worldgen"),
    (lambda m: m.update(versions=[]), "no versions"),
    (lambda m: m["versions"][0].pop("layers"), "lacks layers"),
    (lambda m: m.update(format="something-else"), "not a worldgen scene"),
])
def test_damaged_manifests_give_clear_errors(tmp_path, edit, message):
    create(tmp_path)
    path = tmp_path / "world" / MANIFEST_NAME
    manifest = json.loads(path.read_text())
    edit(manifest)
    path.write_text(json.dumps(manifest))
    with pytest.raises(SceneError, match=message):
        Scene.open(tmp_path / "world")


def test_invalid_json_and_missing_layer(tmp_path):
    create(tmp_path)
    (tmp_path / "world" / "v1" / "depth.npy").unlink()
    with pytest.raises(SceneError, match="missing its layer v1/depth.npy"):
        Scene.open(tmp_path / "world").load()
    (tmp_path / "world" / MANIFEST_NAME).write_text("{not json")
    with pytest.raises(SceneError, match="not valid JSON"):
        Scene.open(tmp_path / "world")


def test_a_pickled_array_is_not_loaded(tmp_path):
    create(tmp_path)
    evil = tmp_path / "world" / "v1" / "depth.npy"
    np.save(evil, np.array([{"x": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(SceneError, match="not a readable array"):
        Scene.open(tmp_path / "world").load()


def test_creating_over_an_existing_scene_is_refused(tmp_path):
    create(tmp_path)
    with pytest.raises(SceneError, match="already holds a scene"):
        create(tmp_path)


def test_failed_version_write_leaves_the_scene_at_its_previous_version(tmp_path, monkeypatch):
    scene = create(tmp_path)
    before = (tmp_path / "world" / MANIFEST_NAME).read_bytes()

    def boom(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr("worldgen.scene.store.atomic_write_text", boom)
    with pytest.raises(KeyboardInterrupt):
        scene.add_version(make_snapshot(seed=3), operation="refine")
    assert (tmp_path / "world" / MANIFEST_NAME).read_bytes() == before
    assert Scene.open(tmp_path / "world").current == 1
    assert not [p for p in (tmp_path / "world").iterdir() if p.name.endswith(".tmp")]
    # The next attempt reuses the number cleanly.
    monkeypatch.undo()
    assert Scene.open(tmp_path / "world").add_version(make_snapshot(seed=3), operation="refine") == 2


def test_atomic_write_failure_mid_write_keeps_the_old_file(tmp_path, monkeypatch):
    target = tmp_path / "file.bin"
    atomic_write_bytes(target, b"old contents")

    def failing_fsync(fd):
        raise OSError("disk full")

    monkeypatch.setattr(os, "fsync", failing_fsync)
    with pytest.raises(OSError, match="disk full"):
        atomic_write_bytes(target, b"new contents that never land")
    assert target.read_bytes() == b"old contents"
    assert [p.name for p in tmp_path.iterdir()] == ["file.bin"]  # no temp file left behind


def test_atomic_writes_get_normal_file_permissions(tmp_path):
    from worldgen.scene.atomic import FILE_MODE

    target = atomic_write_bytes(tmp_path / "out.glb", b"x")
    assert target.stat().st_mode & 0o777 == FILE_MODE
