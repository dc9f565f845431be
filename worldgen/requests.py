"""The world request: one pydantic model of what a world is made from, and its JSON Schema.

``WorldRequest`` holds the fields of a text-to-world request (prompt, negative prompt, size, span,
seed, preset, steps, guidance, modality, scheduler, regions, and where the world goes: name, dir).
Every field is checked by the rules of ``worldgen.validation`` (``check``, ``check_span``,
``check_size``, ``check_prompt`` and their ``RULES``), and every field's JSON Schema is written
from the very same rule objects, so the schema that `worldgen serve` publishes
(``request_json_schema``) refuses exactly what the model refuses. Cross-field limits are written
out too: the pixel limit of a size becomes the exact staircase of (width, height) rectangles, and
pairs of angles must differ (``uniqueItems``). Where a rule cannot be said in JSON Schema the
request form is chosen so it need not be: sizes are ``[WIDTH, HEIGHT]`` (the CLI's "WxH" text is
converted by ``size_from_text`` first) and regions are objects (``region_from_text`` converts
``A:B=PROMPT``), with elevations in either order.

A checked request becomes today's ``GenerateRequest`` with ``to_generate_request``. Failures are
``UserInputError`` with one line, as everywhere in worldgen. Imports no torch.
"""

from __future__ import annotations

import difflib
import re
from typing import Annotated, Any, Callable, Optional

from pydantic import BaseModel, ConfigDict, Field, PlainValidator, ValidationError, WithJsonSchema

from .errors import UserInputError
from .validation import MAX_PIXELS, MAX_PROMPT_CHARS, MAX_SIDE_PX, RULES, Rule, check, check_prompt, check_size, check_span, parse_size_text

SIZE_MULTIPLE = 8          # the VAE's stride (check_size's default)
MAX_REGIONS = 32
MAX_DIR_DEPTH = 8
NAME = r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}"  # a scene folder: no '/', no leading '.', at most 100 characters
NAME_RE = re.compile(NAME)
MODALITY_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
SCHEDULER_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]{0,63}")  # "dpm++" is a scheduler's name
# JSON Schema patterns are searched, not matched: "^...$" would let a trailing newline through in
# Python's re (its "$" also matches before a final "\n"). "(?![\s\S])" is the true end of the text.
END = r"(?![\s\S])"


# Rule -> validator and schema ------------------------------------------------------------------

def rule_schema(rule: Rule, nullable: bool = False) -> dict:
    """The JSON Schema of a number checked by ``rule`` (exactly the values ``check`` accepts; JSON
    has no NaN or infinity, and draft 2020-12 counts 7.0 as an integer, as ``check`` does)."""
    schema: dict[str, Any] = {"type": ["integer" if rule.integer else "number"] + (["null"] if nullable else [])}
    if rule.lo is not None:
        schema["exclusiveMinimum" if rule.lo_open else "minimum"] = _number(rule.lo, rule.integer)
    if rule.hi is not None:
        schema["exclusiveMaximum" if rule.hi_open else "maximum"] = _number(rule.hi, rule.integer)
    schema["description"] = f"{rule.describe()}" + (f" ({rule.hint})" if rule.hint else "")
    return schema


def _number(value: float, integer: bool):
    return int(value) if integer or float(value).is_integer() else value


def _field(validate: Callable[[Any], Any], schema: dict):
    """An ``Annotated`` field type: ``validate`` alone decides (it raises ``UserInputError``), and
    ``schema`` is what the JSON Schema says of it."""
    return Annotated[Any, PlainValidator(validate), WithJsonSchema(schema)]


def _ruled(field: str, label: str, nullable: bool = False):
    rule = RULES[field]

    def validate(value):
        return None if value is None and nullable else check(field, value, label)

    return _field(validate, rule_schema(rule, nullable))


