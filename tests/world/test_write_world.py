"""The scene and its GLB written at once (issue 24): the same bytes as one after the other, the
image encoded once where the GLB's texture format matches, both parts timed, errors not lost."""

from __future__ import annotations

import json

import pytest

from worldgen.api import WorldPipeline
from worldgen.phases import PhaseTimer, recording
from worldgen.world.generate import write_world


@pytest.fixture(scope="module")
def world():
    return WorldPipeline.from_pretrained("procedural")("a fjord at dawn", width=256, height=64, seed=1)


def _files(scene_dir):
    """Every file of a scene folder by relative path; the manifest without its timestamps."""
    files = {}
    for path in sorted(p for p in scene_dir.rglob("*") if p.is_file()):
        data = path.read_bytes()
        if path.name == "scene.json":
            record = json.loads(data)
            record.pop("created", None)
            for version in record.get("versions", []):
                version.pop("created", None)
            data = json.dumps(record, sort_keys=True).encode()
        files[str(path.relative_to(scene_dir))] = data
    return files


@pytest.mark.parametrize("texture", ["jpeg", "png"])
def test_concurrent_write_and_export_match_the_sequential_bytes(tmp_path, world, texture):
    out = {}
    for concurrent in (False, True):
        where = tmp_path / ("at-once" if concurrent else "in-turn")
        glb = where / "world.glb"
        where.mkdir()
        write_world(world, where / "scene", lambda: world.export("glb", glb, {"texture": texture}),
                    concurrent=concurrent)
        out[concurrent] = (_files(where / "scene"), glb.read_bytes())
    assert out[True][0] == out[False][0]
    assert len(out[True][0]) >= 4 and "v1/image.png" in out[True][0]
    assert out[True][1] == out[False][1]


def test_a_png_textured_glb_holds_the_scene_png_itself(tmp_path, world):
    import pygltflib

    glb = tmp_path / "world.glb"
    scene = write_world(world, tmp_path / "scene", lambda: world.export("glb", glb, {"texture": "png"}))
    gltf = pygltflib.GLTF2().load(str(glb))
    view = gltf.bufferViews[gltf.images[0].bufferView]
    texture = gltf.binary_blob()[view.byteOffset or 0:(view.byteOffset or 0) + view.byteLength]
    assert texture == (scene.path / "v1" / "image.png").read_bytes()


def test_both_parts_are_timed_inside_one_phase(tmp_path, world):
    timer = PhaseTimer()
    with recording(timer):
        write_world(world, tmp_path / "scene", lambda: world.export("glb", tmp_path / "w.glb"))
    assert timer.depths["write scene + export"] == 0
    assert timer.depths["write scene"] == 1 and timer.depths["export"] == 1
    assert timer.phases["write scene"] > 0 and timer.phases["export"] > 0


def test_an_export_error_is_raised_after_the_scene_is_written(tmp_path, world):
    def broken():
        raise ValueError("no room for the GLB")

    with pytest.raises(ValueError, match="no room"):
        write_world(world, tmp_path / "scene", broken)
    assert (tmp_path / "scene" / "v1" / "image.png").is_file()


def test_an_image_changed_in_place_is_encoded_again(world):
    from worldgen.scene.image_files import encode_png

    image = world.snapshot.image.copy()
    first = encode_png(image)
    image[0, 0] = 1.0 - image[0, 0]
    assert encode_png(image) != first
