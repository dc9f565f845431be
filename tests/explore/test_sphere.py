"""Issue 22: ``worldgen sphere`` completes the band to 360 x 180 degrees by joint RGB-D inpainting of
perspective cap views (tiny JointNet models): the right masks reach the model, known pixels stay exact."""

from __future__ import annotations

import numpy as np
import pytest

from worldgen.explore.sphere import SphereRequest, cap_cameras, complete_sphere
from worldgen.reproject import rays as R
from worldgen.reproject.sources import BandSource, render_equirect

from .conftest import EditSpy, assert_kept

STEPS = 2


@pytest.fixture(scope="module")
def completed(inpaint_backend):
    from .conftest import ROOM

    band = ROOM.room_snapshot(128, 32)
    spy = EditSpy(inpaint_backend)
    result = complete_sphere(spy, band, SphereRequest(prompt="a room", steps=STEPS, view_size=64))
    return band, spy, result


def test_the_band_is_untouched_and_its_pixels_are_exact_in_the_sphere(completed):
    band, _, result = completed
    assert np.array_equal(result.image, band.image)
    assert np.array_equal(result.modalities["depth"], band.modalities["depth"])
    sphere = result.sphere
    assert sphere.image.shape == (64, 128, 3) and sphere.known.all()  # both caps filled
    band_only = render_equirect(BandSource.from_snapshot(band), 128)
    k = band_only.known
    assert k.mean() > 0.3 and not k[0].any() and not k[-1].any()
    assert np.array_equal(sphere.image[k], band_only.color[k])
    assert np.array_equal(sphere.distance[k], band_only.distance[k])


def test_each_cap_view_is_inpainted_jointly_on_exactly_its_unknown_pixels(completed, inpaint_backend):
    band, spy, _ = completed
    assert len(spy.calls) == 2 and inpaint_backend.has_masked_input
    source = BandSource.from_snapshot(band)
    for call, (name, camera) in zip(spy.calls, cap_cameras(band, 12.0)):
        expected = ~source.lookup(R.perspective_rays(camera, 64, 64)).known
        assert np.array_equal(call["mask"], expected), name
        assert call["layers"] == "both" and call["method"] == "auto"
        assert 0.2 < expected.mean() < 0.9  # a hole in the middle, the band around it
        assert expected[32, 32] and not expected[0, 32]
        assert_kept(call)
        # The band's depth reaches the model as disparity in its own scale: the wall (4 m) in the
        # down view's ring, converted with the perpendicular distance.
        assert call["view"].modalities["depth"].max() <= 1.0


def test_the_caps_show_the_inpainted_views_not_a_stretched_row(completed):
    _, spy, result = completed
    top = result.sphere.image[0]
    assert top.std(axis=0).max() > 1e-3  # the zenith row varies (the old mesh stretched one colour)
    # The zenith row is what the up view shows around its centre.
    assert np.allclose(top.mean(axis=0), spy.calls[0]["result"].image[28:36, 28:36].reshape(-1, 3).mean(axis=0),
                       atol=0.15)


def test_a_generation_checkpoint_fills_the_caps_by_blending(generate_backend, room):
    band = room(128, 32)
    spy = EditSpy(generate_backend)
    result = complete_sphere(spy, band, SphereRequest(steps=STEPS, view_size=64))
    assert not generate_backend.has_masked_input
    assert result.sphere.known.all() and len(spy.calls) == 2
    for call in spy.calls:
        assert_kept(call)


def test_the_sphere_is_a_layer_of_the_version(completed, tmp_path):
    from worldgen.scene.store import Scene

    band, _, result = completed
    scene = Scene.create(tmp_path / "room", band, operation="pano", prompt="room", seed=0, backend="test",
                         backend_settings={}, modality="depth")
    scene.add_version(result, operation="sphere")
    record = scene.record()
    assert record["sphere"]["projection"] == {"type": "equirectangular", "width": 128, "height": 64}
    loaded = Scene.open(tmp_path / "room").load()
    assert np.array_equal(loaded.sphere.distance, result.sphere.distance)
    assert np.abs(loaded.sphere.image - result.sphere.image).max() <= 0.5 / 255 + 1e-6
    assert Scene.open(tmp_path / "room").load(1).sphere is None


def test_bad_requests_name_the_fix():
    from worldgen.errors import UserInputError

    with pytest.raises(UserInputError, match="multiple of 8"):
        SphereRequest(view_size=60)
    with pytest.raises(UserInputError, match="overlap"):
        SphereRequest(overlap_deg=80)


def test_sphere_command_writes_a_version_and_equirect_export_has_no_hole(tiny_models, room, tmp_path):
    from click.testing import CliRunner
    from PIL import Image

    from worldgen.cli.main import cli
    from worldgen.scene.store import Scene

    Scene.create(tmp_path / "room", room(128, 32), operation="pano", prompt="a room", seed=0, backend="test",
                 backend_settings={}, modality="depth")
    result = CliRunner().invoke(cli, ["sphere", str(tmp_path / "room"), "--model", str(tiny_models["inpaint"]),
                                      "--steps", "2", "--view-size", "64", "-q"])
    assert result.exit_code == 0, result.output
    scene = Scene.open(tmp_path / "room")
    assert scene.current == 2 and scene.record()["operation"] == "sphere"
    assert scene.record()["params"]["projection"] == "equirectangular"
    result = CliRunner().invoke(cli, ["export", str(tmp_path / "room"), "-f", "equirect", "-q"])
    assert result.exit_code == 0, result.output
    image = Image.open(tmp_path / "room.equirect.png")
    assert image.mode == "RGB" and image.size == (128, 64)  # nothing transparent: the whole sphere is known
    bad = CliRunner().invoke(cli, ["sphere", str(tmp_path / "room"), "--view-size", "60"])
    assert bad.exit_code != 0 and "multiple of 8" in bad.output


