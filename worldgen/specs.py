"""Typed plugin specifications.

A plugin is one of these frozen objects, exposed through an entry point in one of the groups
below. worldgen's own backends, modalities and exporters register the same way a third-party
package does (see ``pyproject.toml``). Discovery checks the type with ``isinstance`` and the
fields with ``validate()``; anything malformed is skipped with a warning.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Optional

if TYPE_CHECKING:  # heavy imports only for type checkers; plugins load without numpy/torch at spec time
    import numpy as np

GROUP_BACKENDS = "worldgen.backends"
GROUP_MODALITIES = "worldgen.modalities"
GROUP_EXPORTERS = "worldgen.exporters"

GEOMETRY_ROLES = ("distance", "disparity", "normals", "none")
BACKEND_TASKS = ("generate", "refine", "outpaint", "estimate", "paint", "edit", "sphere", "layers")


def _check_name(name: Any) -> None:
    if not isinstance(name, str) or not name or not name.replace("-", "_").isidentifier() or name != name.lower():
        raise ValueError(f"plugin name {name!r} must be a lower-case identifier such as 'depth'")


def _check_callable(owner: str, what: str, value: Any, optional: bool = False) -> None:
    if value is None and optional:
        return
    if not callable(value):
        raise ValueError(f"{owner}: {what} must be callable, got {type(value).__name__}")


@dataclass(frozen=True)
class ModalitySpec:
    """Everything worldgen needs to know about one dense modality carried by JointNet's second branch.

    Arrays are float32, channels last. ``encode`` maps an (H, W, channels) array in ``value_range``
    to the (H, W, 3) image in [-1, 1] the RGB VAE expects; ``decode`` inverts it from the VAE's
    (H, W, 3) output in [-1, 1]. ``preview`` gives a human-viewable (H, W, 3) uint8 image.
    ``geometry`` says what the values mean for 3D: "distance" (metres), "disparity" (relative
    inverse depth, near = 1), "normals" (unit vectors, camera frame: x right, y up, z toward the
    viewer) or "none". ``estimator``, if given, computes the modality from an RGB image (H, W, 3) in
    [0, 1] (keyword options are estimator-specific) and is how training data is made when a
    modality file is missing.
    """

    name: str
    channels: int
    value_range: tuple[float, float]
    meaning: str
    geometry: str
    encode: Callable[["np.ndarray"], "np.ndarray"]
    decode: Callable[["np.ndarray"], "np.ndarray"]
    preview: Callable[["np.ndarray"], "np.ndarray"]
    estimator: Optional[Callable[..., "np.ndarray"]] = None

    kind = "modality"

    def validate(self) -> None:
        _check_name(self.name)
        if not isinstance(self.channels, int) or self.channels < 1:
            raise ValueError(f"modality {self.name}: channels must be a positive int")
        lo, hi = self.value_range
        if not lo < hi:
            raise ValueError(f"modality {self.name}: value_range must be (low, high) with low < high")
        if self.geometry not in GEOMETRY_ROLES:
            raise ValueError(f"modality {self.name}: geometry must be one of {GEOMETRY_ROLES}")
        for what in ("encode", "decode", "preview"):
            _check_callable(f"modality {self.name}", what, getattr(self, what))
        _check_callable(f"modality {self.name}", "estimator", self.estimator, optional=True)

    def summary(self) -> str:
        est = "estimator" if self.estimator else "no estimator"
        return f"{self.channels} ch, {self.geometry}, {est}"


@dataclass(frozen=True)
class ExporterSpec:
    """A pure function from a scene snapshot to file bytes; only the caller touches the disk.

    ``export(snapshot, options)`` takes a ``worldgen.scene.snapshot.Snapshot`` and a dict of
    exporter-specific options and returns the file's bytes. ``extension`` includes the dot.
    ``files`` (optional) is for formats made of several files (an equirect and its distance EXR,
    six cube faces): ``files(snapshot, options)`` returns {suffix: bytes}, the main file under
    ``""`` and each other one under the suffix that replaces the main file's extension
    (``".distance.exr"``); ``export`` must still return the main file alone.
    """

    name: str
    extension: str
    description: str
    export: Callable[[Any, dict], bytes]
    options: tuple[str, ...] = ()
    files: Optional[Callable[[Any, dict], dict]] = None

    kind = "exporter"

    def validate(self) -> None:
        _check_name(self.name)
        if not isinstance(self.extension, str) or not self.extension.startswith("."):
            raise ValueError(f"exporter {self.name}: extension must start with '.'")
        _check_callable(f"exporter {self.name}", "export", self.export)
        _check_callable(f"exporter {self.name}", "files", self.files, optional=True)


@dataclass(frozen=True)
class BackendSpec:
    """A generator of panorama layers.

    ``load(settings)`` returns a ``worldgen.backend.Backend`` (imported lazily so that listing
    plugins never imports torch). ``tasks`` lists what it can do (see ``BACKEND_TASKS``).
    ``available()``, if given, says whether it can run here without further set-up (weights
    present); the CLI uses it to choose the default backend.
    """

    name: str
    description: str
    load: Callable[[dict], Any]
    tasks: tuple[str, ...] = ("generate",)
    available: Optional[Callable[[], bool]] = None
    settings: tuple[str, ...] = field(default_factory=tuple)

    kind = "backend"

    def validate(self) -> None:
        _check_name(self.name)
        _check_callable(f"backend {self.name}", "load", self.load)
        _check_callable(f"backend {self.name}", "available", self.available, optional=True)
        unknown = set(self.tasks) - set(BACKEND_TASKS)
        if unknown:
            raise ValueError(f"backend {self.name}: unknown tasks {sorted(unknown)}; known: {BACKEND_TASKS}")


SPEC_TYPES = {
    GROUP_BACKENDS: BackendSpec,
    GROUP_MODALITIES: ModalitySpec,
    GROUP_EXPORTERS: ExporterSpec,
}
