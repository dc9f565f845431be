"""Issue 22: a world grown around a photo: proper perspective -> cylinder resampling, depth by
channel-wise inpainting, the rest generated around it, colour matched across its edge."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from worldgen.errors import UserInputError
from worldgen.explore.inpaint import InpaintSettings
from worldgen.explore.photo import (exif_hfov, match_edge_colour, photo_camera, photo_fov,
                                    photo_on_cylinder, world_from_photo)
from worldgen.geometry.projection import CylindricalProjection
from worldgen.reproject import rays as R
from worldgen.reproject.sample import bilinear

from .conftest import EditSpy, assert_kept

HFOV = 60.0


def smooth_photo(width: int = 96, height: int = 64) -> np.ndarray:
    y, x = np.mgrid[0:height, 0:width] / np.array([height, width])[:, None, None]
    return np.stack([0.2 + 0.6 * x, 0.3 + 0.4 * np.sin(3 * y + 2 * x) ** 2, 0.8 - 0.5 * y], -1).astype(np.float32)


def back_to_photo(image: np.ndarray, known: np.ndarray, projection, width: int, height: int):
    """The panorama seen again through the photo's camera: (colours, seen) per photo pixel."""
    camera = photo_camera(projection, HFOV)
    column, row, _ = R.to_cylinder(R.perspective_rays(camera, width, height), projection)
    seen = bilinear(known.astype(np.float32)[..., None], column, row, True)[..., 0] > 0.999
    return bilinear(image, column, row, True), seen


def test_the_photo_is_resampled_not_pasted_and_survives_a_round_trip():
    photo = smooth_photo()
    projection = CylindricalProjection(512, 128)  # about one panorama pixel per photo pixel at 60 degrees
    image, known = photo_on_cylinder(photo, HFOV, projection)
    cols = np.nonzero(known.any(axis=0))[0]
    assert abs(cols.mean() - 255.5) < 1.0  # centred on the middle column
    width_deg = (cols.max() - cols.min() + 1) * 360 / 512
    assert abs(width_deg - HFOV) < 1.5  # spans the photo's field of view, not its pixel count
    # The footprint is not a rectangle: a pinhole's top and bottom edges bow toward the horizon at
    # the photo's sides (same height, farther away horizontally): a paste would keep it rectangular.
    rows_centre, rows_side = known[:, 256].sum(), known[:, cols.min() + 1].sum()
    assert rows_side < rows_centre - 4
    again, seen = back_to_photo(image, known, projection, 96, 64)
    assert seen.mean() > 0.8
    error = np.abs(again[seen] - photo[seen])
    assert error.mean() < 0.01 and error.max() < 0.06  # resampling error of a smooth image only


def test_grown_world_keeps_the_photo_and_masks_the_rest(inpaint_backend):
    photo = smooth_photo()
    spy = EditSpy(inpaint_backend)
    world = world_from_photo(spy, photo, HFOV, 256, 64, 360.0, InpaintSettings(prompt="a room", steps=2))
    projection = CylindricalProjection(256, 64)
    image, known = photo_on_cylinder(photo, HFOV, projection)
    assert len(spy.calls) == 1
    call = spy.calls[0]
    assert np.array_equal(call["mask"], ~known) and call["layers"] == "both"
    assert_kept(call)  # the photo and its estimated depth reach the result untouched
    assert np.array_equal(world.image[known], image[known])  # the photo's pixels, bit for bit
    assert world.projection.full_circle and world.modalities["depth"].shape == (64, 256, 1)
    assert not np.array_equal(world.image[~known], np.zeros_like(world.image[~known]))


class ShiftedWorld:
    """A stand-in model that generates the photo's own colours, darker by 0.3, around it."""

    modality = "depth"

    def edit(self, request, snapshot, progress=None):
        fill = np.clip(snapshot.image[~request.mask].mean(axis=0) - 0.3, 0, 1)  # the photo's mean, darker
        image = np.where(request.mask[..., None], fill, snapshot.image).astype(np.float32)
        return replace(snapshot, image=image)