def test_glb_of_a_sphere_takes_its_caps_and_ground_from_the_sphere(completed, kit, gltf_validator):
    from worldgen.registry import get_registry

    _, _, result = completed
    result = type(result)(**{**result.__dict__})
    result.geometry = dict(result.geometry, far=1000.0)  # and the domes stay inside a 1000 m far plane
    data = get_registry().exporter("glb").export(result, {"origin": "camera"})
    issues = gltf_validator(data)
    assert issues["numErrors"] == 0 and issues["numWarnings"] == 0, issues["messages"]
    nodes = kit.glb_nodes(data)
    dome, ground = nodes["sky-dome"], nodes["ground"]
    assert dome["material"].name == "sphere" and ground["material"].name == "sphere"
    reach = max(np.linalg.norm(n["POSITION"], axis=1).max() for n in nodes.values() if n.get("POSITION") is not None)
    assert reach <= 900.0
    # Each dome vertex's texture coordinate is its own ray's place in the equirect (u azimuth, v polar angle).
    p, uv = dome["POSITION"].astype(np.float64), dome["TEXCOORD_0"]
    polar = np.arccos(np.clip(p[:, 1] / np.linalg.norm(p, axis=1), -1, 1)) / np.pi
    assert np.allclose(uv[:, 1], polar, atol=1e-4)
    azimuth = np.mod(np.arctan2(p[:, 0], -p[:, 2]), 2 * np.pi) / (2 * np.pi)
    assert np.allclose(np.mod(uv[:, 0] - azimuth + 0.5, 1.0) - 0.5, 0.0, atol=1e-4)
    assert (ground["TEXCOORD_0"][:, 1] > 0.5).all()  # the ground is below the horizon in the sphere
    assert ground["TEXCOORD_0"][:, 0].max() > 0.99  # the seam's repeated column reaches u = 1, not back to 0


@pytest.mark.parametrize("entry", [{"image": "../outside.png", "distance": "v1/d.npy", "known": "v1/k.png"},
                                   {"image": 7}, {"image": "/etc/passwd"}])
def test_a_sphere_entry_leaving_the_scene_is_refused(room, tmp_path, entry):
    import json

    from worldgen.errors import SceneError
    from worldgen.scene.store import Scene

    Scene.create(tmp_path / "room", room(64, 16), operation="pano", prompt="room", seed=0, backend="test",
                 backend_settings={}, modality="depth")
    (tmp_path / "outside.png").write_bytes(b"secret")
    manifest = json.loads((tmp_path / "room" / "scene.json").read_text())
    manifest["versions"][0]["sphere"] = entry
    (tmp_path / "room" / "scene.json").write_text(json.dumps(manifest))
    with pytest.raises(SceneError):
        Scene.open(tmp_path / "room").load()


@pytest.mark.parametrize("damage", ["truncate", "huge", "text"])
def test_a_damaged_sphere_layer_is_one_scene_error(completed, tmp_path, damage):
    from worldgen.errors import SceneError
    from worldgen.scene.store import Scene

    band, _, result = completed
    scene = Scene.create(tmp_path / "room", result, operation="sphere", prompt="room", seed=0, backend="test",
                         backend_settings={}, modality="depth")
    path = tmp_path / "room" / scene.record()["sphere"]["distance"]
    if damage == "truncate":
        path.write_bytes(path.read_bytes()[:200])
    elif damage == "huge":
        header = "{'descr': '<f4', 'fortran_order': False, 'shape': (64, 4000000000), }"
        path.write_bytes(b"\x93NUMPY\x01\x00" + len(header + "\n").to_bytes(2, "little") + (header + "\n").encode())
    else:
        path.write_text("not an array")
    with pytest.raises(SceneError, match="damaged"):
        Scene.open(tmp_path / "room").load()


class PaintCaps:
    """A stand-in model: paints the masked pixels of a cap view a flat orange, as sky."""

    modality = "depth"

    def edit(self, request, snapshot, progress=None):
        from dataclasses import replace

        image = np.where(request.mask[..., None], np.float32([1.0, 0.5, 0.0]), snapshot.image).astype(np.float32)
        depth = np.where(request.mask[..., None], 0.0, snapshot.modalities["depth"]).astype(np.float32)
        return replace(snapshot, image=image, modalities={"depth": depth})


def test_a_partial_narrow_band_is_completed_by_further_views_grown_from_what_is_known(room):
    band = room(64, 16, span=120.0)  # 120 degrees wide, 27 degrees tall: the caps cannot reach it all
    spy = EditSpy(PaintCaps())
    result = complete_sphere(spy, band, SphereRequest(view_size=32))
    assert result.sphere.known.all()
    assert len(spy.calls) > 2  # the caps, then fill views
    band_only = render_equirect(BandSource.from_snapshot(band), result.sphere.distance.shape[1])
    k = band_only.known
    assert np.array_equal(result.sphere.image[k], band_only.color[k])  # the band stays exact
    for call in spy.calls:
        assert call["mask"].any() and not call["mask"].all()
        assert_kept(call)


def test_a_backend_that_renders_the_sphere_itself_is_asked_first(room):
    from dataclasses import replace

    from worldgen.backend import Backend
    from worldgen.scene.extra_layers import SphereLayers

    class Direct(Backend):
        def sphere(self, request, snapshot, progress=None):
            h = 8
            return replace(snapshot, sphere=SphereLayers(np.zeros((h, 2 * h, 3), np.float32),
                                                         np.ones((h, 2 * h), np.float32), np.ones((h, 2 * h), bool)))

    result = complete_sphere(Direct(), room(64, 16), SphereRequest())
    assert result.sphere.distance.shape == (8, 16)
