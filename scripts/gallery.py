"""Make docs/gallery.md: procedural worlds as panoramas and as seen in three.js from their GLBs.

For each prompt: the 2048x512 panorama of `worldgen pano` (procedural backend, seed 0), and a
view rendered by three.js in headless Chromium from the world's GLB, from 5 m above the eye,
looking along the most open, most varied part of the panorama. Images go to docs/gallery/ as small JPEGs.

Needs Chromium, the `websockets` package and three.js in .tools (scripts/bootstrap.sh --test);
it reuses the three.js test page and the Chromium driver of tests/exporters.

    .venv/bin/python scripts/gallery.py [--prompts N]
"""

from __future__ import annotations

import argparse
import base64
import functools
import http.server
import importlib.util
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "docs" / "gallery"
PROMPTS = [
    "a misty fjord at dawn", "a desert canyon at noon", "a snowy pine forest at night",
    "a tropical beach with palm trees", "a futuristic city skyline at dusk", "rolling green hills under a cloudy sky",
    "a volcanic island in a stormy sea", "inside a gothic cathedral",
    "a quiet lake among snowy mountains at sunset", "sand dunes in the desert under a starry night",
    "red mesas on a plateau in the afternoon", "a green valley with a river on a foggy morning",
]
VIEW_W, VIEW_H, FOV, RISE_M = 640, 360, 70.0, 5.0
SWIFTSHADER = ("--use-angle=swiftshader", "--enable-unsafe-swiftshader", "--ignore-gpu-blocklist")


def _kit():
    """tests/exporters/conftest.py: the Chromium driver and the three.js folder finder."""
    spec = importlib.util.spec_from_file_location("exporter_kit", REPO / "tests" / "exporters" / "conftest.py")
    kit = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(kit)
    return kit


def make_world(prompt: str):
    """(snapshot, GLB bytes, seconds) as `worldgen pano` makes them, in this process."""
    from worldgen.backend import GenerateRequest
    from worldgen.export_files import export_bytes
    from worldgen.registry import get_registry

    start = time.perf_counter()
    backend = get_registry().backend("procedural").load({})
    snapshot = backend.generate(GenerateRequest(prompt=prompt, width=2048, height=512, seed=0))
    glb = export_bytes(snapshot, "glb")
    return snapshot, glb, time.perf_counter() - start


