"""The job request of `worldgen serve`: decoding, checking, and its JSON Schema.

A request is a JOBS line of `worldgen batch` (name, prompt, seed, size, span, steps, guidance,
negative, modality, scheduler) plus what a server adds: ``preset``, ``regions`` and ``dir`` (a
folder under the server's output root). The batch fields are checked by ``batch.job_from_fields``
and the values by ``GenerateRequest`` (exactly what `worldgen pano` and `worldgen batch` use), the
preset by ``get_preset`` and regions by ``parse_region``/``Region.from_dict``: nothing here is a
second copy of those rules. ``JOB_REQUEST_SCHEMA`` describes the same fields for clients; the tests
check that it and ``parse_job`` agree.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

from ..backend import MAX_PROMPT_CHARS, MAX_SIDE_PX, GenerateRequest
from ..batch import NAME_RE, PROMPT_FIELDS, SEED_LIMIT, JobDefaults, check_known_fields, job_from_fields, slug
from ..errors import UserInputError
from ..sampler.presets import DEFAULT_PRESET, PRESETS, get_preset

SERVER_FIELDS = ("preset", "regions", "dir")
FIELDS = PROMPT_FIELDS + SERVER_FIELDS
MAX_REGIONS = 32
MAX_DIR_DEPTH = 8
WHERE = "request"


@dataclass(frozen=True)
class JobSpec:
    """A checked request: what to generate, with which preset, and where under the output root."""

    request: GenerateRequest
    preset: str
    name: str
    dir: tuple[str, ...] = ()

    def record(self) -> dict:
        """The request as the server understood it (defaults filled in), for the job's status."""
        r = self.request
        return {"prompt": r.prompt, "negative": r.negative_prompt, "size": f"{r.width}x{r.height}",
                "span": r.span_deg, "steps": r.steps, "guidance": r.guidance, "seed": r.seed,
                "modality": r.modality, "scheduler": r.scheduler, "preset": self.preset,
                "regions": [region.to_record() for region in r.regions], "name": self.name,
                "dir": "/".join(self.dir)}


def decode_json(body: bytes) -> Any:
    """JSON from a request body; NaN, infinities and overlong numbers are refused (JSON has none,
    and a NaN would end up in scene.json)."""

    def refuse_constant(name: str):
        raise ValueError(f"{name} is not a JSON number")

    def finite_float(text: str) -> float:
        value = float(text)
        if not math.isfinite(value):
            raise ValueError(f"{text} is out of range")
        return value

    try:
        return json.loads(body.decode("utf-8"), parse_constant=refuse_constant, parse_float=finite_float)
    except UnicodeDecodeError:
        raise UserInputError("the body is not UTF-8 text; send a JSON object") from None
    except RecursionError:
        raise UserInputError("the JSON is nested too deeply; send a flat object") from None
    except ValueError as exc:  # JSONDecodeError, and the refusals above
        raise UserInputError(f"the body is not valid JSON ({' '.join(str(exc).split())}); send an object "
                             f"such as {{\"prompt\": \"a misty fjord at dawn\"}}") from None


def parse_job(body: Any, *, job_id: str, default_preset: str = DEFAULT_PRESET) -> JobSpec:
    """Check a decoded request; raises ``UserInputError`` with a one-line reason."""
    if not isinstance(body, dict):
        raise UserInputError(f"{WHERE}: the body must be a JSON object such as {{\"prompt\": \"a misty fjord\"}}, "
                             f"not {type(body).__name__}")
    check_known_fields(body, FIELDS, WHERE)
    preset = body.get("preset")
    if preset is None:
        preset = default_preset
    elif not isinstance(preset, str):
        raise UserInputError(f"{WHERE}: preset must be one of {', '.join(PRESETS)}, got {json.dumps(preset)}")
    preset = get_preset(preset).name
    regions = _regions(body.get("regions"))
    folder = _folder(body.get("dir"))

    fields = {key: body[key] for key in PROMPT_FIELDS if key in body}
    if fields.get("seed") is None:
        fields["seed"] = 0  # as `worldgen pano`: the same request makes the same world
    if fields.get("name") is None:
        fields.pop("name", None)
        if isinstance(fields.get("prompt"), str):  # otherwise job_from_fields says what is wrong
            fields["name"] = f"{slug(fields['prompt'])}-{job_id}"
    # Steps default to the preset's, as in `worldgen pano`.
    job = job_from_fields(fields, WHERE, defaults=JobDefaults(steps=get_preset(preset).steps))
    request = job.request()
    request.regions = regions
    return JobSpec(request=request, preset=preset, name=job.name, dir=folder)


