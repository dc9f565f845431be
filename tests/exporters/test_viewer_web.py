"""`worldgen view --web`: viser serves the world; headless Chromium shows it from inside.

Chromium runs headless with software WebGL and is driven over the DevTools protocol (its
``--screenshot`` flag fires before the page has opened its websocket and drawn anything).
"""

from __future__ import annotations

import shutil
import socket
import time

import numpy as np
import pytest

from worldgen.scene.store import Scene

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def near(image: np.ndarray, rgb, tolerance=0.15) -> float:
    """Fraction of pixels within ``tolerance`` of a colour (the browser's colour management shifts
    colours a little; the palette's colours are far apart)."""
    return float((np.abs(image - np.asarray(rgb)).max(axis=-1) < tolerance).mean())


@pytest.fixture
def web_scene(kit, tmp_path):
    path = tmp_path / "room"
    Scene.create(path, kit.room_snapshot(256, 64), operation="test", prompt="room", seed=0, backend="test",
                 backend_settings={}, modality="depth")
    return path


def web_view_screenshot(kit, source, tmp_path, ready):
    """Serve ``source`` with ``start_web``, open it in headless Chromium and return the first
    screenshot (floats in [0, 1]) for which ``ready`` holds, taken again a second later so the
    last frame has settled (or the last one after 90 s)."""
    pytest.importorskip("viser", reason="the web view needs viser: pip install 'worldgen[web]'")
    pytest.importorskip("websockets", reason="viser's websockets package drives Chromium here")
    if not (shutil.which("chromium") or shutil.which("chromium-browser")):
        pytest.skip("Chromium is not installed (Debian: apt-get install chromium)")
    from worldgen.viewer.window import start_web

    port = free_port()
    server = start_web(source, port=port)
    try:
        assert server.get_host() == "127.0.0.1"  # local only unless asked otherwise
        profile = tmp_path / "chromium-profile"
        profile.mkdir()
        browser = kit.Chromium(profile)
        try:
            browser.call("Page.enable")
            browser.call("Page.navigate", url=f"http://127.0.0.1:{port}/")
            image, deadline = None, time.monotonic() + 90
            while time.monotonic() < deadline:
                time.sleep(1.0)
                image = browser.screenshot()
                if ready(image):
                    time.sleep(1.0)
                    image = browser.screenshot()
                    break
        finally:
            browser.close()
    finally:
        server.stop()
    from PIL import Image

    Image.fromarray((image * 255).astype(np.uint8)).save(tmp_path / "web.png")  # for a person to look at
    return image


def test_web_view_shows_the_world_from_inside_in_headless_chromium(kit, web_scene, tmp_path):
    def ready(image):
        left = image[:, : image.shape[1] // 2]  # the controls panel sits on the right
        return near(left, kit.SKY_RGB) > 0.05 and near(left, kit.FLOOR_RGB) > 0.05

    image = web_view_screenshot(kit, web_scene, tmp_path, ready)
    assert image is not None and image.std() > 0.05, "the page stayed blank"
    left = image[:, : image.shape[1] // 2]
    # Inside the room looking down -z: sky above, the striped wall ahead, the floor below.
    rows = left.shape[0]
    assert near(left[: rows // 4], kit.SKY_RGB) > 0.3, "no sky at the top"
    assert near(left[-rows // 5:], kit.FLOOR_RGB) > 0.3, "no floor at the bottom"


FLAT_RGB = np.array([0.2, 0.6, 0.9])


def _flat_region(image):
    """Below the software-WebGL notice, left of the controls panel."""
    return image[image.shape[0] * 2 // 5:, : image.shape[1] // 2]


def test_web_view_shows_the_panorama_colours_unchanged(kit, tmp_path):
    """viser's canvas tone-maps meshes (ACES filmic): a flat world must still show its own colour
    (before the fix: mean error 16.8/255 for this colour, measured)."""
    snapshot = kit.room_snapshot(256, 64)
    snapshot.image = np.ones_like(snapshot.image) * FLAT_RGB.astype(np.float32)
    path = tmp_path / "flat"
    Scene.create(path, snapshot, operation="test", prompt="flat", seed=0, backend="test", backend_settings={},
                 modality="depth")
    image = web_view_screenshot(kit, path, tmp_path,
                                lambda image: near(_flat_region(image), FLAT_RGB, tolerance=0.1) > 0.99)
    region = _flat_region(image)
    assert near(region, FLAT_RGB, tolerance=0.1) > 0.99, "the world did not fill the view"
    error = float(np.abs(region - FLAT_RGB).mean()) * 255
    assert error <= 2.0, f"the web view shifts colours by {error:.2f}/255 on average"


def test_colour_compensation_inverts_three_js_aces():
    from worldgen.viewer.web_colours import (aces_filmic, compensated_texture, inverse_aces_filmic, linear_to_srgb,
                                      srgb_to_linear)

    grid = np.stack(np.meshgrid(*[np.linspace(0.02, 0.98, 9)] * 3), -1).reshape(-1, 3)
    back = linear_to_srgb(aces_filmic(inverse_aces_filmic(srgb_to_linear(grid))))
    error = np.abs(back - grid).max(axis=1)
    assert (error < 1e-6).mean() > 0.65  # ACES reaches most colours; saturated ones (a channel near 0) clip
    moderate = np.abs(grid - 0.5).max(axis=1) < 0.3
    assert error[moderate].max() < 1e-6
    texture, strength = compensated_texture(np.full((2, 2, 3), 255, np.uint8))
    assert strength > 10 and texture.max() == 255  # white needs more than an 8-bit base colour holds


def test_view_command_refuses_conflicting_modes(web_scene, tmp_path):
    from click.testing import CliRunner

    from worldgen.cli.main import cli

    result = CliRunner().invoke(cli, ["view", str(web_scene), "--web", "--screenshot", str(tmp_path / "a.png")])
    assert result.exit_code == 1 and "choose one" in result.output


def test_web_view_binds_to_localhost_by_default():
    from worldgen.cli.commands.view import view

    host = next(p for p in view.params if p.name == "host")
    assert host.default == "127.0.0.1"


def test_window_without_a_display_says_what_to_use_instead(web_scene, monkeypatch):
    from worldgen.errors import UserInputError
    from worldgen.viewer.window import open_window

    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    with pytest.raises(UserInputError, match="--screenshot"):
        open_window(web_scene)
