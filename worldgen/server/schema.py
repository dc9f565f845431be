"""The job request of `worldgen serve`: decoding, checking, and its JSON Schema.

A request is a ``worldgen.requests.WorldRequest`` (prompt, negative, size, span, seed, preset,
steps, guidance, modality, scheduler, regions, and where the world goes: name and dir, a folder
under the server's output root). The model's checks are worldgen.validation's, and the JSON
Schema served at ``GET /v1/schema`` and in ``/openapi.json`` is generated from the same model, so
the published schema and the server accept exactly the same requests (tests/server checks it).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Optional

from ..errors import UserInputError
from ..requests import WorldRequest, request_json_schema
from ..world.outputs import slug

if TYPE_CHECKING:
    from ..backend import GenerateRequest

WHERE = "request"


@dataclass(frozen=True)
class JobSpec:
    """A checked request: what to generate, with which preset, and where under the output root."""

    request: "GenerateRequest"
    preset: str
    name: str
    dir: tuple[str, ...] = ()

    def record(self) -> dict:
        """The request as the server understood it (defaults filled in), for the job's status."""
        r = self.request
        return {"prompt": r.prompt, "negative": r.negative_prompt, "size": [r.width, r.height],
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


def parse_job(body: Any, *, job_id: str, default_preset: Optional[str] = None) -> JobSpec:
    """Check a decoded request with ``WorldRequest`` (the model the schema is generated from);
    raises ``UserInputError`` with a one-line reason. ``default_preset``: for a request naming none
    (None: the published recipe)."""
    checked = WorldRequest.parse(body, WHERE)
    request = checked.to_generate_request(default_preset)
    return JobSpec(request=request, preset=request.preset, name=checked.name or f"{slug(checked.prompt)}-{job_id}",
                   dir=checked.folder())


# The JSON Schema -------------------------------------------------------------------------------

_PROGRESS = {"type": ["object", "null"], "properties": {
    "stage": {"type": "string"}, "done": {"type": "integer"}, "total": {"type": "integer"},
    "detail": {"type": "string"}}}

JOB_SCHEMA = {
    "title": "job status (GET /v1/jobs/{id}; also the 202 reply of POST /v1/jobs and each event of its stream)",
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
        "sha256": {"type": "object", "additionalProperties": {"type": "string"},
                   "description": "When done: each file's sha256 (a same-machine client checks its copy)."},
        "backend": {"type": "string"}, "device": {"type": ["string", "null"]},
        "request": {"type": "object"},
        "created": {"type": "number"}, "started": {"type": ["number", "null"]},
        "finished": {"type": ["number", "null"]},
    },
}
ERROR_SCHEMA = {"type": "object", "required": ["error"],
                "properties": {"error": {"type": "string", "description": "One line that names the fix."}}}


def request_schema() -> dict:
    """``GET /v1/schema``: the request's JSON Schema, generated from ``WorldRequest`` (so it refuses
    exactly what the server refuses), with the job and error replies under ``$defs``."""
    schema = request_json_schema()
    schema["title"] = "worldgen job request (POST /v1/jobs)"
    schema["$defs"] = {**schema.get("$defs", {}), "job": JOB_SCHEMA, "error": ERROR_SCHEMA}
    return schema
