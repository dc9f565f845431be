"""Issue 22: ``worldgen layers`` inpaints what lies behind every depth cut on masks grown from the
cut, jointly in RGB and depth; the GLB carries the layer instead of stretched skirts."""

from __future__ import annotations

import io
from dataclasses import replace

import numpy as np
import pytest

from worldgen.explore.background import LayersRequest, complete_layers, hidden_mask
from worldgen.registry import get_registry

from .conftest import ROOM, EditSpy, assert_kept

GREEN = np.array([0.1, 0.8, 0.2], np.float32)


class PaintBehind:
    """A stand-in model: paints the masked pixels green, at disparity 0.05 (10 m in the room's scale)."""

    modality = "depth"

    def edit(self, request, snapshot, progress=None):
        image = np.where(request.mask[..., None], GREEN, snapshot.image).astype(np.float32)
        depth = np.where(request.mask[..., None], 0.05, snapshot.modalities["depth"]).astype(np.float32)
        return replace(snapshot, image=image, modalities={"depth": depth})


def test_the_mask_grows_from_the_pillar_edges_into_the_pillar_only():
    band = ROOM.room_snapshot(256, 64)
    _, _, labels, _ = ROOM.room_layers(256, 64)
    mask, _ = hidden_mask(band, LayersRequest(radius=4))
    lo, hi = (int(f * 256) for f in ROOM.PILLAR_COLUMNS)
    row = mask[34]  # just below the horizon: pillar in front of the wall
    assert set(np.nonzero(row)[0]) == set(range(lo, lo + 5)) | set(range(hi - 5, hi))
    assert not mask[labels == 3].any() and not mask[labels == 0].any()  # the floor and sky hide nothing here
    assert mask[labels == 1].any()  # the wall's top edge hides the sky behind it


def test_layers_inpaint_jointly_on_the_grown_mask_and_keep_the_rest(inpaint_backend):
    band = ROOM.room_snapshot(128, 32)
    spy = EditSpy(inpaint_backend)
    request = LayersRequest(prompt="a room", steps=2, radius=3)
    result = complete_layers(spy, band, request)
    expected, world = hidden_mask(band, request)
    assert len(spy.calls) == 1
    call = spy.calls[0]
    assert np.array_equal(call["mask"], expected) and call["layers"] == "both"
    assert call["view"].projection.full_circle  # the whole band, wrapping at its seam
    assert_kept(call)
    layer = result.background
    assert np.array_equal(layer.mask, expected)
    assert np.array_equal(result.image, band.image)  # the band itself is untouched
    # What is behind lies behind: at least 10 % farther than the foreground it hides.
    from worldgen.geometry.world import disparity_to_distance

    behind = disparity_to_distance(layer.modality[..., 0], world.settings, world.world_scale)
    assert (behind[expected] >= world.distance[expected] * 1.1 * (1 - 1e-4)).all()
    assert (layer.image[~expected] == 0).all()  # nothing of the band is copied into the layer


def test_glb_carries_the_layer_instead_of_cut_skirts(kit, gltf_validator):
    band = ROOM.room_snapshot(256, 64)
    layered = complete_layers(PaintBehind(), band, LayersRequest(radius=4))
    exporter = get_registry().exporter("glb")
    plain = kit.glb_nodes(exporter.export(band, {"origin": "camera"}))
    data = exporter.export(layered, {"origin": "camera"})
    issues = gltf_validator(data)
    assert issues["numErrors"] == 0 and issues["numWarnings"] == 0, issues["messages"]
    nodes = kit.glb_nodes(data)
    assert "background" in nodes and nodes["background"]["material"].name == "background"
    assert len(nodes["backdrop"]["faces"]) < len(plain["backdrop"]["faces"])  # the cut skirts are gone
    # The layer's vertices inside the mask stand 10 m away (the painted disparity), behind the pillar (2 m).
    r = np.hypot(nodes["background"]["POSITION"][:, 0], nodes["background"]["POSITION"][:, 2])
    assert r.max() > 9.0
    # Its texture shows what was painted behind, never the pillar's red.
    from PIL import Image

    gltf = kit.glb_document(data)
    image = gltf.images[[i.name for i in gltf.images].index("background")]
    view = gltf.bufferViews[image.bufferView]
    blob = gltf.binary_blob()
    texture = np.asarray(Image.open(io.BytesIO(blob[view.byteOffset:view.byteOffset + view.byteLength]))) / 255.0
    mask = layered.background.mask
    assert np.abs(texture[mask] - GREEN).mean() < 0.03  # JPEG: thin strips ring a little at their edges
    assert not ((texture[..., 0] > 0.7) & (texture[..., 1] < 0.3))[mask].any()