def _text(label: str, required: bool):
    """Prompt text: at most MAX_PROMPT_CHARS as sent, and (when required) not only whitespace."""

    def validate(value):
        if isinstance(value, str) and len(value) > MAX_PROMPT_CHARS:
            raise UserInputError(f"{label} has {len(value)} characters; keep it under {MAX_PROMPT_CHARS}")
        return check_prompt(value, required=required, label=label)

    schema: dict[str, Any] = {"type": "string", "maxLength": MAX_PROMPT_CHARS}
    if required:
        schema["pattern"] = r"\S"  # something besides whitespace (Python's \s is str.isspace, as strip uses)
    return _field(validate, schema)


def _named(label: str, regex: re.Pattern, longest: int, example: str, nullable: bool = True,
           signs: str = "'.', '_' or '-'"):
    def validate(value):
        if value is None and nullable:
            return None
        if not isinstance(value, str) or not regex.fullmatch(value):
            raise UserInputError(f"{label} {str(value)[:60]!r} must be 1-{longest} letters, digits, {signs}, "
                                 f"starting with a letter or digit, e.g. {example!r}")
        return value

    return _field(validate, {"type": ["string", "null"] if nullable else "string",
                             "pattern": f"^{regex.pattern}{END}"})


# Size: [WIDTH, HEIGHT] ------------------------------------------------------------------------------