def test_colours_are_matched_across_the_edge_and_fade_away():
    photo = smooth_photo()
    projection = CylindricalProjection(256, 64)
    image, known = photo_on_cylinder(photo, HFOV, projection)
    grown = ShiftedWorld().edit(type("R", (), {"mask": ~known})(), replace_snapshot(image, projection))
    matched = match_edge_colour(grown.image, known, True)
    assert np.array_equal(matched[known], grown.image[known])
    edge_col = np.nonzero(known[32])[0].min() - 2
    photo_edge = image[32, edge_col + 3]
    before = np.abs(grown.image[32, edge_col] - photo_edge).mean()
    after = np.abs(matched[32, edge_col] - photo_edge).mean()
    assert after < before / 3  # the step across the edge is gone
    far = 5  # opposite side of the panorama from the photo: untouched
    assert np.allclose(matched[32, far], grown.image[32, far])


def replace_snapshot(image, projection):
    from worldgen.scene.snapshot import Snapshot

    return Snapshot(image=image, modalities={}, projection=projection)


def test_field_of_view_comes_from_exif_or_fov(tmp_path):
    from PIL import Image

    img = Image.fromarray((smooth_photo() * 255).astype(np.uint8))
    exif = Image.Exif()
    exif[0xA405] = 28  # FocalLengthIn35mmFilm
    img.save(tmp_path / "exif.jpg", exif=exif)
    img.save(tmp_path / "bare.jpg")
    assert exif_hfov(tmp_path / "exif.jpg") == pytest.approx(65.47, abs=0.05)
    assert photo_fov(tmp_path / "exif.jpg", None) == pytest.approx(65.47, abs=0.05)
    assert photo_fov(tmp_path / "bare.jpg", 50) == 50.0
    with pytest.raises(UserInputError, match="pass --fov"):
        photo_fov(tmp_path / "bare.jpg", None)
    with pytest.raises(UserInputError, match="between 1 and 170"):
        photo_fov(tmp_path / "bare.jpg", 200)


def test_pano_image_command_makes_a_scene(tiny_models, tmp_path):
    from click.testing import CliRunner
    from PIL import Image

    from worldgen.cli.main import cli
    from worldgen.scene.store import Scene

    Image.fromarray((smooth_photo() * 255).astype(np.uint8)).save(tmp_path / "photo.png")
    result = CliRunner().invoke(cli, ["pano", "a room", "--image", str(tmp_path / "photo.png"), "--fov", "60",
                                      "--model", str(tiny_models["inpaint"]), "--size", "256x64", "--steps", "2",
                                      "-o", str(tmp_path / "room.glb"), "-q"])
    assert result.exit_code == 0, result.output
    record = Scene.open(tmp_path / "room").record()
    assert record["operation"] == "pano-image" and record["params"]["fov"] == 60.0
    assert (tmp_path / "room.glb").is_file()


def test_the_photo_lands_where_it_is_asked_to():
    photo = smooth_photo()
    projection = CylindricalProjection(512, 128)
    _, known = photo_on_cylinder(photo, HFOV, projection, yaw_deg=90.0)
    cols = np.nonzero(known.any(axis=0))[0]
    assert abs(cols.mean() + 0.5 - 128) < 1.0  # centred on azimuth 90 degrees: column 128 of 512


@pytest.mark.parametrize("orientation", range(1, 9))
def test_photos_are_read_the_way_up_their_exif_says(tmp_path, orientation):
    from PIL import Image, ImageOps

    from worldgen.explore.photo import read_photo

    pixels = (np.random.default_rng(orientation).random((6, 10, 3)) * 255).astype(np.uint8)
    exif = Image.Exif()
    exif[0x0112] = orientation
    exif[0xA405] = 28
    Image.fromarray(pixels).save(tmp_path / "p.png", exif=exif)
    with Image.open(tmp_path / "p.png") as img:
        expected = np.asarray(ImageOps.exif_transpose(img).convert("RGB"))
    assert np.array_equal(np.round(read_photo(tmp_path / "p.png") * 255).astype(np.uint8), expected)
    displayed_width, displayed_height = expected.shape[1], expected.shape[0]
    fov = exif_hfov(tmp_path / "p.png")
    width_mm = 36.0 * displayed_width / max(displayed_width, displayed_height)
    assert fov == pytest.approx(2 * np.degrees(np.arctan(width_mm / 2 / 28)))