def test_layers_command_writes_a_version(tiny_models, tmp_path):
    from click.testing import CliRunner

    from worldgen.cli.main import cli
    from worldgen.scene.store import Scene

    Scene.create(tmp_path / "room", ROOM.room_snapshot(128, 32), operation="pano", prompt="a room", seed=0,
                 backend="test", backend_settings={}, modality="depth")
    result = CliRunner().invoke(cli, ["layers", str(tmp_path / "room"), "--model", str(tiny_models["inpaint"]),
                                      "--steps", "2", "--radius", "3", "-q"])
    assert result.exit_code == 0, result.output
    scene = Scene.open(tmp_path / "room")
    assert scene.record()["operation"] == "layers" and "background" in scene.record()
    loaded = scene.load()
    assert loaded.background is not None and loaded.background.mask.any()
    assert loaded.background.modality.shape == (32, 128, 1)


def test_bad_layer_requests_name_the_fix():
    from worldgen.errors import UserInputError

    with pytest.raises(UserInputError, match="radius"):
        LayersRequest(radius=-1)


@pytest.mark.parametrize("fmt", ["ply", "splat"])
def test_point_clouds_and_splats_carry_the_layer(fmt):
    band = ROOM.room_snapshot(128, 32)
    layered = complete_layers(PaintBehind(), band, LayersRequest(radius=3))
    exporter = get_registry().exporter(fmt)
    options = {"sky": False}
    plain, with_layer = (exporter.export(s, options) for s in (band, layered))

    def vertices(data: bytes) -> np.ndarray:
        head, _, body = data.partition(b"end_header\n")
        props = [(line.split()[2], {"float": "<f4", "uchar": "u1"}[line.split()[1]])
                 for line in head.decode("ascii").splitlines() if line.startswith("property")]
        return np.frombuffer(body, dtype=np.dtype(props))

    a, b = vertices(plain), vertices(with_layer)
    mask = layered.background.mask
    assert len(b) == len(a) + int(mask.sum())
    extra = b[len(a):]
    r = np.hypot(extra["x"], extra["z"])
    assert np.allclose(r, 10.0, rtol=1e-3)  # the painted disparity 0.05 at the room's metric scale


def test_the_mask_is_as_wide_as_the_parallax_a_step_reveals():
    from worldgen.reproject.cuts import reveal_radius

    # f = 100 px per radian, 5 m off the eye: a 2 m post before a 4 m wall reveals 125 px,
    # a 400 m ridge before the sky at 1000 m less than one.
    r = reveal_radius(np.array([2.0, 400.0]), np.array([4.0, 1000.0]), 100.0, 5.0, 64)
    assert r.tolist() == [64.0, 1.0]
    band = ROOM.room_snapshot(256, 64)
    near, _ = hidden_mask(band, LayersRequest(radius=64, move=0.2))  # f = 40.7: 0.2 m reveals ceil(2.04) = 3 px
    far, _ = hidden_mask(band, LayersRequest(radius=64, move=1.0))  # ... 1 m: 11 px
    assert near.sum() < far.sum()
    lo = int(ROOM.PILLAR_COLUMNS[0] * 256)
    assert set(np.nonzero(near[34, lo:lo + 20])[0]) == {0, 1, 2, 3}


@pytest.mark.parametrize("options", [{}, {"quantize": True, "uv16": True, "collider": True},
                                     {"normals": True, "texture": "png", "step": 2}])
def test_glb_with_sphere_and_layers_passes_the_validator(gltf_validator, options):
    from worldgen.explore.sphere import SphereRequest, complete_sphere

    from .test_sphere import PaintCaps

    band = ROOM.room_snapshot(128, 32)
    world = complete_layers(PaintBehind(), complete_sphere(PaintCaps(), band, SphereRequest(view_size=64)),
                            LayersRequest(radius=3))
    assert world.sphere is not None and world.background is not None
    issues = gltf_validator(get_registry().exporter("glb").export(world, options))
    assert issues["numErrors"] == 0 and issues["numWarnings"] == 0, issues["messages"]