def size_staircase(multiple: int = SIZE_MULTIPLE, max_side: int = MAX_SIDE_PX,
                   max_pixels: int = MAX_PIXELS) -> list[tuple[int, int]]:
    """The largest (width, height) rectangles whose union is every size with width * height <=
    max_pixels: for each band of heights, the widest width allowed."""
    corners: list[tuple[int, int]] = []
    for height in range(multiple, max_side + 1, multiple):
        width = min(max_side, max_pixels // height // multiple * multiple)
        if width < multiple:
            break
        if corners and corners[-1][0] == width:
            corners[-1] = (width, height)
        else:
            corners.append((width, height))
    return corners


def _size_schema() -> dict:
    side = {"type": "integer", "minimum": SIZE_MULTIPLE, "maximum": MAX_SIDE_PX, "multipleOf": SIZE_MULTIPLE}
    return {
        "type": "array", "minItems": 2, "maxItems": 2, "items": side,
        "description": f"[WIDTH, HEIGHT] in pixels: multiples of {SIZE_MULTIPLE}, each side at most {MAX_SIDE_PX}, "
                       f"at most {MAX_PIXELS} pixels in all (the anyOf lists the largest allowed rectangles)",
        "anyOf": [{"prefixItems": [{"maximum": w}, {"maximum": h}]} for w, h in size_staircase()],
    }


def _validate_size(value):
    if not isinstance(value, (list, tuple)) or len(value) != 2:
        raise UserInputError(f"size {str(value)[:60]} must be [WIDTH, HEIGHT], e.g. [2048, 512]")
    sides = [int(v) if isinstance(v, float) and v.is_integer() else v for v in value]  # 2048.0 is 2048 in JSON
    return check_size(*sides)


def size_from_text(text: Any, label: str = "size") -> list[int]:
    """The CLI's and JOBS files' "2048x512" (or [2048, 512]) as the request's [WIDTH, HEIGHT]."""
    return list(parse_size_text(text, label))


# Regions -----------------------------------------------------------------------------------------

def _angle_pair(rule: Rule, what: str):
    """Two different angles; ``uniqueItems`` is how JSON Schema says they differ."""
    bound = {"type": "number", "minimum": rule.lo, "maximum": rule.hi}
    return {"type": "array", "minItems": 2, "maxItems": 2, "items": bound, "uniqueItems": True,
            "description": f"two different {what} angles in degrees"}


AZIMUTH = Rule(0, 360)
ELEVATION = Rule(-90, 90)


def _validate_pair(rule: Rule, what: str):
    def validate(value):
        if not isinstance(value, (list, tuple)) or len(value) != 2:
            raise UserInputError(f"region {what} {str(value)[:60]} must be two angles, e.g. [0, 90]")
        a, b = (check(what, v, f"region {what}", rule) for v in value)
        if a == b:
            raise UserInputError(f"region {what} {a:g}:{b:g} is empty; give two different angles")
        return [a, b]

    return validate


class RegionRequest(BaseModel):
    """A region prompt over an azimuth range (degrees, rightwards; [300, 60] wraps through 0),
    optionally narrowed to an elevation band (two angles, either order)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    prompt: _text("a region's prompt", True)
    azimuth: _field(_validate_pair(AZIMUTH, "azimuth"), _angle_pair(AZIMUTH, "azimuth"))
    elevation: _field(lambda v: None if v is None else sorted(_validate_pair(ELEVATION, "elevation")(v)),
                      {**_angle_pair(ELEVATION, "elevation"), "type": ["array", "null"]}) = None
    weight: _ruled("weight", "region weight") = 1.0
    feather: _ruled("feather", "region feather", nullable=True) = None

    def to_region(self):
        from .geometry.regions import Region

        extra = {} if self.feather is None else {"feather": self.feather}
        return Region(prompt=self.prompt, azimuth=tuple(self.azimuth),
                      elevation=None if self.elevation is None else tuple(self.elevation), weight=self.weight, **extra)


def region_from_text(text: str) -> dict:
    """``--region`` text ("A:B[@E1:E2][*W]=PROMPT") as a request's region object (masks refused:
    a request never names files)."""
    from .geometry.regions import parse_region

    record = parse_region(text, allow_masks=False).to_record()
    return {key: record[key] for key in ("prompt", "azimuth", "elevation", "weight", "feather") if key in record}


def _validate_regions(value):
    if value is None:
        return []
    if not isinstance(value, list):
        raise UserInputError("regions must be a list of objects such as {\"prompt\": \"a lighthouse\", "
                             "\"azimuth\": [0, 90]}")
    if len(value) > MAX_REGIONS:
        raise UserInputError(f"{len(value)} regions; give at most {MAX_REGIONS}")
    return [parse_model(RegionRequest, item, "region") for item in value]


# The request -------------------------------------------------------------------------------------

_DIR_RE = re.compile(rf"(?:{NAME}(?:/{NAME}){{0,{MAX_DIR_DEPTH - 1}}})?")


class WorldRequest(BaseModel):
    """One world from a prompt. Only ``prompt`` is required; unknown fields are refused."""

    model_config = ConfigDict(extra="forbid", frozen=True, title="WorldRequest")

    prompt: _text("the prompt", True) = Field(description="What the world shows.")
    negative: _text("the negative prompt", False) = Field("", description="Negative prompt.")
    size: _field(_validate_size, _size_schema()) = (2048, 512)
    span: _field(lambda v: check_span(v), rule_schema(RULES["span"])) = 360.0
    seed: _ruled("seed", "seed", nullable=True) = Field(None, description="Default 0: the same request makes the "
                                                                          "same world.")
    preset: _field(lambda v: _preset(v), {"enum": ["published", "fast", None]}) = Field(
        None, description="Sampling recipe; default: the server's (or the CLI's) default preset.")
    steps: _ruled("steps", "steps", nullable=True) = Field(None, description="Default: the preset's (published 50, "
                                                                            "fast 14).")
    guidance: _ruled("guidance", "guidance") = 7.5
    modality: _named("modality", MODALITY_RE, 64, "depth", nullable=False) = "depth"
    scheduler: _named("scheduler", SCHEDULER_RE, 64, "ddim", signs="'.', '_', '+' or '-'") = Field(
        None, description="ddim, dpm++, unipc, euler, euler-a, ddpm, pndm; default: the preset's. The loaded "
                          "backend checks the name when the job runs.")
    regions: _field(_validate_regions, {"type": ["array", "null"], "maxItems": MAX_REGIONS,
                                        "items": RegionRequest.model_json_schema()}) = ()
    name: _named("name", NAME_RE, 100, "fjord") = Field(None, description="The scene folder's name; default: a slug of "
                                                                     "the prompt and the job id.")
    dir: _field(lambda v: _dir(v), {"type": ["string", "null"], "pattern": f"^{_DIR_RE.pattern}{END}"}) = Field(
        None, description=f"A folder under the output root: NAME/NAME/... (at most {MAX_DIR_DEPTH} parts).")

    @classmethod
    def parse(cls, body: Any, where: str = "request") -> "WorldRequest":
        """``body`` (decoded JSON) checked; ``UserInputError`` with one line naming the fix."""
        return parse_model(cls, body, where)

    @classmethod
    def from_text_fields(cls, fields: dict, where: str = "request") -> "WorldRequest":
        """For the CLI, JOBS files and recipes: ``fields`` as the request takes them, except that
        ``size`` may be "2048x512" and ``regions`` may hold --region text ("0:90=a lighthouse")."""
        fields = dict(fields)
        if isinstance(fields.get("size"), str):
            fields["size"] = size_from_text(fields["size"], f"{where}: size")
        if isinstance(fields.get("regions"), (list, tuple)):
            fields["regions"] = [region_from_text(r) if isinstance(r, str) else r for r in fields["regions"]]
        return cls.parse(fields, where)

    def folder(self) -> tuple[str, ...]:
        return tuple(self.dir.split("/")) if self.dir else ()

    def resolved_preset(self, default: Optional[str] = None) -> str:
        from .sampler.presets import DEFAULT_PRESET

        return self.preset or _preset(default) or DEFAULT_PRESET

    def to_generate_request(self, default_preset: Optional[str] = None, regions: Optional[list] = None):
        """Today's ``worldgen.backend.GenerateRequest``; ``preset`` is the request's own (or
        ``default_preset``), and steps default to that preset's. ``regions`` replaces the request's
        own (a local run's list, which may hold mask regions; see ``generate_request``)."""
        from .backend import GenerateRequest
        from .sampler.presets import get_preset

        preset = self.resolved_preset(default_preset)
        width, height = self.size
        return GenerateRequest(prompt=self.prompt, width=width, height=height, span_deg=self.span,
                               seed=0 if self.seed is None else self.seed,
                               steps=get_preset(preset).steps if self.steps is None else self.steps,
                               guidance=self.guidance, negative_prompt=self.negative, modality=self.modality,
                               scheduler=self.scheduler, preset=preset,
                               regions=[r.to_region() for r in self.regions] if regions is None else regions)


def default_preset(name: Optional[str] = None) -> str:
    """A default preset (a server's --preset) checked by the request's rule; None: the published recipe."""
    from .sampler.presets import DEFAULT_PRESET

    return _preset(name) or DEFAULT_PRESET


def _preset(value):
    if value is None:
        return None
    from .sampler.presets import PRESETS

    if not isinstance(value, str) or value not in PRESETS:
        raise UserInputError(f"preset {str(value)[:40]!r} must be one of {', '.join(PRESETS)}")
    return value


def _dir(value):
    if value is None or value == "":
        return None
    if not isinstance(value, str) or not _DIR_RE.fullmatch(value):
        raise UserInputError(f"dir {str(value)[:120]!r} must be a relative folder of at most {MAX_DIR_DEPTH} parts "
                             f"separated by '/', each 1-100 letters, digits, '.', '_' or '-' starting with a letter "
                             f"or digit (no absolute paths, no '..')")
    return value


def parse_model(model: type[BaseModel], body: Any, where: str):
    """``model`` from decoded JSON, every failure one ``UserInputError`` line prefixed by ``where``
    (nothing when ``where`` is empty: the API's own messages)."""
    prefix = f"{where}: " if where else ""
    if not isinstance(body, dict):
        raise UserInputError(f"{prefix}must be a JSON object such as {{\"prompt\": \"a misty fjord\"}}, "
                             f"not {type(body).__name__}")
    known = list(model.model_fields)
    for key in body:
        if key not in known:
            close = difflib.get_close_matches(str(key), known, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else f"; known fields: {', '.join(known)}"
            raise UserInputError(f"{prefix}unknown field {str(key)[:60]!r}{hint}")
    try:
        return model.model_validate(body)
    except UserInputError as exc:
        raise UserInputError(f"{prefix}{exc}") from None
    except ValidationError as exc:  # what the field validators do not raise themselves: a missing field
        first = exc.errors()[0]
        place = ".".join(str(part) for part in first["loc"]) or "the object"
        hint = f" (e.g. {{\"prompt\": \"a misty fjord\"}})" if first["type"] == "missing" else ""
        raise UserInputError(f"{prefix}{place}: {first['msg'].lower()}{hint}") from None


def request_json_schema() -> dict:
    """The JSON Schema (draft 2020-12) of a world request, generated from ``WorldRequest``."""
    schema = WorldRequest.model_json_schema()
    return {"$schema": "https://json-schema.org/draft/2020-12/schema",
            "$id": "https://worldgen.invalid/schema/v1/world-request.json", **schema}


# Local front ends: the API, the CLI, batch jobs, recipes --------------------------------------------

def generate_request(prompt: Any, *, width: Any = 2048, height: Any = 512, span: Any = 360.0, seed: Any = 0,
                     preset: Any = None, steps: Any = None, guidance: Any = 7.5, negative_prompt: Any = "",
                     modality: Optional[str] = None, scheduler: Any = None, regions: Any = (),
                     default_preset: Optional[str] = None, where: str = ""):
    """The checked ``GenerateRequest`` for keyword arguments: every value goes through ``WorldRequest``,
    so a local run refuses exactly what `worldgen serve` refuses, with the same line (``where``, when
    given, comes first). ``modality`` may list several ("depth,edges": what a branches model loads);
    the request names the first. Mask regions (``MASK.png=PROMPT`` or a ``Region`` with a mask) stay
    as given: only a local run reads files, so the model never sees them."""
    sent, ordered = _split_regions(regions)
    fields = dict(prompt=prompt, negative=negative_prompt, size=[width, height], span=span, seed=seed,
                  preset=preset, steps=steps, guidance=guidance, scheduler=scheduler, regions=sent,
                  modality=modality.split(",")[0] if isinstance(modality, str) else modality or "depth")
    checked = parse_model(WorldRequest, fields, where)
    azimuthal = iter(region.to_region() for region in checked.regions)
    return checked.to_generate_request(default_preset, [region or next(azimuthal) for region in ordered])


def _split_regions(regions: Any) -> tuple[list[dict], list]:
    """(the azimuth regions as request objects, the list in order with None where each of those goes)."""
    from .geometry.regions import Region, parse_region

    sent, ordered = [], []
    for region in regions or ():
        region = parse_region(region) if isinstance(region, str) else region
        if not isinstance(region, Region):
            raise UserInputError(f"region {str(region)[:60]!r} must be \"A:B=PROMPT\" text or a "
                                 f"worldgen.regions.Region")
        if region.mask is not None:
            ordered.append(region)
        else:
            record = region.to_record()
            sent.append({key: record[key] for key in ("prompt", "azimuth", "elevation", "weight", "feather")
                         if key in record})
            ordered.append(None)
    return sent, ordered


def check_field(name: str, value: Any) -> Any:
    """One field of a world request checked alone, by the model (recipes check field by field);
    ``size`` may be "2048x512" text."""
    if name == "size" and isinstance(value, str):
        value = size_from_text(value)
    return getattr(parse_model(WorldRequest, {"prompt": "-", name: value}, ""), name)
