"""What a scene version records about how it was made, beyond its backend settings: the software
versions, the device and dtype, the scheduler and window batch, and the weights' hashes (taken from
the model index, where `worldgen models add` stored them). Read-only facts; nothing is loaded here
(versions come from installed distributions' metadata, not by importing torch)."""

from __future__ import annotations

import platform
from importlib import metadata
from typing import Optional

PACKAGES = ("worldgen", "torch", "diffusers", "transformers")


def software() -> dict:
    found = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = None
    return found


def describe(backend_name: Optional[str], settings: dict, params: Optional[dict] = None) -> dict:
    """The provenance record of a version made by ``backend_name`` with ``settings`` (the backend's)
    for a request whose recorded ``params`` name its preset and scheduler."""
    params = params or {}
    record = {"software": software(), "backend": backend_name}
    for key in ("device", "dtype", "window_batch", "preset"):
        if key in settings:
            record[key] = settings[key]
    if "window_batch" in record and record["window_batch"] is None:
        record["window_batch"] = "auto"  # planned from free memory at run time (pin it with --window-batch)
    if "scheduler" in settings or "scheduler" in params:
        record["scheduler"] = _scheduler_used(settings, params)
    if backend_name == "procedural" and "device" not in record:
        record["device"] = "cpu"  # numpy on the CPU, whatever the machine has
    weights = _weights(settings.get("model"))
    if weights is not None:
        record["weights"] = weights
    return record


def _scheduler_used(settings: dict, params: dict) -> Optional[str]:
    """The request's scheduler, else the backend's, else the preset's (as the sampler chooses)."""
    chosen = params.get("scheduler") or settings.get("scheduler")
    if chosen:
        return chosen
    try:
        from .sampler.presets import resolve_sampling

        return resolve_sampling(params.get("preset") or settings.get("preset")).scheduler_name
    except Exception:  # an unknown preset name in an old record: say nothing rather than guess
        return None


def _weights(model) -> Optional[dict]:
    """{"model": registered name, "sha256": {file: hash}} when the model is registered, else None (an
    unregistered folder is not hashed on every run: register it with `worldgen models add`)."""
    if not model:
        return None
    try:
        from .backends.jointnet.registered import registered
    except ImportError:
        return None
    entry = registered(model)
    if entry is None:
        return {"model": str(model), "sha256": None, "note": "not registered: no hashes recorded"}
    return {"model": entry.name, "sha256": dict(entry.weights) or None, "license": entry.license}
