"""Synthetic scenes with known geometry for the exporter and viewer tests.

``room``: a 360-degree panorama of a cylindrical wall (radius 4 m, 1 m above the eye) standing on
a floor 1.6 m below the eye, a pillar at 2 m in front of part of the wall (a depth step), and sky
(disparity 0) above the wall. Disparity is metric: d = 1 / (2 * disparity).
"""

from __future__ import annotations

import json
import math
import shutil
import subprocess
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest

from worldgen.geometry.rays import column_azimuths, row_slopes
from worldgen.scene.snapshot import Snapshot
from worldgen.geometry.projection import CylindricalProjection

WALL, PILLAR, FLOOR_Y, WALL_TOP = 4.0, 2.0, -1.6, 1.0
PILLAR_COLUMNS = (0.15, 0.25)  # fraction of the width
METRIC = {"disparity_scale": 2.0, "disparity_shift": 0.0, "near": 0.1, "far": 100.0, "eye_height": 1.6}

SKY_RGB = np.array([0.35, 0.6, 0.95], dtype=np.float32)
PILLAR_RGB = np.array([0.85, 0.15, 0.1], dtype=np.float32)
FLOOR_RGB = np.array([0.45, 0.35, 0.2], dtype=np.float32)


def room_layers(width: int, height: int, span: float = 360.0, pillar: bool = True, sky: bool = True):
    """(distance (inf = sky), labels, image) of the room, labels 0 sky, 1 wall, 2 pillar, 3 floor."""
    proj = CylindricalProjection(width, height, span)
    t = row_slopes(proj)[:, None] * np.ones((1, width))
    u = np.arange(width)[None, :] * np.ones((height, 1))
    lo, hi = (int(f * width) for f in PILLAR_COLUMNS)
    wall_r = np.where((u >= lo) & (u < hi) & pillar, PILLAR, WALL)
    floor_r = np.where(t < 0, FLOOR_Y / np.minimum(t, -1e-9), np.inf)
    r = np.minimum(wall_r, floor_r)
    labels = np.where(wall_r == PILLAR, 2, 1)
    labels = np.where(floor_r <= wall_r, 3, labels)
    sky_mask = (t * wall_r > WALL_TOP) & (labels != 3) & sky
    labels = np.where(sky_mask, 0, labels)
    r = np.where(sky_mask, np.inf, r)

    theta = column_azimuths(proj)[None, :] * np.ones((height, 1))
    stripes = 0.5 + 0.4 * np.sin(theta * 12.0)[..., None] * np.array([1.0, 0.6, 0.2])
    image = np.where((labels == 1)[..., None], stripes, 0.0)
    image = np.where((labels == 0)[..., None], SKY_RGB, image)
    image = np.where((labels == 2)[..., None], PILLAR_RGB, image)
    image = np.where((labels == 3)[..., None], FLOOR_RGB, image)
    return proj, r, labels, image.astype(np.float32)


def room_snapshot(width: int = 256, height: int = 64, span: float = 360.0, with_normals: bool = False,
                  depth: bool = True, pillar: bool = True, sky: bool = True) -> Snapshot:
    proj, r, labels, image = room_layers(width, height, span, pillar, sky)
    modalities = {}
    if depth:
        disparity = np.where(np.isfinite(r), 1.0 / (2.0 * r), 0.0)
        modalities["depth"] = disparity[..., None].astype(np.float32)
    if with_normals:
        modalities["normal"] = room_normals(proj, labels)
    return Snapshot(image=image, modalities=modalities, projection=proj, geometry=dict(METRIC), prompt="room")


def room_normals(proj, labels):
    """Camera-frame normals (x right, y up, z toward viewer) of the room: walls face the viewer,
    the floor faces up, the sky faces the viewer."""
    n = np.zeros(labels.shape + (3,), dtype=np.float32)
    n[..., 2] = 1.0
    n[labels == 3] = (0.0, 1.0, 0.0)
    return n


@pytest.fixture
def room():
    return room_snapshot()


# Reading GLBs back with pygltflib (independently of the exporter's own writer) --------------------

