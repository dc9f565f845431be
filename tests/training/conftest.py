"""Fixtures for the training tests: tiny random base models, small captioned image folders."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")

REPO = Path(__file__).resolve().parents[2]
EDGES_SOURCE = REPO / "plugins" / "worldgen-edges"


def write_images(folder: Path, count: int = 4, size: tuple[int, int] = (40, 56), seed: int = 0,
                 captions: bool = True) -> list[Path]:
    """``count`` random-but-structured RGB PNGs (blocks of colour, so edges exist) with sidecar captions."""
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    paths = []
    h, w = size
    for i in range(count):
        coarse = rng.random((4, 6, 3))
        img = np.kron(coarse, np.ones((h // 4 + 1, w // 6 + 1, 1)))[:h, :w]
        img = np.clip(img + 0.05 * rng.standard_normal(img.shape), 0, 1)
        path = folder / f"img{i}.png"
        Image.fromarray((img * 255).astype(np.uint8)).save(path)
        if captions:
            path.with_suffix(".txt").write_text(f"a test picture number {i}\n", encoding="utf-8")
        paths.append(path)
    return paths


@pytest.fixture(scope="session")
def make_images():
    """``write_images`` for tests that need their own folder layout."""
    return write_images


def write_depth_files(images: list[Path], seed: int = 0) -> None:
    """A smooth random disparity map in [0, 1] beside each image (``NAME.depth.npy``)."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    for path in images:
        with Image.open(path) as img:
            w, h = img.size
        yy, xx = np.mgrid[0:h, 0:w] / max(h, w)
        a, b, c = rng.random(3)
        depth = np.clip(0.5 + 0.4 * np.sin(6 * a * xx + 4 * b * yy + 6 * c), 0, 1).astype(np.float32)
        np.save(path.with_name(path.stem + ".depth.npy"), depth)


@pytest.fixture(scope="session")
def make_depth_files():
    return write_depth_files


@pytest.fixture
def image_folder(tmp_path) -> Path:
    folder = tmp_path / "data"
    write_images(folder)
    return folder


@pytest.fixture(scope="session")
def edges_installed():
    """The example third-party plugin, installed like any plugin (entry point), so the registry finds it."""
    try:
        import worldgen_edges  # noqa: F401
    except ImportError:
        subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "--no-build-isolation", "-q",
                        str(EDGES_SOURCE)], check=True)
        import importlib

        importlib.invalidate_caches()
        from worldgen.registry import get_registry

        get_registry.cache_clear()
    from worldgen.registry import get_registry

    return get_registry().modality("edges")