def _regions(value: Any) -> list:
    from ..geometry.regions import Region, parse_region

    if value is None:
        return []
    if not isinstance(value, list):
        raise UserInputError(f"{WHERE}: regions must be a list such as [\"0:90=a lighthouse on a cliff\"]")
    if len(value) > MAX_REGIONS:
        raise UserInputError(f"{WHERE}: {len(value)} regions; give at most {MAX_REGIONS}")
    regions = []
    for item in value:
        if isinstance(item, str):
            regions.append(parse_region(item, allow_masks=False))
        elif isinstance(item, dict):
            if "mask" in item:
                raise UserInputError(f"{WHERE}: mask regions are not accepted by the server; give an azimuth "
                                     f"range, e.g. {{\"prompt\": \"a lighthouse\", \"azimuth\": [0, 90]}}")
            regions.append(Region.from_dict(item))
        else:
            raise UserInputError(f"{WHERE}: a region must be text like \"0:90=a lighthouse\" or an object with "
                                 f"prompt and azimuth, not {json.dumps(item)[:60]}")
    return regions


def _folder(value: Any) -> tuple[str, ...]:
    """``dir``: a relative folder under the output root, as NAME/NAME/...: no absolute paths, no
    ``..``, no hidden or empty parts (the output root's symlinks are checked when it is used)."""
    if value is None or value == "":
        return ()
    if not isinstance(value, str):
        raise UserInputError(f"{WHERE}: dir must be a string such as \"fjords/2026\", got {json.dumps(value)[:60]}")
    parts = tuple(value.split("/"))
    if len(parts) > MAX_DIR_DEPTH or not all(NAME_RE.fullmatch(part) for part in parts):
        raise UserInputError(f"{WHERE}: dir {value[:120]!r} must be a relative folder of at most {MAX_DIR_DEPTH} "
                             f"parts separated by '/', each 1-100 letters, digits, '.', '_' or '-' starting with a "
                             f"letter or digit (no absolute paths, no '..')")
    return parts


# The JSON Schema -------------------------------------------------------------------------------

_NAME_PATTERN = f"^{NAME_RE.pattern}$"
_DEFAULTS = JobDefaults()
_PROGRESS = {"type": ["object", "null"], "properties": {
    "stage": {"type": "string"}, "done": {"type": "integer"}, "total": {"type": "integer"},
    "detail": {"type": "string"}}}