def best_yaw(image: np.ndarray, distance: np.ndarray) -> float:
    """The azimuth (degrees) of the 70-degree window that sees farthest along the horizon and
    has the most varied colours: an open view rather than a wall."""
    h, width = distance.shape
    horizon = np.log(np.clip(distance[h // 2 - h // 16:h // 2 + 1], 1.0, 4000.0)).mean(axis=0)
    lum = image.mean(axis=2)
    score = horizon / np.log(4000.0) + 4.0 * lum.std(axis=0)
    window = int(width * FOV / 360)
    summed = np.convolve(np.concatenate([score, score[:window]]), np.ones(window), "valid")[:width]
    return float((np.argmax(summed) + window / 2) / width * 360.0) % 360.0


class ThreePage:
    """three.js on a loopback server, driven in headless Chromium."""

    def __init__(self, kit, root: Path) -> None:
        three = kit.three_folder()
        if three is None or not (shutil.which("chromium") or shutil.which("chromium-browser")):
            raise SystemExit("gallery: needs Chromium and three.js in .tools (scripts/bootstrap.sh --test)")
        (root / "three").symlink_to(three)
        shutil.copy(REPO / "tests" / "exporters" / "web" / "render.html", root / "render.html")
        handler = functools.partial(_Quiet, directory=str(root))
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        profile = root / "profile"
        profile.mkdir()
        self.browser = kit.Chromium(profile, SWIFTSHADER)
        self.browser.call("Page.enable")
        self.browser.call("Page.navigate", url=f"{self.url}/render.html")
        for _ in range(300):
            if self.browser.evaluate("window.ready === true"):
                return
            time.sleep(0.1)
        raise SystemExit("gallery: the three.js page did not load")

    def view(self, name: str, eye, yaw: float) -> np.ndarray:
        data = self.browser.evaluate(f"renderView('{self.url}/{name}', {list(map(float, eye))}, {yaw}, {FOV}, "
                                     f"{VIEW_W}, {VIEW_H}, 'color')", timeout=600)
        pixels = np.frombuffer(base64.b64decode(data), dtype=np.uint8).reshape(VIEW_H, VIEW_W, 4)
        return pixels[::-1, :, :3]

    def close(self) -> None:
        self.browser.close()
        self.server.shutdown()


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:
        pass


def slug(prompt: str) -> str:
    return "-".join(prompt.lower().split()[:7]).replace("'", "")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prompts", type=int, default=len(PROMPTS), help="how many of the prompts to render")
    args = parser.parse_args()
    kit = _kit()
    OUT.mkdir(parents=True, exist_ok=True)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        page = ThreePage(kit, Path(tmp))
        try:
            for prompt in PROMPTS[:args.prompts]:
                rows.append(render_one(page, kit, Path(tmp), prompt))
                print(f"gallery: {prompt}: {rows[-1]['seconds']:.1f} s", file=sys.stderr)
        finally:
            page.close()
    write_markdown(rows)


def render_one(page: ThreePage, kit, tmp: Path, prompt: str) -> dict:
    snapshot, glb, seconds = make_world(prompt)
    name = slug(prompt)
    (tmp / f"{name}.glb").write_bytes(glb)
    pano = Image.fromarray((np.clip(snapshot.image, 0, 1) * 255 + 0.5).astype(np.uint8))
    pano.resize((1024, 256), Image.LANCZOS).save(OUT / f"{name}-pano.jpg", quality=82)
    eye = np.asarray(kit.glb_document(glb).nodes[-1].translation) + [0.0, RISE_M, 0.0]
    yaw = best_yaw(snapshot.image[::4, ::4], snapshot.terrain.render_cylinder(512, 128).distance)
    view = page.view(f"{name}.glb", eye, yaw)
    Image.fromarray(view).save(OUT / f"{name}-view.jpg", quality=82)
    info = snapshot.geometry["procedural"]
    return {"prompt": prompt, "name": name, "seconds": seconds, "yaw": yaw, "info": info,
            "glb_mb": len(glb) / 1e6}


def write_markdown(rows: list) -> None:
    lines = ["# Gallery: the procedural backend", "",
             "Made by `scripts/gallery.py`: each prompt's 2048x512 panorama (`worldgen pano`, procedural backend, "
             "seed 0; shown at 1024x256), and a view of its GLB rendered by three.js in headless Chromium from "
             f"{RISE_M:.0f} m above the eye ({FOV:.0f}-degree field of view, facing the most open, most varied "
             "part of the panorama). The vocabulary is in [procedural.md](procedural.md).", ""]
    for row in rows:
        info = row["info"]
        what = (f"{info['landform']}, {info['biome']}, water: {info['water']}, {info['time']}, {info['weather']}"
                + (f", mist {info['mist']}" if info["mist"] else "") + (", snow" if info["snow"] else ""))
        lines += [f"## {row['prompt']}", "", f"*{what}*" + (f" - {info['note']}" if info["note"] else ""), "",
                  f"![panorama](gallery/{row['name']}-pano.jpg)", "",
                  f"![three.js view from {RISE_M:.0f} m above the eye, facing {row['yaw']:.0f} degrees]"
                  f"(gallery/{row['name']}-view.jpg)", "",
                  f"World and GLB in {row['seconds']:.1f} s in one process ({row['glb_mb']:.1f} MB GLB).", ""]
    (REPO / "docs" / "gallery.md").write_text("\n".join(lines))


if __name__ == "__main__":
    main()
