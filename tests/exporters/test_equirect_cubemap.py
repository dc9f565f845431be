"""Issue 22: ``export -f equirect`` (2:1 PNG + float32 metric distance EXR + preview) and
``-f cubemap`` (cross + six OpenGL faces), from a band (uncovered rays transparent) or a sphere."""

from __future__ import annotations

import io
import math

import numpy as np
from PIL import Image

from worldgen.exporters._exr import decode_exr
from worldgen.scene.extra_layers import SphereLayers
from worldgen.registry import get_registry


def files(fmt: str, snapshot, **options) -> dict:
    return get_registry().exporter(fmt).files(snapshot, options)


def png(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)))


def test_equirect_of_a_band_lines_up_its_columns_and_leaves_the_caps_transparent(kit):
    snapshot = kit.room_snapshot(256, 64)
    out = files("equirect", snapshot)
    image = png(out[""])
    assert image.shape == (128, 256, 4)  # 2:1, one column per band column
    alpha = image[..., 3]
    assert (alpha[0] == 0).all() and (alpha[-1] == 0).all() and (alpha[64] == 255).all()
    # The equator row is the band's middle: the same colours (two band rows blended, both the same here).
    band = (snapshot.image[31] * 255 + 0.5).astype(int)
    assert np.abs(image[63, :, :3].astype(int) - band).max() <= 2
    z = decode_exr(out[".distance.exr"])["Z"]
    assert z.dtype == np.float32 and z.shape == (128, 256)
    lo, hi = (int(f * 256) for f in kit.PILLAR_COLUMNS)
    equator = z[63]  # latitude 0.7 degrees: distance along the ray ~ horizontal distance
    assert np.allclose(equator[lo + 1:hi - 1], kit.PILLAR, rtol=2e-3)
    assert np.allclose(equator[hi + 2:], kit.WALL, rtol=2e-3)
    assert np.isnan(z[0]).all()  # unknown, not a made-up distance
    sky_rows = np.isinf(z).any(axis=1)
    assert sky_rows[30:60].any()  # the sky above the wall: infinitely far
    preview = png(out[".distance_preview.png"])
    assert preview.shape == (128, 256, 4) and (preview[..., 3] == alpha).all()


def test_equirect_distance_follows_the_ray_not_the_floor_plan(kit):
    """Below the horizon the floor is at 1.6 m below the eye: distance along the ray = 1.6 / sin(-lat)."""
    out = files("equirect", kit.room_snapshot(512, 128))
    z = decode_exr(out[".distance.exr"])["Z"]
    h = z.shape[0]
    for row in (170, 180):
        lat = math.pi / 2 - math.pi * (row + 0.5) / h
        expected = 1.6 / math.sin(-lat)
        assert np.nanmedian(z[row]) == np.float32(np.nanmedian(z[row]))
        assert abs(float(np.nanmedian(z[row])) - expected) / expected < 0.02, (row, np.nanmedian(z[row]), expected)


def test_equirect_of_a_sphere_is_the_sphere(kit):
    snapshot = kit.room_snapshot(128, 32)
    rng = np.random.default_rng(0)
    colours = rng.random((64, 128, 3)).astype(np.float32)
    distance = rng.uniform(1, 50, (64, 128)).astype(np.float32)
    snapshot.sphere = SphereLayers(colours, distance, np.ones((64, 128), bool))
    out = files("equirect", snapshot)
    assert np.abs(png(out[""]).astype(int) - (colours * 255 + 0.5).astype(int)).max() <= 1  # RGB: nothing unknown
    assert np.array_equal(decode_exr(out[".distance.exr"])["Z"], distance)


def test_cubemap_faces_follow_the_opengl_convention(kit):
    snapshot = kit.room_snapshot(256, 64)
    out = files("cubemap", snapshot, face_size=32)
    assert set(out) == {"", ".px.png", ".nx.png", ".py.png", ".ny.png", ".pz.png", ".nz.png"}
    cross = png(out[""])
    assert cross.shape == (96, 128, 4)
    assert (cross[:32, :32, 3] == 0).all()  # an empty cell of the cross
    # The pillar (azimuth 54-90 degrees, from -z toward +x) shows on +x's right half (OpenGL's
    # cube faces are left-handed: +x's right vector is -z) and on the left of the cross's right cell.
    px = png(out[".px.png"])
    red = (px[..., 0] > 180) & (px[..., 1] < 80) & (px[..., 3] == 255)
    assert red[:, 18:].any() and not red[:, :14].any()
    right_cell = cross[32:64, 64:96]
    assert ((right_cell[..., 0] > 180) & (right_cell[..., 1] < 80))[:, :14].any()
    # Straight up and down the band has nothing: those faces' centres are transparent.
    for face in (".py.png", ".ny.png"):
        assert png(out[face])[16, 16, 3] == 0


def test_export_command_writes_the_companion_files(kit, tmp_path):
    from click.testing import CliRunner

    from worldgen.cli.main import cli as main
    from worldgen.scene.store import Scene

    Scene.create(tmp_path / "room", kit.room_snapshot(128, 32), operation="test", prompt="room", seed=0,
                 backend="test", backend_settings={}, modality="depth")
    result = CliRunner().invoke(main, ["export", str(tmp_path / "room"), "-f", "equirect", "-q"])
    assert result.exit_code == 0, result.output
    assert {p.name for p in tmp_path.iterdir()} >= {"room.equirect.png", "room.equirect.distance.exr",
                                                    "room.equirect.distance_preview.png"}
    result = CliRunner().invoke(main, ["export", str(tmp_path / "room"), "-f", "cubemap", "-o",
                                       str(tmp_path / "sky.png"), "-O", "face_size=16"])
    assert result.exit_code == 0, result.output
    assert all((tmp_path / f"sky.{face}.png").is_file() for face in ("px", "nx", "py", "ny", "pz", "nz"))
    result = CliRunner().invoke(main, ["export", str(tmp_path / "room"), "-f", "cubemap", "-O", "face_size=2"])
    assert result.exit_code != 0 and "face_size" in result.output


def test_yaw_turns_the_equirect(kit):
    snapshot = kit.room_snapshot(256, 64)
    plain = png(files("equirect", snapshot, preview=False, distance=False)[""])
    turned = png(files("equirect", snapshot, preview=False, distance=False, yaw=90.0)[""])
    assert np.array_equal(turned, np.roll(plain, -64, axis=1))  # a quarter turn: 64 of 256 columns