_COMPONENTS = {5126: np.float32, 5125: np.uint32, 5123: np.uint16, 5122: np.int16, 5121: np.uint8}
_WIDTH = {"SCALAR": 1, "VEC2": 2, "VEC3": 3, "VEC4": 4}


def glb_document(data: bytes):
    from pygltflib import GLTF2

    return GLTF2.load_from_bytes(data)


def accessor_array(gltf, index: int) -> np.ndarray:
    acc = gltf.accessors[index]
    view = gltf.bufferViews[acc.bufferView]
    blob = gltf.binary_blob()
    dtype = _COMPONENTS[acc.componentType]
    width = _WIDTH[acc.type]
    start = (view.byteOffset or 0) + (acc.byteOffset or 0)
    stride = (view.byteStride or 0) // np.dtype(dtype).itemsize or width
    arr = np.frombuffer(blob, dtype=dtype, count=(acc.count - 1) * stride + width, offset=start)
    if stride != width:  # interleaved or padded elements
        arr = np.lib.stride_tricks.as_strided(arr, (acc.count, width), (stride * arr.itemsize, arr.itemsize)).copy()
    if acc.normalized:  # glTF's normalized integers: unsigned n-bit -> value / (2**n - 1)
        arr = (arr / np.float64(np.iinfo(dtype).max)).astype(np.float32)
    return arr.reshape(acc.count, width) if width > 1 else arr


def glb_nodes(data: bytes) -> dict:
    """{node name: {"POSITION": ..., "NORMAL": ..., "TEXCOORD_0": ..., "faces": ..., "node": ..., "material": ...}}"""
    gltf = glb_document(data)
    out = {}
    for node in gltf.nodes:
        entry = {"node": node}
        if node.mesh is not None:
            prim = gltf.meshes[node.mesh].primitives[0]
            for name in ("POSITION", "NORMAL", "TEXCOORD_0"):
                index = getattr(prim.attributes, name)
                entry[name] = accessor_array(gltf, index) if index is not None else None
            entry["faces"] = accessor_array(gltf, prim.indices).reshape(-1, 3)
            entry["material"] = gltf.materials[prim.material] if prim.material is not None else None
        out[node.name] = entry
    return out


# The Khronos glTF validator (npm package gltf-validator) -----------------------------------------

VALIDATOR_ENV = "WORLDGEN_GLTF_VALIDATOR"
_REPO = __import__("pathlib").Path(__file__).resolve().parents[2]
_VALIDATE_JS = """
const validator = require(process.env.WORLDGEN_VALIDATOR_PACKAGE);
const chunks = [];
process.stdin.on('data', c => chunks.push(c));
process.stdin.on('end', async () => {
  const data = new Uint8Array(Buffer.concat(chunks));
  const report = await validator.validateBytes(data, {maxIssues: 50});
  process.stdout.write(JSON.stringify(report.issues));
});
"""


def find_gltf_validator():
    """(node executable, gltf-validator package folder) or None with the reason."""
    import os
    import shutil
    from pathlib import Path

    node = shutil.which("node") or shutil.which("nodejs")
    if node is None:
        return None, "node is not installed (Debian: apt-get install nodejs npm)"
    candidates = []
    if os.environ.get(VALIDATOR_ENV):
        candidates.append(Path(os.environ[VALIDATOR_ENV]))
    candidates.append(_REPO / ".tools" / "node_modules" / "gltf-validator")
    for candidate in candidates:
        if candidate.name == "node_modules":
            candidate = candidate / "gltf-validator"
        if (candidate / "package.json").is_file():
            return (node, candidate), None
    return None, (f"gltf-validator is not installed: run `mkdir -p .tools && cd .tools && npm install "
                  f"gltf-validator` in the repository, or set {VALIDATOR_ENV} to its folder")


