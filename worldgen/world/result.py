"""``World``: what every operation of the API returns - the layers, and how they were made.

A world made in memory (``pipe(prompt)``) is saved with ``save(folder)``; a world that is a scene
version (a task run on a scene) already lives on disk, and ``scene``/``version`` say where.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional


@dataclass
class World:
    """One world. ``snapshot`` holds the layers (``worldgen.layers.Snapshot``); the rest is what the
    scene manifest records about how it was made."""

    snapshot: Any
    operation: str = "pano"
    seed: Optional[int] = None
    backend: Optional[str] = None
    backend_settings: dict = field(default_factory=dict)
    modality: Optional[str] = None
    negative_prompt: str = ""
    params: dict = field(default_factory=dict)
    scene: Any = None  # the Scene this world is a version of, once saved
    version: Optional[int] = None
    report: dict = field(default_factory=dict)  # what the operation tells its caller beyond the manifest

    @property
    def prompt(self) -> str:
        return self.snapshot.prompt

    @property
    def size(self) -> tuple[int, int]:
        """(width, height) in pixels."""
        return self.snapshot.size

    @property
    def image(self):
        """The RGB panorama, (H, W, 3) uint8."""
        import numpy as np

        return (np.clip(self.snapshot.image, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)

    @property
    def depth(self):
        """Horizontal distance from the camera axis in metres, (H, W) float32 (sky pixels: the far
        distance), exactly as the exporters place points (``worldgen.geometry.build_world``)."""
        from ..geometry.world import build_world

        return build_world(self.snapshot).distance

    def layer(self, name: str):
        """A modality layer as generated, (H, W, C) float32 in its value range (depth: disparity)."""
        from ..errors import UserInputError

        if name not in self.snapshot.modalities:
            raise UserInputError(f"this world has no {name!r} layer; it has {', '.join(self.snapshot.modalities)}")
        return self.snapshot.modalities[name]

    def save(self, folder) -> Any:
        """Write this world as a new scene folder (as `worldgen pano` writes it) and return the Scene."""
        from ..scene.store import Scene

        scene = Scene.create(Path(folder), self.snapshot, operation=self.operation, prompt=self.prompt, seed=self.seed,
                             backend=self.backend or "unknown", backend_settings=self.backend_settings,
                             modality=self.modality or next(iter(self.snapshot.modalities), "depth"),
                             negative_prompt=self.negative_prompt, params=self.params)
        self.scene, self.version = scene, scene.current
        return scene

    def export(self, format: str, path, options: Optional[dict] = None, progress=None) -> Path:
        """Export to ``path`` with a registered exporter (glb, ply, splat, ...); returns the path."""
        from ..export_files import export_to_file

        path = Path(path)
        export_to_file(self.snapshot, format, path, options, progress=progress)
        return path

    @classmethod
    def from_scene(cls, scene, version: Optional[int] = None) -> "World":
        """A saved version of ``scene`` (a Scene or its folder) as a World."""
        from ..scene.store import Scene

        scene = scene if isinstance(scene, Scene) else Scene.open(Path(scene))
        record = scene.record(version)
        backend = record.get("backend") or {}
        world = cls(scene.load(version), operation=record.get("operation", "pano"), seed=record.get("seed"),
                    backend=backend.get("name"), backend_settings=dict(backend.get("settings") or {}),
                    modality=record.get("modality"), negative_prompt=record.get("negative_prompt") or "",
                    params=dict(record.get("params") or {}), scene=scene,
                    version=version if version is not None else scene.current)
        return world
