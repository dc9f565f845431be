"""The task commands end to end from the CLI on a tiny checkpoint, and their bad-input errors."""

from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from worldgen.cli.main import cli
from worldgen.scene.snapshot import Snapshot
from worldgen.geometry.projection import CylindricalProjection
from worldgen.scene.image_files import encode_png, to_uint16
from worldgen.scene.store import Scene

FAST = ["--steps", "1", "-q"]


def run(*args):
    result = CliRunner().invoke(cli, [str(a) for a in args])
    return result


def one_line_error(result, *fragments):
    """The command failed with one line of explanation naming the problem, and no traceback
    (click's usage errors add its usual "Usage:/Try --help" lines above that line)."""
    assert result.exit_code in (1, 2), result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    assert "Traceback" not in result.output
    errors = [line for line in result.output.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1, result.output
    for fragment in fragments:
        assert fragment in errors[0], errors[0]


def _image(rng, h, w):
    return (np.clip(rng.random((h, w, 3)).cumsum(axis=1) / 30 % 1.0, 0, 1) * 255).astype(np.uint8) / np.float32(255)


@pytest.fixture()
def scene_dir(tmp_path, tiny_models) -> Path:
    """A 128x64 RGB-D scene recorded as made by the tiny model (so commands find it without --model)."""
    rng = np.random.default_rng(0)
    depth = rng.random((64, 128, 1)).astype(np.float32)
    snapshot = Snapshot(image=_image(rng, 64, 128), modalities={"depth": depth},
                        projection=CylindricalProjection(128, 64, 360.0), prompt="a misty fjord")
    Scene.create(tmp_path / "fjord", snapshot, operation="pano", prompt="a misty fjord", seed=0, backend="jointnet",
                 backend_settings={"model": str(tiny_models["generate"])}, modality="depth")
    return tmp_path / "fjord"


def _png(path, array):
    path.write_bytes(encode_png(array))
    return path


def test_refine_writes_a_new_upsampled_version_and_keeps_the_old(scene_dir):
    before = (scene_dir / "v1" / "image.png").read_bytes()
    result = run("refine", scene_dir, "--scale", "1.5", "--steps", "3", "-q")
    assert result.exit_code == 0, result.output
    scene = Scene.open(scene_dir)
    assert scene.current == 2 and scene.record(2)["operation"] == "refine"
    assert scene.load(2).size == (192, 96) and np.isfinite(scene.load(2).modalities["depth"]).all()
    assert (scene_dir / "v1" / "image.png").read_bytes() == before


def test_refine_keep_image_is_bit_exact_through_the_scene_files(scene_dir):
    result = run("refine", scene_dir, "--scale", "1", "--keep", "image", "--steps", "3", "-q")
    assert result.exit_code == 0, result.output
    scene = Scene.open(scene_dir)
    assert np.array_equal(scene.load(2).image, scene.load(1).image)
    assert not np.array_equal(scene.load(2).modalities["depth"], scene.load(1).modalities["depth"])


def test_refine_outside_rgbd_files_makes_a_new_scene(tmp_path, tiny_models):
    rng = np.random.default_rng(1)
    image = _png(tmp_path / "pano.png", _image(rng, 32, 128))
    depth = _png(tmp_path / "depth.png", to_uint16(rng.random((32, 128)), (0.0, 1.0)))
    out = tmp_path / "pano-hd"
    result = run("refine", "--image", image, "--modality-file", depth, "-o", out, "--model", tiny_models["generate"],
                 "--scale", "2", "--steps", "3", "-q")
    assert result.exit_code == 0, result.output
    assert Scene.open(out).load().size == (256, 64)


def test_outpaint_extends_a_scene_and_keeps_its_pixels(tmp_path, tiny_models):
    rng = np.random.default_rng(2)
    half = Snapshot(image=_image(rng, 32, 64), modalities={"depth": rng.random((32, 64, 1)).astype(np.float32)},
                    projection=CylindricalProjection(64, 32, 180.0), prompt="dunes")
    Scene.create(tmp_path / "dunes", half, operation="pano", prompt="dunes", seed=0, backend="jointnet",
                 backend_settings={"model": str(tiny_models["generate"])}, modality="depth")
    result = run("outpaint", tmp_path / "dunes", "--span", "360", "--height", "48", *FAST)
    assert result.exit_code == 0, result.output
    scene = Scene.open(tmp_path / "dunes")
    wide = scene.load(2)
    assert wide.size == (128, 48) and wide.projection.full_circle
    assert np.array_equal(wide.image[8:40, :64], scene.load(1).image)
    assert np.array_equal(wide.modalities["depth"][8:40, :64], scene.load(1).modalities["depth"])


@pytest.mark.parametrize("model", ["generate", "inpaint"])
def test_outpaint_a_photo_into_a_panorama_around_it(tmp_path, tiny_models, model):
    photo = _image(np.random.default_rng(3), 32, 32)
    _png(tmp_path / "photo.png", photo)
    out = tmp_path / "around"
    result = run("outpaint", "--photo", tmp_path / "photo.png", "--fov", "90", "--prompt", "a beach", "-o", out,
                 "--model", tiny_models[model], *FAST)
    assert result.exit_code == 0, result.output
    snapshot = Scene.open(out).load()
    # Issue 22: resampled into the cylinder (not pasted), on a canvas tall enough for its footprint.
    from worldgen.explore.photo import photo_on_cylinder

    assert snapshot.size == (128, 48) and snapshot.projection.full_circle
    landed, known = photo_on_cylinder(photo, 90.0, snapshot.projection)
    assert known[:, 64].sum() >= 40
    assert np.abs(snapshot.image[known] - landed[known]).max() <= 0.5 / 255 + 1e-6  # 8-bit PNG of the scene


def test_depth_estimates_the_modality_of_an_image(tmp_path, tiny_models):
    image = _image(np.random.default_rng(4), 32, 128)
    _png(tmp_path / "pano.png", image)
    result = run("depth", tmp_path / "pano.png", "-o", tmp_path / "rgbd", "--model", tiny_models["generate"], *FAST)
    assert result.exit_code == 0, result.output
    scene = Scene.open(tmp_path / "rgbd")
    snapshot = scene.load()
    assert np.array_equal(snapshot.image, image) and snapshot.modalities["depth"].shape == (32, 128, 1)
    assert snapshot.projection.full_circle and scene.record()["operation"] == "depth"


def test_paint_keeps_the_geometry_and_repaints(scene_dir):
    result = run("paint", scene_dir, "--prompt", "the fjord in winter", *FAST)
    assert result.exit_code == 0, result.output
    scene = Scene.open(scene_dir)
    assert np.array_equal(scene.load(2).modalities["depth"], scene.load(1).modalities["depth"])
    assert not np.array_equal(scene.load(2).image, scene.load(1).image)
    assert scene.record(2)["prompt"] == "the fjord in winter"


def test_edit_changes_only_inside_the_mask(scene_dir):
    mask = np.zeros((64, 128), np.uint8)
    mask[16:48, 32:96] = 255
    Image.fromarray(mask).save(scene_dir.parent / "mask.png")
    result = run("edit", scene_dir, "--mask", scene_dir.parent / "mask.png", "--prompt", "a boat", *FAST)
    assert result.exit_code == 0, result.output
    scene = Scene.open(scene_dir)
    inside = mask > 0
    for a, b in ((scene.load(1).image, scene.load(2).image),
                 (scene.load(1).modalities["depth"], scene.load(2).modalities["depth"])):
        assert np.array_equal(a[~inside], b[~inside]) and not np.array_equal(a[inside], b[inside])


# Bad input: one line each, before any model is loaded where possible ------------------------------

def test_refine_bad_inputs(tmp_path, scene_dir):
    one_line_error(run("refine", tmp_path / "nowhere", "-q"), "not a scene")
    one_line_error(run("refine", scene_dir, "--scale", "1.3", "-q"), "multiple of 8")
    one_line_error(run("refine", scene_dir, "--strength", "0", "-q"), "strength")
    one_line_error(run("refine", "-q"), "give a SCENE")
    one_line_error(run("refine", scene_dir, "--model", tmp_path / "no-model", "-q"), "no-model")
    one_line_error(run("refine", scene_dir, "--scheduler", "fastest", "-q"), "unknown scheduler")


def test_refine_outside_files_must_match(tmp_path, tiny_models):
    rng = np.random.default_rng(5)
    image = _png(tmp_path / "pano.png", _image(rng, 32, 128))
    depth = tmp_path / "depth.npy"
    np.save(depth, rng.random((32, 64)).astype(np.float32))
    one_line_error(run("refine", "--image", image, "--modality-file", depth, "-o", tmp_path / "x",
                       "--model", tiny_models["generate"], "-q"), "same size")
    one_line_error(run("refine", "--image", image, "-o", tmp_path / "x", "-q"), "--modality")
    one_line_error(run("refine", "--image", image, "--modality-file", tmp_path / "missing.npy", "-q"), "does not exist")


def test_outpaint_bad_inputs(tmp_path, scene_dir, tiny_models):
    _png(tmp_path / "photo.png", _image(np.random.default_rng(6), 32, 32))
    one_line_error(run("outpaint", scene_dir, "-q"), "nothing to outpaint")
    one_line_error(run("outpaint", scene_dir, "--height", "32", "-q"), "lower")
    one_line_error(run("outpaint", "--photo", tmp_path / "photo.png", "-o", tmp_path / "p", "-q"), "--prompt")
    one_line_error(run("outpaint", scene_dir, "--height", "96", "--method", "masked", *FAST),
                   "no masked-latent input", "--method blend")


def test_conversion_bad_inputs(tmp_path, scene_dir, tiny_models):
    _png(tmp_path / "odd.png", _image(np.random.default_rng(7), 30, 100))
    one_line_error(run("depth", tmp_path / "odd.png", "-o", tmp_path / "d", "-q"), "multiple of 8")
    one_line_error(run("depth", tmp_path / "missing.png", "-o", tmp_path / "d", "-q"), "does not exist")
    (tmp_path / "notes.txt").write_text("not an image")
    one_line_error(run("depth", tmp_path / "notes.txt", "-o", tmp_path / "d", "-q"), "not a readable image")
    one_line_error(run("paint", scene_dir, "--method", "masked", *FAST), "no masked-latent input")
    one_line_error(run("paint", "--modality-file", tmp_path / "notes.txt", "-o", tmp_path / "p",
                       "--model", tiny_models["generate"], "-q"), ".npy")


def test_edit_bad_inputs(tmp_path, scene_dir):
    Image.fromarray(np.full((32, 64), 255, np.uint8)).save(tmp_path / "small.png")
    Image.fromarray(np.zeros((64, 128), np.uint8)).save(tmp_path / "black.png")
    one_line_error(run("edit", scene_dir, "--mask", tmp_path / "small.png", "-q"), "resize the mask to 128x64")
    one_line_error(run("edit", scene_dir, "--mask", tmp_path / "black.png", "-q"), "nothing to edit")
    one_line_error(run("edit", scene_dir, "--mask", tmp_path / "none.png", "-q"), "does not exist")
    one_line_error(run("edit", scene_dir, "--mask", tmp_path / "black.png", "--layers", "sky", "-q"), "sky")


def test_refine_keeps_the_pano_glb_in_step_and_honours_glb(scene_dir, tmp_path):
    import trimesh

    sibling = scene_dir.with_name("fjord.glb")
    sibling.write_bytes(b"stale export of version 1")
    result = run("refine", scene_dir, "--scale", "1.5", "--steps", "1", "-q")
    assert result.exit_code == 0, result.output
    refreshed = trimesh.load(sibling, force="scene")  # a real GLB of the new, upsampled version
    assert sum(len(g.vertices) for g in refreshed.geometry.values()) >= 192 * 96
    other = tmp_path / "exports" / "v3.glb"
    result = run("edit", scene_dir, "--mask", _png(tmp_path / "m.png", np.full((96, 192), 255, np.uint8)),
                 "--glb", other, *FAST)
    assert result.exit_code == 0, result.output
    assert other.read_bytes()[:4] == b"glTF"


def test_a_scene_without_a_glb_beside_it_gets_none(scene_dir):
    assert run("refine", scene_dir, "--scale", "1", "--steps", "1", "-q").exit_code == 0
    assert not scene_dir.with_name("fjord.glb").exists()