@pytest.fixture(scope="session")
def gltf_validator():
    """A function GLB bytes -> the validator's issues dict; skips when the validator is absent."""
    import json
    import os
    import subprocess

    found, reason = find_gltf_validator()
    if found is None:
        pytest.skip(reason)
    node, package = found

    def validate(data: bytes) -> dict:
        env = dict(os.environ, WORLDGEN_VALIDATOR_PACKAGE=str(package))
        proc = subprocess.run([node, "-e", _VALIDATE_JS], input=data, capture_output=True, timeout=120, env=env)
        assert proc.returncode == 0, proc.stderr.decode(errors="replace")
        return json.loads(proc.stdout)

    return validate


@pytest.fixture(scope="session")
def kit():
    """This module: the scene builders, constants and GLB readers above, for the tests to call
    (with --import-mode=importlib a conftest cannot be imported by name)."""
    import sys

    return sys.modules[__name__]


# Headless Chromium over the DevTools protocol (the web-view and three.js render tests) -------------

CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--remote-debugging-port=0", "--window-size=800,600"]


class Chromium:
    """A headless Chromium with a fresh profile, driven over the DevTools websocket."""

    def __init__(self, profile: Path, extra_flags: tuple[str, ...] = ()) -> None:
        from websockets.sync.client import connect

        binary = shutil.which("chromium") or shutil.which("chromium-browser")
        self.proc = subprocess.Popen([binary, *CHROMIUM_FLAGS, *extra_flags, f"--user-data-dir={profile}",
                                      "about:blank"],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        port_file = profile / "DevToolsActivePort"
        deadline = time.monotonic() + 30
        while not (port_file.exists() and port_file.read_text().strip()):
            if time.monotonic() > deadline or self.proc.poll() is not None:
                raise RuntimeError("chromium did not start its DevTools endpoint")
            time.sleep(0.1)
        port = port_file.read_text().split()[0]
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/json", timeout=10) as response:
            page = next(t for t in json.load(response) if t["type"] == "page")
        self.ws = connect(page["webSocketDebuggerUrl"], max_size=None, open_timeout=10)
        self.next_id = 0

    def call(self, method: str, **params) -> dict:
        self.next_id += 1
        self.ws.send(json.dumps({"id": self.next_id, "method": method, "params": params}))
        while True:
            message = json.loads(self.ws.recv(timeout=60))
            if message.get("id") == self.next_id:
                return message.get("result", {})

    def evaluate(self, expression: str, timeout: float = 120):
        """The value of a JavaScript expression (promises awaited); JavaScript errors raise."""
        result = self.call("Runtime.evaluate", expression=expression, awaitPromise=True, returnByValue=True,
                           timeout=int(timeout * 1000))
        if "exceptionDetails" in result:
            raise RuntimeError(f"page error: {result['exceptionDetails']}")
        return result["result"].get("value")

    def screenshot(self) -> np.ndarray:
        import base64
        import io

        from PIL import Image

        data = base64.b64decode(self.call("Page.captureScreenshot", format="png")["data"])
        return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"), dtype=np.float64) / 255

    def close(self) -> None:
        try:
            self.ws.close()
        finally:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()




# The ideal view of a panorama world, in numpy ------------------------------------------------------

def camera_rays(width: int, height: int, fov_deg: float, yaw_deg: float) -> np.ndarray:
    """(height, width, 3) unit world directions of a pinhole camera looking at azimuth ``yaw``
    (degrees right of -z), level, y up, vertical field of view ``fov_deg``; rows top to bottom."""
    focal = (height / 2) / math.tan(math.radians(fov_deg) / 2)
    x = (np.arange(width) + 0.5 - width / 2) / focal
    y = -(np.arange(height) + 0.5 - height / 2) / focal
    dx, dy = np.meshgrid(x, y)
    yaw = math.radians(yaw_deg)
    fwd, right = np.array([math.sin(yaw), 0, -math.cos(yaw)]), np.array([math.cos(yaw), 0, math.sin(yaw)])
    rays = dx[..., None] * right + dy[..., None] * np.array([0.0, 1.0, 0.0]) + fwd
    return rays / np.linalg.norm(rays, axis=-1, keepdims=True)


def _bilinear(image: np.ndarray, col: np.ndarray, row: np.ndarray, wraps: bool) -> np.ndarray:
    h, w = image.shape[:2]
    c0, r0 = np.floor(col).astype(int), np.floor(row).astype(int)
    fc, fr = (col - c0)[..., None], (row - r0)[..., None]

    def at(r, c):
        c = np.mod(c, w) if wraps else np.clip(c, 0, w - 1)
        return image[np.clip(r, 0, h - 1), c]

    return ((1 - fr) * ((1 - fc) * at(r0, c0) + fc * at(r0, c0 + 1))
            + fr * ((1 - fc) * at(r0 + 1, c0) + fc * at(r0 + 1, c0 + 1)))


def ideal_view(snapshot, offset, width: int, height: int, fov_deg: float, yaw_deg: float, samples: int = 320):
    """What a camera ``offset`` metres from the eye should see of the RGB-D panorama: (colour
    (h, w, 3) in [0, 1], distance (h, w) metres), NaN where the panorama says nothing (rays that
    leave its vertical field).

    Each ray is marched outward (log-spaced distances); a point is inside the world once it lies
    at or beyond the panorama's distance in its own direction from the eye (everything behind a
    visible surface is solid), and the ray's colour is the panorama's there. From the eye that is
    the panorama sampled along the ray; off the eye a ray through a disocclusion ends in the
    hidden volume behind the nearer surface, no farther than the surfaces around it."""
    from worldgen.geometry.rays import project_points
    from worldgen.geometry.world import build_world

    world = build_world(snapshot)
    proj = world.projection
    rays = camera_rays(width, height, fov_deg, yaw_deg)
    origin = np.asarray(offset, dtype=np.float64)
    far = world.settings.far
    colour = np.full((height, width, 3), np.nan)
    dist = np.full((height, width), np.nan)
    image = np.asarray(snapshot.image, dtype=np.float64)
    if not np.any(origin):  # from the eye: every ray meets the panorama at its own pixel
        col, row, _ = project_points(rays, proj)
        inside = (row >= -0.5) & (row <= proj.height - 0.5)
        colour[inside] = _bilinear(image, col[inside], row[inside], proj.full_circle)
        depth = _bilinear(world.distance[..., None].astype(np.float64), col, row, proj.full_circle)[..., 0]
        dist[inside] = depth[inside] * np.linalg.norm(rays[inside] / np.hypot(rays[inside][:, 0],
                                                                              rays[inside][:, 2])[:, None], axis=1)
        return colour, dist
    alive = np.ones((height, width), bool)
    for s in np.geomspace(0.05, far * 1.5, samples):
        idx = np.nonzero(alive)
        if not len(idx[0]):
            break
        p = origin + rays[idx] * s
        col, row, r = project_points(p, proj)
        inside = (row >= -0.5) & (row <= proj.height - 0.5)
        if not proj.full_circle:
            inside &= (col >= -0.5) & (col <= proj.width - 0.5)
        ci = np.clip(np.round(row).astype(int), 0, proj.height - 1)
        cj = np.mod(np.round(col).astype(int), proj.width)
        hit = inside & (r >= world.distance[ci, cj])
        hi = (idx[0][hit], idx[1][hit])
        colour[hi] = _bilinear(image, col[hit], row[hit], proj.full_circle)
        dist[hi] = s
        alive[hi] = False
    return colour, dist


def decode_distance(rgba: np.ndarray, near: float = 0.05, far: float = 4000.0) -> np.ndarray:
    """The render page's 24-bit log-scale distance back to metres."""
    v = rgba[..., 0].astype(np.float64) * 65536 + rgba[..., 1].astype(np.float64) * 256 + rgba[..., 2]
    return near * np.exp(v / 16777215.0 * math.log(far / near))


THREE_ENV = "WORLDGEN_THREE"


def three_folder():
    """The npm package three (scripts/bootstrap.sh --test installs it into .tools; ``WORLDGEN_THREE``
    names another copy), or None."""
    import os

    candidates = [Path(os.environ[THREE_ENV])] if os.environ.get(THREE_ENV) else []
    for candidate in candidates + [_REPO / ".tools" / "node_modules" / "three"]:
        if (candidate / "build" / "three.module.js").is_file():
            return candidate
    return None
