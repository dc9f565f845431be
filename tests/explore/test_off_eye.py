"""Issue 22: ``worldgen view --screenshot --position X,Y,Z`` renders from off the eye."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from worldgen.errors import UserInputError
from worldgen.explore.off_eye import parse_position

from .conftest import ROOM

NO_RENDERER = "headless rendering is not available here"


def shoot(scene, out, *extra):
    proc = subprocess.run([sys.executable, "-m", "worldgen.cli.main", "view", str(scene), "--screenshot", str(out),
                           "--size", "160x120", "--yaw", "72", "--fov", "60", *extra],
                          capture_output=True, text=True, timeout=240)
    if proc.returncode != 0 and NO_RENDERER in proc.stdout + proc.stderr:
        pytest.skip("this machine cannot render offscreen (open3d needs a Vulkan driver)")
    assert proc.returncode == 0, proc.stderr[-2000:]
    return np.asarray(Image.open(out).convert("RGB")).astype(int)


def test_walking_toward_the_pillar_makes_it_bigger(tmp_path):
    from worldgen.scene.store import Scene

    Scene.create(tmp_path / "room", ROOM.room_snapshot(256, 64), operation="test", prompt="room", seed=0,
                 backend="test", backend_settings={}, modality="depth")
    # The pillar stands 2 m away at azimuth 54-90 degrees; step 1 m toward it (azimuth 72).
    toward = np.array([np.sin(np.radians(72)), 0.0, -np.cos(np.radians(72))])
    at_eye = shoot(tmp_path / "room", tmp_path / "eye.png")
    closer = shoot(tmp_path / "room", tmp_path / "closer.png", "--position", ",".join(f"{v:.4f}" for v in toward))

    def red(image):
        return ((image[..., 0] > 150) & (image[..., 1] < 90) & (image[..., 2] < 90)).mean()

    assert red(at_eye) > 0.05
    assert red(closer) > 1.5 * red(at_eye)  # at half the distance it fills about twice the width


@pytest.mark.parametrize("text", ["1,2", "a,b,c", "1,2,nan", "0,0,5000"])
def test_bad_positions_name_the_fix(text):
    with pytest.raises(UserInputError, match="X,Y,Z in metres"):
        parse_position(text)


def test_position_needs_a_screenshot(tmp_path):
    from click.testing import CliRunner

    from worldgen.cli.main import cli

    result = CliRunner().invoke(cli, ["view", str(tmp_path), "--position", "1,0,0"])
    assert result.exit_code != 0 and "--screenshot" in result.output
