"""`worldgen pano --from SCENE[@vN]`: make a version's world again from what its scene.json records
(prompt, seed, size, span, sampling, backend and its settings). Same software, weights, device and
dtype give the same image; the record's provenance says which those were."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

from ..errors import UserInputError

# Backend settings a replay takes from the record; the device is this machine's choice (--device).
REPLAYED_SETTINGS = ("model", "base", "extra_model", "dtype", "scheduler", "window_batch", "modality", "region_mode")


def parse_source(text: str) -> tuple[Path, Optional[int]]:
    """'fjord' -> (fjord, None); 'fjord@v3' or 'fjord@3' -> (fjord, 3)."""
    folder, sep, version = str(text).rpartition("@")
    if not sep:
        return Path(text), None
    digits = version[1:] if version[:1] in ("v", "V") else version
    if not digits.isdigit() or not folder:
        raise UserInputError(f"--from {text!r}: write SCENE or SCENE@vN, e.g. --from fjord@v1")
    return Path(folder), int(digits)


def replay_plan(text: str) -> dict:
    """{"backend", "settings", "request", "version"} for the version named by ``text``: the request
    as `worldgen pano` takes it and the backend settings to load."""
    from ..scene.store import Scene

    folder, version = parse_source(text)
    scene = Scene.open(folder)
    record = scene.record(version) if version is not None else scene.record()
    if record.get("operation") != "pano":
        raise UserInputError(f"version {record.get('version')} of {folder} was made by `{record.get('operation')}`; "
                             f"--from replays versions made by `worldgen pano` (see `worldgen history {folder}`)")
    params = record.get("params", {})
    width, height = record["size"]
    request = {"prompt": record.get("prompt", ""), "negative_prompt": record.get("negative_prompt", ""),
               "seed": record.get("seed") or 0, "width": width, "height": height,
               "span": params.get("span_deg", record.get("projection", {}).get("span_deg", 360.0)),
               "steps": params.get("steps"), "guidance": params.get("guidance", 7.5), "preset": params.get("preset"),
               "scheduler": params.get("scheduler"), "regions": params.get("regions") or ()}
    backend = record.get("backend", {})
    settings = {k: v for k, v in backend.get("settings", {}).items() if k in REPLAYED_SETTINGS and v is not None}
    return {"backend": backend.get("name"), "settings": settings, "request": request,
            "version": record.get("version")}