JOB_REQUEST_SCHEMA = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "$id": "https://worldgen.invalid/schema/v1/job-request.json",
    "title": "worldgen job request (POST /v1/jobs)",
    "description": "One world: a panorama from a prompt, written as a scene folder DIR/NAME/ and DIR/NAME.glb "
                   "under the server's output root. Unknown fields are refused.",
    "type": "object",
    "additionalProperties": False,
    "required": ["prompt"],
    "properties": {
        "prompt": {"type": "string", "minLength": 1, "maxLength": MAX_PROMPT_CHARS,
                   "description": "What the world shows."},
        "negative": {"type": "string", "maxLength": MAX_PROMPT_CHARS, "default": _DEFAULTS.negative,
                     "description": "Negative prompt."},
        "size": {"description": "WIDTHxHEIGHT in pixels, multiples of 8.", "default": "2048x512",
                 "oneOf": [{"type": "string", "pattern": "^\\s*[0-9]+\\s*[xX]\\s*[0-9]+\\s*$"},
                           {"type": "array", "minItems": 2, "maxItems": 2,
                            "items": {"type": "integer", "minimum": 8, "maximum": MAX_SIDE_PX, "multipleOf": 8}}]},
        "span": {"type": "number", "exclusiveMinimum": 0, "maximum": 360, "default": _DEFAULTS.span_deg,
                 "description": "Horizontal span in degrees."},
        "steps": {"type": "integer", "minimum": 1, "maximum": 1000,
                  "description": "Denoising steps; default: the preset's (published 50, fast 14)."},
        "guidance": {"type": "number", "default": _DEFAULTS.guidance, "description": "Classifier-free guidance."},
        "seed": {"type": ["integer", "null"], "minimum": 0, "maximum": SEED_LIMIT - 1, "default": 0},
        "modality": {"type": "string", "default": _DEFAULTS.modality,
                     "description": "The layer made with the RGB; the server's model decides which it can make."},
        "scheduler": {"type": ["string", "null"], "default": None,
                      "description": "ddim, dpm++, unipc, euler, euler-a, ddpm, pndm; default: the preset's."},
        "preset": {"type": ["string", "null"], "enum": [*PRESETS, None],
                   "description": "Sampling recipe; default: the one the server was started with."},
        "regions": {"type": "array", "maxItems": MAX_REGIONS, "default": [],
                    "description": "Region prompts, as `worldgen pano --region` (mask regions are refused).",
                    "items": {"oneOf": [
                        {"type": "string", "description": "A:B[@E1:E2][*W]=PROMPT"},
                        {"type": "object", "additionalProperties": False, "required": ["prompt", "azimuth"],
                         "properties": {
                             "prompt": {"type": "string", "minLength": 1, "maxLength": MAX_PROMPT_CHARS},
                             "azimuth": {"type": "array", "items": {"type": "number", "minimum": 0, "maximum": 360},
                                         "minItems": 2, "maxItems": 2},
                             "elevation": {"type": "array", "items": {"type": "number", "minimum": -90,
                                                                      "maximum": 90},
                                           "minItems": 2, "maxItems": 2},
                             "weight": {"type": "number", "exclusiveMinimum": 0},
                             "feather": {"type": "number", "minimum": 0}}}]}},
        "name": {"type": ["string", "null"], "pattern": _NAME_PATTERN,
                 "description": "Scene folder name; default: a slug of the prompt and the job id."},
        "dir": {"type": ["string", "null"],
                "pattern": f"^({NAME_RE.pattern})(/({NAME_RE.pattern})){{0,{MAX_DIR_DEPTH - 1}}}$",
                "description": "Folder under the output root; default: the root itself."},
    },
    "$defs": {
        "job": {
            "title": "job status (GET /v1/jobs/{id}; also the 202 reply of POST /v1/jobs)",
            "type": "object",
            "required": ["id", "state", "revision", "name", "request"],
            "properties": {
                "id": {"type": "string"},
                "state": {"enum": ["queued", "running", "done", "failed", "cancelled"]},
                "revision": {"type": "integer", "description": "Grows on every change; pass as ?since= to wait."},
                "position": {"type": ["integer", "null"], "description": "Jobs ahead in the queue."},
                "progress": _PROGRESS,
                "error": {"type": ["string", "null"], "description": "One line, when the job failed."},
                "name": {"type": "string"}, "dir": {"type": "string"},
                "scene": {"type": "string", "description": "The scene folder, relative to the output root."},
                "glb": {"type": "string", "description": "The GLB, relative to the output root."},
                "files": {"type": "array", "items": {"type": "string"},
                          "description": "When done: every file of the world, relative to DIR; each is served at "
                                         "/v1/jobs/{id}/files/{file}."},
                "backend": {"type": "string"}, "device": {"type": ["string", "null"]},
                "request": {"type": "object"},
                "created": {"type": "number"}, "started": {"type": ["number", "null"]},
                "finished": {"type": ["number", "null"]},
            },
        },
        "error": {"type": "object", "required": ["error"],
                  "properties": {"error": {"type": "string", "description": "One line that names the fix."}}},
    },
}
